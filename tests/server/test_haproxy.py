"""The documented HAProxy config (docs/deploy/haproxy.cfg) in front of real nodes.

These nodes are independent one-box servers (each its own SQLite): what is tested here
is the proxy's part, the health check and the redispatch; tests/pg/test_haproxy_nodes.py runs
the nodes of one deployment on one PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import haproxy as haproxy_module
from tests.haproxy import DOCUMENTED_CONFIG, haproxy, render, server_names
from tests.server.wire_client import WireClient, code_of
from tests.server_process import ServerFactory


def test_the_documented_config_is_filled_in_with_ports_only(tmp_path: Path) -> None:
    template = DOCUMENTED_CONFIG.read_text()
    rendered = render(template, 1000, [1001, 1002, 1003], tmp_path / "s.sock")
    assert server_names(template) == ["node1", "node2", "node3"]
    changed = [
        (old, new)
        for old, new in zip(template.splitlines(), rendered.splitlines(), strict=True)
        if old != new
    ]
    addresses = [word for _, new in changed for word in new.split() if "127.0.0.1:" in word]
    assert addresses == [f"127.0.0.1:{port}" for port in (1000, 1001, 1002, 1003)]
    assert len(changed) == 5  # bind, three servers, the stats socket
    with pytest.raises(ValueError, match="server lines"):
        render(template, 1000, [1001, 1002], tmp_path / "s.sock")


def test_a_killed_node_is_taken_out_and_connections_go_to_the_live_ones(
    rune_server: ServerFactory, tmp_path: Path
) -> None:
    nodes = [rune_server("free") for _ in range(3)]
    with haproxy(tmp_path / "haproxy", [node.port for node in nodes]) as proxy:
        proxy.wait_for({"node1": "UP", "node2": "UP", "node3": "UP"})
        nodes[1].kill()  # SIGKILL
        proxy.wait_for({"node1": "UP", "node2": "DOWN", "node3": "UP"})
        served = set()
        for _ in range(12):  # each node has its own certificate here: its pin says which
            client = WireClient("127.0.0.1", proxy.port)
            assert code_of(client.greeting) == 0
            served.add(client.tls_pin)
            client.close()
        assert served <= {nodes[0].tls_pin, nodes[2].tls_pin}
        nodes[1].start()
        proxy.wait_for({"node2": "UP"})


def test_a_missing_haproxy_skips_unless_ci_requires_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(haproxy_module, "binary", lambda: None)
    monkeypatch.delenv("RUNE_REQUIRE_HAPROXY", raising=False)
    with (
        pytest.raises(pytest.skip.Exception, match="apt-get install haproxy"),
        haproxy(tmp_path, [1, 2, 3]),
    ):
        pass
    monkeypatch.setenv("RUNE_REQUIRE_HAPROXY", "1")
    with (
        pytest.raises(pytest.fail.Exception, match="RUNE_REQUIRE_HAPROXY=1"),
        haproxy(tmp_path, [1, 2, 3]),
    ):
        pass
