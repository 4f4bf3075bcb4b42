"""A private, throwaway PostgreSQL for tests: ``initdb`` in a temporary directory.

Debian's ``postgresql`` package provides the programs (``/usr/lib/postgresql/<v>/bin``).
PostgreSQL refuses to run as root, and CI runs as root, so there the cluster belongs to
an unprivileged account (``postgres`` if the package made it, else ``nobody``) and its
programs run through ``runuser``. The server listens on 127.0.0.1 only, on a free port,
with its socket in the cluster's own directory; the superuser has a random password
(SCRAM), as a real deployment would. ``fsync`` and ``synchronous_commit`` stay on: a
``202`` must mean what it says here too.

Each test that wants a store asks :meth:`PostgresServer.new_database` for a fresh,
empty database, so tests never see each other's rows.

pytest is imported only to skip or fail a test: the benchmark (bench/server_throughput.py)
starts its private cluster with this module too.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
SUPERUSER = "rune"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
APT_PACKAGES = "postgresql"


def bindir() -> Path | None:
    """The newest installed PostgreSQL's program folder, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).resolve().parent if on_path else None


def skip_or_fail(reason: str) -> None:
    """Skip where PostgreSQL is absent, unless CI demands it (then fail)."""
    import pytest  # only tests skip; the benchmark imports this module too

    if os.environ.get("RUNE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (RUNE_REQUIRE_POSTGRES=1, so this is an error, not a skip)")
    pytest.skip(f"{reason}; install it with: apt-get install {APT_PACKAGES}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _owner() -> str | None:
    """The account the cluster runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root with no unprivileged account for PostgreSQL")


@dataclass
class PostgresServer:
    """A running cluster: where it is, how to reach it, and fresh databases on demand."""

    root: Path
    bindir: Path
    port: int
    password: str
    owner: str | None
    process: subprocess.Popen[bytes] | None = None
    _databases: int = field(default=0)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@{HOST}:{self.port}/{database}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.owner, "--", *argv] if self.owner else argv

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql as the superuser; its output (tuples only, unaligned)."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn(database),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def new_database(self) -> str:
        """A fresh, empty database; its connection URL."""
        self._databases += 1
        name = f"rune_{self._databases}_{secrets.token_hex(4)}"
        self.psql(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def start(self) -> None:
        log = (self.root / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            self._as_owner(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    f"listen_addresses={HOST}",
                    "-c",
                    "fsync=on",
                    "-c",
                    "synchronous_commit=on",
                    "-c",
                    "max_connections=400",
                    "-c",
                    "shared_buffers=64MB",
                ]
            ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """A fast shutdown (SIGINT: roll back open transactions, then exit)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            # The postmaster itself, not runuser (which does not pass SIGINT on).
            pid_file = self.data / "postmaster.pid"
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            except (OSError, ValueError, IndexError):
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self.process = None


@contextmanager
def postgres_cluster() -> Iterator[PostgresServer]:
    """initdb + start; stop and delete everything afterwards."""
    programs = bindir()
    if programs is None or not (programs / "initdb").exists():
        skip_or_fail("PostgreSQL's programs (initdb, postgres) are not installed")
        raise AssertionError("unreachable")
    owner = _owner()
    if owner and shutil.which("runuser") is None:
        skip_or_fail("runuser (util-linux) is needed to run PostgreSQL as non-root")
    root = Path(tempfile.mkdtemp(prefix="rune-pg-"))
    password = secrets.token_urlsafe(18)
    server = PostgresServer(root, programs, free_port(), password, owner)
    try:
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if owner:
            entry = pwd.getpwnam(owner)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        root.chmod(0o700)
        pwfile.chmod(0o600)
        init = subprocess.run(
            server._as_owner(
                [
                    str(programs / "initdb"),
                    "-D",
                    str(server.data),
                    "-U",
                    SUPERUSER,
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-instructions",
                    "--no-sync",
                ]
            ),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip()}")
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
