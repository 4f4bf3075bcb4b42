"""The inbox for daily use: search, forward, threads, delete with undo, read marks,
attachments in the reader, and changed keys shown loudly.

Pure helpers (threads, search, forwarding text, safe file names) are tested alone; the
screens with Pilot over mailboxes built here (10,000 messages where speed matters), and
each feature once more against a real ``rune-server``.
"""

from __future__ import annotations

import asyncio
import hashlib
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, OptionList, Static, TextArea

from rune_proto.address import parse_address
from rune_proto.client import KeyChange, ReceivedMessage
from rune_proto.envelope import Attachment
from rune_proto.keys import Identity, fingerprint_text
from rune_tui.components.formatting import (
    FORWARD_SEPARATOR,
    KEY_CHANGED_BADGE,
    forward_body,
    forward_subject,
)
from rune_tui.components.message_list import MessageList
from rune_tui.config import Account, Paths, Settings
from rune_tui.filenames import safe_filename, save_new_file
from rune_tui.screens import inbox as inbox_module
from rune_tui.screens import save_dialog
from rune_tui.screens.compose import ComposeScreen
from rune_tui.screens.confirm import ConfirmScreen
from rune_tui.screens.help import HelpScreen
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.reader import ReaderScreen
from rune_tui.screens.save_dialog import SaveDialog
from rune_tui.search import SearchIndex, parse_query, status_text
from rune_tui.service import Mailbox
from rune_tui.threads import MAX_INDENT, thread
from tests.tui.test_mail_screens import (
    BASE_TIME,
    SIZE,
    VERIFIED,
    MailApp,
    OfflineMailbox,
    help_text,
    label_text,
    make_message,
    registered_mailbox,
    sample_messages,
    wait_until,
)

# -- building mailboxes ---------------------------------------------------------------


class RecordingMailbox(OfflineMailbox):
    """Offline, and its DELETE is recorded (and fails while ``fail`` is set).

    While ``hold`` is set, a DELETE waits for it: a test sees the state "in flight"
    for as long as it needs instead of racing a pause against it.
    """

    deleted: list[str]
    deleted_at: list[float]  # time.monotonic() of each DELETE
    fail: Exception | None
    hold: asyncio.Event | None

    async def delete(self, message_id: str) -> None:
        self.deleted.append(message_id)
        self.deleted_at.append(time.monotonic())
        if self.hold is not None:
            await asyncio.wait_for(self.hold.wait(), timeout=15)
        if self.fail is not None:
            raise self.fail
        self.messages.pop(message_id, None)
        self.read.discard(message_id)


def mailbox_of(
    tmp_path: Path,
    messages: list[ReceivedMessage],
    cls: type[RecordingMailbox] = RecordingMailbox,
    *,
    all_read: bool = False,
) -> RecordingMailbox:
    identity = Identity.generate()
    account = Account(
        parse_address("alice@xyz"), "127.0.0.1", 7117, "sha256:" + "00" * 32, "x", "file"
    )
    mailbox = cls(Paths(tmp_path / "config", tmp_path / "data"), account, identity)
    mailbox.messages = {m.id: m for m in messages}
    mailbox.read = {m.id for m in messages} if all_read else set()
    mailbox.deleted = []
    mailbox.deleted_at = []
    mailbox.fail = None
    mailbox.hold = None
    return mailbox


def app_for(mailbox: Mailbox, **kwargs: Any) -> MailApp:
    return MailApp(lambda: InboxScreen(mailbox, Settings(), **kwargs))


def inbox(app: MailApp) -> InboxScreen:
    screen = app.screen
    assert isinstance(screen, InboxScreen)
    return screen


def listing(app: MailApp) -> MessageList:
    return app.screen.query_one(MessageList)


def marked_hits(app: MailApp) -> set[str]:
    """Ids of the rows whose subject is drawn in the search-hit style."""
    rows = listing(app)
    hit = rows.get_component_rich_style("message-list--hit", partial=True)
    assert hit.underline and hit.bold
    marked = set()
    for message in rows.messages:
        strip = rows._render_row(message, 100, highlighted=False)
        subject = (message.subject or "(no subject)")[:8]
        if any(subject in seg.text and seg.style and seg.style.underline for seg in strip):
            marked.add(message.id)
    return marked


def shown_subjects(app: MailApp) -> list[str]:
    return [m.subject for m in listing(app).messages]


