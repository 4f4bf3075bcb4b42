"""Write a message: To, Subject, Body, attachments; ctrl+s sends in a worker.

Nothing typed is ever lost. The draft is sealed to disk a second after typing stops and
when the screen closes, so it survives a crash; a failed send keeps the screen open with
everything in it and says why. A contact whose key changed is not written to until the
user accepts the new key on the key-change screen: a red banner says so as soon as To
names one the mailbox knows, and a send that meets one asks then. Every binding uses
ctrl, F-keys or Escape, because a focused Input or TextArea swallows printable keys.

Split by responsibility: the attachment panel in :mod:`rune_tui.components.attachment_panel`,
the changed-key banner in :mod:`rune_tui.components.key_banner`, keeping drafts in
:mod:`.compose_drafts` (the base class), the $EDITOR hand-over in :mod:`.compose_editor`.
What other modules import from here is re-exported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.suggester import SuggestFromList
from textual.widgets import Footer, Header, Input, Label, TextArea

from rune_proto.address import Address, AddressError, parse_address
from rune_proto.client import ContactKeyChanged, ReceivedMessage
from rune_proto.envelope import Attachment

from ..components.attachment_panel import (
    AttachedFile,
    AttachmentList,
    AttachmentPanel,
    PathSuggester,
    check_attachment,
    human_size,
)
from ..components.formatting import quote_body, reply_subject
from ..components.key_banner import REVIEW_KEY, KeyChangeBanner, outcome
from ..config import DEFAULT_DATE_FORMAT
from ..drafts import Draft
from ..messages import MessageSent
from ..service import Mailbox, describe_error, describe_send_error, estimate_payload
from . import DAILY_STYLES, STYLES, leave
from .compose_drafts import (
    AUTOSAVE_SECONDS,
    DraftKeepingScreen,
    LeaveComposeScreen,
    State,
    drafts_notice,
)
from .compose_editor import EditorError, edit_in_editor, editor_command
from .help import HelpScreen

__all__ = [  # re-exported: what the app, the tests and other screens import from here
    "AUTOSAVE_SECONDS", "AttachedFile", "AttachmentList", "ComposeScreen", "EditorError",
    "LeaveComposeScreen", "PathSuggester", "check_attachment", "drafts_notice",
    "edit_in_editor", "editor_command", "human_size",
]  # fmt: skip


class ComposeScreen(DraftKeepingScreen):
    """Dismisses with the sent message's id, or None when closed without sending.

    ``attachments`` are paths of files on disk; ``files`` are carried in memory (a
    forwarded message's), sent, listed and kept in the draft just the same.
    """

    CSS_PATH: ClassVar[list[str | PurePath]] = [STYLES, DAILY_STYLES]
    AUTO_FOCUS = None  # on_mount decides: To for a new message, the body for a reply

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", id="compose.send", priority=True),
        Binding("ctrl+e", "editor", "Editor", id="compose.editor", priority=True),
        Binding("ctrl+t", "attach", "Attach", id="compose.attach"),
        Binding("ctrl+o", "drafts", "Drafts", id="compose.drafts"),
        Binding("escape", "cancel", "Close", id="compose.cancel"),
        Binding("f1", "help", "Help", id="compose.help"),
        Binding(REVIEW_KEY, "review_key", "Review key", id="compose.review_key", priority=True),
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
        files: Iterable[Attachment] = (),
        draft_id: str | None = None,
        max_payload: int | None = None,
        heading: str | None = None,
    ) -> None:
        super().__init__(mailbox, draft_id)
        self.mailbox = mailbox
        self.heading = heading
        self.in_reply_to = in_reply_to
        self.sending = False
        self.banner = KeyChangeBanner(mailbox, id="compose-key-changed")
        self.panel = AttachmentPanel(
            estimate=self._estimate, fetch_limit=mailbox.max_payload, max_payload=max_payload
        )
        self._set_initial((to, subject, body), attachments, files)
        self._saved_state = self._last_seen = self.opened

    def _set_initial(
        self, fields: tuple[str, str, str], paths: Iterable[str | Path], files: Iterable[Attachment]
    ) -> None:
        """What the screen opens with; carried files first, as a forward lists them."""
        self.initial = fields
        self._initial_paths = [str(p) for p in paths]
        self._initial_files = [AttachedFile.carried(f.filename, f.data) for f in files]
        self._initial_keys = (*(a.key for a in self._initial_files), *self._initial_paths)

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
            files=draft.forwarded,
            draft_id=draft.id,
        )

    def compose(self) -> ComposeResult:
        to, subject, body = self.initial
        known = [str(contact.address) for contact in self.mailbox.contacts]
        yield Header(icon="✉")
        yield self.banner
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
            yield self.panel
            yield Label("", id="compose-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        to = self.initial[0]
        self.sub_title = ""
        if self.resuming:
            self.title = f"Draft to {to}" if to.strip() else "Draft"
        else:
            self.title = self.heading or (
                f"Reply to {to}" if self.in_reply_to and to else "New message"
            )
        self._attach_initial()
        self._check_key()
        if self.in_reply_to and to:
            self._focus_body()
        else:
            self.query_one("#compose-to", Input).focus()
        if not self.resuming and not self.changed and not any(self.initial):
            self.offer_drafts()

    def _attach_initial(self) -> bool:
        """Attach the opening files; False (and says why) if a path is gone or unreadable."""
        problem = self.panel.set_opening(self._initial_files, self._initial_paths)
        if problem is not None:
            self.show_status(f"An attachment of this draft is gone: {problem}.", "error")
        return problem is None

    def _focus_body(self) -> None:
        body = self.query_one("#compose-body", TextArea)
        body.focus()
        body.move_cursor(body.document.end)

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

    @property
    def attached(self) -> list[AttachedFile]:
        return self.panel.attached

    @property
    def max_payload(self) -> int | None:
        return self.panel.max_payload

    @property
    def state(self) -> State:
        """What would be saved now (as last seen, once the fields are gone at unmount)."""
        try:
            keys = tuple(a.key for a in self.attached)
            self._last_seen = (self.to, self.subject, self.body, keys)
        except NoMatches:
            pass
        return self._last_seen

    @property
    def opened(self) -> State:
        return (*self.initial, self._initial_keys)

    def show_status(self, text: str, kind: str = "") -> None:
        label = self.query_one("#compose-status", Label)
        label.update(text)
        label.set_class(kind == "error", "-error")
        label.set_class(kind == "busy", "-busy")

    # -- drafts -----------------------------------------------------------------

    @on(Input.Changed, "#compose-to, #compose-subject")
    @on(TextArea.Changed, "#compose-body")
    @on(AttachmentPanel.Changed)
    def _typed(self) -> None:
        self.schedule_save()

    @on(Input.Changed, "#compose-to")
    def _to_typed(self) -> None:
        self.banner.check_soon(self.to)  # is their key known to have changed?

    @on(Input.Blurred, "#compose-to")
    def _check_key(self) -> None:
        self.banner.check(self.to)

    def draft(self) -> Draft:
        to, subject, body, _ = self.state
        files = self.panel.attached
        return Draft(
            self.draft_id,
            to=to,
            subject=subject,
            body=body,
            in_reply_to=self.in_reply_to,
            attachments=tuple(str(a.path) for a in files if a.path is not None),
            forwarded=tuple(Attachment(a.name, a.data) for a in files if a.data is not None),
        )

    def load_draft(self, draft: Draft) -> None:
        self.in_reply_to = draft.in_reply_to
        self._set_initial((draft.to, draft.subject, draft.body), draft.attachments, draft.forwarded)
        self.query_one("#compose-to", Input).value = draft.to
        self.query_one("#compose-subject", Input).value = draft.subject
        self.query_one("#compose-body", TextArea).load_text(draft.body)
        self.title = f"Draft to {draft.to}" if draft.to.strip() else "Draft"
        if self._attach_initial():
            self.show_status("Draft resumed.")
        self._focus_body()

    # -- attachments -------------------------------------------------------------

    def action_attach(self) -> None:
        self.query_one("#compose-attach", Input).focus()

    @on(AttachmentPanel.Said)
    def _panel_said(self, event: AttachmentPanel.Said) -> None:
        self.show_status(event.text, "error" if event.error else "")

    def _estimate(self, files: Sequence[tuple[str, int]]) -> int:
        sender, to = str(self.mailbox.address), self.to.strip()
        return estimate_payload(sender, to, self.subject, self.body, files, self.in_reply_to)

    # -- $EDITOR ---------------------------------------------------------------------

    def action_editor(self) -> None:
        body = self.query_one("#compose-body", TextArea)
        try:
            text = edit_in_editor(self.app, body.text)
        except EditorError as exc:
            self.show_status(f"Editor: {describe_error(exc)}", "error")
            return
        if text != body.text:
            body.load_text(text)
            self.save_draft()
        self._focus_body()
        self.show_status("Back from the editor.")

    # -- sending -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("send", "cancel", "editor", "drafts") and self.sending:
            return None  # shown greyed out in the footer while the send is in flight
        if action == "review_key":  # only while the banner shows (else ctrl+k edits text)
            return self.banner.change is not None and not self.sending
        return True

    def action_send(self) -> None:
        to = self.to.strip()
        try:
            parse_address(to)
        except AddressError as exc:
            self.show_status(describe_error(exc), "error")
            self.query_one("#compose-to", Input).focus()
            return
        for attached in self.attached:
            try:
                attached.check()
            except ValueError as exc:
                self.show_status(f"Not sent: {describe_error(exc)}", "error")
                return
        if not self.panel.show_size():
            assert self.max_payload is not None
            self.show_status(
                f"Not sent: the message would be about {human_size(self.panel.estimate)} "
                f"once encrypted, and this server accepts at most "
                f"{human_size(self.max_payload)}. Remove an attachment (Delete in the list).",
                "error",
            )
            return
        self._check_key()
        if self.banner.change is not None:  # a change known already: review it, then send
            self.save_draft(force=True)
            self.action_review_key(then_send=True)
            return
        self._send(to, self.subject, self.body)

    @work(group="send", exclusive=True, exit_on_error=False)
    async def _send(self, to: str, subject: str, body: str) -> None:
        self.sending = True
        self.refresh_bindings()
        self.show_status(f"Sending to {to}…", "busy")
        try:
            files = await self.panel.read_all()
            message_id = await self.mailbox.send(
                to, subject, body, files, in_reply_to=self.in_reply_to
            )
        except ContactKeyChanged as exc:
            self._stopped()
            self._key_changed(exc)
            return
        except Exception as exc:  # any failure: keep the draft and say why
            self._stopped()
            reason = describe_send_error(exc, to, self.mailbox.address.domain)
            self.show_status(f"Not sent: {reason}", "error")
            self.notify(reason, title="Not sent", severity="error")
            self.save_draft(force=True)
            return
        self.sending = False
        self.forget_draft()
        self.app.post_message(MessageSent(to, message_id, self.in_reply_to))
        self.notify(f"Sent to {to}", title="Sent")
        problem = self.mailbox.sent_copy_problem
        if problem:  # sent all the same: only the local copy is missing
            self.notify(
                f"No copy was kept in Sent: {problem}.",
                title="Sent, not kept",
                severity="warning",
                markup=False,
            )
        leave(self, message_id)

    def _stopped(self) -> None:
        self.sending = False
        self.refresh_bindings()

    def _key_changed(self, exc: ContactKeyChanged) -> None:
        """The receiver's key is not the pinned one: say so loudly, and ask."""
        self.save_draft(force=True)
        self.show_status(
            f"Not sent: the key of {exc.address} has changed. Nothing was sent.", "error"
        )
        if self.banner.met(exc):
            self.action_review_key(then_send=True)

    def action_review_key(self, then_send: bool = False) -> None:
        """Old and new key side by side; accepted, the banner goes (and the send goes on)."""

        def answered(accepted: bool, who: Address) -> None:
            if accepted and then_send:
                self.show_status(f"New key of {who} accepted; sending…", "busy")
                self.action_send()
            else:
                self.show_status(*outcome(who, accepted))

        self.banner.review(answered)

    @on(KeyChangeBanner.ReviewAsked)
    def _open_key_review(self, event: KeyChangeBanner.ReviewAsked) -> None:
        from .key_change import KeyChangeScreen  # lazily: compose opens without it

        change = event.change
        screen = KeyChangeScreen(self.mailbox, change.address, change.pinned, event.key)
        self.app.push_screen(
            screen, callback=lambda accepted: self.banner.reviewed(change, accepted)
        )

    # -- leaving and help ----------------------------------------------------------------

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self, title="Compose"))
