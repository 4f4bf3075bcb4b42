"""Compose's promise that nothing typed is lost: autosave, close, discard and resume drafts.

:class:`DraftKeepingScreen` is the base of :class:`~rune_tui.screens.compose.ComposeScreen`:
it seals the draft a second after typing stops and when the screen closes, asks before
closing with something typed, and resumes another draft in place. The subclass says what
the draft is now (:meth:`~DraftKeepingScreen.draft`, ``state``) and fills its fields when
one is resumed (:meth:`~DraftKeepingScreen.load_draft`).
"""

from __future__ import annotations

from contextlib import suppress
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Label

from ..drafts import Draft, DraftStore, new_draft_id
from ..service import Mailbox, describe_error
from .confirm import ConfirmScreen

AUTOSAVE_SECONDS = 1.0

# To, Subject, Body, and a key per attached file (its path, or its name and bytes).
State = tuple[str, str, str, tuple[str | tuple[str, bytes], ...]]


class LeaveComposeScreen(ConfirmScreen):
    """Escape with something typed: close (the draft is kept), keep writing, or discard.

    Dismisses with True to close and False to keep writing; ``discard`` is set when the
    user chose to throw the draft away.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        *ConfirmScreen.BINDINGS,
        Binding("d", "discard", "Discard", id="compose.leave_discard"),
    ]

    def __init__(self) -> None:
        super().__init__(
            "Close this message? It is kept in your drafts: ctrl+o when writing, or "
            "Drafts in the command palette (ctrl+p), brings it back.",
            yes="Close",
            no="Keep writing",
        )
        self.discard = False

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Label(self.question, id="confirm-question", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("Discard (d)", id="leave-discard", variant="error")
                yield Button(f"{self.yes_label} (y)", id="confirm-yes", variant="warning")
                yield Button(f"{self.no_label} (n)", id="confirm-no", variant="primary")

    @on(Button.Pressed, "#leave-discard")
    def action_discard(self) -> None:
        self.discard = True
        self.dismiss(True)


def drafts_notice(mailbox: Mailbox) -> str | None:
    """A line for the app to show after unlocking when drafts are waiting (None if none)."""
    try:
        count = DraftStore.for_mailbox(mailbox).count()  # forwarded files stay unread
    except OSError:
        return None
    if not count:
        return None
    noun = "an unsent draft" if count == 1 else f"{count} unsent drafts"
    return f"You have {noun}: Drafts in the command palette (ctrl+p) resumes one."


class DraftKeepingScreen(Screen[str | None]):
    """A screen whose typing is sealed to disk as a draft; see the module docstring."""

    _saved_state: State  # what was last sealed (or opened with); the subclass sets it first

    def __init__(self, mailbox: Mailbox, draft_id: str | None) -> None:
        super().__init__()
        self.resuming = draft_id is not None  # resuming a draft (its file exists)
        self.on_disk = self.resuming
        self.draft_id = draft_id or new_draft_id()
        self.drafts = DraftStore.for_mailbox(mailbox)
        self._save_timer: Timer | None = None
        self._finished = False  # sent or discarded: nothing more to save

    # -- what the subclass supplies ------------------------------------------------------

    @property
    def state(self) -> State:
        """What would be saved now (as last seen, once the fields are gone at unmount)."""
        raise NotImplementedError

    @property
    def opened(self) -> State:
        """What the screen opened with (or the draft was resumed with)."""
        raise NotImplementedError

    def draft(self) -> Draft:
        raise NotImplementedError

    def load_draft(self, draft: Draft) -> None:
        """Put a resumed draft's fields in place."""
        raise NotImplementedError

    def show_status(self, text: str, kind: str = "") -> None:
        raise NotImplementedError

    # -- keeping ----------------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        """Anything typed or attached since the screen opened (or the draft was resumed)."""
        return self.state != self.opened

    def offer_drafts(self) -> None:
        try:
            count = len(self.drafts.list())
        except OSError:
            return
        if count:
            noun = "an unsent draft" if count == 1 else f"{count} unsent drafts"
            self.show_status(f"You have {noun}: ctrl+o to resume one.", "busy")

    def schedule_save(self) -> None:
        """Save the draft once typing has paused for a second."""
        self.state  # noqa: B018 - remembered for on_unmount, when the fields are gone
        if self._save_timer is not None:
            self._save_timer.stop()
        self._save_timer = self.set_timer(AUTOSAVE_SECONDS, self.save_draft)

    def save_draft(self, *, force: bool = False) -> bool:
        """Seal the draft to disk if it changed since last saved; True if it is on disk.

        ``force`` keeps it even when nothing was typed since the screen opened (a send
        that failed: what the user meant to send is worth keeping as it is).
        """
        if self._finished or not self.is_mounted:
            return self.on_disk
        try:
            return self._persist(force=force)
        except (OSError, ValueError) as exc:
            self.show_status(f"Could not save the draft: {describe_error(exc)}", "error")
            return False

    def _persist(self, *, force: bool = False) -> bool:
        state = self.state
        if state == self._saved_state and (self.on_disk or not force):
            return self.on_disk
        draft = self.draft()
        untouched = state == self.opened and not self.resuming and not force
        if (draft.empty and not draft.file_count) or untouched:
            # Nothing of the user's own is left (all deleted, or back to the quote of a
            # reply, or a forward as it opened): no draft to keep.
            self.drafts.delete(self.draft_id)
            self.on_disk = False
        else:
            self.drafts.save(draft)
            self.on_disk = True
        self._saved_state = state
        return self.on_disk

    def forget_draft(self) -> None:
        """Sent or discarded: delete the draft and save nothing more."""
        self._finished = True
        if self._save_timer is not None:
            self._save_timer.stop()
        try:
            self.drafts.delete(self.draft_id)
        except (OSError, ValueError) as exc:
            self.notify(f"Could not delete the draft: {describe_error(exc)}", severity="warning")

    def on_unmount(self) -> None:
        """Closing any way but sending or discarding keeps what was typed."""
        if self._save_timer is not None:
            self._save_timer.stop()
        if not self._finished:
            with suppress(OSError, ValueError):  # nowhere left to say so; autosave has most
                self._persist()

    def action_drafts(self) -> None:
        from .drafts import DraftsScreen

        self.save_draft()
        self.app.push_screen(DraftsScreen(self.drafts, exclude=self.draft_id), self._resume)

    def _resume(self, draft: Draft | None) -> None:
        if draft is None:
            return
        self.draft_id = draft.id
        self.resuming = self.on_disk = True
        self.load_draft(draft)
        self._saved_state = self.state
        if self._save_timer is not None:
            self._save_timer.stop()

    def action_cancel(self) -> None:
        if not self.changed:
            self.dismiss(None)  # on_unmount tidies up any autosave
            return

        def answered(close: bool | None) -> None:
            if not close:
                return
            if dialog.discard:
                self.forget_draft()
                self.notify("Draft discarded.")
            elif self.save_draft():
                self.notify("Kept in your drafts.", title="Draft saved")
            self.dismiss(None)

        dialog = LeaveComposeScreen()
        self.app.push_screen(dialog, answered)
