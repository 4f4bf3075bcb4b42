"""Blob chunks in PostgreSQL, sealed at rest: the only place that writes, reads or
frees chunk rows.

Why sealed. PostgreSQL never writes in place: an UPDATE or a DELETE leaves the old
row version on its page (pruning marks it free but does not zero it), every row
version carries ``t_xmin`` — the id of the transaction that wrote it, a counter
that freezing and CLUSTER keep — and ``pg_wal`` holds recent changes in the order
they were made. A copy of the data directory therefore holds several copies of a
blob (a port of the SQLite slot shuffle left 4 to 20 per chunk) and dates each by
its xmin: τ = +0.46 between arrival and xmin, and the mailbox rows' slot lists
point at them (bench/pg_disk_audit.py, docs/server.md). No shuffle can rewrite the
past, so the link is cut instead:

- a chunk row is ``(slot, data)``; ``data`` is ChaCha20-Poly1305 under a key the
  nodes derive from the server identity (HKDF; in memory only), with a fresh nonce
  each time the row is written, and the owner (receiver, id, piece number) inside.
  Neither a live row, a dead version nor a WAL record can be matched to a blob a
  thief holds (the receiver's copy, say), nor to a mailbox;
- the mailbox row's slot list is sealed the same way (a fresh nonce each write), so
  a mailbox row does not say which chunk rows, and with them which xmins, are its.

Slot numbers come from the ``layout`` row ``next_slot`` (``UPDATE … RETURNING`` in
the caller's transaction: unique across nodes); they are opaque, gaps are harmless.
Slots appended since the last order pass are listed in ``fresh``: the pass moves
each to a new slot, in random order, so the chunks of one commit (which share an
xmin, and their size with their mailbox row) are spread over random steps
(ordering.py). A chunk row fills most of one 8 KiB page and is stored PLAIN: never
compressed (it is ciphertext) and never moved out to a TOAST table, whose own
order would follow arrival.

Freeing and moving exclude each other: a transaction that frees chunks first takes
the transaction advisory lock ``MOVE_LOCK`` shared (:func:`hold_still`), and each
move step of the pass takes it exclusive (:func:`moving`). (A move writes only new
slot numbers, so a DELETE that read an old list frees nothing of another message;
the lock keeps a step's view of the owners whole.) Lock order, across all
transactions: ``MOVE_LOCK``, then ``usage`` rows, ``limits`` rows, ``mailbox`` rows,
chunk rows, ``next_slot``.

Freeing without the key (an operator's command): :func:`free_later` queues the
sealed list in ``freed``; the next order pass, which has the key, frees the chunks.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Data bytes a chunk. A row is its header (24), the slot (8), the data's length (4)
# and the sealed data (nonce 12 + owner 197 + chunk + tag 16): 7,941 bytes, one to
# a page (at most 8,160), so it never spills to TOAST.
CHUNK_BYTES = 7680
NONCE = 12
TAG = 16
RECEIVER_FIELD = 128  # an address is at most 101 characters (address.py)
ID_FIELD = 64  # a stored-message id is a 36-character UUID
OWNER = struct.Struct(f"<B{RECEIVER_FIELD}sB{ID_FIELD}sI")
SEALED_BYTES = NONCE + OWNER.size + CHUNK_BYTES + TAG
KEY_INFO = b"rune/1 pg chunks at rest"
CHUNK_AAD = b"rune/1 pg chunk "  # + the slot: a row copied to another slot does not open
LIST_AAD = b"rune/1 pg slot list "  # + receiver and id: a list moved to another row neither
SLOT = struct.Struct("<q")

# pg_advisory_xact_lock key: "rune", "move"
MOVE_LOCK = 0x72756E65_6D6F7665

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def hold_still(conn: Connection) -> None:
    """No chunk moves until this transaction ends; call it first in a freeing one."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", MOVE_LOCK)


async def moving(conn: Connection) -> None:
    """This transaction moves chunks: wait for the freeing ones, keep new ones out."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MOVE_LOCK)


class SealError(Exception):
    """A chunk or slot list did not open: another key, or the row was tampered with."""


@dataclass(frozen=True)
class Owner:
    receiver: str
    message_id: str
    seq: int


class Seal:
    """The at-rest key of chunk rows and slot lists; never written anywhere."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the at-rest key is 32 bytes")
        self._aead = ChaCha20Poly1305(key)

    @classmethod
    def from_identity(cls, identity_private: bytes) -> Seal:
        """The key every node derives alike from the server identity it already holds."""
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO)
        return cls(kdf.derive(identity_private))

    def seal_chunk(self, slot: int, owner: Owner, piece: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        plain = _owner_bytes(owner) + piece
        return nonce + self._aead.encrypt(nonce, plain, CHUNK_AAD + SLOT.pack(slot))

    def open_chunk(self, slot: int, sealed: bytes) -> tuple[Owner, bytes]:
        plain = self._open(sealed, CHUNK_AAD + SLOT.pack(slot))
        return _owner_of(plain[: OWNER.size]), plain[OWNER.size :]

    def seal_slots(self, receiver: str, message_id: str, slots: Sequence[int]) -> bytes:
        nonce = os.urandom(NONCE)
        plain = struct.pack(f"<{len(slots)}q", *slots)
        return nonce + self._aead.encrypt(nonce, plain, _list_aad(receiver, message_id))

    def open_slots(self, receiver: str, message_id: str, sealed: bytes) -> list[int]:
        plain = self._open(sealed, _list_aad(receiver, message_id))
        return list(struct.unpack(f"<{len(plain) // SLOT.size}q", plain))

    def _open(self, sealed: bytes, aad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], aad)
        except InvalidTag as exc:
            raise SealError("a sealed row did not open (another server key?)") from exc


