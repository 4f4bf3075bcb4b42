"""A message's header block (From + verification, To, Date, Subject).

Shared by the inbox preview (compact) and the reader (detailed), so the verification
status reads the same everywhere. It renders a Rich grid from plain ``Text`` — never
markup — because every field here was written by someone else.
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from rune_proto.client import ReceivedMessage

from ..sent import SentMessage
from .formatting import (
    KEY_CHANGED_BADGE,
    OWN_BADGE,
    UNVERIFIED_BADGE,
    VERIFIED_BADGE,
    files_text,
    format_when,
    sender_text,
    subject_text,
    verification_text,
)

_LABEL_CELLS = 7  # the label column: "Subject"
_LABEL_GAP = "  "


class MessageHeader(Widget):
    """Header fields of one message; ``show(None)`` leaves a quiet placeholder."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-header--label",
        "message-header--verified",
        "message-header--unverified",
        "message-header--subject",
        "message-header--muted",
        "message-header--files",
    }

    DEFAULT_CSS = """
    MessageHeader {
        height: auto;
        & > .message-header--label { color: $text-muted; text-style: bold; }
        & > .message-header--verified { color: $success; }
        & > .message-header--unverified { color: $error; text-style: bold; }
        & > .message-header--subject { text-style: bold; }
        & > .message-header--muted { color: $text-muted; text-style: italic; }
        & > .message-header--files { color: $accent; }
    }
    """

    def __init__(
        self,
        *,
        date_format: str,
        detailed: bool = False,
        to: str | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.date_format = date_format
        self.detailed = detailed
        self.to = to
        self.message: ReceivedMessage | None = None

    def show(self, message: ReceivedMessage | None) -> None:
        self.message = message
        # The compact header is always three one-line rows: skipping layout keeps moving
        # through the inbox cheap. The detailed one grows with its problems.
        self.refresh(layout=self.detailed)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"message-header--{name}", partial=True)

    def render(self) -> RenderableType:
        message = self.message
        if message is None:
            return Text("No message selected.", style=self._style("muted"))
        if not self.detailed:
            return self._compact(message)
        grid = Table.grid(padding=(0, 2), expand=True)
        grid.add_column(style=self._style("label"), no_wrap=True, min_width=7)
        if self.detailed:
            grid.add_column(ratio=1, overflow="fold")
        else:
            grid.add_column(ratio=1, overflow="ellipsis", no_wrap=True)
        grid.add_row("From", self._sender(message))
        if self.detailed and isinstance(message, SentMessage):
            grid.add_row("", Text(f"{OWN_BADGE} sent by you", style=self._style("verified")))
            grid.add_row("To", Text(str(message.to)))
        elif self.detailed:
            grid.add_row("", self._verification(message))
            if not message.verified:
                hint = "Shown as received. Treat the sender as unknown until you know why."
                grid.add_row("", Text(hint, style=self._style("muted")))
            if self.to:
                grid.add_row("To", Text(self.to))
        when = format_when(message.received_at, self.date_format)
        grid.add_row("Date", Text(when))
        subject = subject_text(message)
        grid.add_row("Subject", Text(subject, style=self._style("subject")))
        return grid

    def _compact(self, message: ReceivedMessage) -> Text:
        """From, Date, Subject on one line each, cut with an ellipsis.

        The same cells as the grid the detailed header uses, drawn as plain lines: the
        inbox redraws this on every cursor move, and a Rich table costs ~5 ms a time.
        """
        label = self._style("label")
        subject = subject_text(message)
        date = Text(format_when(message.received_at, self.date_format))
        files = files_text(message)
        if files:  # the three rows stay three: the files share the date's row
            date.append("   ")
            date.append(files, style=self._style("files"))
        rows = (
            ("From", self._sender(message)),
            ("Date", date),
            ("Subject", Text(subject, style=self._style("subject"))),
        )
        room = max(0, self.content_region.width - _LABEL_CELLS - len(_LABEL_GAP))
        lines = []
        for name, value in rows:
            value.truncate(room, overflow="ellipsis", pad=True)
            line = Text(no_wrap=True, end="")
            line.append(name.ljust(_LABEL_CELLS) + _LABEL_GAP, style=label)
            line.append_text(value)
            lines.append(line)
        return Text("\n", no_wrap=True).join(lines)

    def _sender(self, message: ReceivedMessage) -> Text:
        if isinstance(message, SentMessage):
            text = Text(f"you ({message.sender})")
            if not self.detailed:
                text.append("  ")  # unstyled: SVG renderers drop spaces that start a run
                text.append(f"{OWN_BADGE} to {message.to}", style=self._style("verified"))
            return text
        text = Text(sender_text(message))
        if not self.detailed:
            text.append("  ")
            if message.verification.key_change is not None:
                text.append(f"{KEY_CHANGED_BADGE} KEY CHANGED", style=self._style("unverified"))
            elif message.unreadable:
                text.append(f"{UNVERIFIED_BADGE} unreadable", style=self._style("unverified"))
            elif message.verified:
                text.append(f"{VERIFIED_BADGE} verified", style=self._style("verified"))
            else:
                text.append(f"{UNVERIFIED_BADGE} not verified", style=self._style("unverified"))
        return text

    def _verification(self, message: ReceivedMessage) -> Text:
        """One line when verified or one problem; a bulleted list for several problems."""
        problems = message.verification.problems
        if message.verified or len(problems) < 2:
            name = "verified" if message.verified else "unverified"
            return Text(verification_text(message), style=self._style(name))
        lines = [f"{UNVERIFIED_BADGE} NOT VERIFIED:", *(f"  • {p}" for p in problems)]
        return Text("\n".join(lines), style=self._style("unverified"))
