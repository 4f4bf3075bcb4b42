"""What a thief with a copy of a PostgreSQL data directory can measure.

Two clocks hide in a heap file besides where a row sits: every tuple's header keeps
``t_xmin``, the id of the transaction that wrote it (ids count up; freezing keeps the
value, CLUSTER and VACUUM FULL copy it), and a page fills from its end downwards, so
a tuple's offset in its page follows when it was placed. ``pg_wal`` keeps recent
changes in the order they were made. This module finds byte strings in every file of
the copy and reads the transaction id of the tuple each one sits in.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PAGE = 8192
PAGE_HEADER = 24  # pd_lsn … pd_prune_xid; line pointers follow
LINE_POINTER = struct.Struct("<I")
XMIN_XMAX = struct.Struct("<II")


@dataclass(frozen=True)
class Hit:
    """One copy of a needle: the file (relative to the data directory) and where."""

    path: str
    offset: int
    xmin: int | None  # the tuple's writing transaction, when it sits in a heap tuple

    @property
    def in_wal(self) -> bool:
        return self.path.startswith("pg_wal/")


def read_copy(data_dir: Path) -> dict[str, bytes]:
    """Every regular file of the copy, by its path relative to the data directory."""
    return {
        str(path.relative_to(data_dir)): path.read_bytes()
        for path in sorted(data_dir.rglob("*"))
        if path.is_file()
    }


def tuple_xmin(page: bytes, at: int) -> int | None:
    """``t_xmin`` of the heap tuple whose bytes hold page offset ``at``; None if none does."""
    if len(page) < PAGE_HEADER or int.from_bytes(page[16:18], "little") != PAGE:
        return None  # not a heap page: an index page keeps a special space at its end
    lower = int.from_bytes(page[12:14], "little")
    for pointer in range(PAGE_HEADER, min(lower, len(page)), LINE_POINTER.size):
        (word,) = LINE_POINTER.unpack_from(page, pointer)
        offset, flags, length = word & 0x7FFF, (word >> 15) & 3, word >> 17
        if flags == 1 and offset <= at < offset + length and offset + 8 <= len(page):
            return XMIN_XMAX.unpack_from(page, offset)[0]
    return None


def find(files: dict[str, bytes], needle: bytes) -> list[Hit]:
    """Every copy of ``needle`` in the files (heap hits carry their tuple's xmin)."""
    hits: list[Hit] = []
    for path, data in files.items():
        start = data.find(needle)
        while start >= 0:
            xmin = None
            if path.startswith("base/"):
                page_start = start - start % PAGE
                xmin = tuple_xmin(data[page_start : page_start + PAGE], start % PAGE)
            hits.append(Hit(path, start, xmin))
            start = data.find(needle, start + 1)
    return hits


def wal_position(hit: Hit) -> tuple[str, int]:
    """A WAL hit's place in time: the segment name (hex, in write order), then the offset.

    A recycled segment is renamed ahead, so this is the thief's best guess, not a proof.
    """
    return (Path(hit.path).name, hit.offset)


def first_in(hits: Sequence[Hit], *, wal: bool) -> Hit | None:
    chosen = [hit for hit in hits if hit.in_wal == wal]
    return min(chosen, key=lambda h: (h.path, h.offset)) if chosen else None
