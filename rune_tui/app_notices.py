"""The app's part in new mail: bell, terminal and desktop notices, and the title.

A mixin of :class:`~rune_tui.app.RuneApp`. The inbox posts
:class:`~rune_tui.messages.MailboxRefreshed` after each refresh; here it becomes the
notices the settings ask for (rune_tui/notify.py) and the unread count in the terminal
title. Escape sequences go straight to the terminal, never in headless runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App

from . import notify
from .config import Config
from .messages import MailboxRefreshed

if TYPE_CHECKING:
    from .service import Mailbox


class NewMailNotices(App[None]):
    """Turns each refresh's new messages into the notices the settings ask for."""

    config: Config
    mailbox: Mailbox | None

    def terminal_write(self, sequence: str) -> None:
        """Write an escape sequence to the terminal (nothing when headless or empty)."""
        driver = self._driver
        if sequence and driver is not None and not self.is_headless:
            driver.write(sequence)
            driver.flush()

    @on(MailboxRefreshed)
    def _new_mail(self, event: MailboxRefreshed) -> None:
        self.terminal_write(notify.title_sequence(event.unread))
        if not event.new_ids:
            return
        settings = self.config.settings
        senders = self._senders(event.new_ids) if settings.notify_sender else []
        title, body = notify.notice_words(len(event.new_ids), senders, settings)
        if settings.notify_bell:
            self.bell()
        self.terminal_write(notify.terminal_notice(settings.notify_terminal, title, body))
        if settings.notify_desktop and notify.desktop_available():
            self._desktop(title, body)

    def _senders(self, message_ids: list[str]) -> list[str]:
        mailbox = self.mailbox
        if mailbox is None:
            return []
        found = (mailbox.messages.get(i) for i in message_ids)
        return [str(m.sender) for m in found if m is not None and m.sender is not None]

    @work(group="desktop-notice", exit_on_error=False)
    async def _desktop(self, title: str, body: str) -> None:
        await notify.desktop_notice(title, body)
