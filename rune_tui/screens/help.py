"""``?``: the keys of the screen it was opened from, read from its bindings, then help.md.

The key list is generated — from the screen's own bindings with the user's keymap
applied, and the app's — so it can never drift from what the keys really do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingsMap, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Markdown, Static

from ..components.formatting import sentence
from . import STYLES

HELP_TEXT = Path(__file__).parent.parent / "help.md"


@dataclass(frozen=True, slots=True)
class HelpRow:
    keys: str  # as shown, e.g. "j, ↓"
    description: str
    binding_id: str


def binding_rows(node: DOMNode, app: App[Any], *, usable_only: bool = False) -> list[HelpRow]:
    """One row per action of ``node``'s bindings, all its keys together, keymap applied.

    With ``usable_only``, an action ``node`` refuses outright (``check_action`` is False)
    is left out: the wizard's help must not offer Contacts before there is an account.
    (A screen's own keys stay listed even when idle, such as ``u`` with nothing to undo.)
    """
    bindings: BindingsMap = node._bindings.copy()
    if app._keymap:
        bindings.apply_keymap(app._keymap)
    grouped: dict[str, tuple[list[str], Binding]] = {}
    for binding_list in bindings.key_to_bindings.values():
        for binding in binding_list:
            if not binding.description:
                continue
            _, action, parameters = parse_action(binding.action)
            if usable_only and node.check_action(action, parameters) is False:
                continue
            group = binding.id or binding.action
            keys, _ = grouped.setdefault(group, ([], binding))
            shown = app.get_key_display(binding)
            if shown not in keys:
                keys.append(shown)
    return [
        HelpRow(", ".join(keys), sentence(binding.description), binding.id or "")
        for keys, binding in grouped.values()
    ]


def screen_name(screen: Screen[Any]) -> str:
    """A person's name for a screen: ``InboxScreen`` → ``Inbox``."""
    name = type(screen).__name__
    return name.removesuffix("Screen") or name


class HelpScreen(ModalScreen[None]):
    """Opened with the screen underneath as ``origin``; q or Escape closes it."""

    CSS_PATH = STYLES

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape,question_mark", "close", "Close help", id="help.close"),
        Binding("j,down", "scroll(1)", "Scroll down", id="help.down"),
        Binding("k,up", "scroll(-1)", "Scroll up", id="help.up"),
    ]

    def __init__(self, origin: Screen[Any], *, title: str | None = None) -> None:
        super().__init__()
        self.origin = origin
        self.origin_title = title or screen_name(origin)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label(f"Keys — {self.origin_title}", id="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(self._keys_table(), id="help-keys")
                yield Markdown(HELP_TEXT.read_text("utf-8"), id="help-text")
            yield Label("q or Esc closes this help", id="help-hint")

    def _keys_table(self) -> Table:
        table = Table(
            box=None,
            expand=True,
            show_edge=False,
            pad_edge=False,
            header_style="bold",
            padding=(0, 2, 0, 0),
        )
        table.add_column("Key", no_wrap=True, min_width=12)
        table.add_column("Does", ratio=1)
        table.add_column(Text("Keymap id"), style="dim", no_wrap=True)
        own = binding_rows(self.origin, self.app)
        # Bindings without an id are Textual's generic ones (focus, copy): list them with
        # the app's, after what is particular to this screen.
        everywhere = [r for r in own if not r.binding_id] + binding_rows(
            self.app, self.app, usable_only=True
        )
        for row in (r for r in own if r.binding_id):
            table.add_row(Text(row.keys, style="bold"), Text(row.description), row.binding_id)
        if everywhere:
            table.add_row("", "", "")
            table.add_row(Text("Everywhere", style="italic"), "", "")
            for row in everywhere:
                table.add_row(Text(row.keys, style="bold"), Text(row.description), row.binding_id)
        return table

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, lines: int) -> None:
        self.query_one("#help-scroll", VerticalScroll).scroll_relative(y=lines, animate=False)
