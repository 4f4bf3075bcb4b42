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
    AUTHENTICATED ──WAIT──▶ WAITING ──280 / 281 (after DONE or the lifetime)──▶ AUTHENTICATED
    any state ──QUIT/221, or a closing status (407 408 410 412 421 429 5xx)──▶ CLOSED

An error reply in AWAIT_ANSWER, AWAIT_PROOF or SENDING falls back to IDLE or
AUTHENTICATED: the exchange is abandoned, the session is not.

A bound SEND (``SEND <receiver> <key fingerprint>``, §9.9) is the one pipelined pair:
the client writes its MESSAGE right behind it. A ``201`` makes that MESSAGE the next
command as usual; an error makes the server drop the next line unread and answer it
``402`` (event ``DISCARDED``), and the client expects exactly that, so neither side
ever reads a MESSAGE in a state that did not ask for one.

WAIT is the one command whose reply may come much later. It enters WAITING when it
is sent (not when answered), and there the client may send one more line, ``DONE``,
which gets no reply of its own: the WAIT's ``281`` answers it. A DONE that crosses a
``280`` or a lifetime's ``281`` on the wire arrives when the server is back in
AUTHENTICATED; the server drops that one DONE without a reply.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

from . import status
from .address import Address
from .connection_replies import MAX_BODY_BYTES, MAX_BODY_LINES, ReplyReader
from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    DISCARDED,
    NEED_DATA,
    PAUSED,
    REPLY_TYPE,
    Authenticated,
    BoundSend,
    Capabilities,
    Command,
    ConnectionClosed,
    Done,
    ErrorReply,
    Event,
    Greeting,
    Message,
    Reply,
    Retrieve,
    Retrieved,
    SendReady,
    Wait,
    WaitEnded,
)
from .states import ALLOWED, NEEDS_LOGIN, TRANSITIONS, State, next_state, rejection
from .wire import (
    LineBuffer,
    TooLong,
    format_command,
    format_reply,
    message_line_limit,
    parse_command,
    retrieved_pieces,
)

DEFAULT_MAX_LINE = 4096
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024


__all__ = [
    "ALLOWED",
    "MAX_BODY_BYTES",
    "MAX_BODY_LINES",
    "NEEDS_LOGIN",
    "TRANSITIONS",
    "Connection",
    "Role",
    "State",
    "next_state",
    "rejection",
]


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"


def _parse_quietly(line: bytes, max_payload: int) -> Command | None:
    try:
        return parse_command(line, max_payload=max_payload)
    except RemoteProtocolError:
        return None


class _OwedError:
    """Marker: the server consumed a bad line and owes an error reply for it."""


_OWED_ERROR = _OwedError()
_OWED_BOUND_ERROR = _OwedError()  # ... and the line was a bound SEND: discard the next


def _bound_shape(line: bytes) -> bool:
    """A SEND line with more than one argument, well formed or not, counts as bound (§9.9)."""
    return line[:5].upper() == b"SEND " and b" " in line[5:]


