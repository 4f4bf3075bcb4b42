"""Issue 16, a newcomer's list: the mail items (3, 4, 5, 6, 9 and ``u`` of 10).

Pilot over the inbox, the reader and compose; where the server's answer matters (5, 6,
9) against a real rune-server over real TLS.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, TextArea

from rune_proto.envelope import Attachment
from rune_tui.components.formatting import FILES_MARK
from rune_tui.components.message_header import MessageHeader
from rune_tui.components.message_list import MessageList
from rune_tui.config import Paths, Settings, load_config, save_config
from rune_tui.screens import inbox as inbox_module
from rune_tui.screens import save_dialog
from rune_tui.screens.compose import ComposeScreen
from rune_tui.screens.confirm import ConfirmScreen
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.reader import ReaderScreen
from rune_tui.screens.save_dialog import SaveDialog
from rune_tui.service import Mailbox
from tests.server_process import ServerFactory
from tests.tui.test_daily_inbox import app_for, mailbox_of
from tests.tui.test_mail_screens import (
    SIZE,
    MailApp,
    inbox_app,
    label_text,
    make_message,
    registered_mailbox,
    sample_messages,
    wait_until,
)


def notices(app: MailApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def row_text(app: MailApp, row: int) -> str:
    listing = app.screen.query_one(MessageList)
    return listing.render_line(row - round(listing.scroll_y)).text


# -- 3. s asks where to save ------------------------------------------------------------


async def test_s_asks_where_and_remembers_the_folder(tmp_path: Path, monkeypatch: Any) -> None:
    downloads = tmp_path / "Downloads"
    elsewhere = tmp_path / "projects"
    downloads.mkdir()
    elsewhere.mkdir()
    monkeypatch.setattr(save_dialog, "download_dir", lambda: downloads)
    message = make_message(1, attachments=(Attachment("report.csv", b"a,b\n"),))
    (elsewhere / "report.csv").write_bytes(b"mine")
    app = MailApp(lambda: ReaderScreen(mailbox_of(tmp_path, [message]), message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SaveDialog))
        assert list(downloads.iterdir()) == []  # nothing written before the answer
        folder = app.screen.query_one("#save-folder", Input)
        assert folder.value == str(downloads)
        assert app.screen.query_one("#save-name", Input).value == "report.csv"
        folder.value = str(tmp_path / "no such folder")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SaveDialog)  # a wrong folder is said, not saved
        assert "is not a folder" in label_text(app, "#save-error")
        folder.value = str(elsewhere)
        await pilot.press("enter")
        await wait_until(pilot, lambda: (elsewhere / "report (1).csv").exists())
        assert (elsewhere / "report.csv").read_bytes() == b"mine"  # never overwritten
        assert (elsewhere / "report (1).csv").read_bytes() == b"a,b\n"
        # The next save starts in the folder used last; Escape cancels.
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SaveDialog))
        assert app.screen.query_one("#save-folder", Input).value == str(elsewhere)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["report (1).csv", "report.csv"]


def test_save_folder_and_confirm_quit_are_settings(tmp_path: Path) -> None:
    paths = Paths.from_profile(tmp_path)
    config = load_config(paths)
    assert config.settings.confirm_quit is True and config.settings.save_folder == ""
    settings = Settings(confirm_quit=False, save_folder=str(tmp_path))
    save_config(paths, type(config)(settings=settings))
    again = load_config(paths).settings
    assert (again.confirm_quit, again.save_folder) == (False, str(tmp_path))
    paths.config_file.write_text('[settings]\nconfirm_quit = "maybe"\n')
    problems = load_config(paths).problems
    assert any("confirm_quit must be true or false" in p for p in problems)


# -- 4. q asks first --------------------------------------------------------------------


async def test_q_asks_before_quitting(tmp_path: Path) -> None:
    app = app_for(mailbox_of(tmp_path, sample_messages(3)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert app.return_code is None  # still running
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: app.return_code is not None)


async def test_confirm_quit_off_quits_at_once(tmp_path: Path) -> None:
    mailbox = mailbox_of(tmp_path, sample_messages(3))
    app = MailApp(lambda: InboxScreen(mailbox, Settings(confirm_quit=False)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None)


# -- 10. u after the undo window ----------------------------------------------------------


async def test_u_after_the_window_says_it_is_too_late(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_module, "DELETE_UNDO_SECONDS", 0.05)
    messages = sample_messages(3)
    mailbox = mailbox_of(tmp_path, messages)
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("u")
        await wait_until(pilot, lambda: "Nothing to undo." in notices(app))
        await pilot.press("d")
        await wait_until(pilot, lambda: mailbox.deleted == [messages[0].id])
        await wait_until(pilot, lambda: not inbox_screen(app).pending)
        await pilot.press("u")
        await wait_until(pilot, lambda: any("Too late to undo" in n for n in notices(app)))


def inbox_screen(app: MailApp) -> InboxScreen:
    screen = app.screen
    assert isinstance(screen, InboxScreen)
    return screen


# -- 9. attachments shown in the list and the preview --------------------------------------


async def test_list_and_preview_mark_attachments(tmp_path: Path) -> None:
    plain = make_message(1, subject="Plain")
    with_files = make_message(
        2, subject="Figures", attachments=(Attachment("q3.xlsx", b"x"), Attachment("a.png", b"p"))
    )
    app = app_for(mailbox_of(tmp_path, [plain, with_files]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert FILES_MARK not in row_text(app, 0)
        assert f"{FILES_MARK} Figures" in row_text(app, 1)
        await pilot.press("j")
        header = app.screen.query_one("#preview-header", MessageHeader)
        await wait_until(pilot, lambda: header.message == with_files)
        await pilot.pause()
        assert f"{FILES_MARK} 2 files: q3.xlsx, a.png" in header.render().plain  # type: ignore[union-attr]


async def test_cached_rows_mark_attachments_without_opening(
    tmp_path: Path, rune_server: ServerFactory
) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    await bob.send(str(alice.address), "Minutes", "Attached.", [("minutes.txt", b"m" * 100)])
    await alice.refresh()
    alice.flush()
    # A new start: the rows come from the cache's index (summaries), not from the server.
    again = Mailbox(alice.paths, alice.account, alice.identity)
    app = inbox_app(again, refresh_on_mount=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.query_one(MessageList).row_count == 1)
        assert f"{FILES_MARK} Minutes" in row_text(app, 0)


# -- 5 and 6. sending: words for a down server, a wrong domain, an unknown user -----------


async def test_a_send_while_the_server_is_down_says_so_and_a_later_success_clears_it(
    tmp_path: Path, rune_server: ServerFactory
) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    app = inbox_app(alice)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "0 messages" in label_text(app, "#inbox-status"))
        await asyncio.to_thread(server.stop)
        await pilot.press("R")
        await wait_until(pilot, lambda: "Cannot reach" in label_text(app, "#inbox-status"))
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        app.screen.query_one("#compose-to", Input).value = str(bob.address)
        app.screen.query_one("#compose-subject", Input).value = "While you were down"
        app.screen.query_one("#compose-body", TextArea).text = "Kept, then sent."
        await pilot.press("ctrl+s")
        status = "#compose-status"
        await wait_until(pilot, lambda: "Not sent" in label_text(app, status))
        assert "Cannot reach" in label_text(app, status)
        assert "press Ctrl+S to try again" in label_text(app, status)
        assert isinstance(app.screen, ComposeScreen)  # the message is still there
        await asyncio.to_thread(server.start)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen), timeout=30)
        await wait_until(pilot, lambda: "Cannot reach" not in label_text(app, "#inbox-status"))
        await wait_until(pilot, lambda: "0 messages" in label_text(app, "#inbox-status"))
    assert [m.subject for m in (await bob.refresh(), bob.ordered())[1]] == ["While you were down"]


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("bob@elsewhere.org", "This server only delivers to @{domain}; bob@elsewhere.org is"),
        ("nobody@{domain}", "No such address on this server: nobody@{domain}."),
    ],
)
async def test_a_wrong_domain_and_an_unknown_user_are_told_apart(
    tmp_path: Path, rune_server: ServerFactory, to: str, expected: str
) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    domain = alice.address.domain
    app = MailApp(lambda: ComposeScreen(alice, to=to.format(domain=domain), body="Hello?"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "Not sent" in label_text(app, "#compose-status"))
        text = label_text(app, "#compose-status")
        assert expected.format(domain=domain) in text
        assert "or message" not in text
