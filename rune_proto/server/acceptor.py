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
from typing import Any

from .admission import RateLimitedLog

# Out of descriptors or kernel memory anyway (other files, another process): accepting
# pauses this long, as asyncio's own accept loop does.
ACCEPT_RETRY_DELAY = 1.0
# Sockets accepted per wake-up. One, as asyncio's sock_accept did: a connection the rules
# turn away or displace closes its descriptor a loop turn later, so a batch can run past
# the descriptor budget before those closes land (EMFILE under a flood).
ACCEPT_BATCH = 1
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


async def open_listeners(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` resolves to."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    return _listen(infos, backlog)


def open_listeners_now(host: str, port: int, backlog: int) -> list[socket.socket]:
    """The same without an event loop (and its resolver thread): the supervisor's,
    before it forks the workers (workers.py)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return _listen(infos, backlog)


def _listen(infos: list[Any], backlog: int) -> list[socket.socket]:
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


class Acceptor:
    """Accepts on one listening socket from the event loop's reader callback.

    Not ``loop.sock_accept``: on Python 3.11, cancelling one whose socket just became
    readable makes asyncio's callback set a result on the cancelled future, which logs
    ``InvalidStateError`` and leaks the accepted socket, for a connection that arrives as
    the server stops. A reader callback has no future: stopping removes it, and a
    socket in the backlog then is never accepted.
    """

    def __init__(
        self,
        listener: socket.socket,
        on_socket: Callable[[socket.socket, object], None],
        warnings: RateLimitedLog,
    ) -> None:
        self._listener = listener
        self._on_socket = on_socket
        self._warnings = warnings
        self._loop = asyncio.get_running_loop()
        self._fd = listener.fileno()
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop.add_reader(self._fd, self._ready)

    def _ready(self) -> None:
        """Accept what is waiting, each judged before the next ``accept()``; at most
        ACCEPT_BATCH a wake-up, so closes and other connections get the loop in between."""
        for _ in range(ACCEPT_BATCH):
            try:
                conn, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._warnings.warning("socket.accept() out of system resource")
                    self._pause()
                    return
                # EPROTO, EPERM (a firewall) …: that one peer's problem
                self._warnings.warning(
                    f"socket.accept() failed ({errno.errorcode.get(exc.errno or 0)})"
                )
                continue
            conn.setblocking(False)
            self._on_socket(conn, peer)
            if self._closed:  # on_socket may stop the server
                return

    def _pause(self) -> None:
        self._loop.remove_reader(self._fd)
        self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self._loop.add_reader(self._fd, self._ready)

    def close(self) -> None:
        """Stop accepting (before the listening socket is closed: its number is reused)."""
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._loop.remove_reader(self._fd)