class Connection(ReplyReader):
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
        # A bound SEND was refused: the server drops the next line; the client reads
        # that line's 402 as its MESSAGE's reply (§9.9).
        self._discard_next = False
        self._following: Message | None = None  # client: the MESSAGE written behind it
        # Server side: DONE was read, so the WAIT's reply is owed now ...
        self._wait_done = False
        # ... or the server ended the wait itself: a DONE now in flight is dropped.
        self._stray_done = False

    @property
    def wait_done(self) -> bool:
        """Server side: the client sent DONE, so the pending WAIT is answered ``281`` now."""
        return self._wait_done

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
        waiting = self.state is State.WAITING and not self._wait_done
        if self._pending is not None and not waiting:
            return PAUSED
        sending = self.state is State.SENDING
        limit = message_line_limit(self.max_payload) if sending else self.max_line
        # A line to discard is dropped as it arrives (limit 0), never buffered.
        line = self._read_line(0 if self._discard_next else limit)
        if line is None:
            return NEED_DATA
        if isinstance(line, ConnectionClosed):
            return line
        if self._discard_next:
            self._discard_next = False
            self._pending = _OWED_ERROR
            return DISCARDED
        stray_done, self._stray_done = self._stray_done, False
        if waiting:
            return self._line_while_waiting(line)
        self._pending = _OWED_ERROR
        if isinstance(line, TooLong):
            if sending:
                raise RemoteProtocolError("payload too large", status.PAYLOAD_TOO_LARGE)
            raise RemoteProtocolError(
                f"line too long (limit {self.max_line} bytes)", status.LINE_TOO_LONG
            )
        if _bound_shape(line):
            self._pending = _OWED_BOUND_ERROR
        command = parse_command(line, max_payload=self.max_payload)
        if stray_done and isinstance(command, Done):
            self._pending = None
            return self._next_command()
        refused = rejection(self.state, type(command))
        if refused is not None:
            what = "log in first" if refused == status.LOGIN_REQUIRED else "not now"
            raise RemoteProtocolError(f"{command.verb}: {what}", refused)
        self._pending = command
        if isinstance(command, Wait):
            self.state = State.WAITING
            self._wait_done = False
        return command

    def _line_while_waiting(self, line: bytes | TooLong) -> Event:
        """In WAITING only DONE may come; anything else ends the wait with ``402``."""
        command = None if isinstance(line, TooLong) else _parse_quietly(line, self.max_payload)
        self._wait_done = True
        if isinstance(command, Done):
            return command
        raise RemoteProtocolError("only DONE may be sent while waiting", status.BAD_SEQUENCE)

    def _finish(self, command: Command, reply: Reply) -> Reply:
        self._pending = None
        if isinstance(command, Wait):
            server = self.role is Role.SERVER
            self._stray_done = server and not self._wait_done and isinstance(reply, WaitEnded)
            self._wait_done = False
        discarded, self._discard_next = self._discard_next and isinstance(command, Message), False
        self._apply(type(command), reply)
        if isinstance(command, BoundSend):
            self._after_bound_send(isinstance(reply, ErrorReply))
        elif discarded and not isinstance(reply, ErrorReply):
            self.state = State.CLOSED
            raise RemoteProtocolError("success for a MESSAGE the server discarded", fatal=True)
        return reply

    def _after_bound_send(self, refused: bool) -> None:
        """The MESSAGE behind a bound SEND: next to be answered, or (refused) discarded."""
        self._discard_next = refused and self.state is not State.CLOSED
        following, self._following = self._following, None
        if following is not None and self.state is not State.CLOSED:
            self._pending = following

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
            self._discard_next = pending is _OWED_BOUND_ERROR and self.state is not State.CLOSED
            return format_reply(reply)
        if not isinstance(reply, ErrorReply | REPLY_TYPE[type(pending)]):
            raise LocalProtocolError(f"{type(reply).__name__} does not answer {pending.verb}")
        self._finish(pending, reply)
        return format_reply(reply)

    def _send_command(self, command: Command) -> bytes:
        if self.state is State.GREETING:
            raise LocalProtocolError("wait for the server's greeting first")
        if isinstance(command, Done):
            if self.state is not State.WAITING or self._wait_done:
                raise LocalProtocolError("DONE ends a WAIT, and only once", status.BAD_SEQUENCE)
            self._wait_done = True
            return format_command(command)
        if self._pending is not None and self._may_follow(command):
            assert isinstance(command, Message)
            self._following = command
            return format_command(command)
        refused = rejection(self.state, type(command))
        if self._discard_next:
            if not isinstance(command, Message):
                raise LocalProtocolError("a refused bound SEND's MESSAGE must come next")
            refused = None  # written only to be discarded
        if self._pending is not None:
            waiting = self.state is State.WAITING
            if waiting:
                raise LocalProtocolError("only DONE may be sent while waiting", refused or 400)
            raise LocalProtocolError("wait for the reply to the last command first")
        if refused is not None:
            raise LocalProtocolError(
                f"{command.verb} is not allowed in state {self.state.value}", refused
            )
        self._pending = command
        if isinstance(command, Wait):
            self.state = State.WAITING
            self._wait_done = False
        return format_command(command)

    def _may_follow(self, command: Command) -> bool:
        """Client: a MESSAGE may be written behind a bound SEND before its reply."""
        pending = self._pending
        return (
            isinstance(pending, BoundSend)
            and isinstance(command, Message)
            and self._following is None
            and self._body is None
        )

    def _apply(self, command: type[Command] | None, reply: Reply) -> None:
        self.state = next_state(self.state, command, reply)
        if isinstance(reply, Authenticated):
            self.address = reply.address
        elif isinstance(reply, Capabilities | SendReady) and self.role is Role.CLIENT:
            self.max_payload = reply.max_payload
