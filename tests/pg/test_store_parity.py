"""The store's behaviours, on SQLite and on PostgreSQL alike (``backend`` is both).

The SQLite versions of these live in tests/server/test_store_group_commit.py and the
server-level tests; here they run at the Store interface against each store.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from rune_proto.server.database import Invitation, Outcome
from rune_proto.server.limits import Charge, Kind, LimitReached

from .stores import Backend, Clock, opened, wait_for

BLOB = b"\x01" * 1000
KEY = b"k" * 32


def _blob(i: int, size: int = 20_000) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (size // 32) + bytes([i % 256])


async def test_concurrent_messages_are_all_stored_under_distinct_ids(backend: Backend) -> None:
    async with opened(backend) as store:
        blobs = [_blob(i) for i in range(40)]
        ids = await asyncio.gather(
            *(store.add_message(f"user{i % 5}@x.example", b, 10**7) for i, b in enumerate(blobs))
        )
        assert all(ids) and len(set(ids)) == 40
        for i, (message_id, blob) in enumerate(zip(ids, blobs, strict=True)):
            assert message_id is not None
            assert await store.message(f"user{i % 5}@x.example", message_id) == blob
            assert await store.message_size(f"user{i % 5}@x.example", message_id) == len(blob)
        listed = await store.list_messages("user0@x.example")
        assert [i for i, _ in listed] == sorted(i for i, _ in listed)  # by id, not arrival
        assert len(listed) == 8 and {size for _, size in listed} == {len(blobs[0])}
        assert await store.totals() == (0, 40, sum(len(b) for b in blobs))
    assert await backend.scalar("SELECT COUNT(*) FROM mailbox") == 40


async def test_each_answer_comes_after_its_commit(backend: Backend) -> None:
    async with opened(backend) as store:
        for i in range(3):
            await store.add_message("alice@x.example", BLOB, 10**6)
            # visible to another connection: committed
            assert await backend.scalar("SELECT COUNT(*) FROM mailbox") == i + 1


async def test_quota_counts_earlier_messages_of_the_same_batch(backend: Backend) -> None:
    async with opened(backend) as store:
        quota = 3 * len(BLOB)
        ids = await asyncio.gather(
            *(store.add_message("bob@x.example", BLOB, quota) for _ in range(5))
        )
        assert sum(i is not None for i in ids) == 3
        assert await store.add_message("bob@x.example", BLOB, quota) is None
        assert await store.add_message("carol@x.example", BLOB, quota) is not None


async def test_usage_is_kept_across_restarts_and_a_delete_frees_it(backend: Backend) -> None:
    async with opened(backend) as store:
        kept = await store.add_message("dave@x.example", BLOB, 10**6)
        await store.add_message("dave@x.example", BLOB, 10**6)
    async with opened(backend) as store:
        quota = 3 * len(BLOB)
        assert await store.add_message("dave@x.example", BLOB, quota) is not None
        assert await store.add_message("dave@x.example", BLOB, quota) is None
        assert kept is not None and await store.delete_message("dave@x.example", kept)
        assert not await store.delete_message("dave@x.example", kept)
        assert await store.message("dave@x.example", kept) is None
        assert await store.add_message("dave@x.example", BLOB, quota) is not None
        assert await store.add_message("dave@x.example", BLOB, quota) is None


async def test_another_mailbox_neither_reads_nor_deletes(backend: Backend) -> None:
    async with opened(backend) as store:
        message_id = await store.add_message("erin@x.example", BLOB, 10**6)
        assert message_id is not None
        assert await store.message("mallory@x.example", message_id) is None
        assert await store.message_size("mallory@x.example", message_id) is None
        assert not await store.delete_message("mallory@x.example", message_id)
        assert await store.message("erin@x.example", message_id) == BLOB


async def test_a_cancelled_caller_does_not_disturb_the_others(backend: Backend) -> None:
    async with opened(backend) as store:
        tasks = [
            asyncio.create_task(store.add_message("gina@x.example", BLOB, 10**6)) for _ in range(4)
        ]
        await asyncio.sleep(0)
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[1], asyncio.CancelledError)
        assert all(isinstance(d, str) for i, d in enumerate(done) if i != 1)


async def test_blobs_survive_the_order_pass_after_deletes(backend: Backend) -> None:
    """Holes are filled and new chunks shuffled; every blob still reads back whole."""
    async with opened(backend, order_window=0.01) as store:
        blobs = {i: _blob(i, 10_000 + 3000 * i) for i in range(12)}
        ids = {i: await store.add_message("hank@x.example", b, 10**7) for i, b in blobs.items()}
        for i in range(0, 12, 3):
            assert await store.delete_message("hank@x.example", ids[i] or "")
        passes = store.passes
        await wait_for(lambda: store.passes > passes)
        for i, blob in blobs.items():
            assert await store.message("hank@x.example", ids[i] or "") == (
                None if i % 3 == 0 else blob
            )
    assert await backend.scalar("SELECT COUNT(*) FROM holes") == 0


async def test_registration_taken_and_key_lookup(backend: Backend) -> None:
    async with opened(backend) as store:
        assert await store.registrable("ivy@x.example")
        assert await store.public_key("ivy@x.example") is None
        assert await store.create_account("ivy@x.example", KEY, None, 0) is Outcome.CREATED
        assert await store.create_account("ivy@x.example", KEY, None, 0) is Outcome.TAKEN
        assert await store.public_key("ivy@x.example") == KEY
        assert await store.public_key("ivx@x.example") is None  # sorts before
        assert await store.public_key("zed@x.example") is None  # sorts after
        assert not await store.registrable("ivy@x.example")
        assert (await store.totals())[0] == 1


async def test_invitations_are_bound_expire_and_work_once(backend: Backend) -> None:
    token = hashlib.sha256(b"token").digest()
    await backend.add_invitation(token, "jo@x.example", 1000)
    async with opened(backend) as store:
        assert await store.invitation(token, "jo@x.example", 10) is Invitation.VALID
        assert await store.invitation(token, "al@x.example", 10) is Invitation.INVALID
        assert await store.invitation(token, "jo@x.example", 1000) is Invitation.EXPIRED
        assert (
            await store.create_account("al@x.example", KEY, token, 10) is Outcome.INVITATION_INVALID
        )
        assert (
            await store.create_account("jo@x.example", KEY, token, 1000)
            is Outcome.INVITATION_EXPIRED
        )
        assert await store.create_account("jo@x.example", KEY, token, 10) is Outcome.CREATED
        assert await store.invitation(token, "jo@x.example", 10) is Invitation.INVALID


def _charge(kind: Kind, subject: bytes, limit: int, ends: int) -> Charge:
    return Charge(kind, hashlib.blake2b(subject, digest_size=16).digest(), limit, ends)


async def test_limits_are_counted_with_the_message_and_reset_by_a_new_window(
    backend: Backend,
) -> None:
    clock = Clock()
    async with opened(backend, clock=clock) as store:
        first = [_charge(Kind.SEND, b"kim", 2, 600)]
        for _ in range(2):
            assert await store.add_message("lee@x.example", BLOB, 10**6, first) is not None
        with pytest.raises(LimitReached) as over:
            await store.add_message("lee@x.example", BLOB, 10**6, first)
        assert over.value.kind is Kind.SEND
        # over quota: refused before the charge, which is not counted
        assert await store.add_message("lee@x.example", BLOB, 1, first) is None
        later = [_charge(Kind.SEND, b"kim", 2, 1200)]  # the next window
        assert await store.add_message("lee@x.example", BLOB, 10**6, later) is not None
        assert len(await store.list_messages("lee@x.example")) == 3


async def test_the_registration_limit_refuses_and_registers_nobody(backend: Backend) -> None:
    async with opened(backend) as store:
        charge = [_charge(Kind.REGISTER, b"192.0.2.1", 1, 600)]
        assert await store.create_account("mo@x.example", KEY, None, 0, charge) is Outcome.CREATED
        assert (
            await store.create_account("ned@x.example", KEY, None, 0, charge)
            is Outcome.REGISTRATION_LIMIT
        )
        assert await store.registrable("ned@x.example")
        # a taken address is answered TAKEN, before the limit
        assert await store.create_account("mo@x.example", KEY, None, 0, charge) is Outcome.TAKEN


async def test_holds_block_and_reserve(backend: Backend) -> None:
    async with opened(backend) as store:
        assert await store.create_account("oz@x.example", KEY, None, 0) is Outcome.CREATED
        before = await store.holds_generation()
        assert not await store.blocked("oz@x.example")
        await backend.block("oz@x.example")
        assert await store.blocked("oz@x.example")
        assert await store.held() == {"oz@x.example": "blocked"}
        assert await store.holds_generation() != before


async def test_messages_expire_after_the_maximum_age(backend: Backend) -> None:
    day = 86400.0
    clock = Clock(now=100 * day)
    async with opened(backend, clock=clock) as store:
        old = await store.add_message("pat@x.example", BLOB, 10**6)
        assert await store.expire(day) == 0  # turning it on only starts counting
        clock.now += day
        assert await store.expire(day) == 0
        young = await store.add_message("pat@x.example", BLOB, 10**6)
        clock.now += day
        assert await store.expire(day) == 1
        listed = [i for i, _ in await store.list_messages("pat@x.example")]
        assert old not in listed and listed == [young]
        assert (await store.totals())[1:] == (1, len(BLOB))
        assert await store.expire(0) == 0  # off
