"""Server throughput: rune-server against aiosmtpd + SQLite, side by side in one run.

    python bench/server_throughput.py [--quick] [-n 2000] [--conns 1,8,64] [--json FILE]

Both servers run as their own processes on 127.0.0.1, with TLS from the first byte:

- the peer (bench/peer_smtp.py): aiosmtpd with a self-signed P-256 certificate; its
  handler stores each message with one INSERT + COMMIT in SQLite (WAL,
  ``synchronous=FULL``) before answering ``250``. Load comes from aiosmtplib clients
  (EHLO done beforehand; each message is MAIL, RCPT, DATA).
- Rune: a real ``rune-server`` (``python -m rune_proto.server init`` / ``serve --port
  0``, free registration, passphrase file); 64 accounts registered beforehand; each
  client is logged in before the clock starts and sends with the client library's
  ``Session.send`` (SEND + MESSAGE, sealing on the client).

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
replayed with the same inputs in this run. Goals, one PASS/SHORT line each: Rune's
messages/s at C = 64 at least 1.2x the peer's; Rune's p99 at C = 64 no worse than the
peer's; Rune's server CPU per message at C = 64 within 1.5x the crypto floor. This is a
measurement: it prints, and exits 0 whatever the numbers (non-zero only if it could
not run, or a server stored a different number of messages than it acknowledged).
aiosmtpd and aiosmtplib are installed into the running environment when missing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_PACKAGES = ("aiosmtpd", "aiosmtplib")
HOST = "127.0.0.1"
DOMAIN = "bench.example"
PASSPHRASE = "rune bench passphrase, not a secret"
ACCOUNTS = 64
SUBJECT = "Benchmark message"
GOAL_RATE = 1.2  # Rune's msg/s at the largest C, as a multiple of the peer's
GOAL_FLOOR = 1.5  # Rune's server CPU per message, as a multiple of the crypto floor
BUSY_WARNING = 0.25  # CPUs used by other work during a goal's runs, beyond which we warn
PHASE_TIMEOUT = 300.0  # seconds: any phase that takes longer is stopped and reported
CLK_TCK = os.sysconf("SC_CLK_TCK")
PY_SPY = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "250", "--format", "raw"]


def user_text() -> str:
    """4,096 bytes of plain ASCII user text: 64 lines of 63 characters + newline."""
    words = ("rune", "is", "not", "email", "and", "the", "same", "text", "goes", "both", "ways")
    lines = []
    for i in range(64):
        line = f"{i:02d} " + " ".join(words[(i + j) % len(words)] for j in range(len(words)))
        lines.append(line[:63].ljust(63, ".") + "\n")
    text = "".join(lines)
    assert len(text.encode()) == 4096
    return text


TEXT = user_text()


def address(k: int) -> str:
    return f"bench{k:03d}@{DOMAIN}"


def identity_seed(k: int) -> bytes:
    return hashlib.sha512(f"rune bench account {k}".encode()).digest() * 2


def receiver(k: int, j: int) -> int:
    """Message j of connection k: to another account, rotating over all of them."""
    return (k + 1 + j % (ACCOUNTS - 1)) % ACCOUNTS


def smtp_message(k: int, r: int) -> bytes:
    head = f"From: {address(k)}\r\nTo: {address(r)}\r\nSubject: {SUBJECT}\r\n\r\n"
    return (head + TEXT.replace("\n", "\r\n")).encode("ascii")


def ensure_packages(names: Sequence[str] = BENCH_PACKAGES) -> None:
    """Install bench-only packages into this environment if they are missing."""
    missing = [name for name in names if importlib.util.find_spec(name.replace("-", "_")) is None]
    if missing:
        print(f"installing {' '.join(missing)} (bench only) ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *missing,
            ],
            check=True,
        )
        importlib.invalidate_caches()


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
        self.port = spec["port"]
        self.pin = spec["tls_pin"]
        self.server_key = spec["server_key"]

    def _session(self) -> Any:
        return self._connect(
            HOST, self.port, tls_fingerprint=self.pin, server_key=self.server_key, timeout=60
        )

    async def open(self, stack: contextlib.AsyncExitStack, k: int) -> Callable[[int], Any]:
        session = await stack.enter_async_context(self._session())
        await session.login(address(k), self._identity(identity_seed(k)))

        async def send(j: int) -> None:
            await session.send(address(receiver(k, j)), SUBJECT, TEXT)

        return send

    async def one_connection(self, k: int, j: int) -> None:
        async with self._session() as session:
            await session.login(address(k), self._identity(identity_seed(k)))
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
    client = RuneClient(spec) if spec["side"] == "rune" else PeerClient(spec)
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


# --- the servers ------------------------------------------------------------------


@dataclass
class Server:
    side: str
    proc: asyncio.subprocess.Process
    port: int
    database: Path
    table: str
    extra: dict[str, str] = field(default_factory=dict)

    def cpu(self) -> tuple[float, float]:
        """utime + stime in seconds: of the whole process, and of its main thread."""
        return _cpu(f"/proc/{self.proc.pid}/stat"), _cpu(
            f"/proc/{self.proc.pid}/task/{self.proc.pid}/stat"
        )

    def stored(self) -> int:
        db = sqlite3.connect(self.database, timeout=30)
        try:
            (count,) = db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()
        finally:
            db.close()
        return int(count)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 40)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def _cpu(stat: str) -> float:
    with open(stat) as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def _listening(proc: asyncio.subprocess.Process, pattern: str) -> int:
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while line := (await proc.stdout.readline()).decode():
            if match := re.search(pattern, line):
                return int(match.group(1))
    raise RuntimeError(f"server exited ({await proc.wait()}) before listening")


async def start_peer(workdir: Path) -> Server:
    data = workdir / "peer"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "peer_smtp.py"),
        "--data-dir",
        str(data),
        "--host",
        HOST,
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    port = await _listening(proc, r"peer listening on \S+:(\d+)")
    return Server("peer", proc, port, data / "peer.db", "messages")


async def start_rune(workdir: Path, code: Path = ROOT) -> Server:
    data, secret = workdir / "rune", workdir / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    server = [sys.executable, "-m", "rune_proto.server"]
    init = subprocess.run(
        [
            *server,
            "init",
            "--data-dir",
            str(data),
            "--domain",
            DOMAIN,
            "--passphrase-file",
            str(secret),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=code,
    )
    pin = re.search(r"tls fingerprint:\s*(sha256:[0-9a-f]+)", init.stdout)
    if pin is None:
        raise RuntimeError(f"rune-server init printed no TLS fingerprint:\n{init.stdout}")
    proc = await asyncio.create_subprocess_exec(
        *server,
        "serve",
        "--data-dir",
        str(data),
        "--host",
        HOST,
        "--port",
        "0",
        "--passphrase-file",
        str(secret),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,  # counts and codes only; not needed here
        cwd=code,  # its rune_proto is the one imported (see --server-code)
    )
    port = await _listening(proc, r"rune-server listening on \S+:(\d+)")
    key = (data / "identity.pub").read_text().strip()
    return Server(
        "rune", proc, port, data / "rune.db", "messages", {"tls_pin": pin.group(1), "key": key}
    )


async def register_accounts(server: Server) -> None:
    from rune_proto.client import connect
    from rune_proto.keys import Identity

    async def one(k: int) -> None:
        async with connect(
            HOST, server.port, tls_fingerprint=server.extra["tls_pin"], timeout=60
        ) as session:
            await session.register(address(k), Identity(identity_seed(k)))

    for start in range(0, ACCOUNTS, 8):
        await asyncio.gather(*(one(k) for k in range(start, min(ACCOUNTS, start + 8))))


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
            "--worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
            cwd=ROOT,
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
            for worker in workers:
                await say(worker, "go")
            results = [await hear(worker) for worker in workers]
            after_cpu, after_all = server.cpu(), cpu_ticks()
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
            phase.other_cpu = max(0.0, busy - phase.server_cpu - phase.client_cpu)
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


# --- the crypto floor ---------------------------------------------------------------


def crypto_floor(repeats: int) -> tuple[float, list[tuple[str, float]]]:
    """Best-of CPU µs of the primitives the server runs for one message, and each one's."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from rune_proto import envelope
    from rune_proto.address import parse_address
    from rune_proto.keys import Identity, PublicKey
    from rune_proto.suite import SUITE

    sender, to = parse_address(address(0)), parse_address(address(1))
    alice, bob = Identity(identity_seed(0)), Identity(identity_seed(1))
    server = Identity(hashlib.sha512(b"rune bench server").digest() * 2)
    sealed = envelope.seal_message(sender, alice, to, bob.public, envelope.Content(SUBJECT, TEXT))
    client_message = envelope.seal_client_message(sender, alice, to, server.public, sealed)

    calls: list[tuple[str, Callable[[], object]]] = []
    ed_private = ed25519.Ed25519PrivateKey.from_private_bytes(server.private_bytes()[:32])
    real_seal, real_open = envelope.seal, envelope.open_sealed
    real_sign, real_verify, real_hashlib = Identity.sign, PublicKey.verify, envelope.hashlib

    def seal(public_key: Any, plaintext: bytes, info: bytes) -> bytes:
        calls.append(
            (
                f"HPKE seal {len(plaintext):,} B",
                lambda: SUITE.encrypt(plaintext, public_key, info=info),
            )
        )
        return real_seal(public_key, plaintext, info)

    def open_sealed(private_key: Any, ciphertext: bytes, info: bytes, **kw: Any) -> bytes:
        calls.append(
            (
                f"HPKE open {len(ciphertext):,} B",
                lambda: SUITE.decrypt(ciphertext, private_key, info=info),
            )
        )
        return real_open(private_key, ciphertext, info, **kw)

    def sign(self: Identity, message: bytes) -> bytes:
        calls.append((f"Ed25519 sign {len(message):,} B", lambda: ed_private.sign(message)))
        return real_sign(self, message)

    def verify(self: PublicKey, signature: bytes, message: bytes) -> bool:
        key = ed25519.Ed25519PublicKey.from_public_bytes(self.raw[:32])
        calls.append((f"Ed25519 verify {len(message):,} B", lambda: key.verify(signature, message)))
        return real_verify(self, signature, message)

    class Hashes:
        @staticmethod
        def sha256(data: bytes = b"") -> Any:
            calls.append((f"SHA-256 {len(data):,} B", lambda: hashlib.sha256(data).digest()))
            return hashlib.sha256(data)

    envelope.seal, envelope.open_sealed = seal, open_sealed  # type: ignore[assignment]
    Identity.sign, PublicKey.verify = sign, verify  # type: ignore[method-assign]
    envelope.hashlib = Hashes  # type: ignore[assignment]
    try:
        inner = envelope.open_client_message(server, sender, alice.public, to, client_message)
        envelope.seal_stored_message(server, to, bob.public, sender, inner)
    finally:
        envelope.seal, envelope.open_sealed = real_seal, real_open  # type: ignore[assignment]
        Identity.sign, PublicKey.verify = real_sign, real_verify  # type: ignore[method-assign]
        envelope.hashlib = real_hashlib

    def best(fn: Callable[[], object]) -> float:
        fastest = float("inf")
        for _ in range(repeats):
            start = time.thread_time()
            fn()
            fastest = min(fastest, time.thread_time() - start)
        return fastest * 1e6

    fns = [fn for _, fn in calls]

    def all_calls() -> None:
        for fn in fns:
            fn()

    all_calls()
    parts = [(name, best(fn)) for name, fn in calls]
    return best(all_calls), parts


