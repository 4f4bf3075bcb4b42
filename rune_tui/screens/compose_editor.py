"""Compose's ctrl+e: hand the body to the user's own editor ($VISUAL, $EDITOR) and take it back.

The one place rune-tui writes message text in the clear; see :func:`edit_in_editor` for
how little and how briefly.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile

from textual.app import App


class EditorError(Exception):
    """The editor could not be started, or it failed: the body stays as it was."""


def editor_command() -> list[str] | None:
    """``$VISUAL``, then ``$EDITOR`` (with its arguments), then ``vi`` or ``nano``."""
    for variable in ("VISUAL", "EDITOR"):
        value = os.environ.get(variable, "").strip()
        if value:
            return shlex.split(value)
    for fallback in ("vi", "nano"):
        found = shutil.which(fallback)
        if found:
            return [found]
    return None


def private_temp_root() -> str | None:
    """A RAM-backed, per-user place for the editor's file when there is one."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return runtime
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return None  # the system's temporary folder


def edit_in_editor(app: App[object], text: str) -> str:
    """Hand ``text`` to the user's editor with the app suspended; return what it saved.

    This is the one place rune-tui writes message text in the clear. An external editor
    can only edit a file, so the plaintext file is the accepted cost of $EDITOR: it lives
    in a fresh folder only this user can enter (0700; the file is 0600), preferably on a
    RAM-backed file system, exists only while the editor runs, and the folder is removed
    with anything the editor left beside it (swap and backup files). Drafts at rest stay
    sealed by the vault.
    """
    command = editor_command()
    if command is None:
        raise EditorError("no editor found: set $EDITOR (for example to nano or vim)")
    folder = tempfile.mkdtemp(prefix="rune-edit-", dir=private_temp_root())
    try:
        path = os.path.join(folder, "message.txt")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            with app.suspend():
                result = subprocess.run([*command, path], check=False)
        except FileNotFoundError as exc:
            raise EditorError(f"cannot start the editor {command[0]!r}") from exc
        except Exception as exc:  # SuspendNotSupported, and the like
            raise EditorError(f"cannot hand over the terminal: {exc}") from exc
        if result.returncode != 0:
            raise EditorError(
                f"the editor exited with status {result.returncode}; the text is unchanged"
            )
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
