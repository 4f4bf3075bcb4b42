"""Snapshots of the mail screens at 120x36 with a fixed inbox.

Deterministic by construction: fixed dates (never "today"), UTC, no clock in the header,
no network (the mailbox's refresh finds nothing new), cursor blink off. Update the
baselines with ``pytest --snapshot-update`` and look at them before committing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from rune_proto.envelope import Attachment
from rune_tui.screens import save_dialog
from rune_tui.screens.reader import ReaderScreen
from tests.tui.test_mail_screens import (
    MailApp,
    build_mailbox,
    inbox_app,
    make_message,
    sample_messages,
    unverified,
)

SIZE = (120, 36)
SnapCompare = Callable[..., bool]


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dates are shown in local time: pin it, so the snapshots match on any machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def steady(*keys: str) -> Callable[[Pilot[Any]], Any]:
    """Press ``keys``, then stop every cursor blinking so the frame is always the same."""

    async def run(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        for widget in pilot.app.screen.query("Input, TextArea"):
            assert isinstance(widget, Input | TextArea)
            widget.cursor_blink = False
        await pilot.pause()

    return run


def test_inbox(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = inbox_app(build_mailbox(tmp_path, sample_messages(50)))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("j", "j", "j"))


def test_reader_unverified(snap_compare: SnapCompare, tmp_path: Path) -> None:
    message = make_message(
        7,
        sender="mallory@xyz",
        subject="Your account needs attention",
        body=(
            "Hello,\n\nPlease confirm your key by replying with it. This is a very long line "
            "that goes on and on so that the reader has to wrap it to stay readable: "
            "https://example.invalid/a/very/long/path/that/does/not/break/anywhere/at/all\n\n"
            "Thanks"
        ),
        verification=unverified(
            "the sender's signature does not verify",
            "the server says bob@xyz sent it, but mallory@xyz signed it",
        ),
    )
    mailbox = build_mailbox(tmp_path, [message])
    app = MailApp(lambda: ReaderScreen(mailbox, message))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady())


def test_reader_with_attachments(snap_compare: SnapCompare, tmp_path: Path) -> None:
    message = make_message(
        2,
        sender="carol@xyz",
        subject="Minutes from the planning meeting",
        body="Hi all,\n\nThe minutes are attached, and the budget too.\n\n— Carol",
        attachments=(
            Attachment("minutes.txt", b"m" * 2300),
            Attachment("budget.ods", b"b" * 48_000),
        ),
    )
    mailbox = build_mailbox(tmp_path, [message])
    app = MailApp(lambda: ReaderScreen(mailbox, message))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady())


def test_compose_reply(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = inbox_app(build_mailbox(tmp_path, sample_messages(50)))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("r"))


def test_help(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = inbox_app(build_mailbox(tmp_path, sample_messages(50)))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("question_mark"))


def test_inbox_preview_with_files(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """The + before the subject, and the files' names on the preview's date row."""
    app = inbox_app(build_mailbox(tmp_path, sample_messages(50)))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("j"))


def test_save_dialog(
    snap_compare: SnapCompare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """s in the reader: where to save, the download folder offered (fixed here)."""
    monkeypatch.setattr(save_dialog, "download_dir", lambda: Path("/home/you/Downloads"))
    message = make_message(
        2,
        sender="carol@xyz",
        subject="Minutes from the planning meeting",
        attachments=(Attachment("minutes.txt", b"m" * 2300),),
    )
    mailbox = build_mailbox(tmp_path, [message])
    app = MailApp(lambda: ReaderScreen(mailbox, message))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("s"))
