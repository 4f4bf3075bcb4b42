"""The inbox's search: ``/`` opens the bar, Enter filters, ``n``/``N`` jump, Esc clears.

Headers and bodies already read answer most messages at once; the rest are decrypted a
few milliseconds at a time in a worker, so keys are answered while bodies are read.
"""

from __future__ import annotations

import asyncio
import time

from textual import on, work
from textual.widgets import Input

from rune_proto.client import ReceivedMessage

from ..search import Query, parse_query, status_text
from .inbox_base import InboxBase

_SEARCH_SLICE = 0.01  # seconds of body search between two looks at the keyboard
_SEARCH_SHOW = 0.25  # seconds between two updates of the list while bodies are read


class InboxSearch(InboxBase):
    """Search and filter for :class:`~.inbox.InboxScreen`."""

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

    def _status_ready(self) -> None:
        """The status line at rest: the search's hits while one is on, else the counts."""
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
