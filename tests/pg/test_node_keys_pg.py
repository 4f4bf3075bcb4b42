"""A second node made with ``export-node`` / ``init --from-node`` on one PostgreSQL
database (issue 14): a client that pinned node 1 logs in on node 2 and reads mail
sent through node 1."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from rune_proto.address import random_address
from rune_proto.client import Session, connect
from rune_proto.keys import Identity
from tests.postgres import PostgresServer
from tests.server_process import RuneServerProcess, ServerFactory, finish_server, run_cli


def test_a_client_pinned_to_node_1_logs_in_on_node_2(
    rune_server: ServerFactory, postgres: PostgresServer, tmp_path: Path
) -> None:
    node1 = rune_server(database=postgres.new_database())
    bundle = tmp_path / "node.bundle"
    exported = run_cli("export-node", "--data-dir", str(node1.data_dir), str(bundle))
    assert exported.returncode == 0, exported.stderr
    node2_dir = tmp_path / "node2" / "data"
    made = run_cli(
        "init", "--from-node", str(bundle), "--data-dir", str(node2_dir),
        "--passphrase-file", str(node1.passphrase_file),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert node1.tls_pin in made.stdout
    assert "shared with the other nodes" in made.stdout
    assert postgres.password not in made.stdout + made.stderr
    assert not (node2_dir / "rune.db").exists()  # its store is node 1's database
    prints = run_cli("fingerprint", "--data-dir", str(node2_dir)).stdout
    assert prints == run_cli("fingerprint", "--data-dir", str(node1.data_dir)).stdout
    node2 = RuneServerProcess(
        root=tmp_path / "node2",
        data_dir=node2_dir,
        passphrase_file=node1.passphrase_file,
        domain=node1.domain,
        tls_pin=node1.tls_pin,
        server_key=node1.server_key,
    )
    node2.start()
    try:
        asyncio.run(_pinned_to_node1_on_node2(node1, node2))
    finally:
        assert finish_server(node2) == []


async def _pinned_to_node1_on_node2(node1: RuneServerProcess, node2: RuneServerProcess) -> None:
    alice, bob = random_address(node1.domain), random_address(node1.domain)
    alice_id, bob_id = Identity.generate(), Identity.generate()

    def pinned_to_node1(node: RuneServerProcess) -> AbstractAsyncContextManager[Session]:
        """Both pins are node 1's, whichever node the client reaches."""
        return connect(
            node.host,
            node.port,
            tls_fingerprint=node1.tls_pin,
            server_key=node1.server_key,
            ephemeral=True,
        )

    for address, identity in ((alice, alice_id), (bob, bob_id)):
        async with pinned_to_node1(node1) as session:
            await session.register(address, identity)
    async with pinned_to_node1(node1) as session:
        await session.login(alice, alice_id)
        await session.send(bob, "through node 1", "read on node 2")
    async with pinned_to_node1(node2) as session:
        assert session.tls_fingerprint == node1.tls_pin
        await session.login(bob, bob_id)
        (info,) = await session.list()
        message = await session.retrieve(info.id)
        assert message.sender == alice and message.body == "read on node 2"
