"""The asyncio client library: everything a Rune client needs, no sockets or keys exposed."""

from .contacts import Contact, ContactBook, ContactBookError, KeyCheck, ReplayLog
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
from .messages import KeyChange, ReceivedMessage, Verification
from .session import DEFAULT_PORT, MessageInfo, Session, connect

__all__ = [
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
    "Verification",
    "connect",
]
