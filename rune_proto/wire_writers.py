"""Writers for ``rune/1``: typed commands and replies to the bytes of their lines.

Kept apart from the readers (as in h11) because the two sides share nothing but
the line format, and an event that exists was validated when it was built, so a
writer only lays it out and never has to check it.
"""

from __future__ import annotations

from collections.abc import Iterator

from .encoding import b64encode, b64encode_bytes
from .errors import LocalProtocolError
from .events import (
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


def format_command(command: Command) -> bytes:
    match command:
        case Register(address=a, public_key=k):
            args = [str(a), k.token()]
        case RegisterInvitation(address=a, invitation=t, public_key=k):
            args = [str(a), t, k.token()]
        case ChallengeAccepted(answer=answer):
            args = [b64encode(answer)]
        case Login(address=a) | Send(receiver=a) | Lookup(address=a):
            args = [str(a)]
        case Proof(signature=signature):
            args = [b64encode(signature)]
        case BoundSend(receiver=a, fingerprint=digest):
            args = [str(a), b64encode(digest)]
        case Message(sender=a, payload=payload):
            args = [str(a), b64encode(payload)]
        case Retrieve(message_id=m) | Delete(message_id=m):
            args = [m]
        case Capa() | ListMessages() | Noop() | Quit() | Wait() | Done():
            args = []
        case _:
            raise LocalProtocolError(f"not a command: {command!r}")
    return (" ".join([command.verb, *args]) + "\r\n").encode("utf-8")


def message_line_limit(max_payload: int) -> int:
    """Longest acceptable ``MESSAGE`` line for a payload limit."""
    return len("MESSAGE ") + 101 + 1 + (max_payload * 4 + 2) // 3 + 2


def format_reply(reply: Reply) -> bytes:
    match reply:
        case Greeting(versions=v, welcome=w):
            lines = [" ".join(["HOWDY", *v, *([w] if w else [])])]
        case Capabilities():
            lines = [
                f"{reply.code} capabilities follow",
                "VERSIONS " + " ".join(reply.versions),
                f"DOMAIN {reply.domain}",
                "REGISTRATION " + (" ".join(reply.registration) or "closed"),
                f"MAX_PAYLOAD {reply.max_payload}",
                f"MAX_LINE {reply.max_line}",
                f"SERVER_KEY {reply.server_key.token()}",
                *([f"WAIT {reply.wait_seconds}"] if reply.wait_seconds else []),
                *(["PIPELINE " + " ".join(reply.pipeline)] if reply.pipeline else []),
                ".",
            ]
        case Challenge(challenge=c, server_key=k):
            lines = [f"205 {b64encode(c)} {k.token()}"]
        case Registered(address=a):
            lines = [f"210 registered {a}"]
        case LoginNonce(nonce=n):
            lines = [f"220 {b64encode(n)}"]
        case Authenticated(address=a):
            lines = [f"230 authenticated {a}"]
        case SendReady(max_payload=m, receiver_key=r, server_key=s):
            lines = [f"201 {m} {r.token()} {s.token()}"]
        case Roger():
            lines = ["202 ROGER"]
        case Listing(entries=entries):
            lines = [f"240 {len(entries)} messages", *(f"{m} {n}" for m, n in entries), "."]
        case Retrieved(message_id=m, blob=b):
            lines = [f"250 {m} {b64encode(b)}"]
        case Deleted(message_id=m):
            lines = [f"260 deleted {m}"]
        case KeyFound(address=a, public_key=k):
            lines = [f"270 {a} {k.token()}"]
        case NewMail():
            lines = ["280 new mail"]
        case WaitOver():
            lines = ["281 wait over"]
        case Ok():
            lines = ["200 OK"]
        case Bye():
            lines = ["221 bye"]
        case ErrorReply(status=code, text=text):
            lines = [f"{code} {text}" if text else str(code)]
        case _:
            raise LocalProtocolError(f"not a reply: {reply!r}")
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


def retrieved_pieces(reply: Retrieved, piece: int) -> Iterator[bytes]:
    """The bytes of ``format_reply(reply)`` in pieces of at most ~``piece`` bytes.

    A large RETRIEVE reply is written piece by piece as the peer reads it, so its
    base64 (a third larger than the blob) never sits whole in memory.
    """
    step = max(3, piece // 4 * 3)  # a multiple of 3: no padding inside the line
    yield f"250 {reply.message_id} ".encode("ascii")
    blob = memoryview(reply.blob)
    for start in range(0, len(blob), step):
        yield b64encode_bytes(blob[start : start + step])
    yield b"\r\n"
