"""What happens between Enter on the passphrase and the inbox's first frame (issue 17).

The scrypt of the key file leaves the event loop idle: the mail screens' stylesheet is
read then, not when the inbox is pushed. The refresh (contact book, replay log, the
connection) starts only once the inbox has been drawn: the cached rows need none of it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rune_tui import app as app_module
from rune_tui import service_mailbox
from rune_tui.app import RuneApp
from rune_tui.config import Account, Paths
from rune_tui.screens import STYLES
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.passphrase import PassphraseScreen
from rune_tui.service import Unlocked
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_app import registered_profile
from tests.tui.wizard_pilot import PASSPHRASE, SIZE, text_of, until

HELD_SECONDS = 30.0  # the longest a held unlock waits for the test to let it go


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


class FrameCountingApp(RuneApp):
    """Counts the frames drawn while the inbox is the screen."""

    inbox_frames = 0

    def post_display_hook(self) -> None:  # Textual calls it after each frame
        if isinstance(self.screen, InboxScreen):
            self.inbox_frames += 1


async def test_the_inbox_is_drawn_before_the_refresh_starts(
    tmp_path: Path, server: RuneServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    await registered_profile(server, tmp_path / "profile")
    app = FrameCountingApp(Paths.from_profile(tmp_path / "profile"))
    frames_at_refresh: list[int] = []
    refresh = service_mailbox.Mailbox.refresh

    async def counted_refresh(mailbox: service_mailbox.Mailbox, *args: object) -> list[str]:
        frames_at_refresh.append(app.inbox_frames)
        return await refresh(mailbox, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(service_mailbox.Mailbox, "refresh", counted_refresh)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PassphraseScreen), "the prompt")
        await pilot.press(*PASSPHRASE, "enter")
        await until(pilot, lambda: frames_at_refresh, "the first refresh")
        await until(pilot, lambda: "Checking" not in text_of(app, "#inbox-status"), "the end")
        assert frames_at_refresh[0] >= 1, "the refresh started before the inbox was drawn"


async def test_the_mail_stylesheet_is_read_while_the_key_unlocks(
    tmp_path: Path, server: RuneServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    await registered_profile(server, tmp_path / "profile")
    app = RuneApp(Paths.from_profile(tmp_path / "profile"))
    release = threading.Event()
    unlock = app_module._unlock_with_passphrase

    def held_unlock(paths: Paths, account: Account, passphrase: str) -> Unlocked:
        release.wait(HELD_SECONDS)  # the scrypt, stretched: the test says when it ends
        return unlock(paths, account, passphrase)

    monkeypatch.setattr(app_module, "_unlock_with_passphrase", held_unlock)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, PassphraseScreen), "the prompt")
            assert not app.stylesheet.has_source(str(STYLES), "")  # not before it is needed
            await pilot.press(*PASSPHRASE, "enter")
            await until(
                pilot, lambda: app.stylesheet.has_source(str(STYLES), ""), "the mail stylesheet"
            )
            assert isinstance(app.screen, PassphraseScreen)  # the key is still unlocking
            release.set()
            await until(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
            # Its rules apply, variables and all: the preview is mail.tcss's 14 rows high.
            await until(pilot, lambda: app.screen.query_one("#preview").size.height, "layout")
            assert app.screen.query_one("#preview").outer_size.height == 14
            await until(
                pilot, lambda: "Checking" not in text_of(app, "#inbox-status"), "the refresh"
            )
            await pilot.pause()  # the header's title watchers run before the app closes
    finally:
        release.set()
