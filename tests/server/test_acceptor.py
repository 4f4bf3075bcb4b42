"""A connection that arrives in the very loop turn the server stops accepting.

Python 3.11's ``loop.sock_accept`` breaks here: when the listener turns readable in the
same turn as the accept is cancelled, asyncio's callback sets a result on the cancelled
future, which raises ``InvalidStateError`` into the loop's exception handler (the server
logs it as an internal error) and leaks the accepted socket. The server runs in the
test's event loop so the test can place the arrival and the stop in one turn: a
callback connects (loopback completes the TCP handshake in the kernel at once) and
schedules ``stop()`` for the next turn, ahead of the listener's readiness callback.
"""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rune_proto.server.admission import fit_limits
from rune_proto.server.config import DataDir, ServerConfig
from rune_proto.server.datadir import create_data_dir, load_identity, tls_context
from rune_proto.server.service import RuneServer
from rune_proto.server.session import Services
from rune_proto.server.store import SQLiteStore

PASSPHRASE = "acceptor test passphrase"
TURNS = 20  # loop turns after the stop in which a late callback would show itself


async def test_a_connection_arriving_as_the_server_stops_raises_nothing(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    data = DataDir(tmp_path / "data")
    config = ServerConfig(domain="example")
    create_data_dir(data, config, PASSPHRASE)
    store = await SQLiteStore.open(data.database)
    crypto = ThreadPoolExecutor(max_workers=1)
    services = Services(config, load_identity(data, PASSPHRASE), store, crypto)
    limits = fit_limits(
        config.max_connections,
        config.login_reserved_connections,
        config.max_anonymous_per_source,
        1024,
    )
    rune = RuneServer(services, tls_context(data, PASSPHRASE), limits)
    host, port = await rune.start("127.0.0.1", 0)
    clients: list[socket.socket] = []
    try:
        for _ in range(3):  # the listener waits in accept between rounds
            await asyncio.sleep(0)

        def arrive_and_stop() -> None:
            client = socket.create_connection((host, port), timeout=5)
            clients.append(client)
            loop.call_soon(rune.stop)

        loop.call_soon(arrive_and_stop)
        for _ in range(TURNS):
            await asyncio.sleep(0)
        await asyncio.wait_for(rune.wait_stopped(), timeout=15)
    finally:
        for client in clients:
            client.close()
        crypto.shutdown(wait=True)
        await store.close()
        loop.set_exception_handler(None)
    assert clients, "the client never connected"
    assert not problems, [str(p.get("exception") or p.get("message")) for p in problems]
