"""The backup dialogs in the app: "Export / back up this account" from the palette, and
"I already have an address" in the wizard, against a real server and real files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from textual.widgets import Input, Label

from rune_tui.app import RuneApp
from rune_tui.backup import read_backup
from rune_tui.components.message_list import MessageList
from rune_tui.config import Paths, load_config
from rune_tui.screens.backup import ExportBackupScreen, ImportBackupScreen
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.passphrase import PassphraseScreen
from rune_tui.screens.wizard import WizardScreen
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_app import registered_profile
from tests.tui.test_backup import BACKUP_PASSPHRASE, open_mailbox
from tests.tui.test_contacts import palette
from tests.tui.test_mail_screens import wait_until
from tests.tui.test_sent import person, signed_in
from tests.tui.wizard_pilot import PASSPHRASE, SIZE


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


def error_text(app: RuneApp) -> str:
    return str(app.screen.query_one("#backup-error", Label).visual)


def fill(app: RuneApp, selector: str, text: str) -> None:
    app.screen.query_one(selector, Input).value = text


async def test_export_from_the_palette_then_import_in_the_wizard(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    account = await registered_profile(server, profile)
    bob = await person(server, "bob", tmp_path)
    target = tmp_path / "backup" / "mine.runebackup"
    target.parent.mkdir()
    app = RuneApp(Paths.from_profile(profile))
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await palette(pilot, "back up")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportBackupScreen))
        fill(app, "#backup-file", str(target))
        await pilot.press(*"too short", "enter", *"too short", "enter")
        await wait_until(pilot, lambda: "at least 12 characters" in error_text(app))
        fill(app, "#backup-passphrase", BACKUP_PASSPHRASE)
        fill(app, "#backup-again", BACKUP_PASSPHRASE + "x")
        app.screen.query_one("#backup-again", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "differ" in error_text(app))
        fill(app, "#backup-again", BACKUP_PASSPHRASE)
        app.screen.query_one("#backup-again", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert any("Backed up to" in str(n.message) for n in app._notifications)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    address = open_mailbox(profile).address
    assert read_backup(target, BACKUP_PASSPHRASE).address == address
    await bob.send(str(address), "For the new disk", "Hello again.")

    fresh = tmp_path / "fresh"
    app = RuneApp(Paths.from_profile(fresh))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, WizardScreen))
        await pilot.click("#import-backup")
        await wait_until(pilot, lambda: isinstance(app.screen, ImportBackupScreen))
        screen = app.screen
        assert "gone for both" in str(screen.query_one(".backup-explain", Label).visual)
        await wait_until(pilot, lambda: screen.keystore is not None)  # type: ignore[attr-defined]
        await pilot.press(*str(tmp_path / "nothing-here"), "enter", *"whatever", "enter", "enter")
        await wait_until(pilot, lambda: "There is no file" in error_text(app))
        fill(app, "#backup-file", str(target))
        fill(app, "#backup-passphrase", "not the passphrase")
        app.screen.query_one("#backup-key-passphrase", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "Wrong passphrase for this backup" in error_text(app))
        fill(app, "#backup-passphrase", BACKUP_PASSPHRASE)
        fill(app, "#backup-key-passphrase", "short")
        app.screen.query_one("#backup-key-passphrase", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "at least 8 characters" in error_text(app))
        fill(app, "#backup-key-passphrase", PASSPHRASE)
        app.screen.query_one("#backup-key-passphrase", Input).focus()
        await pilot.press("enter")
        # No trust prompt: the pins came with the backup; straight to the inbox.
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: listing.row_count == 1)
        assert listing.highlighted is not None
        assert listing.highlighted.subject == "For the new disk"
    (imported,) = load_config(Paths.from_profile(fresh)).accounts
    assert imported.tls_pin == account.tls_pin and imported.server_key == account.server_key

    app = RuneApp(Paths.from_profile(fresh))  # the key file takes its own passphrase
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, PassphraseScreen))
        await signed_in(pilot, app)
