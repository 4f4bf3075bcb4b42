"""How fast Sent opens and grows with 10,000 sent messages (figures, not tests).

    .venv/bin/python bench/sent_open.py [--count 10000] [--runs 7]

Writes ``count`` sealed sent messages (bodies of 200 B to 8 KiB, a fifth of them
replies, one small kept attachment in ten) into a temporary profile, then, each run in a
fresh process: opening the Sent rows (read, open and parse the sealed index, build the
rows), ordering them, opening one message, and threading them in the conversations view
with half as many received rows, each an answer to a sent one. Last, the time of one
more send's copy (its message file and the rewritten index, both fsynced) on top of the
``count``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rune_proto.address import parse_address
from rune_proto.client import ReceivedMessage
from rune_proto.client.vault import Vault
from rune_proto.envelope import Attachment
from rune_proto.keys import Identity
from rune_tui.sent import OWN, SentStore, _pack_files

ACCOUNT = parse_address("alice@bench")


def build(root: Path, count: int) -> None:
    """``count`` sent messages, written the way SentStore.record writes them, index once."""
    identity = Identity.generate()
    (root / "key").write_bytes(identity.private_bytes())
    store = SentStore(root, ACCOUNT, Vault(identity))
    store._rows = {}
    rng = random.Random(16)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    peers = [parse_address(f"peer{i}@bench") for i in range(60)]
    for index in range(count):
        body = "word " * rng.randint(40, 1600)
        files = (Attachment("notes.txt", b"x" * 2000),) if index % 10 == 0 else ()
        message_id = f"{index:032x}"
        reply = f"{rng.randrange(10**6):032x}" if index % 5 == 0 else None
        # The message file record() writes, without rewriting the index each time.
        when = start + timedelta(minutes=index)
        listed = [[a.filename, len(a.data)] for a in files]
        to = str(peers[index % 60])
        row = [message_id, to, f"Subject {index}", reply, when.timestamp(), listed, 1, len(body)]
        message = store._from_row(row, {})
        assert message is not None
        doc = {"row": row, "body": body}
        if files:
            where, context = store._files_path(message_id), store._files_context(message_id)
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_bytes(store.vault.seal(_pack_files(files), context))
        path = store._path(message_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.vault.seal(json.dumps(doc).encode(), store._message_context))
        store._rows[message.id] = message
    store._write_index(store._rows)


def measure(root: Path) -> dict[str, float]:
    from rune_tui.threads import conversations

    identity = Identity((root / "key").read_bytes())
    vault = Vault(identity)
    started = time.perf_counter()
    store = SentStore(root, ACCOUNT, vault)
    rows = store.rows
    opened = time.perf_counter()
    ordered = store.ordered()
    sorted_at = time.perf_counter()
    store.message(ordered[0].id)
    first = time.perf_counter()
    received = [
        ReceivedMessage(
            id=f"r{i}", size=1, sender=ordered[i].to, received_at=ordered[i].sent_at,
            message_id=f"{i:032x}-r", in_reply_to=ordered[i].message_id, verification=OWN,
        )
        for i in range(0, len(rows), 2)
    ]  # fmt: skip
    threaded_start = time.perf_counter()
    conversations(received, rows.values(), lambda m: not m.id.startswith("sent:"))
    threaded = time.perf_counter()
    return {
        "rows": len(rows),
        "open_ms": (opened - started) * 1000,
        "ordered_ms": (sorted_at - opened) * 1000,
        "first_body_ms": (first - sorted_at) * 1000,
        "conversations_ms": (threaded - threaded_start) * 1000,
        "index_bytes": (store.index_path.stat().st_size),
    }


def one_more_send(root: Path) -> float:
    identity = Identity((root / "key").read_bytes())
    store = SentStore(root, ACCOUNT, Vault(identity))
    _ = store.rows
    started = time.perf_counter()
    store.record(message_id="f" * 32, to=parse_address("bob@bench"), subject="One more",
                 body="word " * 400)  # fmt: skip
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--measure", type=Path)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    with tempfile.TemporaryDirectory(prefix="rune-sent-bench-") as tmp:
        root = Path(tmp)
        build(root, args.count)
        results = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(root)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            results.append(json.loads(out.stdout))
        for key in results[0]:
            print(f"{key}: {statistics.median(r[key] for r in results):.1f}")
        print(f"one more send's copy (ms): {one_more_send(root):.1f}")


if __name__ == "__main__":
    main()
