"""One message, whole: its header with the verification status in words, then the body.

A message whose checks failed is shown like any other, with "NOT VERIFIED" and the list
of problems in the error colour — the reader decides what to make of it, not the app. A
sender whose key is not the pinned one gets a red banner above everything, with both
fingerprints and the key (K) that opens the review.

Attachments are listed under the header; ``s`` asks where to save them (the last folder
used, ``settings.save_folder`` or the download folder), never over an existing file.
``d`` does not delete here: the reader closes and hands the message to the inbox, which
hides it at once and deletes it on the server only after the undo delay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, OptionList, Rule, Static
from textual.widgets.option_list import Option

from rune_proto.client import ReceivedMessage
from rune_proto.envelope import Attachment

from ..components.formatting import (
    forward_body,
    forward_subject,
    human_size,
    key_change_text,
    sender_text,
    subject_text,
    unreadable_text,
)
from ..components.message_header import MessageHeader
from ..config import DEFAULT_DATE_FORMAT, Settings
from ..filenames import safe_filename
from ..service import Mailbox
from . import STYLES, leave
from .compose import ComposeScreen
from .help import HelpScreen
from .save_dialog import ask_and_save

# The folder attachments were last saved in, per app: the next save starts there.

# -- what the inbox shares: forwarding, key review --------------------------


def forward_screen(
    mailbox: Mailbox, message: ReceivedMessage, date_format: str = DEFAULT_DATE_FORMAT
) -> ComposeScreen:
    """A new message with ``Fwd:``, the original under a forwarded-message header, and its files.

    The files go on as they came, under the names the reader would save them as: a
    sender's ``../../.bashrc`` or bidi trick is not passed on to the next person.
    """
    return ComposeScreen(
        mailbox,
        subject=forward_subject(message.subject),
        body=forward_body(message, date_format),
        files=[Attachment(safe_filename(a.filename), a.data) for a in message.attachments],
        heading=f"Forward from {message.sender}" if message.sender else "Forward",
    )


def forward(screen: Screen[Any], mailbox: Mailbox, message: ReceivedMessage, fmt: str) -> None:
    """Open compose with ``message`` forwarded (from the inbox or the reader)."""
    screen.app.push_screen(forward_screen(mailbox, message, fmt))


def review_key_change(screen: Screen[Any], mailbox: Mailbox, message: ReceivedMessage) -> None:
    """Open the key review for a message whose sender's key changed (or say why not)."""
    change = message.verification.key_change
    if change is None or message.sender_key is None:
        screen.notify("The sender's key of this message is the pinned one.")
        return
    from .key_change import KeyChangeScreen  # lazily: the reader opens without it

    screen.app.push_screen(
        KeyChangeScreen(mailbox, change.address, change.pinned, message.sender_key)
    )


# -- the screen ----------------------------------------------------------------------------


class ReaderScreen(Screen[str | None]):
    """Read one message. Dismisses with its id when the user deletes it, else None."""

    CSS_PATH = STYLES
    AUTO_FOCUS = "#reader-body"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "back", "Back", id="reader.back"),
        Binding("r", "reply", "Reply", id="reader.reply"),
        Binding("f", "forward", "Forward", id="reader.forward"),
        Binding("d", "delete", "Delete", id="reader.delete"),
        Binding("s", "save", "Save files", id="reader.save"),
        Binding("K", "key_change", "Review key", id="reader.key_change"),
        Binding("U", "toggle_read", "Mark unread/read", id="reader.toggle_read", show=False),
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

    def compose(self) -> ComposeResult:
        yield Header(icon="✉")
        banner = key_change_text(self.message)
        if banner is not None:
            yield Static(banner, id="reader-key-changed", markup=False)
        header = MessageHeader(
            date_format=self.settings.date_format,
            detailed=True,
            to=str(self.mailbox.address),
            id="reader-header",
        )
        header.show(self.message)
        yield header
        if self.message.attachments:
            with Vertical(id="reader-files"):
                count = len(self.message.attachments)
                noun = "file" if count == 1 else "files"
                hint = "s saves it" if count == 1 else "s saves all, or Tab to one and s"
                yield Label(f"{count} {noun} — {hint}", id="reader-files-title")
                names = [safe_filename(a.filename) for a in self.message.attachments]
                width = min(48, max(cell_len(name) for name in names))
                yield OptionList(
                    *(
                        self._file_option(name, len(a.data), width)
                        for name, a in zip(names, self.message.attachments, strict=True)
                    ),
                    id="reader-files-list",
                )
        yield Rule(id="reader-rule")
        with VerticalScroll(id="reader-body"):
            text = (
                unreadable_text(self.message) or self.message.body or "(this message has no text)"
            )
            yield Static(text, id="reader-text", markup=False)
        yield Footer()

    @staticmethod
    def _file_option(name: str, size: int, width: int) -> Option:
        """``name  size``, names padded to ``width`` so that the sizes line up."""
        if cell_len(name) > width:
            name = set_cell_size(name, width - 1) + "…"
        # The gap belongs to the name: SVG renderers drop spaces that start a styled run.
        prompt = Text(set_cell_size(name, width) + "  ", no_wrap=True)
        prompt.append(human_size(size), style="dim")
        return Option(prompt)

    def on_mount(self) -> None:
        self.title = subject_text(self.message)
        self.sub_title = sender_text(self.message)
        if not self.message.verified:
            self.add_class("-unverified")
        self.mailbox.mark_read(self.message.id)

    def on_screen_resume(self) -> None:
        """Back from the key review: an accepted key re-verifies the message; show that."""
        row = self.mailbox.messages.get(self.message.id)
        if row is not None and row.verification != self.message.verification:
            self.message = self.mailbox.message(self.message.id)
            self.set_class(not self.message.verified, "-unverified")
            self.refresh(recompose=True)
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "save":
            return bool(self.message.attachments)
        if action == "key_change":
            return self.message.verification.key_change is not None
        return True

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

    def action_forward(self) -> None:
        forward(self, self.mailbox, self.message, self.settings.date_format)

    def action_delete(self) -> None:
        """Back to the inbox, which hides the message and offers undo."""
        leave(self, self.message.id)

    def action_toggle_read(self) -> None:
        read = not self.mailbox.is_read(self.message.id)
        self.mailbox.mark_read(self.message.id, read)
        self.notify("Marked read." if read else "Marked unread.")

    def action_key_change(self) -> None:
        review_key_change(self, self.mailbox, self.message)

    # -- attachments ---------------------------------------------------------------------

    def action_save(self) -> None:
        files = self.message.attachments
        if not files:
            self.notify("This message has no attachments.")
            return
        chosen: Sequence[Attachment] = files
        listing = self.query_one("#reader-files-list", OptionList)
        if listing.has_focus and listing.highlighted is not None:
            chosen = [files[listing.highlighted]]
        self._ask_where(chosen)

    @work(group="save", exit_on_error=False)
    async def _ask_where(self, files: Sequence[Attachment]) -> None:
        await ask_and_save(self.app, files, self.settings.save_folder)
