"""Message blobs in a slot array whose order, once shuffled, says nothing about time.

Why. SQLite puts each new page at the end of the file (or on a just-freed page), so
where a blob's pages sit records when it arrived; sorting messages by file position
gave their exact arrival order (Kendall τ = 1.0), and with the receivers that is who
writes to whom. Random keys do not help: the key decides the b-tree position, not
the page.

How. A blob is cut into chunks of one page each (``chunk_bytes``, zero-padded: a row
alone on its page is placed the same way whatever its history). Chunks live in
``chunks`` under dense slot numbers 0…n-1; a mailbox row keeps its blob's slots in
order (``encode``). New chunks are appended (cheap: the commit path does no more
than before), deleted ones leave holes. Then :func:`shuffle_step` — run by the order
pass (compaction.py) at most ``order_window`` seconds later — fills the holes from
the end of the array and gives every chunk appended since the last pass a uniformly
random place: the "inside-out" Fisher–Yates shuffle, one swap a chunk. If the slots
below ``shuffled`` held a uniformly random arrangement before, all of them do after,
so a chunk's slot (and with it its page) is independent of when it arrived. The
swaps cost two page writes a new chunk, paid off the commit path; the shuffle's
randomness comes from ``secrets`` unless a test passes its own.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable, Iterable, Sequence

SLOT = struct.Struct("<I")  # slots are stored as little-endian 32-bit numbers
PAGE_MARGIN = 256  # page bytes left for the page header, the cell header and the owner
IN_BATCH = 500  # slots per ``IN (…)`` list: well under SQLite's bound-parameter limit

Randbelow = Callable[[int], int]
Owner = tuple[str, str]  # (receiver, id): the mailbox row a chunk belongs to


def chunk_bytes(page_size: int) -> int:
    """Data bytes a chunk holds so that its row never spills to an overflow page."""
    return page_size - PAGE_MARGIN


def encode(slots: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(slots)}I", *slots)


def decode(blob: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(blob) // SLOT.size}I", blob))


def chunks_of(blob: bytes, size: int) -> list[bytes]:
    """``blob`` cut into ``size``-byte chunks, the last one padded with zeros."""
    pieces = [blob[start : start + size] for start in range(0, len(blob), size)] or [b""]
    pieces[-1] = pieces[-1].ljust(size, b"\0")
    return pieces


def end(db: sqlite3.Connection) -> int:
    """One past the highest slot in use (holes below it are possible)."""
    (top,) = db.execute("SELECT MAX(slot) FROM chunks").fetchone()
    return 0 if top is None else int(top) + 1


def append(
    db: sqlite3.Connection, start: int, receiver: str, message_id: str, pieces: list[bytes]
) -> list[int]:
    """Store ``pieces`` in slots ``start``… (the caller tracks the end); their slots.

    Holes recorded at or above ``start`` are past the end now (the newest messages
    were deleted): they are forgotten, or the pass would try to fill slots in use.
    """
    slots = list(range(start, start + len(pieces)))
    db.execute("DELETE FROM holes WHERE slot >= ?", (start,))
    db.executemany(
        "INSERT INTO chunks (slot, receiver, id, seq, data) VALUES (?, ?, ?, ?, ?)",
        [
            (slot, receiver, message_id, seq, data)
            for seq, (slot, data) in enumerate(zip(slots, pieces, strict=True))
        ],
    )
    return slots


def read(db: sqlite3.Connection, slots: Sequence[int], size: int) -> bytes:
    """The blob held in ``slots`` (in that order), cut to ``size`` bytes."""
    data: dict[int, bytes] = {}
    for start in range(0, len(slots), IN_BATCH):
        batch = slots[start : start + IN_BATCH]
        marks = ",".join("?" * len(batch))
        data.update(db.execute(f"SELECT slot, data FROM chunks WHERE slot IN ({marks})", batch))
    return b"".join(data[slot] for slot in slots)[:size]


def remove(db: sqlite3.Connection, slots: Iterable[int]) -> None:
    """Free ``slots`` (``secure_delete`` zeroes their pages); the pass fills the holes."""
    rows = [(slot,) for slot in slots]
    db.executemany("DELETE FROM chunks WHERE slot = ?", rows)
    db.executemany("INSERT OR IGNORE INTO holes (slot) VALUES (?)", rows)


class _Owners:
    """The slot lists of the mailbox rows a shuffle touches, each written back once."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._moves: list[tuple[Owner, int, int]] = []

    def moved(self, owner: Owner, seq: int, slot: int) -> None:
        self._moves.append((owner, seq, slot))

    def write(self) -> None:
        lists: dict[Owner, list[int]] = {}
        for owner, seq, slot in self._moves:
            if owner not in lists:
                row = self._db.execute(
                    "SELECT slots FROM mailbox WHERE receiver = ? AND id = ?", owner
                ).fetchone()
                lists[owner] = decode(row[0]) if row else []
            if seq < len(lists[owner]):  # (no mailbox row: a chunk left by a failed write)
                lists[owner][seq] = slot
        self._db.executemany(
            "UPDATE mailbox SET slots = ? WHERE receiver = ? AND id = ?",
            [(encode(slots), *owner) for owner, slots in lists.items() if slots],
        )


