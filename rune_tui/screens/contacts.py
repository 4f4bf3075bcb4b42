"""Contacts: who Rune has pinned a key for, since when, and how much that pin is worth.

A pin made on first sight ("first message", "first send") only proves that the key has
not changed since; comparing the fingerprint with the person ("compared in person") is
what makes it theirs. This screen shows each pin, lets the user record that comparison,
and forgets a contact on request (the next key seen for them is pinned afresh).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Static

from rune_proto.client import COMPARED_IN_PERSON, Contact

from ..components.formatting import fingerprint_block
from ..config import DEFAULT_DATE_FORMAT
from . import DAILY_STYLES, STYLES
from .confirm import ConfirmScreen
from .help import HelpScreen

if TYPE_CHECKING:
    from ..service import Mailbox

# How a pin was made, in words for the list (the stored value is the key).
HOW_TEXT = {
    "first message": "first message",
    "first send": "first send",
    "lookup": "looked up",
    "accepted change": "accepted change",
    "accepted": "accepted",
    COMPARED_IN_PERSON: "✓ compared in person",
}
HOW_EXPLAINED = {
    "first message": "pinned from their first message to you; not compared yet",
    "first send": "pinned when you first wrote to them; not compared yet",
    "lookup": "pinned from the server's directory; not compared yet",
    "accepted change": "you accepted a changed key; not compared yet",
    "accepted": "you accepted this key; not compared yet",
    COMPARED_IN_PERSON: "you compared the fingerprint with them: this key is theirs",
}


def compare_question(contact: Contact) -> str:
    """What to compare before a contact is marked compared in person (here and in My key)."""
    return (
        f"Ask {contact.address} to show you the fingerprint Rune shows for their own key "
        "(My key, on their device, in person or over a call you trust), and compare every "
        f"group:\n\n{fingerprint_block(contact.fingerprint, per_line=8)}\n\n"
        "Does theirs match this one exactly?"
    )


def short_fingerprint(text: str) -> str:
    """The first four groups: enough to tell keys apart at a glance, not to verify them."""
    return " ".join(text.split()[:4]) + " …"


class ContactsScreen(Screen[None]):
    """The contact book of one account; pushed from the app (``C`` or the palette)."""

    CSS_PATH: ClassVar[list[str | PurePath]] = [STYLES, DAILY_STYLES]
    AUTO_FOCUS = "#contacts-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor(1)", "Down", id="contacts.down", show=False),
        Binding("k", "cursor(-1)", "Up", id="contacts.up", show=False),
        Binding("v", "compare", "Compared in person", id="contacts.compare"),
        Binding("d,delete", "remove", "Remove", id="contacts.remove"),
        Binding("m,c", "write", "Write to", id="contacts.write"),
        Binding("question_mark", "help", "Help", id="contacts.help"),
        Binding("q,escape", "back", "Back", id="contacts.back"),
    ]

    def __init__(self, mailbox: Mailbox, *, date_format: str = DEFAULT_DATE_FORMAT) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.date_format = date_format

    def compose(self) -> ComposeResult:
        yield Header(icon="✉")
        with Vertical(id="contacts"):
            yield DataTable(id="contacts-table", cursor_type="row", zebra_stripes=True)
            yield Label("", id="contacts-status", markup=False)
            with Grid(id="contact-detail"):
                yield Label("Address", classes="label")
                yield Label("", id="detail-address", markup=False)
                yield Label("Fingerprint", classes="label")
                yield Static("", id="detail-fingerprint", classes="fingerprint", markup=False)
                yield Label("First seen", classes="label")
                yield Label("", id="detail-first-seen", markup=False)
                yield Label("Verified", classes="label")
                yield Label("", id="detail-how", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Contacts — {self.mailbox.address}"
        self.sub_title = ""
        table = self.table
        table.add_column("Address", key="address")
        table.add_column("Fingerprint", key="fingerprint")
        table.add_column("First seen", key="first_seen")
        table.add_column("How verified", key="how")
        self.reload()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.reload()  # a key accepted elsewhere shows here

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#contacts-table", DataTable)

    @property
    def contacts(self) -> list[Contact]:
        return list(self.mailbox.contacts)

    def reload(self, keep: str | None = None) -> None:
        """Show the contact book as it is now, keeping the cursor on the same address."""
        table = self.table
        current = keep if keep is not None else self.selected_address()
        table.clear()
        for contact in self.contacts:
            table.add_row(
                str(contact.address),
                short_fingerprint(contact.fingerprint),
                self._date(contact),
                HOW_TEXT.get(contact.how, contact.how or "—"),
                key=str(contact.address),
            )
        if current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current), animate=False)
        count = table.row_count
        if count == 0:
            self._status(
                "No contacts yet. A contact's key is pinned the first time you write to them "
                "or read a message from them."
            )
        else:
            compared = sum(1 for c in self.contacts if c.how == COMPARED_IN_PERSON)
            noun = "contact" if count == 1 else "contacts"
            self._status(
                f"{count} {noun}, {compared} compared in person. "
                "v marks the selected one as compared, once its fingerprint matches theirs."
            )
        self._show_detail()

    def _date(self, contact: Contact) -> str:
        return contact.first_seen.astimezone().strftime(self.date_format)

    def _status(self, text: str) -> None:
        problem = self.mailbox.contacts_problem  # stays in view: pins are not being kept
        label = self.query_one("#contacts-status", Label)
        label.update(f"{problem}\n{text}" if problem else text)
        label.set_class(bool(problem), "-problem")

    def selected_address(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def selected(self) -> Contact | None:
        address = self.selected_address()
        if address is None:
            return None
        return next((c for c in self.mailbox.contacts if str(c.address) == address), None)

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        contact = self.selected()
        self.query_one("#contact-detail").display = contact is not None
        if contact is None:
            return
        self.query_one("#detail-address", Label).update(str(contact.address))
        self.query_one("#detail-fingerprint", Static).update(
            fingerprint_block(contact.fingerprint, per_line=8)
        )
        self.query_one("#detail-first-seen", Label).update(self._date(contact))
        how = HOW_EXPLAINED.get(contact.how, contact.how or "unknown")
        label = self.query_one("#detail-how", Label)
        label.update(how)
        label.set_class(contact.how == COMPARED_IN_PERSON, "-compared")

    # -- actions -------------------------------------------------------------------

    def action_cursor(self, step: int) -> None:
        if step > 0:
            self.table.action_cursor_down()
        else:
            self.table.action_cursor_up()

    def _needs_contact(self) -> Contact | None:
        contact = self.selected()
        if contact is None:
            self.notify("There is no contact here.", severity="warning")
        return contact

    def action_compare(self) -> None:
        """Show the whole fingerprint; a yes records that the user compared it in person."""
        contact = self._needs_contact()
        if contact is None:
            return
        who = str(contact.address)
        question = compare_question(contact)

        def answered(matches: bool | None) -> None:
            if matches:
                self._mark_compared(contact)
            elif matches is False:
                self.notify(
                    f"Nothing changed. If the fingerprints differ, someone may be "
                    f"impersonating {who}: do not trust their messages until you know why.",
                    title="Not marked",
                    severity="warning",
                    timeout=10,
                )

        self.app.push_screen(
            ConfirmScreen(question, yes="They match", no="Not now"), callback=answered
        )

    def _mark_compared(self, contact: Contact) -> None:
        from ..service import describe_error

        try:
            self.mailbox.contacts.mark_compared(contact.address, contact.key)
        except Exception as exc:  # the pin changed meanwhile, or the file cannot be written
            self.notify(describe_error(exc), title="Not marked", severity="error")
            return
        self.reload(keep=str(contact.address))
        self.notify(f"{contact.address}: compared in person.", title="Contact verified")

    def action_remove(self) -> None:
        contact = self._needs_contact()
        if contact is None:
            return
        question = (
            f"Remove {contact.address} from your contacts? Rune forgets their pinned key: "
            "the next key it sees for them is pinned without a warning."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._remove(contact)

        self.app.push_screen(ConfirmScreen(question, yes="Remove"), callback=answered)

    def _remove(self, contact: Contact) -> None:
        from ..service import describe_error

        table = self.table
        index = table.cursor_row
        try:
            self.mailbox.contacts.remove(contact.address)
        except Exception as exc:  # the contacts file cannot be written
            self.notify(describe_error(exc), title="Not removed", severity="error")
            return
        self._reverify(contact)
        self.reload()
        if table.row_count:
            table.move_cursor(row=min(index, table.row_count - 1), animate=False)
        self.notify(f"{contact.address} removed from your contacts.")

    def _reverify(self, contact: Contact) -> None:
        """Bring the inbox's verdicts on this contact's messages up to date, if it can."""
        reverify = getattr(self.mailbox, "reverify", None)
        if reverify is not None:
            try:
                reverify(contact.address)
            except Exception as exc:  # the list keeps its old verdicts; not worth a failure
                self.log.warning(f"could not re-check messages of {contact.address}: {exc}")

    def action_write(self) -> None:
        contact = self._needs_contact()
        if contact is not None:
            from .compose import ComposeScreen

            self.app.push_screen(ComposeScreen(self.mailbox, to=str(contact.address)))

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self, title="Contacts"))

    def action_back(self) -> None:
        self.dismiss(None)
