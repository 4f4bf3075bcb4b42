"""Pilot tests of the mail screens: inbox, reader, compose, help, confirm.

Most tests fill a Mailbox with ReceivedMessage objects built here (no network) — 10,000
of them where scale matters. The flows that talk to a server (refresh, send, delete)
run against a real ``rune-server`` from ``tests/server_process.py``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from textual.app import App
from textual.screen import Screen
from textual.widgets import Input, Label, Static, TextArea

from rune_proto.address import parse_address
from rune_proto.client import ReceivedMessage, Verification, connect
from rune_proto.envelope import Attachment
from rune_proto.keys import Identity
from rune_tui.components.formatting import quote_body, reply_subject
from rune_tui.components.message_list import MessageList
from rune_tui.config import Account, Paths, Settings
from rune_tui.screens.compose import ComposeScreen
from rune_tui.screens.confirm import ConfirmScreen
from rune_tui.screens.help import HelpScreen
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.reader import ReaderScreen
from rune_tui.service import Mailbox, describe_error

SIZE = (120, 36)
BASE_TIME = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
VERIFIED = Verification(
    decrypted=True,
    server_signature=True,
    sender_signature=True,
    addressed_to_me=True,
    sender_match=True,
)
SENDERS = ("bob@xyz", "carol@xyz", "dmitri@xyz", "erin.k@xyz", "fatima@xyz", "grace_h@xyz")
SUBJECTS = (
    "Lunch on Thursday?",
    "Minutes from the planning meeting",
    "Re: the garden rota",
    "Photos from the weekend",
    "Can you review the draft before Friday? It is long, sorry, and there is more",
    "Invoice 2025-031",
    "Quick question",
    "Train times",
)


def unverified(*problems: str) -> Verification:
    return Verification(decrypted=True, server_signature=True, problems=problems)


def make_message(
    index: int,
    *,
    sender: str | None = "bob@xyz",
    subject: str = "Hello",
    body: str = "Hi there.",
    received_at: datetime | None = None,
    verification: Verification = VERIFIED,
    attachments: tuple[Attachment, ...] = (),
) -> ReceivedMessage:
    return ReceivedMessage(
        id=f"00000000-0000-4000-8000-{index:012d}",
        size=4096,
        sender=parse_address(sender) if sender else None,
        received_at=received_at or BASE_TIME - timedelta(hours=index),
        subject=subject,
        body=body,
        attachments=attachments,
        message_id=f"msg-{index:06d}",
        verification=verification,
    )


def sample_messages(count: int) -> list[ReceivedMessage]:
    """A fixed, varied inbox: every 7th unverified, one unknown sender, some attachments."""
    out = []
    for i in range(count):
        body = (
            f"Hello,\n\nThis is message number {i}. "
            "It has a few sentences so the preview has something to show, and a line "
            "that is long enough to need wrapping in the reader when the window is narrow.\n\n"
            "See you soon,\n" + SENDERS[i % len(SENDERS)].split("@")[0].capitalize()
        )
        verification = VERIFIED
        subject = SUBJECTS[i % len(SUBJECTS)]
        if i % 7 == 3:
            verification = unverified("the sender's signature does not verify")
        if i == 5:  # what a blob that cannot be opened looks like
            verification = Verification(problems=("could not decrypt: the envelope is damaged",))
            subject, body = "", ""
        out.append(
            make_message(
                i,
                sender=None if i == 5 else SENDERS[i % len(SENDERS)],
                subject=subject,
                body=body,
                received_at=BASE_TIME - timedelta(hours=5 * i, minutes=7 * i),
                verification=verification,
                attachments=(Attachment("notes.txt", b"x" * 1500),) if i % 10 == 1 else (),
            )
        )
    return out


class OfflineMailbox(Mailbox):
    """A Mailbox whose refresh finds nothing new: the screens without a server."""

    async def refresh(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        return []


def unreachable_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def build_mailbox(
    tmp_path: Path,
    messages: list[ReceivedMessage],
    *,
    read_every: int = 3,
    offline: bool = True,
    port: int = 7117,
) -> Mailbox:
    identity = Identity.generate()
    pins = ("sha256:" + "00" * 32, identity.public.token())  # never used: no server here
    account = Account(parse_address("alice@xyz"), "127.0.0.1", port, *pins)
    cls = OfflineMailbox if offline else Mailbox
    mailbox = cls(Paths(tmp_path / "config", tmp_path / "data"), account, identity)
    mailbox.messages = {m.id: m for m in messages}
    mailbox.read = {m.id for i, m in enumerate(messages) if read_every and i % read_every}
    return mailbox


class MailApp(App[None]):
    """The smallest host for the mail screens: push one screen on mount."""

    def __init__(self, make_screen: Callable[[], Screen[Any]]) -> None:
        super().__init__()
        self._make_screen = make_screen

    def on_mount(self) -> None:
        self.push_screen(self._make_screen())


def inbox_app(mailbox: Mailbox, settings: Settings | None = None, **kwargs: Any) -> MailApp:
    return MailApp(lambda: InboxScreen(mailbox, settings or Settings(), **kwargs))


def label_text(app: App[Any], selector: str) -> str:
    return str(app.screen.query_one(selector, Label).content)


def screen_text(app: App[Any]) -> str:
    """Everything the current screen's Static/Label widgets show, for loose assertions."""
    return "\n".join(str(w.content) for w in app.screen.query(Static))


