"""The log while the server runs (issue 18, visibility): periodic counts between start
and stop, a level, and timestamped or JSON lines on request — never an address or IP."""

from __future__ import annotations

import json
import re
import time

from rune_proto import status
from rune_proto.envelope import Content
from rune_proto.events import Roger
from tests.server_process import RuneServerProcess, ServerFactory

from .conftest import register_user
from .wire_client import WireClient

DEADLINE = 30.0
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z rune-server: [A-Z]+: ")


def _wait_for_line(server: RuneServerProcess, text: str) -> str:
    """The first stderr line holding ``text``, waited for with a deadline."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for line in server.stderr_text().splitlines():
            if text in line:
                return line
        time.sleep(0.05)  # polling a file for a line, bounded by the deadline
    raise AssertionError(f"no {text!r} in the log:\n{server.stderr_text()}")


def test_counts_are_logged_while_the_server_runs(rune_server: ServerFactory) -> None:
    server = rune_server(stats_interval=0.2)
    alice, bob = register_user(server), register_user(server)
    with WireClient.to(server) as client:
        assert client.login(*alice, server.server_public_key).code == status.AUTHENTICATED
        assert client.send_message(*alice, bob[0], Content("s", "b")) == Roger()
    line = _wait_for_line(server, "1 messages stored")
    assert "counts: " in line and "202×1" in line and "limits hit none" in line
    log = server.stderr_text()
    assert str(alice[0]) not in log and "127.0.0.1" not in log


def test_timestamped_lines(rune_server: ServerFactory) -> None:
    server = rune_server(log_format="timestamped")
    line = _wait_for_line(server, "serving; registration")
    assert STAMP.match(line), line


def test_json_lines_and_the_level(rune_server: ServerFactory) -> None:
    server = rune_server(log_format="json", log_level="warning", send_limit=1)
    alice, bob = register_user(server), register_user(server)
    with WireClient.to(server) as client:
        assert client.login(*alice, server.server_public_key).code == status.AUTHENTICATED
        for _ in range(2):
            client.send_message(*alice, bob[0], Content("s", "b"))
    line = _wait_for_line(server, "limit reached")
    record = json.loads(line)
    assert (
        record["level"] == "warning" and record["message"] == "limit reached: messages per sender"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    server.stop()
    lines = server.stderr_text().splitlines()
    assert all(json.loads(each)["level"] != "info" for each in lines)  # the level holds
    server.start()
