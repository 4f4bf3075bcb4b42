"""The order pass's table rewrite: rows written again in key order, all of a table or
only the leaf pages that hold changed rows.

Why a rewrite. SQLite puts a new cell at the top of its page's content area, so the
cells' places on a page tell which rows came last. Deleting a range of rows (their
cells are freed, ``secure_delete`` zeroes them) and inserting them again in key order
leaves each page's cells where their keys, not their history, put them.

Why only the changed leaves. Writing a whole table again cost the pass time that grew
with the store (0.83 s at 150,000 messages with nothing new), while only the pages
that took a new cell show anything. ``dbstat`` lists a table's b-tree pages in key
order with their cell counts, so one ordered scan of the keys tells which leaf holds
which keys; the leaves holding a changed key, merged into runs, are the key ranges
rewritten. The scan still reads every key (a few ms per 10,000 rows, keeping only the
keys at leaf edges); the writes grow with what changed. The tables given here are
WITHOUT ROWID: their interior cells are rows too, which the rank count relies on.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Collection, Sequence

STEP_ROWS = 4000  # rows rewritten in one step (~3 µs each)

Key = tuple[object, ...]
KeyRange = tuple[Key, Key]  # lowest and highest key, both included


def rows(
    db: sqlite3.Connection,
    table: str,
    key: Sequence[str],
    after: Key | None,
    low: Key | None = None,
    high: Key | None = None,
) -> tuple[Key | None, int]:
    """Write the next ``STEP_ROWS`` rows of ``table`` after ``after`` (else from
    ``low``), up to ``high``, again in key order; the last key written (None when
    none were left) and the count."""
    columns = ", ".join(key)
    marks = f"({', '.join('?' * len(key))})"
    bounds: list[str] = []
    values: list[object] = []
    if after is not None:
        bounds.append(f"({columns}) > {marks}")
        values += after
    elif low is not None:
        bounds.append(f"({columns}) >= {marks}")
        values += low
    if high is not None:
        bounds.append(f"({columns}) <= {marks}")
        values += high
    where = f"WHERE {' AND '.join(bounds)}" if bounds else ""
    found = db.execute(
        f"SELECT * FROM {table} {where} ORDER BY {columns} LIMIT {STEP_ROWS}", values
    ).fetchall()
    if not found:
        return None, 0
    names = [d[1] for d in db.execute(f"PRAGMA table_info({table})")]
    last = tuple(found[-1][names.index(column)] for column in key)
    from_start = after is None and low is None  # no lower bound
    lower = "" if from_start else f"{bounds[0]} AND "
    db.execute(
        f"DELETE FROM {table} WHERE {lower}({columns}) <= {marks}",
        (*([] if from_start else values[: len(key)]), *last),
    )
    db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})", found)
    return last, len(found)


def changed_ranges(
    db: sqlite3.Connection, table: str, key: Sequence[str], changed: Collection[Key]
) -> list[KeyRange]:
    """The key ranges of the leaf pages of ``table`` that hold a ``changed`` key (or
    sit beside where a changed key that is gone would be), adjacent ones merged.

    Falls back to the whole table when ``dbstat`` is missing or its count disagrees
    with the keys (say, the table is not WITHOUT ROWID).
    """
    if not changed:
        return []
    leaves = _leaf_ranks(db, table)
    wanted = sorted(tuple(k) for k in changed)
    bounds = {rank for start, end in leaves or () for rank in (start, end - 1)}
    keys_at: dict[int, Key] = {}  # the keys at the leaves' first and last ranks
    ranks: list[int] = []  # where each wanted key is (or would be), in key order
    count, first, last = 0, None, None
    columns = ", ".join(key)
    for row in db.execute(f"SELECT {columns} FROM {table} ORDER BY {columns}"):
        here = tuple(row)
        if count in bounds:
            keys_at[count] = here
        while len(ranks) < len(wanted) and wanted[len(ranks)] <= here:
            ranks.append(count)
        first = here if first is None else first
        last, count = here, count + 1
    if first is None or last is None:
        return []
    if leaves is None or leaves[-1][1] != count:
        return [(first, last)]
    ranks += [count] * (len(wanted) - len(ranks))
    starts = [start for start, _ in leaves]
    dirty: set[int] = set()
    for rank in ranks:
        leaf = max(0, bisect.bisect_right(starts, rank) - 1)
        dirty.add(leaf)
        if rank >= leaves[leaf][1] and leaf + 1 < len(leaves):  # an interior cell
            dirty.add(leaf + 1)
    runs: list[list[int]] = []
    for leaf in sorted(dirty):
        if runs and runs[-1][1] == leaf - 1:
            runs[-1][1] = leaf
        else:
            runs.append([leaf, leaf])
    return [
        (keys_at[leaves[low][0]], keys_at[leaves[high][1] - 1])
        for low, high in runs
        if leaves[high][1] > leaves[low][0]
    ]


def _leaf_ranks(db: sqlite3.Connection, table: str) -> list[tuple[int, int]] | None:
    """Each leaf page's rows as ranks in key order, ``[start, end)``, in key order.

    ``dbstat`` names a page by its path from the root (``/``, then ``%03x/`` per level:
    the child's index), so the tree can be walked in key order: child 0, the parent's
    cell 0 (a row itself in a WITHOUT ROWID table), child 1, … the right child.
    """
    try:
        pages = {
            path: (kind, count)
            for path, kind, count in db.execute(
                "SELECT path, pagetype, ncell FROM dbstat WHERE name = ?", (table,)
            )
        }
    except sqlite3.OperationalError:  # no dbstat compiled in
        return None
    leaves: list[tuple[int, int]] = []
    stack: list[tuple[str, int]] = [("/", 0)]  # (page, next child to visit)
    rank = 0
    while stack:
        path, child = stack.pop()
        if path not in pages:
            return None
        kind, count = pages[path]
        if kind == "leaf":
            leaves.append((rank, rank + count))
            rank += count
            continue
        if 0 < child <= count:  # back from child - 1: the parent's cell after it
            rank += 1
        if child <= count:
            stack.append((path, child + 1))
            stack.append((f"{path}{child:03x}/", 0))
    return leaves or None
