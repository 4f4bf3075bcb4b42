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
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Label, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from rune_proto.client import ReceivedMessage

from ..components.formatting import preview_text
from ..components.message_header import MessageHeader
from ..components.message_list import MessageList
from ..config import Settings
from ..messages import MailboxRefreshed, MessageDeleted, RefreshFailed
from ..search import Query, SearchIndex, parse_query, status_text
from ..service import Mailbox, describe_error
from ..threads import thread
from . import STYLES
from .compose import ComposeScreen
from .help import HelpScreen
from .reader import ReaderScreen, forward, review_key_change

PREVIEW_LINES = 8
DELETE_UNDO_SECONDS = 5.0  # how long "press u to undo" lasts before the DELETE goes out
EXIT_DELETE_SECONDS = 5.0  # leaving without q: how long pending deletes may take at most
_SEARCH_SLICE = 0.01  # seconds of body search between two looks at the keyboard
_SEARCH_SHOW = 0.25  # seconds between two updates of the list while bodies are read

# The thread view is a choice for the whole session, not for one inbox screen.
_THREADED: WeakKeyDictionary[App[Any], bool] = WeakKeyDictionary()


@dataclass(slots=True)
class PendingDelete:
    """A message hidden from the list whose DELETE has not been confirmed yet."""

    message: ReceivedMessage
    timer: Timer
    worker: Worker[bool] | None = None  # set once the DELETE is on its way: too late to undo


