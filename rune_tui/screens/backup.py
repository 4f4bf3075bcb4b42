"""Back up this account to a sealed file, or add an account from one (the wizard's
"I already have an address").

Both are dialogs over the screen that opened them; the work is :mod:`rune_tui.backup`'s,
run in a thread (scrypt takes a moment on purpose). A wrong answer is said in the dialog,
which stays open; nothing is written until every answer is usable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from .. import service
from ..backup import (
    MIN_PASSPHRASE,
    BackupError,
    check_passphrase,
    default_backup_name,
    export_account,
    import_account,
    read_backup,
)
from ..config import Account, Config, Paths
from . import STYLES

if TYPE_CHECKING:
    from rune_proto.keys import Identity

    from ..service_mailbox import Mailbox

MIN_KEY_PASSPHRASE = 8  # as the wizard asks for a new key file
SECOND_DEVICE = (
    "A second device with the same address reads the same mailbox: what you delete on "
    "one is deleted on the server, so it is gone for both."
)


class BackupDialog(ModalScreen[object]):
    """What both dialogs share: Escape cancels, an error line, a busy state."""

    CSS_PATH = STYLES
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="backup.cancel"),
    ]

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#backup-cancel")
    def _cancelled(self) -> None:
        self.dismiss(None)

    def say(self, text: str) -> None:
        self.query_one("#backup-error", Label).update(text)

    def value(self, selector: str) -> str:
        return self.query_one(selector, Input).value

    def busy(self, busy: bool) -> None:
        self.query_one("#backup-ok", Button).disabled = busy
        if busy:
            self.say("Working…")


class ExportBackupScreen(BackupDialog):
    """Dismisses with the path written, or None when cancelled."""

    def __init__(self, mailbox: Mailbox, config: Config, folder: Path) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.config = config
        self.folder = folder

    def compose(self) -> ComposeResult:
        target = self.folder / default_backup_name(self.mailbox.account)
        with VerticalScroll(id="backup-box"):
            yield Label("Back up this account", id="backup-title")
            yield Label(
                "One file with your private key, contacts, the server's pins and your "
                "settings, sealed with a passphrase. Anyone with the file and the "
                "passphrase can read your mail: keep both safe.",
                classes="backup-explain",
            )
            yield Label("Save it as", classes="backup-label")
            yield Input(str(target), id="backup-file")
            yield Label(
                f"Passphrase (at least {MIN_PASSPHRASE} characters)", classes="backup-label"
            )
            yield Input(password=True, id="backup-passphrase")
            yield Label("The same passphrase again", classes="backup-label")
            yield Input(password=True, id="backup-again")
            yield Label("", id="backup-error", markup=False)
            yield Label("Enter moves on, then backs up · Esc cancels · nothing is replaced")
            with Horizontal(id="backup-buttons"):
                yield Button("Cancel", id="backup-cancel")
                yield Button("Back up", id="backup-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#backup-passphrase", Input).focus()

    @on(Input.Submitted, "#backup-file")
    @on(Input.Submitted, "#backup-passphrase")
    def _next(self) -> None:
        self.focus_next()

    @on(Button.Pressed, "#backup-ok")
    @on(Input.Submitted, "#backup-again")
    def _accepted(self) -> None:
        passphrase = self.value("#backup-passphrase")
        try:
            check_passphrase(passphrase, self.value("#backup-again"))
        except BackupError as exc:
            self.say(str(exc))
            self.query_one("#backup-passphrase", Input).focus()
            return
        target = Path(self.value("#backup-file").strip()).expanduser()
        if not self.value("#backup-file").strip():
            self.say("Type where to save the backup.")
            return
        if target.exists():
            self.say(f"{target} already exists; choose another name (nothing is replaced).")
            self.query_one("#backup-file", Input).focus()
            return
        self.export(target, passphrase)

    @work(exclusive=True, group="backup")
    async def export(self, target: Path, passphrase: str) -> None:
        self.busy(True)
        mailbox = self.mailbox
        try:
            written = await asyncio.to_thread(
                export_account,
                mailbox.paths,
                self.config,
                mailbox.account,
                mailbox.identity,
                target,
                passphrase,
            )
        except Exception as exc:  # the boundary: every failure becomes words here
            self.busy(False)
            self.say(service.describe_error(exc))
            return
        self.app.notify(
            f"Backed up to {written}. It holds your private key: keep it somewhere safe.",
            title="Backup",
        )
        self.dismiss(written)


class ImportBackupScreen(BackupDialog):
    """Dismisses with (config, account, identity) once the account is added, or None."""

    def __init__(self, paths: Paths, config: Config) -> None:
        super().__init__()
        self.paths = paths
        self.config = config
        self.keystore: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="backup-box"):
            yield Label("I already have an address", id="backup-title")
            yield Label(
                "Add your account from a backup made with “Export / back up this account” "
                "(or rune-tui export). Its server is trusted as before. " + SECOND_DEVICE,
                classes="backup-explain",
            )
            yield Label("The backup file", classes="backup-label")
            yield Input(placeholder="~/rune-account-….runebackup", id="backup-file")
            yield Label("Its passphrase", classes="backup-label")
            yield Input(password=True, id="backup-passphrase")
            yield Label("", id="backup-keystore", classes="backup-label")
            yield Input(password=True, id="backup-key-passphrase")
            yield Label("", id="backup-error", markup=False)
            yield Label("Enter moves on, then adds the account · Esc cancels")
            with Horizontal(id="backup-buttons"):
                yield Button("Cancel", id="backup-cancel")
                yield Button("Add the account", id="backup-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#backup-key-passphrase").display = False
        self.query_one("#backup-file", Input).focus()
        self.choose_keystore()

    @work(exclusive=True, group="keystore")
    async def choose_keystore(self) -> None:
        self.keystore = await asyncio.to_thread(service.keystore_choice)
        kind, why = self.keystore
        label = self.query_one("#backup-keystore", Label)
        if kind == "file":
            label.update(
                f"The key is kept in an encrypted file here, because {why}. Its passphrase "
                "(empty: the backup's):"
            )
            self.query_one("#backup-key-passphrase").display = True
        else:
            label.update("The key goes in the system keyring.")

    @on(Input.Submitted, "#backup-file")
    def _next(self) -> None:
        self.focus_next()

    @on(Input.Submitted, "#backup-passphrase")
    def _passphrase_typed(self) -> None:
        if self.keystore is not None and self.keystore[0] == "file":
            self.focus_next()
        else:
            self._accepted()

    @on(Button.Pressed, "#backup-ok")
    @on(Input.Submitted, "#backup-key-passphrase")
    def _accepted(self) -> None:
        source = self.value("#backup-file").strip()
        if not source:
            self.say("Type the backup file's path.")
            self.query_one("#backup-file", Input).focus()
            return
        if self.keystore is None:
            self.say("Still looking for the system keyring; try again in a moment.")
            return
        passphrase = self.value("#backup-passphrase")
        key_passphrase = self.value("#backup-key-passphrase") or passphrase
        if self.keystore[0] == "file" and len(key_passphrase) < MIN_KEY_PASSPHRASE:
            self.say(f"The key file's passphrase needs at least {MIN_KEY_PASSPHRASE} characters.")
            self.query_one("#backup-key-passphrase", Input).focus()
            return
        self.restore(Path(source).expanduser(), passphrase, self.keystore[0], key_passphrase)

    @work(exclusive=True, group="backup")
    async def restore(self, source: Path, passphrase: str, keystore: str, key: str) -> None:
        self.busy(True)
        try:
            backup = await asyncio.to_thread(read_backup, source, passphrase)
            added: tuple[Config, Account, Identity] = await asyncio.to_thread(
                import_account,
                self.paths,
                self.config,
                backup,
                keystore=keystore,
                passphrase=key if keystore == "file" else None,
            )
        except Exception as exc:  # the boundary: every failure becomes words here
            self.busy(False)
            self.say(service.describe_error(exc))
            focus = "#backup-passphrase" if "passphrase" in str(exc) else "#backup-file"
            self.query_one(focus, Input).focus()
            return
        self.dismiss(added)
