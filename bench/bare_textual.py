"""Floors for rune-tui, timed by bench/tui_bench.py exactly as it times rune-tui.

    .venv/bin/python bench/bare_textual.py                 # one label: the cold-start floor
    .venv/bin/python bench/bare_textual.py --list N SEED   # rows and a highlight: the j floor

The first is a Textual app that shows one label and nothing else. The second draws the
bench mailbox's newest rows (sender, subject) in one Static, the cursor's row in reverse
video, and ``j`` moves it down: the least a Textual app can do per key, to tell what
Textual itself costs from what rune-tui adds. ``q`` quits either.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Label, Static

LABEL = "bare textual: one label"
SHOWN = 38


class BareApp(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Label(LABEL)


class BareList(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "down", "Down"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows
        self.cursor = 0

    def compose(self) -> ComposeResult:
        yield Static(id="rows", markup=False)

    def on_mount(self) -> None:
        self.draw()

    def action_down(self) -> None:
        self.cursor = min(self.cursor + 1, len(self.rows) - 1)
        self.draw()

    def draw(self) -> None:
        from rich.text import Text

        text = Text()
        top = max(0, self.cursor - SHOWN + 1)
        for index in range(top, min(top + SHOWN, len(self.rows))):
            sender, subject = self.rows[index]
            line = f" {sender[:26]:<26}  {subject[:80]:<80}\n"
            text.append(line, style="reverse" if index == self.cursor else "")
        self.query_one("#rows", Static).update(text)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--list"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from make_cache import listed_rows  # the same rows, from the same seed

        count, seed = int(argv[1]), int(argv[2])
        rows = listed_rows(count, seed)[:200]
        BareList(rows).run()
    else:
        BareApp().run()


if __name__ == "__main__":
    main(sys.argv[1:])
