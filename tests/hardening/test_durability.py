"""Durability: what got ``202`` survives SIGKILL and SIGTERM, exactly once.

Four clients (the real client library) send 1,000 messages in all, each with a unique
subject, while the server is killed with SIGKILL at three seeded random moments and
started again each time; the clients reconnect and go on. A send whose ``send()``
returned was acknowledged (``202``); one that raised may or may not have been stored.
After the last restart every acknowledged message must be retrievable exactly once, no
subject may appear twice, nothing may appear that was never sent, and SQLite's
``PRAGMA integrity_check`` must say ``ok``. A graceful SIGTERM in the middle of the
same kind of load must lose nothing acknowledged and exit 0.

``RUNE_DURABILITY_SEED=N`` replays a run's kill moments.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import sqlite3
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import pytest

from rune_proto.address import Address, parse_address
from rune_proto.client import ClientError, Session, connect
from rune_proto.keys import Identity
from tests.server_process import RuneServerProcess, ServerFactory

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]

CLIENTS = 4
TOTAL = 1000
KILLS = 3
RECONNECT_FOR = 30.0  # how long a client keeps trying to reach a restarted server


@dataclass
class Ledger:
    """Every send attempt, by subject, and which of them were acknowledged."""

    run: str
    next_number: int = 0
    attempted: dict[str, Address] = field(default_factory=dict)  # subject -> receiver
    acknowledged: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    def claim(self, limit: int) -> str | None:
        if self.next_number >= limit:
            return None
        self.next_number += 1
        return f"{self.run}-{self.next_number:05d}"


Users = list[tuple[Address, Identity]]


def seed_from_env() -> int:
    env = os.environ.get("RUNE_DURABILITY_SEED")
    return int(env) if env else random.SystemRandom().randrange(2**32)


def session_to(server: RuneServerProcess) -> AbstractAsyncContextManager[Session]:
    return connect(
        server.host,
        server.port,
        tls_fingerprint=server.tls_pin,
        server_key=server.server_key,
        timeout=5,
        ephemeral=True,
    )


async def register_users(server: RuneServerProcess, count: int) -> Users:
    users = []
    for i in range(count):
        identity = Identity.generate()
        address = parse_address(f"durable{i}-{os.getpid()}@{server.domain}")
        async with session_to(server) as session:
            assert await session.register(address, identity) == address
        users.append((address, identity))
    return users


async def sender(
    index: int,
    server: RuneServerProcess,
    users: Users,
    ledger: Ledger,
    limit: int,
    rng: random.Random,
    *,
    reconnect: bool,
) -> None:
    """Log in as user ``index`` and send until ``limit`` subjects are claimed.

    On any failure the attempt counts as not acknowledged (never retried: a retry could
    legitimately store a message twice), and the client reconnects if ``reconnect``.
    """
    address, identity = users[index]
    others = [user for i, user in enumerate(users) if i != index]
    deadline = time.monotonic() + RECONNECT_FOR
    while ledger.next_number < limit:
        subject: str | None = None
        try:
            async with session_to(server) as session:
                await session.login(address, identity)
                deadline = time.monotonic() + RECONNECT_FOR
                while (subject := ledger.claim(limit)) is not None:
                    receiver = rng.choice(others)[0]
                    ledger.attempted[subject] = receiver
                    await session.send(receiver, subject, f"body of {subject}")
                    ledger.acknowledged.add(subject)
                    subject = None
        except (ClientError, OSError) as exc:
            ledger.errors[type(exc).__name__] += 1
            if subject is not None:
                ledger.failed.add(subject)
            if not reconnect:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"client {index} could not reconnect") from exc
            await asyncio.sleep(0.05)


async def mailbox_subjects(server: RuneServerProcess, users: Users) -> collections.Counter[str]:
    """Every stored message of every user, opened and verified; subjects counted."""
    subjects: collections.Counter[str] = collections.Counter()
    for address, identity in users:
        async with session_to(server) as session:
            await session.login(address, identity)
            for info in await session.list():
                message = await session.retrieve(info.id)
                assert message.verified, message.verification.summary()
                assert message.body == f"body of {message.subject}"
                subjects[message.subject] += 1
    return subjects


def check_store(server: RuneServerProcess) -> None:
    db = sqlite3.connect(server.database)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()


def check_ledger(ledger: Ledger, subjects: collections.Counter[str]) -> int:
    """Acknowledged: exactly once. Unacknowledged: at most once. Unknown: never."""
    duplicated = {s: n for s, n in subjects.items() if n > 1}
    assert not duplicated, f"stored more than once: {sorted(duplicated)[:10]}"
    strangers = set(subjects) - set(ledger.attempted)
    assert not strangers, f"never sent: {sorted(strangers)[:10]}"
    lost = ledger.acknowledged - set(subjects)
    assert not lost, f"{len(lost)} acknowledged messages lost: {sorted(lost)[:10]}"
    return len(set(subjects) - ledger.acknowledged)  # stored although the 202 never came


async def test_acknowledged_messages_survive_sigkill(rune_server: ServerFactory) -> None:
    seed = seed_from_env()
    print(f"\ndurability seed {seed} (replay with RUNE_DURABILITY_SEED={seed})")
    rng = random.Random(seed)
    server = rune_server()
    users = await register_users(server, CLIENTS)
    ledger = Ledger(run=f"kill{seed}")
    # Kill once a random number of further sends has been acknowledged since the last
    # restart (so each kill hits a loaded server), plus a random instant more.
    gaps = [rng.randrange(50, (TOTAL - 100) // KILLS) for _ in range(KILLS)]
    pauses = [rng.uniform(0, 0.05) for _ in range(KILLS)]
    kills: list[tuple[int, int, float]] = []  # (acknowledged, attempted, restart seconds)

    async def killer() -> None:
        for gap, pause in zip(gaps, pauses, strict=True):
            mark = len(ledger.acknowledged) + gap
            while len(ledger.acknowledged) < mark:
                await asyncio.sleep(0.002)
            await asyncio.sleep(pause)
            assert server.process is not None
            server.process.send_signal(signal.SIGKILL)
            acknowledged, attempted = len(ledger.acknowledged), ledger.next_number
            await asyncio.to_thread(server.process.wait, 10)
            server.process = None
            started = time.monotonic()
            await asyncio.to_thread(server.start)
            kills.append((acknowledged, attempted, time.monotonic() - started))

    started = time.monotonic()
    clients = [
        sender(i, server, users, ledger, TOTAL, random.Random(f"{seed}/{i}"), reconnect=True)
        for i in range(CLIENTS)
    ]
    try:
        await asyncio.gather(killer(), *clients)
    except BaseException as exc:
        exc.add_note(f"durability seed {seed}; replay with RUNE_DURABILITY_SEED={seed}")
        raise
    elapsed = time.monotonic() - started
    assert len(kills) == KILLS

    subjects = await mailbox_subjects(server, users)
    stored_unacknowledged = check_ledger(ledger, subjects)
    assert server.stop() == 0
    check_store(server)
    print(
        f"{ledger.next_number} sends in {elapsed:.1f} s, SIGKILL {KILLS}× at "
        + ", ".join(f"{a} acknowledged/{n} attempted (restart {s:.1f} s)" for a, n, s in kills)
        + f"; {len(ledger.acknowledged)} acknowledged, all retrieved exactly once; "
        f"{len(ledger.failed)} sends failed, {stored_unacknowledged} of them stored anyway "
        f"(once); client errors {dict(ledger.errors)}; integrity_check ok"
    )
    assert len(ledger.acknowledged) + len(ledger.failed) == TOTAL


async def test_sigterm_under_load_loses_nothing_acknowledged(rune_server: ServerFactory) -> None:
    seed = seed_from_env()
    print(f"\ndurability seed {seed} (replay with RUNE_DURABILITY_SEED={seed})")
    rng = random.Random(seed)
    server = rune_server()
    users = await register_users(server, CLIENTS)
    ledger = Ledger(run=f"term{seed}")
    limit = 400
    mark = rng.randrange(50, 250)
    exit_codes: list[int] = []

    async def terminator() -> None:
        while len(ledger.acknowledged) < mark:
            await asyncio.sleep(0.002)
        await asyncio.sleep(rng.uniform(0, 0.05))
        exit_codes.append(await asyncio.to_thread(server.stop, signal.SIGTERM))

    clients = [
        sender(i, server, users, ledger, limit, random.Random(f"{seed}/{i}"), reconnect=False)
        for i in range(CLIENTS)
    ]
    await asyncio.gather(terminator(), *clients)
    assert exit_codes == [0], "rune-server did not exit 0 on SIGTERM"
    server.start()
    subjects = await mailbox_subjects(server, users)
    stored_unacknowledged = check_ledger(ledger, subjects)
    assert server.stop() == 0
    check_store(server)
    print(
        f"SIGTERM after {mark}+ acknowledgements: exit 0; {len(ledger.acknowledged)} "
        f"acknowledged, all retrieved exactly once; {len(ledger.failed)} sends cut, "
        f"{stored_unacknowledged} of them stored anyway; client errors {dict(ledger.errors)}"
    )
