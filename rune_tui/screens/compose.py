"""Write a message: To, Subject, Body; ctrl+s sends in a worker.

A failed send never loses a word: the screen stays open with everything typed and says
why under the form. Every binding uses ctrl or Escape, because a focused Input or
TextArea swallows printable keys.
"""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, TextArea

from rune_proto.address import AddressError, parse_address
from rune_proto.client import ReceivedMessage

from ..components.formatting import quote_body, reply_subject
from ..config import DEFAULT_DATE_FORMAT
from ..messages import MessageSent
from ..service import Mailbox, describe_error
from . import STYLES, leave
from .confirm import ConfirmScreen
from .help import HelpScreen


class ComposeScreen(Screen[str | None]):
    """Dismisses with the sent message's id, or None when the draft is abandoned."""

    CSS_PATH = STYLES
    AUTO_FOCUS = None  # on_mount decides: To for a new message, the body for a reply

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", id="compose.send", priority=True),
        Binding("escape", "cancel", "Cancel", id="compose.cancel"),
        Binding("f1", "help", "Help", id="compose.help"),
    ]

    def __init__(
        self,
        mailbox: Mailbox,
        *,
        to: str = "",
        subject: str = "",
        body: str = "",
        in_reply_to: str | None = None,
    ) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.initial = (to, subject, body)
        self.in_reply_to = in_reply_to
        self.sending = False

    @classmethod
    def reply(
        cls,
        mailbox: Mailbox,
        message: ReceivedMessage,
        *,
        date_format: str = DEFAULT_DATE_FORMAT,
    ) -> ComposeScreen:
        """A reply: To the sender, ``Re:`` once, the original quoted under an attribution."""
        return cls(
            mailbox,
            to=str(message.sender) if message.sender is not None else "",
            subject=reply_subject(message.subject),
            body=quote_body(message, date_format),
            in_reply_to=message.message_id,
        )

    def compose(self) -> ComposeResult:
        to, subject, body = self.initial
        yield Header(icon="✉")
        with Vertical(id="compose-form"):
            with Horizontal(classes="compose-field"):
                yield Label("From", classes="compose-label")
                yield Label(str(self.mailbox.address), id="compose-from", markup=False)
            with Horizontal(classes="compose-field"):
                yield Label("To", classes="compose-label")
                yield Input(to, placeholder="username@domain", id="compose-to", compact=True)
            with Horizontal(classes="compose-field"):
                yield Label("Subject", classes="compose-label")
                yield Input(subject, placeholder="(no subject)", id="compose-subject", compact=True)
            yield TextArea(body, id="compose-body", soft_wrap=True, tab_behavior="focus")
            yield Label("", id="compose-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        to = self.initial[0]
        self.title = f"Reply to {to}" if self.in_reply_to and to else "New message"
        self.sub_title = ""
        if self.in_reply_to and self.initial[0]:
            body = self.query_one("#compose-body", TextArea)
            body.focus()
            body.move_cursor(body.document.end)
        else:
            self.query_one("#compose-to", Input).focus()

    # -- what was typed --------------------------------------------------------

    @property
    def to(self) -> str:
        return self.query_one("#compose-to", Input).value

    @property
    def subject(self) -> str:
        return self.query_one("#compose-subject", Input).value

    @property
    def body(self) -> str:
        return self.query_one("#compose-body", TextArea).text

    @property
    def changed(self) -> bool:
        return (self.to, self.subject, self.body) != self.initial

    def _status(self, text: str, kind: str = "") -> None:
        label = self.query_one("#compose-status", Label)
        label.update(text)
        label.set_class(kind == "error", "-error")
        label.set_class(kind == "busy", "-busy")

    # -- actions ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("send", "cancel") and self.sending:
            return None  # shown greyed out in the footer while the send is in flight
        return True

    def action_send(self) -> None:
        to = self.to.strip()
        try:
            parse_address(to)
        except AddressError as exc:
            self._status(describe_error(exc), "error")
            self.query_one("#compose-to", Input).focus()
            return
        self._send(to, self.subject, self.body)

    @work(group="send", exclusive=True, exit_on_error=False)
    async def _send(self, to: str, subject: str, body: str) -> None:
        self.sending = True
        self.refresh_bindings()
        self._status(f"Sending to {to}…", "busy")
        try:
            message_id = await self.mailbox.send(to, subject, body, in_reply_to=self.in_reply_to)
        except Exception as exc:  # any failure: keep the draft and say why
            self.sending = False
            self.refresh_bindings()
            reason = describe_error(exc)
            self._status(f"Not sent: {reason}", "error")
            self.notify(reason, title="Not sent", severity="error")
            return
        self.sending = False
        self.app.post_message(MessageSent(to, message_id, self.in_reply_to))
        self.notify(f"Sent to {to}", title="Sent")
        leave(self, message_id)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self, title="Compose"))

    def action_cancel(self) -> None:
        if not self.changed:
            self.dismiss(None)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)

        self.app.push_screen(
            ConfirmScreen("Discard this message? What you typed will be lost.", yes="Discard"),
            answered,
        )
