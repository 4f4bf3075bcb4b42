"""The load generators of the server benchmark, and the driver that runs one phase.

A phase is C connections spread over a few worker processes (``python
bench/server_load.py``, so that the clients are not held to one core by the GIL),
started together on one clock. Each worker reads a spec line on stdin, connects (and
logs in, for steady load), says ready, runs on ``go`` and reports its latencies and
CPU time as one JSON line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_workload import (
    ACCOUNTS,
    CLK_TCK,
    CODE_ENV,
    DOMAIN,
    HOST,
    ROOT,
    SUBJECT,
    TEXT,
    Server,
    address,
    cpu_ticks,
    identity_seed,
    receiver,
    smtp_message,
)

PHASE_TIMEOUT = 300.0  # seconds: any phase that takes longer is stopped and reported
PY_SPY = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "250", "--format", "raw"]

# --- the load generator: one process runs several connections -----------------------


async def _stdin_line() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class RuneClient:
    def __init__(self, spec: dict[str, Any]) -> None:
        from rune_proto.client import connect
        from rune_proto.keys import Identity

        self._connect = connect
        self._identity = Identity
        # A --baseline-code client may predate connect(ephemeral=...), when throwaway
        # in-memory state was the silent default: ask for it only where it exists.
        takes = inspect.signature(connect).parameters
        self._state: dict[str, Any] = {"ephemeral": True} if "ephemeral" in takes else {}
        self.port = spec["port"]
        self.pin = spec["tls_pin"]
        self.server_key = spec["server_key"]
        self._pins: list[tuple[Any, Any]] = []

    def _session(self) -> Any:
        return self._connect(
            HOST,
            self.port,
            tls_fingerprint=self.pin,
            server_key=self.server_key,
            timeout=60,
            **self._state,
        )

    def _pin_everyone(self, session: Any) -> None:
        """Pin every account's key before the clock starts, as a client with a contact
        book has its correspondents pinned: a send then needs no 201 to learn the key
        (one round trip where the server offers it, docs/protocol.md §9.9)."""
        from rune_proto.address import parse_address

        if not self._pins:
            self._pins = [
                (parse_address(address(r)), self._identity(identity_seed(r)).public)
                for r in range(ACCOUNTS)
            ]
        for who, key in self._pins:
            session.contacts.check(who, key, "bench")

    async def open(self, stack: contextlib.AsyncExitStack, k: int) -> Callable[[int], Any]:
        session = await stack.enter_async_context(self._session())
        await session.login(address(k), self._identity(identity_seed(k)))
        self._pin_everyone(session)

        async def send(j: int) -> None:
            await session.send(address(receiver(k, j)), SUBJECT, TEXT)

        return send

    async def one_connection(self, k: int, j: int) -> None:
        async with self._session() as session:
            await session.login(address(k), self._identity(identity_seed(k)))
            self._pin_everyone(session)
            await session.send(address(receiver(k, j)), SUBJECT, TEXT)


class PeerClient:
    def __init__(self, spec: dict[str, Any]) -> None:
        import aiosmtplib

        self._smtp = aiosmtplib.SMTP
        self.port = spec["port"]
        # One context for all connections, like the Rune client's: no CA bundle to load
        # per connection (~30 ms each), and the self-signed certificate is accepted.
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE

    def _client(self) -> Any:
        return self._smtp(
            hostname=HOST,
            port=self.port,
            use_tls=True,
            tls_context=self._tls,
            local_hostname=DOMAIN,
            timeout=60,
        )

    async def open(self, stack: contextlib.AsyncExitStack, k: int) -> Callable[[int], Any]:
        client = self._client()
        await client.connect()
        await client.ehlo()
        stack.push_async_callback(client.quit)

        async def send(j: int) -> None:
            r = receiver(k, j)
            await client.sendmail(address(k), [address(r)], smtp_message(k, r))

        return send

    async def one_connection(self, k: int, j: int) -> None:
        client = self._client()
        await client.connect()
        r = receiver(k, j)
        await client.sendmail(address(k), [address(r)], smtp_message(k, r))
        await client.quit()


async def worker_main() -> None:
    """``--worker``: read a spec line, connect, say ready, run on ``go``, report."""
    spec = json.loads(await _stdin_line())
    client = PeerClient(spec) if spec["side"] == "peer" else RuneClient(spec)
    jobs: list[tuple[int, int]] = [tuple(job) for job in spec["jobs"]]  # (k, how many)
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()

    async def timed(call: Callable[[], Any]) -> None:
        start = time.perf_counter()
        try:
            await call()
        except Exception as exc:
            errors[type(exc).__name__] += 1
            return
        latencies.append(time.perf_counter() - start)

    async with contextlib.AsyncExitStack() as stack:
        if spec["mode"] == "steady":
            senders = await asyncio.gather(*(client.open(stack, k) for k, _ in jobs))

            async def run(index: int) -> None:
                for j in range(jobs[index][1]):
                    await timed(lambda j=j: senders[index](j))

        else:

            async def run(index: int) -> None:
                k, count = jobs[index]
                for j in range(count):
                    await timed(lambda j=j: client.one_connection(k, j))

        _emit({"ready": True})
        if await _stdin_line() != "go":
            return
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(run(i) for i in range(len(jobs))))
        t1, cpu1 = time.monotonic(), time.process_time()
        _emit(
            {
                "start": t0,
                "end": t1,
                "cpu": cpu1 - cpu0,
                "latencies": [round(x * 1e6) for x in latencies],
                "errors": dict(errors),
            }
        )
        await _stdin_line()  # "close": only then quit the connections
    _emit({"closed": True})


# --- one measured phase -------------------------------------------------------------


@dataclass
class Phase:
    side: str
    mode: str  # "steady" (messages on open connections) or "connect" (a connection each)
    conns: int
    total: int
    acked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    server_cpu: float = 0.0
    server_main_cpu: float = 0.0  # of it, the main thread's (the event loop)
    client_cpu: float = 0.0
    other_cpu: float = 0.0  # CPU seconds used meanwhile by anything else on the machine
    database_cpu: float = 0.0  # the PostgreSQL cluster's, on that store (not in server_cpu)
    stored: int = 0
    latencies_us: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile in ms (nearest rank)."""
        data = sorted(self.latencies_us)
        if not data:
            return float("nan")
        rank = max(0, min(len(data) - 1, round(p / 100 * len(data) + 0.5) - 1))
        return data[rank] / 1000

    def per_item(self, seconds: float) -> float:
        return seconds / self.acked * 1e6 if self.acked else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "mode": self.mode,
            "conns": self.conns,
            "total": self.total,
            "acked": self.acked,
            "stored": self.stored,
            "errors": self.errors,
            "seconds": round(self.seconds, 4),
            "rate": round(self.rate, 1),
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
            "server_cpu_us": round(self.per_item(self.server_cpu), 1),
            "server_loop_cpu_us": round(self.per_item(self.server_main_cpu), 1),
            "client_cpu_us": round(self.per_item(self.client_cpu), 1),
            "database_cpu_us": round(self.per_item(self.database_cpu), 1),
            "other_cpus_busy": round(self.other_cpu / self.seconds, 2) if self.seconds else 0,
        }


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def run_phase(
    server: Server,
    mode: str,
    conns: int,
    total: int,
    processes: int,
    profile: Path | None = None,
) -> Phase:
    """C connections over ``processes`` load generators; one clock for all of them."""
    processes = max(1, min(processes, conns))
    counts = split(total, conns)
    jobs = [[[k, counts[k]] for k in range(conns) if k % processes == p] for p in range(processes)]
    spec = {
        "side": server.side,
        "mode": mode,
        "port": server.port,
        "tls_pin": server.extra.get("tls_pin"),
        "server_key": server.extra.get("key"),
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
            cwd=ROOT,
            # The clients of a server run from another copy use that copy's client code.
            env={**os.environ, CODE_ENV: server.extra.get("code", str(ROOT))},
        )
        for _ in range(processes)
    ]
    phase = Phase(server.side, mode, conns, total)
    spy: subprocess.Popen[bytes] | None = None

    async def say(worker: asyncio.subprocess.Process, line: str) -> None:
        assert worker.stdin is not None
        worker.stdin.write(line.encode() + b"\n")
        await worker.stdin.drain()

    async def hear(worker: asyncio.subprocess.Process) -> dict[str, Any]:
        assert worker.stdout is not None
        line = await worker.stdout.readline()
        if not line:
            raise RuntimeError(f"a {server.side} load generator died (exit {await worker.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    try:
        async with asyncio.timeout(PHASE_TIMEOUT):
            for worker, job in zip(workers, jobs, strict=True):
                await say(worker, json.dumps({**spec, "jobs": job}))
            for worker in workers:
                await hear(worker)  # ready: connected (and logged in) where steady
            if profile is not None:
                spy = subprocess.Popen(
                    [*PY_SPY, "--pid", str(server.proc.pid), "--output", str(profile)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(1.0)  # let it attach
            before_rows, before_cpu, before_all = server.stored(), server.cpu(), cpu_ticks()
            before_db = server.database_cpu()
            for worker in workers:
                await say(worker, "go")
            results = [await hear(worker) for worker in workers]
            after_cpu, after_db, after_all = server.cpu(), server.database_cpu(), cpu_ticks()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=30)
                spy = None
            phase.stored = server.stored() - before_rows
            phase.server_cpu = after_cpu[0] - before_cpu[0]
            phase.server_main_cpu = after_cpu[1] - before_cpu[1]
            phase.seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
            phase.client_cpu = sum(r["cpu"] for r in results)
            busy = (after_all[1] - before_all[1]) / CLK_TCK
            phase.database_cpu = after_db - before_db
            phase.other_cpu = max(
                0.0, busy - phase.server_cpu - phase.client_cpu - phase.database_cpu
            )
            for r in results:
                phase.latencies_us.extend(r["latencies"])
                for name, n in r["errors"].items():
                    phase.errors[name] = phase.errors.get(name, 0) + n
            phase.acked = len(phase.latencies_us)
            for worker in workers:
                await say(worker, "close")
            for worker in workers:
                await hear(worker)
                await worker.wait()
    finally:
        if spy is not None:
            spy.kill()
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    return phase


if __name__ == "__main__":
    asyncio.run(worker_main())
