"""Snapshots of switching accounts: the account list, and the passphrase prompt that a
switch to a key-file account shows over the inbox still open (with Back, not Quit).

Fixed accounts and folders, no network; refresh with ``--snapshot-update`` and look.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Static

from rune_proto.address import parse_address
from rune_tui.app import RuneApp
from rune_tui.config import Account, Config
from rune_tui.screens.accounts import AccountsScreen
from rune_tui.screens.passphrase import PassphraseScreen
from tests.tui.test_mail_screens import MailApp
from tests.tui.test_snapshots_mail import steady

SIZE = (120, 36)
SnapCompare = Callable[..., bool]


def account(name: str, host: str, keystore: str) -> Account:
    return Account(parse_address(name), host, 7117, "sha256:" + "00" * 32, "k", keystore)


HOME = account("k7m2q9xw4hfp@example.org", "rune.example.org", "keyring")
WORK = account("ada@quietbay", "mail.quietbay.net", "file")
CONFIG = Config().with_account(WORK).with_account(HOME)


def test_accounts_screen(snap_compare: SnapCompare) -> None:
    app = MailApp(lambda: AccountsScreen(CONFIG, HOME))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady())


class Underneath(App[None]):
    """The dialog as the app styles it, over a stand-in for the inbox left open."""

    CSS_PATH = RuneApp.CSS_PATH

    def compose(self) -> ComposeResult:
        yield Static(f"{HOME.address} — the inbox stays open underneath")

    def on_mount(self) -> None:
        self.push_screen(
            PassphraseScreen(
                str(WORK.address),
                Path("/home/you/.local/share/rune/keys"),
                lambda passphrase: None,
                str,
                back_to=str(HOME.address),
            )
        )


def test_passphrase_when_switching(snap_compare: SnapCompare) -> None:
    assert snap_compare(Underneath(), terminal_size=SIZE, run_before=steady())
