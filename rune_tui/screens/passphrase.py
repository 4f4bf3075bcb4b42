"""The prompt that unlocks a key kept in the encrypted-file fallback.

It stays up until the key opens, saying why it failed each time (a wrong passphrase is
the usual reason), so a typo never costs a restart. Unlocking runs scrypt, which takes a
noticeable fraction of a second, so it happens in a thread and the prompt keeps drawing.

At start-up there is nothing behind the prompt, so giving up quits. When switching
accounts (``back_to`` names the account still open underneath), giving up goes back to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, LoadingIndicator, Static

from ..messages import UnlockStarted

T = TypeVar("T")


class PassphraseScreen(ModalScreen[T | None], Generic[T]):
    """Ask for the passphrase, run ``unlock`` with it, and dismiss with what it returns.

    Escape (or the second button) quits the app, or with ``back_to`` dismisses with None.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "give_up", "Quit", id="passphrase.quit"),
    ]

    def __init__(
        self,
        address: str,
        key_dir: Path,
        unlock: Callable[[str], T],
        describe: Callable[[BaseException], str],
        *,
        back_to: str | None = None,
    ) -> None:
        super().__init__()
        self.address = address
        self.key_dir = key_dir
        self.back_to = back_to
        self._unlock = unlock
        self._describe = describe
        if back_to is not None:  # same key and id (so the keymap applies), honest name
            for key, bindings in self._bindings.key_to_bindings.items():
                self._bindings.key_to_bindings[key] = [
                    replace(b, description="Back") if b.id == "passphrase.quit" else b
                    for b in bindings
                ]

    def compose(self) -> ComposeResult:
        with Vertical(id="passphrase-dialog", classes="dialog"):
            yield Static("Unlock your key", classes="title")
            yield Static(
                Content.from_markup(
                    "The private key of [b]$address[/b] is kept in an encrypted file in "
                    "$folder, because this computer has no usable system keyring. "
                    "Type the passphrase you chose when you registered.",
                    address=self.address,
                    folder=str(self.key_dir),
                ),
                classes="explain",
            )
            if self.back_to is not None:
                yield Static(
                    Content.from_markup("Esc goes back to [b]$account[/b].", account=self.back_to),
                    classes="explain",
                    id="passphrase-back-hint",
                )
            yield Input(password=True, placeholder="passphrase", id="passphrase")
            yield Static("", id="passphrase-error", classes="error", markup=False)
            yield LoadingIndicator(id="passphrase-busy")
            with Horizontal(classes="buttons"):
                yield Button("Unlock", id="unlock", variant="primary")
                yield Button("Quit" if self.back_to is None else "Back", id="give-up")

    def on_mount(self) -> None:
        self.query_one("#passphrase-busy").display = False
        self.query_one("#passphrase", Input).focus()

    @on(Input.Submitted, "#passphrase")
    @on(Button.Pressed, "#unlock")
    def _submit(self) -> None:
        passphrase = self.query_one("#passphrase", Input).value
        if not passphrase:
            self._show_error("Type the passphrase first.")
            return
        self._show_error("")
        self.query_one("#passphrase-busy").display = True
        self.query_one("#unlock", Button).disabled = True
        self.try_unlock(passphrase)
        self.post_message(UnlockStarted())  # the app prepares the inbox meanwhile

    @work(exclusive=True, group="unlock", exit_on_error=False)
    async def try_unlock(self, passphrase: str) -> None:
        try:
            result = await asyncio.to_thread(self._unlock, passphrase)
        except Exception as exc:  # the boundary: every failure becomes words on screen
            self.query_one("#passphrase-busy").display = False
            self.query_one("#unlock", Button).disabled = False
            field = self.query_one("#passphrase", Input)
            field.value = ""
            field.focus()
            self._show_error(self._describe(exc))
            return
        self.dismiss(result)

    def _show_error(self, text: str) -> None:
        self.query_one("#passphrase-error", Static).update(text)

    @on(Button.Pressed, "#give-up")
    def action_give_up(self) -> None:
        if self.back_to is None:
            self.app.exit()
        else:
            self.workers.cancel_group(self, "unlock")
            self.dismiss(None)