def notices(app: MailApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def soon(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``predicate`` holds, polling without waiting for the app to be idle."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise AssertionError("timed out waiting for the UI")
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


def fake_fingerprint(seed: str) -> str:
    return fingerprint_text(hashlib.sha256(seed.encode()).digest())


def key_changed(message: ReceivedMessage, sender: str = "bob@xyz") -> ReceivedMessage:
    """``message`` as it reads when its sender's key is not the pinned one."""
    change = KeyChange(parse_address(sender), fake_fingerprint("old"), fake_fingerprint("new"))
    verification = replace(
        VERIFIED, key_change=change, problems=(f"{sender}'s key differs from the one pinned",)
    )
    return replace(message, verification=verification, sender_key=Identity.generate().public)


def reply_to(
    index: int, parent: ReceivedMessage, *, hours_later: int, subject: str = ""
) -> ReceivedMessage:
    assert parent.received_at is not None
    return replace(
        make_message(index, subject=subject or f"Re: {parent.subject}"),
        in_reply_to=parent.message_id,
        received_at=parent.received_at + timedelta(hours=hours_later),
    )


# -- threads (pure) ----------------------------------------------------------------------


def test_threads_group_replies_under_their_root_newest_thread_first() -> None:
    old_root = make_message(1, subject="Garden", received_at=BASE_TIME - timedelta(days=3))
    old_reply = reply_to(2, old_root, hours_later=1)
    new_root = make_message(3, subject="Lunch", received_at=BASE_TIME - timedelta(days=1))
    reply_a = reply_to(4, new_root, hours_later=1, subject="first answer")
    reply_b = reply_to(5, new_root, hours_later=2, subject="second answer")
    reply_a1 = reply_to(6, reply_a, hours_later=3, subject="answer to the first")
    # the old thread got a reply yesterday+4h, after everything in the lunch thread
    late = reply_to(7, old_reply, hours_later=24 * 2 + 4, subject="late reply")
    orphan = replace(
        make_message(8, subject="reply to a deleted one"),
        in_reply_to="msg-gone",
        received_at=BASE_TIME - timedelta(days=2),
    )
    rows = thread([new_root, reply_b, reply_a, reply_a1, old_root, old_reply, late, orphan])
    assert [(r.message.subject, r.depth) for r in rows] == [
        ("Garden", 0),  # its newest message is the newest of all
        ("Re: Garden", 1),
        ("late reply", 2),
        ("Lunch", 0),
        ("first answer", 1),  # replies oldest first
        ("answer to the first", 2),
        ("second answer", 1),
        ("reply to a deleted one", 0),  # unknown parent: a root
    ]
    assert [r.prefix for r in rows[3:7]] == ["", "├─▸ ", "│ └─▸ ", "└─▸ "]


def test_threads_survive_cycles_self_replies_duplicates_and_deep_chains() -> None:
    a = replace(make_message(1, subject="a"), message_id="x", in_reply_to="y")
    b = replace(make_message(2, subject="b"), message_id="y", in_reply_to="x")
    selfish = replace(make_message(3, subject="self"), message_id="s", in_reply_to="s")
    twin = replace(make_message(4, subject="twin"), message_id="x")  # a replayed id
    rows = thread([a, b, selfish, twin])
    assert sorted(r.message.subject for r in rows) == ["a", "b", "self", "twin"]
    assert all(r.prefix == "" for r in rows if r.depth == 0)

    chain = [make_message(0)]
    for i in range(1, 10_000):
        chain.append(reply_to(i, chain[-1], hours_later=1))
    rows = thread(reversed(chain))  # no recursion limit hit at depth 9,999
    assert [r.message for r in rows] == chain  # once each, parent before reply
    assert rows[-1].depth == 9_999
    assert len(rows[-1].prefix) == 2 * MAX_INDENT + 2  # drawn at most MAX_INDENT deep


# -- search (pure) -----------------------------------------------------------------------


def test_query_words_fields_and_quotes() -> None:
    query = parse_query('from:Carol subject:"Next Week" budget body:')
    assert [(t.field, t.text) for t in query.terms] == [
        ("sender", "carol"),
        ("subject", "next week"),
        (None, "budget"),
        (None, "body:"),  # a field name with nothing after it is a plain word
    ]
    assert [t.text for t in parse_query('say "hi').terms] == ["say", '"hi']  # unbalanced
    assert parse_query("   ").empty
    assert status_text(12, 340, parse_query("budget")) == "12 of 340 match 'budget'"


def test_search_index_matches_each_field_case_insensitively() -> None:
    m = make_message(1, sender="carol@xyz", subject="Quarterly BUDGET", body="See the numbers.")
    index = SearchIndex()
    for text, expected in [
        ("budget", True),
        ("CAROL", True),
        ("numbers", True),
        ("budget numbers", True),
        ("budget dinner", False),  # every word must match
        ("from:carol", True),
        ("from:budget", False),
        ("subject:numbers", False),
        ("body:numbers", True),
    ]:
        assert index.matches(parse_query(text), m) is expected, text
    assert len(index) == 1
    index.forget([])
    assert len(index) == 0


# -- forwarding and file names (pure) ------------------------------------------------------


def test_forward_subject_and_body() -> None:
    assert forward_subject("Lunch?") == "Fwd: Lunch?"
    assert forward_subject("Fwd: FW: Lunch?") == "Fwd: Lunch?"
    assert forward_subject("") == "Fwd:"
    message = make_message(1, subject="Lunch?", body="Noon?\n> quoted", received_at=BASE_TIME)
    lines = forward_body(message, "%Y-%m-%d").splitlines()
    start = lines.index(FORWARD_SEPARATOR)
    assert lines[:start] == ["", ""]  # room to write above
    assert lines[start + 1] == "From: bob@xyz"
    assert lines[start + 2].startswith("Date: 2025-03-1")
    assert lines[start + 3] == "Subject: Lunch?"
    assert lines[start + 5 :] == ["Noon?", "> quoted"]  # the original, not quoted again


def test_safe_filename_strips_paths_and_tricks() -> None:
    assert safe_filename("../../.bashrc") == "bashrc"
    assert safe_filename("C:\\Windows\\evil.exe") == "evil.exe"
    assert safe_filename("invoice\u202egnp.exe") == "invoicegnp.exe"  # no bidi override
    assert safe_filename("a\x00b\nc.txt") == "abc.txt"
    assert safe_filename("") == safe_filename("..") == safe_filename("/") == "attachment"
    long = safe_filename("x" * 5000 + ".pdf")
    assert long.endswith(".pdf") and len(long.encode()) <= 200


def test_save_new_file_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(b"mine")
    first = save_new_file(tmp_path, "report.pdf", b"one")
    second = save_new_file(tmp_path, "../report.pdf", b"two")
    assert (first.name, second.name) == ("report (1).pdf", "report (2).pdf")
    assert (tmp_path / "report.pdf").read_bytes() == b"mine"
    assert second.read_bytes() == b"two"
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    assert save_new_file(tmp_path, "link", b"x").name == "link (1)"  # a link is not followed
    assert not (tmp_path / "elsewhere").exists()


def test_download_dir_falls_back_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert save_dialog.download_dir() == tmp_path  # no ~/Downloads here
    (tmp_path / "Downloads").mkdir()
    assert save_dialog.download_dir() == tmp_path / "Downloads"


# -- search in the inbox -------------------------------------------------------------------


def budget_inbox() -> list[ReceivedMessage]:
    messages = sample_messages(40)
    messages[3] = replace(messages[3], subject="Budget for the trip")
    messages[9] = replace(messages[9], body="The budget is attached.")  # body only
    messages[25] = replace(messages[25], subject="budget, final")
    return messages


async def test_slash_filters_by_sender_subject_and_body_and_esc_clears(tmp_path: Path) -> None:
    messages = budget_inbox()
    mailbox = mailbox_of(tmp_path, messages, all_read=True)
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("j")
        bar = app.screen.query_one("#search-bar")
        assert not bar.display
        await pilot.press("slash")
        await pilot.pause()
        field = app.screen.query_one("#search-input", Input)
        assert bar.display and field.has_focus
        footer = app.screen.query_one("Footer")
        assert bar.region.bottom == footer.region.y  # the last line above the footer
        await pilot.press(*"budget", "enter")
        await wait_until(pilot, lambda: len(listing(app).messages) == 3)
        assert set(shown_subjects(app)) == {
            "Budget for the trip",
            "budget, final",
            messages[9].subject,
        }
        assert label_text(app, "#inbox-status").startswith("3 of 40 match 'budget'")
        assert not bar.display and listing(app).has_focus
        assert marked_hits(app) == set()  # every row shown is a hit: nothing to set apart
        # n/N step through the hits while filtered
        await pilot.press("g", "n")
        assert listing(app).cursor == 1
        # Esc: every message again, the search kept for n/N
        await pilot.press("escape")
        await pilot.pause()
        assert len(listing(app).messages) == 40
        assert "n/N jump" in label_text(app, "#inbox-status")
        # the hits among the other rows stand out (and only while they are among others)
        assert marked_hits(app) == {messages[i].id for i in (3, 9, 25)}
        await pilot.press("g", "n")
        assert listing(app).highlighted == messages[3]
        await pilot.press("n")
        assert listing(app).highlighted == messages[9]
        await pilot.press("N", "N")  # wraps around to the last hit
        assert listing(app).highlighted == messages[25]
        assert any("from the bottom" in n for n in notices(app))
        # Esc again forgets the search
        await pilot.press("escape")
        await pilot.pause()
        assert label_text(app, "#inbox-status") == "40 messages, 0 unread"
        assert marked_hits(app) == set()
        await pilot.press("n")
        assert listing(app).highlighted == messages[25]  # nothing to jump to
        # Esc in the search line clears what was filtered
        await pilot.press("slash", *"from:carol", "enter")
        await wait_until(pilot, lambda: len(listing(app).messages) < 40)
        assert {str(m.sender) for m in listing(app).messages} == {"carol@xyz"}
        await pilot.press("slash")
        assert app.screen.query_one("#search-input", Input).value == "from:carol"
        await pilot.press("escape")
        await pilot.pause()
        assert not bar.display and len(listing(app).messages) == 40


async def test_search_with_no_match_says_so(tmp_path: Path) -> None:
    app = app_for(mailbox_of(tmp_path, sample_messages(10)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"zebra", "enter")
        await wait_until(pilot, lambda: "match" in label_text(app, "#inbox-status"))
        assert label_text(app, "#inbox-status").startswith("0 of 10 match 'zebra'")
        assert listing(app).row_count == 0
        assert "Esc" in listing(app).empty_text


async def test_search_and_threads_work_on_10000_messages(tmp_path: Path) -> None:
    messages = sample_messages(10_000)
    messages[7_777] = replace(messages[7_777], body="the needle is in here")
    app = app_for(mailbox_of(tmp_path, messages))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: listing(app).row_count == 10_000)
        await pilot.press("slash", *"needle")
        started = time.perf_counter()
        await pilot.press("enter")
        await wait_until(pilot, lambda: listing(app).row_count == 1)
        first = time.perf_counter() - started
        await pilot.press("escape", "escape", "slash")
        app.screen.query_one("#search-input", Input).value = '"number 12"'  # a phrase
        started = time.perf_counter()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "of 10,000 match" in label_text(app, "#inbox-status"))
        second = time.perf_counter() - started
        print(f"\nsearch over 10,000 bodies: first {first:.3f} s, then {second:.3f} s")
        assert label_text(app, "#inbox-status").startswith("111 of 10,000 match")
        await pilot.press("escape", "escape")
        started = time.perf_counter()
        await pilot.press("t")
        await pilot.pause()
        print(f"thread view of 10,000: {time.perf_counter() - started:.3f} s")  # speed: bench/
        assert listing(app).row_count == 10_000


async def test_search_shows_header_hits_at_once_while_slow_bodies_are_read(
    tmp_path: Path,
) -> None:
    """Bodies from the cache cost ~0.6 ms each to decrypt: the list must not wait for them."""
    messages = sample_messages(3_000)
    messages[2_500] = replace(messages[2_500], body="only the body says budget")
    messages[10] = replace(messages[10], subject="Budget")
    opened: list[str] = []
    # What the screen showed as each body was read: the order of events, not a race
    # between the test's polling and the search.
    seen: list[tuple[list[str], str, int]] = []

    def slow_body(message: Any) -> str:
        opened.append(message.id)
        seen.append(
            (shown_subjects(app)[:1], label_text(app, "#inbox-status"), listing(app).row_count)
        )
        time.sleep(0.001)
        return str(message.body)

    app = app_for(mailbox_of(tmp_path, messages))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: listing(app).row_count == 3_000)
        screen = inbox(app)
        screen.search_index = SearchIndex(body_of=slow_body)
        await pilot.press("slash", *"budget")
        # Pilot's press and pause wait for an idle CPU, which a search in progress is
        # not: post keys and poll like a user would, so the timings mean something.
        app.simulate_key("enter")
        await soon(lambda: shown_subjects(app)[:1] == ["Budget"])
        app.simulate_key("escape")  # keys are answered meanwhile
        await soon(lambda: listing(app).row_count == 3_000)
        assert screen.search_query is not None  # Esc only dropped the filter
        await wait_until(pilot, lambda: "reading" not in label_text(app, "#inbox-status"))
        # The subject hit was listed before the first body was read, with the status
        # saying the texts are being read ...
        subjects, status, _ = seen[0]
        assert subjects == ["Budget"]
        assert "reading message texts" in status
        # ... and Esc took effect while bodies were still being read.
        assert any(rows == 3_000 for _, _, rows in seen)
        assert screen.hits is not None and len(screen.hits) == 2
        assert label_text(app, "#inbox-status").startswith("2 of 3,000 match 'budget'")
        assert len(opened) == 2_999  # every body but the one the subject decided
        await pilot.press("escape", "slash", *"from:carol budget", "enter")
        await wait_until(pilot, lambda: "0 of 3,000 match" in label_text(app, "#inbox-status"))
        assert len(opened) == 2_999  # nothing decrypted twice


