"""Drive a terminal program in tmux and read its screen, for bench/tui_bench.py.

Each :class:`TmuxPane` runs one program in a private tmux server (its own socket, no
config file) at a fixed size. The server is started first with an idle session, so
the clock that starts at :meth:`TmuxPane.launch` does not include tmux starting up.
The screen is read with ``capture-pane`` (``-e`` keeps the colours, which is how the
highlighted row is found); every read is a process spawn, about as costly for any
program under test, so both sides of a comparison pay the same polling overhead.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

COLUMNS, LINES = 120, 40
TERM = "tmux-256color"
POLL_SECONDS = 0.002  # pause between two screen reads, so polling does not hog a CPU


class ScreenTimeout(RuntimeError):
    """What was awaited never appeared; carries the last screen for the message."""


@dataclass(frozen=True, slots=True)
class Style:
    """The part of a cell's style that marks a highlighted row."""

    background: str
    reverse: bool


def _apply_sgr(params: list[str], state: dict[str, str]) -> None:
    """Update ``state`` (keys fg, bg, reverse) with one SGR sequence's parameters."""
    i = 0
    while i < len(params):
        p = params[i] or "0"
        if p == "0":
            state.clear()
        elif p == "7":
            state["reverse"] = "1"
        elif p == "27":
            state.pop("reverse", None)
        elif p in ("38", "48") and i + 1 < len(params):
            size = 3 if params[i + 1] == "5" else 5
            value = ";".join(params[i : i + size])
            state["fg" if p == "38" else "bg"] = value
            i += size - 1
        elif p == "49":
            state.pop("bg", None)
        elif p.isdigit() and (40 <= int(p) <= 47 or 100 <= int(p) <= 107):
            state["bg"] = p
        i += 1


def cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def styles_at(lines: Sequence[str], column: int) -> list[Style]:
    """The style of the cell at ``column`` on each line of a ``capture-pane -e`` screen.

    capture-pane writes an attribute only where it changes, so a line can inherit its
    colours from the line above: the state is carried from line to line.
    """
    state: dict[str, str] = {}
    out: list[Style] = []
    for line in lines:
        seen: Style | None = None
        at, i = 0, 0
        while i < len(line):
            if line.startswith("\x1b[", i):
                end = i + 2
                while end < len(line) and not line[end].isalpha():
                    end += 1
                if end < len(line) and line[end] == "m":
                    _apply_sgr(line[i + 2 : end].split(";"), state)
                i = end + 1
                continue
            width = cells(line[i])
            if seen is None and at <= column < at + width:
                seen = Style(state.get("bg", ""), "reverse" in state)
            at += width
            i += 1
        # past the end of a trimmed line: the blanks carry the last style
        out.append(seen or Style(state.get("bg", ""), "reverse" in state))
    return out


def plain(line: str) -> str:
    """A ``capture-pane -e`` line without its escape sequences."""
    out, i = [], 0
    while i < len(line):
        if line.startswith("\x1b[", i):
            end = i + 2
            while end < len(line) and not line[end].isalpha():
                end += 1
            i = end + 1
            continue
        out.append(line[i])
        i += 1
    return "".join(out)


class TmuxPane:
    """One program in its own tmux server at COLUMNS×LINES, timed from its launch."""

    def __init__(self, name: str) -> None:
        self.socket = f"rune-bench-{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.launched_at = 0.0
        self._tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "idle", "-x", str(COLUMNS),
            "-y", str(LINES), "sleep 600",
        )  # fmt: skip
        self._tmux("set-option", "-g", "remain-on-exit", "on")  # keep a crash on screen
        self._socket_path = Path(self._tmux("display-message", "-p", "#{socket_path}").strip())

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def launch(self, command: Sequence[str], env: dict[str, str], cwd: Path) -> float:
        """Start ``command`` with exactly ``env`` (plus TERM); returns the launch time."""
        variables = {**env, "TERM": TERM}
        line = "exec env -i " + " ".join(
            [*(shlex.quote(f"{k}={v}") for k, v in variables.items()), shlex.join(command)]
        )
        size = ("-x", str(COLUMNS), "-y", str(LINES))
        self.launched_at = time.perf_counter()
        self._tmux("new-session", "-d", "-s", "app", *size, "-c", str(cwd), line)
        return self.launched_at

    def pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", "app", "#{pane_pid}").strip())

    def screen(self, *, escapes: bool = False) -> list[str]:
        args = ["capture-pane", "-p", "-t", "app", *(["-e"] if escapes else [])]
        return self._tmux(*args).split("\n")[:LINES]

    def wait_for(
        self,
        ready: Callable[[list[str]], bool],
        what: str,
        *,
        timeout: float = 30.0,
        escapes: bool = False,
    ) -> float:
        """Poll the screen until ``ready(lines)``; the time of the read that saw it."""
        deadline = time.perf_counter() + timeout
        lines: list[str] = []
        while time.perf_counter() < deadline:
            lines = self.screen(escapes=escapes)
            seen = time.perf_counter()
            if ready(lines):
                return seen
            time.sleep(POLL_SECONDS)
        shown = "\n".join(plain(line) for line in lines).rstrip()
        raise ScreenTimeout(f"no {what} after {timeout:.0f} s; the screen was:\n{shown}")

    def type_text(self, text: str) -> None:
        self._tmux("send-keys", "-t", "app", "-l", text)

    def press(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "app", *keys)

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM of the program (the pane's process, which ``exec`` made it)."""
        fields: dict[str, int] = {}
        for row in Path(f"/proc/{self.pid()}/status").read_text().splitlines():
            key, _, value = row.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
        return fields

    def close(self) -> None:
        """Stop the tmux server and the program in it.

        A program that ignores the hang-up would outlive its tmux server and skew the
        next launch, so it is also stopped by its pid (killed if still there after 2 s).
        """
        try:
            program: int | None = self.pid()
        except (RuntimeError, ValueError):
            program = None  # no session: nothing was launched, or it already ended
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
        self._socket_path.unlink(missing_ok=True)  # kill-server leaves the socket file behind
        if program is not None:
            _stop(program)

    def __enter__(self) -> TmuxPane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop(pid: int, grace: float = 2.0) -> None:
    """SIGTERM ``pid``, then SIGKILL if it is still there after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
