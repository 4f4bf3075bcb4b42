"""rune-tui against neomutt on the same 10,000 messages, both in tmux at 120×40.

    .venv/bin/python bench/tui_bench.py [--runs 5] [--presses 50] [--workdir DIR]

The mailbox comes from bench/make_cache.py (same seed, same messages): rune-tui's
profile with real sealed blobs, and a Maildir for neomutt (installed with apt-get when
missing, as root). Both run in their own tmux server with the same environment and
TERM, and the screen is polled with ``capture-pane``. Measured per run:

* first rows: launch to the first screen showing the three newest messages' rows.
  neomutt: cold process, no header cache, ``-R``, ``-n``, newest first. rune-tui asks for
  its key file's passphrase first (it has no other way in); the bench types it with
  ``send-keys`` the moment the prompt is seen, so its figure is launch to prompt plus
  Enter to rows — everything the user waits for, including the scrypt of the key file
  and opening the cache; only the typing is left out.
* ``j``: 50 presses, each timed from sending the key until the highlighted row (found
  by its colours, ``capture-pane -e``) is the next message.
* RSS: VmRSS and VmHWM from /proc/PID/status, after the first rows and after the presses.
* with ``--baseline-code DIR``: rune-tui from an older tree as well, launched in turn
  with this checkout's in every run (the order alternating), for before/after ratios
  measured on the same machine state.
* cold start: rune-tui's first paint (its passphrase prompt) against
  bench/bare_textual.py (a Textual app with one label) on screen, launched the same way.

Both read their files from the page cache (the mailbox was just written or read);
nothing here drops caches, which would disturb everything else on the machine.
Prints a table and one PASS/SHORT line per goal; never fails on a number.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_report import background_load
from make_cache import (
    DEFAULT_COUNT,
    DEFAULT_PASSPHRASE,
    DEFAULT_SEED,
    listed_rows,
    make_profile,
    write_maildir,
)
from tmux_screen import LINES, ScreenTimeout, Style, TmuxPane, plain, styles_at
from tui_report import Program, report

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HIGHLIGHT_COLUMN = 60  # inside the subject column of both programs' rows
BUSY_SHARE = 0.10  # other programs' share of all CPUs above which figures are flagged
PROMPT_TEXT = "Unlock your key"
NEOMUTTRC = """\
set mbox_type = Maildir
set folder = "{maildir}"
set spoolfile = "{maildir}"
set sort = reverse-date
unset header_cache
unset message_cachedir
set read_only = yes
set mail_check_stats = no
"""


@dataclass(frozen=True, slots=True)
class Row:
    """What identifies a message's row on either program's screen."""

    sender: str
    subject: str

    def on(self, line: str) -> bool:
        return self.sender[:10] in line and self.subject[:20] in line


def expected_rows(count: int, seed: int) -> list[Row]:
    """The messages newest first, as make_cache builds them from the same seed."""
    return [Row(sender, subject) for sender, subject in listed_rows(count, seed)]


def ensure_program(name: str, package: str) -> str:
    """The program's path; installs its Debian package when missing and we are root."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"tui_bench: {name} is missing; install the {package} package")
    print(f"tui_bench: installing {package} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["update", "-q"], ["install", "-y", "-q", "--no-install-recommends", package]):
        subprocess.run(["apt-get", *step], env=env, stdin=subprocess.DEVNULL, check=False)
    return shutil.which(name) or sys.exit(f"tui_bench: could not install {package}")


def prepare(workdir: Path, count: int, seed: int) -> tuple[Path, Path]:
    """The rune-tui profile and the Maildir, built once per (count, seed) in ``workdir``."""
    profile, maildir = workdir / "profile", workdir / "maildir"
    stamp = workdir / "ready"
    wanted = f"{count} {seed}\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return profile, maildir
    shutil.rmtree(profile, ignore_errors=True)
    shutil.rmtree(maildir, ignore_errors=True)
    started = time.perf_counter()
    print(f"tui_bench: building {count:,} sealed messages and a Maildir …", flush=True)
    built = make_profile(profile, count=count, seed=seed, passphrase=DEFAULT_PASSPHRASE)
    write_maildir(maildir, built)
    stamp.write_text(wanted)
    print(f"tui_bench: built in {time.perf_counter() - started:.1f} s", flush=True)
    return profile, maildir


def kdf_ms(profile: Path) -> float:
    """What unlocking the key file costs (scrypt), measured in this process."""
    from rune_tui.config import Paths, load_config
    from rune_tui.service import load_identity

    paths = Paths.from_profile(profile)
    account = load_config(paths).current
    assert account is not None
    times = []
    for _ in range(3):
        started = time.perf_counter()
        load_identity(paths, account, DEFAULT_PASSPHRASE)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _environment(workdir: Path) -> dict[str, str]:
    """The same few variables for every program: nothing else leaks in from this shell."""
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


def _rows_visible(rows: list[Row]) -> Callable[[list[str]], bool]:
    def ready(lines: list[str]) -> bool:
        return all(any(row.on(line) for line in lines) for row in rows[:3])

    return ready


def find_cursor(lines: list[str], rows: list[Row]) -> tuple[int, Style, tuple[int, str]]:
    """Which message the cursor is on, its style, and its (line, text) on screen.

    The cursor's row is the one message row whose colours no other row shares (neomutt
    starts on the first unread message, rune-tui on the newest).
    """
    found: list[tuple[int, Style, int, str]] = []
    styles = styles_at(lines, HIGHLIGHT_COLUMN)
    for number, line in enumerate(lines):
        text = plain(line)
        index = next((i for i, row in enumerate(rows[:LINES]) if row.on(text)), None)
        if index is not None:
            found.append((index, styles[number], number, text))
    shown = [style for _, style, _, _ in found]
    unique = [entry for entry in found if shown.count(entry[1]) == 1]
    if len(unique) != 1:
        raise ScreenTimeout(f"cannot tell the highlighted row among {len(found)} message rows")
    index, style, number, text = unique[0]
    return index, style, (number, text)


def _cursor_on(
    target: Row, cursor: Style, before: tuple[int, str], out: list[tuple[int, str]]
) -> Callable[[list[str]], bool]:
    """A screen test: ``target``'s row is highlighted, and it is not the row seen before."""

    def moved(lines: list[str]) -> bool:
        styles = styles_at(lines, HIGHLIGHT_COLUMN)
        for number, line in enumerate(lines):
            text = plain(line)
            hit = target.on(text) and styles[number] == cursor
            if hit and (number, text) != before:
                out.append((number, text))
                return True
        return False

    return moved


def measure_presses(pane: TmuxPane, program: Program, rows: list[Row], presses: int) -> None:
    """Press ``j`` and wait until the highlight sits on the next message, ``presses`` times."""
    start, cursor, before = find_cursor(pane.screen(escapes=True), rows)
    for index in range(start + 1, start + presses + 1):
        where: list[tuple[int, str]] = []
        moved = _cursor_on(rows[index], cursor, before, where)
        sent = time.perf_counter()
        pane.press("j")
        seen = pane.wait_for(moved, f"highlight on message {index + 1}", escapes=True, timeout=10)
        program.press_ms.append((seen - sent) * 1000)
        before = where[0]


def run_neomutt(program: Program, rows: list[Row], env: dict[str, str], presses: int) -> None:
    with TmuxPane("neomutt") as pane:
        launched = pane.launch(program.command, env, ROOT)
        seen = pane.wait_for(_rows_visible(rows), "message rows")
        program.first_rows_ms.append((seen - launched) * 1000)
        memory = pane.memory_kib()
        measure_presses(pane, program, rows, presses)
        program.memory.append(memory | {f"{k}_after": v for k, v in pane.memory_kib().items()})
        pane.press("q")


def run_rune(program: Program, rows: list[Row], env: dict[str, str], presses: int) -> None:
    with TmuxPane("rune") as pane:
        launched = pane.launch(program.command, env, ROOT)
        prompt = pane.wait_for(lambda lines: any(PROMPT_TEXT in x for x in lines), "prompt")
        typing = time.perf_counter()
        pane.type_text(DEFAULT_PASSPHRASE)
        pane.press("Enter")
        seen = pane.wait_for(_rows_visible(rows), "message rows")
        program.to_prompt_ms.append((prompt - launched) * 1000)
        program.after_enter_ms.append((seen - typing) * 1000)
        program.first_rows_ms.append((prompt - launched + seen - typing) * 1000)
        memory = pane.memory_kib()
        measure_presses(pane, program, rows, presses)
        program.memory.append(memory | {f"{k}_after": v for k, v in pane.memory_kib().items()})
        pane.press("q")
        time.sleep(0.3)  # let it leave cleanly before its server is closed


def run_bare(program: Program, env: dict[str, str]) -> None:
    from bare_textual import LABEL

    with TmuxPane("bare") as pane:
        launched = pane.launch(program.command, env, ROOT)
        seen = pane.wait_for(lambda lines: any(LABEL in x for x in lines), "the label")
        program.to_prompt_ms.append((seen - launched) * 1000)
        program.memory.append(pane.memory_kib())
        pane.press("q")


def run_bare_list(program: Program, rows: list[Row], env: dict[str, str], presses: int) -> None:
    """The j floor: the same rows in a minimal Textual app, the same presses."""
    with TmuxPane("bare-list") as pane:
        pane.launch(program.command, env, ROOT)
        pane.wait_for(_rows_visible(rows), "message rows")
        measure_presses(pane, program, rows, presses)
        pane.press("q")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="launches of each program")
    parser.add_argument("--presses", type=int, default=50, help="j presses per launch")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--workdir",
        type=Path,
        help="build the mailbox here and keep it, reused while count and seed match "
        "(default: a temporary folder, removed afterwards)",
    )
    parser.add_argument(
        "--code",
        type=Path,
        help="run rune-tui from another copy of rune_tui and rune_proto (for before/after, "
        "e.g. git archive <commit> rune_tui rune_proto | tar -x -C DIR)",
    )
    parser.add_argument(
        "--baseline-code",
        type=Path,
        metavar="DIR",
        help="also run rune-tui from this copy (e.g. git archive <commit> rune_tui rune_proto "
        "| tar -x -C DIR), interleaved with this checkout's, and print before/after ratios",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or not 1 <= args.presses < args.count - LINES:
        parser.error("--runs must be >= 1 and --presses between 1 and --count")
    ensure_program("tmux", "tmux")
    neomutt_bin = ensure_program("neomutt", "neomutt")
    if args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="rune-tui-bench-") as folder:
            return run(args, neomutt_bin, Path(folder))
    args.workdir.mkdir(parents=True, exist_ok=True)
    return run(args, neomutt_bin, args.workdir)


