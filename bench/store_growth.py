"""How the store's costs move as it grows (issue 12 §3): not a test, a measurement.

Fills a store in-process (the server's own ``Database``, on the store thread's
connection) with 1,000 mailboxes, one of them holding 10,000 messages, up to each
``--sizes`` total, and at each size measures:

- LIST of the 10,000-message mailbox, per message listed (median of 7);
- first delivery after a DELETE to that mailbox (the quota check that used to re-sum
  the mailbox inside the commit): p50 and p99 of 40 delete+deliver rounds;
- the order pass (compaction.py) after those deletes, with nothing new at all, and
  after 1,024 new messages to 16 mailboxes (its cost beyond the pass with nothing new,
  per chunk placed, is the price of a new chunk: its swap and its rows' rewrite).

``--baseline-code DIR`` runs the same on the code in DIR (a checkout of an older
commit) in a subprocess, for a before/after table in one run. Blobs are 18,846
bytes, a STORED MESSAGE of the 16 KiB class; the disk needs about 20 KB a message.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BLOB = 18_846
BIG = "big@x.example"
ACCOUNTS = 1000


def measure(sizes: list[int], folder: Path) -> list[dict[str, Any]]:
    from rune_proto.server.store import Database

    path = folder / "rune.db"
    Database.create(path)
    db = Database(path)
    blob = os.urandom(BLOB)
    quota = 1 << 40
    stored = 0
    results = []
    big_ids: list[str] = []
    while len(big_ids) < 10_000:  # the big mailbox first
        big_ids += [i for i in db.add_messages([(BIG, blob, quota)] * 64) if i]
        stored += 64
    passer = getattr(db, "order_pass", None)
    for size in sizes:
        n = 0
        while stored < size:
            batch = [(f"user{(n + k) % ACCOUNTS}@x.example", blob, quota) for k in range(64)]
            db.add_messages(batch)
            stored += len(batch)
            n += 64
        pass_fill = _timed(passer) if passer else None  # shuffle everything added so far
        lists = []
        for _ in range(7):
            start = time.perf_counter()
            listed = db.list_messages(BIG)
            lists.append((time.perf_counter() - start) / len(listed) * 1e6)
        deliveries = []
        for _ in range(40):
            db.delete_message(BIG, big_ids.pop())
            start = time.perf_counter()
            (new,) = db.add_messages([(BIG, blob, quota)])
            deliveries.append((time.perf_counter() - start) * 1e3)
            assert new is not None
            big_ids.insert(0, new)
        pass_idle = _timed(passer) if passer else None  # after the deletes above
        pass_nothing = _timed(passer) if passer else None  # nothing at all changed
        if passer:
            for k in range(16):
                db.add_messages([(f"user{k}@x.example", blob, quota)] * 64)
        pass_new = _timed(passer) if passer else None
        chunks = 16 * 64 * -(-BLOB // 3840)
        qs = statistics.quantiles(deliveries, n=100)
        results.append(
            {
                "stored": stored,
                "list_us_per_message": statistics.median(lists),
                "first_delivery_p50_ms": statistics.median(deliveries),
                "first_delivery_p99_ms": qs[98],
                "pass_after_fill_s": pass_fill,
                "pass_idle_s": pass_idle,
                "pass_nothing_s": pass_nothing,
                "pass_1024_new_s": pass_new,
                "swap_us": None
                if pass_new is None or pass_nothing is None
                else (pass_new - pass_nothing) / chunks * 1e6,
                "disk_mib": sum(p.stat().st_size for p in folder.iterdir()) / 2**20,
            }
        )
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    db.close()
    return results


def _timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="11000,50000,150000")
    parser.add_argument("--baseline-code", type=Path)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="rune-growth-") as tmp:
        ours = measure(sizes, Path(tmp))
    if args.json:
        print(json.dumps(ours))
        return
    rows = {"this code": ours}
    if args.baseline_code:
        out = subprocess.run(
            [sys.executable, __file__, "--json", "--sizes", args.sizes],
            env={**os.environ, "PYTHONPATH": str(args.baseline_code)},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows["baseline"] = json.loads(out)
    for label, results in rows.items():
        print(f"\n{label}")
        first, last = results[0], results[-1]
        print(
            f"growth {first['stored']:,} → {last['stored']:,} stored: LIST µs/msg "
            f"{last['list_us_per_message'] / first['list_us_per_message']:.2f}x, first-delivery "
            f"p99 {last['first_delivery_p99_ms'] / first['first_delivery_p99_ms']:.2f}x "
            "(flat is 1.00x)"
        )
        print(
            "stored | LIST µs/msg | 1st delivery p50 / p99 ms "
            "| pass after deletes / nothing new / 1,024 new / fill s | µs a new chunk | MiB"
        )
        for r in results:
            passes = "/".join(
                "-" if r.get(k) is None else f"{r[k]:.3f}"
                for k in ("pass_idle_s", "pass_nothing_s", "pass_1024_new_s", "pass_after_fill_s")
            )
            swap = "-" if r.get("swap_us") is None else f"{r['swap_us']:.0f}"
            print(
                f"{r['stored']:>7,} | {r['list_us_per_message']:6.2f} | "
                f"{r['first_delivery_p50_ms']:6.1f} / {r['first_delivery_p99_ms']:6.1f} | "
                f"{passes} | {swap} | {r['disk_mib']:,.0f}"
            )


if __name__ == "__main__":
    main()