def _list_aad(receiver: str, message_id: str) -> bytes:
    return LIST_AAD + _owner_bytes(Owner(receiver, message_id, 0))


def _owner_bytes(owner: Owner) -> bytes:
    receiver, message_id = owner.receiver.encode(), owner.message_id.encode()
    if len(receiver) > RECEIVER_FIELD or len(message_id) > ID_FIELD:
        raise ValueError("receiver or message id too long for a chunk's owner field")
    return OWNER.pack(len(receiver), receiver, len(message_id), message_id, owner.seq)


def _owner_of(raw: bytes) -> Owner:
    receiver_length, receiver, id_length, message_id, seq = OWNER.unpack(raw)
    return Owner(receiver[:receiver_length].decode(), message_id[:id_length].decode(), int(seq))


async def check_key(conn: Connection, seal: Seal) -> None:
    """Raise SealError if the stored chunks were sealed under another key (a node
    given another server identity would store mail no other node could read)."""
    row = await conn.fetchrow("SELECT slot, data FROM chunks LIMIT 1")
    if row is not None:
        seal.open_chunk(int(row[0]), bytes(row[1]))


def pieces_of(blob: bytes, size: int) -> list[bytes]:
    """``blob`` cut into ``size``-byte chunks, the last one padded with zeros."""
    pieces = [blob[start : start + size] for start in range(0, len(blob), size)] or [b""]
    pieces[-1] = pieces[-1].ljust(size, b"\0")
    return pieces


async def take_slots(conn: Connection, count: int) -> int:
    """Reserve ``count`` new slot numbers; the first one (in the caller's transaction)."""
    start = await conn.fetchval(
        """UPDATE layout SET value = value + $1 WHERE name = 'next_slot'
           RETURNING value - $1""",
        count,
    )
    return int(start)


async def append(
    conn: Connection, seal: Seal, receiver: str, message_id: str, blob: bytes, chunk_bytes: int
) -> bytes:
    """Store one blob as sealed chunk rows; its sealed slot list (for the mailbox row)."""
    return (await append_many(conn, seal, [(receiver, message_id, blob)], chunk_bytes))[0]


async def append_many(
    conn: Connection, seal: Seal, blobs: Sequence[tuple[str, str, bytes]], chunk_bytes: int
) -> list[bytes]:
    """Store ``(receiver, id, blob)`` as sealed chunk rows in new slots, in the caller's
    transaction; each blob's sealed slot list, for its mailbox row. One reservation
    and one COPY for the whole group commit; the slots are listed in ``fresh``."""
    cut = [pieces_of(blob, chunk_bytes) for _, _, blob in blobs]
    total = sum(len(pieces) for pieces in cut)
    if total == 0:
        return []
    slot = await take_slots(conn, total)
    lists: list[bytes] = []
    records: list[tuple[int, bytes]] = []
    for (receiver, message_id, _), pieces in zip(blobs, cut, strict=True):
        slots = list(range(slot, slot + len(pieces)))
        for seq, (number, piece) in enumerate(zip(slots, pieces, strict=True)):
            records.append(
                (number, seal.seal_chunk(number, Owner(receiver, message_id, seq), piece))
            )
        lists.append(seal.seal_slots(receiver, message_id, slots))
        slot += len(pieces)
    await conn.copy_records_to_table("chunks", records=records, columns=("slot", "data"))
    await conn.copy_records_to_table(
        "fresh", records=[(number,) for number, _ in records], columns=("slot",)
    )
    return lists


async def read(
    conn: Connection, seal: Seal, receiver: str, message_id: str, sealed: bytes, size: int
) -> bytes:
    """The blob of a mailbox row (its sealed slot list), cut to ``size`` bytes.

    Run it in the snapshot that read ``sealed`` (a repeatable-read transaction): the
    order pass moves chunks and rewrites the list in one transaction.
    """
    slots = seal.open_slots(receiver, message_id, sealed)
    rows = await conn.fetch("SELECT slot, data FROM chunks WHERE slot = ANY($1::bigint[])", slots)
    pieces = {}
    for row in rows:
        owner, piece = seal.open_chunk(int(row[0]), bytes(row[1]))
        if owner.receiver != receiver or owner.message_id != message_id:
            raise SealError("a chunk row names another owner")
        pieces[owner.seq] = piece
    return b"".join(pieces[seq] for seq in range(len(slots)))[:size]


async def free(conn: Connection, seal: Seal, receiver: str, message_id: str, sealed: bytes) -> None:
    """Delete a message's chunk rows, in the caller's transaction, *after* it deleted
    the mailbox row (that lock comes first, as in the order pass: no deadlock)."""
    slots = seal.open_slots(receiver, message_id, sealed)
    await conn.execute("DELETE FROM chunks WHERE slot = ANY($1::bigint[])", slots)
    await conn.execute("DELETE FROM fresh WHERE slot = ANY($1::bigint[])", slots)


async def free_later(conn: Connection, rows: Sequence[tuple[str, str, bytes]]) -> None:
    """Queue deleted mailbox rows' ``(receiver, id, sealed list)`` for the next order
    pass to free their chunks: for commands that run without the server's key."""
    await conn.executemany("INSERT INTO freed (receiver, id, slots) VALUES ($1, $2, $3)", rows)
