"""rune-server starts on a headless box: no D-Bus keyring, no terminal UI libraries.

Importing ``keyring`` can reach for D-Bus, and Textual (with Rich) is the client's terminal
stack; neither belongs on the server's path. Every ``rune-server`` process these tests
start (init, serve with a real client registering, logging in and sending, invite,
accounts) reports the modules it had loaded when it exited, through a
``sitecustomize`` hook put on its PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rune_proto.address import parse_address
from rune_proto.client import connect
from rune_proto.keys import Identity
from tests.server_process import run_cli

# Top-level packages the server must never load: the OS keyring and its D-Bus transport,
# the terminal client and its UI stack.
FORBIDDEN = ("keyring", "secretstorage", "jeepney", "dbus", "textual", "rich", "rune_tui")
# ... and on SQLite (this test's store), the PostgreSQL driver: only a postgresql://
# database loads it (rune_proto/server/stores.py).
FORBIDDEN_ON_SQLITE = ("asyncpg",)

HOOK = """
import atexit, json, os, sys

def _report() -> None:
    folder = os.environ.get("RUNE_MODULES_REPORT")
    if folder and any(a.startswith("rune_proto.server") or "rune-server" in a for a in sys.argv):
        with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as out:
            json.dump({"argv": sys.argv[1:], "modules": sorted(sys.modules)}, out)

atexit.register(_report)
"""


@pytest.fixture
def module_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder where each rune-server process started from here leaves its module list."""
    hook, reports = tmp_path / "hook", tmp_path / "reports"
    hook.mkdir()
    reports.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    monkeypatch.setenv("PYTHONPATH", str(hook))
    monkeypatch.setenv("RUNE_MODULES_REPORT", str(reports))
    return reports


def _exercise(server: Any) -> None:
    """A real client: register, log in, send one message to itself."""

    async def session() -> None:
        identity = Identity.generate()
        async with connect(
            server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
        ) as first:
            assert first.capabilities is not None
            address = parse_address(f"headless@{first.capabilities.domain}")
            await first.register(address, identity)
        async with connect(
            server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
        ) as again:
            await again.login(address, identity)
            await again.send(address, "no terminal here", "hello")

    asyncio.run(session())


def test_rune_server_never_loads_keyring_or_textual(module_reports: Path, rune_server: Any) -> None:
    server = rune_server()  # init, then serve
    _exercise(server)
    assert server.stop() == 0
    invited = run_cli("invite", "--data-dir", str(server.data_dir), f"invited@{server.domain}")
    assert invited.returncode == 0, invited.stderr
    counted = run_cli("accounts", "count", "--data-dir", str(server.data_dir))
    assert counted.returncode == 0, counted.stderr

    reports = [json.loads(p.read_text()) for p in sorted(module_reports.glob("*.json"))]
    commands = sorted(report["argv"][0] for report in reports)
    assert commands == ["accounts", "init", "invite", "serve"], commands
    serve = next(report for report in reports if report["argv"][0] == "serve")
    assert "rune_proto.server.service" in serve["modules"]  # the hook saw a real start
    for report in reports:
        loaded = [
            m for m in report["modules"] if m.split(".")[0] in FORBIDDEN + FORBIDDEN_ON_SQLITE
        ]
        assert loaded == [], f"rune-server {report['argv'][0]} loaded {loaded}"