def run(args: argparse.Namespace, neomutt_bin: str, workdir: Path) -> int:
    """Build (or reuse) the mailbox in ``workdir``, measure, and print the report."""
    profile, maildir = prepare(workdir, args.count, args.seed)
    muttrc = workdir / "neomuttrc"
    muttrc.write_text(NEOMUTTRC.format(maildir=maildir))
    rows = expected_rows(args.count, args.seed)
    env = _environment(workdir)
    python = sys.executable
    rune_tui = Path(python).with_name("rune-tui")
    rune_command = [str(rune_tui)] if rune_tui.exists() else [python, "-m", "rune_tui"]
    neomutt = Program("neomutt", [neomutt_bin, "-n", "-F", str(muttrc), "-R", "-f", str(maildir)])
    rune = Program("rune-tui", [*rune_command, "--profile", str(profile)])
    rune_env = env if args.code is None else {**env, "PYTHONPATH": str(args.code.resolve())}
    base: Program | None = None
    if args.baseline_code is not None:
        base = Program("rune-tui base", rune.command)
        base_env = {**env, "PYTHONPATH": str(args.baseline_code.resolve())}
    bare = Program("bare Textual", [python, str(BENCH / "bare_textual.py")])
    listing = [python, str(BENCH / "bare_textual.py"), "--list", str(args.count), str(args.seed)]
    bare_list = Program("bare Textual list", listing)
    kdf = kdf_ms(profile)
    load_before = background_load()  # a second of nothing of ours running
    print(f"tui_bench: background load {load_before:.0%} of {os.cpu_count()} CPUs", flush=True)
    try:
        for run in range(args.runs):
            run_neomutt(neomutt, rows, env, args.presses)
            sides = [(rune, rune_env)] if base is None else [(rune, rune_env), (base, base_env)]
            for program, program_env in sides[:: 1 if run % 2 == 0 else -1]:  # alternate
                run_rune(program, rows, program_env, args.presses)
            run_bare(bare, env)
            run_bare_list(bare_list, rows, env, args.presses)
            print(
                f"  run {run + 1}: first rows neomutt {neomutt.first_rows_ms[-1]:.0f} ms, "
                f"rune-tui {rune.first_rows_ms[-1]:.0f} ms; first paint rune-tui "
                f"{rune.to_prompt_ms[-1]:.0f} ms, bare {bare.to_prompt_ms[-1]:.0f} ms"
                + ("" if base is None else f"; base rune-tui {base.first_rows_ms[-1]:.0f} ms"),
                flush=True,
            )
    except ScreenTimeout as exc:
        print(f"tui_bench: {exc}", file=sys.stderr)
        return 1
    report(neomutt, rune, bare, bare_list, kdf, args.runs, args.count, base)
    load = background_load()
    print(f"background load {load_before:.0%} before, {load:.0%} after the runs")
    if max(load_before, load) > BUSY_SHARE:
        print(
            f"WARNING: the machine was busy (other programs used > {BUSY_SHARE:.0%} of the "
            "CPUs), so these figures are not worth quoting"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
