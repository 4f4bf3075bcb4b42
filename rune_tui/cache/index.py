"""The sealed ``index``: one JSON document with every row, written and read whole.

Opening it is the fast path: one read, one AEAD open, one ``json.loads`` with the garbage
collector paused, a column-wise type check at C speed (the index is authenticated; this
only guards against our own bugs turning into a crash while drawing), and one
:class:`~rune_tui.cache.rows.Summary` per row.
"""

from __future__ import annotations

import gc
import json
import secrets
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from rune_proto.address import Address, parse_address
from rune_proto.client import Verification

from .marks import GEN_BYTES
from .rows import (
    CHECK,
    ID,
    READ,
    SENDER,
    SET_CACHE,
    SET_ROW,
    RowSource,
    Summary,
    check_columns,
    decode_check,
    encode_check,
)

FORMAT = "rune-cache"
VERSION = 1


@dataclass(slots=True)
class IndexDoc:
    """An index as written and read: tables first, then rows that point into them."""

    generation: bytes
    partial: bool  # written mid-refresh: blob files no row names may exist (sweep later)
    senders: list[Address | None]
    checks: list[Verification]
    rows: list[list[Any]]


def parse_index(raw: bytes, account: str) -> IndexDoc:
    """The opened index of ``account``; ValueError, TypeError, KeyError, IndexError or
    AddressError when it is not one (another format or version, another account, damage)."""
    collecting = gc.isenabled()
    gc.disable()  # its passes over the young parsed lists would cost more than parsing
    try:
        doc = json.loads(raw)
        if (
            not isinstance(doc, dict)
            or doc.get("format") != FORMAT
            or doc.get("version") != VERSION
            or doc.get("account") != account
        ):
            raise ValueError("not an index of this account's cache")
        generation = bytes.fromhex(doc["generation"])
        senders = [None if s is None else parse_address(s) for s in doc["senders"]]
        checks = [decode_check(c) for c in doc["checks"]]
        rows: list[list[Any]] = doc["rows"]
        if rows:
            check_columns(rows, len(senders), len(checks))
    finally:
        if collecting:
            gc.enable()
    return IndexDoc(generation, bool(doc.get("partial")), senders, checks, rows)


def dump_index(account: str, doc: IndexDoc) -> bytes:
    """The JSON bytes of ``doc`` (to be sealed by the caller)."""
    return json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "account": account,
            "generation": doc.generation.hex(),
            "partial": doc.partial,
            "senders": [None if s is None else str(s) for s in doc.senders],
            "checks": [encode_check(c) for c in doc.checks],
            "rows": doc.rows,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def compact(
    order: list[Summary],
    senders: list[Address | None],
    checks: list[Verification],
    read: Container[str],
    partial: bool,
) -> IndexDoc:
    """The index of ``order`` under a new generation: its rows renumbered in place into
    tables without entries no row uses, and each row's read flag set from ``read``."""
    used_senders: dict[int, int] = {}
    used_checks: dict[int, int] = {}
    for summary in order:
        row = summary._row
        row[SENDER] = used_senders.setdefault(row[SENDER], len(used_senders))
        row[CHECK] = used_checks.setdefault(row[CHECK], len(used_checks))
        row[READ] = 1 if row[ID] in read else 0
    return IndexDoc(
        generation=secrets.token_bytes(GEN_BYTES),
        partial=partial,
        senders=[senders[old] for old in used_senders],
        checks=[checks[old] for old in used_checks],
        rows=[s._row for s in order],
    )


def wrap_rows(cache: RowSource, rows: list[list[Any]]) -> dict[str, Summary]:
    """One :class:`Summary` per row, the row kept as it is (garbage collector paused, as
    for parsing: ~4 ms for 10,000 rows)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        new, set_row, set_cache = object.__new__, SET_ROW, SET_CACHE
        summaries: dict[str, Summary] = {}
        for row in rows:
            summary = new(Summary)
            set_row(summary, row)
            set_cache(summary, cache)
            summaries[row[ID]] = summary
    finally:
        if collecting:
            gc.enable()
    return summaries
