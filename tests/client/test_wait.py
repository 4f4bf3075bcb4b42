"""The client library's wait: ``Session.wait`` and ``wait_for_mail`` against a real
server over TLS, with WAIT and (``wait_lifetime = 0``) without it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rune_proto.client import ClientError
from tests.client.test_client import logged_in, new_user

pytestmark = pytest.mark.asyncio

DEADLINE = 20.0  # generous: the machine is shared; the bench measures the real latency


async def _send(server: Any, sender: Any, to: Any) -> None:
    async with logged_in(server, *sender) as session:
        await session.send(to[0], "ping", "are you there?")


async def test_wait_returns_when_mail_is_stored(rune_server: Any) -> None:
    server = rune_server("free")
    alice, bob = await new_user(server, "alice"), await new_user(server, "bob")
    async with logged_in(server, *bob) as waiting:
        assert waiting.can_wait
        task = asyncio.create_task(waiting.wait())
        await _send(server, alice, bob)
        assert await asyncio.wait_for(task, DEADLINE) is True
        assert len(await waiting.list()) == 1


async def test_a_timed_out_wait_ends_with_done_and_the_session_goes_on(rune_server: Any) -> None:
    server = rune_server("free")
    bob = await new_user(server, "bob")
    async with logged_in(server, *bob) as waiting:
        assert await waiting.wait(timeout=0.2) is False
        await waiting.noop()
        assert await waiting.list() == []


async def test_wait_for_mail_yields_at_once_then_on_each_message(rune_server: Any) -> None:
    server = rune_server("free")
    alice, bob = await new_user(server, "alice"), await new_user(server, "bob")
    async with logged_in(server, *bob) as waiting:
        notices = aiter(waiting.wait_for_mail())
        await asyncio.wait_for(anext(notices), DEADLINE)  # the catch-up
        pending = asyncio.ensure_future(anext(notices))
        await _send(server, alice, bob)
        await asyncio.wait_for(pending, DEADLINE)


async def test_without_wait_it_falls_back_to_polling(rune_server: Any) -> None:
    server = rune_server("free", wait_lifetime=0)
    alice, bob = await new_user(server, "alice"), await new_user(server, "bob")
    async with logged_in(server, *bob) as waiting:
        assert not waiting.can_wait
        with pytest.raises(ClientError, match="does not offer WAIT"):
            await waiting.wait()
        notices = aiter(waiting.wait_for_mail(poll_seconds=0.2))
        await asyncio.wait_for(anext(notices), DEADLINE)
        pending = asyncio.ensure_future(anext(notices))
        await _send(server, alice, bob)
        await asyncio.wait_for(pending, DEADLINE)
