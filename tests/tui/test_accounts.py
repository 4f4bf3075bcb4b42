"""Several accounts, settings and the keymap: switch and add from the palette, clear words for
bad config values, every binding with an id, and docs/settings.md listing them all.

Switching and adding run the real app against a real ``rune-server`` (keys in encrypted
files, since tests get no keyring).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.dom import DOMNode
from textual.widgets import Input

from rune_tui import cli, service
from rune_tui.app import RuneApp
from rune_tui.config import (
    Config,
    ConfigError,
    Paths,
    Settings,
    load_config,
    save_config,
)
from rune_tui.keymap import binding_ids, unknown_ids
from rune_tui.screens.accounts import AccountsScreen
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.passphrase import PassphraseScreen
from rune_tui.screens.wizard import WizardScreen
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_mail_screens import wait_until
from tests.tui.wizard_pilot import PASSPHRASE, SIZE, to_register_step

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def write_config(tmp_path: Path, text: str) -> Paths:
    paths = Paths.from_profile(tmp_path)
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(text)
    return paths


ACCOUNT = """
[accounts."alice@example"]
host = "127.0.0.1"
port = 7117
tls_pin = "sha256:{pin}"
server_key = "rune1pk.x"
keystore = "file"
""".format(pin="00" * 32)


# -- settings: bad values are words, not tracebacks ------------------------------------------


def test_bad_settings_fall_back_and_are_reported(tmp_path: Path) -> None:
    paths = write_config(
        tmp_path,
        """