def shuffle_step(
    db: sqlite3.Connection, budget: int, randbelow: Randbelow, owners_seen: set[Owner] | None = None
) -> tuple[int, bool]:
    """Up to ``budget`` moves towards a shuffled array; (chunks placed, whether done).

    ``owners_seen`` gets the ``(receiver, id)`` of each chunk placed: the mailbox rows
    added since the last pass, which the pass rewrites (compaction.py).

    Runs inside the caller's transaction. Holes go first: each is filled with the
    last chunk, which lands where a uniformly placed chunk was. Then each slot ``i``
    from ``shuffled`` (in ``layout``) on trades places with a uniformly chosen slot
    ``j`` in ``0…i`` (inside-out Fisher–Yates), and ``shuffled`` moves past it.
    """
    owners = _Owners(db)
    moves, holes_left = _fill_holes(db, owners, budget)
    top = end(db)
    (shuffled,) = db.execute("SELECT value FROM layout WHERE name = 'shuffled'").fetchone()
    start = min(int(shuffled), top)
    stop = start if holes_left else min(top, start + max(0, budget - moves))
    placed = _permute(db, owners, [(i, randbelow(i + 1)) for i in range(start, stop)])
    if owners_seen is not None:
        owners_seen.update(placed)
    db.execute("UPDATE layout SET value = ? WHERE name = 'shuffled'", (stop,))
    owners.write()
    return stop - start, not holes_left and stop == top


def _fill_holes(db: sqlite3.Connection, owners: _Owners, budget: int) -> tuple[int, bool]:
    """Move the last chunk into the lowest hole, up to ``budget`` times; (moves, whether
    holes are left). ``end`` skips holes at the top; they are simply forgotten."""
    moves = 0
    while True:
        top = end(db)
        db.execute("DELETE FROM holes WHERE slot >= ?", (top,))
        row = db.execute("SELECT slot FROM holes ORDER BY slot LIMIT 1").fetchone()
        if row is None:
            return moves, False
        if moves >= budget:
            return moves, True
        db.execute("DELETE FROM holes WHERE slot = ?", row)
        if db.execute("SELECT 1 FROM chunks WHERE slot = ?", row).fetchone() is None:
            _move(db, owners, top - 1, int(row[0]))  # (a slot in use is no hole: skipped)
            moves += 1


def _move(db: sqlite3.Connection, owners: _Owners, source: int, target: int) -> None:
    receiver, message_id, seq = db.execute(
        "SELECT receiver, id, seq FROM chunks WHERE slot = ?", (source,)
    ).fetchone()
    db.execute(
        """INSERT INTO chunks (slot, receiver, id, seq, data)
           SELECT ?, receiver, id, seq, data FROM chunks WHERE slot = ?""",
        (target, source),
    )
    db.execute("DELETE FROM chunks WHERE slot = ?", (source,))
    owners.moved((receiver, message_id), seq, target)


def _permute(
    db: sqlite3.Connection, owners: _Owners, swaps: Sequence[tuple[int, int]]
) -> list[Owner]:
    """Apply ``swaps`` (in order) to the slots they name: one read of every slot
    touched, the swaps done in memory, one write of each slot whose content moved;
    the owners of the chunks that were in each swap's first slot.

    Doing each swap as two reads and two UPDATEs cost 4 statements a swap and wrote
    a slot hit twice twice; each row is still rewritten in place, on its page.
    """
    touched = sorted({slot for pair in swaps for slot in pair})
    rows: dict[int, tuple[str, str, int, bytes]] = {}
    for start in range(0, len(touched), IN_BATCH):
        batch = touched[start : start + IN_BATCH]
        marks = ",".join("?" * len(batch))
        for slot, *row in db.execute(
            f"SELECT slot, receiver, id, seq, data FROM chunks WHERE slot IN ({marks})", batch
        ):
            rows[slot] = (row[0], row[1], row[2], row[3])
    placed = dict(rows)
    for first, second in swaps:
        if first != second:
            placed[first], placed[second] = placed[second], placed[first]
    moved = [(slot, row) for slot, row in placed.items() if row is not rows[slot]]
    db.executemany(
        "UPDATE chunks SET receiver = ?, id = ?, seq = ?, data = ? WHERE slot = ?",
        [(*row, slot) for slot, row in moved],
    )
    for slot, (receiver, message_id, seq, _) in moved:
        owners.moved((receiver, message_id), seq, slot)
    return [(rows[first][0], rows[first][1]) for first, _ in swaps]
