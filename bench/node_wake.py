"""WAIT across nodes: how long from a 202 on one node to the 280 on another.

Starts a private PostgreSQL (tests/postgres.py) and two rune-server nodes on it with
the same keys (``export-node`` / ``init --from-node``, as docs/deploy.md does). The
receiver holds a WAIT on node 1; the sender sends on node 2 (``cross``) or on node 1
(``same``, for comparison: no PostgreSQL in the wake-up path). Each sample is the
time from ``send`` returning (the sender's 202) to ``wait`` returning True; the
receiver LISTs after each, as a client does. Prints median and p99 per path, as JSON.

    .venv/bin/python bench/node_wake.py --samples 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rune_proto.address import parse_address  # noqa: E402
from rune_proto.client import Session, connect  # noqa: E402
from rune_proto.keys import Identity  # noqa: E402
from tests.postgres import postgres_cluster  # noqa: E402
from tests.server_process import (  # noqa: E402
    RuneServerProcess,
    create_server,
    finish_server,
    run_cli,
)


def second_node(first: RuneServerProcess, root: Path) -> RuneServerProcess:
    root.mkdir(parents=True)
    bundle = root / "node.bundle"
    for args in (
        ("export-node", "--data-dir", str(first.data_dir), str(bundle)),
        ("init", "--from-node", str(bundle), "--data-dir", str(root / "data"),
         "--passphrase-file", str(first.passphrase_file)),
    ):  # fmt: skip
        result = run_cli(*args)
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
    node = RuneServerProcess(
        root=root,
        data_dir=root / "data",
        passphrase_file=first.passphrase_file,
        domain=first.domain,
        tls_pin=first.tls_pin,
        server_key=first.server_key,
    )
    node.start()
    return node


async def measure(nodes: list[RuneServerProcess], samples: int) -> dict[str, Any]:
    first = nodes[0]
    pins: dict[str, Any] = {"tls_fingerprint": first.tls_pin, "server_key": first.server_key}
    alice, bob = (parse_address(f"{n}@{first.domain}") for n in ("alice", "bob"))
    keys = {alice: Identity.generate(), bob: Identity.generate()}
    async with connect(first.host, first.port, ephemeral=True, **pins) as session:
        for address, identity in keys.items():
            await session.register(address, identity)

    async def logged_in(node: RuneServerProcess, address: Any) -> Any:
        session = connect(node.host, node.port, ephemeral=True, **pins)
        opened: Session = await session.__aenter__()
        await opened.login(address, keys[address])
        return session, opened

    results: dict[str, Any] = {}
    for path, sender_node in (("same", nodes[0]), ("cross", nodes[1])):
        receiver_cm, waiting = await logged_in(nodes[0], bob)
        sender_cm, sending = await logged_in(sender_node, alice)
        times: list[float] = []
        try:
            for n in range(samples):
                await waiting.list()
                wait = asyncio.create_task(timed_wait(waiting))
                await asyncio.sleep(0.02)  # let the WAIT reach the server first
                await sending.send(bob, f"{n}", "wake")
                sent = time.perf_counter()
                woken, at = await wait
                assert woken
                # On one node the 280 may come before the 202 is read: count that as 0.
                times.append(max(0.0, at - sent) * 1000)
        finally:
            await sender_cm.__aexit__(None, None, None)
            await receiver_cm.__aexit__(None, None, None)
        times.sort()
        results[path] = {
            "samples": len(times),
            "median_ms": round(statistics.median(times), 2),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        }
    return results


async def timed_wait(session: Session) -> tuple[bool, float]:
    woken = await session.wait(timeout=30)
    return woken, time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rune-node-wake-") as tmp, postgres_cluster() as pg:
        first = create_server(Path(tmp) / "node1", database=pg.new_database())
        nodes = [first]
        try:
            nodes.append(second_node(first, Path(tmp) / "node2"))
            print(json.dumps(asyncio.run(measure(nodes, args.samples)), indent=2))
        finally:
            for node in nodes:
                problems = finish_server(node)
                if problems:
                    print("\n".join(problems), file=sys.stderr)


if __name__ == "__main__":
    main()
