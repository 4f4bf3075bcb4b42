"""The SQLite order pass, this code against an older tree, interleaved on one store.

Not a test, a measurement (docs/performance.md, "The order pass, second round"). A pass
is cheap next to the noise of a shared machine, so the two versions run in one
process, on one store, alternately: the older tree's ``compaction.py`` and
``slots.py`` (which import nothing else of Rune) are loaded as a package of their own
beside this code's, and each round times, for each side in turn (the order swapped
every round), a pass with nothing new, after 1,024 new messages to 16 mailboxes, and
after 64 new messages to 64 mailboxes. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOB = 18_846  # a STORED MESSAGE of the 16 KiB class
QUOTA = 1 << 40


def load_old(code: Path, into: Path) -> Any:
    """The older tree's order pass, importable as ``oldpass.compaction``."""
    package = into / "oldpass"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("compaction.py", "slots.py"):
        shutil.copy(code / "rune_proto" / "server" / name, package / name)
    sys.path.insert(0, str(into))
    return importlib.import_module("oldpass.compaction")


def measure(old: Any, stored: int, rounds: int, folder: Path) -> dict[str, Any]:
    from rune_proto.server.store import Database

    path = folder / "rune.db"
    Database.create(path)
    db = Database(path)
    blob = os.urandom(BLOB)
    for start in range(0, stored, 64):
        db.add_messages([(f"user{(start + k) % 1000}@x.example", blob, QUOTA) for k in range(64)])
    db.order_pass()

    def old_pass() -> None:
        progress = old.Progress()
        while not progress.done:
            old.step(db._db, progress, secrets.randbelow)
        db.order_finish(covered=True)

    sides: dict[str, Callable[[], object]] = {"old": old_pass, "new": db.order_pass}
    times: dict[str, list[float]] = {}
    for round_ in range(rounds):
        order = list(sides.items()) if round_ % 2 == 0 else list(reversed(sides.items()))
        for side, run in order:
            times.setdefault(f"{side} nothing new", []).append(_timed(run))
            for k in range(16):
                db.add_messages([(f"user{k + 16 * round_}@x.example", blob, QUOTA)] * 64)
            times.setdefault(f"{side} 1,024 new", []).append(_timed(run))
            db.add_messages(
                [(f"user{(k * 7 + round_) % 1000}@x.example", blob, QUOTA) for k in range(64)]
            )
            times.setdefault(f"{side} 64 new", []).append(_timed(run))
    db.close()
    return {"stored": stored, **{what: statistics.median(t) for what, t in times.items()}}


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-code", type=Path, required=True)
    parser.add_argument("--stored", type=int, default=11_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rune-order-ab-") as tmp:
        old = load_old(args.baseline_code, Path(tmp))
        result = measure(old, args.stored, args.rounds, Path(tmp))
    print(json.dumps(result))
    for what in ("nothing new", "1,024 new", "64 new"):
        before, after = result[f"old {what}"], result[f"new {what}"]
        print(
            f"pass, {what:>11}: baseline {before:.4f} s, "
            f"this code {after:.4f} s, {after / before:.2f}x"
        )


if __name__ == "__main__":
    main()
