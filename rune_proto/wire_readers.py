"""Readers for ``rune/1``: one line (and a reply's body) to a typed command or reply.

Kept apart from the writers and from I/O, as in h11: a reader gets complete lines
(see :class:`~rune_proto.wire.LineBuffer`) and returns an event or raises
:class:`RemoteProtocolError` carrying the status to answer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from . import status
from .address import Address, AddressError, parse_address
from .encoding import EncodingError, b64decode
from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    INVITATION_PATTERN,
    REGISTRATION_MODES,
    REPLY_TYPE,
    VERSION_PATTERN,
    Authenticated,
    BoundSend,
    Bye,
    Capa,
    Capabilities,
    Challenge,
    ChallengeAccepted,
    Command,
    Delete,
    Deleted,
    Done,
    ErrorReply,
    Event,
    Greeting,
    KeyFound,
    Listing,
    ListMessages,
    Login,
    LoginNonce,
    Lookup,
    Message,
    NewMail,
    Noop,
    Ok,
    Proof,
    Quit,
    Register,
    Registered,
    RegisterInvitation,
    Reply,
    Retrieve,
    Retrieved,
    Roger,
    Send,
    SendReady,
    Wait,
    WaitOver,
)
from .keys import InvalidKey, PublicKey

MULTILINE_CODES = frozenset({status.CAPABILITIES, status.LISTING})
_REPLY_LINE = re.compile(r"([2-5][0-9]{2})(?: (.*))?")
_INT = re.compile(r"[0-9]{1,19}")
REPLY_KEY_CACHE = 128  # parsed keys from servers' replies (~3 KB each; see _reply_key)


def _decode_line(line: bytes) -> str:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError("line is not valid UTF-8", status.SYNTAX_ERROR) from exc
    if any(c in text for c in "\r\0"):
        raise RemoteProtocolError("line contains a bare CR or NUL", status.SYNTAX_ERROR)
    return text


def _tokens(text: str, count: int, what: str) -> list[str]:
    parts = text.split(" ") if text else []
    if len(parts) != count or any(not p for p in parts):
        raise RemoteProtocolError(
            f"{what} takes {count} argument{'s' if count != 1 else ''} separated by one space",
            status.SYNTAX_ERROR,
        )
    return parts


def _address(token: str, code: int = status.BAD_ADDRESS) -> Address:
    try:
        return parse_address(token)
    except AddressError as exc:
        raise RemoteProtocolError(f"bad address: {exc}", code) from exc


def _key(token: str) -> PublicKey:
    try:
        return PublicKey.from_token(token)
    except InvalidKey as exc:
        raise RemoteProtocolError(f"bad public key: {exc}", status.SYNTAX_ERROR) from exc


@functools.lru_cache(maxsize=REPLY_KEY_CACHE)
def _parsed_key(token: str) -> PublicKey:
    return PublicKey.from_token(token)


def _reply_key(token: str) -> PublicKey:
    """A key in a server's reply, parsed once per distinct token and then reused.

    Every ``201`` carries two keys (~30 µs each to parse), nearly always the same few;
    a PublicKey is immutable, so the parsed object can be shared. Only for replies,
    on the client: a server never caches what clients send it (a timing oracle).
    """
    try:
        return _parsed_key(token)
    except InvalidKey as exc:
        raise RemoteProtocolError(f"bad public key: {exc}", status.SYNTAX_ERROR) from exc


def _binary(token: str, what: str, max_length: int | None = None, code: int = 400) -> bytes:
    try:
        return b64decode(token, max_length=max_length)
    except EncodingError as exc:
        raise RemoteProtocolError(f"bad {what}: {exc}", code) from exc


def _int(token: str, what: str) -> int:
    if not _INT.fullmatch(token):
        raise RemoteProtocolError(f"{what} is not a number", status.SYNTAX_ERROR)
    return int(token)


_E = TypeVar("_E", bound=Event)


def _build(factory: Callable[[], _E]) -> _E:
    """Turn an event constructor's validation failure into a remote error."""
    try:
        return factory()
    except LocalProtocolError as exc:
        raise RemoteProtocolError(str(exc), status.SYNTAX_ERROR) from exc


# --- commands --------------------------------------------------------------

_BARE_COMMANDS: dict[str, type[Command]] = {
    c.verb: c for c in (Capa, ListMessages, Noop, Quit, Wait, Done)
}


_MESSAGE = b"MESSAGE "


def parse_command(line: bytes, *, max_payload: int) -> Command:
    """Parse one command line (without its ending). Raises RemoteProtocolError."""
    if line.startswith(_MESSAGE):
        message = _message_from_bytes(line, max_payload)
        if message is not None:
            return message
    return parse_command_text(line, max_payload=max_payload)


