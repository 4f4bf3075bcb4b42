"""The client library against a real rune-server over real TLS on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from rune_proto import status
from rune_proto.address import Address, parse_address
from rune_proto.client import (
    ClientError,
    ConnectionFailed,
    ContactBook,
    ContactKeyChanged,
    NotTrusted,
    PayloadTooLarge,
    ReplayLog,
    ServerError,
    ServerKeyChanged,
    Session,
    TLSPinMismatch,
    connect,
)
from rune_proto.client.vault import Vault
from rune_proto.keys import Identity

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def open_session(server: Any, **kwargs: Any) -> AsyncIterator[Session]:
    kwargs.setdefault("tls_fingerprint", server.tls_pin)
    if "state_dir" not in kwargs:
        kwargs.setdefault("ephemeral", True)  # these tests need no pins across sessions
    async with connect(server.host, server.port, **kwargs) as session:
        yield session


async def new_user(server: Any, name: str) -> tuple[Address, Identity]:
    identity = Identity.generate()
    async with open_session(server) as session:
        assert session.capabilities is not None
        address = parse_address(f"{name}@{session.capabilities.domain}")
        assert await session.register(address, identity) == address
    return address, identity


@asynccontextmanager
async def logged_in(
    server: Any, address: Address, identity: Identity, **kwargs: Any
) -> AsyncIterator[Session]:
    async with open_session(server, **kwargs) as session:
        await session.login(address, identity)
        yield session


async def test_connect_without_any_trust_is_refused(rune_server: Any) -> None:
    server = rune_server()
    with pytest.raises(NotTrusted):
        async with connect(server.host, server.port):
            pass


async def test_trust_on_first_use_reports_the_servers_pin(rune_server: Any) -> None:
    server = rune_server()
    async with connect(
        server.host, server.port, trust_on_first_use=True, ephemeral=True
    ) as session:
        assert session.tls_fingerprint == server.tls_pin
        assert session.capabilities is not None
        assert session.capabilities.server_key.token() == server.server_key
        assert "free" in session.capabilities.registration


async def test_wrong_tls_pin_is_refused_before_any_command(rune_server: Any) -> None:
    server = rune_server()
    wrong = "sha256:" + "00" * 32
    with pytest.raises(TLSPinMismatch) as caught:
        async with connect(server.host, server.port, tls_fingerprint=wrong, ephemeral=True):
            pass
    assert caught.value.actual == server.tls_pin


async def test_changed_server_key_is_an_error(rune_server: Any) -> None:
    server = rune_server()
    impostor = Identity.generate().public
    with pytest.raises(ServerKeyChanged):
        async with open_session(server, server_key=impostor):
            pass


async def test_dead_server_gives_connection_failed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionFailed):
        async with connect("127.0.0.1", port, trust_on_first_use=True, timeout=5, ephemeral=True):
            pass


async def test_send_list_retrieve_delete_round_trip(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    async with logged_in(server, alice, alice_id) as session:
        message_id = await session.send(
            bob, "Lunch?", "Noon at the usual place.", [("menu.txt", b"soup\x00bread")]
        )
    async with logged_in(server, bob, bob_id) as session:
        listing = await session.list()
        assert len(listing) == 1
        received = await session.retrieve(listing[0].id)
        assert received.verified, received.verification.problems
        assert received.sender == alice
        assert received.subject == "Lunch?"
        assert received.body == "Noon at the usual place."
        assert [(a.filename, a.data) for a in received.attachments] == [
            ("menu.txt", b"soup\x00bread")
        ]
        assert received.message_id == message_id
        assert received.size == listing[0].size
        await session.delete(listing[0].id)
        assert await session.list() == []
        with pytest.raises(ServerError) as caught:
            await session.retrieve(listing[0].id)
        assert caught.value.code == status.NOT_FOUND


async def test_reply_threads_by_message_id(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    async with logged_in(server, alice, alice_id) as session:
        first = await session.send(bob, "Question", "Tea or coffee?")
    async with logged_in(server, bob, bob_id) as session:
        (info,) = await session.list()
        original = await session.retrieve(info.id)
        await session.send(alice, "Re: Question", "Tea.", in_reply_to=original.message_id)
    async with logged_in(server, alice, alice_id) as session:
        (info,) = await session.list()
        reply = await session.retrieve(info.id)
        assert reply.in_reply_to == first
        assert reply.verified


async def test_another_users_message_is_neither_readable_nor_deletable(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    mallory, mallory_id = await new_user(server, "mallory")
    async with logged_in(server, alice, alice_id) as session:
        await session.send(bob, "private", "for bob only")
    async with logged_in(server, bob, bob_id) as session:
        (info,) = await session.list()
    async with logged_in(server, mallory, mallory_id) as session:
        errors = []
        for attempt in (session.retrieve, session.delete):
            with pytest.raises(ServerError) as caught:
                await attempt(info.id)
            errors.append((caught.value.code, caught.value.text))
        with pytest.raises(ServerError) as unknown:
            await session.retrieve("3b241101-e2bb-4255-8caf-4136c566a962")
        assert errors[0] == (unknown.value.code, unknown.value.text)
        assert errors[1][0] == status.NOT_FOUND
    async with logged_in(server, bob, bob_id) as session:
        assert [m.id for m in await session.list()] == [info.id]


async def test_unknown_recipient_is_a_clear_error_and_session_survives(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    async with logged_in(server, alice, alice_id) as session:
        with pytest.raises(ServerError) as caught:
            await session.send(f"nobody@{alice.domain}", "hi", "anyone?")
        assert caught.value.code == status.NOT_FOUND
        assert "No such address" in caught.value.explain()
        await session.noop()
        assert await session.list() == []


async def test_changed_contact_key_blocks_sending_until_accepted(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    contacts = ContactBook()
    contacts.check(bob, Identity.generate().public, "planted")  # a pin that is not bob's key
    async with logged_in(server, alice, alice_id, contacts=contacts) as session:
        with pytest.raises(ContactKeyChanged) as caught:
            await session.send(bob, "hello", "is it you?")
        assert caught.value.offered == bob_id.public.fingerprint_text()
        assert caught.value.offered_key == bob_id.public
        await session.noop()  # the abandoned send left the session usable
        contacts.accept(bob, bob_id.public)
        await session.send(bob, "hello", "now it is")
    async with logged_in(server, bob, bob_id) as session:
        listing = await session.list()
        assert len(listing) == 1
        assert (await session.retrieve(listing[0].id)).body == "now it is"


async def test_received_message_from_changed_key_is_flagged(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    async with logged_in(server, alice, alice_id) as session:
        await session.send(bob, "hi", "it's alice")
    contacts = ContactBook()
    contacts.check(alice, Identity.generate().public, "planted")
    async with logged_in(server, bob, bob_id, contacts=contacts) as session:
        (info,) = await session.list()
        received = await session.retrieve(info.id)
    assert received.body == "it's alice"
    assert not received.verified
    change = received.verification.key_change
    assert change is not None and change.offered == alice_id.public.fingerprint_text()


async def test_first_message_pins_the_sender_and_replays_are_flagged(
    rune_server: Any, tmp_path: Any
) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    async with logged_in(server, alice, alice_id) as session:
        await session.send(bob, "once", "only once")
    contacts = ContactBook(tmp_path / "contacts", Vault(bob_id), bob)
    replays = ReplayLog(tmp_path / "seen", Vault(bob_id))
    async with logged_in(server, bob, bob_id, contacts=contacts, replays=replays) as session:
        (info,) = await session.list()
        blob = await session.retrieve_blob(info.id)
        first = session.open_blob(info.id, blob)
        again = session.open_blob(info.id, blob)  # re-reading the same stored message
        replayed = session.open_blob("0f8fad5b-d9cb-469f-a165-70867728950e", blob)
    assert first.verified and again.verified
    assert replayed.verification.replay and not replayed.verified
    reloaded = ContactBook(tmp_path / "contacts", Vault(bob_id), bob)
    pinned = reloaded.get(alice)
    assert pinned is not None and pinned.key == alice_id.public
    assert pinned.how == "first message"
    assert ReplayLog(tmp_path / "seen", Vault(bob_id)).is_replay(first.message_id or "", "x")


async def test_payload_over_the_servers_limit_is_refused_locally(rune_server: Any) -> None:
    server = rune_server(max_payload_mib=1)
    alice, alice_id = await new_user(server, "alice")
    bob, _ = await new_user(server, "bob")
    async with logged_in(server, alice, alice_id) as session:
        with pytest.raises(PayloadTooLarge) as caught:
            await session.send(bob, "big", "see attached", [("big.bin", bytes(2 * 1024 * 1024))])
        assert caught.value.limit == 1024 * 1024
        await session.send(bob, "small", "fits")


async def test_invitation_registration_and_its_errors(rune_server: Any) -> None:
    server = rune_server(registration="invite")
    async with open_session(server) as session:
        assert session.capabilities is not None
        domain = session.capabilities.domain
        assert session.capabilities.registration == ("invite",)
    carol = parse_address(f"carol@{domain}")
    with pytest.raises(ServerError) as free:
        async with open_session(server) as session:
            await session.register(carol, Identity.generate())
    assert free.value.code == status.FREE_REGISTRATION_UNAVAILABLE
    token = server.invite(str(carol))
    with pytest.raises(ServerError) as wrong:
        async with open_session(server) as session:
            await session.register(carol, Identity.generate(), invitation="A" * 32)
    assert wrong.value.code == status.INVITATION_INVALID
    identity = Identity.generate()
    async with open_session(server) as session:
        assert await session.register(carol, identity, invitation=token) == carol
    async with logged_in(server, carol, identity) as session:
        assert await session.list() == []


async def test_login_with_wrong_key_looks_like_unknown_address(rune_server: Any) -> None:
    server = rune_server()
    alice, _ = await new_user(server, "alice")
    replies = []
    for who in (alice, parse_address(f"ghost@{alice.domain}")):
        with pytest.raises(ServerError) as caught:
            async with open_session(server) as session:
                await session.login(who, Identity.generate())
        replies.append((caught.value.code, caught.value.text))
    assert replies[0] == replies[1]
    assert replies[0][0] == status.AUTHENTICATION_FAILED


async def test_lookup_returns_the_registered_key(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    async with logged_in(server, alice, alice_id) as session:
        assert await session.lookup(bob) == bob_id.public
        with pytest.raises(ServerError) as caught:
            await session.lookup(f"nobody@{alice.domain}")
        assert caught.value.code == status.NOT_FOUND


async def test_operations_before_login_are_refused_locally(rune_server: Any) -> None:
    server = rune_server()
    async with open_session(server) as session:
        with pytest.raises(ClientError, match="log in first"):
            await session.list()
        with pytest.raises(ClientError, match="not a valid address"):
            await session.register("no-at-sign", Identity.generate())


async def test_messages_survive_a_server_restart(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    bob, bob_id = await new_user(server, "bob")
    async with logged_in(server, alice, alice_id) as session:
        await session.send(bob, "durable", "still here?")
    server.restart()
    async with logged_in(server, bob, bob_id) as session:
        (info,) = await session.list()
        assert (await session.retrieve(info.id)).body == "still here?"


async def test_server_going_away_mid_session_is_connection_failed(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    async with logged_in(server, alice, alice_id, timeout=5) as session:
        server.stop()
        with pytest.raises(ConnectionFailed):
            await session.list()


async def test_the_send_limit_reaches_the_user_as_plain_words(rune_server: Any) -> None:
    """453 through the real client library: what rune-tui shows (ServerError.explain)."""
    server = rune_server(send_limit=1)
    alice, alice_id = await new_user(server, "alice")
    bob, _ = await new_user(server, "bob")
    async with logged_in(server, alice, alice_id) as session:
        await session.send(str(bob), "one", "fits")
        with pytest.raises(ServerError) as caught:
            await session.send(str(bob), "two", "over the limit")
        assert caught.value.code == status.SEND_LIMIT and not caught.value.closes
        assert caught.value.explain() == (
            "You have sent too many messages recently; try again later."
        )
        await session.noop()  # the session goes on
