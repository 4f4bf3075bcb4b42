"""Fixtures for the server tests: one shared server, and registered users on demand."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rune_proto.address import Address, random_address
from rune_proto.events import Registered
from rune_proto.keys import Identity
from tests.server_process import RuneServerProcess, ServerFactory

from .wire_client import WireClient

SHARED_MAX_PAYLOAD_MIB = 0.25  # small, so "payload over the limit" costs little to test

User = tuple[Address, Identity]


@pytest.fixture(scope="session")
def shared_server(rune_server_session: ServerFactory) -> RuneServerProcess:
    """Both registration modes, default limits except a 256 KiB payload limit."""
    return rune_server_session("both", max_payload_mib=SHARED_MAX_PAYLOAD_MIB)


def register_user(server: RuneServerProcess, invitation: str | None = None) -> User:
    address = random_address(server.domain)
    identity = Identity.generate()
    with WireClient.to(server) as client:
        reply = client.register(address, identity, invitation)
    assert reply == Registered(address), reply
    return address, identity


@pytest.fixture
def new_user(shared_server: RuneServerProcess) -> Callable[[], User]:
    """Registers a fresh random address on the shared server."""
    return lambda: register_user(shared_server)
