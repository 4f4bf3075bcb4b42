"""Wire events: one small frozen dataclass per command and per reply.

Constructors validate, so an event that exists can always be written to the wire.
Commands flow client → server, replies server → client. Typed values (``Address``,
``PublicKey``, ``bytes``) are used instead of raw tokens, so parsing a line also
checks what it carries.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import ClassVar

from .address import Address
from .errors import LocalProtocolError
from .keys import PublicKey

INVITATION_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
VERSION_PATTERN = re.compile(r"rune/[0-9]{1,4}")
REGISTRATION_MODES = ("free", "invite")


def _check_text(text: str, what: str) -> None:
    if any(c in text for c in "\r\n\0"):
        raise LocalProtocolError(f"{what} may not contain CR, LF or NUL")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(f"{what} is not valid Unicode text") from exc


def _check_bytes(value: bytes, what: str) -> None:
    """An empty binary token would write as a missing argument: refuse it here."""
    if not value:
        raise LocalProtocolError(f"{what} may not be empty")


def check_message_id(value: str) -> str:
    """Stored-message ids are RFC 4122 version 4 UUIDs in canonical lower-case form."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise LocalProtocolError("a message id is a UUID") from exc
    if parsed.version != 4 or str(parsed) != value:
        raise LocalProtocolError("a message id is a canonical version 4 UUID")
    return value


class Event:
    """Base of every event."""

    __slots__ = ()


class Command(Event):
    __slots__ = ()
    verb: ClassVar[str]


class Reply(Event):
    __slots__ = ()
    code: ClassVar[int]


# --- commands --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capa(Command):
    verb: ClassVar[str] = "CAPA"


@dataclass(frozen=True, slots=True)
class Register(Command):
    verb: ClassVar[str] = "REGISTER"
    address: Address
    public_key: PublicKey


@dataclass(frozen=True, slots=True)
class RegisterInvitation(Command):
    verb: ClassVar[str] = "REGISTER_INVITATION"
    address: Address
    invitation: str
    public_key: PublicKey

    def __post_init__(self) -> None:
        if not INVITATION_PATTERN.fullmatch(self.invitation):
            raise LocalProtocolError("an invitation token is 16-128 base64url characters")


@dataclass(frozen=True, slots=True)
class ChallengeAccepted(Command):
    """``CHALLANGE_ACCEPTED`` (the draft's spelling, which we send) or ``CHALLENGE_ACCEPTED``."""

    verb: ClassVar[str] = "CHALLANGE_ACCEPTED"
    answer: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.answer, "the challenge answer")


@dataclass(frozen=True, slots=True)
class Login(Command):
    verb: ClassVar[str] = "LOGIN"
    address: Address


@dataclass(frozen=True, slots=True)
class Proof(Command):
    verb: ClassVar[str] = "PROOF"
    signature: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.signature, "the proof")


@dataclass(frozen=True, slots=True)
class Send(Command):
    verb: ClassVar[str] = "SEND"
    receiver: Address


@dataclass(frozen=True, slots=True)
class BoundSend(Command):
    """``SEND`` with the fingerprint of the receiver's key the client holds (§9.9).

    Its MESSAGE follows without waiting for ``201``: the server checks the key now, so a
    MESSAGE sealed to a key the receiver no longer has is refused, never stored.
    """

    verb: ClassVar[str] = "SEND"
    receiver: Address
    fingerprint: bytes

    def __post_init__(self) -> None:
        if len(self.fingerprint) != 32:
            raise LocalProtocolError("a key fingerprint is 32 octets (SHA-256)")


@dataclass(frozen=True, slots=True)
class Message(Command):
    verb: ClassVar[str] = "MESSAGE"
    sender: Address
    payload: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.payload, "the payload")


@dataclass(frozen=True, slots=True)
class ListMessages(Command):
    verb: ClassVar[str] = "LIST"


@dataclass(frozen=True, slots=True)
class Retrieve(Command):
    verb: ClassVar[str] = "RETRIEVE"
    message_id: str

    def __post_init__(self) -> None:
        check_message_id(self.message_id)


@dataclass(frozen=True, slots=True)
class Delete(Command):
    verb: ClassVar[str] = "DELETE"
    message_id: str

    def __post_init__(self) -> None:
        check_message_id(self.message_id)


@dataclass(frozen=True, slots=True)
class Lookup(Command):
    verb: ClassVar[str] = "LOOKUP"
    address: Address


@dataclass(frozen=True, slots=True)
class Noop(Command):
    verb: ClassVar[str] = "NOOP"


@dataclass(frozen=True, slots=True)
class Quit(Command):
    verb: ClassVar[str] = "QUIT"


@dataclass(frozen=True, slots=True)
class Wait(Command):
    """Hold the connection until new mail is stored for this address (like IMAP IDLE)."""

    verb: ClassVar[str] = "WAIT"


@dataclass(frozen=True, slots=True)
class Done(Command):
    """Ends a WAIT early. It gets no reply of its own: the WAIT's reply answers it."""

    verb: ClassVar[str] = "DONE"


# --- replies ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Greeting(Reply):
    """``HOWDY rune/1 <welcome>``: the only line without a status code."""

    code: ClassVar[int] = 0
    versions: tuple[str, ...]
    welcome: str = ""

    def __post_init__(self) -> None:
        if not self.versions or not all(VERSION_PATTERN.fullmatch(v) for v in self.versions):
            raise LocalProtocolError("the greeting names at least one version like rune/1")
        _check_text(self.welcome, "the welcome message")
        if self.welcome.startswith("rune/"):
            raise LocalProtocolError("a welcome message may not start with 'rune/'")


