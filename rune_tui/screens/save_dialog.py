"""Where to save a message's attachments: a folder (and, for one file, its name).

``s`` in the reader opens this instead of writing into a folder the user never chose.
The folder starts as the last one used in this session, else ``settings.save_folder``,
else the download folder; Enter accepts, Escape cancels. It only asks: the reader still
saves through :func:`rune_tui.filenames.save_new_file` (new files only, never a link).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from rune_proto.envelope import Attachment

from ..filenames import download_dir, safe_filename, save_new_file
from ..messages import SaveFolderChosen
from . import STYLES

_LAST_FOLDER: WeakKeyDictionary[App[Any], Path] = WeakKeyDictionary()


async def ask_and_save(app: App[Any], files: Sequence[Attachment], save_folder: str) -> None:
    """Ask for the folder (and a single file's name), then save ``files`` there.

    The one save flow of every reader (received and sent): the folder offered is the
    last one used in this session, else ``save_folder``, else the download folder.
    """
    folder = _LAST_FOLDER.get(app)
    if folder is None and save_folder:
        folder = Path(save_folder).expanduser()
    if folder is None or not await asyncio.to_thread(folder.is_dir):
        folder = await asyncio.to_thread(download_dir)
    names = [attachment.filename for attachment in files]
    choice = await app.push_screen_wait(SaveDialog(names, folder))
    if choice is None:
        return
    _LAST_FOLDER[app] = choice.folder
    app.post_message(SaveFolderChosen(str(choice.folder)))
    try:
        for attachment in files:
            name = choice.name or attachment.filename
            path = await asyncio.to_thread(save_new_file, choice.folder, name, attachment.data)
            app.notify(str(path), title="Saved", markup=False)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        app.notify(f"{reason}.", title="Not saved", severity="error", markup=False)


@dataclass(frozen=True, slots=True)
class SaveChoice:
    """A folder that exists, and the name for a single file (None: keep the names)."""

    folder: Path
    name: str | None


class SaveDialog(ModalScreen[SaveChoice | None]):
    """Dismisses with a :class:`SaveChoice`, or None when cancelled."""

    CSS_PATH = STYLES

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="save.cancel"),
    ]

    def __init__(self, names: list[str], folder: Path) -> None:
        super().__init__()
        self.names = [safe_filename(name) for name in names]
        self.folder = folder

    def compose(self) -> ComposeResult:
        count = len(self.names)
        with Vertical(id="save-box"):
            if count == 1:
                yield Label("Save the file as", id="save-title")
                yield Input(self.names[0], id="save-name")
            else:
                listed = ", ".join(self.names)
                yield Label(f"Save {count} files: {listed}", id="save-title", markup=False)
            yield Label("In the folder", classes="save-label")
            yield Input(str(self.folder), id="save-folder")
            yield Label("", id="save-error", markup=False)
            yield Label("Enter saves · Esc cancels · an existing file is never replaced")
            with Horizontal(id="save-buttons"):
                yield Button("Cancel", id="save-cancel")
                yield Button("Save", id="save-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#save-folder", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save-cancel")
    def _cancelled(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save-ok")
    @on(Input.Submitted)
    def _accepted(self) -> None:
        """Check the answers; a wrong one is said here and the dialog stays open."""
        error = self.query_one("#save-error", Label)
        text = self.query_one("#save-folder", Input).value.strip()
        folder = Path(text).expanduser() if text else None
        if folder is None or not folder.is_dir():
            error.update(f"{text or 'That'} is not a folder. Type one that exists.")
            self.query_one("#save-folder", Input).focus()
            return
        name: str | None = None
        if len(self.names) == 1:
            typed = self.query_one("#save-name", Input).value.strip()
            if not typed or "/" in typed or "\\" in typed:
                error.update("Type a file name (no folders in it: they go in Folder).")
                self.query_one("#save-name", Input).focus()
                return
            name = typed
        self.dismiss(SaveChoice(folder.resolve(), name))