def _message_from_bytes(line: bytes, max_payload: int) -> Message | None:
    """A MESSAGE line without turning its ~25 KB payload into text and back (four
    copies and two scans, ~60% of the parse once base64 is SIMD).

    The strict base64url decoder refuses every byte the text checks would (CR, NUL,
    non-ASCII, a space), so a line it accepts parses exactly as in the general path;
    for anything else this returns None and the general path gives the same error.
    """
    space = line.find(b" ", len(_MESSAGE))
    payload = line[space + 1 :]
    if space <= len(_MESSAGE) or not payload or len(payload) > (max_payload * 4 + 2) // 3:
        return None
    try:
        data = b64decode(payload)
    except EncodingError:
        return None
    return Message(_address(_decode_line(line[len(_MESSAGE) : space])), data)


def parse_command_text(line: bytes, *, max_payload: int) -> Command:
    """The general path of :func:`parse_command`: the line as text, then its tokens."""
    text = _decode_line(line)
    verb, separator, rest = text.partition(" ")
    if not verb.isascii() or (separator and not rest):
        raise RemoteProtocolError(f"malformed command {verb[:40]!r}", status.SYNTAX_ERROR)
    verb = verb.upper()
    if verb in _BARE_COMMANDS:
        _tokens(rest, 0, verb)
        return _BARE_COMMANDS[verb]()
    if verb == "REGISTER":
        address, key = _tokens(rest, 2, verb)
        return Register(_address(address), _key(key))
    if verb == "REGISTER_INVITATION":
        address, token, key = _tokens(rest, 3, verb)
        parsed = _address(address)
        public = _key(key)
        if not INVITATION_PATTERN.fullmatch(token):
            raise RemoteProtocolError("invitation token invalid", status.INVITATION_INVALID)
        return RegisterInvitation(parsed, token, public)
    if verb in ("CHALLANGE_ACCEPTED", "CHALLENGE_ACCEPTED"):
        (answer,) = _tokens(rest, 1, verb)
        return ChallengeAccepted(
            _binary(answer, "challenge answer", 4096, code=status.CHALLENGE_FAILED)
        )
    if verb == "LOGIN":
        (address,) = _tokens(rest, 1, verb)
        return Login(_address(address))
    if verb == "PROOF":
        (signature,) = _tokens(rest, 1, verb)
        return Proof(_binary(signature, "proof", 128))
    if verb == "SEND":
        if " " in rest:  # a bound SEND (§9.9): the receiver and its key's fingerprint
            address, fingerprint = _tokens(rest, 2, verb)
            digest = _binary(fingerprint, "key fingerprint", 32)
            receiver = _address(address)
            return _build(lambda: BoundSend(receiver, digest))
        (address,) = _tokens(rest, 1, verb)
        return Send(_address(address))
    if verb == "MESSAGE":
        sender, payload = _tokens(rest, 2, verb)
        if len(payload) > (max_payload * 4 + 2) // 3:
            raise RemoteProtocolError("payload too large", status.PAYLOAD_TOO_LARGE)
        return Message(_address(sender), _binary(payload, "payload"))
    if verb in ("RETRIEVE", "DELETE"):
        (message_id,) = _tokens(rest, 1, verb)
        kind = Retrieve if verb == "RETRIEVE" else Delete
        return _build(lambda: kind(message_id))
    if verb == "LOOKUP":
        (address,) = _tokens(rest, 1, verb)
        return Lookup(_address(address))
    raise RemoteProtocolError(f"unknown command {verb[:40]!r}", status.SYNTAX_ERROR)


# --- replies ---------------------------------------------------------------


def parse_greeting(line: bytes) -> Greeting:
    text = _decode_line(line)
    words = text.split(" ")
    if words[0] != "HOWDY":
        raise RemoteProtocolError("the server did not greet with HOWDY", fatal=True)
    versions = []
    for word in words[1:]:
        if not word.startswith("rune/"):
            break
        versions.append(word)
    welcome = " ".join(words[1 + len(versions) :])
    if not versions:  # the seed's bare form: HOWDY <welcome>
        versions = ["rune/1"]
    return _build(lambda: Greeting(tuple(versions), welcome))


def split_reply(line: bytes) -> tuple[int, str]:
    """The status code and the rest of a reply line."""
    text = _decode_line(line)
    match = _REPLY_LINE.fullmatch(text)
    if not match:
        raise RemoteProtocolError(f"not a reply line: {text[:60]!r}", fatal=True)
    return int(match.group(1)), match.group(2) or ""


