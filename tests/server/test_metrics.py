"""Prometheus metrics on their own loopback listener: off by default, aggregates only."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from rune_proto import status
from rune_proto.envelope import Content
from rune_proto.events import Roger
from rune_proto.keys import Identity
from rune_proto.server.pg.schema import SCHEMA_VERSION as PG_SCHEMA_VERSION
from rune_proto.server.store import SCHEMA_VERSION
from tests.server_process import RuneServerProcess, ServerFactory, run_cli

from .conftest import User, register_user
from .wire_client import WireClient, code_of


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(response.read().decode())


def _value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not in the metrics")


def _logged_in(server: RuneServerProcess, user: User) -> WireClient:
    client = WireClient.to(server)
    assert client.login(*user, server.server_public_key).code == status.AUTHENTICATED
    return client


@pytest.mark.usefixtures("store_kind")
def test_metrics_count_connections_replies_storage_and_limit_hits(
    rune_server: ServerFactory,
) -> None:
    port = _free_port()
    server = rune_server(metrics_port=port, send_limit=2)
    alice, bob = register_user(server), register_user(server)
    with _logged_in(server, alice) as client:
        for _ in range(2):
            assert client.send_message(*alice, bob[0], Content("s", "b")) == Roger()
        assert code_of(client.send_message(*alice, bob[0], Content("s", "b"))) == 453
    text = _scrape(port)
    assert _value(text, "rune_connections_total") >= 3
    assert _value(text, 'rune_replies_total{code="202"}') == 2
    assert _value(text, 'rune_replies_total{code="453"}') == 1
    assert _value(text, 'rune_limit_hits_total{limit="send"}') == 1
    assert _value(text, "rune_accounts") == 2
    assert _value(text, "rune_messages_stored") == 2
    assert _value(text, "rune_stored_bytes") > 0
    assert _value(text, 'rune_commit_seconds_bucket{le="+Inf"}') >= 2
    assert "# TYPE rune_commit_seconds histogram" in text
    for user in (alice, bob):  # nothing per user
        assert str(user[0]) not in text and str(user[0]).split("@")[0] not in text
    assert "127.0.0.1" not in text
    with pytest.raises(urllib.error.HTTPError) as missing:
        _scrape(port, "/other")
    assert missing.value.code == 404


def test_metrics_are_off_by_default(rune_server: ServerFactory) -> None:
    server = rune_server()
    assert server.config()["metrics_port"] == 0
    assert "metrics on" not in server.stderr_text()


@pytest.mark.usefixtures("store_kind")
def test_status_shows_the_store_the_disk_and_live_counts(rune_server: ServerFactory) -> None:
    port = _free_port()
    server = rune_server(metrics_port=port)
    alice, bob = register_user(server), register_user(server)
    with _logged_in(server, alice) as client:
        assert client.send_message(*alice, bob[0], Content("s", "b")) == Roger()
    with WireClient.to(server) as client:  # a failed login: one throttled key
        assert code_of(client.login(alice[0], Identity.generate(), server.server_public_key)) == 411
    result = run_cli("status", "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    version = PG_SCHEMA_VERSION if server.database_url else SCHEMA_VERSION
    assert f"schema version {version}" in out and "accounts 2" in out
    assert "messages stored 1" in out and "throttled keys 1" in out
    assert "live rune_connections_total" in out
    if server.database_url is None:
        assert "reserve present" in out
    else:
        assert "store: PostgreSQL" in out and "***" in out  # the URL, its password masked
        out = "\n".join(line for line in out.splitlines() if not line.startswith("store:"))
    assert str(alice[0]) not in out and "@" not in out