# -- forward -----------------------------------------------------------------------------


async def test_f_forwards_with_the_original_from_inbox_and_reader(tmp_path: Path) -> None:
    original = make_message(
        1,
        subject="Minutes",
        body="The minutes.",
        attachments=(Attachment("minutes.txt", b"m" * 10),),
    )
    app = app_for(mailbox_of(tmp_path, [original]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = app.screen
        assert screen.query_one("#compose-subject", Input).value == "Fwd: Minutes"
        assert screen.query_one("#compose-to", Input).value == ""
        assert screen.query_one("#compose-to", Input).has_focus
        body = screen.query_one("#compose-body", TextArea).text
        assert FORWARD_SEPARATOR in body and "From: bob@xyz" in body
        assert body.rstrip().endswith("The minutes.")
        assert [(a.name, a.data) for a in screen.attached] == [("minutes.txt", b"m" * 10)]
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        assert app.screen.query_one("#compose-subject", Input).value == "Fwd: Minutes"


# -- threads in the inbox --------------------------------------------------------------


async def test_t_shows_conversations_and_the_choice_lasts(tmp_path: Path) -> None:
    root = make_message(1, subject="Lunch", received_at=BASE_TIME - timedelta(days=2))
    other = make_message(2, subject="Other", received_at=BASE_TIME - timedelta(days=1))
    reply = reply_to(3, root, hours_later=1)
    mailbox = mailbox_of(tmp_path, [root, other, reply])
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert shown_subjects(app) == ["Other", "Re: Lunch", "Lunch"]
        await pilot.press("t")
        await pilot.pause()
        assert shown_subjects(app) == ["Other", "Lunch", "Re: Lunch"]
        assert "└─▸ Re: Lunch" in listing(app).render_line(2).text
        assert inbox(app).sub_title == "conversations"
        await pilot.press("enter")  # the choice survives the reader...
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert shown_subjects(app) == ["Other", "Lunch", "Re: Lunch"]
        app.push_screen(InboxScreen(mailbox, Settings(), refresh_on_mount=False))
        await pilot.pause()  # ...and a new inbox in the same session
        assert shown_subjects(app) == ["Other", "Lunch", "Re: Lunch"]
        await pilot.press("t")
        await pilot.pause()
        assert shown_subjects(app) == ["Other", "Re: Lunch", "Lunch"]


# -- delete with undo ------------------------------------------------------------------


@pytest.fixture
def short_undo(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(inbox_module, "DELETE_UNDO_SECONDS", 0.4)
    return 0.4


@pytest.fixture
def undo_window(monkeypatch: pytest.MonkeyPatch) -> float:
    """Long enough that a busy machine still gets u in before the DELETE would go."""
    monkeypatch.setattr(inbox_module, "DELETE_UNDO_SECONDS", 2.0)
    return 2.0


async def test_d_hides_at_once_and_u_brings_it_back_without_a_delete(
    tmp_path: Path, undo_window: float
) -> None:
    messages = sample_messages(5)
    mailbox = mailbox_of(tmp_path, messages)
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert messages[0] not in listing(app).messages
        assert listing(app).highlighted == messages[1]
        assert any("press u to undo" in n for n in notices(app))
        assert inbox(app).title == "alice@xyz — 4 unread"  # the hidden one is not counted
        assert label_text(app, "#inbox-status") == "4 messages, 4 unread"
        footer_keys = {b.binding.action for b in app.screen.active_bindings.values()}
        assert "undo" in footer_keys
        await pilot.press("u")
        await pilot.pause()
        assert listing(app).highlighted == messages[0]
        await pilot.pause(undo_window * 1.5)
        assert mailbox.deleted == []
        assert len(listing(app).messages) == 5
        await pilot.press("u")  # nothing left to undo: u says so instead of nothing
        await wait_until(pilot, lambda: "Nothing to undo." in notices(app))


async def test_delete_goes_out_after_the_delay_and_a_failure_brings_it_back(
    tmp_path: Path, short_undo: float
) -> None:
    messages = sample_messages(5)
    mailbox = mailbox_of(tmp_path, messages)
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pressed = time.monotonic()
        await pilot.press("d")
        await wait_until(pilot, lambda: mailbox.deleted == [messages[0].id])
        # Not before the undo delay (measured, so a slow machine cannot fake or fail it).
        assert mailbox.deleted_at[0] - pressed >= short_undo
        await wait_until(pilot, lambda: not inbox(app).pending)
        assert messages[0].id not in mailbox.messages
        await pilot.press("u")  # too late: nothing to undo
        await pilot.pause()
        assert messages[0] not in listing(app).messages

        mailbox.fail = ConnectionError("server gone")
        mailbox.hold = asyncio.Event()
        await pilot.press("d")
        # Hidden until the DELETE has failed: look while it is held in flight.
        await wait_until(pilot, lambda: len(mailbox.deleted) == 2)
        assert messages[1] not in listing(app).messages
        mailbox.hold.set()
        await wait_until(pilot, lambda: messages[1] in listing(app).messages)
        assert messages[1].id in mailbox.messages
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and "is back" in str(errors[-1].message)


async def test_delete_from_the_reader_returns_to_the_inbox_with_undo(
    tmp_path: Path, undo_window: float
) -> None:
    """u must come within the window: the long one, so a loaded machine still makes it."""
    messages = sample_messages(5)
    mailbox = mailbox_of(tmp_path, messages)
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("j", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.pause()
        assert messages[1] not in listing(app).messages
        await pilot.press("u")
        await pilot.pause()
        assert listing(app).highlighted == messages[1]
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("d")
        await wait_until(pilot, lambda: mailbox.deleted == [messages[1].id])


async def test_q_sends_pending_deletes_first_and_stays_if_they_fail(tmp_path: Path) -> None:
    messages = sample_messages(5)
    mailbox = mailbox_of(tmp_path, messages)
    mailbox.fail = ConnectionError("server gone")
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d", "d")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: len(mailbox.deleted) == 2)
        await wait_until(pilot, lambda: "press q again" in label_text(app, "#inbox-status"))
        assert app.return_code is None  # still running
        assert len(listing(app).messages) == 5  # both back
        assert listing(app).highlighted == messages[2]  # the cursor stayed where it was
        mailbox.fail = None
        await pilot.press("d", "q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: app.return_code is not None)
        assert mailbox.deleted[-1] == messages[2].id
        assert messages[2].id not in mailbox.messages


async def test_leaving_without_q_still_sends_pending_deletes(tmp_path: Path) -> None:
    messages = sample_messages(3)
    mailbox = mailbox_of(tmp_path, messages)
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.press("ctrl+q")  # the app's own quit, which the inbox does not see
    assert mailbox.deleted == [messages[0].id]


# -- read and unread -------------------------------------------------------------------


async def test_U_toggles_read_and_opening_marks_read(tmp_path: Path) -> None:
    messages = sample_messages(3)
    mailbox = mailbox_of(tmp_path, messages)
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert inbox(app).title == "alice@xyz — 3 unread"
        await pilot.press("U")
        await pilot.pause()
        assert mailbox.is_read(messages[0].id)
        assert inbox(app).title == "alice@xyz — 2 unread"
        assert label_text(app, "#inbox-status") == "3 messages, 2 unread"
        assert not listing(app).is_unread(messages[0])
        await pilot.press("U")
        assert not mailbox.is_read(messages[0].id)
        assert inbox(app).title == "alice@xyz — 3 unread"
        await pilot.press("j", "enter")  # opening marks read
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        assert mailbox.is_read(messages[1].id)
        await pilot.press("U")  # and the reader can take it back
        assert not mailbox.is_read(messages[1].id)
        assert any("Marked unread" in n for n in notices(app))
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert inbox(app).title == "alice@xyz — 3 unread"


# -- attachments -------------------------------------------------------------------------


@pytest.fixture
def downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "Downloads"
    folder.mkdir()
    monkeypatch.setattr(save_dialog, "download_dir", lambda: folder)
    return folder


async def test_reader_lists_attachments_and_s_saves_them(tmp_path: Path, downloads: Path) -> None:
    files = (Attachment("minutes.txt", b"m" * 2300), Attachment("../budget.ods", b"b" * 10))
    message = make_message(1, attachments=files)
    (downloads / "minutes.txt").write_bytes(b"already here")
    app = MailApp(lambda: ReaderScreen(mailbox_of(tmp_path, [message]), message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        options = app.screen.query_one("#reader-files-list", OptionList)
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert prompts == ["minutes.txt  2.2 KiB", "budget.ods   10 B"]
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SaveDialog))
        await pilot.press("enter")  # the download folder, as offered
        await wait_until(pilot, lambda: len(list(downloads.iterdir())) == 3)
        assert (downloads / "minutes.txt").read_bytes() == b"already here"
        assert (downloads / "minutes (1).txt").read_bytes() == b"m" * 2300
        assert (downloads / "budget.ods").read_bytes() == b"b" * 10
        assert any(str(downloads / "budget.ods") in n for n in notices(app))
        # one file: Tab to the list, choose it, s
        await pilot.press("tab")
        assert options.has_focus
        await pilot.press("down", "s")
        await wait_until(pilot, lambda: isinstance(app.screen, SaveDialog))
        await pilot.press("enter")
        await wait_until(pilot, lambda: (downloads / "budget (1).ods").exists())
        await pilot.pause()
        assert len(list(downloads.iterdir())) == 4


async def test_saving_into_a_missing_folder_says_why(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(save_dialog, "download_dir", lambda: tmp_path / "missing")
    message = make_message(1, attachments=(Attachment("a.txt", b"a"),))
    app = MailApp(lambda: ReaderScreen(mailbox_of(tmp_path, [message]), message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SaveDialog))
        await pilot.press("enter")  # the folder offered is gone: said in the dialog
        await wait_until(pilot, lambda: "is not a folder" in label_text(app, "#save-error"))
        assert isinstance(app.screen, SaveDialog)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))


# -- changed keys ----------------------------------------------------------------------


async def test_changed_key_badge_banner_and_K(tmp_path: Path, monkeypatch: Any) -> None:
    plain = make_message(1, subject="Plain")
    changed = key_changed(make_message(2, subject="New laptop"))
    mailbox = mailbox_of(tmp_path, [plain, changed])
    app = app_for(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        rows = [listing(app).render_line(y) for y in range(2)]
        assert rows[1].text.split()[1] == KEY_CHANGED_BADGE
        assert KEY_CHANGED_BADGE not in rows[0].text
        badge = next(s for s in rows[1] if s.text == KEY_CHANGED_BADGE)
        assert badge.style is not None and badge.style.bgcolor is not None  # a red block
        await pilot.press("j", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        banner = str(app.screen.query_one("#reader-key-changed", Static).content)
        assert "The key of bob@xyz changed" in banner
        assert fake_fingerprint("old") in banner and fake_fingerprint("new") in banner
        assert "Press K" in banner
        await pilot.press("K")
        await pilot.pause()
        from rune_tui.screens.key_change import KeyChangeScreen

        screen = app.screen
        assert isinstance(screen, KeyChangeScreen)
        assert str(screen.address) == "bob@xyz"
        assert screen.pinned_fingerprint == fake_fingerprint("old")
        assert screen.offered_key == changed.sender_key
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.press("k", "K")  # a message without a change: nothing to review
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen)


async def test_plain_message_has_no_banner_and_K_is_inactive(tmp_path: Path) -> None:
    message = make_message(1)
    app = MailApp(lambda: ReaderScreen(mailbox_of(tmp_path, [message]), message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not app.screen.query("#reader-key-changed")
        assert not app.screen.check_action("key_change", ())
        assert not app.screen.query("#reader-files")


# -- help lists every key ------------------------------------------------------------------


@pytest.mark.parametrize("which", ["inbox", "reader"])
async def test_help_lists_every_binding_with_its_id(tmp_path: Path, which: str) -> None:
    messages = sample_messages(3)
    mailbox = mailbox_of(tmp_path, messages)
    make: Callable[[], Any] = (
        (lambda: InboxScreen(mailbox, Settings()))
        if which == "inbox"
        else (lambda: ReaderScreen(mailbox, messages[0]))
    )
    app = MailApp(make)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = help_text(app)
        bindings = InboxScreen.BINDINGS if which == "inbox" else ReaderScreen.BINDINGS
        for binding in bindings:
            assert not isinstance(binding, tuple)
            assert binding.id and binding.id.startswith(f"{which}.") and binding.id in text
        source = getattr(app.screen.query_one("#help-text"), "source", "")
        for section in ("Searching", "Conversations", "undoing it", "Attachments", "key changes"):
            assert section in source


# -- against a real rune-server ----------------------------------------------------------


async def test_daily_features_against_a_real_server(
    rune_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, downloads: Path
) -> None:
    monkeypatch.setattr(inbox_module, "DELETE_UNDO_SECONDS", 0.5)
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    lunch = await bob.send(str(alice.address), "Lunch?", "Noon at the usual place?")
    await bob.send(str(alice.address), "Budget", "Numbers attached.", [("budget.csv", b"1,2\n")])
    await bob.send(str(alice.address), "Re: Lunch?", "Or one?", in_reply_to=lunch)
    app = app_for(alice)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: listing(app).row_count == 3)
        # threads: the reply under the question
        await pilot.press("t")
        await pilot.pause()
        subjects = shown_subjects(app)
        assert subjects.index("Re: Lunch?") == subjects.index("Lunch?") + 1
        await pilot.press("t")
        # search, body included
        await pilot.press("slash", *"numbers", "enter")
        await wait_until(pilot, lambda: shown_subjects(app) == ["Budget"])
        assert label_text(app, "#inbox-status").startswith("1 of 3 match 'numbers'")
        # the attachment, saved
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SaveDialog))
        await pilot.press("enter")
        await wait_until(pilot, lambda: (downloads / "budget.csv").exists())
        assert (downloads / "budget.csv").read_bytes() == b"1,2\n"
        # forward it to bob
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press(*str(bob.address), "tab", "tab", *"FYI")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        # delete it from the reader; it goes from the server after the delay
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: listing(app).row_count == 2)
        await wait_until(pilot, lambda: len(alice.messages) == 2)
        # read marks: opening reads, U takes it back; both are kept by the cache
        subjects = shown_subjects(app)
        listing(app).move_cursor(subjects.index("Re: Lunch?"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing(app).move_cursor(subjects.index("Lunch?"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.press("U")
        assert inbox(app).title == f"{alice.address} — 1 unread"
    fresh = Mailbox(alice.paths, alice.account, alice.identity)
    by_subject = {m.subject: m.id for m in fresh.messages.values()}
    assert sorted(by_subject) == ["Lunch?", "Re: Lunch?"]  # from the cache, offline
    assert fresh.is_read(by_subject["Re: Lunch?"]) and not fresh.is_read(by_subject["Lunch?"])
    await fresh.refresh()
    assert sorted(m.subject for m in fresh.messages.values()) == ["Lunch?", "Re: Lunch?"]
    forwarded = bob.messages[(await bob.refresh())[0]]
    assert forwarded.subject == "Fwd: Budget"
    assert forwarded.body.startswith("FYI") and FORWARD_SEPARATOR in forwarded.body
    assert forwarded.body.rstrip().endswith("Numbers attached.")


async def test_changed_key_from_a_real_server_is_loud(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    alice.contacts.accept(bob.address, Identity.generate().public)  # pinned: another key
    await bob.send(str(alice.address), "New laptop", "Same Bob, new key.")
    app = app_for(alice)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: listing(app).row_count == 1)
        assert KEY_CHANGED_BADGE in listing(app).render_line(0).text
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        banner = str(app.screen.query_one("#reader-key-changed", Static).content)
        assert f"The key of {bob.address} changed" in banner
        assert bob.identity.public.fingerprint_text() in banner
        await pilot.press("K")
        await pilot.pause()
        assert type(app.screen).__name__ == "KeyChangeScreen"
        await pilot.press(*"accept", "enter")  # the review pins the new key...
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.pause()
        assert not app.screen.query("#reader-key-changed")  # ...and the banner goes
        assert not app.screen.has_class("-unverified")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert KEY_CHANGED_BADGE not in listing(app).render_line(0).text
    pinned = alice.contacts.get(bob.address)
    assert pinned is not None and pinned.key == bob.identity.public
