"""What the inbox's parts share: its state, the list, the status line.

InboxScreen is put together from this base, the search (:mod:`.inbox_search`) and the
actions that open other screens (:mod:`.inbox_actions`), so each module stays short. The
few methods the parts call but InboxScreen defines are declared here.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Label
from textual.worker import Worker

from rune_proto.client import ReceivedMessage

from ..components.message_list import MessageList
from ..config import Settings
from ..search import Query, SearchIndex
from ..service import Mailbox


@dataclass(slots=True)
class PendingDelete:
    """A message hidden from the list whose DELETE has not been confirmed yet."""

    message: ReceivedMessage
    timer: Timer
    worker: Worker[bool] | None = None  # set once the DELETE is on its way: too late to undo


def _subject(message: ReceivedMessage) -> str:
    return f"“{message.subject or '(no subject)'}”"


class InboxBase(Screen[None]):
    """The inbox's state; see :class:`~.inbox.InboxScreen` for the screen itself."""

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
        self.pending: dict[str, PendingDelete] = {}  # in the order they were deleted
        self.search_index = SearchIndex()
        self.search_query: Query | None = None  # the last search applied, kept for n/N
        self.hits: set[str] | None = None  # its matches; None while it runs
        self.filtering = False  # the list shows only the hits
        self._counts = (0, 0)  # (messages listed when unfiltered, search hits among them)
        self._reading: tuple[int, int] | None = None  # bodies searched so far, of how many
        self._preview_of: ReceivedMessage | None = None  # what the preview is to show
        self._preview_due = False  # a preview update is scheduled after the next frame

    @property
    def message_list(self) -> MessageList:
        return self.query_one("#message-list", MessageList)

    def _present(self) -> list[ReceivedMessage]:
        """The mailbox, newest first, without the messages waiting to be deleted."""
        return [m for m in self.mailbox.ordered() if m.id not in self.pending]

    def _status(self, text: str, *, error: bool = False) -> None:
        label = self.query_one("#inbox-status", Label)
        label.update(text)
        label.set_class(error, "-error")

    def _highlighted(self) -> ReceivedMessage | None:
        message = self.message_list.highlighted
        if message is None:
            self.notify("There is no message here.", severity="warning")
        return message

    def _unread(self) -> int:
        hidden = sum(1 for i in self.pending if not self.mailbox.is_read(i))
        return self.mailbox.unread_count() - hidden

    # -- the cursor keys (bound by InboxScreen, with ids) -------------------------------

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

    # -- defined by InboxScreen --------------------------------------------------------

    def _sync(self, keep_id: str | None = None) -> None:
        raise NotImplementedError

    def _update_title(self) -> None:
        raise NotImplementedError

    def _status_ready(self) -> None:
        raise NotImplementedError

    async def _send_pending(self) -> bool:
        raise NotImplementedError

    def _delete_later(self, message: ReceivedMessage) -> None:
        raise NotImplementedError
