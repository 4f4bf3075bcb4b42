"""docs/deploy/workers.toml: one box, every core, on PostgreSQL, as documented.

A WAIT held by one worker process wakes for mail stored through the other (the
PostgreSQL notifier). Which worker takes a connection is the kernel's choice, so the
test pauses one (SIGSTOP) while the other accepts, as tests/pg/test_workers.py does.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from rune_proto.address import parse_address
from rune_proto.client import connect
from rune_proto.keys import Identity
from tests.deploy import settings
from tests.pg.test_workers import _paused, _wait_for, _workers
from tests.postgres import PostgresServer
from tests.server_process import ServerFactory

DEADLINE = 30.0


async def test_a_wait_on_one_worker_wakes_for_mail_stored_through_the_other(
    rune_server: ServerFactory, postgres: PostgresServer
) -> None:
    server = rune_server(**settings("workers.toml", database=postgres.new_database()))
    assert server.config()["workers"] == 2
    _wait_for(lambda: len(_workers(server)) == 2, "two workers", server)
    first, second = _workers(server)
    pins: dict[str, Any] = {"tls_fingerprint": server.tls_pin, "server_key": server.server_key}
    alice, bob = (parse_address(f"{name}@{server.domain}") for name in ("alice", "bob"))
    keys = {alice: Identity.generate(), bob: Identity.generate()}
    invitations = {address: server.invite(str(address)) for address in keys}
    async with AsyncExitStack() as stack:
        with _paused(first):  # bob's connection (made now) is the second worker's
            waiting = await stack.enter_async_context(
                connect(server.host, server.port, ephemeral=True, **pins)
            )
            await waiting.register(bob, keys[bob], invitations[bob])
            await waiting.login(bob, keys[bob])
            assert waiting.can_wait
        wait = asyncio.create_task(waiting.wait(timeout=DEADLINE))
        with _paused(second):  # alice's is the first worker's
            async with connect(server.host, server.port, ephemeral=True, **pins) as sending:
                await sending.register(alice, keys[alice], invitations[alice])
                await sending.login(alice, keys[alice])
                await sending.send(bob, "hello", "from the other worker")
        assert await asyncio.wait_for(wait, DEADLINE + 10) is True
        assert len(await waiting.list()) == 1


async def test_the_password_can_live_in_pgpass_as_documented(
    rune_server: ServerFactory,
    postgres: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/deploy.md: the URL in config.toml carries no password; ~/.pgpass (here
    PGPASSFILE) does, for the store and the notices' connection alike."""
    parts = urlsplit(postgres.new_database())
    assert parts.password
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(
        f"{parts.hostname}:{parts.port}:{parts.path[1:]}:{parts.username}:{parts.password}\n"
    )
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    url = parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}").geturl()
    server = rune_server(**settings("node.toml", database=url))
    assert server.config()["database"] == url
    pins: dict[str, Any] = {"tls_fingerprint": server.tls_pin, "server_key": server.server_key}
    bob = parse_address(f"bob@{server.domain}")
    identity = Identity.generate()
    async with connect(server.host, server.port, ephemeral=True, **pins) as session:
        await session.register(bob, identity, server.invite(str(bob)))
        await session.login(bob, identity)
        assert await session.list() == []
