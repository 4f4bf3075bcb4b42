"""The inbox's message list: a Line API ``ScrollView`` that stays instant at 10,000 rows.

A widget per row (ListView) or a full table model (DataTable) costs seconds at that size;
here only the rows on screen are rendered, each into a ``Strip`` kept in a small LRU
cache keyed by (row, width, highlighted), dropped whenever the data or styles change.
In the thread view each row also carries a tree prefix drawn before its subject.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from rune_proto.client import ReceivedMessage

from ..sent import SentMessage
from .formatting import (
    FILES_MARK,
    UNREAD_MARK,
    badge,
    date_width,
    file_names,
    format_when,
    sender_text,
    subject_text,
)

SENDER_WIDTH = 26
_GAP = 2


def fit(text: str, width: int) -> str:
    """Exactly ``width`` cells: padded, or cut with an ellipsis so a cut is visible."""
    if width <= 0:
        return ""
    text = " ".join(text.split())  # a subject with a newline must not break the row
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    return set_cell_size(text, width)


class MessageList(ScrollView, can_focus=True, inherit_bindings=False):
    """Rows of (unread mark, verification badge, sender, subject, received time).

    A message with attachments has ``+`` before its subject (names from the index: the
    list never decrypts a message to know).

    The badge is ✓ (verified), ! (not verified) or ⚠ on a red block (the sender's key is
    not the pinned one): a changed key must stand out in a list of thousands. A message
    you sent (Sent, or a reply of yours in the thread view) has ➤ and "To …" instead.

    It has no key bindings of its own (not even the scroll keys it would inherit): the
    screen binds the keys, with ids, so a user's keymap and the help screen see them all.
    The ``action_*`` methods are what those bindings call.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-list--cursor",
        "message-list--unread",
        "message-list--unread-mark",
        "message-list--verified",
        "message-list--unverified",
        "message-list--key-changed",
        "message-list--own",
        "message-list--thread",
        "message-list--date",
        "message-list--empty",
        "message-list--hit",
    }

    DEFAULT_CSS = """
    MessageList {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
        & > .message-list--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .message-list--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
        }
        & > .message-list--unread { text-style: bold; }
        & > .message-list--unread-mark { color: $accent; }
        & > .message-list--verified { color: $success; }
        & > .message-list--unverified { color: $error; text-style: bold; }
        & > .message-list--key-changed { color: $text; background: $error; text-style: bold; }
        & > .message-list--own { color: $accent; text-style: bold; }
        & > .message-list--thread { color: $text-muted; }
        & > .message-list--date { color: $text-muted; }
        & > .message-list--empty { color: $text-muted; text-style: italic; }
        & > .message-list--hit { color: $warning; text-style: bold underline; }
    }
    """

    class Highlighted(Message):
        """The cursor is on ``message`` (None when the list is empty).

        ``moved`` is True when a key or click moved the cursor, False when new rows were
        set: a screen may then let the list's repaint go first.
        """

        def __init__(
            self,
            message_list: MessageList,
            message: ReceivedMessage | None,
            index: int,
            *,
            moved: bool = False,
        ) -> None:
            super().__init__()
            self.message_list = message_list
            self.message = message
            self.index = index
            self.moved = moved

        @property
        def control(self) -> MessageList:
            return self.message_list

    class Selected(Message):
        """Enter or a double click on ``message``: the screen opens it."""

        def __init__(self, message_list: MessageList, message: ReceivedMessage, index: int) -> None:
            super().__init__()
            self.message_list = message_list
            self.message = message
            self.index = index

        @property
        def control(self) -> MessageList:
            return self.message_list

    def __init__(
        self,
        *,
        date_format: str = "%Y-%m-%d %H:%M",
        now: Callable[[], datetime] | None = None,
        empty_text: str = "No messages.",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.date_format = date_format
        self._now = now
        self._messages: list[ReceivedMessage] = []
        self._read: Collection[str] = frozenset()
        self._prefixes: Sequence[str] = ()
        self._hits: Collection[str] = frozenset()
        self._cursor = 0
        self._cache: LRUCache[tuple[int, int, bool], Strip] = LRUCache(256)
        self._styles: dict[str, Style] = {}  # component styles, resolved once per repaint
        self._empty_text = empty_text

    # -- data ------------------------------------------------------------------

    @property
    def messages(self) -> Sequence[ReceivedMessage]:
        return self._messages

    @property
    def row_count(self) -> int:
        return len(self._messages)

    @property
    def cursor(self) -> int:
        return self._cursor

    @cursor.setter
    def cursor(self, index: int) -> None:
        self.move_cursor(index)

    @property
    def highlighted(self) -> ReceivedMessage | None:
        return self._messages[self._cursor] if self._messages else None

    @property
    def empty_text(self) -> str:
        return self._empty_text

    @empty_text.setter
    def empty_text(self, text: str) -> None:
        self._empty_text = text
        if not self._messages:
            self.refresh()

    def set_messages(
        self,
        messages: Sequence[ReceivedMessage],
        read: Collection[str] = frozenset(),
        *,
        keep_id: str | None = None,
        prefixes: Sequence[str] = (),
        hits: Collection[str] = frozenset(),
    ) -> None:
        """Replace the rows; the cursor stays on ``keep_id`` (or its old index) if it can.

        ``read`` is kept by reference (the mailbox's live set), so marking a message read
        needs only :meth:`invalidate`. ``prefixes`` (thread view) go before the subjects,
        one per row; none in the flat view. ``hits`` (ids) are search matches shown among
        other rows: their subjects stand out so the eye finds what ``n`` jumps to.
        """
        self._messages = list(messages)
        self._read = read
        self._prefixes = prefixes
        self._hits = hits
        index = self._cursor
        if keep_id is not None:
            index = next((i for i, m in enumerate(self._messages) if m.id == keep_id), index)
        self._cursor = max(0, min(index, len(self._messages) - 1))
        self.virtual_size = Size(0, len(self._messages))
        self.invalidate()
        self._scroll_cursor_visible()
        self._post_highlighted()

    def invalidate(self) -> None:
        """Forget rendered rows (read marks, styles or data changed) and repaint."""
        self._cache.clear()
        self._styles.clear()
        self.refresh()

    def is_unread(self, message: ReceivedMessage) -> bool:
        return message.id not in self._read and not isinstance(message, SentMessage)

    # -- cursor ----------------------------------------------------------------

    def move_cursor(self, index: int) -> None:
        if not self._messages:
            return
        index = max(0, min(index, len(self._messages) - 1))
        if index == self._cursor:
            return
        old, self._cursor = self._cursor, index
        self.refresh_line(old)
        self.refresh_line(index)
        self._scroll_cursor_visible()
        self._post_highlighted(moved=True)

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self._cursor + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(self._cursor - 1)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._messages) - 1)

    def action_page_down(self) -> None:
        self.move_cursor(self._cursor + self._page())

    def action_page_up(self) -> None:
        self.move_cursor(self._cursor - self._page())

    def action_select(self) -> None:
        message = self.highlighted
        if message is not None:
            self.post_message(self.Selected(self, message, self._cursor))

    def _scroll_cursor_visible(self) -> None:
        height = self.scrollable_content_region.height
        if height <= 0:
            return
        top = round(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, force=True)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=False, force=True)

    def _post_highlighted(self, *, moved: bool = False) -> None:
        self.post_message(self.Highlighted(self, self.highlighted, self._cursor, moved=moved))

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        self._styles.clear()
        self._scroll_cursor_visible()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = round(self.scroll_y) + offset.y
        if 0 <= index < len(self._messages):
            self.focus()
            self.move_cursor(index)
            if event.chain >= 2:
                self.action_select()

    def on_focus(self, event: events.Focus) -> None:
        self.invalidate()

    def on_blur(self, event: events.Blur) -> None:
        self.invalidate()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
        self._styles.clear()

    # -- rendering -------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = round(self.scroll_y) + y
        if not self._messages:
            return self._render_empty(y, width)
        if index >= len(self._messages):
            return Strip.blank(width, self._base())
        key = (index, width, index == self._cursor)
        strip = self._cache.get(key)
        if strip is None:
            prefix = self._prefixes[index] if index < len(self._prefixes) else ""
            strip = self._render_row(self._messages[index], width, index == self._cursor, prefix)
            self._cache.set(key, strip)
        return strip

    def _base(self) -> Style:
        """The widget's own style (walks its ancestors' backgrounds: worth keeping)."""
        style = self._styles.get("")
        if style is None:
            style = self._styles[""] = self.rich_style
        return style

    def _style(self, name: str) -> Style:
        """A component style; each costs a CSS lookup, and a row uses up to eight."""
        style = self._styles.get(name)
        if style is None:
            style = self.get_component_rich_style(f"message-list--{name}", partial=True)
            self._styles[name] = style
        return style

    def _render_empty(self, y: int, width: int) -> Strip:
        if y != 1:
            return Strip.blank(width, self._base())
        style = self._base() + self._style("empty")
        return Strip([Segment(fit("  " + self._empty_text, width), style)], width)

    def _render_row(
        self, message: ReceivedMessage, width: int, highlighted: bool, prefix: str = ""
    ) -> Strip:
        base = self._base()
        if highlighted:
            base += self._style("cursor")
        unread = self.is_unread(message)
        if unread:
            base += self._style("unread")
        mark = base + self._style("unread-mark") if not highlighted else base
        if isinstance(message, SentMessage):
            badge_style = base + self._style("own")
        elif message.verification.key_change is not None:
            badge_style = base + self._style("key-changed")
        else:
            badge_style = base + self._style("verified" if message.verified else "unverified")
        date = base if highlighted else base + self._style("date")
        when = format_when(
            message.received_at, self.date_format, self._now() if self._now else None
        )
        date_cells = date_width(self.date_format)
        sender_cells = min(SENDER_WIDTH, max(8, width // 5))
        subject_cells = max(0, width - 5 - sender_cells - _GAP - _GAP - date_cells - 1)
        if len(prefix) > subject_cells // 2:  # box-drawing only: one cell per character
            prefix = prefix[len(prefix) - subject_cells // 2 :]
        subject = subject_text(message)
        thread = base if highlighted else base + self._style("thread")
        files = FILES_MARK + " " if file_names(message) else ""
        subject = fit(subject, subject_cells - cell_len(prefix) - cell_len(files))
        words = subject.rstrip(" ")
        hit = base + self._style("hit") if message.id in self._hits else base
        segments = [
            Segment(" ", base),
            Segment(UNREAD_MARK if unread else " ", mark),
            Segment(" ", base),
            Segment(badge(message), badge_style),
            Segment(" ", base),
            Segment(fit(sender_text(message), sender_cells), base),
            Segment(" " * _GAP, base),
            Segment(prefix, thread),
            Segment(files, base),  # attachments: before the subject, where the eye reads
            Segment(words, hit),  # a search hit's words stand out, not its padding
            Segment(subject[len(words) :], base),
            Segment(" " * _GAP, base),
            Segment(when.rjust(date_cells), date),
            Segment(" ", base),
        ]
        return Strip(segments).adjust_cell_length(width, base).simplify()
