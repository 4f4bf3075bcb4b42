"""Readers and writers for ``rune/1`` lines, kept apart from state and from I/O.

A line is UTF-8 ending in CRLF (LF alone accepted); tokens are separated by exactly
one space; binary tokens are base64url without padding. A reply is ``NNN rest``;
``211`` and ``240`` are followed by body lines and end with a line holding ``.``.

This module cuts the byte stream into lines; :mod:`.wire_readers` turns lines into
events and :mod:`.wire_writers` events into lines. Everything is importable from here.
"""

from __future__ import annotations

from .wire_readers import (
    MULTILINE_CODES,
    REPLY_KEY_CACHE,
    expects_body,
    parse_command,
    parse_greeting,
    parse_reply,
    split_reply,
)
from .wire_writers import format_command, format_reply, message_line_limit, retrieved_pieces

__all__ = [
    "MULTILINE_CODES",
    "REPLY_KEY_CACHE",
    "LineBuffer",
    "TooLong",
    "expects_body",
    "format_command",
    "format_reply",
    "message_line_limit",
    "parse_command",
    "parse_greeting",
    "parse_reply",
    "retrieved_pieces",
    "split_reply",
]


class TooLong:
    """Marker returned by :class:`LineBuffer` for a line it discarded as oversized."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length


_COPY_ONCE = 64 * 1024  # see LineBuffer.next_line


class LineBuffer:
    """Splits a byte stream into lines, never holding more than ``limit`` bytes of one.

    An oversized line is read through and dropped as it arrives, then reported once
    as :class:`TooLong`, so a 100 MiB line costs no more memory than a short one.
    Like h11's receive buffer, it remembers where its last search for LF stopped.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._searched = 0
        self._discarding = 0  # bytes dropped of the current oversized line

    def feed(self, data: bytes) -> None:
        self._buf += data

    def __len__(self) -> int:
        return len(self._buf)

    def next_line(self, limit: int) -> bytes | TooLong | None:
        """The next complete line without its ending, a TooLong, or None for more data."""
        index = self._buf.find(b"\n", self._searched)
        if index < 0:
            # limit + 1: a line of exactly ``limit`` bytes may be waiting for the LF after its CR
            if self._discarding or len(self._buf) > limit + 1:
                self._discarding += len(self._buf)
                self._buf.clear()
                self._searched = 0
            else:
                self._searched = len(self._buf)
            return None
        if index < _COPY_ONCE:
            line = bytes(self._buf[:index])
        else:  # one copy of a long line, not two: a 22 MiB line would briefly take 3x
            with memoryview(self._buf) as view:
                line = bytes(view[:index])
        del self._buf[: index + 1]
        self._searched = 0
        if self._discarding:
            total = self._discarding + len(line)
            self._discarding = 0
            return TooLong(total)
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > limit:
            return TooLong(len(line))
        return line
