"""The inbox: the message list above, a preview of the highlighted message below.

What is already in the mailbox shows at once; a refresh runs in a worker and its result
(or its failure, in words) lands in the status line, so the list is never blocked by the
network. The screen re-reads the shared Mailbox whenever it comes back to the top,
which is how a delete or a read in the reader shows here.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, Static

from rune_proto.client import ReceivedMessage

from ..components.formatting import preview_text, sender_text
from ..components.message_header import MessageHeader
from ..components.message_list import MessageList
from ..config import Settings
from ..messages import MailboxRefreshed, MessageDeleted, RefreshFailed
from ..service import Mailbox, describe_error
from . import STYLES
from .compose import ComposeScreen
from .confirm import ConfirmScreen
from .help import HelpScreen
from .reader import ReaderScreen

PREVIEW_LINES = 8


class InboxScreen(Screen[None]):
    """Pushed by the app once it has a Mailbox and Settings."""

    CSS_PATH = STYLES
    AUTO_FOCUS = "#message-list"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor_down", "Down", id="inbox.down", show=False),
        Binding("k,up", "cursor_up", "Up", id="inbox.up", show=False),
        Binding("g,home", "first", "First", id="inbox.first", show=False),
        Binding("G,end", "last", "Last", id="inbox.last", show=False),
        Binding("pagedown", "page_down", "Page down", id="inbox.page_down", show=False),
        Binding("pageup", "page_up", "Page up", id="inbox.page_up", show=False),
        Binding("enter", "open", "Open", id="inbox.open"),
        Binding("r", "reply", "Reply", id="inbox.reply"),
        Binding("m,c", "compose", "Compose", id="inbox.compose"),
        Binding("d", "delete", "Delete", id="inbox.delete"),
        Binding("R", "refresh", "Refresh", id="inbox.refresh"),
        Binding("question_mark", "help", "Help", id="inbox.help"),
        Binding("q", "quit", "Quit", id="inbox.quit"),
    ]

    def __init__(
        self,
        mailbox: Mailbox,
        settings: Settings | None = None,
        *,
        refresh_on_mount: bool = True,
    ) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.settings = settings or Settings()
        self.refresh_on_mount = refresh_on_mount
        self.refreshing = False

    def compose(self) -> ComposeResult:
        yield Header(icon="✉")
        with Vertical(id="inbox"):
            yield MessageList(
                date_format=self.settings.date_format,
                empty_text="Checking for new mail…",
                id="message-list",
            )
            yield Label("", id="inbox-status", markup=False)
            with Vertical(id="preview"):
                yield MessageHeader(date_format=self.settings.date_format, id="preview-header")
                yield Static("", id="preview-body", markup=False)
        yield Footer()

    @property
    def message_list(self) -> MessageList:
        return self.query_one("#message-list", MessageList)

    def on_mount(self) -> None:
        self._sync()
        if self.refresh_on_mount:
            self.action_refresh()
            self.set_interval(self.settings.poll_seconds, self._poll)
        else:
            self._status_ready()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self._sync()

    def _sync(self) -> None:
        """Show the mailbox as it is now, keeping the cursor on the same message."""
        current = self.message_list.highlighted
        self.message_list.set_messages(
            self.mailbox.ordered(),
            self.mailbox.read,
            keep_id=current.id if current is not None else None,
        )
        self._update_title()
        label = self.query_one("#inbox-status", Label)
        if not self.refreshing and not label.has_class("-error"):
            self._status_ready()  # the counts follow reads and deletes, not just refreshes

    def _update_title(self) -> None:
        self.title = f"{self.mailbox.address} — {self.mailbox.unread_count()} unread"
        self.sub_title = ""

    def _status(self, text: str, *, error: bool = False) -> None:
        label = self.query_one("#inbox-status", Label)
        label.update(text)
        label.set_class(error, "-error")

    def _status_ready(self) -> None:
        count = len(self.mailbox.messages)
        unread = self.mailbox.unread_count()
        noun = "message" if count == 1 else "messages"
        self._status(f"{count:,} {noun}, {unread:,} unread")
        if count == 0:
            self.message_list.empty_text = "No messages yet. Press R to check again."

    # -- refresh -----------------------------------------------------------------

    def action_refresh(self) -> None:
        if not self.refreshing:
            self._refresh()

    def _poll(self) -> None:
        """Check for new mail on a timer; failures only show in the status line."""
        if not self.refreshing and self.is_current:
            self._refresh(quiet=True)

    @work(group="refresh", exclusive=True, exit_on_error=False)
    async def _refresh(self, quiet: bool = False) -> None:
        self.refreshing = True
        if not quiet:
            self._status("Checking for new mail…")

        def progress(done: int, total: int) -> None:
            self._status(f"Fetching new messages: {done:,} of {total:,}…")

        try:
            new = await self.mailbox.refresh(progress)
        except Exception as exc:  # the list stays usable; say what went wrong
            reason = describe_error(exc)
            self._status(f"{reason} — press R to try again.", error=True)
            if not self.mailbox.messages:
                self.message_list.empty_text = "Could not check for mail."
            if not quiet:
                self.notify(reason, title="Cannot refresh", severity="error")
            self.app.post_message(RefreshFailed(str(self.mailbox.address), reason))
            return
        finally:
            self.refreshing = False
        self._sync()
        self._status_ready()
        if new:
            noun = "message" if len(new) == 1 else "messages"
            self.notify(f"{len(new):,} new {noun}", title="New mail")
        address = str(self.mailbox.address)
        self.app.post_message(MailboxRefreshed(address, new, self.mailbox.unread_count()))

    # -- list and preview ----------------------------------------------------------

    @on(MessageList.Highlighted)
    def _show_preview(self, event: MessageList.Highlighted) -> None:
        self.query_one("#preview-header", MessageHeader).show(event.message)
        body = preview_text(event.message.body, PREVIEW_LINES) if event.message else ""
        self.query_one("#preview-body", Static).update(body, layout=False)  # fixed size

    @on(MessageList.Selected)
    def _selected(self, event: MessageList.Selected) -> None:
        self._open(event.message)

    def action_cursor_down(self) -> None:
        self.message_list.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.message_list.action_cursor_up()

    def action_first(self) -> None:
        self.message_list.action_first()

    def action_last(self) -> None:
        self.message_list.action_last()

    def action_page_down(self) -> None:
        self.message_list.action_page_down()

    def action_page_up(self) -> None:
        self.message_list.action_page_up()

    # -- opening, replying, writing, deleting --------------------------------------

    def _highlighted(self) -> ReceivedMessage | None:
        message = self.message_list.highlighted
        if message is None:
            self.notify("There is no message here.", severity="warning")
        return message

    def action_open(self) -> None:
        message = self._highlighted()
        if message is not None:
            self._open(message)

    def _open(self, message: ReceivedMessage) -> None:
        self.mailbox.read.add(message.id)
        self.message_list.invalidate()
        self._update_title()
        self.app.push_screen(ReaderScreen(self.mailbox, message, self.settings))

    def action_reply(self) -> None:
        message = self._highlighted()
        if message is None:
            return
        if message.sender is None:
            self.notify("This message has no known sender to reply to.", severity="warning")
            return
        self.app.push_screen(
            ComposeScreen.reply(self.mailbox, message, date_format=self.settings.date_format)
        )

    def action_compose(self) -> None:
        self.app.push_screen(ComposeScreen(self.mailbox))

    def action_delete(self) -> None:
        message = self._highlighted()
        if message is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(message)

        subject = message.subject or "(no subject)"
        question = f"Delete “{subject}” from {sender_text(message)}?"
        self.app.push_screen(ConfirmScreen(question, yes="Delete"), answered)

    @work(group="delete", exit_on_error=False)
    async def _delete(self, message: ReceivedMessage) -> None:
        self._status(f"Deleting “{message.subject or '(no subject)'}”…")
        try:
            await self.mailbox.delete(message.id)
        except Exception as exc:  # the message stays; say why
            reason = describe_error(exc)
            self._status(f"Not deleted: {reason}", error=True)
            self.notify(reason, title="Not deleted", severity="error")
            return
        self._sync()
        self._status_ready()
        self.notify("Message deleted.")
        self.app.post_message(MessageDeleted(message.id))

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self, title="Inbox"))

    def action_quit(self) -> None:
        self.app.exit()
