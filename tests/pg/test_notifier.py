"""New-mail notices across nodes on PostgreSQL LISTEN/NOTIFY (rune_proto/server/pg/notifier.py).

Two notifiers on one database stand for two nodes: each has its own listening
connection to the private PostgreSQL of tests/postgres.py, nothing is mocked.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from rune_proto.keys import Identity
from rune_proto.server.database import StoreError
from rune_proto.server.pg.notifier import CHANNEL, PgNotifier, notice_secret
from tests.postgres import PostgresServer

DEADLINE = 30.0  # generous: 2 shared CPUs, other helpers' tests running too
ALICE, BOB, CAROL = "alice@example", "bob@example", "carol@example"


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for ``condition``; fail with ``what`` if it never holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Wakes:
    """Counts wake-ups per address, as the sessions' callbacks would be called."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()

    def of(self, address: str) -> Callable[[], None]:
        def wake() -> None:
            self.count[address] += 1

        return wake


@pytest.fixture
async def nodes(postgres: PostgresServer) -> AsyncIterator[tuple[PgNotifier, PgNotifier, str]]:
    """Two nodes' notifiers on one fresh database, sharing the identity's secret."""
    dsn = postgres.new_database()
    secret = notice_secret(Identity.generate())
    first, second = PgNotifier(dsn, secret), PgNotifier(dsn, secret)
    await first.start()
    await second.start()
    try:
        yield first, second, dsn
    finally:
        await first.close()
        await second.close()


async def test_mail_stored_on_one_node_wakes_the_waiter_on_another(
    nodes: tuple[PgNotifier, PgNotifier, str],
) -> None:
    one, two, _ = nodes
    wakes = Wakes()
    one.subscribe(ALICE, wakes.of("alice on 1"))
    one.subscribe(CAROL, wakes.of("carol on 1"))
    two.subscribe(ALICE, wakes.of("alice on 2"))
    two.subscribe(BOB, wakes.of("bob on 2"))

    two.publish(ALICE)
    assert wakes.count["alice on 2"] == 1  # its own node: at once, no round trip
    await until(lambda: wakes.count["alice on 1"] == 1, "node 1 to hear of node 2's mail")

    # Node 2's own notice has come back to it by the time a later one from node 1 has
    # (one listener gets notices in commit order): it must not wake alice twice there.
    one.publish(BOB)
    await until(lambda: wakes.count["bob on 2"] == 1, "node 2 to hear of node 1's mail")
    assert wakes.count == Counter({"alice on 1": 1, "alice on 2": 1, "bob on 2": 1})


async def test_an_unsubscribed_session_is_not_woken(
    nodes: tuple[PgNotifier, PgNotifier, str],
) -> None:
    one, two, _ = nodes
    wakes = Wakes()
    unsubscribe = one.subscribe(ALICE, wakes.of("gone"))
    one.subscribe(BOB, wakes.of("bob"))
    unsubscribe()
    assert len(one) == 1
    two.publish(ALICE)
    two.publish(BOB)
    await until(lambda: wakes.count["bob"] == 1, "node 1 to hear of bob's mail")
    assert wakes.count["gone"] == 0


async def test_the_notice_names_no_address(nodes: tuple[PgNotifier, PgNotifier, str]) -> None:
    """What passes through pg_notify (and its queue files) is a keyed digest and a node tag."""
    one, _, dsn = nodes
    heard: list[str] = []
    spy = await asyncpg.connect(dsn)
    try:
        await spy.add_listener(CHANNEL, lambda _c, _p, _ch, payload: heard.append(str(payload)))
        one.publish(ALICE)
        one.publish(BOB)
        await until(lambda: len(heard) == 2, "the two notices on the wire")
    finally:
        await spy.close()
    for payload in heard:
        assert re.fullmatch(r"[0-9a-f]{8}\.[0-9a-f]{32}", payload), payload
        for leak in ("alice", "bob", "example", "@"):
            assert leak not in payload
    digests = {payload.split(".")[1] for payload in heard}
    assert digests == {one.digest(ALICE), one.digest(BOB)}
    # Keyed: another server's (another identity's) digest of the same address differs.
    stranger = PgNotifier(dsn, notice_secret(Identity.generate()))
    assert stranger.digest(ALICE) not in digests


async def test_a_dropped_listening_link_reconnects_and_wakes_every_waiter_once(
    nodes: tuple[PgNotifier, PgNotifier, str], postgres: PostgresServer
) -> None:
    one, two, dsn = nodes
    wakes = Wakes()
    one.subscribe(ALICE, wakes.of("alice"))
    one.subscribe(BOB, wakes.of("bob"))
    two.subscribe(CAROL, wakes.of("carol on 2"))
    pid = one.backend_pid
    assert pid is not None
    ended = postgres.psql(f"SELECT pg_terminate_backend({pid})", dsn.rsplit("/", 1)[1])
    assert ended.strip() == "t"
    # Published while node 1's link may be down: kept, and sent once it is back.
    one.publish(CAROL)
    await until(lambda: one.generation == 2, "node 1 to listen again")
    # Notices sent while it was deaf are lost, so every waiter re-checks once.
    await until(lambda: wakes.count["alice"] == 1 and wakes.count["bob"] == 1, "the wake-up")
    await until(lambda: wakes.count["carol on 2"] == 1, "node 2 to hear node 1's notice")
    assert one.backend_pid not in (None, pid)
    # And it hears the other node again.
    two.publish(ALICE)
    await until(lambda: wakes.count["alice"] == 2, "node 1 to hear node 2 after reconnecting")
    assert wakes.count["bob"] == 1


async def test_close_sends_what_is_pending(postgres: PostgresServer) -> None:
    dsn = postgres.new_database()
    secret = notice_secret(Identity.generate())
    listener, leaving = PgNotifier(dsn, secret), PgNotifier(dsn, secret)
    await listener.start()
    await leaving.start()
    wakes = Wakes()
    listener.subscribe(ALICE, wakes.of("alice"))
    try:
        leaving.publish(ALICE)
        await leaving.close()
        await until(lambda: wakes.count["alice"] == 1, "the last notice of a closing node")
        leaving.publish(ALICE)  # after close: its own waiters only, and no error
    finally:
        await listener.close()


async def test_a_notifier_that_cannot_connect_says_so_in_one_line() -> None:
    """No traceback, no password: serve turns a StoreError into one line and exit 2."""
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://rune:hunter2secret@127.0.0.1:{port}/rune"
    notifier = PgNotifier(url, notice_secret(Identity.generate()))
    with pytest.raises(StoreError) as caught:
        await notifier.start()
    message = str(caught.value)
    assert "hunter2secret" not in message and "rune:***@" in message
    assert "\n" not in message
