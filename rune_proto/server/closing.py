"""How a server connection ends: refused before the greeting, or closed after linger.

Bounded in time either way, so a peer that never reads or never closes cannot hold
the server (see :func:`_linger` for why it reads before closing).
"""

from __future__ import annotations

import asyncio

from .. import status
from ..wire import format_reply
from .session import error

_DRAIN_CHUNK = 64 * 1024  # bytes per read while lingering
CLOSE_TIMEOUT = 5.0  # for the peer's TLS close_notify, then the socket is just dropped
SHUTDOWN_CLOSE_TIMEOUT = 1.0  # the same while stopping, so exit is not held up by peers
# Before closing, what the peer still sends is read and dropped until it pauses this
# long, or for LINGER_MAX at most (see _linger).
LINGER_QUIET = 0.2
LINGER_MAX = 2.0


async def refuse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reason: str, stopping: bool
) -> None:
    """Sent in place of the greeting (as SMTP does), so the client is told, not left hanging."""
    writer.write(format_reply(error(status.CLOSING, reason)))
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.drain()
    except (OSError, TimeoutError):
        pass
    await close_link(reader, writer, stopping)


async def _linger(reader: asyncio.StreamReader, limit: float) -> None:
    """Read and drop what the peer still sends: until EOF, a pause, or ``limit`` seconds.

    Closing a socket that holds unread received data makes the kernel send a TCP reset,
    and a reset makes the peer's kernel discard what it received but has not read yet:
    our last replies. A client that pipelined commands past a closing one (a 429, a
    412, a QUIT) would lose them, even the ``202`` of a MESSAGE that was stored.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while (remaining := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(min(LINGER_QUIET, remaining)):
                if not await reader.read(_DRAIN_CHUNK):
                    return
        except (OSError, TimeoutError):
            return


async def close_link(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stopping: bool
) -> None:
    """Linger (see :func:`_linger`), then close TLS and the socket, bounded in time."""
    if not writer.transport.is_closing():
        await _linger(reader, min(LINGER_MAX, SHUTDOWN_CLOSE_TIMEOUT) if stopping else LINGER_MAX)
    timeout = SHUTDOWN_CLOSE_TIMEOUT if stopping else CLOSE_TIMEOUT
    writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()
