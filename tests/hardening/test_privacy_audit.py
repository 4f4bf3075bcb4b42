"""Privacy audit of what a real rune-server keeps and logs (issue 7 §5; protocol.md §14).

A scripted workload — 10 users, 200 messages between them with distinctive subjects,
bodies and attachments, lists, retrieves (some twice) and deletes — then every file in
the data directory is read as raw bytes (the SQLite file, its WAL and shared-memory
index, config, keys, certificate) four times: right after the sends (a WAL full of
fresh inserts), live at the end, as a checkpointed copy, and after the server has
stopped. With them, every line the server wrote to stderr and stdout, after some
provoked failures. Pass means:

* no subject, body or attachment text anywhere;
* no sender next to a message: an address stands beside a stored-message id only in
  the receiver column or its index (ids of messages it *received*), and two users who
  only ever sent appear exactly as often as the accounts table explains;
* the schema is exactly the tables of ``TABLES`` below (addresses, keys, random ids,
  sizes, slot numbers, token hashes, expiries, counts), and the view
  messages(id, receiver, blob) over mailbox and chunks;
* no timestamps of the workload: no ASCII date or time, no decimal unix time, and no
  binary unix time outside the random bytes of keys and blobs;
* no IP address in files or logs;
* every blob of a message in the 16 KiB class has the same size;
* the bytes of deleted messages are gone from the database and its WAL.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import shutil
import socket
import sqlite3
import struct
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rune_proto.address import Address, random_address
from rune_proto.client.contacts import ContactBook, ReplayLog
from rune_proto.client.messages import open_retrieved
from rune_proto.envelope import Attachment, Content
from rune_proto.events import (
    Delete,
    Deleted,
    ErrorReply,
    Listing,
    ListMessages,
    Registered,
    Retrieve,
    Retrieved,
)
from rune_proto.keys import Identity, PublicKey
from rune_proto.server import slots
from tests.server.wire_client import WireClient
from tests.server_process import RuneServerProcess, server_factory

USERS = 10
MESSAGES = 200
SENDERS_ONLY = 2  # the last two users send but never receive
STORED_16K = 18846  # protocol.md Appendix A: a STORED MESSAGE in the 16 KiB class
CHUNKS = -(-STORED_16K // slots.chunk_bytes(4096))  # its chunks in the slot array
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
IPV4 = re.compile(rb"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9.])")
ISO_DATE = re.compile(rb"(?:19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]")
CLOCK = re.compile(rb"[0-2][0-9]:[0-5][0-9]:[0-5][0-9]")
DECIMAL = re.compile(rb"(?<![0-9])1[0-9]{9}(?:[0-9]{3})?(?![0-9])")  # unix s or ms


@dataclass
class Sent:
    sender: Address
    receiver: Address
    subject: str
    body: str
    attachment: bytes
    stored_id: str = ""
    blob: bytes = b""
    deleted: bool = False

    def markers(self) -> list[bytes]:
        """Distinctive pieces of the plaintext (each unique to this message)."""
        return [self.subject.encode(), self.body[:41].encode(), self.attachment[:40]]


@dataclass
class Workload:
    users: list[tuple[Address, Identity]]
    messages: list[Sent] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    @property
    def senders_only(self) -> list[Address]:
        return [a for a, _ in self.users[-SENDERS_ONLY:]]

    def received_ids(self, address: Address) -> set[str]:
        return {m.stored_id for m in self.messages if m.receiver == address}

    def live(self, address: Address) -> set[str]:
        return {m.stored_id for m in self.messages if m.receiver == address and not m.deleted}


@dataclass
class Audited:
    server: RuneServerProcess
    load: Workload
    after_sending: dict[str, bytes]  # the live files with every message stored, none read


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    base = tmp_path_factory.mktemp("privacy")
    with server_factory(base) as factory:
        server = factory()
        files: dict[str, bytes] = {}
        load = run_workload(server, lambda: files.update(snapshot(server.data_dir, base / "mid")))
        yield Audited(server, load, files)


def run_workload(server: RuneServerProcess, after_sending: Callable[[], None]) -> Workload:
    rng = random.Random(5)
    key = server.server_public_key
    load = Workload([], started=time.time())
    for _ in range(USERS):
        address, identity = random_address(server.domain), Identity.generate()
        with WireClient.to(server) as client:
            assert isinstance(client.register(address, identity), Registered)
        load.users.append((address, identity))
    receivers = load.users[:-SENDERS_ONLY]
    for n in range(MESSAGES):
        tag = uuid.uuid4().hex
        author = load.users[n % USERS][0]
        receiver = rng.choice([u for u in receivers if u[0] != author])
        body = f"BODY-{tag} " + "lorem ipsum " * rng.randrange(0, 1000)  # up to ~12 KB
        load.messages.append(
            Sent(author, receiver[0], f"SUBJECT-{tag}", body, f"ATTACH-{tag}".encode() * 3)
        )
    by_sender: dict[Address, list[Sent]] = {}
    for message in load.messages:
        by_sender.setdefault(message.sender, []).append(message)
    identities = dict(load.users)
    for sender, batch in by_sender.items():
        with WireClient.to(server) as client:
            client.login(sender, identities[sender], key)
            for m in batch:
                content = Content(m.subject, m.body, (Attachment("a.txt", m.attachment),))
                client.send_message(sender, identities[sender], m.receiver, content)
    after_sending()
    for address, identity in receivers:
        mine = [m for m in load.messages if m.receiver == address]
        with WireClient.to(server) as client:
            client.login(address, identity, key)
            listing = client.request(ListMessages())
            assert isinstance(listing, Listing) and len(listing.entries) == len(mine)
            blobs = {}
            for stored_id, _ in listing.entries:
                for _ in range(1 + rng.randrange(2)):  # some retrieved twice
                    reply = client.request(Retrieve(stored_id))
                    assert isinstance(reply, Retrieved)
                    blobs[stored_id] = reply.blob
            # Which stored id is which message: only the receiver can tell (decrypt).
            for stored_id, blob in blobs.items():
                sent = _match(identity, address, key, blob, mine)
                sent.stored_id, sent.blob = stored_id, blob
            for sent in mine[::3]:  # delete a third of each mailbox
                assert client.request(Delete(sent.stored_id)) == Deleted(sent.stored_id)
                sent.deleted = True
    provoke_errors(server, load)
    load.ended = time.time()
    return load


def provoke_errors(server: RuneServerProcess, load: Workload) -> None:
    """Failures are what servers log most: give it some to log (and to leak nothing in)."""
    address, identity = load.users[0]
    with WireClient.to(server) as client:
        failed = client.login(address, Identity.generate(), server.server_public_key)
        assert failed == ErrorReply(411, "authentication failed")
        assert client.raw(b"FROBNICATE now\r\n")[0] == 400
        client.login(address, identity, server.server_public_key)
        assert client.raw(f"RETRIEVE {uuid.uuid4()}\r\n".encode())[0] == 404
        assert client.raw(f"SEND nobody@{server.domain}\r\n".encode())[0] == 404
        assert client.raw(b"MESSAGE " + str(address).encode() + b" AAAA\r\n")[0] == 402
    with socket.create_connection((server.host, server.port), timeout=10) as plain:
        plain.sendall(b"LOGIN " + str(address).encode() + b"\r\n")  # no TLS: a failed handshake
        plain.recv(100)
    with WireClient.to(server) as client:
        client.sock.sendall(b"LIST")  # and a client that vanishes mid-line


def _match(
    identity: Identity, address: Address, key: PublicKey, blob: bytes, mine: list[Sent]
) -> Sent:
    opened = open_retrieved(
        str(uuid.uuid4()),
        blob,
        identity=identity,
        address=address,
        server_key=key,
        contacts=ContactBook(),
        replays=ReplayLog(),
    )
    assert opened.verification.decrypted and opened.verification.server_signature
    return next(m for m in mine if m.subject == opened.subject)


# --- taking the files ------------------------------------------------------------------


def snapshot(data_dir: Path, into: Path) -> dict[str, bytes]:
    """Every file of the data directory, as raw bytes (copied at once, server running)."""
    into.mkdir()
    files = {}
    for path in sorted(data_dir.iterdir()):
        if path.is_file():
            shutil.copy2(path, into / path.name)
            files[path.name] = (into / path.name).read_bytes()
    return files


def checkpointed(copy_dir: Path) -> dict[str, bytes]:
    """The copy, checkpointed into one file (what a thief gets after a checkpoint)."""
    with sqlite3.connect(copy_dir / "rune.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {p.name: p.read_bytes() for p in sorted(copy_dir.iterdir()) if p.is_file()}


# --- the checks -------------------------------------------------------------------------


def check_no_plaintext(files: dict[str, bytes], load: Workload) -> int:
    checked = 0
    for name, data in files.items():
        for needle in (b"SUBJECT-", b"BODY-", b"ATTACH-", b"lorem ipsum", b'"subject"'):
            assert needle not in data, f"{needle!r} in {name}"
        for message in load.messages:
            for marker in message.markers():
                assert marker not in data, f"{marker[:20]!r} in {name}"
                checked += 1
    return checked


def check_no_ip(files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert b"127.0.0.1" not in data and b"localhost" not in data, name
        found = [m.group() for m in IPV4.finditer(data)]
        assert not found, f"IP-like text {found[:3]} in {name}"


def _wal_noise(wal: bytes) -> list[tuple[int, int]]:
    """Byte ranges of a WAL that are random by design: salts and checksums."""
    if len(wal) < 32:
        return []
    (page_size,) = struct.unpack(">I", wal[8:12])
    ranges = [(16, 32)]
    frame = 32
    while frame + 24 <= len(wal):
        ranges.append((frame + 8, frame + 24))
        frame += 24 + page_size
    return ranges


def check_no_timestamps(
    files: dict[str, bytes], load: Workload, random_material: list[bytes]
) -> int:
    """ASCII dates and clock times anywhere; unix times (s and ms, ASCII and binary)
    of the workload window, except inside known random bytes (keys, blobs, salts)."""
    days = {
        (dt.datetime.fromtimestamp(t, tz) + dt.timedelta(days=d)).strftime(fmt).encode()
        for t in (load.started, load.ended)
        for tz in (dt.UTC, None)
        for d in (-1, 0, 1)
        for fmt in ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d")
    }
    low, high = int(load.started) - 120, int(load.ended) + 120
    binary_hits = 0
    for name, data in files.items():
        for day in days:
            assert day not in data, f"the date {day!r} in {name}"
        assert not ISO_DATE.search(data), f"an ISO date in {name}: {ISO_DATE.search(data)}"
        assert not CLOCK.search(data), f"a clock time in {name}"
        for match in DECIMAL.finditer(data):
            value = int(match.group())
            value = value // 1000 if value > 10**11 else value
            assert not low <= value <= high, f"unix time {match.group()!r} in {name}"
        if name.endswith(".key") or name.endswith("-shm"):
            continue  # encrypted boxes; the -shm holds WAL salts and checksums
        noise = _wal_noise(data) if name.endswith("-wal") else []
        for at, size in binary_times(data, low, high):
            if not _explained(data, at, size, noise, random_material):
                raise AssertionError(f"a binary unix time at offset {at} of {name}")
            binary_hits += 1
    return binary_hits


def binary_times(data: bytes, low: int, high: int) -> Iterator[tuple[int, int]]:
    """Offsets of u32 seconds and u64 milliseconds in [low, high], big- and little-endian.

    Only the low bytes vary across the window, so search for the fixed high bytes and
    then check the whole value: a few finds per file instead of one per second.
    """
    for size, scale in ((4, 1), (8, 1000)):
        lo, hi = low * scale, high * scale
        varying = ((hi - lo).bit_length() + 7) // 8 + 1
        for order in ("big", "little"):
            fixed = {
                (v >> (8 * varying)).to_bytes(size - varying, order)
                for v in range(lo, hi + 1, 1 << (8 * (varying - 1)))
            } | {(hi >> (8 * varying)).to_bytes(size - varying, order)}
            for part in fixed:
                start = data.find(part)
                while start >= 0:
                    at = start if order == "big" else start - varying
                    if at >= 0 and lo <= int.from_bytes(data[at : at + size], order) <= hi:
                        yield at, size
                    start = data.find(part, start + 1)


def _explained(
    data: bytes, at: int, size: int, noise: list[tuple[int, int]], material: list[bytes]
) -> bool:
    """A chance match inside random bytes: a salt/checksum, or part of a key or blob."""
    if any(lo <= at < hi for lo, hi in noise):
        return True
    before, after = data[max(0, at - 12) : at + size], data[at : at + size + 12]
    return any(before in m or after in m for m in material)


def adjacent_ids(data: bytes, address: bytes) -> tuple[list[bytes], int]:
    """Stored-message ids written right beside ``address`` (the SQLite record of a
    message row or an index entry), and how many occurrences have none."""
    ids, alone = [], 0
    start = data.find(address)
    while start >= 0:
        end = start + len(address)
        before = data[max(0, start - 36) : start]
        after = data[end : end + 36]
        beside = [x for x in (before, after) if len(x) == 36 and UUID.fullmatch(x)]
        ids += beside
        alone += not beside
        start = data.find(address, start + 1)
    return ids, alone


def check_senders(files: dict[str, bytes], load: Workload, exact: bool) -> dict[str, int]:
    """No address stands beside the id of a message it did not receive; in a
    checkpointed file every address appears exactly once in its account row, once more
    in its ``usage`` row if it receives mail, and beside each message in its mailbox
    once in the (receiver, id) row and once in each of the message's chunks (their
    owner), plus once where that key is also a divider in an interior b-tree page."""
    counts = {}
    for name, data in files.items():
        if not name.startswith("rune.db"):
            for address, _ in load.users:
                assert str(address).encode() not in data, f"{address} in {name}"
            continue
        for address, _ in load.users:
            ids, alone = adjacent_ids(data, str(address).encode())
            received = load.received_ids(address)
            strangers = {i.decode() for i in ids} - received
            assert not strangers, f"{address} beside ids it did not receive: {strangers}"
            if address in load.senders_only:
                assert not ids, f"sender-only {address} appears beside message ids in {name}"
            if exact and name == "rune.db":
                receives = address not in load.senders_only
                assert alone == 1 + receives, f"{address}: {alone} occurrences outside messages"
                beside = Counter(i.decode() for i in ids)
                assert set(beside) == load.live(address), f"{address}: {beside}"
                rows = 1 + CHUNKS  # the mailbox row and each chunk's owner
                assert set(beside.values()) <= {rows, rows + 1}, f"{address}: {beside}"
                counts[str(address)] = alone + len(ids)
    return counts


TABLES = {  # rune_proto/server/schema.py: nothing more, and no rowid that counts up
    "accounts": ["address", "public_key"],
    "mailbox": ["receiver", "id", "size", "slots", "epoch"],
    "chunks": ["slot", "receiver", "id", "seq", "data"],
    "holes": ["slot"],
    "usage": ["receiver", "bytes", "count"],
    "invitations": ["token_hash", "address", "expires_at"],
    "holds": ["address", "kind"],  # blocked or deleted by the operator (server/admin.py)
    "layout": ["name", "value"],
    "limits": ["key", "ends", "count"],
    "failures": ["kind", "key", "count", "last_at"],  # the login throttle (server/failures.py)
}


def check_schema(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        objects = sorted(db.execute("SELECT type, name FROM sqlite_master").fetchall())
        columns = {
            table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            for table in (*TABLES, "messages")
        }
    assert objects == sorted(
        [("table", table) for table in TABLES]
        + [("trigger", "messages_delete"), ("view", "messages")]  # for operators (schema.py)
    ), objects
    assert columns == {**TABLES, "messages": ["id", "receiver", "blob"]}


def check_deleted_gone(files: dict[str, bytes], load: Workload) -> dict[str, int]:
    """Three 32-byte pieces of each deleted blob (start, an overflow page, the end):
    how many are still in each database file (all must be zero)."""
    pieces = [
        m.blob[at : at + 32]
        for m in load.messages
        if m.deleted
        for at in (64, 9000, len(m.blob) - 40)
    ]
    assert len(pieces) >= 3 * 60
    left = {
        name: sum(piece in data for piece in pieces)
        for name, data in files.items()
        if name.startswith("rune.db")
    }
    kept = [m.blob[9000:9032] for m in load.messages if not m.deleted]
    main = files["rune.db"] + files.get("rune.db-wal", b"")
    assert all(piece in main for piece in kept), "control: kept blobs must be found"
    return left


def check_logs(server: RuneServerProcess, load: Workload) -> int:
    stderr = server.stderr_text()
    lines = stderr.splitlines()
    assert lines, "the server logged nothing at all"
    text = stderr.encode()
    check_no_ip({"stderr": text})
    assert not UUID.search(text), "a stored-message id in the log"
    assert not ISO_DATE.search(text) and not CLOCK.search(text), "a timestamp in the log"
    for address, _ in load.users:
        assert str(address).encode() not in text and str(address).split("@")[0].encode() not in text
    check_no_plaintext({"stderr": text}, load)
    assert "Traceback" not in stderr
    for path in sorted(server.root.glob("stdout.*.log")):
        for line in path.read_text().splitlines():
            assert line.startswith("rune-server listening on "), line  # its own address only
    return len(lines)


# --- the tests ---------------------------------------------------------------------------


@pytest.mark.slow
def test_privacy_audit_of_files_and_logs(audited: Audited, tmp_path: Path) -> None:
    server, load = audited.server, audited.load
    deleted = sum(m.deleted for m in load.messages)
    random_material = [m.blob for m in load.messages] + [i.public.raw for _, i in load.users]
    live = snapshot(server.data_dir, tmp_path / "live")
    settled = checkpointed(tmp_path / "live")
    server.stop()
    stopped = {p.name: p.read_bytes() for p in sorted(server.data_dir.iterdir()) if p.is_file()}
    server.start()  # for the fixture's clean stop (exit code 0, no traceback)

    check_schema(tmp_path / "live" / "rune.db")
    leftovers: dict[str, dict[str, int]] = {}
    mid = audited.after_sending  # the WAL full of fresh INSERTs: history, not deletion
    hits = check_no_timestamps(mid, load, random_material)
    check_no_ip(mid)
    check_senders(mid, load, exact=False)
    print(
        f"after sending: {len(mid)} files, {sum(map(len, mid.values())):,} bytes; "
        f"{check_no_plaintext(mid, load)} plaintext markers absent; {hits} chance binary "
        "time matches inside random bytes"
    )
    for label, files in (("live", live), ("checkpointed", settled), ("stopped", stopped)):
        markers = check_no_plaintext(files, load)
        check_no_ip(files)
        hits = check_no_timestamps(files, load, random_material)
        counts = check_senders(files, load, exact=label != "live")
        left = check_deleted_gone(files, load)
        leftovers[label] = {name: n for name, n in left.items() if n}
        print(
            f"{label}: {len(files)} files, {sum(map(len, files.values())):,} bytes; "
            f"{markers} plaintext markers absent; pieces of {deleted} deleted blobs left: {left}; "
            f"{hits} chance binary time matches inside random bytes; "
            f"address occurrences {sorted(set(counts.values())) if counts else 'n/a'}"
        )
    with sqlite3.connect(tmp_path / "live" / "rune.db") as db:
        sizes = Counter(n for (n,) in db.execute("SELECT LENGTH(blob) FROM messages"))
        stored = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert stored == MESSAGES - deleted
    assert sizes == {STORED_16K: stored}, sizes
    assert {len(m.blob) for m in load.messages} == {STORED_16K}
    assert not any(leftovers.values()), f"deleted message bytes remain: {leftovers}"
    log_lines = check_logs(server, load)
    print(
        f"workload: {USERS} users, {MESSAGES} messages, {deleted} deleted, "
        f"{time.time() - load.started:.1f} s; every blob {STORED_16K} bytes; "
        f"{log_lines} log lines checked"
    )
