"""Snapshots of every wizard step, the passphrase prompt and the start view.

The content is fixed — a hand-made server probe, fixed folders, a fixed username — so a
snapshot changes only when the screen's look does. Refresh with ``--snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from rune_proto.address import parse_address
from rune_tui.app import RuneApp
from rune_tui.config import Account, Config, Paths
from rune_tui.screens.backup import ImportBackupScreen
from rune_tui.screens.wizard import WizardScreen
from rune_tui.screens.wizard_steps import AddressStep
from tests.tui.wizard_pilot import SIZE, sample_probe, until, wizard

PATHS = Paths(Path("/home/you/.config/rune"), Path("/home/you/.local/share/rune"))
USERNAME = "k7m2q9xw4hfp"

Setup = Callable[[WizardScreen], None]


def still(pilot: Pilot[Any]) -> None:
    """No blinking cursors: a snapshot must not depend on when it was taken."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False


def at_step(setup: Setup) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await until(pilot, lambda: isinstance(app.screen, WizardScreen), "the wizard")
        screen = wizard(app)  # type: ignore[arg-type]
        screen.query_one("#username", Input).value = USERNAME
        await pilot.pause()  # let the field report its change before the step is set up
        setup(screen)
        still(pilot)
        await pilot.pause()

    return run_before


def wizard_app() -> RuneApp:
    return RuneApp(PATHS, Config(), server=("rune.example.org", 7117))


def server_error(screen: WizardScreen) -> None:
    screen.page("server").status(
        "Cannot reach rune.example.org:7117: connection refused.", error=True
    )


def trust(screen: WizardScreen) -> None:
    screen.show_probe(sample_probe())


def address(screen: WizardScreen) -> None:
    trust(screen)
    screen.go("address")


def address_invited(screen: WizardScreen) -> None:
    screen.show_probe(sample_probe(("free", "invite")))
    screen.go("address")
    screen.query_one("#method-invite").value = True  # type: ignore[attr-defined]
    screen.query_one("#token", Input).value = "Xq3v9kPz0w-Lr8sT2mNa_4bY"


def address_taken(screen: WizardScreen) -> None:
    address(screen)
    text = "That address is already taken; pick another username."
    screen.query_one(AddressStep).field_error("username", text)


def keys_file(screen: WizardScreen) -> None:
    address(screen)
    screen.show_keystore("file", "no system keyring is available")
    screen.go("keys")


def keys_keyring(screen: WizardScreen) -> None:
    address(screen)
    screen.show_keystore("keyring", "the system keyring (SecretService Keyring) is usable")
    screen.go("keys")


def register(screen: WizardScreen) -> None:
    keys_file(screen)
    screen.show_summary()
    screen.go("register")


STEPS: dict[str, Setup] = {
    "server": lambda screen: None,
    "server_error": server_error,
    "trust": trust,
    "address": address,
    "address_invited": address_invited,
    "address_taken": address_taken,
    "keys_file": keys_file,
    "keys_keyring": keys_keyring,
    "register": register,
}


@pytest.mark.parametrize("step", list(STEPS))
def test_wizard_step(step: str, snap_compare: Any) -> None:
    assert snap_compare(wizard_app(), terminal_size=SIZE, run_before=at_step(STEPS[step]))


def test_passphrase_prompt(snap_compare: Any) -> None:
    account = Account(
        parse_address("k7m2q9xw4hfp@example.org"),
        "rune.example.org",
        7117,
        "sha256:00",
        "k",
        "file",
    )
    app = RuneApp(PATHS, Config().with_account(account))

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: pilot.app.screen.query("#passphrase"), "the prompt")
        still(pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("step", ["server", "trust", "keys_file"])
def test_wizard_step_at_60x15(step: str, snap_compare: Any) -> None:
    """A short, narrow terminal: no title, one-row fields, the fields of the step in view."""
    assert snap_compare(wizard_app(), terminal_size=(60, 15), run_before=at_step(STEPS[step]))


def test_import_backup_dialog(snap_compare: Any) -> None:
    """ "I already have an address": the file, its passphrase, and the key file's."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await until(pilot, lambda: isinstance(app.screen, WizardScreen), "the wizard")
        await pilot.click("#import-backup")
        await until(pilot, lambda: isinstance(app.screen, ImportBackupScreen), "the dialog")
        screen = app.screen
        await until(pilot, lambda: screen.keystore is not None, "the keystore")  # type: ignore[attr-defined]
        app.screen.query_one("#backup-file", Input).value = "~/rune-account-3f2a91c0.runebackup"
        still(pilot)
        await pilot.pause()

    assert snap_compare(wizard_app(), terminal_size=SIZE, run_before=run_before)
