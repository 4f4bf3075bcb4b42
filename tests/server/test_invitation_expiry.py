"""Invitation expiry against a server whose clock the test moves (no sleeping for it).

The server runs in the test's event loop (real TLS, store and sessions on loopback); only
:attr:`Services.clock` is the test's. The blocking wire client runs in a thread.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from rune_proto import status
from rune_proto.address import Address, random_address
from rune_proto.encoding import b64encode
from rune_proto.events import Challenge, ChallengeAccepted, ErrorReply, RegisterInvitation
from rune_proto.handshake import answer_challenge
from rune_proto.keys import Identity
from rune_proto.server.admission import fit_limits
from rune_proto.server.config import DataDir, ServerConfig
from rune_proto.server.datadir import create_data_dir, load_identity, tls_context
from rune_proto.server.service import RuneServer
from rune_proto.server.session import Services, hash_invitation
from rune_proto.server.store import Database, SQLiteStore

from .wire_client import WireClient

PASSPHRASE = "expiry test passphrase"
DOMAIN = "example"


@dataclass
class Clock:
    """Wall-clock seconds that move only when the test says so."""

    now: float = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Server:
    host: str
    port: int
    clock: Clock
    data: DataDir

    def invite(self, address: Address, lifetime: int) -> str:
        """What ``rune-server invite`` does, with the expiry taken from the test's clock."""
        token = b64encode(os.urandom(24))
        db = Database(self.data.database)
        try:
            db.add_invitation(hash_invitation(token), str(address), int(self.clock()) + lifetime)
        finally:
            db.close()
        return token


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    data = DataDir(tmp_path / "data")
    config = ServerConfig(domain=DOMAIN, registration="both")
    create_data_dir(data, config, PASSPHRASE)
    clock = Clock()
    store = await SQLiteStore.open(data.database)
    crypto = ThreadPoolExecutor(max_workers=2)
    services = Services(config, load_identity(data, PASSPHRASE), store, crypto, clock=clock)
    limits = fit_limits(
        config.max_connections,
        config.login_reserved_connections,
        config.max_anonymous_per_source,
        1024,
    )
    rune = RuneServer(services, tls_context(data, PASSPHRASE), limits)
    host, port = await rune.start("127.0.0.1", 0)
    try:
        yield Server(host, port, clock, data)
    finally:
        rune.stop()
        await asyncio.wait_for(rune.wait_stopped(), timeout=15)
        crypto.shutdown(wait=True)
        await store.close()


def expired_at_once(server: Server, address: Address, token: str) -> tuple[object, bool]:
    with WireClient(server.host, server.port) as client:
        reply = client.request(RegisterInvitation(address, token, Identity.generate().public))
        return reply, client.is_closed()


async def test_expired_invitation_is_408_and_closes(server: Server) -> None:
    address = random_address(DOMAIN)
    token = server.invite(address, lifetime=1)
    server.clock.now += 2
    reply, closed = await asyncio.to_thread(expired_at_once, server, address, token)
    assert reply == ErrorReply(status.INVITATION_EXPIRED, "invitation token expired")
    assert closed


def expires_during_the_challenge(server: Server, address: Address, token: str) -> object:
    identity = Identity.generate()
    with WireClient(server.host, server.port) as client:
        challenge = client.request(RegisterInvitation(address, token, identity.public))
        assert isinstance(challenge, Challenge), challenge
        server.clock.now += 61  # the answer comes after the invitation ran out
        answer = answer_challenge(identity, address, challenge.server_key, challenge.challenge)
        return client.request(ChallengeAccepted(answer))


async def test_an_invitation_expiring_during_the_challenge_registers_nobody(
    server: Server,
) -> None:
    address = random_address(DOMAIN)
    token = server.invite(address, lifetime=60)
    reply = await asyncio.to_thread(expires_during_the_challenge, server, address, token)
    assert isinstance(reply, ErrorReply) and reply.status == status.INVITATION_EXPIRED
    db = Database(server.data.database)
    try:
        assert db.public_key(str(address)) is None
    finally:
        db.close()
