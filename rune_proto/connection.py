"""The per-connection state machine of ``rune/1``, sans I/O, for both roles.

Feed received bytes with :meth:`Connection.receive_data`, pull events with
:meth:`Connection.next_event`, and turn events you want to send into bytes with
:meth:`Connection.send`. Both roles run the same transition table, so client and
server always agree on the state. The exchange is lock-step: one command, one
reply. A server that receives pipelined commands simply reads them one by one.

States::

    GREETING ──HOWDY──▶ IDLE ──REGISTER*/205──▶ AWAIT_ANSWER ──CHALLANGE_ACCEPTED/210──▶ IDLE
                         │
                         └──LOGIN/220──▶ AWAIT_PROOF ──PROOF/230──▶ AUTHENTICATED
    AUTHENTICATED ──SEND/201──▶ SENDING ──MESSAGE/202──▶ AUTHENTICATED
                                       └──NOOP/200 (abandon: e.g. the receiver's key changed)
    any state ──QUIT/221, or a closing status (407 408 410 412 421 429 5xx)──▶ CLOSED

An error reply in AWAIT_ANSWER, AWAIT_PROOF or SENDING falls back to IDLE or
AUTHENTICATED: the exchange is abandoned, the session is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

from . import status
from .address import Address
from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    NEED_DATA,
    PAUSED,
    REPLY_TYPE,
    Authenticated,
    Bye,
    Capa,
    Capabilities,
    Challenge,
    ChallengeAccepted,
    Command,
    ConnectionClosed,
    Delete,
    ErrorReply,
    Event,
    Greeting,
    ListMessages,
    Login,
    LoginNonce,
    Lookup,
    Message,
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
)
from .wire import (
    LineBuffer,
    TooLong,
    expects_body,
    format_command,
    format_reply,
    message_line_limit,
    parse_command,
    parse_greeting,
    parse_reply,
    retrieved_pieces,
    split_reply,
)

DEFAULT_MAX_LINE = 4096
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024
MAX_BODY_LINES = 1_000_000
MAX_BODY_BYTES = 64 * 1024 * 1024  # a hostile server cannot make a client hold more
_REPLY_LINE_LIMIT = 16 * 1024  # longest non-RETRIEVE reply (201 with two keys) is ~3.4 KiB


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"


class State(Enum):
    GREETING = "greeting"
    IDLE = "idle"
    AWAIT_ANSWER = "await-answer"
    AWAIT_PROOF = "await-proof"
    AUTHENTICATED = "authenticated"
    SENDING = "sending"
    CLOSED = "closed"


ALLOWED: dict[State, frozenset[type[Command]]] = {
    State.IDLE: frozenset({Capa, Register, RegisterInvitation, Login, Noop, Quit}),
    State.AWAIT_ANSWER: frozenset({ChallengeAccepted, Quit}),
    State.AWAIT_PROOF: frozenset({Proof, Quit}),
    State.AUTHENTICATED: frozenset(
        {Capa, Send, ListMessages, Retrieve, Delete, Lookup, Noop, Quit}
    ),
    State.SENDING: frozenset({Message, Noop, Quit}),
}
NEEDS_LOGIN: frozenset[type[Command]] = frozenset({Send, ListMessages, Retrieve, Delete, Lookup})

# (state, command, reply type) -> next state. Anything not listed keeps the state,
# except that errors leave the sub-states and closing replies close.
TRANSITIONS: dict[tuple[State, type[Command], type[Reply]], State] = {
    (State.IDLE, Register, Challenge): State.AWAIT_ANSWER,
    (State.IDLE, RegisterInvitation, Challenge): State.AWAIT_ANSWER,
    (State.AWAIT_ANSWER, ChallengeAccepted, Registered): State.IDLE,
    (State.IDLE, Login, LoginNonce): State.AWAIT_PROOF,
    (State.AWAIT_PROOF, Proof, Authenticated): State.AUTHENTICATED,
    (State.AUTHENTICATED, Send, SendReady): State.SENDING,
    (State.SENDING, Message, Roger): State.AUTHENTICATED,
    (State.SENDING, Noop, Ok): State.AUTHENTICATED,
}
_FALLBACK = {
    State.AWAIT_ANSWER: State.IDLE,
    State.AWAIT_PROOF: State.IDLE,
    State.SENDING: State.AUTHENTICATED,
}


def rejection(state: State, command: type[Command]) -> int | None:
    """The status for a command that is not legal in ``state``, or None if it is."""
    if state in ALLOWED and command in ALLOWED[state]:
        return None
    if command in NEEDS_LOGIN and state not in (State.AUTHENTICATED, State.SENDING):
        return status.LOGIN_REQUIRED
    return status.BAD_SEQUENCE


def next_state(state: State, command: type[Command] | None, reply: Reply) -> State:
    if isinstance(reply, Bye):
        return State.CLOSED
    if isinstance(reply, ErrorReply):
        if status.closes(reply.status):
            return State.CLOSED
        return _FALLBACK.get(state, state)
    if command is None:
        return state
    return TRANSITIONS.get((state, command, type(reply)), state)


def _refusal(line: bytes) -> ErrorReply | None:
    """A closing status sent instead of the greeting (``421 too many connections``)."""
    try:
        code, rest = split_reply(line)
    except RemoteProtocolError:
        return None
    return ErrorReply(code, rest) if code >= 400 and status.closes(code) else None


class _OwedError:
    """Marker: the server consumed a bad line and owes an error reply for it."""


_OWED_ERROR = _OwedError()


class Connection:
    """One side of one connection. Not thread-safe; cheap to create."""

    def __init__(
        self,
        role: Role,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.role = role
        self.state = State.GREETING
        self.max_line = max_line
        self.max_payload = max_payload
        self.address: Address | None = None  # set once authenticated
        self._buffer = LineBuffer()
        self._eof = False
        self._pending: Command | _OwedError | None = None
        self._body: tuple[int, str, list[str]] | None = None
        self._body_bytes = 0

    # --- receiving ------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side."""
        if self._eof and data:
            raise LocalProtocolError("data received after end of stream")
        if data:
            self._buffer.feed(data)
        else:
            self._eof = True

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed (for tests and limits)."""
        return len(self._buffer)

    def next_event(self) -> Event:
        """The next event, ``NEED_DATA``, ``PAUSED`` or ``ConnectionClosed``.

        Raises :class:`RemoteProtocolError` for what the peer got wrong; when it
        is not fatal, exactly one line was consumed and (on the server) an
        :class:`ErrorReply` with ``exc.status`` must be sent next.
        """
        if self.role is Role.SERVER:
            return self._next_command()
        return self._next_reply()

    def _read_line(self, limit: int) -> bytes | TooLong | ConnectionClosed | None:
        line = self._buffer.next_line(limit)
        if line is None and self._eof:
            self.state = State.CLOSED
            return ConnectionClosed()
        return line

    def _next_command(self) -> Event:
        if self.state is State.CLOSED:
            return ConnectionClosed()
        if self.state is State.GREETING:
            raise LocalProtocolError("the server must send its greeting first")
        if self._pending is not None:
            return PAUSED
        sending = self.state is State.SENDING
        limit = message_line_limit(self.max_payload) if sending else self.max_line
        line = self._read_line(limit)
        if line is None:
            return NEED_DATA
        if isinstance(line, ConnectionClosed):
            return line
        self._pending = _OWED_ERROR
        if isinstance(line, TooLong):
            if sending:
                raise RemoteProtocolError("payload too large", status.PAYLOAD_TOO_LARGE)
            raise RemoteProtocolError(
                f"line too long (limit {self.max_line} bytes)", status.LINE_TOO_LONG
            )
        command = parse_command(line, max_payload=self.max_payload)
        refused = rejection(self.state, type(command))
        if refused is not None:
            what = "log in first" if refused == status.LOGIN_REQUIRED else "not now"
            raise RemoteProtocolError(f"{command.verb}: {what}", refused)
        self._pending = command
        return command

    def _reply_limit(self) -> int:
        if isinstance(self._pending, Retrieve):
            return message_line_limit(self.max_payload + 64 * 1024)
        return max(self.max_line, _REPLY_LINE_LIMIT)

    def _next_reply(self) -> Event:
        """Every protocol error from the server is fatal: a client cannot resync."""
        try:
            return self._read_reply()
        except RemoteProtocolError as exc:
            self.state = State.CLOSED
            if exc.fatal:
                raise
            raise RemoteProtocolError(str(exc), exc.status, fatal=True) from exc

    def _read_reply(self) -> Event:
        while True:
            if self.state is State.CLOSED:  # whatever follows a close is not read
                return ConnectionClosed()
            line = self._read_line(self._reply_limit())
            if line is None or isinstance(line, ConnectionClosed):
                return NEED_DATA if line is None else line
            if isinstance(line, TooLong):
                raise RemoteProtocolError("server sent an oversized line", fatal=True)
            if self.state is State.GREETING:
                refusal = _refusal(line)
                if refusal is not None:
                    self.state = State.CLOSED
                    return refusal
                self.state = State.IDLE
                return parse_greeting(line)
            if self._body is not None:
                reply = self._continue_body(line)
                if reply is None:
                    continue
                return reply
            code, rest = split_reply(line)
            command = self._pending
            if not isinstance(command, Command):
                if status.closes(code) and code >= 400:
                    self.state = State.CLOSED
                    return ErrorReply(code, rest)
                raise RemoteProtocolError(f"unsolicited reply {code}", fatal=True)
            if expects_body(command, code):
                self._body = (code, rest, [])
                self._body_bytes = 0
                continue
            return self._finish(command, parse_reply(command, code, rest))

    def _continue_body(self, line: bytes) -> Reply | None:
        assert self._body is not None and isinstance(self._pending, Command)
        code, rest, body = self._body
        if line == b".":
            self._body = None
            return self._finish(self._pending, parse_reply(self._pending, code, rest, body))
        self._body_bytes += len(line)
        if len(body) >= MAX_BODY_LINES or self._body_bytes > MAX_BODY_BYTES:
            raise RemoteProtocolError("reply body is too large", fatal=True)
        try:
            body.append(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError("reply body is not UTF-8", fatal=True) from exc
        return None

    def _finish(self, command: Command, reply: Reply) -> Reply:
        self._pending = None
        self._apply(type(command), reply)
        return reply

    # --- sending --------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """Bytes to write for ``event``; raises LocalProtocolError if not allowed now."""
        if self.state is State.CLOSED:
            raise LocalProtocolError("the connection is closed")
        if self.role is Role.SERVER:
            if not isinstance(event, Reply):
                raise LocalProtocolError("a server sends replies")
            return self._send_reply(event)
        if not isinstance(event, Command):
            raise LocalProtocolError("a client sends commands")
        return self._send_command(event)

    def send_pieces(self, reply: Retrieved, piece: int) -> Iterator[bytes]:
        """Like :meth:`send` for a RETRIEVE reply, its line in pieces (see retrieved_pieces).

        The state moves on at once, as with :meth:`send`; the caller writes every piece.
        """
        if self.role is not Role.SERVER or not isinstance(self._pending, Retrieve):
            raise LocalProtocolError("a 250 reply answers a pending RETRIEVE")
        if self.state is State.CLOSED:
            raise LocalProtocolError("the connection is closed")
        self._finish(self._pending, reply)
        return retrieved_pieces(reply, piece)

    def _send_reply(self, reply: Reply) -> bytes:
        if self.state is State.GREETING:
            if not isinstance(reply, Greeting):
                raise LocalProtocolError("the first thing a server sends is its greeting")
            self.state = State.IDLE
            return format_reply(reply)
        if isinstance(reply, Greeting):
            raise LocalProtocolError("the greeting was already sent")
        pending = self._pending
        if pending is None:
            if not (isinstance(reply, ErrorReply) and status.closes(reply.status)):
                raise LocalProtocolError("no command is waiting for a reply")
            self.state = State.CLOSED
            return format_reply(reply)
        if isinstance(pending, _OwedError):
            if not isinstance(reply, ErrorReply):
                raise LocalProtocolError("a rejected line is answered with an ErrorReply")
            self._pending = None
            self._apply(None, reply)
            return format_reply(reply)
        if not isinstance(reply, ErrorReply | REPLY_TYPE[type(pending)]):
            raise LocalProtocolError(f"{type(reply).__name__} does not answer {pending.verb}")
        self._finish(pending, reply)
        return format_reply(reply)

    def _send_command(self, command: Command) -> bytes:
        if self.state is State.GREETING:
            raise LocalProtocolError("wait for the server's greeting first")
        if self._pending is not None:
            raise LocalProtocolError("wait for the reply to the last command first")
        refused = rejection(self.state, type(command))
        if refused is not None:
            raise LocalProtocolError(
                f"{command.verb} is not allowed in state {self.state.value}", refused
            )
        self._pending = command
        return format_command(command)

    def _apply(self, command: type[Command] | None, reply: Reply) -> None:
        self.state = next_state(self.state, command, reply)
        if isinstance(reply, Authenticated):
            self.address = reply.address
        elif isinstance(reply, Capabilities | SendReady) and self.role is Role.CLIENT:
            self.max_payload = reply.max_payload