default_account = "nobody@example"
[settings]
poll_seconds = "often"
date_format = ""
theme = 7
poll_second = 3
[keymap]
"inbox.compose" = 5
"inbox.reply" = "ctrl+r"
"inbox.quit" = "q x"
inbox.refresh = "F5"
"""
        + ACCOUNT,
    )
    config = load_config(paths)
    assert config.settings == Settings(keymap={"inbox.reply": "ctrl+r", "inbox.refresh": "F5"})
    problems = "\n".join(config.problems)
    assert "settings.poll_seconds must be a whole number of seconds, not 'often'" in problems
    assert "settings.date_format must be a strftime pattern" in problems
    assert "settings.theme must be a theme's name, not 7" in problems
    assert "settings.poll_second is not a setting" in problems
    assert "keymap.inbox.compose must be keys in quotes" in problems
    assert "keymap.inbox.quit = 'q x' is not a comma-separated list of keys" in problems
    assert "default_account 'nobody@example' is not one of the accounts" in problems
    assert config.current is not None and str(config.current.address) == "alice@example"


def test_a_short_poll_interval_is_raised_to_the_least(tmp_path: Path) -> None:
    paths = write_config(tmp_path, "[settings]\npoll_seconds = 1\n")
    config = load_config(paths)
    assert config.settings.poll_seconds == 5
    assert config.problems == ("settings.poll_seconds is 1; the least is 5, so using that",)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("port = 70000", 'accounts."alice@example".port must be a port number'),
        ('port = "x"', 'accounts."alice@example".port must be a port number'),
        ('keystore = "usb"', 'accounts."alice@example".keystore must be "keyring" or "file"'),
    ],
)
def test_a_damaged_account_names_the_entry(tmp_path: Path, entry: str, message: str) -> None:
    key = entry.split(" ")[0]
    text = "\n".join(
        entry if line.startswith(f"{key} =") else line for line in ACCOUNT.splitlines()
    )
    paths = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(paths)
    assert str(raised.value).startswith(f"{paths.config_file}: {message}")


def test_a_missing_field_and_a_bad_address_are_named(tmp_path: Path) -> None:
    paths = write_config(tmp_path, '[accounts."alice@example"]\nhost = "h"\n')
    with pytest.raises(ConfigError, match="is missing port, tls_pin, server_key"):
        load_config(paths)
    paths = write_config(tmp_path, ACCOUNT.replace("alice@example", "no at sign"))
    with pytest.raises(ConfigError, match="is not an address"):
        load_config(paths)


def test_the_command_line_says_it_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(tmp_path / "p", ACCOUNT.replace("port = 7117", "port = -1"))
    assert cli.main(["--profile", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rune-tui: cannot read the config: ") and err.count("\n") == 1
    assert "port must be a port number" in err and "Traceback" not in err


def test_saving_keeps_the_settings_and_the_keymap(tmp_path: Path) -> None:
    paths = write_config(tmp_path, '[keymap]\n"inbox.compose" = "w"\n')
    config = load_config(paths)
    save_config(paths, config)
    again = load_config(paths)
    assert again.settings.keymap == {"inbox.compose": "w"}
    assert again.problems == ()


async def test_the_app_shows_settings_problems_and_unknown_keymap_ids(tmp_path: Path) -> None:
    paths = write_config(
        tmp_path,
        '[settings]\ntheme = "no-such-theme"\npoll_seconds = "x"\n',
    )
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, WizardScreen))
        messages = [str(n.message) for n in app._notifications]
        assert any("settings.poll_seconds must be a whole number" in m for m in messages)
        assert any("settings.theme 'no-such-theme' is not a theme" in m for m in messages)
        assert all(n.severity == "warning" for n in app._notifications)
        named = re.search(r"See (\S+settings\.md);", messages[0])
        assert named is not None, messages[0]
        assert Path(named.group(1)).is_absolute()  # found from any folder, wheel or source
        assert Path(named.group(1)).read_text() == DOCS.read_text()  # the shipped copy
    assert unknown_ids({"inbox.compose": "w", "inbox.compsoe": "w"}) == ["inbox.compsoe"]


# -- keymap: every binding has an id, and the docs list them all ---------------------------------


def _rune_classes() -> list[type[DOMNode]]:
    binding_ids()  # imports every rune_tui module

    def walk(cls: type[DOMNode]) -> list[type[DOMNode]]:
        return [c for sub in cls.__subclasses__() for c in (sub, *walk(sub))]

    return [c for c in walk(DOMNode) if c.__module__.startswith("rune_tui")]


def test_every_binding_has_an_id() -> None:
    missing = []
    for cls in _rune_classes():
        for binding in cls.__dict__.get("BINDINGS", ()):
            if not isinstance(binding, Binding) or not binding.id:
                missing.append(f"{cls.__name__}: {binding!r}")
    assert missing == []
    ids = binding_ids()
    assert {"app.contacts", "compose.editor", "compose.attach", "contacts.compare"} <= set(ids)
    assert ids["compose.editor"].keys == "ctrl+e"
    assert ids["app.contacts"].keys == "C"


def test_settings_md_documents_every_setting_and_binding_id() -> None:
    text = DOCS.read_text("utf-8")
    for setting in ("poll_seconds", "date_format", "theme", "[keymap]", "default_account"):
        assert f"`{setting}`" in text, setting
    undocumented = [i for i in sorted(binding_ids()) if f"`{i}`" not in text]
    assert undocumented == [], f"add these binding ids to docs/settings.md: {undocumented}"


# -- several accounts, against a real server ----------------------------------------------------


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


ACCOUNT_IDS: dict[str, str] = {}  # address → its opaque name in config.toml


def default_address(paths: Paths) -> str | None:
    """The address config.toml's default_account names (by its opaque id)."""
    default = load_config(paths).default_account
    return next((a for a, i in ACCOUNT_IDS.items() if i == default), None)


async def two_accounts(server: RuneServerProcess, profile: Path) -> tuple[Paths, list[str]]:
    paths = Paths.from_profile(profile)
    probe = await service.probe_server(server.host, server.port)
    names = []
    config = Config()
    for name in ("first", "second"):
        config, account, _ = await service.register_account(
            paths,
            config,
            probe,
            f"{name}-{profile.parent.name[-6:]}",
            keystore="file",
            passphrase=PASSPHRASE,
        )
        names.append(str(account.address))
        ACCOUNT_IDS[str(account.address)] = account.id
    return paths, names


async def unlock(pilot: Any, app: RuneApp) -> None:
    await wait_until(pilot, lambda: isinstance(app.screen, PassphraseScreen))
    app.screen.query_one("#passphrase", Input).value = PASSPHRASE
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))


async def palette(pilot: Any, command: str) -> None:
    """The command palette, waiting for the highlighted match rather than a fixed pause."""
    from tests.tui.test_contacts import palette as run_from_palette

    await run_from_palette(pilot, command)


