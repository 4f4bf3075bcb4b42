"""The inbox's live link: new mail shows the moment the server stores it.

A worker keeps one connection waiting (:func:`rune_tui.live.watch_mailbox`); each
notice refreshes the list quietly. While the link is down the status line says so and
when it will try again; when it is back, a toast says that too. Against a server
without WAIT the same worker polls every ``poll_seconds``.
"""

from __future__ import annotations

from textual import work

from ..live import LinkDown, LinkStatus, watch_mailbox
from .inbox_base import InboxBase


class InboxLive(InboxBase):
    """Starts the watch on mount; refreshes on each notice, or on return if away."""

    _stale = False  # a notice came while the screen was covered or refreshing
    link_down: LinkDown | None = None  # what the status line says while offline

    def _refresh(self, quiet: bool = False) -> object:  # pragma: no cover - InboxScreen's
        raise NotImplementedError

    @work(group="watch", exclusive=True, exit_on_error=False)
    async def _watch(self) -> None:
        await watch_mailbox(
            self.mailbox,
            self._mail_may_be_there,
            self._link_changed,
            poll_seconds=self.settings.poll_seconds,
        )

    def _mail_may_be_there(self) -> None:
        if self.refreshing or not self.is_current:
            self._stale = True  # caught up once the refresh ends or the screen is back
        else:
            self._refresh(quiet=True)

    def _catch_up(self) -> None:
        """After a refresh, or back on top: run the refresh a notice had to put off."""
        if self._stale and not self.refreshing and self.is_current:
            self._stale = False
            self._refresh(quiet=True)

    def _link_changed(self, link: LinkStatus) -> None:
        if isinstance(link, LinkDown):
            self.link_down = link
            self._status(f"Offline: {link.reason} Trying again in {link.retry_in:g} s.", error=True)
            return
        was_down, self.link_down = self.link_down, None
        if was_down is not None or link.again:
            self._status("Back online.")
            self.notify("Connected to the server again.", title="Back online")
