"""bench/tui_bench.py reads two programs' screens; these check that reading, and one
whole run against neomutt on a small mailbox.

The screen tests use text as ``tmux capture-pane -e`` writes it. The end-to-end run
needs tmux and neomutt: skipped without them, but failed when RUNE_REQUIRE_TMUX=1 or
RUNE_REQUIRE_NEOMUTT=1 (CI sets both) says the missing one must be there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# tui_bench imports its neighbours as top-level modules: take them from it, one copy.
from bench.tui_bench import Row, Style, find_cursor, plain, styles_at

ROOT = Path(__file__).resolve().parents[2]
REVERSE = Style("", True)
PLAIN = Style("", False)

ROWS = [
    Row("ada@xyz", "Train times"),
    Row("bruno@xyz", "Garden rota"),
    Row("carol@xyz", "Book club"),
]


def test_an_attribute_set_on_one_line_carries_to_the_next() -> None:
    # capture-pane writes an attribute only where it changes: neomutt's cursor row,
    # right under its reverse-video help line, starts with no escape at all.
    screen = [
        "\x1b[7mq:Quit  d:Del",
        "   1  ada@xyz         Train times",
        "\x1b[0m\x1b[39m\x1b[49m   2  bruno@xyz       Garden rota",
    ]
    assert styles_at(screen, 10) == [REVERSE, REVERSE, PLAIN]
    assert plain(screen[2]) == "   2  bruno@xyz       Garden rota"


def test_past_the_end_of_a_trimmed_line_the_last_style_holds() -> None:
    screen = ["\x1b[48;5;24m  ada@xyz  Train times", "\x1b[49m  bruno@xyz"]
    assert styles_at(screen, 60) == [Style("48;5;24", False), PLAIN]


def test_wide_characters_take_two_columns() -> None:
    line = "✉✉\x1b[7mab"  # ✉ is one cell; 中 two
    assert styles_at([line], 2) == [REVERSE]
    assert styles_at(["中\x1b[7mx"], 1) == [PLAIN]
    assert styles_at(["中\x1b[7mx"], 2) == [REVERSE]


def test_the_cursor_is_the_one_row_whose_colours_no_other_row_shares() -> None:
    screen = [
        "\x1b[7mq:Quit",  # reverse, but not a message row
        "\x1b[0m   1  ada@xyz    Train times",
        "\x1b[7m   2  bruno@xyz  Garden rota",
        "\x1b[0m   3  carol@xyz  Book club",
    ]
    index, style, (line, text) = find_cursor(screen, ROWS)
    assert (index, style, line) == (1, REVERSE, 2)
    assert "Garden rota" in text


def test_no_unique_row_is_an_error_not_a_guess() -> None:
    screen = ["   1  ada@xyz    Train times", "   2  bruno@xyz  Garden rota"]
    with pytest.raises(RuntimeError, match="cannot tell the highlighted row"):
        find_cursor(screen, ROWS)


def _tools_or_skip() -> None:
    missing = [name for name in ("tmux", "neomutt") if shutil.which(name) is None]
    required = [n for n in missing if os.environ.get(f"RUNE_REQUIRE_{n.upper()}") == "1"]
    if required:
        names = ", ".join(required)
        pytest.fail(f"{names} required (RUNE_REQUIRE_{required[0].upper()}=1) but missing")
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


@pytest.mark.slow
def test_a_small_run_prints_a_table_and_one_line_per_goal(tmp_path: Path) -> None:
    _tools_or_skip()
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES", "TMUX"}}
    small = ["--count", "120", "--runs", "1", "--presses", "5", "--workdir", str(tmp_path)]
    before = _running("neomutt")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tui_bench.py"), *small],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert "| neomutt |" in out and "| rune-tui |" in out
    goals = [line for line in out.splitlines() if line.startswith(("PASS", "SHORT"))]
    assert len(goals) == 4, out  # first rows, j, cold start, RSS (issue 17's goals)
    assert any("first rows" in g for g in goals) and any("j median" in g for g in goals)
    assert any("RSS after first rows" in g for g in goals), out
    assert _running("neomutt") <= before, "the benchmark left neomutt running"


def _running(program: str) -> set[int]:
    """Pids of running (not zombie) processes named ``program``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, state = stat.read_text().split(" (", 1)[1].rsplit(") ", 1)
        except (OSError, ValueError):
            continue
        if name == program and not state.startswith("Z"):
            found.add(int(stat.parent.name))
    return found