async def wait_until(pilot: Any, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let workers and messages run until ``predicate`` holds (bounded: fails, never hangs)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the UI")
        await pilot.pause(0.02)


# -- text helpers --------------------------------------------------------------------


def test_reply_subject_adds_one_re() -> None:
    assert reply_subject("Lunch?") == "Re: Lunch?"
    assert reply_subject("Re: Lunch?") == "Re: Lunch?"
    assert reply_subject("RE: re:Lunch?") == "Re: Lunch?"
    assert reply_subject("") == "Re:"


def test_quote_body_has_attribution_and_quoted_lines() -> None:
    message = make_message(1, body="first\n\nsecond", received_at=BASE_TIME)
    quoted = quote_body(message, "%Y-%m-%d %H:%M")
    lines = quoted.splitlines()
    assert lines[0].startswith("On ") and lines[0].endswith(", bob@xyz wrote:")
    assert lines[1:] == ["> first", ">", "> second", ""]


def test_errors_are_explained_in_words() -> None:
    from rune_proto import status
    from rune_proto.address import AddressError
    from rune_proto.client import ConnectionFailed, ServerError

    assert "mailbox is full" in describe_error(ServerError(status.MAILBOX_FULL, "full"))
    assert describe_error(ConnectionFailed("cannot reach 127.0.0.1:7117: refused")).startswith(
        "Cannot reach 127.0.0.1:7117"
    )
    assert describe_error(AddressError("bad")).startswith("Invalid address")


# -- inbox ---------------------------------------------------------------------------


async def test_inbox_with_10000_messages_moves_with_keys(tmp_path: Path) -> None:
    messages = sample_messages(10_000)
    mailbox = build_mailbox(tmp_path, messages)
    app = inbox_app(mailbox)
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: listing.row_count == 10_000)
        await pilot.pause()
        print(f"\ninbox with 10,000 messages mounted in {time.perf_counter() - started:.3f} s")
        ordered = mailbox.ordered()
        assert listing.highlighted == ordered[0]
        assert ordered[0].subject in listing.render_line(0).text
        assert app.screen.title == f"alice@xyz — {mailbox.unread_count()} unread"

        await pilot.press("j", "j", "down")
        assert listing.cursor == 3
        await pilot.press("k")
        assert listing.cursor == 2
        await pilot.press("G")
        assert listing.cursor == 9_999
        assert listing.highlighted == ordered[-1]
        await pilot.pause()
        # the view followed the cursor: the last row is on screen
        assert ordered[-1].subject[:20] in "".join(
            listing.render_line(y).text for y in range(listing.size.height)
        )
        await pilot.press("g")
        assert listing.cursor == 0
        await pilot.press("pagedown")
        assert listing.cursor == listing.scrollable_content_region.height - 1
        await pilot.press("pageup")
        assert listing.cursor == 0
        # the preview follows the highlighted message
        await pilot.press("j")
        await pilot.pause()
        header = app.screen.query_one("#preview-header")
        assert getattr(header, "message", None) == ordered[1]