@dataclass(frozen=True, slots=True)
class Capabilities(Reply):
    code: ClassVar[int] = 211
    versions: tuple[str, ...]
    domain: str
    registration: tuple[str, ...]
    max_payload: int
    max_line: int
    server_key: PublicKey
    # The longest WAIT in seconds; None: the server does not offer WAIT (§10.7).
    wait_seconds: int | None = None
    # The exchanges the server accepts pipelined (§9.9): "SEND", or nothing.
    pipeline: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not all(VERSION_PATTERN.fullmatch(v) for v in self.versions):
            raise LocalProtocolError("capability versions look like rune/1")
        if any(m not in REGISTRATION_MODES for m in self.registration):
            raise LocalProtocolError(f"registration modes are {REGISTRATION_MODES}")
        if self.max_payload <= 0 or self.max_line <= 0:
            raise LocalProtocolError("limits are positive")
        if self.wait_seconds is not None and self.wait_seconds <= 0:
            raise LocalProtocolError("a wait's lifetime is positive")
        _check_text(self.domain, "the domain")
        if not self.domain or " " in self.domain:
            raise LocalProtocolError("the domain is one token")


@dataclass(frozen=True, slots=True)
class Challenge(Reply):
    code: ClassVar[int] = 205
    challenge: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.challenge, "the challenge")

    server_key: PublicKey


@dataclass(frozen=True, slots=True)
class Registered(Reply):
    code: ClassVar[int] = 210
    address: Address


@dataclass(frozen=True, slots=True)
class LoginNonce(Reply):
    code: ClassVar[int] = 220
    nonce: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.nonce, "the nonce")


@dataclass(frozen=True, slots=True)
class Authenticated(Reply):
    code: ClassVar[int] = 230
    address: Address


@dataclass(frozen=True, slots=True)
class SendReady(Reply):
    code: ClassVar[int] = 201
    max_payload: int
    receiver_key: PublicKey
    server_key: PublicKey

    def __post_init__(self) -> None:
        if self.max_payload <= 0:
            raise LocalProtocolError("the maximum payload is positive")


@dataclass(frozen=True, slots=True)
class Roger(Reply):
    code: ClassVar[int] = 202


@dataclass(frozen=True, slots=True)
class Listing(Reply):
    code: ClassVar[int] = 240
    entries: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        for message_id, size in self.entries:
            check_message_id(message_id)
            if size < 0:
                raise LocalProtocolError("sizes are not negative")


@dataclass(frozen=True, slots=True)
class Retrieved(Reply):
    code: ClassVar[int] = 250
    message_id: str
    blob: bytes

    def __post_init__(self) -> None:
        check_message_id(self.message_id)
        _check_bytes(self.blob, "the message")


@dataclass(frozen=True, slots=True)
class Deleted(Reply):
    code: ClassVar[int] = 260
    message_id: str

    def __post_init__(self) -> None:
        check_message_id(self.message_id)


@dataclass(frozen=True, slots=True)
class KeyFound(Reply):
    code: ClassVar[int] = 270
    address: Address
    public_key: PublicKey


class WaitEnded(Reply):
    """How a WAIT ended: :class:`NewMail` or :class:`WaitOver`."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class NewMail(WaitEnded):
    """``280``: a message was stored for this address. Says nothing of whom or how big."""

    code: ClassVar[int] = 280


@dataclass(frozen=True, slots=True)
class WaitOver(WaitEnded):
    """``281``: the wait ended without new mail (the client's DONE, or its lifetime)."""

    code: ClassVar[int] = 281


@dataclass(frozen=True, slots=True)
class Ok(Reply):
    code: ClassVar[int] = 200


@dataclass(frozen=True, slots=True)
class Bye(Reply):
    code: ClassVar[int] = 221


@dataclass(frozen=True, slots=True)
class ErrorReply(Reply):
    """Any 4xx or 5xx status. ``status`` is the number; see :mod:`rune_proto.status`."""

    code: ClassVar[int] = -1
    status: int
    text: str

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise LocalProtocolError("error statuses are 400-599")
        _check_text(self.text, "the status text")


# --- events that are not lines ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The peer closed its side (end of stream)."""


class _Sentinel(Event):
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")
"""More bytes are needed before another event can be produced."""

PAUSED = _Sentinel("PAUSED")
"""The server owes a reply to the last command before it reads the next one."""

DISCARDED = _Sentinel("DISCARDED")
"""Server side: the line after a refused bound SEND was dropped unread; answer it 402 (§9.9)."""

COMMANDS: tuple[type[Command], ...] = (
    Capa,
    Register,
    RegisterInvitation,
    ChallengeAccepted,
    Login,
    Proof,
    Send,
    BoundSend,
    Message,
    ListMessages,
    Retrieve,
    Delete,
    Lookup,
    Noop,
    Quit,
    Wait,
    Done,
)

REPLY_TYPE: dict[type[Command], type[Reply]] = {
    Capa: Capabilities,
    Register: Challenge,
    RegisterInvitation: Challenge,
    ChallengeAccepted: Registered,
    Login: LoginNonce,
    Proof: Authenticated,
    Send: SendReady,
    BoundSend: SendReady,
    Message: Roger,
    ListMessages: Listing,
    Retrieve: Retrieved,
    Delete: Deleted,
    Lookup: KeyFound,
    Noop: Ok,
    Quit: Bye,
    Wait: WaitEnded,
}
"""The success reply each command expects (any command may get an ErrorReply)."""
