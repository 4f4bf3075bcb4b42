"""docs/deploy/one-box.toml: a one-box server with the documented settings works."""

from __future__ import annotations

import asyncio
from typing import Any

from rune_proto.address import parse_address
from rune_proto.client import connect
from rune_proto.keys import Identity
from tests.deploy import settings
from tests.server_process import ServerFactory

DEADLINE = 30.0


async def test_a_one_box_server_with_the_documented_settings(rune_server: ServerFactory) -> None:
    values = settings("one-box.toml")
    server = rune_server(**values)
    assert server.config()["registration"] == "invite"
    pins: dict[str, Any] = {"tls_fingerprint": server.tls_pin, "server_key": server.server_key}
    alice, bob = (parse_address(f"{name}@{server.domain}") for name in ("alice", "bob"))
    keys = {alice: Identity.generate(), bob: Identity.generate()}
    async with connect(server.host, server.port, ephemeral=True, **pins) as session:
        for address, identity in keys.items():
            await session.register(address, identity, server.invite(str(address)))
    async with (
        connect(server.host, server.port, ephemeral=True, **pins) as waiting,
        connect(server.host, server.port, ephemeral=True, **pins) as sending,
    ):
        await waiting.login(bob, keys[bob])
        assert waiting.can_wait
        wait = asyncio.create_task(waiting.wait(timeout=DEADLINE))
        await sending.login(alice, keys[alice])
        await sending.send(bob, "hello", "one box")
        assert await asyncio.wait_for(wait, DEADLINE + 10) is True