async def test_click_selects_a_row(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, sample_messages(30))
    app = inbox_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.click("#message-list", offset=(20, 4))
        assert app.screen.query_one(MessageList).cursor == 4


async def test_enter_opens_the_reader_and_marks_read(tmp_path: Path) -> None:
    messages = sample_messages(20)
    mailbox = build_mailbox(tmp_path, messages, read_every=0)  # all unread
    app = inbox_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("j", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        target = mailbox.ordered()[1]
        assert target.id in mailbox.read
        assert str(app.screen.query_one("#reader-text", Static).content) == target.body
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert app.screen.title == "alice@xyz — 19 unread"
        assert label_text(app, "#inbox-status") == "20 messages, 19 unread"  # same count


def header_text(app: App[Any], selector: str = "#reader-header") -> str:
    """A message header as plain text, the way a terminal 110 columns wide shows it."""
    from rich.console import Console

    console = Console(width=110, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(app.screen.query_one(selector).render())
    return console.export_text()


async def test_unverified_message_is_shown_with_its_problems(tmp_path: Path) -> None:
    message = make_message(
        1,
        subject="Trust me",
        body="Send money.",
        verification=unverified(
            "the sender's signature does not verify", "this message was delivered before"
        ),
    )
    mailbox = build_mailbox(tmp_path, [message])
    app = MailApp(lambda: ReaderScreen(mailbox, message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        svg = app.export_screenshot()
        assert "NOT&#160;VERIFIED" in svg or "NOT VERIFIED" in svg
        text = header_text(app)
        assert "! NOT VERIFIED:" in text
        assert "• the sender's signature does not verify" in text
        assert "• this message was delivered before" in text
        assert str(app.screen.query_one("#reader-text", Static).content) == "Send money."


async def test_a_single_problem_is_shown_on_the_verification_line(tmp_path: Path) -> None:
    """One problem takes another code path than several: it must say NOT VERIFIED too."""
    problem = "the server's signature does not verify"
    message = make_message(1, verification=unverified(problem))
    mailbox = build_mailbox(tmp_path, [message])
    app = MailApp(lambda: ReaderScreen(mailbox, message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = header_text(app)
        assert f"! NOT VERIFIED: {problem}" in text
        assert "signature verified" not in text
        assert app.screen.has_class("-unverified")


async def test_the_list_and_the_preview_mark_an_unverified_message(tmp_path: Path) -> None:
    good = make_message(1, subject="Genuine")
    bad = make_message(2, subject="Forged", verification=unverified("the sender's signature"))
    mailbox = build_mailbox(tmp_path, [good, bad])
    app = inbox_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        rows = app.screen.query_one(MessageList)
        first, second = rows.render_line(0).text, rows.render_line(1).text
        assert "Genuine" in first and "✓" in first and "!" not in first
        assert "Forged" in second and "!" in second and "✓" not in second
        await pilot.press("j")
        await wait_until(pilot, lambda: "Forged" in header_text(app, "#preview-header"))
        preview = header_text(app, "#preview-header")
        assert "! not verified" in preview and "✓ verified" not in preview


async def test_unknown_sender_shows_and_cannot_be_replied_to(tmp_path: Path) -> None:
    message = make_message(1, sender=None, verification=Verification(problems=("x",)))
    mailbox = build_mailbox(tmp_path, [message])
    app = inbox_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "unknown sender" in app.screen.query_one(MessageList).render_line(0).text
        await pilot.press("r")
        # The key was handled and refused in words (not merely ignored), and no compose opened.
        await wait_until(
            pilot, lambda: any("no known sender" in str(n.message) for n in app._notifications)
        )
        assert isinstance(app.screen, InboxScreen)


# -- compose -------------------------------------------------------------------------


async def test_reply_prefills_to_subject_and_quote(tmp_path: Path) -> None:
    original = make_message(
        1, subject="Re: Lunch?", body="Noon?\nAt the usual place.", received_at=BASE_TIME
    )
    mailbox = build_mailbox(tmp_path, [original])
    app = inbox_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = app.screen
        assert isinstance(screen, ComposeScreen)
        assert screen.query_one("#compose-to", Input).value == "bob@xyz"
        assert screen.query_one("#compose-subject", Input).value == "Re: Lunch?"
        body = screen.query_one("#compose-body", TextArea)
        lines = body.text.splitlines()
        assert lines[0].endswith("bob@xyz wrote:")
        assert lines[1:3] == ["> Noon?", "> At the usual place."]
        assert screen.in_reply_to == original.message_id
        assert body.has_focus


async def test_invalid_address_is_an_inline_error_and_keeps_the_draft(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    app = MailApp(lambda: ComposeScreen(mailbox))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"nobody")  # no @domain
        screen = app.screen
        screen.query_one("#compose-subject", Input).value = "Plans"
        screen.query_one("#compose-body", TextArea).text = "A long letter I do not want to lose."
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ComposeScreen)
        status = label_text(app, "#compose-status")
        assert status.startswith("Invalid address:")
        assert "exactly one '@'" in status
        assert screen.query_one("#compose-to", Input).value == "nobody"
        assert screen.query_one("#compose-subject", Input).value == "Plans"
        assert screen.query_one("#compose-body", TextArea).text.startswith("A long letter")


async def test_failed_send_keeps_everything_and_says_why(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [], offline=False, port=unreachable_port())
    app = MailApp(lambda: ComposeScreen(mailbox, to="bob@xyz", subject="Hi", body="Body text"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")
        screen = app.screen
        assert isinstance(screen, ComposeScreen)
        await wait_until(pilot, lambda: "Not sent" in label_text(app, "#compose-status"))
        assert "Cannot reach 127.0.0.1" in label_text(app, "#compose-status")
        assert (screen.to, screen.subject, screen.body) == ("bob@xyz", "Hi", "Body text")
        assert not screen.sending
        assert app.screen is screen


async def test_escape_asks_before_discarding_what_was_typed(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    app = inbox_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press("escape")  # nothing typed: closes at once
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press(*"bob")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # keep writing
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        assert app.screen.query_one("#compose-to", Input).value == "bob"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))


# -- help, confirm, errors -----------------------------------------------------------


def help_text(app: App[Any]) -> str:
    from rich.console import Console

    screen = app.screen
    assert isinstance(screen, HelpScreen)
    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(screen._keys_table())
    return console.export_text()


async def test_help_lists_every_inbox_binding(tmp_path: Path) -> None:
    app = inbox_app(build_mailbox(tmp_path, sample_messages(5)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = help_text(app)
        for binding in InboxScreen.BINDINGS:
            assert not isinstance(binding, tuple)
            assert binding.id and binding.id in text
            assert binding.description in text
        assert "j, ↓" in text and "m, c" in text
        markdown = app.screen.query_one("#help-text")
        assert "What the server can and cannot see" in getattr(markdown, "source", "")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))


async def test_help_follows_the_users_keymap(tmp_path: Path) -> None:
    app = inbox_app(build_mailbox(tmp_path, sample_messages(5)))
    app.set_keymap({"inbox.compose": "w"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        compose_row = next(line for line in help_text(app).splitlines() if "Compose" in line)
        assert compose_row.split()[0] == "w"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))


async def test_server_down_is_an_inline_error_and_the_list_stays_usable(tmp_path: Path) -> None:
    port = unreachable_port()
    mailbox = build_mailbox(tmp_path, sample_messages(10), offline=False, port=port)
    app = inbox_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "R to try again" in label_text(app, "#inbox-status"))
        status = app.screen.query_one("#inbox-status", Label)
        assert str(status.content).startswith(f"Cannot reach 127.0.0.1:{port}")
        assert status.has_class("-error")
        assert any(n.severity == "error" for n in app._notifications)
        await pilot.press("j")
        assert app.screen.query_one(MessageList).cursor == 1


async def test_q_quits(tmp_path: Path) -> None:
    app = inbox_app(build_mailbox(tmp_path, []))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("q")  # asks first (settings.confirm_quit, on by default)
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert app.return_code is None  # still running
        await pilot.press("y")
        await wait_until(pilot, lambda: app.return_code is not None)


# -- against a real rune-server --------------------------------------------------------


async def registered_mailbox(server: Any, name: str, root: Path) -> Mailbox:
    """Register ``name`` on the server as the wizard would, and open its Mailbox."""
    identity = Identity.generate()
    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        assert session.capabilities is not None
        address = parse_address(f"{name}@{session.capabilities.domain}")
        await session.register(address, identity)
    account = Account(address, server.host, server.port, server.tls_pin, server.server_key, "file")
    return Mailbox(Paths(root / name / "config", root / name / "data"), account, identity)


async def test_refresh_shows_new_mail_from_the_server(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    await bob.send(str(alice.address), "First light", "Hello from Bob.")
    app = inbox_app(alice)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: listing.row_count == 1)
        assert listing.highlighted is not None
        assert listing.highlighted.subject == "First light"
        assert listing.highlighted.verified
        assert app.screen.title == f"{alice.address} — 1 unread"
        await bob.send(str(alice.address), "Second", "Another one.")
        await pilot.press("R")
        await wait_until(pilot, lambda: listing.row_count == 2)
        assert listing.highlighted is not None and listing.highlighted.subject == "First light"
        assert {m.subject for m in listing.messages} == {"First light", "Second"}


async def test_new_mail_arrives_by_polling_without_a_key(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    app = inbox_app(alice, Settings(poll_seconds=1))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: not app.screen.refreshing)
        assert listing.row_count == 0
        await bob.send(str(alice.address), "Unprompted", "You did not press R.")
        await wait_until(pilot, lambda: listing.row_count == 1)
        assert app.screen.title == f"{alice.address} — 1 unread"


async def test_compose_and_send_arrives_in_the_other_mailbox(
    rune_server: Any, tmp_path: Path
) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    app = inbox_app(alice)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await wait_until(pilot, lambda: not app.screen.refreshing)  # type: ignore[attr-defined]
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press(*str(bob.address), "tab", *"Tea?", "tab")
        await pilot.press(*"Four o'clock,", "enter", *"in the garden.")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert any("Sent to" in str(n.message) for n in app._notifications)
    new = await bob.refresh()
    assert len(new) == 1
    received = bob.messages[new[0]]
    assert received.sender == alice.address
    assert received.verified, received.verification.problems
    assert (received.subject, received.body) == ("Tea?", "Four o'clock,\nin the garden.")


async def test_reply_from_the_reader_threads_to_the_original(
    rune_server: Any, tmp_path: Path
) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    original_id = await bob.send(str(alice.address), "Lunch?", "Noon?")
    app = inbox_app(alice)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: listing.row_count == 1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press(*"Yes!")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
    new = await bob.refresh()
    reply = bob.messages[new[0]]
    assert reply.subject == "Re: Lunch?"
    assert reply.in_reply_to == original_id
    assert reply.body.startswith("On ") and "> Noon?" in reply.body


async def test_help_from_compose_works_while_typing(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    app = MailApp(lambda: ComposeScreen(mailbox))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"bo", "f1")  # the To input has focus: ? would be typed
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = help_text(app)
        assert "compose.send" in text and "^s" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        assert app.screen.query_one("#compose-to", Input).value == "bo"
