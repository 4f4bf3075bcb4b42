"""Replace a file whole or not at all: write a temporary file beside it, then rename.

Every file Rune keeps (keys, contacts, the replay log, the client's cache and its index)
must never be left half-written by a crash or a full disk, and none may be readable by
other users even for a moment. One helper, so each caller only says how durable it
needs the write to be.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def write_atomically(
    path: Path,
    *chunks: bytes,
    sync: bool = True,
    prefix: str = ".tmp-",
    suffix: str = "",
    mode: int = 0o600,
) -> None:
    """Write ``chunks`` to ``path`` through a temporary file in the same folder.

    The temporary file is created with ``mode`` (0600 by default, as ``mkstemp`` does),
    so the data is never visible to others. ``sync`` fsyncs the data before the rename
    and the folder after it (else a crash can undo the rename); a caller that can rebuild
    the file after a crash (a cache) may skip both. On any failure the temporary file is
    removed and ``path`` is left as it was.
    """
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode != 0o600:
                os.fchmod(handle.fileno(), mode)
            for chunk in chunks:
                handle.write(chunk)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync:
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable: fsync the directory entry itself.

    Skipped where folders cannot be opened (Windows) or the file system does not
    support it (EINVAL): there the rename is as durable as the platform allows.
    """
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
