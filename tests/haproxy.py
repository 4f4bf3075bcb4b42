"""HAProxy in front of rune-server nodes, started from the documented config.

``docs/deploy/haproxy.cfg`` is what an operator copies; the tests run that very file,
changing only what must differ on a test machine: the front address, the nodes'
addresses (all ``127.0.0.1:PORT``, in order) and the stats socket's path. Any other
drift between the docs and what is tested is impossible by construction.

Debian's ``haproxy`` package (2.6 here) provides the program; a missing one skips the
tests unless ``RUNE_REQUIRE_HAPROXY=1`` (CI), which makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST = "127.0.0.1"
DOCUMENTED_CONFIG = Path(__file__).resolve().parent.parent / "docs" / "deploy" / "haproxy.cfg"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
STATE_TIMEOUT = 30.0  # a node marked up or down: two checks a second apart, on a busy machine

_BIND = re.compile(r"^(\s*bind\s+)127\.0\.0\.1:\d+", re.MULTILINE)
_SERVER = re.compile(r"^(\s*server\s+(\S+)\s+)127\.0\.0\.1:\d+", re.MULTILINE)
_SOCKET = re.compile(r"^(\s*stats socket\s+)(\S+)", re.MULTILINE)


def binary() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )


def skip_or_fail(reason: str) -> None:
    if os.environ.get("RUNE_REQUIRE_HAPROXY") == "1":
        pytest.fail(f"{reason} (RUNE_REQUIRE_HAPROXY=1, so this is an error, not a skip)")
    pytest.skip(f"{reason}; install it with: apt-get install haproxy")


def render(template: str, front: int, nodes: Sequence[int], stats_socket: Path) -> str:
    """The documented config with this run's ports and socket; fails if the docs changed
    shape (one ``bind``, one ``server`` line per node, one stats socket)."""
    text, binds = _BIND.subn(rf"\g<1>{HOST}:{front}", template)
    servers = _SERVER.findall(text)
    if binds != 1 or len(servers) != len(nodes):
        raise ValueError(
            f"{DOCUMENTED_CONFIG} should have 1 bind and {len(nodes)} server lines,"
            f" has {binds} and {len(servers)}"
        )
    ports = iter(nodes)
    text = _SERVER.sub(lambda m: f"{m.group(1)}{HOST}:{next(ports)}", text)
    text, sockets = _SOCKET.subn(rf"\g<1>{stats_socket}", text)
    if sockets != 1:
        raise ValueError(f"{DOCUMENTED_CONFIG} should have one stats socket line")
    return text


def server_names(template: str) -> list[str]:
    return [name for _, name in _SERVER.findall(template)]


@dataclass
class HAProxy:
    """A running HAProxy: the one address clients use, and its view of the nodes."""

    root: Path
    port: int
    nodes: list[str]  # server names, in the config's order
    process: subprocess.Popen[bytes]

    @property
    def stats_socket(self) -> Path:
        return self.root / "stats.sock"

    def log_text(self) -> str:
        return (self.root / "haproxy.log").read_text(errors="replace")

    def states(self) -> dict[str, str]:
        """Each node's status as HAProxy sees it (``UP``, ``DOWN``, ``UP 1/2``…)."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(str(self.stats_socket))
            conn.sendall(b"show stat\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        name, status = header.index("svname"), header.index("status")
        states = {}
        for line in lines[1:]:
            fields = line.split(",")
            if len(fields) > status and fields[name] in self.nodes:
                states[fields[name]] = fields[status]
        return states

    def wait_for(self, expected: dict[str, str]) -> None:
        """Wait (bounded) until the named nodes have these states."""
        deadline = time.monotonic() + STATE_TIMEOUT
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.states()
            if all(states.get(node) == state for node, state in expected.items()):
                return
            time.sleep(0.1)
        raise AssertionError(f"HAProxy's nodes are {states}, not {expected}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextmanager
def haproxy(root: Path, node_ports: Sequence[int]) -> Iterator[HAProxy]:
    """Start HAProxy on a free port with the documented config in front of ``node_ports``;
    ready once it accepts connections. Stopped afterwards."""
    program = binary()
    if program is None:
        skip_or_fail("HAProxy is not installed")
        raise AssertionError("unreachable")
    root.mkdir(parents=True, exist_ok=True)
    template = DOCUMENTED_CONFIG.read_text()
    port = free_port()
    config = root / "haproxy.cfg"
    config.write_text(render(template, port, node_ports, root / "stats.sock"))
    checked = subprocess.run(
        [program, "-c", "-q", "-f", str(config)], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        raise RuntimeError(f"haproxy -c failed: {checked.stdout}{checked.stderr}")
    with (root / "haproxy.log").open("ab") as log:
        process = subprocess.Popen(
            [program, "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    proxy = HAProxy(root, port, server_names(template), process)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not proxy.stats_socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"HAProxy did not start:\n{proxy.log_text()}")
            time.sleep(0.02)
        yield proxy
    finally:
        proxy.stop()
