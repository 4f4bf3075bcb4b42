"""``Session.send`` pipelines SEND and MESSAGE when the receiver's key is pinned (§9.9).

Against a real rune-server over TLS. The writes are counted on the real transport: one
per message when pipelined, two in lock-step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from rune_proto.client import ContactBook, ContactKeyChanged, Session
from rune_proto.keys import Identity
from tests.client.test_client import logged_in, new_user

pytestmark = pytest.mark.asyncio


def count_writes(session: Session) -> Callable[[], int]:
    """How many times the session has written to its transport since this call."""
    writer: Any = session._writer
    real = writer.write
    count = 0

    def write(data: bytes) -> None:
        nonlocal count
        count += 1
        real(data)

    writer.write = write
    return lambda: count


async def test_a_pinned_receiver_gets_one_write_and_both_replies(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    contacts = ContactBook()
    async with logged_in(server, alice, alice_id, contacts=contacts) as session:
        assert session.pipelines_send
        writes = count_writes(session)
        await session.send(bob, "first", "pins bob's key from 201")
        assert writes() == 2  # SEND, then MESSAGE once 201 showed the key
        assert contacts.get(bob) is not None
        await session.send(bob, "second", "one round trip")
        assert writes() == 3  # SEND and MESSAGE together
        await session.noop()  # and the session goes on in step
    async with logged_in(server, bob, bob_id) as session:
        bodies = [(await session.retrieve(m.id)).body for m in await session.list()]
    assert sorted(bodies) == ["one round trip", "pins bob's key from 201"]


async def test_without_the_capability_the_client_stays_in_lock_step(rune_server: Any) -> None:
    """An older server announces no PIPELINE: a pinned receiver still gets SEND, 201, MESSAGE."""
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    contacts = ContactBook()
    contacts.check(bob, bob_id.public, "planted")
    async with logged_in(server, alice, alice_id, contacts=contacts) as session:
        assert session.capabilities is not None
        session.capabilities = dataclasses.replace(session.capabilities, pipeline=())
        writes = count_writes(session)
        await session.send(bob, "hi", "lock-step")
        assert writes() == 2


async def test_a_stale_pin_is_refused_by_the_server_and_reported(rune_server: Any) -> None:
    """The pinned key is not the receiver's: 417, and the client shows the key change."""
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    contacts = ContactBook()
    stale = Identity.generate().public
    contacts.check(bob, stale, "planted")
    async with logged_in(server, alice, alice_id, contacts=contacts) as session:
        with pytest.raises(ContactKeyChanged) as caught:
            await session.send(bob, "hello", "sealed to a stale key")
        assert caught.value.offered_key == bob_id.public
        for _ in range(5):  # 6 refusals: 12 failures, past the limit of 10, if the
            # discarded MESSAGEs counted too
            with pytest.raises(ContactKeyChanged):
                await session.send(bob, "hello", "again")
        await session.noop()
    async with logged_in(server, bob, bob_id) as session:
        assert await session.list() == []  # nothing sealed to the stale key was stored
