"""Rebuilding the index from the blob files, and sweeping files no row names.

A rebuild happens when the index is missing, damaged, from another identity or another
format. Each blob file's sealed header gives its id (and the server key it was retrieved
under), so it works offline, but it opens every message: ~0.6 ms each, seconds for a big
cache. So it is made to run in a thread while the UI goes on: the cache's lock is taken
per message, not for the whole run, and rows a refresh added meanwhile are kept as they
are. Leaving the app stops it between two messages (``cache.stop_rebuild``), so quitting
never waits for it. Read marks are not lost: the marks journal keeps a sealed snapshot of
every read id next to the index (see :mod:`.marks`), recovered when the index was found
unusable.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from rune_proto.client import ReceivedMessage

from .blobs import BlobStore
from .marks import ReadMarks
from .rows import Summary


class Rebuildable(Protocol):
    """The parts of store.MessageCache a rebuild and a sweep use: typed here so that
    rebuild.py need not import store.py, which imports it."""

    lock: threading.RLock
    blobs: BlobStore
    rows: dict[str, Summary]
    read: ReadMarks
    stale: set[str]
    stop_rebuild: threading.Event
    recovered_marks: dict[str, bool]

    @property
    def blob_dir(self) -> Path: ...

    def blob_path(self, message_id: str) -> Path: ...

    def open_blob(
        self, message_id: str, blob: bytes, server_key: str | None
    ) -> ReceivedMessage: ...

    def note(self, what: str, exc: BaseException) -> None: ...

    def put(self, message_id: str, message: ReceivedMessage, size: int) -> Summary: ...

    def rebuilt_from_blobs(self) -> None: ...


def rebuild(cache: Rebuildable, progress: Callable[[int, int], None] | None = None) -> None:
    """Rows from every blob file this identity sealed the header of; then the index.

    ``progress(done, total)`` is called from the rebuilding thread after each file.
    """
    with cache.lock:
        entries = cache.blobs.entries()
        cache.stale = set()
    total = len(entries)
    for done, entry in enumerate(entries, 1):
        if cache.stop_rebuild.is_set():
            return  # the app is leaving: no half index is written; the next start rebuilds
        try:
            data = Path(entry.path).read_bytes()
        except OSError:
            continue
        unwrapped = cache.blobs.unwrap(data)
        if unwrapped is None:
            continue  # not ours, or damaged: left alone (the sweep may remove it)
        message_id = unwrapped.message_id
        if cache.blob_path(message_id).name != entry.name:
            continue  # a file under another file's name: refused
        with cache.lock:
            if message_id in cache.rows:
                continue  # a refresh stored it meanwhile
            try:
                message = cache.open_blob(message_id, unwrapped.blob, unwrapped.server_key)
            except (OSError, ValueError) as exc:  # e.g. the contacts file is unwritable
                cache.note("a cached message could not be opened", exc)
                continue
            cache.put(message_id, message, len(unwrapped.blob))
        if progress is not None:
            progress(done, total)
    with cache.lock:
        for message_id, read in cache.recovered_marks.items():
            if message_id in cache.rows:
                cache.read.set_quietly(message_id, read)
        cache.recovered_marks = {}
        cache.rebuilt_from_blobs()


def sweep(cache: Rebuildable) -> int:
    """Remove blob files (and temporary leftovers) no row names; how many went."""
    wanted = {cache.blob_path(i).name for i in cache.rows}
    removed = 0
    try:
        with os.scandir(cache.blob_dir) as entries:
            doomed = [e.path for e in entries if e.name not in wanted]
    except OSError:
        doomed = []
    for path in doomed:
        try:
            os.unlink(path)
            removed += 1
        except OSError as exc:
            cache.note("an old cache file could not be removed", exc)
    return removed
