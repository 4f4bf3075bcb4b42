"""A real ``rune-server`` process on 127.0.0.1, for tests of the server and the client.

``rune_server(registration="free", nofile=None, database=None, **config)`` runs
``rune-server init`` into a fresh directory (with a passphrase file; ``database``, a
``postgresql://`` URL, puts the store there), applies config overrides, then
``serve --port 0`` as a subprocess (with RLIMIT_NOFILE set to ``nofile`` if given),
and waits (bounded) for its ready line. At teardown it stops the process with SIGTERM
and fails the test if the server did not exit 0 or wrote a traceback to stderr: a
traceback in the server is always a bug.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from rune_proto.keys import PublicKey
from rune_proto.server.config import DataDir, load_config, write_config
from rune_proto.server.datadir import read_fingerprints

HOST = "127.0.0.1"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
# Tests of other things register many accounts and send many messages from one
# loopback address: the abuse limits (on by default) are off unless a test sets them,
# and the disk reserve is small (rune_proto/server/limits.py, diskspace.py).
TEST_DEFAULTS: dict[str, Any] = {
    "register_limit": 0,
    "send_limit": 0,
    "inflow_limit": 0,
    "disk_reserve_mib": 1,
}
_READY = re.compile(r"rune-server listening on (\S+):(\d+)")


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """``rune-server ARGS`` in a subprocess, with captured output."""
    env = {k: v for k, v in os.environ.items() if k != "RUNE_SERVER_PASSPHRASE"}
    return subprocess.run(
        [sys.executable, "-m", "rune_proto.server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
        check=False,
    )


@dataclass
class RuneServerProcess:
    """One server: its address, fingerprints, files, and process control."""

    root: Path
    data_dir: Path
    passphrase_file: Path
    domain: str
    tls_pin: str  # sha256:<hex> of the certificate's SPKI
    server_key: str  # the server's public key token
    host: str = HOST
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    returncodes: list[int] = field(default_factory=list)
    nofile: int | None = None  # RLIMIT_NOFILE (soft and hard) for the server process
    database_url: str | None = None  # PostgreSQL (in config.toml), or None for SQLite
    _runs: int = 0

    @property
    def server_public_key(self) -> PublicKey:
        return PublicKey.from_token(self.server_key)

    @property
    def database(self) -> Path:
        return DataDir(self.data_dir).database

    @property
    def stderr_path(self) -> Path:
        return self.root / "stderr.log"

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def start(self) -> None:
        """``serve`` on the previous port (or a free one the first time); wait until ready."""
        if self.process is not None:
            raise RuntimeError("the server is already running")
        self._runs += 1
        stdout_path = self.root / f"stdout.{self._runs}.log"
        with stdout_path.open("wb") as out, self.stderr_path.open("ab") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rune_proto.server",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                    "--passphrase-file",
                    str(self.passphrase_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=self._limit_descriptors if self.nofile is not None else None,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            match = _READY.search(stdout_path.read_text(errors="replace"))
            if match:
                self.port = int(match.group(2))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"rune-server did not become ready:\n{self.stderr_text()}")

    def _limit_descriptors(self) -> None:
        """In the child before exec: a descriptor limit the server cannot raise."""
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it; returns (and records) its exit code."""
        if self.process is None:
            raise RuntimeError("the server is not running")
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            code = -9
        self.process = None
        self.returncodes.append(code)
        return code

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
            self.process = None

    def restart(self) -> None:
        """Graceful stop, then serve again from the same directory on the same port."""
        self.stop()
        self.start()

    def invite(self, address: str, expires: str = "7d") -> str:
        """``rune-server invite``: a fresh token bound to ``address``."""
        result = run_cli("invite", "--data-dir", str(self.data_dir), address, "--expires", expires)
        if result.returncode != 0:
            raise RuntimeError(f"rune-server invite failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def config(self) -> dict[str, Any]:
        return tomllib.loads(DataDir(self.data_dir).config.read_text())


def create_server(
    root: Path,
    registration: str = "free",
    domain: str = "example",
    nofile: int | None = None,
    database: str | None = None,
    **overrides: Any,
) -> RuneServerProcess:
    """Init a data directory under ``root`` and start serving it (``nofile``: see start;
    ``database``: a PostgreSQL URL for the store, else SQLite in the data directory)."""
    root.mkdir(parents=True, exist_ok=True)
    passphrase_file = root / "passphrase"
    passphrase_file.write_text(secrets.token_urlsafe(16) + "\n")
    passphrase_file.chmod(0o600)
    data = DataDir(root / "data")
    result = run_cli(
        "init",
        "--data-dir",
        str(data.root),
        "--domain",
        domain,
        "--registration",
        registration,
        "--passphrase-file",
        str(passphrase_file),
        *(("--database", database) if database else ()),
    )
    if result.returncode != 0:
        raise RuntimeError(f"rune-server init failed: {result.stderr.strip()}")
    overrides = {**TEST_DEFAULTS, **overrides}
    if overrides:
        current = load_config(data.config)
        write_config(data.config, replace(current, **overrides))
    prints = read_fingerprints(data)
    server = RuneServerProcess(
        root=root,
        data_dir=data.root,
        passphrase_file=passphrase_file,
        domain=prints.domain,
        tls_pin=prints.tls_pin,
        server_key=prints.server_key.token(),
        nofile=nofile,
        database_url=database,
    )
    server.start()
    return server


def another_node(server: RuneServerProcess, root: Path) -> RuneServerProcess:
    """A second node of ``server`` under ``root``: its data directory copied (the same
    keys and config, so the same PostgreSQL database), serving on a port of its own.
    The caller stops it."""
    if server.database_url is None:
        raise ValueError("nodes share a PostgreSQL database; this server is on SQLite")
    data = root / "data"
    shutil.copytree(server.data_dir, data)
    node = replace(server, root=root, data_dir=data, port=0, process=None, returncodes=[])
    node._runs = 0
    node.start()
    return node


def finish_server(server: RuneServerProcess) -> list[str]:
    """Stop a server for good; the problems to fail the test with (empty if none)."""
    problems = []
    if server.process is not None:
        server.stop()
    bad = [code for code in server.returncodes if code != 0]
    if bad:
        problems.append(f"rune-server exited with {bad[0]} instead of 0 on SIGTERM")
    stderr = server.stderr_text()
    if "Traceback" in stderr:
        problems.append(f"rune-server wrote a traceback:\n{stderr}")
    return problems


ServerFactory = Callable[..., RuneServerProcess]


@contextlib.contextmanager
def server_factory(
    base: Path, new_database: Callable[[], str] | None = None
) -> Iterator[ServerFactory]:
    """``new_database``: a fresh PostgreSQL URL for each server that names none."""
    started: list[RuneServerProcess] = []

    def factory(registration: str = "free", **overrides: Any) -> RuneServerProcess:
        if new_database is not None and "database" not in overrides:
            overrides["database"] = new_database()
        server = create_server(base / f"server{len(started)}", registration, **overrides)
        started.append(server)
        return server

    problems: list[str] = []
    try:
        yield factory
    finally:
        for server in started:
            problems += finish_server(server)
    if problems:
        pytest.fail("\n".join(problems))


STORE_KINDS = ("sqlite", "postgresql")


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Runs a test once per store; with ``rune_server``, every server it starts uses it
    (PostgreSQL: the session's cluster, a fresh database per server)."""
    kind: str = request.param
    if kind == "postgresql":
        request.getfixturevalue("postgres")  # skipped (or failed in CI) without PostgreSQL
    return kind


def new_database_for(request: pytest.FixtureRequest) -> Callable[[], str] | None:
    """The fresh-database maker a test parametrised with ``store_kind`` asks for."""
    if "store_kind" not in request.fixturenames:
        return None
    if request.getfixturevalue("store_kind") != "postgresql":
        return None
    cluster = request.getfixturevalue("postgres")
    maker: Callable[[], str] = cluster.new_database
    return maker


@pytest.fixture
def rune_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServerFactory]:
    """Factory: ``rune_server(registration="free", **config_overrides)`` → a running server
    (on the test's ``store_kind`` if it has one, else SQLite)."""
    with server_factory(tmp_path_factory.mktemp("rune-server"), new_database_for(request)) as f:
        yield f


@pytest.fixture(scope="session")
def rune_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """The same factory, for servers shared by many tests (stopped at the end of the run)."""
    with server_factory(tmp_path_factory.mktemp("rune-server-shared")) as factory:
        yield factory
