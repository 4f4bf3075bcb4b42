"""The client's half of :class:`~rune_proto.connection.Connection`: reading replies.

Kept apart so each half reads on a page or two. Every protocol error from the server
is fatal here: a client cannot resynchronise with a server that broke the framing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import status
from .errors import RemoteProtocolError
from .events import NEED_DATA, Command, ConnectionClosed, ErrorReply, Event, Reply, Retrieve
from .states import State
from .wire import (
    TooLong,
    expects_body,
    message_line_limit,
    parse_greeting,
    parse_reply,
    split_reply,
)

MAX_BODY_LINES = 1_000_000
MAX_BODY_BYTES = 64 * 1024 * 1024  # a hostile server cannot make a client hold more
_REPLY_LINE_LIMIT = 16 * 1024  # longest non-RETRIEVE reply (201 with two keys) is ~3.4 KiB


def _refusal(line: bytes) -> ErrorReply | None:
    """A closing status sent instead of the greeting (``421 too many connections``)."""
    try:
        code, rest = split_reply(line)
    except RemoteProtocolError:
        return None
    return ErrorReply(code, rest) if code >= 400 and status.closes(code) else None


class ReplyReader:
    """Reads the server's lines into replies for the command pending (client role)."""

    state: State
    max_line: int
    max_payload: int
    _pending: object
    _body: tuple[int, str, list[str]] | None
    _body_bytes: int

    if TYPE_CHECKING:

        def _read_line(self, limit: int) -> bytes | TooLong | ConnectionClosed | None: ...

        def _finish(self, command: Command, reply: Reply) -> Reply: ...

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
