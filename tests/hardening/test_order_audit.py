"""A copy of the server's files shows no arrival order (issue 12 §1; docs/server.md,
"What a copy of the data directory reveals").

As a thief would: 40 accounts register, 300 messages go back and forth between 20
pairs of them in a known order, then the data directory is copied while the server
runs, once the order pass (``order_window`` after the last message) has run. Where
each message's blob, each mailbox row and each account sits in the copied files must
not follow the order they arrived in: Kendall's τ between position and order must be
indistinguishable from a random order (p ≥ 0.001). The same statistics on a store
whose pass has not run show the order plainly (τ near 1): the control that the
thief's method works.

The same audit runs against the PostgreSQL store (a rune-server on a cluster of its
own, with ``wal_recycle = off`` as docs/server.md asks): the thief copies the whole
cluster data directory, ``pg_wal`` included, and measures with tests/pg/pgthief.py
(the place in the file *and* the xmin of each row). Chunks are sealed at rest there,
so the bar is higher: not one piece of any blob may be found at all.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rune_proto.address import Address, random_address
from rune_proto.client.contacts import ContactBook, ReplayLog
from rune_proto.client.messages import open_retrieved
from rune_proto.envelope import Content
from rune_proto.events import Listing, ListMessages, Registered, Retrieve, Retrieved
from rune_proto.keys import Identity
from rune_proto.server.pg import ordering
from rune_proto.server.store import Database
from tests.hardening.thief import Order, find_all, order_of
from tests.pg.pgthief import Hit, find, read_copy
from tests.postgres import PostgresServer, postgres_cluster
from tests.server.wire_client import WireClient
from tests.server_process import RuneServerProcess, server_factory

USERS = 40
MESSAGES = 300
WINDOW = 1.0  # seconds: the order_window the server runs with here
PASS_LINE = re.compile(r"order pass: ")


@dataclass
class Delivery:
    index: int  # arrival order
    sender: Address
    receiver: Address
    stored_id: str = ""
    blob: bytes = b""


def wait_for(condition: object, what: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def pg_settled(cluster: PostgresServer, server: RuneServerProcess) -> bool:
    """A pass began after the last change (``pending`` is clear) and has ended (its
    lock is free, nothing is left to move or rewrite)."""
    assert server.database_url is not None
    lock = ordering.ORDER_LOCK
    state = cluster.psql(
        f"""SELECT (SELECT value FROM layout WHERE name = 'pending') = 0
               AND (SELECT value FROM layout WHERE name = 'rewrite') = 0
               AND NOT EXISTS (SELECT 1 FROM fresh)
               AND pg_try_advisory_lock({lock}) AND pg_advisory_unlock({lock})""",
        server.database_url.rsplit("/", 1)[1],
    )
    return state.strip() == "t"


def passes(server: RuneServerProcess) -> int:
    return len(PASS_LINE.findall(server.stderr_text()))


@contextlib.contextmanager
def own_cluster(kind: str) -> Iterator[PostgresServer | None]:
    """For PostgreSQL, a cluster whose data directory holds nothing but this test's."""
    if kind == "sqlite":
        yield None
        return
    with postgres_cluster() as cluster:
        cluster.psql("ALTER SYSTEM SET wal_recycle = off")
        cluster.psql("SELECT pg_reload_conf()")
        yield cluster


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def workload(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Path, list[Delivery], list[Identity]]]:
    base = tmp_path_factory.mktemp("order")
    with (
        own_cluster(request.param) as cluster,
        server_factory(base, cluster.new_database if cluster else None) as factory,
    ):
        server = factory(order_window=WINDOW)
        key = server.server_public_key
        rng = random.Random(12)
        users = [(random_address(server.domain), Identity.generate()) for _ in range(USERS)]
        for address, identity in users:  # registration order = list order
            with WireClient.to(server) as client:
                assert isinstance(client.register(address, identity), Registered)
        pairs = [(users[2 * i], users[2 * i + 1]) for i in range(USERS // 2)]
        clients: dict[Address, WireClient] = {}
        deliveries: list[Delivery] = []
        turn = [0] * len(pairs)
        try:
            for index in range(MESSAGES):  # ping-pong within randomly chosen pairs
                pair = rng.randrange(len(pairs))
                (sender, sender_id), (receiver, _) = pairs[pair][
                    :: 1 if turn[pair] % 2 == 0 else -1
                ]
                turn[pair] += 1
                if sender not in clients:
                    clients[sender] = WireClient.to(server)
                    clients[sender].login(sender, sender_id, key)
                content = Content(f"ORDER-{index}", f"message {index} {uuid.uuid4().hex}")
                reply = clients[sender].send_message(sender, sender_id, receiver, content)
                assert getattr(reply, "code", None) == 202, reply
                deliveries.append(Delivery(index, sender, receiver))
            done = passes(server)
        finally:
            for client in clients.values():
                client.close()
        if cluster is None:
            # Every pass counted in `done` ended before the last commit ran (one store thread).
            wait_for(lambda: passes(server) > done, "the order pass after the last message")
        else:  # passes run beside commits: wait for one that began after the last
            wait_for(lambda: pg_settled(cluster, server), "the order pass after the last message")
        copy = base / "copy"
        if cluster is not None:  # the cluster's whole data directory, pg_wal included
            shutil.copytree(cluster.data, copy, symlinks=True)
        else:
            copy.mkdir()
            for path in server.data_dir.iterdir():
                if path.is_file() and path.name.startswith("rune.db"):
                    shutil.copy2(path, copy / path.name)
        # Which stored blob is which message: only its receiver can tell (decrypt).
        for address, identity in users:
            mine = {d.index: d for d in deliveries if d.receiver == address}
            with WireClient.to(server) as client:
                client.login(address, identity, key)
                listing = client.request(ListMessages())
                assert isinstance(listing, Listing) and len(listing.entries) == len(mine)
                for stored_id, _ in listing.entries:
                    reply = client.request(Retrieve(stored_id))
                    assert isinstance(reply, Retrieved)
                    opened = open_retrieved(
                        stored_id,
                        reply.blob,
                        identity=identity,
                        address=address,
                        server_key=key,
                        contacts=ContactBook(),
                        replays=ReplayLog(),
                    )
                    delivery = mine[int(opened.subject.removeprefix("ORDER-"))]
                    delivery.stored_id, delivery.blob = stored_id, reply.blob
        yield copy, deliveries, [identity for _, identity in users]


def measure(
    files: dict[str, bytes], deliveries: list[Delivery], identities: list[Identity]
) -> list[Order]:
    data = files["rune.db"]
    return [
        order_of("blobs (first chunk)", find_all(data, [d.blob[64:96] for d in deliveries])),
        order_of("blobs (last chunk)", find_all(data, [d.blob[-48:-16] for d in deliveries])),
        order_of("mailbox rows", find_all(data, [d.stored_id.encode() for d in deliveries])),
        # An account row overflows its page: the key's start is in the cell, its end not.
        order_of("accounts (cells)", find_all(data, [i.public.raw[:32] for i in identities])),
        order_of("accounts (overflow)", find_all(data, [i.public.raw[-32:] for i in identities])),
    ]


def measure_cluster(
    files: dict[str, bytes], deliveries: list[Delivery], identities: list[Identity]
) -> list[Order]:
    """τ of arrival against each row's newest heap copy: its xmin, its place."""
    orders = []
    for what, needles in (
        ("mailbox rows", [d.stored_id.encode() for d in deliveries]),
        ("accounts", [i.public.raw[:32] for i in identities]),
    ):
        newest: list[Hit] = []
        for needle in needles:
            heap = [hit for hit in find(files, needle) if hit.xmin is not None]
            assert heap, f"a {what} piece is not in the copy"
            newest.append(max(heap, key=lambda hit: hit.xmin or 0))
        orders.append(order_of(f"{what} by xmin", [hit.xmin or 0 for hit in newest]))
        orders.append(order_of(f"{what} by place", [hit.offset for hit in newest]))
    return orders


@pytest.mark.slow
def test_a_copy_of_the_files_shows_no_arrival_order(
    workload: tuple[Path, list[Delivery], list[Identity]],
) -> None:
    copy, deliveries, identities = workload
    if (copy / "PG_VERSION").exists():
        files = read_copy(copy)
        pieces = [d.blob[at : at + 32] for d in deliveries for at in (64, len(d.blob) - 48)]
        found = sum(len(find(files, piece)) for piece in pieces)
        in_wal = sum(h.in_wal for d in deliveries for h in find(files, d.stored_id.encode()))
        orders = measure_cluster(files, deliveries, identities)
        for order in orders:
            print(order)
        print(f"blob pieces found {found} of {len(pieces)}; mailbox ids in pg_wal {in_wal}")
        assert found == 0, "pieces of blobs in the copy (chunks are sealed at rest)"
        assert in_wal == 0, "pg_wal still holds the mailbox rows' history"
        assert not [order for order in orders if order.leaks], orders
        return
    files = {path.name: path.read_bytes() for path in copy.iterdir()}
    for name, data in files.items():  # the WAL and its index are gone, or hold nothing
        if name != "rune.db":
            for d in deliveries:
                assert d.blob[64:96] not in data and d.stored_id.encode() not in data, name
    orders = measure(files, deliveries, identities)
    for order in orders:
        print(order)
    assert not [order for order in orders if order.leaks], orders


def test_the_thief_sees_the_order_when_no_pass_has_run(tmp_path: Path) -> None:
    """The control: the same measurement on a store before its pass finds the order."""
    path = tmp_path / "rune.db"
    Database.create(path)
    db = Database(path)
    blobs = [os.urandom(18_846) for _ in range(60)]
    for index, blob in enumerate(blobs):
        db.add_messages([(f"user{index % 7}@x", blob, 1 << 30)])
    before = order_of("blobs", find_all(path.read_bytes() + _wal(path), [b[64:96] for b in blobs]))
    db.order_pass()
    after = order_of("blobs", find_all(path.read_bytes(), [b[64:96] for b in blobs]))
    db.close()
    print(before, after, sep="\n")
    assert before.tau > 0.9 and before.leaks
    assert not after.leaks


def _wal(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""


def test_the_newest_message_deleted_then_a_new_one_is_no_hole(tmp_path: Path) -> None:
    """Deleting the newest message frees slots at the end of the array; the next
    message is appended into the same slot numbers. The pass must not take them for
    holes (it did: UNIQUE constraint failed, and every later pass failed the same way)."""
    path = tmp_path / "rune.db"
    Database.create(path)
    db = Database(path)
    try:
        (kept,) = db.add_messages([("bob@x", b"\x01" * 9000, 1 << 30)])
        (gone,) = db.add_messages([("bob@x", b"\x02" * 9000, 1 << 30)])
        assert gone is not None and db.delete_message("bob@x", gone)
        (new,) = db.add_messages([("bob@x", b"\x03" * 9000, 1 << 30)])
        db.order_pass()
        assert db.message("bob@x", str(kept)) == b"\x01" * 9000
        assert db.message("bob@x", str(new)) == b"\x03" * 9000
        assert db.message("bob@x", gone) is None
    finally:
        db.close()
