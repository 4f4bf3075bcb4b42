"""A changed key, shown loudly: old and new fingerprints side by side, and a deliberate accept.

Two screens share one shape. :class:`KeyChangeScreen` is for a contact whose key is not
the pinned one (met when sending, or in a received message); :class:`ServerKeyScreen` is
for a server whose TLS certificate or signing key changed. Each says plainly what the
change may mean, and accepting takes typing the word ``accept`` — a key press or a stray
Enter can never do it. Escape (or the default button) keeps the old key.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from rune_proto.address import Address, parse_address
from rune_proto.keys import PublicKey

from ..components.formatting import fingerprint_block
from . import DAILY_STYLES, STYLES

if TYPE_CHECKING:
    from ..service import Mailbox
    from ..trust import ServerChange

CONFIRM_WORD = "accept"


class FingerprintPair(Horizontal):
    """The pinned fingerprint on the left, the offered one on the right, in groups of four."""

    def __init__(self, old_heading: str, old: str, new_heading: str, new: str) -> None:
        super().__init__(classes="fingerprint-pair")
        self.old_heading, self.old = old_heading, old
        self.new_heading, self.new = new_heading, new

    def compose(self) -> ComposeResult:
        with Vertical(classes="fingerprint-old"):
            yield Label(self.old_heading, classes="fingerprint-heading", markup=False)
            yield Static(fingerprint_block(self.old), classes="fingerprint", markup=False)
        with Vertical(classes="fingerprint-new"):
            yield Label(self.new_heading, classes="fingerprint-heading", markup=False)
            yield Static(fingerprint_block(self.new), classes="fingerprint", markup=False)


class _ChangedKeyScreen(ModalScreen[bool]):
    """The shared frame: a warning title, what changed, what it may mean, typed accept."""

    CSS_PATH: ClassVar[list[str | PurePath]] = [STYLES, DAILY_STYLES]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "keep", "Keep the old key", id="key_change.keep"),
    ]

    heading = ""
    accepting = "key"  # what the typed word accepts, in the prompt
    accept_label = "Accept the new key"

    def compose_facts(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        with Vertical(id="key-change-box"):
            yield Label(f"⚠  {self.heading}", id="key-change-title", markup=False)
            with VerticalScroll(id="key-change-scroll"):
                yield from self.compose_facts()
            yield Label(
                Content.from_markup(
                    "To accept the NEW $what, type [b]$word[/b]:",
                    what=self.accepting,
                    word=CONFIRM_WORD,
                ),
                id="key-change-prompt",
            )
            yield Input(placeholder=CONFIRM_WORD, id="key-change-confirm", compact=True)
            yield Label("", id="key-change-error", markup=False)
            with Horizontal(id="key-change-buttons"):
                yield Button(self.accept_label, id="key-change-accept", variant="error")
                yield Button("Keep the old key (Esc)", id="key-change-keep", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#key-change-accept", Button).disabled = True
        self.query_one("#key-change-confirm", Input).focus()

    @property
    def confirmed(self) -> bool:
        typed = self.query_one("#key-change-confirm", Input).value
        return typed.strip().lower() == CONFIRM_WORD

    @on(Input.Changed, "#key-change-confirm")
    def _typed(self) -> None:
        self.query_one("#key-change-accept", Button).disabled = not self.confirmed

    @on(Input.Submitted, "#key-change-confirm")
    @on(Button.Pressed, "#key-change-accept")
    def _accept(self) -> None:
        if not self.confirmed:
            self._error(f"Type the word “{CONFIRM_WORD}” to accept, or press Esc.")
            return
        try:
            self.accept()
        except Exception as exc:  # e.g. the contacts file cannot be written: say so, stay
            from ..service import describe_error

            self._error(f"Not accepted: {describe_error(exc)}")
            return
        self.dismiss(True)

    def accept(self) -> None:
        """What accepting does before the screen closes with True (nothing by default)."""

    def _error(self, text: str) -> None:
        self.query_one("#key-change-error", Label).update(text)

    @on(Button.Pressed, "#key-change-keep")
    def action_keep(self) -> None:
        self.dismiss(False)


class KeyChangeScreen(_ChangedKeyScreen):
    """A contact's key changed. Dismisses with True once the new key is pinned.

    ``pinned_fingerprint`` is the fingerprint text of the pinned key (as in
    ``ContactKeyChanged.pinned``); ``offered_key`` is the key to pin if the user accepts
    (``ContactKeyChanged.offered_key``). Accepting calls ``mailbox.accept_key``.
    """

    accept_label = "Accept the new key"

    def __init__(
        self,
        mailbox: Mailbox,
        address: str | Address,
        pinned_fingerprint: str,
        offered_key: PublicKey,
    ) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.address = address if isinstance(address, Address) else parse_address(address)
        self.pinned_fingerprint = pinned_fingerprint
        self.offered_key = offered_key
        self.heading = f"The key of {self.address} has changed"

    def compose_facts(self) -> ComposeResult:
        who = str(self.address)
        contact = self.mailbox.contacts.get(self.address)
        since = ""
        if contact is not None:
            seen = contact.first_seen.astimezone().strftime("%Y-%m-%d")
            since = f" on {seen} ({contact.how or 'first sight'})"
        yield Static(
            f"Rune pinned a key for {who} when it first saw it{since}. The key offered "
            "for them now is a different one.",
            classes="explain",
            markup=False,
        )
        yield FingerprintPair(
            "OLD — the key you trusted",
            self.pinned_fingerprint,
            "NEW — the key offered now",
            self.offered_key.fingerprint_text(),
        )
        yield Static(
            Content.from_markup(
                "[b]What this may mean.[/b] It can be harmless: $who may have set Rune up "
                "again on a new device, or lost their key and registered again. It can also "
                "mean [b]someone is impersonating $who[/b] — for example the server, which "
                "hands out the keys.",
                who=who,
            ),
            classes="key-change-meaning",
        )
        yield Static(
            f"Ask {who} — in person, or over another channel you trust — to read you the "
            "fingerprint Rune shows for their own key. Accept only if it is the NEW one. "
            f"Until you accept, nothing is sent to {who}, and their messages are marked "
            "not verified.",
            classes="explain",
            markup=False,
        )

    def accept(self) -> None:
        self.mailbox.accept_key(self.address, self.offered_key)


class ServerKeyScreen(_ChangedKeyScreen):
    """A server's TLS certificate and/or signing key changed. True means "pin the new ones".

    The screen only asks; the app saves the new pins in the config when it gets True.
    """

    accept_label = "Trust the new fingerprints"
    accepting = "fingerprints"

    def __init__(self, change: ServerChange) -> None:
        super().__init__()
        self.change = change
        what = {
            (True, True): "certificate and key",
            (True, False): "certificate",
            (False, True): "key",
        }[(change.tls_changed, change.key_changed)]
        self.heading = f"The server {change.where} has a new {what}"

    def compose_facts(self) -> ComposeResult:
        change = self.change
        yield Static(
            f"When you registered {change.account.address}, Rune pinned what the server "
            f"{change.where} presented. It now presents something different:",
            classes="explain",
            markup=False,
        )
        if change.tls_changed:
            yield FingerprintPair(
                "OLD TLS certificate (pinned)",
                change.old_tls_text(),
                "NEW TLS certificate",
                change.new_tls_text(),
            )
        if change.key_changed:
            yield FingerprintPair(
                "OLD server key (pinned)",
                change.old_key_text(),
                "NEW server key",
                change.new_key_text(),
            )
        yield Static(
            Content.from_markup(
                "[b]What this may mean.[/b] The server's operator may have replaced its "
                "certificate or keys (they should have said so, with the new fingerprints). "
                "It can also mean [b]someone is intercepting your connection[/b] and "
                "pretending to be the server."
            ),
            classes="key-change-meaning",
        )
        yield Static(
            "Compare the NEW fingerprints with the ones the operator published. Until you "
            "accept, rune-tui does not log in to this server: no mail is sent or fetched.",
            classes="explain",
            markup=False,
        )
