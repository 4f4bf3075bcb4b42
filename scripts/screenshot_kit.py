"""The camera and the waits the screenshot scripts share (see screenshots.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from rune_tui.app import RuneApp

OUT = Path(__file__).resolve().parent.parent / "screenshots"


def progress(text: str) -> None:
    print(f"screenshots: {text}", flush=True)


# -- pictures -----------------------------------------------------------------------------


def ensure_rsvg() -> str | None:
    """rsvg-convert's path, installing librsvg2-bin if we can; None means SVG only."""
    found = shutil.which("rsvg-convert")
    if found or shutil.which("apt-get") is None:
        return found
    progress("installing librsvg2-bin for rsvg-convert")
    sudo = [] if _is_root() else ["sudo", "-n"]
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q",
                    "--no-install-recommends", "librsvg2-bin"]):  # fmt: skip
        result = subprocess.run([*sudo, *command], check=False, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            break
    return shutil.which("rsvg-convert")


def _is_root() -> bool:
    return os.geteuid() == 0


def png_ready(svg: str) -> str:
    """Textual's SVG, adjusted for librsvg: keep spaces, and use an installed font.

    Rich sizes every run of text for Fira Code and relies on ``textLength``, which
    librsvg ignores; DejaVu Sans Mono at 20.264px has exactly Rich's 12.2px cell.
    """
    svg = svg.replace("<svg ", '<svg xml:space="preserve" ', 1)
    svg = svg.replace("font-family: Fira Code, monospace;", "font-family: DejaVu Sans Mono;")
    return svg.replace("font-size: 20px;", "font-size: 20.264px;")


class Camera:
    def __init__(self, app: RuneApp, rsvg: str | None) -> None:
        self.app = app
        self.rsvg = rsvg
        self.taken: list[str] = []

    def __call__(self, name: str) -> None:
        for field in self.app.screen.query(Input):
            field.cursor_blink = False  # no half-drawn cursor in a picture
        svg = self.app.export_screenshot(title="rune-tui")
        (OUT / f"{name}.svg").write_text(svg)
        if self.rsvg is not None:
            with tempfile.NamedTemporaryFile("w", suffix=".svg") as tmp:
                tmp.write(png_ready(svg))
                tmp.flush()
                subprocess.run([self.rsvg, "-o", str(OUT / f"{name}.png"), tmp.name], check=True)
        self.taken.append(name)
        progress(f"took {name}")


async def until(pilot: Pilot[Any], ready: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def refresh_until(pilot: Pilot[Any], ready: Callable[[], object], what: str) -> None:
    """Press R (check for mail) until ``ready``: a press during a refresh is ignored."""
    deadline = time.monotonic() + 60
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await pilot.press("R")
        for _ in range(40):
            if ready():
                return
            await pilot.pause(0.05)
