"""My key: your address and your key's fingerprint, to compare with someone in person.

The contacts screen asks the user to compare a contact's fingerprint with the one that
contact reads from their own device; this is where Rune shows its own. The fingerprint is
grouped as the contacts screen groups a contact's, so one reads aloud while the other
follows; the QR code carries the same (a key card, protocol.md Appendix D) for a phone.
Once the other person's fingerprint matched, ``v`` picks them and records it, as ``v``
in contacts does.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, ScrollableContainer, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Label, OptionList, Static
from textual.widgets.option_list import Option

from rune_proto.client import COMPARED_IN_PERSON, Contact
from rune_proto.keycard import KeyCard

from ..components.formatting import fingerprint_block
from ..components.qr_code import QrCode
from . import DAILY_STYLES, MY_KEY_STYLES, STYLES
from .confirm import ConfirmScreen
from .contacts import HOW_TEXT, compare_question
from .help import HelpScreen

if TYPE_CHECKING:
    from ..service import Mailbox

# A fingerprint line of eight groups, as in the contacts screen's detail: 8×4 + 7 spaces.
WIDE_LINE = 39
NARROW_LINE = 19  # four groups
GAPS = 8  # the body's padding and the gutter between the text and the QR code

EXPLAIN = (
    "To compare keys in person, read your groups aloud while the other person checks "
    "them against your entry in their contacts (C), or let them scan the QR code. Then "
    "check theirs in your contacts the same way, and press v to record that it matched."
)


class MyKeyScreen(Screen[None]):
    """Pushed from the app (``M`` or the palette); shows the open account's own key."""

    CSS_PATH: ClassVar[list[str | PurePath]] = [STYLES, DAILY_STYLES, MY_KEY_STYLES]
    AUTO_FOCUS = "#my-key"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll(1)", "Down", id="my_key.down", show=False),
        Binding("k", "scroll(-1)", "Up", id="my_key.up", show=False),
        Binding("v", "compare", "Mark a contact compared", id="my_key.compare"),
        Binding("question_mark", "help", "Help", id="my_key.help"),
        Binding("q,escape", "back", "Back", id="my_key.back"),
    ]

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.card = KeyCard.of(mailbox.address, mailbox.identity.public)

    def compose(self) -> ComposeResult:
        yield Header(icon="✉")
        with ScrollableContainer(id="my-key"), Container(id="my-key-body"):
            with Vertical(id="my-key-text"):
                yield Label("Your address", classes="label")
                yield Label(str(self.card.address), id="my-key-address", markup=False)
                yield Label("Your key's fingerprint", classes="label")
                yield Static("", id="my-key-fingerprint", classes="fingerprint", markup=False)
                yield Static(EXPLAIN, id="my-key-explain", markup=False)
                yield Label("", id="my-key-status", markup=False)
            yield QrCode(self.card.payload(), id="my-key-qr")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"My key — {self.card.address}"
        self.sub_title = ""
        self._fit(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        """QR code beside the text when both fit, else below it; eight groups a line if room."""
        qr_width = self.query_one(QrCode).columns
        beside = width >= qr_width + GAPS + NARROW_LINE
        room = width - qr_width - GAPS if beside else width - GAPS
        self.query_one("#my-key-body").set_class(not beside, "-stacked")
        per_line = 8 if room >= WIDE_LINE else 4
        self.query_one("#my-key-fingerprint", Static).update(
            fingerprint_block(self.card.fingerprint_text(), per_line=per_line)
        )

    # -- actions -------------------------------------------------------------------

    def action_scroll(self, lines: int) -> None:
        self.query_one("#my-key", ScrollableContainer).scroll_relative(y=lines, animate=False)

    def action_compare(self) -> None:
        """Pick the contact whose fingerprint was compared, then confirm it as contacts does."""
        from ..service import describe_error

        try:
            contacts = list(self.mailbox.contacts)
        except Exception as exc:  # the contact book cannot be read (damaged, unreadable)
            self.notify(describe_error(exc), title="Cannot open your contacts", severity="error")
            return
        if self.mailbox.contacts_problem:  # it did not open: what is shown is not your book
            self.notify(
                self.mailbox.contacts_problem, title="Cannot open your contacts", severity="error"
            )
            return
        if not contacts:
            self.notify(
                "No contacts yet: a contact's key is pinned the first time you write to "
                "them or read a message from them.",
                severity="warning",
            )
            return
        self.app.push_screen(ContactPickScreen(contacts), callback=self._picked)

    def _picked(self, contact: Contact | None) -> None:
        if contact is None:
            return
        if contact.how == COMPARED_IN_PERSON:
            self._status(f"{contact.address} is already marked as compared in person.")
            return

        def answered(matches: bool | None) -> None:
            if matches:
                self._mark_compared(contact)

        self.app.push_screen(
            ConfirmScreen(compare_question(contact), yes="They match", no="Not now"),
            callback=answered,
        )

    def _mark_compared(self, contact: Contact) -> None:
        from ..service import describe_error

        try:
            self.mailbox.contacts.mark_compared(contact.address, contact.key)
        except Exception as exc:  # the pin changed meanwhile, or the file cannot be written
            self.notify(describe_error(exc), title="Not marked", severity="error")
            return
        self._status(f"{contact.address}: compared in person.")
        self.notify(f"{contact.address}: compared in person.", title="Contact verified")

    def _status(self, text: str) -> None:
        self.query_one("#my-key-status", Label).update(text)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self, title="My key"))

    def action_back(self) -> None:
        self.dismiss(None)


class ContactPickScreen(ModalScreen[Contact | None]):
    """Which contact was compared: dismisses with the chosen one, or None."""

    CSS_PATH: ClassVar[list[str | PurePath]] = [STYLES, DAILY_STYLES, MY_KEY_STYLES]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="contact_pick.close"),
    ]

    def __init__(self, contacts: list[Contact]) -> None:
        super().__init__()
        self.contacts = contacts

    def compose(self) -> ComposeResult:
        with Vertical(id="contact-pick-box", classes="dialog") as box:
            box.border_title = "Whose fingerprint did you compare?"
            yield OptionList(id="contact-pick-list")
            yield Static(
                "Enter shows their fingerprint as you pinned it, to confirm · Esc closes.",
                classes="explain",
            )

    def on_mount(self) -> None:
        listing = self.query_one("#contact-pick-list", OptionList)
        width = max(len(str(c.address)) for c in self.contacts)
        for contact in self.contacts:
            how = HOW_TEXT.get(contact.how, contact.how or "—")
            address = str(contact.address).ljust(width)
            listing.add_option(Option(f"{address}   {how}", id=str(contact.address)))
        first_open = next(
            (i for i, c in enumerate(self.contacts) if c.how != COMPARED_IN_PERSON), 0
        )
        listing.highlighted = first_open
        listing.focus()

    @on(OptionList.OptionSelected, "#contact-pick-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.contacts[event.option_index])

    def action_close(self) -> None:
        self.dismiss(None)
