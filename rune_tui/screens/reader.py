"""One message, whole: its header with the verification status in words, then the body.

A message whose checks failed is shown like any other, with "NOT VERIFIED" and the list
of problems in the error colour — the reader decides what to make of it, not the app.
"""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Rule, Static

from rune_proto.client import ReceivedMessage

from ..components.formatting import sender_text
from ..components.message_header import MessageHeader
from ..config import Settings
from ..messages import MessageDeleted
from ..service import Mailbox, describe_error
from . import STYLES, leave
from .compose import ComposeScreen
from .confirm import ConfirmScreen
from .help import HelpScreen


class ReaderScreen(Screen[None]):
    """Read one message; r replies, d deletes (after a yes), q or Escape goes back."""

    CSS_PATH = STYLES
    AUTO_FOCUS = "#reader-body"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "back", "Back", id="reader.back"),
        Binding("r", "reply", "Reply", id="reader.reply"),
        Binding("d", "delete", "Delete", id="reader.delete"),
        Binding("j", "scroll(1)", "Down", id="reader.down", show=False),
        Binding("k", "scroll(-1)", "Up", id="reader.up", show=False),
        Binding("space", "page(1)", "Page down", id="reader.page_down", show=False),
        Binding("b", "page(-1)", "Page up", id="reader.page_up", show=False),
        Binding("g", "top", "Top", id="reader.top", show=False),
        Binding("G", "bottom", "Bottom", id="reader.bottom", show=False),
        Binding("question_mark", "help", "Help", id="reader.help"),
    ]

    def __init__(
        self,
        mailbox: Mailbox,
        message: ReceivedMessage,
        settings: Settings | None = None,
    ) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.message = message
        self.settings = settings or Settings()
        self.deleting = False

    def compose(self) -> ComposeResult:
        yield Header(icon="✉")
        header = MessageHeader(
            date_format=self.settings.date_format,
            detailed=True,
            to=str(self.mailbox.address),
            id="reader-header",
        )
        header.show(self.message)
        yield header
        yield Rule(id="reader-rule")
        with VerticalScroll(id="reader-body"):
            text = self.message.body or "(this message has no text)"
            yield Static(text, id="reader-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = self.message.subject or "(no subject)"
        self.sub_title = sender_text(self.message)
        if not self.message.verified:
            self.add_class("-unverified")

    def _body(self) -> VerticalScroll:
        return self.query_one("#reader-body", VerticalScroll)

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
        self.app.push_screen(HelpScreen(self, title="Reader"))

    def action_reply(self) -> None:
        if self.message.sender is None:
            self.notify("This message has no known sender to reply to.", severity="warning")
            return
        self.app.push_screen(
            ComposeScreen.reply(self.mailbox, self.message, date_format=self.settings.date_format)
        )

    def action_delete(self) -> None:
        if self.deleting:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete()

        question = f"Delete this message from {sender_text(self.message)}?"
        self.app.push_screen(ConfirmScreen(question, yes="Delete"), answered)

    @work(group="delete", exit_on_error=False)
    async def _delete(self) -> None:
        self.deleting = True
        try:
            await self.mailbox.delete(self.message.id)
        except Exception as exc:  # keep the reader open and say why
            self.deleting = False
            self.notify(describe_error(exc), title="Not deleted", severity="error")
            return
        self.app.post_message(MessageDeleted(self.message.id))
        self.notify("Message deleted.")
        leave(self)