async def test_switch_account_from_the_palette(server: RuneServerProcess, tmp_path: Path) -> None:
    paths, (first, second) = await two_accounts(server, tmp_path / "p")
    assert default_address(paths) == second  # the last registered
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot, app)
        assert app.sub_title == second
        inbox = app.screen
        assert isinstance(inbox, InboxScreen) and str(inbox.mailbox.address) == second
        await palette(pilot, "switch account")
        await wait_until(pilot, lambda: isinstance(app.screen, AccountsScreen))
        listing = app.screen.query_one("#accounts-list")
        prompts = [str(listing.get_option_at_index(i).prompt) for i in range(2)]  # type: ignore[attr-defined]
        # config.toml names accounts by opaque ids: a locked one shows its id's start
        locked = f"  account {ACCOUNT_IDS[first][:8]} on {server.host}"
        assert prompts[0].startswith(locked) and prompts[1].startswith(f"● {second}")
        await pilot.press("up", "enter")
        await unlock(pilot, app)  # the other account's key is unlocked in its turn
        assert app.sub_title == first
        assert str(app.screen.mailbox.address) == first  # type: ignore[attr-defined]
        assert app.screen is not inbox and inbox not in app.screen_stack
        assert len(app.screen_stack) == 2  # the start view and the new inbox, nothing else
    assert default_address(paths) == first  # remembered for the next start


async def test_add_account_runs_the_wizard_and_opens_the_new_inbox(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    paths, (first, second) = await two_accounts(server, tmp_path / "p")
    app = RuneApp(paths, server=(server.host, server.port))
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot, app)
        await palette(pilot, "add account")
        await wait_until(pilot, lambda: isinstance(app.screen, WizardScreen))
        await pilot.press("escape")  # adding is optional: Escape leaves the wizard
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert app.sub_title == second
        app.action_add_account()
        third = f"third-{tmp_path.name[-6:]}"
        await to_register_step(pilot, app, third)
        await pilot.press("enter")  # Register
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen), timeout=20)
        assert app.sub_title.startswith(third + "@")
        assert len(app.screen_stack) == 2
    config = load_config(paths)
    assert [a.id for a in config.accounts][:2] == [ACCOUNT_IDS[first], ACCOUNT_IDS[second]]
    assert app.account is not None and str(app.account.address) == app.sub_title
    assert len(config.accounts) == 3 and config.default_account == app.account.id


async def test_escape_at_the_passphrase_while_switching_goes_back(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    paths, (first, second) = await two_accounts(server, tmp_path / "p")
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot, app)
        inbox = app.screen
        await palette(pilot, "switch account")
        await wait_until(pilot, lambda: isinstance(app.screen, AccountsScreen))
        await pilot.press("up", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PassphraseScreen))
        prompt = app.screen
        assert prompt.query_one("#give-up").label.plain == "Back"  # type: ignore[attr-defined]
        escape = prompt._bindings.key_to_bindings["escape"]
        assert [b.description for b in escape] == ["Back"]  # in help and the palette too
        hint = str(prompt.query_one("#passphrase-back-hint").render())
        assert f"Esc goes back to {second}" in hint
        await pilot.press(*"wrong one", "enter")  # a failed try keeps the way back
        await wait_until(pilot, lambda: bool(str(prompt.query_one("#passphrase-error").render())))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is inbox)
        await pilot.pause(0.3)
        assert app.is_running and app.return_code is None  # the app did not quit
        assert app.sub_title == second and app.mailbox is inbox.mailbox  # type: ignore[attr-defined]
        assert len(app.screen_stack) == 2
        assert any("stays locked" in str(n.message) for n in app._notifications)
        assert default_address(paths) == second  # nothing switched
        # Switching again, with the passphrase, still works.
        await palette(pilot, "switch account")
        await wait_until(pilot, lambda: isinstance(app.screen, AccountsScreen))
        await pilot.press("up", "enter")
        await unlock(pilot, app)
        assert app.sub_title == first and len(app.screen_stack) == 2
    assert default_address(paths) == first


async def test_escape_at_the_first_passphrase_prompt_still_quits(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    paths, _ = await two_accounts(server, tmp_path / "p")
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, PassphraseScreen))
        assert app.screen.query_one("#give-up").label.plain == "Quit"  # type: ignore[attr-defined]
        assert not app.screen.query("#passphrase-back-hint")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.is_running)