def _subject(message: ReceivedMessage) -> str:
    return f"“{message.subject or '(no subject)'}”"


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

    @property
    def message_list(self) -> MessageList:
        return self.query_one("#message-list", MessageList)

    @property
    def threaded(self) -> bool:
        return _THREADED.get(self.app, False)

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

    # -- what the list shows -------------------------------------------------------

    def _present(self) -> list[ReceivedMessage]:
        """The mailbox, newest first, without the messages waiting to be deleted."""
        return [m for m in self.mailbox.ordered() if m.id not in self.pending]

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
            threaded = thread(rows)
            rows = [row.message for row in threaded]
            prefixes = [row.prefix for row in threaded]
        self.message_list.set_messages(rows, self.mailbox.read, keep_id=keep_id, prefixes=prefixes)
        self._update_title()
        label = self.query_one("#inbox-status", Label)
        if not self.refreshing and not label.has_class("-error"):
            self._status_ready()  # the counts follow reads and deletes, not just refreshes

    def _unread(self) -> int:
        hidden = sum(1 for i in self.pending if not self.mailbox.is_read(i))
        return self.mailbox.unread_count() - hidden

    def _update_title(self) -> None:
        self.title = f"{self.mailbox.address} — {self._unread()} unread"
        self.sub_title = "conversations" if self.threaded else ""

    def _status(self, text: str, *, error: bool = False) -> None:
        label = self.query_one("#inbox-status", Label)
        label.update(text)
        label.set_class(error, "-error")

    def _status_ready(self) -> None:
        if self.search_query is not None and self.hits is not None:
            total, hits = self._counts
            then = "Esc shows all" if self.filtering else "n/N jump, Esc forgets the search"
            if self._reading is not None:
                done, count = self._reading
                then = f"reading message texts, {done:,} of {count:,}…"
            self._status(f"{status_text(hits, total, self.search_query)} — {then}")
            if self.filtering and hits == 0:
                self.message_list.empty_text = "Nothing matches. Esc shows every message."
            return
        if self.search_query is not None:
            self._status(f"Searching for '{self.search_query.source}'…")
            return
        count = self._counts[0]
        noun = "message" if count == 1 else "messages"
        self._status(f"{count:,} {noun}, {self._unread():,} unread")
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

    def action_toggle_threads(self) -> None:
        _THREADED[self.app] = not self.threaded
        self._sync()
        self.notify(
            "Conversations: replies under what they answer." if self.threaded else "Newest first.",
            title="Thread view" if self.threaded else "Flat view",
        )

    # -- opening, replying, writing --------------------------------------------------

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
        try:
            whole = self.mailbox.message(message.id)  # a cached row opens its blob here
        except KeyError:  # a refresh saw it deleted elsewhere meanwhile
            self.notify("This message is no longer in the mailbox.", severity="warning")
            self._sync()
            return
        self.app.push_screen(ReaderScreen(self.mailbox, whole, self.settings), self._reader_closed)

    def _reader_closed(self, deleted: str | None) -> None:
        """The reader dismisses with a message's id when the user deleted it there."""
        message = self.mailbox.messages.get(deleted) if deleted else None
        if message is not None:
            self._delete_later(message)

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

    def action_forward(self) -> None:
        message = self._highlighted()
        if message is not None:
            forward(self, self.mailbox, message, self.settings.date_format)

    def action_compose(self) -> None:
        self.app.push_screen(ComposeScreen(self.mailbox))

    def action_toggle_read(self) -> None:
        message = self._highlighted()
        if message is None:
            return
        self.mailbox.mark_read(message.id, not self.mailbox.is_read(message.id))
        self.message_list.invalidate()
        self._update_title()
        if not self.query_one("#inbox-status", Label).has_class("-error"):
            self._status_ready()

    def action_key_change(self) -> None:
        message = self._highlighted()
        if message is not None:
            review_key_change(self, self.mailbox, message)

    # -- search ----------------------------------------------------------------------

    def action_search(self) -> None:
        bar = self.query_one("#search-bar")
        field = self.query_one("#search-input", Input)
        field.value = self.search_query.source if self.search_query is not None else ""
        bar.display = True
        field.focus()
        field.select_all()

    def _close_search_bar(self) -> bool:
        """Hide the search input; True if it was open."""
        bar = self.query_one("#search-bar")
        if not bar.display:
            return False
        bar.display = False
        self.message_list.focus()
        return True

    @on(Input.Submitted, "#search-input")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self._close_search_bar()
        query = parse_query(event.value)
        if query.empty:
            self._forget_search()
            return
        self.search_query = query
        self.hits = None
        self.filtering = True
        self._status_ready()
        self._search(query)

    @work(group="search", exclusive=True, exit_on_error=False)
    async def _search(self, query: Query) -> None:
        """Hits from the headers at once; bodies still to decrypt are read meanwhile.

        Senders, subjects and bodies already read decide most messages without any
        decryption. The rest are opened a few milliseconds at a time (keys are answered
        in between), and the list grows with their hits a few times a second.
        """
        rows = self._present()
        index = self.search_index
        hits: set[str] = set()
        later: list[ReceivedMessage] = []
        for message in rows:
            found = index.quick(query, message)
            if found is None:
                later.append(message)
            elif found:
                hits.add(message.id)
        self._reading = (0, len(later)) if later else None
        self._show_hits(query, hits, first=True)
        shown = slice_start = time.perf_counter()
        for done, message in enumerate(later, 1):
            if index.matches(query, message):
                hits.add(message.id)
            if time.perf_counter() - slice_start > _SEARCH_SLICE:
                if time.perf_counter() - shown > _SEARCH_SHOW:
                    self._reading = (done, len(later))
                    self._show_hits(query, hits)
                    shown = time.perf_counter()
                await asyncio.sleep(0)
                if query is not self.search_query:
                    return  # cleared or replaced meanwhile
                slice_start = time.perf_counter()
        self._reading = None
        self._show_hits(query, hits)

    def _show_hits(self, query: Query, hits: set[str], *, first: bool = False) -> None:
        if query is not self.search_query:
            return
        self.hits = set(hits)
        current = self.message_list.highlighted
        keep = current.id if current is not None else None
        if first and self.filtering and keep not in hits:
            keep = next((m.id for m in self.message_list.messages if m.id in hits), None)
        self._sync(keep)
        if first and self.filtering and keep is None:
            self.message_list.cursor = 0
        self._status_ready()

    def action_clear_search(self) -> None:
        """Esc: close the input and the filter first; pressed again, forget the search."""
        closed = self._close_search_bar()
        if self.filtering:
            self.filtering = False
            self.message_list.empty_text = "No messages yet. Press R to check again."
            self._sync()
            self._status_ready()
        elif not closed and self.search_query is not None:
            self._forget_search()

    def _forget_search(self) -> None:
        self.workers.cancel_group(self, "search")
        self._reading = None
        self.search_query = None
        self.hits = None
        self.filtering = False
        self._sync()
        self._status_ready()

    def action_next_hit(self, step: int) -> None:
        if self.search_query is None or self.hits is None:
            self.notify("Nothing searched yet: press / to search.")
            return
        listing = self.message_list
        rows = listing.messages
        if not rows:
            return
        count = len(rows)
        for distance in range(1, count + 1):
            index = (listing.cursor + step * distance) % count
            if rows[index].id in self.hits:
                wrapped = (index < listing.cursor) if step > 0 else (index > listing.cursor)
                listing.move_cursor(index)
                if wrapped:
                    where = "top" if step > 0 else "bottom"
                    self.notify(f"Search went on from the {where}.", timeout=2)
                return
        self.notify(f"No message matches '{self.search_query.source}'.", markup=False)

    # -- delete with undo -------------------------------------------------------------

    def action_delete(self) -> None:
        message = self._highlighted()
        if message is not None:
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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "undo":  # in the footer only while there is something to undo
            return any(entry.worker is None for entry in self.pending.values())
        return True

    def action_undo(self) -> None:
        waiting = [entry for entry in self.pending.values() if entry.worker is None]
        if not waiting:
            self.notify("Nothing to undo.")
            return
        entry = waiting[-1]
        entry.timer.stop()
        del self.pending[entry.message.id]
        self._sync(keep_id=entry.message.id)
        self.refresh_bindings()
        self.notify(f"Restored {_subject(entry.message)}.", markup=False)

    def _commit(self, message_id: str) -> Worker[bool] | None:
        """The undo delay is over (or the user quits): send the DELETE now."""
        entry = self.pending.get(message_id)
        if entry is None:
            return None
        if entry.worker is None:
            entry.timer.stop()
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
        there the next time, so nothing is lost.
        """
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

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self, title="Inbox"))

    def action_quit(self) -> None:
        if self.pending:
            self._quit_after_deletes()
        else:
            self.app.exit()

    @work(group="quit", exclusive=True, exit_on_error=False)
    async def _quit_after_deletes(self) -> None:
        count = len(self.pending)
        noun = "message" if count == 1 else "messages"
        self._status(f"Deleting {count} {noun} before quitting…")
        if await self._send_pending():
            self.app.exit()
        else:
            self._status("Not everything was deleted — press q again to quit.", error=True)
