"""Typed app events the mail screens post to the App.

Screens sit side by side on the screen stack, so they do not hear each other; they post
these to the App (``self.app.post_message``) where it can react — a later issue turns
them into desktop notifications, an undo bar and a poller. The screens themselves stay
in step by re-reading the shared :class:`~rune_tui.service.Mailbox` when they resume.
"""

from __future__ import annotations

from textual.message import Message


class MailboxRefreshed(Message):
    """A refresh finished; ``new_ids`` are the messages that were not there before."""

    def __init__(self, address: str, new_ids: list[str], unread: int) -> None:
        super().__init__()
        self.address = address
        self.new_ids = new_ids
        self.unread = unread


class RefreshFailed(Message):
    """A refresh failed; ``error`` is already in words for people."""

    def __init__(self, address: str, error: str) -> None:
        super().__init__()
        self.address = address
        self.error = error


class MessageSent(Message):
    """The server accepted a message; ``message_id`` is the sender's id for it."""

    def __init__(self, to: str, message_id: str, in_reply_to: str | None) -> None:
        super().__init__()
        self.to = to
        self.message_id = message_id
        self.in_reply_to = in_reply_to


class MessageDeleted(Message):
    """A message was deleted on the server (``message_id`` is the server's id)."""

    def __init__(self, message_id: str) -> None:
        super().__init__()
        self.message_id = message_id


class SaveFolderChosen(Message):
    """Attachments were saved in ``folder``: the app remembers it (settings.save_folder)."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder


class UnlockStarted(Message):
    """A passphrase was submitted: the key file's scrypt runs in a thread from now on.

    The scrypt leaves the event loop idle for ~75 ms; the App spends them on what the
    inbox will need (its stylesheet), so the rows come sooner once the key opens.
    """
