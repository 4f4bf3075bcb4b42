"""Write a message: To, Subject, Body, attachments; ctrl+s sends in a worker.

Nothing typed is ever lost. The draft is sealed to disk a second after typing stops and
when the screen closes, so it survives a crash; a failed send keeps the screen open with
everything in it and says why. A contact whose key changed is not written to until the
user accepts the new key on the key-change screen; accepting sends again. Every binding
uses ctrl, F-keys or Escape, because a focused Input or TextArea swallows printable keys.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.suggester import Suggester, SuggestFromList
from textual.timer import Timer
from textual.widgets import Button, Footer, Header, Input, Label, OptionList, TextArea
from textual.widgets.option_list import Option

from rune_proto.address import AddressError, parse_address
from rune_proto.client import ContactKeyChanged, ReceivedMessage

from ..components.formatting import quote_body, reply_subject
from ..config import DEFAULT_DATE_FORMAT
from ..drafts import Draft, DraftStore, new_draft_id
from ..messages import MessageSent
from ..service import Mailbox, describe_error, estimate_payload, server_max_payload
from . import STYLES, leave
from .confirm import ConfirmScreen
from .contacts import DAILY_STYLES
from .help import HelpScreen

AUTOSAVE_SECONDS = 1.0


def human_size(size: int) -> str:
    """1,536 → "1.5 KiB": binary units, as the server's limit is set in MiB."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# -- $EDITOR ----------------------------------------------------------------------------


class EditorError(Exception):
    """The editor could not be started, or it failed: the body stays as it was."""


def editor_command() -> list[str] | None:
    """``$VISUAL``, then ``$EDITOR`` (with its arguments), then ``vi`` or ``nano``."""
    for variable in ("VISUAL", "EDITOR"):
        value = os.environ.get(variable, "").strip()
        if value:
            return shlex.split(value)
    for fallback in ("vi", "nano"):
        found = shutil.which(fallback)
        if found:
            return [found]
    return None


def private_temp_root() -> str | None:
    """A RAM-backed, per-user place for the editor's file when there is one."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return runtime
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return None  # the system's temporary folder


def edit_in_editor(app: App[object], text: str) -> str:
    """Hand ``text`` to the user's editor with the app suspended; return what it saved.

    This is the one place rune-tui writes message text in the clear. An external editor
    can only edit a file, so the plaintext file is the accepted cost of $EDITOR: it lives
    in a fresh folder only this user can enter (0700; the file is 0600), preferably on a
    RAM-backed file system, exists only while the editor runs, and the folder is removed
    with anything the editor left beside it (swap and backup files). Drafts at rest stay
    sealed by the vault.
    """
    command = editor_command()
    if command is None:
        raise EditorError("no editor found: set $EDITOR (for example to nano or vim)")
    folder = tempfile.mkdtemp(prefix="rune-edit-", dir=private_temp_root())
    try:
        path = os.path.join(folder, "message.txt")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            with app.suspend():
                result = subprocess.run([*command, path], check=False)
        except FileNotFoundError as exc:
            raise EditorError(f"cannot start the editor {command[0]!r}") from exc
        except Exception as exc:  # SuspendNotSupported, and the like
            raise EditorError(f"cannot hand over the terminal: {exc}") from exc
        if result.returncode != 0:
            raise EditorError(
                f"the editor exited with status {result.returncode}; the text is unchanged"
            )
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- attachments ------------------------------------------------------------------------


class PathSuggester(Suggester):
    """Completes a file path as it is typed (→ accepts); folders end in ``/``."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        expanded = os.path.expanduser(value)
        folder, prefix = os.path.split(expanded)
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            return None
        for name in names:
            if not name.startswith(prefix) or name == prefix:
                continue
            if name.startswith(".") and not prefix.startswith("."):
                continue  # hidden files only when asked for
            rest = name[len(prefix) :]
            if os.path.isdir(os.path.join(folder or ".", name)):
                rest += "/"
            return value + rest
        return None


@dataclass(frozen=True, slots=True)
class AttachedFile:
    path: Path
    size: int

    @property
    def name(self) -> str:
        return self.path.name


