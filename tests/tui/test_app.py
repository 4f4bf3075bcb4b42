"""The app shell: what it opens at start-up, the palette, keymap and theme, and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandPalette
from textual.widgets import Input

from rune_proto.address import parse_address, random_part
from rune_tui import cli, service
from rune_tui.app import RuneApp, ScreenCommands
from rune_tui.config import Account, Config, Paths, Settings, load_config, save_config
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.passphrase import PassphraseScreen
from rune_tui.screens.wizard import WizardScreen
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_contacts import palette
from tests.tui.wizard_pilot import PASSPHRASE, SIZE, sample_probe, text_of, until, wizard


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


async def registered_profile(server: RuneServerProcess, profile: Path) -> Account:
    """A profile whose account was registered the way the wizard does it (file keystore)."""
    paths = Paths.from_profile(profile)
    probe = await service.probe_server(server.host, server.port)
    _, account, _ = await service.register_account(
        paths, Config(), probe, "start-" + random_part(6), keystore="file", passphrase=PASSPHRASE
    )
    return account


async def test_no_account_opens_the_wizard(tmp_path: Path) -> None:
    app = RuneApp(Paths.from_profile(tmp_path / "profile"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, WizardScreen), "the wizard")
        assert app.screen.query_one("#host").has_focus  # nothing pre-filled: type the host


async def test_a_key_file_asks_for_its_passphrase_until_it_opens(
    tmp_path: Path, server: RuneServerProcess
) -> None:
    account = await registered_profile(server, tmp_path / "profile")
    app = RuneApp(Paths.from_profile(tmp_path / "profile"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PassphraseScreen), "the prompt")
        await pilot.press(*"not it at all", "enter")
        await until(pilot, lambda: text_of(app, "#passphrase-error"), "the error")
        assert text_of(
            app, "#passphrase-error"
        ).startswith(  # config.toml names no address
            f"Wrong passphrase for the key of account {account.id[:8]} on {account.host}"
        )
        app.screen.query_one("#passphrase").value = PASSPHRASE  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
        assert app.sub_title == str(account.address)
        # The palette offers the inbox's commands, not its cursor keys.
        names = {str(hit.text) async for hit in ScreenCommands(app.screen).discover()}
        assert {"Refresh", "Compose", "Help", "Quit"} <= names
        assert "Down" not in names


async def test_a_keyring_that_fails_is_explained_with_a_way_out(tmp_path: Path) -> None:
    # The autouse fixture gives keyring's "fail" backend: no key can be read from it.
    paths = Paths.from_profile(tmp_path / "profile")
    account = Account(
        parse_address("someone@example.org"), "127.0.0.1", 7117, "sha256:" + "00" * 32, "key"
    )
    save_config(paths, Config().with_account(account))
    app = RuneApp(paths, server=("127.0.0.1", 7117))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.query_one("#start-actions").display, "the choices")
        assert text_of(app, "#start-status").startswith(
            "Cannot open the key of someone@example.org. The system keyring"
        )
        await pilot.pause()  # let the buttons be laid out before clicking one
        await pilot.click("#start-wizard")
        await until(pilot, lambda: isinstance(app.screen, WizardScreen), "the wizard")


async def test_the_keymap_in_the_settings_rebinds_keys(tmp_path: Path) -> None:
    settings = Settings(keymap={"wizard.back": "ctrl+b"})
    app = RuneApp(Paths.from_profile(tmp_path / "profile"), Config(settings=settings))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, WizardScreen), "the wizard")
        wizard(app).show_probe(sample_probe())
        await pilot.pause()
        await pilot.press("escape")
        assert wizard(app).current == "trust"  # escape is no longer "back"
        await pilot.press("ctrl+b")
        assert wizard(app).current == "server"


async def test_the_theme_comes_from_the_settings_and_a_new_one_is_saved(tmp_path: Path) -> None:
    paths = Paths.from_profile(tmp_path / "profile")
    app = RuneApp(paths, Config(settings=Settings(theme="nord")))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "nord"
        app.theme = "gruvbox"
        await pilot.pause()
    assert load_config(paths).settings.theme == "gruvbox"


async def test_a_theme_picked_in_the_app_keeps_the_users_comments(tmp_path: Path) -> None:
    paths = Paths.from_profile(tmp_path / "profile")
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(
        "# my settings: see docs/settings.md\n"
        "[settings]\n"
        "poll_seconds = 300  # my server is slow\n"
        'theme = "nord"  # dark, for the evenings\n'
    )
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, WizardScreen), "the wizard")
        assert app.theme == "nord"
        app.theme = "gruvbox"
        await until(pilot, lambda: "gruvbox" in paths.config_file.read_text(), "the save")
    text = paths.config_file.read_text()
    assert "# my settings: see docs/settings.md" in text
    assert "poll_seconds = 300  # my server is slow" in text
    assert 'theme = "gruvbox"  # dark, for the evenings' in text
    assert load_config(paths).settings.poll_seconds == 300


async def test_the_palette_offers_what_the_screen_can_do(tmp_path: Path) -> None:
    app = RuneApp(Paths.from_profile(tmp_path / "profile"), Config())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, WizardScreen), "the wizard")

        async def names() -> set[str]:
            provider = ScreenCommands(app.screen)
            return {str(hit.text) async for hit in provider.discover()}

        assert "Back" not in await names()  # nothing comes before the first step
        wizard(app).show_probe(sample_probe())
        await pilot.pause()
        assert {"Back", "Quit"} <= await names()
        await palette(pilot, "back")  # waits for the match, not for a fixed 0.3 s
        await until(pilot, lambda: wizard(app).current == "server", "the palette's Back")


async def test_the_palettes_app_commands_run_the_apps_actions(tmp_path: Path) -> None:
    """The app-wide commands are run by action name: Theme opens the theme picker."""
    app = RuneApp(Paths.from_profile(tmp_path / "profile"), Config())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, WizardScreen), "the wizard")
        await palette(pilot, "theme")

        def theme_picker() -> bool:
            screen = app.screen
            if not isinstance(screen, CommandPalette):
                return False
            return screen.query_one(Input).placeholder == "Search for themes…"

        await until(pilot, theme_picker, "the theme picker")


# -- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7117", ("127.0.0.1", 7117)),
        ("rune.example.org", ("rune.example.org", 7117)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::1]", ("::1", 7117)),
    ],
)
def test_server_option(text: str, expected: tuple[str, int]) -> None:
    assert cli.parse_server(text) == expected


@pytest.mark.parametrize("text", ["host:0", "host:70000", "host:port", ":7117", "a b:1"])
def test_bad_server_option_is_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--server", text])
    assert exited.value.code == 2
    assert "--server" in capsys.readouterr().err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("rune-tui ")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for option in ("--profile", "--config-dir", "--data-dir", "--server"):
        assert option in out


def test_folders_from_the_options(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["--profile", str(tmp_path), "--data-dir", "/d"])
    assert cli.paths_from(args) == Paths(tmp_path / "config", Path("/d"))
    args = cli.build_parser().parse_args(["--config-dir", "/c"])
    assert cli.paths_from(args).config_dir == Path("/c")


def test_a_damaged_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Paths.from_profile(tmp_path).config_file
    config.parent.mkdir(parents=True)
    config.write_text("this is = = not toml")
    assert cli.main(["--profile", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rune-tui: cannot read the config:") and err.count("\n") == 1
