"""A full disk: recognising it, and the reserve that keeps DELETE (and a start) possible.

Seen before this existed: on a full disk a MESSAGE got ``500`` and the log said
``OperationalError``; DELETE failed too (in WAL mode even a delete must append its
pages to the WAL first), so users could not free space. Now a full disk is answered
``451`` with "disk full" (session.py), logged as such, and the data directory holds
a *reserve*: a file of ``disk_reserve_mib`` zeros made at start. When a DELETE (or
opening the database) fails for want of space, the reserve is deleted, which gives
SQLite room for the WAL, and the DELETE is tried again; the log says so. The
reserve is made again at the next start, or after an order pass once the file system
has room for it twice over.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

log = logging.getLogger("rune_proto.server")

RESERVE_NAME = "disk.reserve"
_WRITE_BYTES = 1 << 20


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether SQLite failed because the file system (or ``max_page_count``) is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF == sqlite3.SQLITE_FULL
    )


class Reserve:
    """``size`` bytes of zeros in ``directory``, given up when the disk fills."""

    def __init__(self, directory: Path, size: int) -> None:
        self.path = directory / RESERVE_NAME
        self.size = size

    def make(self) -> bool:
        """Write the reserve if it is missing; False (and a warning) if there is no room."""
        if self.size <= 0 or self.path.exists():
            return True
        try:
            with open(self.path, "wb", opener=_private) as file:
                left = self.size
                while left > 0:  # written, not fallocate: every file system takes this
                    left -= file.write(bytes(min(left, _WRITE_BYTES)))
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            log.warning(
                "disk nearly full: no room for the %d MiB reserve (%s)",
                self.size >> 20,
                exc.strerror or type(exc).__name__,
            )
            return False
        return True

    def release(self) -> bool:
        """Delete the reserve; whether there was one to give up."""
        if self.size <= 0 or not self.path.exists():
            return False
        self.path.unlink(missing_ok=True)
        log.warning(
            "disk full: released the %d MiB reserve so deletes can run;"
            " free space (docs/server.md, Operating)",
            self.size >> 20,
        )
        return True

    def remake_if_room(self) -> None:
        """After a pass: make the reserve again once the file system has room twice over."""
        if self.size <= 0 or self.path.exists():
            return
        stats = os.statvfs(self.path.parent)
        if stats.f_bavail * stats.f_frsize >= 2 * self.size:
            self.make()


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