# --- the report ---------------------------------------------------------------------


def cpu_ticks() -> tuple[int, int]:
    """All CPUs' time since boot from /proc/stat, in ticks: (total, busy)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:8]]
    return sum(values), sum(values) - values[3] - values[4]


def background_load(seconds: float = 1.0) -> float:
    """Share of all CPUs busy while nothing of ours runs (other work on the machine)."""
    total0, busy0 = cpu_ticks()
    time.sleep(seconds)
    total1, busy1 = cpu_ticks()
    return (busy1 - busy0) / max(1, total1 - total0)


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import cryptography

    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


LEGEND = """\
  server µs/msg: CPU of the server process (all threads, utime + stime) per message;
  (loop thread): the part spent on its event loop's thread; client µs/msg: CPU of the
  load generators per message; others: CPUs kept busy meanwhile by anything else."""


def table(phases: Sequence[Phase], unit: str = "msg") -> list[str]:
    count = "msgs" if unit == "msg" else "conns"
    head = (
        f"{'side':<5} {'C':>3} {count:>6} {unit + '/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server µs/' + unit:>15} {'(loop thread)':>13} {'client µs/' + unit:>15} "
        f"{'stored/acked':>13} {'others':>6}"
    )
    rows = [head, "-" * len(head)]
    for p in phases:
        errors = f"  errors: {p.errors}" if p.errors else ""
        rows.append(
            f"{p.side:<5} {p.conns:>3} {p.total:>6} {p.rate:>8.0f} {p.percentile(50):>8.2f} "
            f"{p.percentile(99):>8.2f} {p.per_item(p.server_cpu):>15.0f} "
            f"{p.per_item(p.server_main_cpu):>13.0f} {p.per_item(p.client_cpu):>15.0f} "
            f"{f'{p.stored}/{p.acked}':>13} {p.other_cpu / p.seconds if p.seconds else 0:>6.2f}"
            f"{errors}"
        )
    return rows


def verdict(ok: bool) -> str:
    return "PASS" if ok else "SHORT"


async def bench(args: argparse.Namespace) -> int:
    conns = [int(c) for c in args.conns.split(",")]
    load = background_load()
    print(f"machine: {machine()}")
    print(f"background load before the run: {load * 100:.0f}% of all CPUs", flush=True)
    if args.server_code != ROOT:
        print(f"rune-server code from {args.server_code}")
    if load > 0.25:
        print("  (other work is running: the figures below will be noisier and lower)")
    phases: list[Phase] = []
    connects: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="rune-bench-") as tmp:
        workdir = Path(tmp)
        servers = []
        try:
            peer = await start_peer(workdir)
            servers.append(peer)
            rune = await start_rune(workdir, args.server_code)
            servers.append(rune)
            await register_accounts(rune)
            print(
                f"N = {args.messages} messages of {len(TEXT):,} B of text per run, "
                f"C = {', '.join(map(str, conns))}; load generators: up to "
                f"{args.processes} processes\n",
                flush=True,
            )
            for c in conns:
                for server in (peer, rune):
                    profile = args.profile if server.side == "rune" and c == max(conns) else None
                    phase = await run_phase(
                        server, "steady", c, args.messages, args.processes, profile
                    )
                    phases.append(phase)
                    print(table([phase])[-1], flush=True)
            print()
            for server in (peer, rune):
                phase = await run_phase(
                    server, "connect", args.connect_conns, args.connections, args.processes
                )
                connects.append(phase)
                print(table([phase], "conn")[-1], flush=True)
        finally:
            for server in servers:
                await server.stop()
    floor, parts = crypto_floor(args.floor_repeats)

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
    for p in phases:
        if p.side == "rune":
            ratio = p.per_item(p.server_cpu) / floor
            print(f"  rune server CPU per message at C = {p.conns:>2}: {ratio:.2f}x the floor")

    top = max(conns)
    peer_top = next(p for p in phases if p.side == "peer" and p.conns == top)
    rune_top = next(p for p in phases if p.side == "rune" and p.conns == top)
    rate_ratio = rune_top.rate / peer_top.rate if peer_top.rate else float("nan")
    cpu_ratio = rune_top.per_item(rune_top.server_cpu) / floor
    p99_rune, p99_peer = rune_top.percentile(99), peer_top.percentile(99)
    goals = [
        (
            f"rune msg/s at C = {top} >= {GOAL_RATE}x peer's: {rune_top.rate:.0f} vs "
            f"{peer_top.rate:.0f} = {rate_ratio:.2f}x",
            rate_ratio >= GOAL_RATE,
        ),
        (
            f"rune p99 at C = {top} <= peer's: {p99_rune:.1f} ms vs {p99_peer:.1f} ms "
            f"= {p99_rune / p99_peer:.2f}x",
            p99_rune <= p99_peer,
        ),
        (
            f"rune server CPU per message at C = {top} <= {GOAL_FLOOR}x crypto floor: "
            f"{rune_top.per_item(rune_top.server_cpu):.0f} µs vs {floor:.0f} µs = {cpu_ratio:.2f}x",
            cpu_ratio <= GOAL_FLOOR,
        ),
    ]
    print()
    for text, ok in goals:
        print(f"{verdict(ok):<5}  {text}")
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
                    "goals": [[t, verdict(ok)] for t, ok in goals],
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if mismatched else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rune-server vs aiosmtpd + SQLite")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
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
        help="run rune-server from the rune_proto in this directory (for before/after "
        "comparisons, e.g. an unpacked `git archive`); default: this checkout",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the rune server during the largest C (raw collapsed stacks)",
    )
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(worker_main())
        return 0
    if args.quick:
        args.messages, args.connections, args.floor_repeats = 300, 48, 50
    ensure_packages()
    if args.profile and not Path(PY_SPY[0]).exists():
        ensure_packages(["py-spy"])
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
