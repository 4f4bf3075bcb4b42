"""Listening sockets and the accept loop, one socket at a time.

asyncio's own server accepts up to a backlog's worth of sockets per wake-up and hands
each to a task a few loop turns later; under a flood hundreds of descriptors are open
before any connection rule has seen them, and the process runs out. Here every
accepted socket is judged (``on_socket``) before the next ``accept()``, so a socket the
rules turn away is closed at once, and the descriptor count never runs ahead of them.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

from .admission import RateLimitedLog

# Out of descriptors or kernel memory anyway (other files, another process): accepting
# pauses this long, as asyncio's own accept loop does.
ACCEPT_RETRY_DELAY = 1.0
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


async def open_listeners(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` resolves to."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in listeners:
            sock.close()
        raise
    return listeners


async def accept_forever(
    listener: socket.socket,
    on_socket: Callable[[socket.socket, object], None],
    warnings: RateLimitedLog,
) -> None:
    """Accept until cancelled; ``on_socket(conn, peer)`` runs before the next accept."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            conn, peer = await loop.sock_accept(listener)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            continue
        except OSError as exc:
            if listener.fileno() == -1:  # closed: the server is stopping
                return
            if exc.errno in _OUT_OF_RESOURCES:
                warnings.warning("socket.accept() out of system resource")
                await asyncio.sleep(ACCEPT_RETRY_DELAY)
            else:  # EPROTO, EPERM (a firewall) …: that one peer's problem
                warnings.warning(f"socket.accept() failed ({errno.errorcode.get(exc.errno or 0)})")
            continue
        on_socket(conn, peer)
