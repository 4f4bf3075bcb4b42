"""rune-server on uvloop (the default where installed) and on asyncio's own loop.

Both are real processes over real TLS on loopback: register, log in, send, list and
retrieve, and a bad command line, so the transports, TLS and the streams are each
driven on both loops. The start-up log line names the loop actually running.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from rune_proto import status
from rune_proto.envelope import Content
from rune_proto.events import Listing, ListMessages, Retrieve, Retrieved, Roger
from rune_proto.server import eventloop
from rune_proto.server.config import OperatorError, ServerConfig
from tests.server_process import RuneServerProcess, ServerFactory

from .conftest import register_user
from .wire_client import WireClient

DEADLINE = 30.0


def _serving_line(server: RuneServerProcess) -> str:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for line in server.stderr_text().splitlines():
            if "serving; registration" in line:
                return line
        time.sleep(0.05)  # polling a log file, bounded by the deadline
    raise AssertionError(f"no start-up line in the log:\n{server.stderr_text()}")


def _round_trip(server: RuneServerProcess) -> None:
    alice, bob = register_user(server), register_user(server)
    with WireClient.to(server) as client:
        assert client.login(*alice, server.server_public_key).code == status.AUTHENTICATED
        text = "x" * 40_000  # a MESSAGE line of ~60 KB: several TLS records and reads
        assert client.send_message(*alice, bob[0], Content("on this loop", text)) == Roger()
        assert client.raw(b"NOT-A-COMMAND\r\n")[0] == status.SYNTAX_ERROR
    with WireClient.to(server) as client:
        assert client.login(*bob, server.server_public_key).code == status.AUTHENTICATED
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 1
        retrieved = client.request(Retrieve(listing.entries[0][0]))
        assert isinstance(retrieved, Retrieved) and len(retrieved.blob) > 40_000


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
def test_the_server_serves_on_either_loop(rune_server: ServerFactory, choice: str) -> None:
    if choice == "uvloop":
        pytest.importorskip("uvloop")
    server = rune_server(event_loop=choice)
    assert _serving_line(server).endswith(f"event loop {choice}")
    _round_trip(server)


def test_auto_picks_uvloop_when_installed(rune_server: ServerFactory) -> None:
    pytest.importorskip("uvloop")
    server = rune_server()  # the default: event_loop = "auto"
    assert _serving_line(server).endswith("event loop uvloop")


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(OperatorError, match="event_loop is one of auto, uvloop, asyncio"):
        ServerConfig(domain="example.org", event_loop="trio")


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now fails
    assert eventloop.loop_factory("auto") == ("asyncio", None)
    with pytest.raises(eventloop.EventLoopUnavailable, match="uvloop is not installed"):
        eventloop.loop_factory("uvloop")


def test_uvloop_asked_for_but_missing_is_a_clear_exit(rune_server: ServerFactory) -> None:
    """``event_loop = "uvloop"`` without uvloop: one line and exit 2, before the
    passphrase is even read, never a traceback."""
    server = rune_server(event_loop="uvloop")
    server.stop()
    started = (
        "import sys; sys.modules['uvloop'] = None; "
        "from rune_proto.server.cli import main; sys.exit(main())"
    )
    result = subprocess.run(
        [sys.executable, "-c", started, "serve", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "uvloop is not installed" in result.stderr
    assert "Traceback" not in result.stderr
    server.start()  # the fixture's teardown expects a running server
