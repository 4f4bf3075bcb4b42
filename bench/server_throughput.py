"""Server throughput: rune-server against aiosmtpd + SQLite, side by side in one run.

    python bench/server_throughput.py [--quick] [-n 2000] [--conns 1,8,64] [--json FILE]

Both servers run as their own processes on 127.0.0.1, with TLS from the first byte:

- the peer (bench/peer_smtp.py): aiosmtpd with a self-signed P-256 certificate; its
  handler stores each message with one INSERT + COMMIT in SQLite (WAL,
  ``synchronous=FULL``) before answering ``250``. Load comes from aiosmtplib clients
  (EHLO done beforehand; each message is MAIL, RCPT, DATA).
- Rune: a real ``rune-server`` (``python -m rune_proto.server init`` / ``serve --port
  0``, free registration, passphrase file); 64 accounts registered beforehand; each
  client is logged in before the clock starts, with every account's key pinned (as
  a client with a contact book has its correspondents'), and sends with the client
  library's ``Session.send`` (a bound SEND + MESSAGE in one round trip where the server
  offers it, docs/protocol.md §9.9; else SEND, 201, MESSAGE; sealing on the client).

Every message carries the same 4 KiB of user text. For N messages and each C in
``--conns``, C connections (spread over a few load-generator processes, so that the
clients are not held to one core by the GIL) send N/C messages each, one after the
other; message j of connection k goes to account (k + 1 + j mod 63) mod 64.
Reported per run: messages/s, p50 and p99 latency of one send, server CPU µs per
message (utime + stime of the server process from /proc/PID/stat, before and after),
load-generator CPU µs per message, and stored = acknowledged (rows counted in each
server's database before and after). Then new connections per second at C = 8: each
is connect + TLS + greeting + login + one message + quit (the peer: connect + TLS +
greeting + EHLO + MAIL/RCPT/DATA + QUIT).

The crypto floor is the CPU time of the primitive calls one message costs the server
(opening the CLIENT MESSAGE: HPKE open + Ed25519 verify; sealing the STORED MESSAGE:
SHA-256 + Ed25519 sign + HPKE seal), recorded from the real envelope functions and
replayed with the same inputs in this run; the client crypto floor likewise for the
client library's side of one send. Goals (issue 17; bench_report.server_goals), one
PASS/SHORT line each, at the largest C: Rune's server CPU per message no more than the
peer's; Rune's p99 no worse than the peer's; new connections at least 0.8x the peer's
rate; the load generators' CPU per message within 1.5x the client crypto floor. (The
first round's msg/s and floor ratios follow as INFO lines.) This is a measurement: it
prints, and exits 0 whatever the numbers (non-zero only if it could not run, or a
server stored a different number of messages than it acknowledged).
aiosmtpd and aiosmtplib are installed into the running environment when missing.

PostgreSQL rows (issue 14), when PostgreSQL's programs are installed (``--no-postgres``
leaves them out): the bench starts its own private cluster (tests/postgres.py: initdb in
a temporary directory, 127.0.0.1, fsync and synchronous_commit on) and runs two more
rune-servers on fresh databases of it: "pg" (one process) and "pg-w2" (``--workers
2``). Their server CPU sums the supervisor and every worker; the cluster's own CPU
(postmaster and backends) is its own column, db µs/msg: part of what an operator sizes
a machine for, which the SQLite rows spend inside the server process.

``--baseline-code DIR`` adds "base" rows in the same run: a second rune-server, and
its load generators' client code, from the rune_proto in DIR (say an unpacked ``git
archive``), for before/after comparisons that share the machine's state.

The pieces: bench/bench_workload.py (the accounts, the message, starting the servers),
bench/server_load.py (the load-generator processes and one measured phase),
bench/bench_report.py (the crypto floor and the tables); this module runs the phases
and judges the goals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench_report import (
    LEGEND,
    background_load,
    client_crypto_floor,
    crypto_floor,
    machine,
    server_goals,
    server_info,
    table,
    verdict,
)
from bench_workload import ROOT, TEXT, ensure_packages, register_accounts, start_peer, start_rune
from server_load import PY_SPY, Phase, run_phase

from tests.postgres import PostgresServer, bindir, postgres_cluster

BUSY_WARNING = 0.25  # CPUs used by other work during a goal's runs, beyond which we warn


async def bench(args: argparse.Namespace) -> int:
    conns = [int(c) for c in args.conns.split(",")]
    load = background_load()
    print(f"machine: {machine()}")
    print(f"background load before the run: {load * 100:.0f}% of all CPUs", flush=True)
    if args.server_code != ROOT:
        print(f"rune-server code from {args.server_code}")
    if args.baseline_code is not None:
        print(f"'base' rows: rune-server code from {args.baseline_code}")
    if load > 0.25:
        print("  (other work is running: the figures below will be noisier and lower)")
    phases: list[Phase] = []
    connects: list[Phase] = []
    with (
        tempfile.TemporaryDirectory(prefix="rune-bench-") as tmp,
        private_postgres(args.postgres) as postgres,
    ):
        workdir = Path(tmp)
        servers = []
        try:
            peer = await start_peer(workdir)
            servers.append(peer)
            rune = await start_rune(workdir, args.server_code)
            servers.append(rune)
            await register_accounts(rune)
            sides = [peer, rune]
            if args.baseline_code is not None:
                (workdir / "base").mkdir()
                base = await start_rune(workdir / "base", args.baseline_code)
                base.side = "base"
                servers.append(base)
                await register_accounts(base)
                sides.append(base)
            if postgres is not None:
                for side, workers in (("pg", 1), ("pg-w2", 2)):
                    (workdir / side).mkdir()
                    on_pg = await start_rune(
                        workdir / side, postgres=postgres, workers=workers, side=side
                    )
                    servers.append(on_pg)
                    await register_accounts(on_pg)
                    sides.append(on_pg)
            print(
                f"N = {args.messages} messages of {len(TEXT):,} B of text per run, "
                f"C = {', '.join(map(str, conns))}; load generators: up to "
                f"{args.processes} processes\n",
                flush=True,
            )
            for c in conns:
                for server in sides:
                    profile = args.profile if server.side == "rune" and c == max(conns) else None
                    phase = await run_phase(
                        server, "steady", c, args.messages, args.processes, profile
                    )
                    phases.append(phase)
                    print(table([phase])[-1], flush=True)
            print()
            for server in sides:
                phase = await run_phase(
                    server, "connect", args.connect_conns, args.connections, args.processes
                )
                connects.append(phase)
                print(table([phase], "conn")[-1], flush=True)
        finally:
            for server in servers:
                await server.stop()
    floor, parts = crypto_floor(args.floor_repeats)
    client_floor, client_parts = client_crypto_floor(args.floor_repeats)

    print("\nSteady load: messages on connections opened (and logged in) beforehand")
    print("\n".join(table(phases)))
    print(LEGEND)
    print(
        f"\nNew connections at C = {args.connect_conns}: connect + TLS + greeting + login + "
        "one message + quit (peer: + EHLO, no login)"
    )
    print("\n".join(table(connects, "conn")))
    print(
        "\nCrypto floor: the server's primitive calls for one message "
        f"(best of {args.floor_repeats})"
    )
    for name, us in parts:
        print(f"  {us:8.1f} µs  {name}")
    print(f"  {floor:8.1f} µs  all of them in a row")
    print("Client crypto floor: the client library's primitive calls for one send")
    for name, us in client_parts:
        print(f"  {us:8.1f} µs  {name}")
    print(f"  {client_floor:8.1f} µs  all of them in a row")
    for p in phases:
        if p.side != "peer":
            ratio = p.per_item(p.client_cpu) / client_floor
            print(f"  {p.side} load-generator CPU per message at C = {p.conns:>2}: {ratio:.2f}x")
    for p in phases:
        if p.side != "peer":
            ratio = p.per_item(p.server_cpu) / floor
            print(f"  {p.side} server CPU per message at C = {p.conns:>2}: {ratio:.2f}x the floor")
    compare_with_baseline(phases, connects)
    for p in phases:
        if p.database_cpu:
            print(
                f"  {p.side} at C = {p.conns:>2}: rune-server {p.per_item(p.server_cpu):.0f} µs"
                f" + PostgreSQL {p.per_item(p.database_cpu):.0f} µs per message"
            )

    goals = server_goals(phases, connects, floor, client_floor)
    print()
    for text, ok in goals:
        print(f"{verdict(ok):<5}  {text}")
    for text in server_info(phases, floor):
        print(f"INFO   {text}")
    top = max(conns)
    peer_top = next(p for p in phases if p.side == "peer" and p.conns == top)
    rune_top = next(p for p in phases if p.side == "rune" and p.conns == top)
    busy = max(p.other_cpu / p.seconds for p in (peer_top, rune_top) if p.seconds)
    if busy > BUSY_WARNING:
        print(
            f"NOTE   other work on this machine kept {busy:.2f} CPUs busy during the C = {top} "
            "runs (column 'others'): these ratios are unreliable; run again when it is idle"
        )
    mismatched = [p for p in phases + connects if p.stored != p.acked]
    for p in mismatched:
        print(
            f"ERROR  {p.side} C = {p.conns} ({p.mode}): stored {p.stored}, acknowledged {p.acked}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "background_load": round(load, 3),
                    "steady": [p.to_json() for p in phases],
                    "connect": [p.to_json() for p in connects],
                    "floor_us": round(floor, 1),
                    "floor_parts": [[n, round(us, 1)] for n, us in parts],
                    "client_floor_us": round(client_floor, 1),
                    "goals": [[t, verdict(ok)] for t, ok in goals],
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if mismatched else 0


@contextlib.contextmanager
def private_postgres(wanted: bool) -> Iterator[PostgresServer | None]:
    """A throwaway PostgreSQL for the pg rows, or None (not wanted, or not installed)."""
    if not wanted:
        yield None
        return
    programs = bindir()
    if programs is None or not (programs / "initdb").exists():
        print("PostgreSQL is not installed: no pg rows (apt-get install postgresql)")
        yield None
        return
    with postgres_cluster() as cluster:
        print(f"PostgreSQL: a private cluster from {programs} on 127.0.0.1:{cluster.port}")
        yield cluster


def compare_with_baseline(phases: Sequence[Phase], connects: Sequence[Phase]) -> None:
    """Before/after, same run: this checkout's server against the ``--baseline-code`` one."""
    for base in (p for p in phases if p.side == "base"):
        rune = next(p for p in phases if p.side == "rune" and p.conns == base.conns)
        print(
            f"  rune vs base at C = {base.conns:>2}: msg/s {rune.rate / base.rate:.2f}x, "
            f"p99 {rune.percentile(99) / base.percentile(99):.2f}x, server µs/msg "
            f"{rune.per_item(rune.server_cpu) / base.per_item(base.server_cpu):.2f}x, "
            f"client µs/msg {rune.per_item(rune.client_cpu) / base.per_item(base.client_cpu):.2f}x"
        )
    base_c = next((p for p in connects if p.side == "base"), None)
    rune_c = next((p for p in connects if p.side == "rune"), None)
    if base_c is not None and rune_c is not None and base_c.rate:
        print(
            f"  rune vs base, new connections: conn/s {rune_c.rate / base_c.rate:.2f}x, "
            f"server µs/conn "
            f"{rune_c.per_item(rune_c.server_cpu) / base_c.per_item(base_c.server_cpu):.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rune-server vs aiosmtpd + SQLite")
    parser.add_argument("-n", "--messages", type=int, default=2000, help="per run (2000)")
    parser.add_argument("--conns", default="1,8,64", help="concurrent connections (1,8,64)")
    parser.add_argument(
        "--connections", type=int, default=400, help="new connections to open (400)"
    )
    parser.add_argument("--connect-conns", type=int, default=8, help="...at once (8)")
    parser.add_argument(
        "--processes", type=int, default=2, help="load-generator processes at most (2)"
    )
    parser.add_argument("--floor-repeats", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small N")
    parser.add_argument(
        "--server-code",
        type=Path,
        default=ROOT,
        help="run rune-server, and the Rune load generators' client library, from the "
        "rune_proto in this directory (e.g. an unpacked `git archive`); default: this checkout",
    )
    parser.add_argument(
        "--baseline-code",
        type=Path,
        help="also run rune-server and its load generators from the rune_proto in this "
        "directory, as 'base' rows next to this checkout's (before/after in the same run)",
    )
    parser.add_argument(
        "--no-postgres",
        dest="postgres",
        action="store_false",
        help="leave out the PostgreSQL rows (pg, pg-w2)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the rune server during the largest C (raw collapsed stacks)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.connections, args.floor_repeats = 300, 48, 50
    ensure_packages()
    if args.profile and not Path(PY_SPY[0]).exists():
        ensure_packages(["py-spy"])
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
