"""Sent (``S``, or "Sent" in the palette): what you sent, newest first, and each one read-only.

The rows come from the sealed Sent index (:mod:`rune_tui.sent`), loaded the first time
this opens; a body is decrypted only when the preview or the reader shows it. The list is
the inbox's :class:`MessageList`, so 10,000 sent messages scroll as fast as the inbox.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, Rule, Static

from rune_proto.client import ReceivedMessage, VaultError

from ..components.formatting import (
    human_size,
    preview_text,
    reply_subject,
    sentence,
    subject_text,
)
from ..components.message_header import MessageHeader
from ..components.message_list import MessageList
from ..config import Settings
from ..sent import SentMessage
from ..service import Mailbox
from . import STYLES
from .help import HelpScreen
from .save_dialog import ask_and_save

PREVIEW_LINES = 8
EMPTY_TEXT = "Nothing sent yet. What you send from now on is kept here, sealed."


def files_text(message: SentMessage) -> str:
    """The attachments in words: names and sizes, and whether their data is kept."""
    if not message.files:
        return ""
    count = len(message.files)
    noun = "file" if count == 1 else "files"
    width = min(48, max(cell_len(name) for name, _ in message.files))
    lines = []
    for name, size in message.files:
        shown = set_cell_size(name, width - 1) + "…" if cell_len(name) > width else name
        lines.append(f"{set_cell_size(shown, width)}  {human_size(size)}")
    if message.files_kept:
        title = f"{count} {noun} sent, kept here — s saves {'it' if count == 1 else 'them'}"
    else:
        title = (
            f"{count} {noun} sent; over the Sent limit (setting sent_attachment_limit_mib), "
            "so only names and sizes are kept here"
        )
    return "\n".join([title, *lines])


class SentScreen(Screen[None]):
    """The list of sent messages; Enter opens one in :class:`SentReaderScreen`."""

    CSS_PATH = STYLES
    AUTO_FOCUS = "#sent-list"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "list('cursor_down')", "Down", id="sent.down", show=False),
        Binding("k,up", "list('cursor_up')", "Up", id="sent.up", show=False),
        Binding("g,home", "list('first')", "First", id="sent.first", show=False),
        Binding("G,end", "list('last')", "Last", id="sent.last", show=False),
        Binding("pagedown", "list('page_down')", "Page down", id="sent.page_down", show=False),
        Binding("pageup", "list('page_up')", "Page up", id="sent.page_up", show=False),
        Binding("enter", "open", "Open", id="sent.open"),
        Binding("q,escape", "back", "Back", id="sent.back"),
        Binding("question_mark", "help", "Help", id="sent.help"),
    ]

    def __init__(self, mailbox: Mailbox, settings: Settings | None = None) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.settings = settings or Settings()

    def compose(self) -> ComposeResult:
        yield Header(icon="✉")
        with Vertical(id="sent"):
            yield MessageList(
                date_format=self.settings.date_format, empty_text=EMPTY_TEXT, id="sent-list"
            )
            yield Label("", id="sent-status", markup=False)
            with Vertical(id="sent-preview"):
                yield MessageHeader(date_format=self.settings.date_format, id="sent-header")
                yield Static("", id="sent-body", markup=False)
        yield Footer()

    @property
    def message_list(self) -> MessageList:
        return self.query_one("#sent-list", MessageList)

    def on_mount(self) -> None:
        self.title = "Sent"
        self.sub_title = str(self.mailbox.address)
        store = self.mailbox.sent
        rows = store.ordered()
        self.message_list.set_messages(rows)
        count = len(rows)
        status = f"{count:,} sent {'message' if count == 1 else 'messages'}, kept on this computer"
        if store.problem:
            status = f"{status} — {store.problem}"
        self.query_one("#sent-status", Label).update(status)

    def on_screen_resume(self) -> None:
        """Back from compose or the reader: something may have been sent meanwhile."""
        if self.is_mounted:
            current = self.message_list.highlighted
            keep = current.id if current is not None else None
            self.message_list.set_messages(self.mailbox.sent.ordered(), keep_id=keep)

    @on(MessageList.Highlighted)
    def _highlighted(self, event: MessageList.Highlighted) -> None:
        message = event.message
        self.query_one("#sent-header", MessageHeader).show(message)
        body = ""
        if message is not None:
            whole = self.mailbox.message(message.id)
            body = preview_text(whole.body, PREVIEW_LINES)
        self.query_one("#sent-body", Static).update(body)

    @on(MessageList.Selected)
    def _selected(self, event: MessageList.Selected) -> None:
        self._open(event.message)

    def action_list(self, action: str) -> None:
        getattr(self.message_list, f"action_{action}")()

    def action_open(self) -> None:
        message = self.message_list.highlighted
        if message is not None:
            self._open(message)

    def _open(self, message: object) -> None:
        if isinstance(message, SentMessage):
            whole = self.mailbox.message(message.id)
            assert isinstance(whole, SentMessage)
            self.app.push_screen(SentReaderScreen(self.mailbox, whole, self.settings))

    def action_back(self) -> None:
        self.dismiss(None)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self, title="Sent"))


class SentReaderScreen(Screen[None]):
    """One sent message, read-only: from you, to whom, when, its files, its text.

    ``s`` saves the kept attachments to the download folder, never over a file.
    """

    CSS_PATH = STYLES
    AUTO_FOCUS = "#sent-reader-body"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "back", "Back", id="sent_reader.back"),
        Binding("r", "follow_up", "Follow up", id="sent_reader.follow_up"),
        Binding("f", "forward", "Forward", id="sent_reader.forward"),
        Binding("s", "save", "Save files", id="sent_reader.save"),
        Binding("j", "scroll(1)", "Down", id="sent_reader.down", show=False),
        Binding("k", "scroll(-1)", "Up", id="sent_reader.up", show=False),
        Binding("space", "page(1)", "Page down", id="sent_reader.page_down", show=False),
        Binding("b", "page(-1)", "Page up", id="sent_reader.page_up", show=False),
        Binding("g", "top", "Top", id="sent_reader.top", show=False),
        Binding("G", "bottom", "Bottom", id="sent_reader.bottom", show=False),
        Binding("question_mark", "help", "Help", id="sent_reader.help"),
    ]

    def __init__(
        self, mailbox: Mailbox, message: SentMessage, settings: Settings | None = None
    ) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.message = message
        self.settings = settings or Settings()

    def compose(self) -> ComposeResult:
        yield Header(icon="✉")
        header = MessageHeader(
            date_format=self.settings.date_format, detailed=True, id="sent-reader-header"
        )
        header.show(self.message)
        yield header
        files = files_text(self.message)
        if files:
            yield Static(files, id="sent-reader-files", markup=False)
        yield Rule(id="sent-reader-rule")
        with VerticalScroll(id="sent-reader-body"):
            text = self.message.body or "(this message has no text)"
            yield Static(text, id="sent-reader-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = subject_text(self.message)
        self.sub_title = f"sent to {self.message.to}"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "save":
            return bool(self.message.files) and self.message.files_kept
        return True

    def action_follow_up(self) -> None:
        from .compose import ComposeScreen

        message = self.message
        self.app.push_screen(
            ComposeScreen(
                self.mailbox,
                to=str(message.to),
                subject=reply_subject(message.subject),
                in_reply_to=message.message_id,
            )
        )

    def action_forward(self) -> None:
        """A forward of your own message: "From: you", its text, and the files still kept."""
        from .reader import forward_screen

        message = self.message
        try:
            files = self.mailbox.sent.attachments(message.id)
        except (OSError, VaultError, ValueError, KeyError):
            files = ()  # forwarded without them; the text is what matters most
        as_received = ReceivedMessage(
            id=message.id,
            size=message.size,
            sender=message.sender,
            received_at=message.sent_at,
            subject=message.subject,
            body=message.body,
            attachments=files,
        )
        self.app.push_screen(forward_screen(self.mailbox, as_received, self.settings.date_format))

    def action_save(self) -> None:
        self._save()

    @work(group="save", exit_on_error=False)
    async def _save(self) -> None:
        """The kept files, saved where the user says, as the inbox's reader does."""
        try:
            files = await asyncio.to_thread(self.mailbox.sent.attachments, self.message.id)
        except (OSError, VaultError, ValueError, KeyError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.notify(f"{sentence(reason)}.", title="Not saved", severity="error", markup=False)
            return
        if files:
            await ask_and_save(self.app, files, self.settings.save_folder)

    def _body(self) -> VerticalScroll:
        return self.query_one("#sent-reader-body", VerticalScroll)

    def action_scroll(self, lines: int) -> None:
        self._body().scroll_relative(y=lines, animate=False)

    def action_page(self, direction: int) -> None:
        body = self._body()
        body.scroll_relative(y=direction * max(1, body.size.height - 1), animate=False)

    def action_top(self) -> None:
        self._body().scroll_home(animate=False)

    def action_bottom(self) -> None:
        self._body().scroll_end(animate=False)

    def action_back(self) -> None:
        self.dismiss(None)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self, title="Sent message"))