def check_attachment(text: str) -> AttachedFile:
    """The file at ``text`` (``~`` expanded), or ValueError saying why it cannot be sent."""
    if not text.strip():
        raise ValueError("type the path of a file to attach")
    path = Path(os.path.expanduser(text.strip())).absolute()
    if not path.exists():
        raise ValueError(f"there is no file {path}")
    if not path.is_file():
        raise ValueError(f"{path} is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path} cannot be read (permissions)")
    return AttachedFile(path, path.stat().st_size)


class AttachmentList(OptionList):
    """The attached files with their sizes; Delete or x removes the highlighted one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete,backspace,x", "remove", "Remove attachment", id="compose.detach"),
    ]

    class Remove(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def action_remove(self) -> None:
        if self.highlighted is not None:
            self.post_message(self.Remove(self.highlighted))


# -- leaving --------------------------------------------------------------------------


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


# -- the screen -------------------------------------------------------------------------


class ComposeScreen(Screen[str | None]):
    """Dismisses with the sent message's id, or None when closed without sending."""

    CSS_PATH: ClassVar[list[str | PurePath]] = [STYLES, DAILY_STYLES]
    AUTO_FOCUS = None  # on_mount decides: To for a new message, the body for a reply

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", id="compose.send", priority=True),
        Binding("ctrl+e", "editor", "Editor", id="compose.editor", priority=True),
        Binding("ctrl+t", "attach", "Attach", id="compose.attach"),
        Binding("ctrl+o", "drafts", "Drafts", id="compose.drafts"),
        Binding("escape", "cancel", "Close", id="compose.cancel"),
        Binding("f1", "help", "Help", id="compose.help"),
    ]

    def __init__(
        self,
        mailbox: Mailbox,
        *,
        to: str = "",
        subject: str = "",
        body: str = "",
        in_reply_to: str | None = None,
        attachments: Iterable[str | Path] = (),
        draft_id: str | None = None,
        max_payload: int | None = None,
    ) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.initial = (to, subject, body)
        self.in_reply_to = in_reply_to
        self.sending = False
        self.resuming = draft_id is not None  # resuming a draft (its file exists)
        self.on_disk = self.resuming
        self.draft_id = draft_id or new_draft_id()
        self.drafts = DraftStore.for_mailbox(mailbox)
        self.attached: list[AttachedFile] = []
        self._initial_paths = [Path(p) for p in attachments]
        self.max_payload = max_payload
        self._limit_failed = False
        self._saved_state = self._state_of(to, subject, body, self._initial_paths)
        self._last_seen = self._saved_state
        self._save_timer: Timer | None = None
        self._finished = False  # sent or discarded: nothing more to save

    @classmethod
    def reply(
        cls,
        mailbox: Mailbox,
        message: ReceivedMessage,
        *,
        date_format: str = DEFAULT_DATE_FORMAT,
    ) -> ComposeScreen:
        """A reply: To the sender, ``Re:`` once, the original quoted under an attribution."""
        return cls(
            mailbox,
            to=str(message.sender) if message.sender is not None else "",
            subject=reply_subject(message.subject),
            body=quote_body(message, date_format),
            in_reply_to=message.message_id,
        )

    @classmethod
    def from_draft(cls, mailbox: Mailbox, draft: Draft) -> ComposeScreen:
        """Resume a saved draft where it was left."""
        return cls(
            mailbox,
            to=draft.to,
            subject=draft.subject,
            body=draft.body,
            in_reply_to=draft.in_reply_to,
            attachments=draft.attachments,
            draft_id=draft.id,
        )

    def compose(self) -> ComposeResult:
        to, subject, body = self.initial
        known = [str(contact.address) for contact in self.mailbox.contacts]
        yield Header(icon="✉")
        with Vertical(id="compose-form"):
            with Horizontal(classes="compose-field"):
                yield Label("From", classes="compose-label")
                yield Label(str(self.mailbox.address), id="compose-from", markup=False)
            with Horizontal(classes="compose-field"):
                yield Label("To", classes="compose-label")
                yield Input(
                    to,
                    placeholder="username@domain  (→ completes from your contacts)",
                    id="compose-to",
                    compact=True,
                    suggester=SuggestFromList(known, case_sensitive=False),
                )
            with Horizontal(classes="compose-field"):
                yield Label("Subject", classes="compose-label")
                yield Input(subject, placeholder="(no subject)", id="compose-subject", compact=True)
            yield TextArea(body, id="compose-body", soft_wrap=True, tab_behavior="focus")
            with Horizontal(classes="compose-field", id="compose-attach-row"):
                yield Label("Attach", classes="compose-label")
                yield Input(
                    placeholder="path of a file (→ completes, Enter attaches)",
                    id="compose-attach",
                    compact=True,
                    suggester=PathSuggester(),
                )
            yield AttachmentList(id="compose-attachments")
            yield Label("", id="compose-size", markup=False)
            yield Label("", id="compose-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        to = self.initial[0]
        self.sub_title = ""
        if self.resuming:
            self.title = f"Draft to {to}" if to.strip() else "Draft"
        else:
            self.title = f"Reply to {to}" if self.in_reply_to and to else "New message"
        for path in self._initial_paths:
            try:
                self.attached.append(check_attachment(str(path)))
            except ValueError as exc:
                self._status(f"An attachment of this draft is gone: {exc}.", "error")
        self._show_attachments()
        if self.in_reply_to and to:
            body = self.query_one("#compose-body", TextArea)
            body.focus()
            body.move_cursor(body.document.end)
        else:
            self.query_one("#compose-to", Input).focus()
        if not self.resuming and not self.changed and not any(self.initial):
            self._offer_drafts()

    def _offer_drafts(self) -> None:
        try:
            count = len(self.drafts.list())
        except OSError:
            return
        if count:
            noun = "an unsent draft" if count == 1 else f"{count} unsent drafts"
            self._status(f"You have {noun}: ctrl+o to resume one.", "busy")

    # -- what was typed --------------------------------------------------------

    @property
    def to(self) -> str:
        return self.query_one("#compose-to", Input).value

    @property
    def subject(self) -> str:
        return self.query_one("#compose-subject", Input).value

    @property
    def body(self) -> str:
        return self.query_one("#compose-body", TextArea).text

    @staticmethod
    def _state_of(
        to: str, subject: str, body: str, paths: Iterable[Path]
    ) -> tuple[str, str, str, tuple[str, ...]]:
        return (to, subject, body, tuple(str(p) for p in paths))

    @property
    def state(self) -> tuple[str, str, str, tuple[str, ...]]:
        """What would be saved now (as last seen, once the fields are gone at unmount)."""
        try:
            paths = (a.path for a in self.attached)
            self._last_seen = self._state_of(self.to, self.subject, self.body, paths)
        except NoMatches:
            pass
        return self._last_seen

    @property
    def changed(self) -> bool:
        """Anything typed or attached since the screen opened (or the draft was resumed)."""
        opened = self._state_of(*self.initial, self._initial_paths)
        return self.state != opened

    def _status(self, text: str, kind: str = "") -> None:
        label = self.query_one("#compose-status", Label)
        label.update(text)
        label.set_class(kind == "error", "-error")
        label.set_class(kind == "busy", "-busy")

    # -- drafts -----------------------------------------------------------------

    @on(Input.Changed, "#compose-to, #compose-subject")
    @on(TextArea.Changed, "#compose-body")
    def _typed(self) -> None:
        self.schedule_save()

    def schedule_save(self) -> None:
        """Save the draft once typing has paused for a second."""
        self.state  # noqa: B018 - remembered for on_unmount, when the fields are gone
        if self._save_timer is not None:
            self._save_timer.stop()
        self._save_timer = self.set_timer(AUTOSAVE_SECONDS, self.save_draft)

    def draft(self) -> Draft:
        to, subject, body, paths = self.state
        return Draft(
            self.draft_id,
            to=to,
            subject=subject,
            body=body,
            in_reply_to=self.in_reply_to,
            attachments=paths,
        )

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
            self._status(f"Could not save the draft: {describe_error(exc)}", "error")
            return False

    def _persist(self, *, force: bool = False) -> bool:
        state = self.state
        if state == self._saved_state and (self.on_disk or not force):
            return self.on_disk
        draft = self.draft()
        opened = self._state_of(*self.initial, self._initial_paths)
        untouched = state == opened and not self.resuming and not force
        if (draft.empty and not draft.attachments) or untouched:
            # Nothing of the user's own is left (all deleted, or back to the quote of a
            # reply): no draft to keep.
            self.drafts.delete(self.draft_id)
            self.on_disk = False
        else:
            self.drafts.save(draft)
            self.on_disk = True
        self._saved_state = state
        return self.on_disk

    def _forget_draft(self) -> None:
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
        self.in_reply_to = draft.in_reply_to
        self.initial = (draft.to, draft.subject, draft.body)
        self._initial_paths = [Path(p) for p in draft.attachments]
        self.query_one("#compose-to", Input).value = draft.to
        self.query_one("#compose-subject", Input).value = draft.subject
        self.query_one("#compose-body", TextArea).load_text(draft.body)
        self.attached = []
        problems = []
        for path in draft.attachments:
            try:
                self.attached.append(check_attachment(path))
            except ValueError as exc:
                problems.append(str(exc))
        self._saved_state = self.state
        if self._save_timer is not None:
            self._save_timer.stop()
        self._show_attachments()
        self.title = f"Draft to {draft.to}" if draft.to.strip() else "Draft"
        if problems:
            self._status(f"An attachment of this draft is gone: {problems[0]}.", "error")
        else:
            self._status("Draft resumed.")
        body = self.query_one("#compose-body", TextArea)
        body.focus()
        body.move_cursor(body.document.end)

    # -- attachments -------------------------------------------------------------

    def action_attach(self) -> None:
        self.query_one("#compose-attach", Input).focus()

    @on(Input.Submitted, "#compose-attach")
    def _attach_typed(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            attached = check_attachment(event.value)
        except ValueError as exc:
            self._status(f"Not attached: {describe_error(exc)}", "error")
            return
        if any(a.path == attached.path for a in self.attached):
            self._status(f"{attached.name} is already attached.", "error")
            return
        self.attached.append(attached)
        event.input.value = ""
        self._status(f"Attached {attached.name} ({human_size(attached.size)}).")
        self._show_attachments()
        self.schedule_save()

    @on(AttachmentList.Remove)
    def _remove_attachment(self, event: AttachmentList.Remove) -> None:
        if 0 <= event.index < len(self.attached):
            gone = self.attached.pop(event.index)
            self._status(f"Removed {gone.name}.")
            self._show_attachments()
            if not self.attached:
                self.query_one("#compose-attach", Input).focus()
            self.schedule_save()

    def _show_attachments(self) -> None:
        listing = self.query_one(AttachmentList)
        previous = listing.highlighted or 0
        listing.clear_options()
        width = max((len(a.name) for a in self.attached), default=0)
        listing.add_options(
            Option(f"{a.name.ljust(width)}  {human_size(a.size):>10}  {a.path.parent}")
            for a in self.attached
        )
        listing.display = bool(self.attached)
        if self.attached:  # something to act on as soon as the list has the focus
            listing.highlighted = min(previous, len(self.attached) - 1)
        if self.attached and self.max_payload is None and not self._limit_failed:
            self._fetch_limit()
        self._show_size()

    def _payload_estimate(self) -> int:
        return estimate_payload(
            str(self.mailbox.address),
            self.to.strip(),
            self.subject,
            self.body,
            [(a.name, a.size) for a in self.attached],
            self.in_reply_to,
        )

    def _show_size(self) -> bool:
        """Say how big the message is against the server's limit; False if too big."""
        label = self.query_one("#compose-size", Label)
        label.display = bool(self.attached)
        if not self.attached:
            return True
        total = sum(a.size for a in self.attached)
        noun = "file" if len(self.attached) == 1 else "files"
        text = f"{len(self.attached)} {noun}, {human_size(total)}"
        fits = True
        if self.max_payload is not None:
            estimate = self._payload_estimate()
            fits = estimate <= self.max_payload
            text += (
                f" · about {human_size(estimate)} once encrypted"
                f" · this server accepts up to {human_size(self.max_payload)}"
            )
            if not fits:
                text += " — too large: remove an attachment"
        elif self._limit_failed:
            text += " · the server's size limit is unknown (offline?)"
        else:
            text += " · asking the server for its size limit…"
        label.update(text)
        label.set_class(not fits, "-error")
        return fits

    @work(group="limit", exclusive=True, exit_on_error=False)
    async def _fetch_limit(self) -> None:
        try:
            self.max_payload = await server_max_payload(self.mailbox.account)
        except Exception:  # offline: the limit is checked again when sending
            self._limit_failed = True
        self._show_size()

    # -- $EDITOR ---------------------------------------------------------------------

    def action_editor(self) -> None:
        body = self.query_one("#compose-body", TextArea)
        try:
            text = edit_in_editor(self.app, body.text)
        except EditorError as exc:
            self._status(f"Editor: {describe_error(exc)}", "error")
            return
        if text != body.text:
            body.load_text(text)
            self.save_draft()
        body.focus()
        body.move_cursor(body.document.end)
        self._status("Back from the editor.")

    # -- sending -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("send", "cancel", "editor", "drafts") and self.sending:
            return None  # shown greyed out in the footer while the send is in flight
        return True

    def action_send(self) -> None:
        to = self.to.strip()
        try:
            parse_address(to)
        except AddressError as exc:
            self._status(describe_error(exc), "error")
            self.query_one("#compose-to", Input).focus()
            return
        for attached in self.attached:
            try:
                check_attachment(str(attached.path))
            except ValueError as exc:
                self._status(f"Not sent: {describe_error(exc)}", "error")
                return
        if not self._show_size():
            assert self.max_payload is not None
            self._status(
                f"Not sent: the message would be about {human_size(self._payload_estimate())} "
                f"once encrypted, and this server accepts at most "
                f"{human_size(self.max_payload)}. Remove an attachment (Delete in the list).",
                "error",
            )
            return
        self._send(to, self.subject, self.body, [a.path for a in self.attached])

    @work(group="send", exclusive=True, exit_on_error=False)
    async def _send(self, to: str, subject: str, body: str, paths: list[Path]) -> None:
        self.sending = True
        self.refresh_bindings()
        self._status(f"Sending to {to}…", "busy")
        try:
            files = [(p.name, await asyncio.to_thread(p.read_bytes)) for p in paths]
            message_id = await self.mailbox.send(
                to, subject, body, files, in_reply_to=self.in_reply_to
            )
        except ContactKeyChanged as exc:
            self._stopped()
            self._key_changed(exc)
            return
        except Exception as exc:  # any failure: keep the draft and say why
            self._stopped()
            reason = describe_error(exc)
            self._status(f"Not sent: {reason}", "error")
            self.notify(reason, title="Not sent", severity="error")
            self.save_draft(force=True)
            return
        self.sending = False
        self._forget_draft()
        self.app.post_message(MessageSent(to, message_id, self.in_reply_to))
        self.notify(f"Sent to {to}", title="Sent")
        leave(self, message_id)

    def _stopped(self) -> None:
        self.sending = False
        self.refresh_bindings()

    def _key_changed(self, exc: ContactKeyChanged) -> None:
        """The receiver's key is not the pinned one: ask, and send again only if accepted."""
        from .key_change import KeyChangeScreen

        self.save_draft(force=True)
        self._status(f"Not sent: the key of {exc.address} has changed. Nothing was sent.", "error")
        if exc.offered_key is None:
            return

        def answered(accepted: bool | None) -> None:
            if accepted:
                self._status(f"New key of {exc.address} accepted; sending again…", "busy")
                self.action_send()
            else:
                self._status(
                    f"Not sent: you kept the old key of {exc.address}, so nothing was sent. "
                    "The message stays here and in your drafts.",
                    "error",
                )

        screen = KeyChangeScreen(self.mailbox, exc.address, exc.pinned, exc.offered_key)
        self.app.push_screen(screen, callback=answered)

    # -- leaving and help ----------------------------------------------------------------

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self, title="Compose"))

    def action_cancel(self) -> None:
        if not self.changed:
            self.dismiss(None)  # on_unmount tidies up any autosave
            return

        def answered(close: bool | None) -> None:
            if not close:
                return
            if dialog.discard:
                self._forget_draft()
                self.notify("Draft discarded.")
            elif self.save_draft():
                self.notify("Kept in your drafts.", title="Draft saved")
            self.dismiss(None)

        dialog = LeaveComposeScreen()
        self.app.push_screen(dialog, answered)


def drafts_notice(mailbox: Mailbox) -> str | None:
    """A line for the app to show after unlocking when drafts are waiting (None if none)."""
    try:
        count = len(DraftStore.for_mailbox(mailbox).list())
    except OSError:
        return None
    if not count:
        return None
    noun = "an unsent draft" if count == 1 else f"{count} unsent drafts"
    return f"You have {noun}: Drafts in the command palette (ctrl+p) resumes one."
