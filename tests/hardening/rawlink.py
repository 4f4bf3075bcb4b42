"""Helpers for the hardening tests: a raw asyncio TLS line link to a real rune-server,
the server process's memory, and the reply bookkeeping the fuzzers share.

``RawLink`` is deliberately dumb: it writes whatever bytes it is given and reads reply
lines (a ``211``/``240`` reply with its body and final ``.``), so a test can send what
no well-behaved client would. Every read is bounded by a timeout: a server that does
not answer is a failure, not a hung test.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rune_proto import status
from rune_proto.connection import State

REPLY_TIMEOUT = 10.0  # the bound on every exchange: an answer or a close within this
READ_LIMIT = 4 * 1024 * 1024
MULTILINE = (b"211", b"240")


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Hang(AssertionError):
    """The server neither answered nor closed within the bound."""


@dataclass
class Reply:
    code: int
    line: bytes
    body: list[bytes] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.line[4:].decode("utf-8", "replace")


class RawLink:
    """One TLS connection that sends raw bytes and reads reply lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.greeting = b""

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = REPLY_TIMEOUT) -> RawLink:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=client_context(), limit=READ_LIMIT
            )
            link = cls(reader, writer)
            link.greeting = await reader.readline()
        return link

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self, timeout: float = REPLY_TIMEOUT) -> bytes:
        """One line without its ending; ``b""`` at EOF (or a reset)."""
        try:
            async with asyncio.timeout(timeout):
                raw = await self.reader.readline()
        except TimeoutError as exc:
            raise Hang(f"no line from the server within {timeout:g} s") from exc
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            return b""
        except ValueError as exc:  # the line exceeded READ_LIMIT
            raise AssertionError(f"the server sent an over-long line: {exc}") from exc
        if raw and not raw.endswith(b"\r\n"):
            return b""  # a partial line before EOF: the connection is gone
        return raw[:-2]

    async def reply(self, timeout: float = REPLY_TIMEOUT) -> Reply | None:
        """The next reply (with its body if multi-line), or None at EOF."""
        first = await self.line(timeout)
        if not first:
            return None
        if len(first) < 3 or not first[:3].isdigit() or (len(first) > 3 and first[3:4] != b" "):
            raise AssertionError(f"not a reply line: {first[:80]!r}")
        reply = Reply(int(first[:3]), first)
        if first[:3] in MULTILINE:
            while True:
                body = await self.line(timeout)
                if body == b".":
                    break
                if not body:
                    raise AssertionError("EOF inside a multi-line reply")
                reply.body.append(body)
        return reply

    async def request(self, data: bytes, timeout: float = REPLY_TIMEOUT) -> Reply | None:
        await self.write(data)
        return await self.reply(timeout)

    async def closed(self, timeout: float = REPLY_TIMEOUT) -> bool:
        """Whether the server closes (EOF) within ``timeout`` without sending more."""
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(65536)
        except TimeoutError:
            return False
        except (OSError, ssl.SSLError):
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.transport.abort()


# --- what the server may answer in each state (docs/protocol.md §12, §13) ---------------

# Success codes, and the states in which each may be the answer.
SUCCESS_STATES: dict[int, frozenset[State]] = {
    200: frozenset({State.IDLE, State.AUTHENTICATED, State.SENDING}),
    201: frozenset({State.AUTHENTICATED}),
    202: frozenset({State.SENDING}),
    205: frozenset({State.IDLE}),
    210: frozenset({State.AWAIT_ANSWER}),
    211: frozenset({State.IDLE, State.AUTHENTICATED}),
    220: frozenset({State.IDLE}),
    221: frozenset(State) - {State.GREETING, State.CLOSED},
    230: frozenset({State.AWAIT_PROOF}),
    240: frozenset({State.AUTHENTICATED}),
    250: frozenset({State.AUTHENTICATED}),
    260: frozenset({State.AUTHENTICATED}),
    270: frozenset({State.AUTHENTICATED}),
}
_LIVE = frozenset(State) - {State.GREETING, State.CLOSED}
_NOT_LOGGED_IN = frozenset({State.IDLE, State.AWAIT_ANSWER, State.AWAIT_PROOF})
# Errors, and the states in which each may be the answer. Codes produced while a line is
# parsed (400, 403, 407, 410, 413, 414) can come in any state: a line is parsed before
# its legality is judged (§13.2). 421 and 500 are never expected by the fuzzers.
ERROR_STATES: dict[int, frozenset[State]] = {
    400: _LIVE,
    401: _NOT_LOGGED_IN,
    402: _LIVE,
    403: _LIVE,
    404: frozenset({State.AUTHENTICATED}),
    405: frozenset({State.IDLE}),
    406: frozenset({State.IDLE}),
    407: _LIVE,
    408: frozenset({State.IDLE, State.AWAIT_ANSWER}),
    409: frozenset({State.IDLE, State.AWAIT_ANSWER}),
    410: _LIVE,
    411: frozenset({State.AWAIT_PROOF}),
    412: frozenset({State.SENDING}),
    413: _LIVE,
    414: _LIVE - {State.SENDING},
    415: frozenset({State.SENDING}),
    429: _LIVE,
}

_SUCCESS_NEXT = {
    205: State.AWAIT_ANSWER,
    210: State.IDLE,
    220: State.AWAIT_PROOF,
    230: State.AUTHENTICATED,
    201: State.SENDING,
    202: State.AUTHENTICATED,
}
_FALLBACK = {
    State.AWAIT_ANSWER: State.IDLE,
    State.AWAIT_PROOF: State.IDLE,
    State.SENDING: State.AUTHENTICATED,
}


def plausible(state: State, code: int) -> bool:
    """Whether the server may answer ``code`` to some line received in ``state``."""
    allowed = SUCCESS_STATES.get(code) or ERROR_STATES.get(code)
    return allowed is not None and state in allowed


def after(state: State, code: int) -> State:
    """The state after a reply with ``code`` (§13.1): replies alone determine it."""
    if code == 221 or (code >= 400 and status.closes(code)):
        return State.CLOSED
    if code >= 400:
        return _FALLBACK.get(state, state)
    if code == 200 and state is State.SENDING:
        return State.AUTHENTICATED
    return _SUCCESS_NEXT.get(code, state)


# --- the server process ------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/PID/status (VmRSS, VmHWM, …)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            values[key] = int(parts[0])
    return values


def rss_kib(pid: int) -> int:
    return proc_status(pid)["VmRSS"]


@contextmanager
def peak_rss(pid: int) -> Iterator[dict[str, int]]:
    """Samples the process's VmRSS every 5 ms; yields a dict filled with ``before``,
    ``peak`` and ``growth`` (KiB) once the block ends."""
    figures = {"before": rss_kib(pid), "peak": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            figures["peak"] = max(figures["peak"], rss_kib(pid))
            stop.wait(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield figures
    finally:
        stop.set()
        thread.join()
        figures["peak"] = max(figures["peak"], rss_kib(pid))
        figures["growth"] = figures["peak"] - figures["before"]
