"""How fast rune-tui opens a big local cache: the Mailbox alone, and the inbox on screen.

    .venv/bin/python bench/make_cache.py /tmp/rune-10k          # once (about 20 s)
    .venv/bin/python bench/cache_open.py /tmp/rune-10k [--runs 5]

Each measurement runs in a fresh Python process (so imports and the page cache are as
they would be for a second launch) and prints its figures:

* ``open``: ``Mailbox(...)`` on the cache, offline (read, open and parse the sealed index,
  build the rows), then ``ordered()`` and ``unread_count()`` as the inbox calls them, and
  the first body opened (what the preview needs); the process's RSS after.
* ``paint``: from before ``import textual`` to the InboxScreen showing its first rows under
  Textual's headless Pilot (120×40), the Mailbox made inside the app as the real app
  does; then 50 presses of ``j``: the wall time of each ``pilot.press`` (mostly Pilot's
  own waiting for idle, the same ~85 ms for an in-memory mailbox) and, closer to what the
  user feels, the CPU time the app spent on each press (moving, drawing, the preview's
  body decrypted on demand).
* ``bare``: a Textual app with one label, timed like ``paint``: the floor to compare with.

The key is read from the profile's key file before any timing starts (scrypt is not
what is measured here). These are figures to compare, not tests: nothing fails on them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

START = time.perf_counter()


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _account(profile: Path, passphrase: str) -> tuple[Any, Any, Any]:
    from rune_tui.config import Paths, load_config
    from rune_tui.service import unlock

    paths = Paths.from_profile(profile)
    account = load_config(paths).current
    assert account is not None, f"{profile} has no account"
    unlocked = unlock(paths, account, passphrase)  # config.toml holds the address sealed
    return paths, unlocked.account, unlocked.identity


def child_open(profile: Path, passphrase: str) -> dict[str, float]:
    from rune_tui.service import Mailbox

    paths, account, identity = _account(profile, passphrase)
    base = rss_mib()
    t0 = time.perf_counter()
    mailbox = Mailbox(paths, account, identity)
    t1 = time.perf_counter()
    rows = mailbox.ordered()
    unread = mailbox.unread_count()
    t2 = time.perf_counter()
    body = rows[0].body
    t3 = time.perf_counter()
    assert body and not mailbox.cache.rebuilt and mailbox.cache.error is None
    return {
        "messages": len(rows),
        "unread": unread,
        "open_ms": (t1 - t0) * 1000,
        "ordered_ms": (t2 - t1) * 1000,
        "first_body_ms": (t3 - t2) * 1000,
        "rss_mib": rss_mib(),
        "rss_growth_mib": rss_mib() - base,
        "index_kib": mailbox.cache.index_path.stat().st_size / 1024,
    }


def child_paint(profile: Path, passphrase: str) -> dict[str, float]:
    import asyncio

    paths, account, identity = _account(profile, passphrase)
    before_imports = time.perf_counter()

    from textual.app import App

    from rune_tui.components.message_list import MessageList
    from rune_tui.config import Settings
    from rune_tui.screens.inbox import InboxScreen
    from rune_tui.service import Mailbox

    imported = time.perf_counter()
    opening: list[float] = []

    class Host(App[None]):
        def on_mount(self) -> None:
            started = time.perf_counter()
            mailbox = Mailbox(paths, account, identity)
            opening.append(time.perf_counter() - started)
            self.push_screen(InboxScreen(mailbox, Settings()))

    async def run() -> dict[str, float]:
        app = Host()
        async with app.run_test(size=(120, 40)) as pilot:
            while not (
                isinstance(app.screen, InboxScreen)
                and app.screen.query(MessageList)
                and app.screen.query_one(MessageList).row_count
            ):
                await asyncio.sleep(0.001)
            await pilot.pause()  # the frame with the rows is rendered
            painted = time.perf_counter()
            listing = app.screen.query_one(MessageList)
            presses, cpu = [], []
            for _ in range(50):
                t, c = time.perf_counter(), time.process_time()
                await pilot.press("j")
                presses.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
            assert listing.cursor == 50
            rss = rss_mib()
        return {
            "imports_ms": (imported - before_imports) * 1000,
            "mailbox_ms": opening[0] * 1000,
            "first_paint_ms": (painted - before_imports) * 1000,
            "j_pilot_median_ms": statistics.median(presses),
            "j_cpu_median_ms": statistics.median(cpu),
            "j_cpu_max_ms": max(cpu),
            "rss_mib": rss,
        }

    result = asyncio.run(run())
    return result


def child_bare(profile: Path, passphrase: str) -> dict[str, float]:
    """The floor: a Textual app showing one label, timed the same way."""
    import asyncio

    before_imports = time.perf_counter()
    from textual.app import App, ComposeResult
    from textual.widgets import Label

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Label("one label")

    async def run() -> dict[str, float]:
        app = Bare()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            painted = time.perf_counter()
            rss = rss_mib()
        return {"first_paint_ms": (painted - before_imports) * 1000, "rss_mib": rss}

    return asyncio.run(run())


CHILDREN = {"open": child_open, "paint": child_paint, "bare": child_bare}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--passphrase", default="bench")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.profile, args.passphrase)))
        return 0
    for kind in CHILDREN:
        results = []
        for _ in range(args.runs):
            command = [sys.executable, __file__, str(args.profile), "--child", kind]
            out = subprocess.run(
                [*command, "--passphrase", args.passphrase],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                print(f"{kind} failed:\n{out.stderr}", file=sys.stderr)
                return 1
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        keys = results[0].keys()
        medians = {k: statistics.median(r[k] for r in results) for k in keys}
        line = ", ".join(f"{k} {v:,.1f}" for k, v in medians.items())
        print(f"{kind} (median of {args.runs}): {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
