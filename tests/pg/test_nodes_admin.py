"""Operator actions reach every node: the database is what nodes share, not memory.

Two ``rune-server serve`` processes on one PostgreSQL database (the data directory
copied, as a new node gets it). An ``accounts delete`` run on node 1's data
directory must end the account's sessions on node 2 too and make node 2 forget the
account's key in its SEND cache (session.py, ``receiver_key``): a SEND to the
deleted address through node 2 gets ``404``, not a ``202`` for mail nobody can read.
"""

from __future__ import annotations

import pytest

from rune_proto import status
from rune_proto.envelope import Content
from rune_proto.events import Authenticated, Roger
from tests.postgres import PostgresServer
from tests.server.conftest import register_user
from tests.server.wire_client import WireClient, code_of
from tests.server_process import ServerFactory, another_node, run_cli

DEADLINE = 15.0  # seconds: the watcher polls every admin_poll_interval (0.5 s)


def test_a_delete_on_one_node_empties_every_nodes_receiver_key_cache(
    postgres: PostgresServer, rune_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = rune_server(database=postgres.new_database())
    second = another_node(first, tmp_path_factory.mktemp("node2"))
    try:
        alice, bob = register_user(first), register_user(second)
        with (
            WireClient.to(second, timeout=DEADLINE) as sender,
            WireClient.to(second, timeout=DEADLINE) as watched,
        ):
            assert sender.login(*bob, second.server_public_key) == Authenticated(bob[0])
            assert watched.login(*alice, second.server_public_key) == Authenticated(alice[0])
            # Node 2 parses alice's key once and keeps it for the next SENDs.
            assert sender.send_message(*bob, alice[0], Content("1", "x")) == Roger()
            deleted = run_cli(
                "accounts", "delete", "--data-dir", str(first.data_dir), str(alice[0]), "--yes"
            )
            assert deleted.returncode == 0, deleted.stderr
            # Node 2's watcher saw the change: alice's session there ends ...
            assert watched.read_line() == (status.CLOSING, "account deleted")
            # ... and its cache forgot her key, in the same step.
            reply = sender.send_message(*bob, alice[0], Content("2", "y"))
            assert code_of(reply) == status.NOT_FOUND
        with WireClient.to(first) as client:  # node 1, which never cached it, agrees
            assert client.login(*bob, first.server_public_key) == Authenticated(bob[0])
            assert code_of(client.send_message(*bob, alice[0], Content("3", "z"))) == 404
    finally:
        assert second.stop() == 0
        assert "Traceback" not in second.stderr_text()
