"""Compose's red banner: the receiver's key changed, and nothing goes until it is reviewed.

The mailbox already knows of a change when a message from the receiver came signed with a
key that is not the pinned one (:meth:`~rune_tui.service.Mailbox.key_change_for`), or when
a send met one. The banner says so above the form, like the reader's, names the key that
opens the review, and asks its screen (a :class:`KeyChangeBanner.ReviewAsked` message) to open
:class:`~rune_tui.screens.key_change.KeyChangeScreen` with the old and new fingerprints side
by side. It goes away only once the new key is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from rune_proto.address import Address, AddressError, parse_address
from rune_proto.client import ContactKeyChanged
from rune_proto.keys import PublicKey

from ..key_changes import PendingKeyChange
from .formatting import KEY_CHANGED_BADGE

REVIEW_BINDING = "compose.review_key"
REVIEW_KEY = "ctrl+k"  # compose's default for it: a focused field takes printable keys
CHECK_SECONDS = 0.3  # the To field is looked up once typing pauses, not on every key


class KeyChangeSource(Protocol):
    """What the banner asks of the mailbox (service.Mailbox is one), typed here so that
    a widget does not import the service layer."""

    def key_change_for(self, address: Address) -> PendingKeyChange | None: ...

    def offered_key(self, change: PendingKeyChange) -> PublicKey | None: ...


def key_name(key: str) -> str:
    """``ctrl+k`` → ``Ctrl+K``, ``f9`` → ``F9``: a key as help.md and the banners write it."""
    *mods, last = key.split("+")
    last = last.upper() if len(last) == 1 else last.capitalize()
    return "+".join([*(m.capitalize() for m in mods), last])


def banner_text(change: PendingKeyChange, key: str) -> str:
    who = change.address
    return (
        f"{KEY_CHANGED_BADGE} The key of {who} changed.\n"
        f"pinned  {change.pinned}\n"
        f"now     {change.offered}\n"
        f"Sending to {who} is blocked until you review it: press {key}."
    )


class KeyChangeBanner(Static):
    """Hidden unless :attr:`change` is set; :meth:`check` looks the To address up.

    The lookup is a dict lookup in the mailbox's index (built once, lazily), so the To
    field is checked when typing pauses (:meth:`check_soon`) and when it loses focus.
    """

    @dataclass
    class ReviewAsked(Message):
        """Open the side-by-side review of ``change`` with its offered ``key``: the screen
        opens it and hands the answer back to :meth:`KeyChangeBanner.reviewed`."""

        change: PendingKeyChange
        key: PublicKey

    DEFAULT_CSS = """
    KeyChangeBanner {
        width: 1fr;
        height: auto;
        padding: 0 2;
        background: $error;
        color: $text;
        text-style: bold;
        display: none;
    }
    """

    def __init__(self, mailbox: KeyChangeSource, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.mailbox = mailbox
        self.change: PendingKeyChange | None = None
        self._timer: Timer | None = None
        self._answered: Callable[[bool, Address], None] | None = None

    def check_soon(self, to: str) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(CHECK_SECONDS, lambda: self.check(to))

    def check(self, to: str) -> None:
        """Show the change the mailbox knows for ``to`` (hide the banner if none)."""
        if not self.is_mounted:  # the To field lost focus because compose is closing
            return
        try:
            address = parse_address(to.strip())
        except AddressError:
            self.show(None)
            return
        change = self.mailbox.key_change_for(address)
        held = self.change
        met = held is not None and held.key is not None and held.address == address
        if change is None and met:
            return  # a change a send met (the server's key) stays until it is reviewed
        self.show(change)

    def met(self, exc: ContactKeyChanged) -> bool:
        """Show a change a send met (the server's key); False if it offered no key."""
        if exc.offered_key is None:
            return False
        address = parse_address(exc.address)
        self.show(PendingKeyChange(address, exc.pinned, exc.offered, key=exc.offered_key))
        return True

    def show(self, change: PendingKeyChange | None) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.change = change
        self.display = change is not None
        self.screen.refresh_bindings()  # the review key is offered only while shown
        if change is not None:
            self.update(banner_text(change, key_name(self.review_key())))

    def review_key(self) -> str:
        """The key that opens the review as bound now, the user's keymap applied (read from
        the screen's public active bindings, where the priority binding always shows)."""
        for active in self.screen.active_bindings.values():
            if active.binding.id == REVIEW_BINDING:
                return active.binding.key
        return REVIEW_KEY

    def review(self, answered: Callable[[bool, Address], None]) -> None:
        """Open the side-by-side review; ``answered(True, who)`` once the new key is pinned."""
        change = self.change
        if change is None:
            return
        key = self.mailbox.offered_key(change)
        if key is None:
            self.notify(
                "The message with the new key could not be opened; check for mail (R) "
                "or send to meet the key again.",
                title="Cannot review",
                severity="error",
            )
            return
        self._answered = answered
        self.post_message(self.ReviewAsked(change, key))

    def reviewed(self, change: PendingKeyChange, accepted: bool | None) -> None:
        """The review's answer (the screen calls this when the review closes)."""
        if accepted:
            self.show(self.mailbox.key_change_for(change.address))
        answered, self._answered = self._answered, None
        if answered is not None:
            answered(bool(accepted), change.address)


def outcome(who: object, accepted: bool) -> tuple[str, str]:
    """Compose's status line after a review: (text, kind)."""
    if accepted:
        return f"New key of {who} accepted: you can send to them.", ""
    return (
        f"Not sent: you kept the old key of {who}, so nothing can be sent to them. "
        "The message stays here and in your drafts.",
        "error",
    )
