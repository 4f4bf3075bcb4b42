"""Attachment file names from other people, made safe to show, send and save.

A name in a received message was chosen by its sender, and a cached or drafted one may
predate today's checks: everything that shows, saves or sends a name passes it through
:func:`safe_filename` first, and :func:`save_new_file` only ever creates a new file
directly inside the folder it was given.
"""

from __future__ import annotations

import os
from pathlib import Path

_MAX_NAME_BYTES = 200  # leaves room for " (123)" inside any file system's 255


def download_dir() -> Path:
    """The user's download folder (platformdirs), or their home if it does not exist."""
    import platformdirs  # lazily: only needed when something is saved

    try:
        folder = Path(platformdirs.user_downloads_dir())
    except (OSError, ValueError, KeyError):  # a broken user-dirs file or no HOME
        folder = Path.home()
    return folder if folder.is_dir() else Path.home()


def safe_filename(name: str) -> str:
    """The sender's file name made harmless: no folders, no control or bidi characters.

    The name was chosen by someone else: ``../../.bashrc`` must land as ``bashrc`` in the
    download folder, and ``invoice\u202egnp.exe`` must not pretend to be a picture. The
    result is always a valid attachment name (``rune_proto.content.filename_problem``).
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())  # drops C0, C1, bidi, surrogates
    name = name.strip().lstrip(".").strip()
    if not name:
        return "attachment"
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and len(suffix) <= 16:  # keep a real extension when shortening
        suffix = "." + suffix
    else:
        stem, suffix = name, ""
    stem = stem[:_MAX_NAME_BYTES]
    while len((stem + suffix).encode()) > _MAX_NAME_BYTES:
        stem = stem[:-1]
    return (stem.rstrip() or "attachment") + suffix


def save_new_file(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to a file that did not exist: ``name``, else ``name (1)``, ``(2)``…

    Created exclusively (no race with another program, no following a planted link: a
    symlink at the target counts as taken) and readable by the user only: these are
    private messages. The file is always directly inside ``folder``.
    """
    safe = safe_filename(name)
    stem, dot, suffix = safe.rpartition(".")
    if not dot or not stem:
        stem, suffix = safe, ""
    else:
        suffix = "." + suffix
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for attempt in range(1000):
        path = folder / (safe if attempt == 0 else f"{stem} ({attempt}){suffix}")
        if path.parent != folder or path.name in ("", ".", ".."):  # never, by construction
            raise ValueError(f"refusing to save {name!r} outside {folder}")
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except BaseException:
            path.unlink(missing_ok=True)  # no half-written file left behind
            raise
        return path
    raise FileExistsError(f"{folder / safe} and 999 numbered copies exist already")
