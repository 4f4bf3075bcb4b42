"""Pick one of the accounts in the config (the palette's "Switch account")."""

from __future__ import annotations

from pathlib import PurePath
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from ..config import Account, Config
from . import DAILY_STYLES, STYLES

KEYSTORE_TEXT = {"keyring": "key in the system keyring", "file": "key in an encrypted file"}


class AccountsScreen(ModalScreen[Account | None]):
    """Dismisses with the chosen account, or None; the current one is marked."""

    CSS_PATH: ClassVar[list[str | PurePath]] = [STYLES, DAILY_STYLES]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="accounts.close"),
    ]

    def __init__(self, config: Config, current: Account | None) -> None:
        super().__init__()
        self.config = config
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="accounts-box", classes="dialog"):
            yield Label("Switch account", classes="title")
            yield OptionList(id="accounts-list")
            yield Static(
                "Enter opens the account's inbox (it becomes the default) · Esc closes. "
                "Add account in the command palette registers another.",
                classes="explain",
            )

    def on_mount(self) -> None:
        listing = self.query_one("#accounts-list", OptionList)
        current = self.current.config_key if self.current is not None else None
        # The config names accounts by opaque ids: an address is known once its key is
        # unlocked (the open account's, and any named in an older config).
        labels = [
            self.current.label if a.config_key == current and self.current else a.label
            for a in self.config.accounts
        ]
        width = max((len(label) for label in labels), default=0)
        for account, label in zip(self.config.accounts, labels, strict=True):
            mark = "●" if account.config_key == current else " "
            where = f"{account.host}:{account.port}"
            keys = KEYSTORE_TEXT.get(account.keystore, account.keystore)
            listing.add_option(
                Option(f"{mark} {label.ljust(width)}   {where} · {keys}", id=account.config_key)
            )
            if account.config_key == current:
                listing.highlighted = listing.option_count - 1
        listing.focus()

    @on(OptionList.OptionSelected, "#accounts-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.config.accounts[event.option_index])

    def action_close(self) -> None:
        self.dismiss(None)