def parse_reply(command: Command, code: int, rest: str, body: Sequence[str] = ()) -> Reply:
    """Build the typed reply to ``command`` from a reply line (and body, if multi-line)."""
    if code >= 400:
        return ErrorReply(code, rest)
    expected = _EXPECTED.get(type(command), frozenset())
    if code not in expected:
        raise RemoteProtocolError(
            f"server answered {code} to {command.verb}, expected {'/'.join(map(str, expected))}",
            fatal=True,
        )
    try:
        return _PARSERS[code](rest, body)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(f"bad {code} reply: {exc}", fatal=True) from exc


def _parse_capabilities(rest: str, body: Sequence[str]) -> Reply:
    values: dict[str, list[str]] = {}
    for line in body:
        key, _, value = line.partition(" ")
        values[key.upper()] = value.split(" ") if value else []
    try:
        modes = tuple(m for m in values["REGISTRATION"] if m in REGISTRATION_MODES)
        (max_payload,) = values["MAX_PAYLOAD"]
        (max_line,) = values["MAX_LINE"]
        (domain,) = values["DOMAIN"]
        (key,) = values["SERVER_KEY"]
        versions = tuple(v for v in values["VERSIONS"] if VERSION_PATTERN.fullmatch(v))
        (wait,) = values.get("WAIT", ["0"])
        pipeline = tuple(values.get("PIPELINE", ()))  # absent (an older server): lock-step
    except (KeyError, ValueError) as exc:
        raise RemoteProtocolError(f"capabilities are incomplete: {exc}") from exc
    server_key = _reply_key(key)
    wait_seconds = _int(wait, "WAIT") or None  # absent (an older server): no WAIT
    return _build(
        lambda: Capabilities(
            versions,
            domain,
            modes,
            _int(max_payload, "MAX_PAYLOAD"),
            _int(max_line, "MAX_LINE"),
            server_key,
            wait_seconds,
            pipeline,
        )
    )


def _parse_listing(rest: str, body: Sequence[str]) -> Reply:
    entries = []
    for line in body:
        message_id, size = _tokens(line, 2, "a listing line")
        entries.append((message_id, _int(size, "size")))
    return _build(lambda: Listing(tuple(entries)))


def _two(rest: str, what: str) -> tuple[str, str]:
    a, b = _tokens(rest, 2, what)
    return a, b


_PARSERS: dict[int, Callable[[str, Sequence[str]], Reply]] = {
    status.CAPABILITIES: _parse_capabilities,
    status.LISTING: _parse_listing,
    status.CHALLENGE: lambda rest, _: Challenge(
        _binary(_two(rest, "205")[0], "challenge", 4096), _key(_two(rest, "205")[1])
    ),
    status.REGISTERED: lambda rest, _: Registered(_address(_two(rest, "210")[1])),
    status.LOGIN_NONCE: lambda rest, _: LoginNonce(
        _binary(_tokens(rest, 1, "220")[0], "nonce", 64)
    ),
    status.AUTHENTICATED: lambda rest, _: Authenticated(_address(_two(rest, "230")[1])),
    status.SEND_READY: lambda rest, _: _send_ready(rest),
    status.ROGER: lambda rest, _: Roger(),
    status.RETRIEVED: lambda rest, _: _build(
        lambda: Retrieved(_two(rest, "250")[0], _binary(_two(rest, "250")[1], "message"))
    ),
    status.DELETED: lambda rest, _: _build(lambda: Deleted(_two(rest, "260")[1])),
    status.KEY_FOUND: lambda rest, _: KeyFound(
        _address(_two(rest, "270")[0]),
        _reply_key(_two(rest, "270")[1]),
    ),
    status.NEW_MAIL: lambda rest, _: NewMail(),
    status.WAIT_OVER: lambda rest, _: WaitOver(),
    status.OK: lambda rest, _: Ok(),
    status.BYE: lambda rest, _: Bye(),
}


def _send_ready(rest: str) -> Reply:
    size, receiver, server = _tokens(rest, 3, "201")
    max_payload = _int(size, "max payload")
    receiver_key, server_key = _reply_key(receiver), _reply_key(server)
    return _build(lambda: SendReady(max_payload, receiver_key, server_key))


_EXPECTED: dict[type[Command], frozenset[int]] = {
    c: frozenset({r.code}) for c, r in REPLY_TYPE.items() if c is not Wait
}
_EXPECTED[Wait] = frozenset({status.NEW_MAIL, status.WAIT_OVER})


def expects_body(command: Command, code: int) -> bool:
    """Whether a reply line with ``code`` to ``command`` is followed by body lines."""
    return code in MULTILINE_CODES and code in _EXPECTED.get(type(command), ())
