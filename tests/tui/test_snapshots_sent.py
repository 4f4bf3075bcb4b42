"""Snapshots of Sent: the list with its preview, a sent message, and conversations with your
replies in them. Fixed dates in UTC, no network; update with ``--snapshot-update`` and look."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rune_proto.address import parse_address
from rune_proto.envelope import Attachment
from rune_tui.screens.sent import SentReaderScreen, SentScreen
from rune_tui.service import Mailbox
from tests.tui.test_mail_screens import (
    BASE_TIME,
    MailApp,
    build_mailbox,
    inbox_app,
    sample_messages,
)
from tests.tui.test_snapshots_mail import SIZE, SnapCompare, _utc, steady

__all__ = ["_utc"]  # the fixture that pins the time zone, used here too

SENT = (
    ("bob@xyz", "Re: Lunch on Thursday?", "Thursday works. The usual place at noon?", "msg-000000"),
    ("carol@xyz", "Slides for Friday", "Here they are; the last two are still rough.", None),
    ("dmitri@xyz", "Re: Photos from the weekend", "Lovely! The one of the lake is my pick.", None),
    ("erin.k@xyz", "Invoice 2025-031", "Paid today, reference attached.", None),
)


def with_sent(tmp_path: Path) -> Mailbox:
    mailbox = build_mailbox(tmp_path, sample_messages(12))
    for index, (to, subject, body, in_reply_to) in enumerate(SENT):
        files: tuple[Attachment, ...] = ()
        if subject == "Slides for Friday":
            files = (Attachment("slides.pdf", b"%" * 40_000),)
        mailbox.sent.record(
            message_id=f"{index:032x}",
            to=parse_address(to),
            subject=subject,
            body=body,
            attachments=files,
            in_reply_to=in_reply_to,
            sent_at=BASE_TIME + timedelta(minutes=20) - timedelta(hours=7 * index),
            attachment_limit=1024 if index == 1 else 10 << 20,
        )
    return mailbox


def test_sent_view(snap_compare: SnapCompare, tmp_path: Path) -> None:
    mailbox = with_sent(tmp_path)
    app = MailApp(lambda: SentScreen(mailbox))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("j"))


def test_sent_message_with_files_not_kept(snap_compare: SnapCompare, tmp_path: Path) -> None:
    mailbox = with_sent(tmp_path)
    message = mailbox.sent.message("sent:" + f"{1:032x}")
    assert isinstance(message, type(message)) and not message.files_kept
    app = MailApp(lambda: SentReaderScreen(mailbox, message))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady())


def test_conversations_with_your_reply(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = inbox_app(with_sent(tmp_path))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("t", "j"))
