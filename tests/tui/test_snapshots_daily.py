"""Snapshots of the daily-use inbox and reader at 120x36: search, threads, undo, changed
keys and attachments.

Same rules as ``test_snapshots_mail``: fixed dates in UTC, no network, no blinking
cursor. Update with ``pytest --snapshot-update`` and look at the SVGs before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from rune_proto.client import ReceivedMessage
from rune_proto.envelope import Attachment
from rune_tui.screens.reader import ReaderScreen
from tests.tui.test_daily_inbox import key_changed, mailbox_of, reply_to
from tests.tui.test_mail_screens import (
    BASE_TIME,
    MailApp,
    inbox_app,
    make_message,
    sample_messages,
)
from tests.tui.test_snapshots_mail import _utc, steady  # noqa: F401 (_utc: autouse fixture)

SIZE = (120, 36)
SnapCompare = Callable[..., bool]


def inbox_of(tmp_path: Path, messages: list[ReceivedMessage]) -> MailApp:
    mailbox = mailbox_of(tmp_path, messages)
    mailbox.read = {m.id for i, m in enumerate(messages) if i % 3}
    return inbox_app(mailbox)


def conversations() -> list[ReceivedMessage]:
    """Two conversations and some single messages, one with a changed key."""
    messages = sample_messages(12)
    lunch = messages[4]
    a = reply_to(20, lunch, hours_later=1, subject="Re: Photos from the weekend")
    b = reply_to(21, a, hours_later=2, subject="Re: Re: Photos from the weekend")
    c = reply_to(22, lunch, hours_later=3, subject="Re: Photos — one more")
    minutes = messages[1]
    d = reply_to(23, minutes, hours_later=30, subject="Re: Minutes from the planning meeting")
    messages[7] = key_changed(messages[7], sender="bob@xyz")
    return [*messages, replace(a, sender=messages[0].sender), b, c, d]


def test_search_filtered(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = inbox_of(tmp_path, sample_messages(50))
    keys = ("slash", *"minutes", "enter")
    assert snap_compare(app, terminal_size=SIZE, run_before=steady(*keys))


def test_search_jump(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """Esc after a search shows every message again; n jumps to the next hit."""
    app = inbox_of(tmp_path, sample_messages(50))
    keys = ("slash", *"minutes", "enter", "escape", "n", "n")
    assert snap_compare(app, terminal_size=SIZE, run_before=steady(*keys))


def test_search_typing(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = inbox_of(tmp_path, sample_messages(50))
    keys = ("j", "slash", *"from:carol budget")
    assert snap_compare(app, terminal_size=SIZE, run_before=steady(*keys))


def test_threads(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = inbox_of(tmp_path, conversations())
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("t", "j"))


def test_delete_undo(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = inbox_of(tmp_path, sample_messages(50))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("j", "d"))


def test_inbox_key_changed(snap_compare: SnapCompare, tmp_path: Path) -> None:
    messages = sample_messages(30)
    messages[2] = key_changed(messages[2], sender=str(messages[2].sender))
    app = inbox_of(tmp_path, messages)
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("j", "j"))


def test_reader_key_changed(snap_compare: SnapCompare, tmp_path: Path) -> None:
    message = key_changed(
        make_message(
            3,
            subject="New laptop, new key",
            body="Hi,\n\nI set up my new laptop, so my key is new. Nothing else changed.\n\nBob",
            received_at=BASE_TIME - timedelta(days=1),
        )
    )
    mailbox = mailbox_of(tmp_path, [message])
    app = MailApp(lambda: ReaderScreen(mailbox, message))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady())


def test_reader_attachments_list(snap_compare: SnapCompare, tmp_path: Path) -> None:
    message = make_message(
        2,
        sender="carol@xyz",
        subject="Minutes from the planning meeting",
        body="Hi all,\n\nThe minutes are attached, and the budget too.\n\n— Carol",
        attachments=(
            Attachment("minutes.txt", b"m" * 2300),
            Attachment("budget.ods", b"b" * 48_000),
            Attachment("../../.bashrc", b"#!"),
        ),
    )
    mailbox = mailbox_of(tmp_path, [message])
    app = MailApp(lambda: ReaderScreen(mailbox, message))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("tab", "down"))
