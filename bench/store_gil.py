"""How long a group commit waits for the GIL next to a busy event loop thread.

    python bench/store_gil.py [BATCHES]

rune-server commits on a store thread while its event loop thread runs Python without
pause under load. SQLite itself runs without the GIL, but after each call the store
thread must take the GIL back, and a busy thread hands it over only when the switch
interval runs out. This replays that: one thread spins in Python, the other commits
batches of eight 18.8 KB blobs (WAL, ``synchronous=FULL``), one INSERT per row or one
per batch, at the default 5 ms switch interval and at rune-server's (see
``SWITCH_INTERVAL`` in rune_proto/server/service.py). It prints the wall time of a
commit, p50 and p90. A measurement: it never fails on a number.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rune_proto.server.service import SWITCH_INTERVAL

BATCH = 8
BLOB = b"\x5a" * 18_800  # one stored 4 KiB message


def commit_times(path: Path, batches: int, interval: float, one_statement: bool) -> list[float]:
    """Wall seconds of each BEGIN … INSERT … COMMIT while another thread spins."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE m (id TEXT PRIMARY KEY, r TEXT, b BLOB) WITHOUT ROWID")
    stop = threading.Event()

    def spin() -> None:
        total = 0
        while not stop.is_set():
            for i in range(1000):
                total += i

    spinner = threading.Thread(target=spin)
    spinner.start()
    times = []
    try:
        for _ in range(batches):
            rows = [(str(uuid.uuid4()), "r@x.example", BLOB) for _ in range(BATCH)]
            start = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            if one_statement:
                values = ",".join(["(?, ?, ?)"] * BATCH)
                db.execute(f"INSERT INTO m VALUES {values}", [v for row in rows for v in row])
            else:
                for row in rows:
                    db.execute("INSERT INTO m VALUES (?, ?, ?)", row)
            db.execute("COMMIT")
            times.append(time.perf_counter() - start)
    finally:
        stop.set()
        spinner.join()
        db.close()
        sys.setswitchinterval(previous)
    return sorted(times)


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    print(f"{batches} commits of {BATCH} x {len(BLOB):,} B next to a spinning thread")
    with tempfile.TemporaryDirectory(prefix="rune-gil-") as tmp:
        for one_statement in (False, True):
            for interval in (0.005, SWITCH_INTERVAL):
                path = Path(tmp) / f"{one_statement}-{interval}.db"
                times = commit_times(path, batches, interval, one_statement)
                p50, p90 = times[len(times) // 2], times[len(times) * 9 // 10]
                how = "one INSERT per batch" if one_statement else "one INSERT per row  "
                print(
                    f"  {how}  switch interval {interval * 1000:3.1f} ms: "
                    f"p50 {p50 * 1000:5.1f} ms  p90 {p90 * 1000:5.1f} ms"
                )


if __name__ == "__main__":
    main()
