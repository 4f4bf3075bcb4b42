"""What rune-tui loads before its first rows: kept lean on purpose (docs/performance.md).

The inbox imports the screens it opens (compose, reader, help, and with them TextArea
and Markdown) only when a key needs them, and ``--version`` is looked up only when asked.
A new top-level import that undoes this fails here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from rune_tui import cli

LATER = (
    "rune_tui.screens.compose",
    "rune_tui.screens.reader",
    "rune_tui.screens.help",
    "textual.widgets._text_area",
    "textual.widgets._markdown",
)


def test_the_inbox_leaves_the_screens_it_opens_for_later() -> None:
    code = (
        "import sys, rune_tui.app, rune_tui.screens.inbox, rune_tui.screens.compose_drafts; "
        f"print(' '.join(m for m in {LATER!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_options_are_parsed_without_reading_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_metadata() -> str:
        raise AssertionError("the version was looked up for an ordinary start")

    monkeypatch.setattr(cli, "version", no_metadata)
    args = cli.build_parser().parse_args(["--profile", "somewhere"])
    assert str(args.profile) == "somewhere"


def test_version_is_still_answered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("rune-tui ")
