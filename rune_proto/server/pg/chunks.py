"""Blob chunks in PostgreSQL: the only place that writes, reads or frees chunk rows.

Why a module of its own: how a chunk sits on disk decides what a copy of the
cluster's files shows about arrival order (docs/server.md), and the answer in
PostgreSQL differs from SQLite's (MVCC writes a new row version for every update;
TOAST moves a large value out of its row). The chunk size, the table's storage
options and any sealing of the data are tuned here (and in :mod:`.ordering`)
without touching the store.

As in slots.py, a blob is cut into ``chunk_bytes`` pieces, the last zero-padded,
under dense slot numbers 0…n-1. Slots are taken from the ``layout`` row
``next_slot`` with ``UPDATE … RETURNING`` inside the commit's transaction: the row
lock makes the numbers unique across nodes, and a rolled-back commit gives its
numbers back. Freed slots become holes that the order pass fills.

Freeing and moving exclude each other: the pass swaps the contents of two slot rows
and rebuilds the owners' slot lists, and a DELETE that read a slot list just before
would then free a slot that holds another message's chunk (found by
tests/pg/test_nodes.py). So a transaction that frees chunks first takes the
transaction advisory lock ``MOVE_LOCK`` shared (:func:`hold_still`), and each step
of the pass takes it exclusive (:func:`moving`). Lock order, across all
transactions: ``MOVE_LOCK``, then ``usage`` rows, ``limits`` rows, ``next_slot``.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

# Data bytes a chunk: with the table's data column in PLAIN storage (schema.py) a row
# must fit one 8 KiB page with its header and owner columns, and is never TOASTed.
CHUNK_BYTES = 7680

# pg_advisory_xact_lock key: "rune", "move"
MOVE_LOCK = 0x72756E65_6D6F7665

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def hold_still(conn: Connection) -> None:
    """No chunk moves until this transaction ends; call it first in a freeing one."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", MOVE_LOCK)


async def moving(conn: Connection) -> None:
    """This transaction moves chunks: wait for the freeing ones, keep new ones out."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MOVE_LOCK)


def pieces_of(blob: bytes, size: int) -> list[bytes]:
    """``blob`` cut into ``size``-byte chunks, the last one padded with zeros."""
    pieces = [blob[start : start + size] for start in range(0, len(blob), size)] or [b""]
    pieces[-1] = pieces[-1].ljust(size, b"\0")
    return pieces


async def take_slots(conn: Connection, count: int) -> int:
    """Reserve ``count`` slots at the end of the array; the first one (in a transaction)."""
    start = await conn.fetchval(
        """UPDATE layout SET value = value + $1 WHERE name = 'next_slot'
           RETURNING value - $1""",
        count,
    )
    return int(start)


async def append(
    conn: Connection, receiver: str, message_id: str, blob: bytes, chunk_bytes: int
) -> list[int]:
    """Store one blob as chunk rows in new slots (in the caller's transaction)."""
    return (await append_many(conn, [(receiver, message_id, blob)], chunk_bytes))[0]


async def append_many(
    conn: Connection, blobs: Sequence[tuple[str, str, bytes]], chunk_bytes: int
) -> list[list[int]]:
    """Store ``(receiver, id, blob)`` as chunk rows in new slots, in the caller's
    transaction; each blob's slots in order. One slot reservation and one COPY for
    the whole group commit. Holes at or above the new slots were past the end:
    forgotten (the pass would otherwise try to fill slots in use)."""
    cut = [pieces_of(blob, chunk_bytes) for _, _, blob in blobs]
    total = sum(len(pieces) for pieces in cut)
    if total == 0:
        return []
    slot = start = await take_slots(conn, total)
    await conn.execute("DELETE FROM holes WHERE slot >= $1", start)
    placed: list[list[int]] = []
    records: list[tuple[int, str, str, int, bytes]] = []
    for (receiver, message_id, _), pieces in zip(blobs, cut, strict=True):
        placed.append(list(range(slot, slot + len(pieces))))
        records.extend(
            (slot + seq, receiver, message_id, seq, data) for seq, data in enumerate(pieces)
        )
        slot += len(pieces)
    await conn.copy_records_to_table(
        "chunks", records=records, columns=("slot", "receiver", "id", "seq", "data")
    )
    return placed


async def read(conn: Connection, slots: Sequence[int], size: int) -> bytes:
    """The blob in ``slots`` (in that order), cut to ``size`` bytes.

    Run it in the same snapshot as the read of ``slots`` (a repeatable-read
    transaction): the order pass may move chunks in between.
    """
    rows = await conn.fetch("SELECT slot, data FROM chunks WHERE slot = ANY($1::bigint[])", slots)
    data = {int(row[0]): bytes(row[1]) for row in rows}
    return b"".join(data[slot] for slot in slots)[:size]


async def free(conn: Connection, slots: Sequence[int]) -> None:
    """Free ``slots`` (in the caller's transaction, which began with :func:`hold_still`
    before it read them); the order pass fills the holes."""
    await conn.execute("DELETE FROM chunks WHERE slot = ANY($1::bigint[])", slots)
    await conn.execute(
        "INSERT INTO holes (slot) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING", slots
    )
