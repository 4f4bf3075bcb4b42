"""The inbox's keys that open other screens: read, reply, forward, write, help.

Those screens (and the compose stack, the reader and the Markdown help behind them) are
imported on first use, not with the inbox: the first rows of a big mailbox need none of
them, and importing them cost about 90 ms of every start.
"""

from __future__ import annotations

from textual import work
from textual.widgets import Label

from rune_proto.client import ReceivedMessage

from ..sent import SentMessage
from .inbox_base import InboxBase


class InboxActions(InboxBase):
    """Opening, replying, forwarding, composing, read marks, help and quitting."""

    def action_open(self) -> None:
        message = self._highlighted()
        if message is not None:
            self._open(message)

    def _yours(self, message: ReceivedMessage, what: str) -> bool:
        """A row of yours (the thread view shows your sent messages): say why not."""
        if isinstance(message, SentMessage):
            self.notify(f"That is a message you sent: it cannot be {what} from here.")
            return True
        return False

    def _open(self, message: ReceivedMessage) -> None:
        if isinstance(message, SentMessage):
            from .sent import SentReaderScreen

            whole = self.mailbox.message(message.id)
            assert isinstance(whole, SentMessage)
            self.app.push_screen(SentReaderScreen(self.mailbox, whole, self.settings))
            return
        try:
            whole = self.mailbox.message(message.id)  # a cached row opens its blob here
        except KeyError:  # a refresh saw it deleted elsewhere meanwhile
            self.notify("This message is no longer in the mailbox.", severity="warning")
            self._sync()
            return
        from .reader import ReaderScreen

        self.app.push_screen(ReaderScreen(self.mailbox, whole, self.settings), self._reader_closed)

    def _reader_closed(self, deleted: str | None) -> None:
        """The reader dismisses with a message's id when the user deleted it there."""
        message = self.mailbox.messages.get(deleted) if deleted else None
        if message is not None:
            self._delete_later(message)

    def action_reply(self) -> None:
        message = self._highlighted()
        if message is None or self._yours(message, "replied to"):
            return
        if message.sender is None:
            self.notify("This message has no known sender to reply to.", severity="warning")
            return
        from .compose import ComposeScreen

        self.app.push_screen(
            ComposeScreen.reply(self.mailbox, message, date_format=self.settings.date_format)
        )

    def action_forward(self) -> None:
        message = self._highlighted()
        if message is not None and not self._yours(message, "forwarded"):
            from .reader import forward

            forward(self, self.mailbox, message, self.settings.date_format)

    def action_compose(self) -> None:
        from .compose import ComposeScreen

        self.app.push_screen(ComposeScreen(self.mailbox))

    def action_toggle_read(self) -> None:
        message = self._highlighted()
        if message is None or self._yours(message, "marked unread"):
            return
        self.mailbox.mark_read(message.id, not self.mailbox.is_read(message.id))
        self.message_list.invalidate()
        self._update_title()
        if not self.query_one("#inbox-status", Label).has_class("-error"):
            self._status_ready()

    def action_key_change(self) -> None:
        message = self._highlighted()
        if message is not None:
            from .reader import review_key_change

            review_key_change(self, self.mailbox, message)

    def action_help(self) -> None:
        from .help import HelpScreen

        self.app.push_screen(HelpScreen(self, title="Inbox"))

    # -- quitting ------------------------------------------------------------------------

    def action_quit(self) -> None:
        """q: ask first (settings.confirm_quit), then send pending deletes and leave."""
        if not self.settings.confirm_quit:
            self._quit_now()
            return
        from .confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._quit_now()

        question = "Quit rune-tui?"
        if self.pending:
            count = len(self.pending)
            noun = "message goes" if count == 1 else "messages go"
            question += f" ({count} deleted {noun} to the server first.)"
        self.app.push_screen(ConfirmScreen(question, yes="Quit", no="Stay"), answered)

    def _quit_now(self) -> None:
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
