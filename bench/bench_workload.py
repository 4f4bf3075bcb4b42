"""The shared workload of the server benchmark: accounts, the message, the servers.

Used by bench/server_throughput.py (the driver) and bench/server_load.py (the load
generators): both sides send the same 4 KiB of user text, account k to account
(k + 1 + j mod 63) mod 64. Also starts the two servers as their own processes and
reads their CPU time from /proc.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where rune_proto comes from: this checkout, or (for a load generator of the
# --baseline-code rows) the copy named by the driver.
CODE_ENV = "RUNE_BENCH_CODE"
sys.path.insert(0, os.environ.get(CODE_ENV, str(ROOT)))
sys.path.insert(1, str(ROOT))  # tests/postgres.py: the benchmark's private PostgreSQL

from tests.postgres import PostgresServer  # noqa: E402

BENCH_PACKAGES = ("aiosmtpd", "aiosmtplib")
HOST = "127.0.0.1"
DOMAIN = "bench.example"
PASSPHRASE = "rune bench passphrase, not a secret"
ACCOUNTS = 64
SUBJECT = "Benchmark message"
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


# --- the servers ------------------------------------------------------------------


@dataclass
class Server:
    side: str
    proc: asyncio.subprocess.Process
    port: int
    database: Path
    table: str
    extra: dict[str, str] = field(default_factory=dict)
    # On PostgreSQL: the cluster, and ``table`` names the database (its table: mailbox).
    postgres: PostgresServer | None = None

    def cpu(self) -> tuple[float, float]:
        """utime + stime in seconds: of the process and its workers (``--workers``), and
        of their main threads (the event loops)."""
        pids = [self.proc.pid, *_children(self.proc.pid)]
        return sum(_cpu(f"/proc/{pid}/stat") for pid in pids), sum(
            _cpu(f"/proc/{pid}/task/{pid}/stat") for pid in pids
        )

    def database_cpu(self) -> float:
        """The PostgreSQL cluster's CPU seconds (postmaster, backends, ended ones): a cost
        of the server's that is not in its own processes. 0 on SQLite."""
        if self.postgres is None or self.postgres.process is None:
            return 0.0
        postmaster = int((self.postgres.data / "postmaster.pid").read_text().split()[0])
        return _cpu(f"/proc/{postmaster}/stat", reaped=True) + sum(
            _cpu(f"/proc/{pid}/stat") for pid in _children(postmaster)
        )

    def stored(self) -> int:
        if self.postgres is not None:
            return int(self.postgres.psql("SELECT count(*) FROM mailbox", self.table).strip())
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


def cpu_ticks() -> tuple[int, int]:
    """All CPUs' time since boot from /proc/stat, in ticks: (total, busy)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:8]]
    return sum(values), sum(values) - values[3] - values[4]


def _cpu(stat: str, reaped: bool = False) -> float:
    """utime + stime (+ the children it reaped: cutime + cstime) in seconds; 0 if gone."""
    try:
        with open(stat) as handle:
            fields = handle.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0  # ended between listing and reading
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux: /proc/PID/task/TID/children)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


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


def _override_config(path: Path, settings: str) -> None:
    """Replace or add ``key = value`` lines (``;``-separated) in a flat config.toml."""
    wanted = dict(
        (part.split("=", 1)[0].strip(), part.strip()) for part in settings.split(";") if "=" in part
    )
    lines = [
        line
        for line in path.read_text().splitlines()
        if line.split("=", 1)[0].strip() not in wanted
    ]
    path.write_text("\n".join([*lines, *wanted.values()]) + "\n")


async def start_rune(
    workdir: Path,
    code: Path = ROOT,
    postgres: PostgresServer | None = None,
    workers: int = 1,
    side: str = "rune",
) -> Server:
    """A rune-server on SQLite, or on a fresh database of ``postgres`` with N workers."""
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
    # The abuse limits (on by default where the code has them) would stop a benchmark
    # that registers and sends from one loopback address: off, for any version.
    config = data / "config.toml"
    config.write_text(
        re.sub(r"(?m)^(register|send|inflow)_limit = \d+$", r"\1_limit = 0", config.read_text())
    )
    pin = re.search(r"tls fingerprint:\s*(sha256:[0-9a-f]+)", init.stdout)
    if pin is None:
        raise RuntimeError(f"rune-server init printed no TLS fingerprint:\n{init.stdout}")
    extra = os.environ.get("RUNE_BENCH_SERVER_CONFIG", "")  # "key = value; …", this code only
    if code != ROOT:  # the same for the --baseline-code side, when it knows the keys
        extra = os.environ.get("RUNE_BENCH_BASELINE_CONFIG", "")
    if extra:
        _override_config(data / "config.toml", extra)
    url = ""
    if postgres is not None:
        url = postgres.new_database()
        _override_config(data / "config.toml", f'database = "{url}"')
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
        *(["--workers", str(workers)] if workers != 1 else []),  # older code has no option
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,  # counts and codes only; not needed here
        cwd=code,  # its rune_proto is the one imported (see --server-code)
    )
    port = await _listening(proc, r"rune-server listening on \S+:(\d+)")
    key = (data / "identity.pub").read_text().strip()
    return Server(
        side,
        proc,
        port,
        data / "rune.db",
        url.rpartition("/")[2] if postgres is not None else "messages",
        {"tls_pin": pin.group(1), "key": key, "code": str(code)},
        postgres,
    )


async def register_accounts(server: Server) -> None:
    from rune_proto.client import connect
    from rune_proto.keys import Identity

    async def one(k: int) -> None:
        async with connect(
            HOST, server.port, tls_fingerprint=server.extra["tls_pin"], timeout=60, ephemeral=True
        ) as session:
            await session.register(address(k), Identity(identity_seed(k)))

    for start in range(0, ACCOUNTS, 8):
        await asyncio.gather(*(one(k) for k in range(start, min(ACCOUNTS, start + 8))))
