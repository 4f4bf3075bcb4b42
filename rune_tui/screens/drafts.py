"""The unsent drafts of an account: Enter resumes one, d deletes one (after a yes)."""

from __future__ import annotations

from pathlib import PurePath
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from ..config import DEFAULT_DATE_FORMAT
from ..drafts import Draft, DraftStore
from . import DAILY_STYLES, STYLES
from .confirm import ConfirmScreen


def draft_line(draft: Draft, date_format: str) -> str:
    to = draft.to.strip() or "(no receiver yet)"
    subject = draft.subject.strip() or "(no subject)"
    when = draft.saved_at.astimezone().strftime(date_format)
    count = draft.file_count
    files = f"  (+{count} file{'s' if count > 1 else ''})" if count else ""
    return f"{when}  {to} — {subject}{files}"


class DraftsScreen(ModalScreen[Draft | None]):
    """Pick a draft to resume; dismisses with it, or None."""

    CSS_PATH: ClassVar[list[str | PurePath]] = [STYLES, DAILY_STYLES]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d,delete", "delete", "Delete draft", id="drafts.delete"),
        Binding("escape,q", "close", "Close", id="drafts.close"),
    ]

    def __init__(
        self,
        store: DraftStore,
        *,
        exclude: str | None = None,
        date_format: str = DEFAULT_DATE_FORMAT,
    ) -> None:
        super().__init__()
        self.store = store
        self.exclude = exclude  # the draft already open in compose
        self.date_format = date_format
        self.drafts: list[Draft] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="drafts-box", classes="dialog"):
            yield Label("Unsent drafts", classes="title")
            yield OptionList(id="drafts-list")
            yield Static("", id="drafts-note", classes="explain", markup=False)
            yield Static("Enter resumes · d deletes · Esc closes", classes="explain")

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#drafts-list").focus()

    def reload(self) -> None:
        self.drafts = [d for d in self.store.list() if d.id != self.exclude]
        listing = self.query_one("#drafts-list", OptionList)
        listing.clear_options()
        listing.add_options(Option(draft_line(d, self.date_format), id=d.id) for d in self.drafts)
        if self.drafts:
            listing.highlighted = 0
        note = "No drafts: everything you wrote was sent." if not self.drafts else ""
        if self.store.damaged:
            note += f" {self.store.damaged} draft file(s) could not be opened (damaged?)."
        label = self.query_one("#drafts-note", Static)
        label.update(note.strip())
        label.display = bool(note.strip())

    @on(OptionList.OptionSelected, "#drafts-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.drafts[event.option_index])

    def action_delete(self) -> None:
        index = self.query_one("#drafts-list", OptionList).highlighted
        if index is None or not self.drafts:
            return
        draft = self.drafts[index]

        def answered(yes: bool | None) -> None:
            if yes:
                self.store.delete(draft.id)
                self.reload()
                self.notify("Draft deleted.")

        line = draft_line(draft, self.date_format)
        self.app.push_screen(ConfirmScreen(f"Delete this draft?\n\n{line}", yes="Delete"), answered)

    def action_close(self) -> None:
        self.dismiss(None)
