"""The inbox: the message list above, a preview of the highlighted message below.

What is already in the mailbox shows at once; a refresh runs in a worker and its result
(or its failure, in words) lands in the status line, so the list is never blocked by the
network. The screen re-reads the shared Mailbox whenever it comes back to the top,
which is how a read in the reader shows here.

Three views of the same mailbox stack up in :meth:`InboxScreen._sync`: messages waiting
for their delete to go out are hidden; a search filter keeps only its hits; the thread
view orders what is left by conversation.

Deleting asks nothing: the message disappears at once and ``u`` brings it back. Only
after ``DELETE_UNDO_SECONDS`` does the DELETE go to the server, in a worker; if it fails
the message comes back with the reason. Quitting sends what is still waiting first (and
stays open, saying so, if that fails); leaving any other way still tries to send it.

The screen is assembled from parts: its state (:mod:`.inbox_base`), the search
(:mod:`.inbox_search`) and the keys that open other screens (:mod:`.inbox_actions`).
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, Label, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from rune_proto.client import ReceivedMessage

from ..components.formatting import preview_text, unreadable_text
from ..components.message_header import MessageHeader
from ..components.message_list import MessageList
from ..messages import MailboxRefreshed, MessageDeleted, RefreshFailed
from ..pace import Pace
from ..sent import SentMessage
from ..service import describe_error
from ..threads import conversations
from . import STYLES
from .inbox_actions import InboxActions
from .inbox_base import PendingDelete, _subject
from .inbox_live import InboxLive
from .inbox_search import InboxSearch

PREVIEW_LINES = 8
DELETE_UNDO_SECONDS = 5.0  # how long "press u to undo" lasts before the DELETE goes out
EXIT_DELETE_SECONDS = 5.0  # leaving without q: how long pending deletes may take at most

# The thread view is a choice for the whole session, not for one inbox screen.
_THREADED: WeakKeyDictionary[App[Any], bool] = WeakKeyDictionary()


class InboxScreen(InboxSearch, InboxActions, InboxLive):
    """Pushed by the app once it has a Mailbox and Settings (see InboxBase for its state)."""

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
        Binding("f", "forward", "Forward", id="inbox.forward"),
        Binding("m,c", "compose", "Compose", id="inbox.compose"),
        Binding("d", "delete", "Delete", id="inbox.delete"),
        Binding("u", "undo", "Undo", id="inbox.undo", tooltip="Bring back the last deleted"),
        Binding("U", "toggle_read", "Mark unread/read", id="inbox.toggle_read", show=False),
        Binding("slash", "search", "Search", id="inbox.search"),
        Binding("n", "next_hit(1)", "Next match", id="inbox.next_hit", show=False),
        Binding("N", "next_hit(-1)", "Previous match", id="inbox.previous_hit", show=False),
        Binding("escape", "clear_search", "Clear search", id="inbox.clear_search", show=False),
        Binding("t", "toggle_threads", "Threads", id="inbox.threads"),
        Binding("K", "key_change", "Review changed key", id="inbox.key_change", show=False),
        Binding("R", "refresh", "Refresh", id="inbox.refresh"),
        Binding("question_mark", "help", "Help", id="inbox.help"),
        Binding("q", "quit", "Quit", id="inbox.quit"),
    ]

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
        with Horizontal(id="search-bar"):
            yield Label("Search:", id="search-prompt")
            yield Input(
                placeholder="words, from:…, subject:…, body:… — Enter filters, Esc clears",
                id="search-input",
                compact=True,
            )
        yield Footer()

    _last_deleted: str | None = None  # the subject of the last message d hid, for u's answer
    _failed_at_login: int | None = None  # mailbox.logins when the last refresh failed

    @property
    def threaded(self) -> bool:
        return _THREADED.get(self.app, False)

    def on_mount(self) -> None:
        self._sync()
        if self.mailbox.cache.needs_rebuild:
            self._recover()
        if self.refresh_on_mount:
            # The rows first: the refresh opens the contact book and the replay log and
            # connects (~30-90 ms on the event loop), none of which the cached rows need.
            self._status("Checking for new mail…")
            self.call_after_refresh(self._check_for_mail)
        else:
            self._status_ready()

    def _check_for_mail(self) -> None:
        """The refresh, and the watch for new mail (or polling, see live.py), once shown."""
        if not self.is_mounted:
            return
        self.action_refresh()
        self._watch()

    def on_screen_resume(self) -> None:
        if not self.is_mounted:
            return
        failed_at = self._failed_at_login
        if failed_at is not None and self.mailbox.logins > failed_at:
            # The server answered since the refresh failed (a send went out, say): its
            # "Cannot reach" is stale. Check for mail now instead of waiting for the poll.
            self._failed_at_login = None
            self.query_one("#inbox-status", Label).remove_class("-error")
            self.action_refresh()
        self._sync()
        self._catch_up()

    # -- what the list shows -------------------------------------------------------

    def _sync(self, keep_id: str | None = None) -> None:
        """Show the mailbox as it is now, keeping the cursor on the same message."""
        if keep_id is None:
            current = self.message_list.highlighted
            keep_id = current.id if current is not None else None
        rows = self._present()
        hits = self.hits
        if hits is None:
            self._counts = (len(rows), 0)
        else:
            shown = [m for m in rows if m.id in hits]
            self._counts = (len(rows), len(shown))
            if self.filtering:
                rows = shown
        prefixes: list[str] = []
        if self.threaded:
            # Your sent messages join their conversations (not a search's filtered list).
            sent = () if self.filtering else self.mailbox.sent.rows.values()
            threaded = conversations(rows, sent, lambda m: not isinstance(m, SentMessage))
            rows = [row.message for row in threaded]
            prefixes = [row.prefix for row in threaded]
        among = hits if hits is not None and not self.filtering else frozenset()
        self.message_list.set_messages(
            rows, self.mailbox.read, keep_id=keep_id, prefixes=prefixes, hits=among
        )
        self._update_title()
        label = self.query_one("#inbox-status", Label)
        if not self.refreshing and not label.has_class("-error"):
            self._status_ready()  # the counts follow reads and deletes, not just refreshes

    def _update_title(self) -> None:
        self.title = f"{self.mailbox.address} — {self._unread()} unread"
        self.sub_title = "conversations" if self.threaded else ""

    @work(group="recover", exit_on_error=False)
    async def _recover(self) -> None:
        """The cache's index was unusable: rebuild it in a thread, then list the messages."""
        self._status("Rebuilding the list of messages kept on this computer…")
        if await self.mailbox.recover():
            self._sync()

    # -- refresh -----------------------------------------------------------------

    def action_refresh(self) -> None:
        if not self.refreshing:
            self._refresh()

    @work(group="refresh", exclusive=True, exit_on_error=False)
    async def _refresh(self, quiet: bool = False) -> None:
        self.refreshing = True
        if not quiet:
            self._status("Checking for new mail…")

        pace = Pace()

        def progress(done: int, total: int) -> None:
            if pace.due(last=done == total):  # not a frame per message: see pace.py
                self._status(f"Fetching new messages: {done:,} of {total:,}…")

        try:
            new = await self.mailbox.refresh(progress)
        except Exception as exc:  # the list stays usable; say what went wrong
            reason = describe_error(exc)
            self._failed_at_login = self.mailbox.logins
            self._status(f"{reason} — press R to try again.", error=True)
            if not self.mailbox.messages:
                self.message_list.empty_text = "Could not check for mail."
            if not quiet:
                self.notify(reason, title="Cannot refresh", severity="error")
            self.app.post_message(RefreshFailed(str(self.mailbox.address), reason))
            return
        finally:
            self.refreshing = False
            self.call_later(self._catch_up)
        self._failed_at_login = None
        self.search_index.forget(self.mailbox.messages)  # no plaintext outlives its message
        self._sync()
        self._status_ready()
        if new and self.search_query is not None:
            self._search(self.search_query)  # new mail may match
        if new:
            noun = "message" if len(new) == 1 else "messages"
            self.notify(f"{len(new):,} new {noun}", title="New mail")
        address = str(self.mailbox.address)
        self.app.post_message(MailboxRefreshed(address, new, self.mailbox.unread_count()))

    # -- list and preview ----------------------------------------------------------

    @on(MessageList.Highlighted)
    def _highlight_moved(self, event: MessageList.Highlighted) -> None:
        """A moved highlight is painted first; the preview follows after that frame.

        Decrypting the body and drawing the preview would otherwise delay every ``j``;
        keys pressed faster than frames preview only where the cursor stops. New rows
        (a refresh, a search) show their preview at once.
        """
        self._preview_of = event.message
        if not event.moved:
            self._show_preview()
        elif not self._preview_due:
            self._preview_due = True
            self.call_after_refresh(self._show_preview)

    def _show_preview(self) -> None:
        self._preview_due = False
        message = self._preview_of
        if not self.is_mounted:
            return
        self.query_one("#preview-header", MessageHeader).show(message)
        body = ""
        if isinstance(message, SentMessage):  # a row of yours: its body is in Sent
            body = preview_text(self.mailbox.message(message.id).body, PREVIEW_LINES)
        elif message is not None:  # an unreadable one has only its reason, no blob to open
            body = unreadable_text(message) or preview_text(message.body, PREVIEW_LINES)
        self.query_one("#preview-body", Static).update(body, layout=False)  # fixed size

    @on(MessageList.Selected)
    def _selected(self, event: MessageList.Selected) -> None:
        self._open(event.message)

    def action_toggle_threads(self) -> None:
        _THREADED[self.app] = not self.threaded
        self._sync()
        self.notify(
            "Conversations: replies (yours too, ➤) under what they answer."
            if self.threaded
            else "Newest first.",
            title="Thread view" if self.threaded else "Flat view",
        )

    # -- delete with undo -------------------------------------------------------------

    def action_delete(self) -> None:
        message = self._highlighted()
        if message is not None and not self._yours(message, "deleted from the server"):
            self._delete_later(message)

    def _delete_later(self, message: ReceivedMessage) -> None:
        """Hide ``message`` now; its DELETE goes out after the undo delay."""
        if message.id in self.pending:
            return
        timer = self.set_timer(DELETE_UNDO_SECONDS, lambda: self._commit(message.id))
        self.pending[message.id] = PendingDelete(message, timer)
        self._sync()
        self.refresh_bindings()
        self.notify(
            f"Deleted {_subject(message)} — press u to undo",
            timeout=DELETE_UNDO_SECONDS,
            markup=False,
        )

    def action_undo(self) -> None:
        waiting = [entry for entry in self.pending.values() if entry.worker is None]
        if not waiting:
            self.notify(self._why_no_undo(), title="Undo")
            return
        entry = waiting[-1]
        entry.timer.stop()
        del self.pending[entry.message.id]
        self._sync(keep_id=entry.message.id)
        self.refresh_bindings()
        self.notify(f"Restored {_subject(entry.message)}.", markup=False)

    def _why_no_undo(self) -> str:
        """Say why ``u`` did nothing: the last delete went out already, or there was none."""
        if self._last_deleted is None:
            return "Nothing to undo."
        return (
            f"Too late to undo: {self._last_deleted} went to the server to be deleted "
            f"(u works for {DELETE_UNDO_SECONDS:g} seconds after d)."
        )

    def _commit(self, message_id: str) -> Worker[bool] | None:
        """The undo delay is over (or the user quits): send the DELETE now."""
        entry = self.pending.get(message_id)
        if entry is None:
            return None
        if entry.worker is None:
            entry.timer.stop()
            self._last_deleted = _subject(entry.message)  # past undoing from here on
            entry.worker = self._send_delete(message_id)
            self.refresh_bindings()
        return entry.worker

    @work(group="delete", exit_on_error=False)
    async def _send_delete(self, message_id: str) -> bool:
        """True once the server deleted it; on failure the message comes back, with why."""
        entry = self.pending[message_id]
        try:
            if message_id in self.mailbox.messages:  # a refresh may have seen it go already
                await self.mailbox.delete(message_id)
        except Exception as exc:  # bring it back, never lose it silently
            self.pending.pop(message_id, None)
            self._last_deleted = None  # it is back: nothing was deleted
            self._sync()
            self.notify(
                f"{_subject(entry.message)} is back: {describe_error(exc)}",
                title="Not deleted",
                severity="error",
                markup=False,
            )
            return False
        self.pending.pop(message_id, None)
        self.search_index.forget(self.mailbox.messages)
        self._sync()
        self.app.post_message(MessageDeleted(message_id))
        return True

    async def _send_pending(self) -> bool:
        """Send every pending DELETE now and wait for all; True if all of them worked."""
        workers = [self._commit(message_id) for message_id in list(self.pending)]
        results = []
        for worker in workers:
            if worker is None:
                continue
            try:
                results.append(await worker.wait())
            except (WorkerCancelled, WorkerFailed):
                results.append(False)
        return all(results)

    async def on_unmount(self) -> None:
        """Leaving without q (ctrl+q, another account): the deletes still go out, briefly.

        Failures cannot be shown any more; the message simply stays on the server and is
        there the next time, so nothing is lost. A cache rebuild still running stops.
        """
        self.mailbox.stop()
        waiting = [entry for entry in self.pending.values() if entry.worker is None]
        for entry in waiting:
            entry.timer.stop()
        if waiting:
            deletes = (self.mailbox.delete(entry.message.id) for entry in waiting)
            with suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(*deletes, return_exceptions=True), EXIT_DELETE_SECONDS
                )
        self.pending.clear()
