"""The asyncio client library: everything a Rune client needs, no sockets or keys exposed."""

from .contacts import (
    COMPARED_IN_PERSON,
    Contact,
    ContactBook,
    ContactBookError,
    KeyCheck,
    ReplayLog,
)
from .errors import (
    ClientError,
    ConnectionFailed,
    ContactKeyChanged,
    NotTrusted,
    PayloadTooLarge,
    ProtocolViolation,
    ServerError,
    ServerKeyChanged,
    TLSPinMismatch,
)
from .messages import KeyChange, ReceivedMessage, Verification, open_retrieved
from .session import DEFAULT_PORT, MessageInfo, Session, connect
from .vault import Vault, VaultError

__all__ = [
    "COMPARED_IN_PERSON",
    "DEFAULT_PORT",
    "ClientError",
    "ConnectionFailed",
    "Contact",
    "ContactBook",
    "ContactBookError",
    "ContactKeyChanged",
    "KeyChange",
    "KeyCheck",
    "MessageInfo",
    "NotTrusted",
    "PayloadTooLarge",
    "ProtocolViolation",
    "ReceivedMessage",
    "ReplayLog",
    "ServerError",
    "ServerKeyChanged",
    "Session",
    "TLSPinMismatch",
    "Vault",
    "VaultError",
    "Verification",
    "connect",
    "open_retrieved",
]
