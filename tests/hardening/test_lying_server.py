"""The client library against a lying server (issue 7 §4; protocol.md §3, §11, §15).

Every lie must be detected and reported as what it is — a typed error, or a message
shown as unverified with the reason — and none may crash the client, hang it, or be
shown as verified. The server is :mod:`tests.hardening.lying_server`: the real core,
real envelopes, real TLS, with switchable lies. Each scenario runs under a hard time
bound, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rune_proto import status
from rune_proto.address import MAX_ADDRESS_LENGTH, Address, parse_address
from rune_proto.client import (
    ClientError,
    ConnectionFailed,
    ContactBook,
    ContactKeyChanged,
    ProtocolViolation,
    ReplayLog,
    ServerError,
    ServerKeyChanged,
    Session,
    TLSPinMismatch,
    connect,
)
from rune_proto.client.messages import ReceivedMessage, open_retrieved
from rune_proto.client.session import LARGEST_PAYLOAD
from rune_proto.encoding import canonical, lp
from rune_proto.envelope import (
    Content,
    new_message_id,
    open_message,
    seal_client_message,
    seal_message,
)
from rune_proto.events import (
    Authenticated,
    Capa,
    ChallengeAccepted,
    Command,
    Delete,
    ListMessages,
    Login,
    Lookup,
    Message,
    Noop,
    Proof,
    Register,
    Reply,
    Retrieve,
    Roger,
    Send,
    SendReady,
)
from rune_proto.keys import Identity, PublicKey
from rune_proto.padding import pad
from rune_proto.suite import CTX_MESSAGE, CTX_STORED_MESSAGE, open_sealed, seal
from rune_proto.wire import format_reply
from tests.server.wire_client import WireClient
from tests.server_process import ServerFactory

from .lying_server import HOST, Certificate, LyingServer

TIMEOUT = 1.0  # the client's timeout in these tests
BOUND = 10.0  # no scenario may take longer: a hang is a failure, not a stuck suite
User = tuple[Address, Identity]


def user(server: LyingServer, name: str) -> User:
    identity = Identity.generate()
    address = parse_address(f"{name}@{server.domain}")
    server.add_account(address, identity.public)
    return address, identity


@asynccontextmanager
async def session_to(
    server: LyingServer, who: User | None = None, *, pin_key: bool = True, **kwargs: Any
) -> AsyncIterator[Session]:
    """A client session (logged in as ``who``), pinned to the server's TLS key and key."""
    kwargs.setdefault("tls_fingerprint", server.tls_pin)
    kwargs.setdefault("timeout", TIMEOUT)
    if "state_dir" not in kwargs:
        kwargs.setdefault("ephemeral", True)  # what is remembered is passed in, if needed
    if pin_key:
        kwargs.setdefault("server_key", server.identity.public)
    async with connect(HOST, server.port, **kwargs) as session:
        if who is not None:
            await session.login(*who)
        yield session


async def bounded(awaitable: Awaitable[Any]) -> Any:
    async with asyncio.timeout(BOUND):
        return await awaitable


async def connect_only(server: LyingServer, **kwargs: Any) -> None:
    """Connect (greeting, CAPA, key checks) and leave, within the bound."""
    async with asyncio.timeout(BOUND), session_to(server, **kwargs):
        pass


def forge_message(
    *,
    sender: Address,
    sender_key: PublicKey,
    signer: Identity,
    receiver: Address,
    receiver_key: PublicKey,
    content: Content,
    message_id: bytes | None = None,
) -> bytes:
    """A sealed MESSAGE (§9.3) whose claimed sender key and actual signer may differ."""
    mid = message_id or new_message_id()
    when = struct.pack(">Q", int(time.time() * 1000))
    body = content.to_json()
    signed = canonical(
        CTX_MESSAGE,
        sender.encode(),
        sender_key.raw,
        receiver.encode(),
        receiver_key.raw,
        mid,
        when,
        body,
    )
    fields = lp(sender.encode(), sender_key.raw, receiver.encode(), mid, when, body)
    return seal(receiver_key.kem, pad(fields + signer.sign(signed)), CTX_MESSAGE)


# --- the honest baseline ---------------------------------------------------------


async def test_the_honest_lying_server_is_a_faithful_server() -> None:
    """Control: with no lie switched on, everything works and verifies."""
    async with LyingServer() as server:
        alice, alice_id = (parse_address(f"alice@{server.domain}"), Identity.generate())
        async with session_to(server, pin_key=False) as session:
            await bounded(session.register(alice, alice_id))
        bob = user(server, "bob")
        async with session_to(server, (alice, alice_id)) as session:
            await bounded(session.send(bob[0], "hello", "it is me"))
        async with session_to(server, bob) as session:
            (info,) = await bounded(session.list())
            received = await bounded(session.retrieve(info.id))
            assert received.verified, received.verification.problems
            await bounded(session.delete(info.id))
            assert await bounded(session.lookup(alice)) == alice_id.public


# --- key substitution on SEND ---------------------------------------------------


async def test_swapped_receiver_key_for_a_pinned_contact_blocks_the_send() -> None:
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        contacts = ContactBook()
        async with session_to(server, alice, contacts=contacts) as session:
            await bounded(session.send(bob[0], "first", "pins bob"))  # first send pins bob
            attacker = Identity.generate()
            server.lies.send_receiver_key = attacker.public
            with pytest.raises(ContactKeyChanged) as caught:
                await bounded(session.send(bob[0], "second", "must not reach the attacker"))
            assert caught.value.pinned == bob[1].public.fingerprint_text()
            assert caught.value.offered == attacker.public.fingerprint_text()
            await bounded(session.noop())  # the send was abandoned, the session goes on
        assert len(server.commands_of(Message)) == 1  # nothing was sealed to the attacker
        pinned = contacts.get(bob[0])
        assert pinned is not None and pinned.key == bob[1].public


async def test_swapped_key_for_an_unpinned_receiver_is_the_tofu_limit_and_is_detectable() -> None:
    """Trust on first use accepts the first key the server shows (protocol.md §15.4).

    What stays true: the pin then differs from the receiver's real fingerprint (out of
    band) and from an honest LOOKUP; the receiver cannot read the message; a message
    the attacker re-seals to the receiver fails the sender signature; and a genuine
    message from the receiver is flagged as a key change.
    """
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        attacker = Identity.generate()
        server.lies.send_receiver_key = attacker.public
        contacts = ContactBook()
        async with session_to(server, alice, contacts=contacts) as session:
            await bounded(session.send(bob[0], "secret plan", "meet at noon"))
            pinned = contacts.get(bob[0])
            assert pinned is not None and pinned.key == attacker.public  # the known limit
            # Detection 1: the pin is not bob's real fingerprint (compared out of band).
            assert pinned.fingerprint != bob[1].public.fingerprint_text()
            # Detection 2: a LOOKUP the server answers honestly disagrees with the pin.
            assert await bounded(session.lookup(bob[0])) != pinned.key
        (delivery,) = server.deliveries
        opened = open_message(attacker, bob[0], delivery.sealed, strict=False)
        assert opened.content.subject == "secret plan"  # the attacker could read it
        assert opened.signature_ok  # ... because alice signed for the attacker's key
        # Re-sealed to bob, the signature (which covers the receiver key) gives it away.
        block = open_sealed(attacker.kem, delivery.sealed, CTX_MESSAGE, what="message")
        resealed = seal(bob[1].public.kem, block, CTX_MESSAGE)
        forwarded = server.deliver(bob[0], server.wrap(bob[0], alice[0], resealed))
        async with session_to(server, bob) as session:
            direct = await bounded(session.retrieve(delivery.stored_id))
            relayed = await bounded(session.retrieve(forwarded))
        assert not direct.verified and not direct.verification.decrypted
        assert not relayed.verified and not relayed.verification.sender_signature
        # Detection 3: bob's genuine key shows up as a changed key at alice.
        genuine = seal_message(bob[0], bob[1], alice[0], alice[1].public, Content("hi", "me"))
        server.deliver(alice[0], server.wrap(alice[0], bob[0], genuine))
        async with session_to(server, alice, contacts=contacts) as session:
            (info,) = await bounded(session.list())
            from_bob = await bounded(session.retrieve(info.id))
        assert not from_bob.verified
        change = from_bob.verification.key_change
        assert change is not None and change.offered == bob[1].public.fingerprint_text()


# --- forged, re-signed, replayed and re-labelled STORED MESSAGEs ------------------


async def _one_honest_message(server: LyingServer, alice: User, bob: User) -> str:
    async with session_to(server, alice) as session:
        return str(await bounded(session.send(bob[0], "original", "the real text")))


async def test_stored_message_re_signed_with_another_server_key_is_not_verified() -> None:
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        await _one_honest_message(server, alice, bob)
        (delivery,) = server.deliveries
        impostor = Identity.generate()
        forged = server.deliver(
            bob[0], server.wrap(bob[0], alice[0], delivery.sealed, signer=impostor)
        )
        contacts = ContactBook()
        async with session_to(server, bob, contacts=contacts) as session:
            received = await bounded(session.retrieve(forged))
        check = received.verification
        assert check.decrypted and not check.server_signature and not received.verified
        assert any("server's signature" in p for p in check.problems)
        assert received.body == "the real text"  # shown, but as unverified
        assert contacts.get(alice[0]) is None  # and nothing was pinned from it


async def test_forged_message_under_a_real_address_is_not_verified() -> None:
    """The server writes a message 'from alice': with alice's key it cannot sign it;
    with its own key it hits alice's pin."""
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        attacker = Identity.generate()
        contacts = ContactBook()
        contacts.check(alice[0], alice[1].public, "out of band")
        content = Content("urgent", "send me your key")
        forged = [
            forge_message(
                sender=alice[0],
                sender_key=claimed,
                signer=attacker,
                receiver=bob[0],
                receiver_key=bob[1].public,
                content=content,
            )
            for claimed in (alice[1].public, attacker.public)
        ]
        ids = [server.deliver(bob[0], server.wrap(bob[0], alice[0], sealed)) for sealed in forged]
        async with session_to(server, bob, contacts=contacts) as session:
            first, second = [await bounded(session.retrieve(i)) for i in ids]
        assert first.verification.server_signature and not first.verification.sender_signature
        assert not first.verified
        assert second.verification.sender_signature  # signed, but not with alice's key
        assert second.verification.key_change is not None and not second.verified
        pinned = contacts.get(alice[0])
        assert pinned is not None and pinned.key == alice[1].public  # the pin did not move


async def test_replayed_message_under_a_new_id_is_flagged() -> None:
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        message_id = await _one_honest_message(server, alice, bob)
        (delivery,) = server.deliveries
        original_blob = server.mailboxes[bob[0]][delivery.stored_id]
        replays = ReplayLog()
        async with session_to(server, bob, replays=replays) as session:
            first = await bounded(session.retrieve(delivery.stored_id))
            again = await bounded(session.retrieve(delivery.stored_id))  # re-reading is fine
            assert first.verified and again.verified
            copied = server.deliver(bob[0], original_blob)  # the same blob, a new id
            rewrapped = server.deliver(  # freshly wrapped and signed, with a new time
                bob[0], server.wrap(bob[0], alice[0], delivery.sealed)
            )
            replayed = [await bounded(session.retrieve(i)) for i in (copied, rewrapped)]
        for message in replayed:
            assert message.message_id == message_id
            assert message.verification.replay and not message.verified
            assert message.verification.server_signature and message.verification.sender_signature


async def test_sender_changed_in_the_wrap_is_a_sender_mismatch() -> None:
    async with LyingServer() as server:
        alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
        await _one_honest_message(server, alice, bob)
        (delivery,) = server.deliveries
        relabelled = server.deliver(bob[0], server.wrap(bob[0], carol[0], delivery.sealed))
        contacts = ContactBook()
        async with session_to(server, bob, contacts=contacts) as session:
            received = await bounded(session.retrieve(relabelled))
        check = received.verification
        assert check.server_signature  # the server signed its own lie
        assert check.sender_signature and not check.sender_match and not received.verified
        assert received.sender == alice[0]  # the signer is shown, with the mismatch flagged
        assert contacts.get(alice[0]) is None and contacts.get(carol[0]) is None


async def test_forwarded_message_is_flagged_as_addressed_to_someone_else() -> None:
    """Surreptitious forwarding (Davis 2001, protocol.md §15.5), with the server's help."""
    async with LyingServer() as server:
        alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
        await _one_honest_message(server, alice, bob)
        (delivery,) = server.deliveries
        block = open_sealed(
            bob[1].kem, delivery.sealed, CTX_MESSAGE, what="message"
        )  # bob turns traitor
        to_carol = seal(carol[1].public.kem, block, CTX_MESSAGE)
        forwarded = server.deliver(carol[0], server.wrap(carol[0], alice[0], to_carol))
        async with session_to(server, carol) as session:
            received = await bounded(session.retrieve(forwarded))
        assert not received.verification.addressed_to_me and not received.verified


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend", "random", "other-receiver"])
async def test_damaged_blob_is_shown_unreadable_not_crashing(damage: str) -> None:
    async with LyingServer() as server:
        alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
        await _one_honest_message(server, alice, bob)
        (delivery,) = server.deliveries
        blob = server.mailboxes[bob[0]][delivery.stored_id]
        bad = {
            "flip": blob[:5000] + bytes([blob[5000] ^ 1]) + blob[5001:],
            "truncate": blob[:-1],
            "extend": blob + b"\0",
            "random": bytes(len(blob)),
            "other-receiver": server.wrap(carol[0], alice[0], delivery.sealed),
        }[damage]
        target = server.deliver(bob[0], bad)
        async with session_to(server, bob) as session:
            received = await bounded(session.retrieve(target))
            await bounded(session.noop())  # and the session is fine
        assert not received.verified and not received.verification.decrypted
        assert received.verification.problems


async def test_a_user_cannot_plant_a_pin_for_someone_else_through_the_real_server(
    rune_server: ServerFactory,
) -> None:
    """Mallory signs a message claiming alice's address with her own key and sends it
    through an honest server, which wraps it as from mallory. Bob sees a sender
    mismatch — and must not pin mallory's key as alice's on this first sight (found by
    this test: the client pinned any message with a valid inner signature)."""
    real = rune_server()
    names = ("alice", "bob", "mallory")
    users: dict[str, User] = {}
    for name in names:
        identity = Identity.generate()
        async with connect(
            real.host, real.port, tls_fingerprint=real.tls_pin, ephemeral=True
        ) as session:
            address = parse_address(f"{name}@{real.domain}")
            await bounded(session.register(address, identity))
        users[name] = (address, identity)
    alice, bob, mallory = (users[n] for n in names)
    # The client library would never build this message: talk to the server directly.
    with WireClient.to(real) as wire:
        assert isinstance(wire.login(*mallory, real.server_public_key), Authenticated)
        ready = wire.request(Send(bob[0]))
        assert isinstance(ready, SendReady)
        sealed = seal_message(alice[0], mallory[1], bob[0], ready.receiver_key, Content("hi", "a"))
        payload = seal_client_message(mallory[0], mallory[1], bob[0], ready.server_key, sealed)
        assert isinstance(wire.request(Message(mallory[0], payload)), Roger)
    contacts = ContactBook()
    pin = real.tls_pin
    async with connect(
        real.host, real.port, tls_fingerprint=pin, contacts=contacts, ephemeral=True
    ) as session:
        await bounded(session.login(*bob))
        (first,) = await bounded(session.list())
        forged = await bounded(session.retrieve(first.id))  # first sight of "alice"
    assert forged.sender == alice[0] and forged.body == "a"
    assert not forged.verification.sender_match and not forged.verified
    assert contacts.get(alice[0]) is None
    async with connect(real.host, real.port, tls_fingerprint=pin, ephemeral=True) as session:
        await bounded(session.login(*alice))
        await bounded(session.send(bob[0], "hello", "the real alice"))
    async with connect(
        real.host, real.port, tls_fingerprint=pin, contacts=contacts, ephemeral=True
    ) as session:
        await bounded(session.login(*bob))
        (second,) = [m for m in await bounded(session.list()) if m.id != first.id]
        genuine = await bounded(session.retrieve(second.id))
    assert genuine.verified, genuine.verification.problems  # no planted pin in the way
    pinned = contacts.get(alice[0])
    assert pinned is not None and pinned.key == alice[1].public


# --- TLS certificate and server key ---------------------------------------------


async def test_different_tls_certificate_is_refused_before_any_command() -> None:
    async with LyingServer() as server:
        honest_pin = server.tls_pin
        server.lies.certificate = Certificate.self_signed()
        await server.restart()
        with pytest.raises(TLSPinMismatch) as caught:
            await connect_only(server, tls_fingerprint=honest_pin)
        assert caught.value.actual == server.lies.certificate.pin
        assert server.commands == []  # not even CAPA was sent


async def test_renewed_certificate_with_the_same_key_keeps_the_pin() -> None:
    """Control for the test above: the pin is the key (SPKI), not the certificate."""
    async with LyingServer() as server:
        renewed = Certificate.self_signed(server.certificate.key, name="renewed")
        assert renewed.cert_pem != server.certificate.cert_pem
        server.lies.certificate = renewed
        await server.restart()
        async with session_to(server) as session:
            await bounded(session.noop())


async def test_server_offering_only_tls_1_1_is_refused() -> None:
    async with LyingServer() as server:
        server.lies.tls_maximum = ssl.TLSVersion.TLSv1_1
        await server.restart()
        with pytest.raises(ConnectionFailed):
            await connect_only(server)
        assert server.commands == []


async def test_different_server_key_in_capa_is_refused() -> None:
    async with LyingServer() as server:
        pinned = server.identity.public
        server.lies.capa_server_key = Identity.generate().public
        with pytest.raises(ServerKeyChanged) as caught:
            await connect_only(server)
        assert caught.value.expected == pinned.fingerprint_text()


@pytest.mark.parametrize("pinned", [True, False])
async def test_different_server_key_in_the_challenge_is_refused(pinned: bool) -> None:
    async with LyingServer() as server:
        server.lies.challenge_server_key = Identity.generate().public
        expected = ServerKeyChanged if pinned else ProtocolViolation
        async with session_to(server, pin_key=pinned) as session:
            address = parse_address(f"carol@{server.domain}")
            with pytest.raises(expected):
                await bounded(session.register(address, Identity.generate()))
            assert session.closed
        assert server.commands_of(ChallengeAccepted) == []  # no answer to a lying challenge


async def test_challenge_not_signed_by_the_server_is_refused() -> None:
    async with LyingServer() as server:

        def bad_signature(command: Command, honest: Reply) -> bytes | None:
            if not isinstance(command, Register):
                return None
            line = format_reply(honest)
            cut = line.index(b" ", 4) - 10  # a character inside the signature's base64
            swapped = b"A" if line[cut : cut + 1] != b"A" else b"B"
            return line[:cut] + swapped + line[cut + 1 :]

        server.lies.tamper = bad_signature
        async with session_to(server) as session:
            with pytest.raises(ProtocolViolation):
                dan = parse_address(f"dan@{server.domain}")
                await bounded(session.register(dan, Identity.generate()))
        assert server.commands_of(ChallengeAccepted) == []


@pytest.mark.parametrize("pinned", [True, False])
async def test_different_server_key_in_201_is_refused(pinned: bool) -> None:
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        server.lies.send_server_key = Identity.generate().public
        expected = ServerKeyChanged if pinned else ProtocolViolation
        async with session_to(server, alice, pin_key=pinned) as session:
            with pytest.raises(expected):
                await bounded(session.send(bob[0], "hi", "sealed to whom?"))
            assert session.closed
        assert server.commands_of(Message) == []  # nothing was sealed to the impostor key


# --- malformed, oversized, unsolicited and missing replies ---------------------------


def replace_reply(kind: type[Command], make: Callable[[bytes], bytes]) -> Any:
    """A tamper hook: the reply to ``kind`` becomes ``make(honest bytes)``."""

    def tamper(command: Command, honest: Reply) -> bytes | None:
        return make(format_reply(honest)) if isinstance(command, kind) else None

    return tamper


OTHER_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
KEY = Identity.generate().public.token()


async def _noop(s: Session, _: Any) -> None:
    await s.noop()


async def _list(s: Session, _: Any) -> None:
    await s.list()


async def _retrieve(s: Session, ids: Any) -> ReceivedMessage:
    return await s.retrieve(ids["message"])


async def _delete(s: Session, ids: Any) -> None:
    await s.delete(ids["message"])


async def _lookup(s: Session, ids: Any) -> None:
    await s.lookup(ids["bob"])


async def _send(s: Session, ids: Any) -> None:
    await s.send(ids["bob"], "hi", "there")


async def _register(s: Session, ids: Any) -> None:
    await s.register(ids["new"], Identity.generate())


async def _twice_noop(s: Session, _: Any) -> None:
    await s.noop()
    await s.noop()


# (name, lie set-up, what the client does once connected (None: connecting is enough),
#  whether it needs a login)
Case = tuple[str, Callable[[LyingServer], None], Any, bool]


def _lie(**changes: Any) -> Callable[[LyingServer], None]:
    def apply(server: LyingServer) -> None:
        for name, value in changes.items():
            setattr(server.lies, name, value)

    return apply


CASES: list[Case] = [
    ("greeting is not HOWDY", _lie(greeting=b"HELLO rune/1\r\n"), None, False),
    ("greeting is not UTF-8", _lie(greeting=b"HOWDY \xff\xfe\r\n"), None, False),
    ("greeting never comes", _lie(stall=True), None, False),
    ("greeting trickles forever", _lie(trickle=b"HOWDY rune/1 " + b"x" * 400), None, False),
    ("greeting is 1 MiB with no end", _lie(greeting=b"HOWDY " + b"x" * 2**20), None, False),
    ("reply before any command", _lie(after_greeting=b"200 OK\r\n"), None, False),
    ("CAPA answered 200", _lie(tamper=replace_reply(Capa, lambda _: b"200 OK\r\n")), None, False),
    (
        "CAPA without SERVER_KEY",
        _lie(
            tamper=replace_reply(Capa, lambda r: b"\r\n".join([*r.split(b"\r\n")[:-3], b".", b""]))
        ),
        None,
        False,
    ),
    (
        "CAPA body never ends",
        _lie(tamper=replace_reply(Capa, lambda r: r[: r.rindex(b".\r\n")])),
        None,
        False,
    ),
    ("NOOP gets 300", _lie(tamper=replace_reply(Noop, lambda _: b"300 what\r\n")), _noop, False),
    ("NOOP gets 202", _lie(tamper=replace_reply(Noop, lambda _: b"202 ROGER\r\n")), _noop, False),
    ("NOOP gets no code", _lie(tamper=replace_reply(Noop, lambda _: b"OK\r\n")), _noop, False),
    (
        "NOOP gets bytes",
        _lie(tamper=replace_reply(Noop, lambda _: b"200 \xc3\x28\r\n")),
        _noop,
        False,
    ),
    ("NOOP gets NUL", _lie(tamper=replace_reply(Noop, lambda _: b"200 O\x00K\r\n")), _noop, False),
    (
        "NOOP gets a 20 KiB line",
        _lie(tamper=replace_reply(Noop, lambda _: b"200 " + b"k" * 20480 + b"\r\n")),
        _noop,
        False,
    ),
    (
        "NOOP gets 4 MiB with no line end",
        _lie(tamper=replace_reply(Noop, lambda _: b"200 " + b"k" * 4 * 2**20)),
        _noop,
        False,
    ),
    ("NOOP gets half a line", _lie(tamper=replace_reply(Noop, lambda _: b"20")), _noop, False),
    (
        "an extra reply after NOOP",
        _lie(tamper=replace_reply(Noop, lambda r: r + b"200 OK\r\n")),
        _twice_noop,
        False,
    ),
    (
        "220 nonce is not base64url",
        _lie(tamper=replace_reply(Login, lambda _: b"220 not+base64/\r\n")),
        None,
        True,
    ),
    (
        "230 names someone else",
        _lie(tamper=replace_reply(Proof, lambda _: b"230 authenticated eve@lies.example\r\n")),
        None,
        True,
    ),
    (
        "240 with a line that is no id",
        _lie(tamper=replace_reply(ListMessages, lambda _: b"240 1 messages\r\nnope 5\r\n.\r\n")),
        _list,
        True,
    ),
    (
        "240 with a negative size",
        _lie(
            tamper=replace_reply(
                ListMessages, lambda _: f"240 1\r\n{OTHER_ID} -5\r\n.\r\n".encode()
            )
        ),
        _list,
        True,
    ),
    (
        "240 that never ends",
        _lie(tamper=replace_reply(ListMessages, lambda _: f"240 1\r\n{OTHER_ID} 5\r\n".encode())),
        _list,
        True,
    ),
    (
        "250 with a broken blob",
        _lie(tamper=replace_reply(Retrieve, lambda r: r[:42] + b"!!!" + r[45:])),
        _retrieve,
        True,
    ),
    (
        "250 without a blob",
        _lie(tamper=replace_reply(Retrieve, lambda r: r[:40] + b"\r\n")),
        _retrieve,
        True,
    ),
    (
        "250 for another id",
        _lie(tamper=replace_reply(Retrieve, lambda r: r[:4] + OTHER_ID.encode() + r[40:])),
        _retrieve,
        True,
    ),
    (
        "250 cut off by the server",
        _lie(tamper=replace_reply(Retrieve, lambda r: r[: len(r) // 2])),
        _retrieve,
        True,
    ),
    (
        "260 for another id",
        _lie(tamper=replace_reply(Delete, lambda _: f"260 deleted {OTHER_ID}\r\n".encode())),
        _delete,
        True,
    ),
    (
        "270 for another address",
        _lie(tamper=replace_reply(Lookup, lambda _: f"270 eve@lies.example {KEY}\r\n".encode())),
        _lookup,
        True,
    ),
    (
        "270 with a broken key",
        _lie(tamper=replace_reply(Lookup, lambda r: r[:-20] + b"*" + r[-19:])),
        _lookup,
        True,
    ),
    (
        "201 with a zero payload limit",
        _lie(tamper=replace_reply(Send, lambda r: b"201 0 " + r.split(b" ", 2)[2])),
        _send,
        True,
    ),
    (
        "201 with a broken key",
        _lie(tamper=replace_reply(Send, lambda r: r[:30] + b"=" + r[31:])),
        _send,
        True,
    ),
    (
        "202 answered with 250",
        _lie(tamper=replace_reply(Message, lambda _: f"250 {OTHER_ID} AAAA\r\n".encode())),
        _send,
        True,
    ),
    (
        "205 with garbage",
        _lie(tamper=replace_reply(Register, lambda _: b"205 !!! ???\r\n")),
        _register,
        False,
    ),
    (
        "210 names someone else",
        _lie(
            tamper=replace_reply(
                ChallengeAccepted, lambda _: b"210 registered eve@lies.example\r\n"
            )
        ),
        _register,
        False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_malformed_reply_is_a_protocol_violation_or_connection_failure(case: Case) -> None:
    _, configure, action, needs_login = case
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        message = server.deliver(alice[0], server.wrap(alice[0], bob[0], b"\0" * 17520))
        ids = {"message": message, "bob": bob[0], "new": parse_address(f"new@{server.domain}")}
        if action is None:  # the lie is in connecting or logging in itself
            configure(server)
        who = alice if needs_login else None
        started = time.monotonic()
        with pytest.raises((ProtocolViolation, ConnectionFailed)) as caught:
            async with asyncio.timeout(BOUND):
                async with session_to(server, who) as session:
                    if action is not None:
                        configure(server)
                        try:
                            await action(session, ids)
                        finally:
                            assert session.closed, "a lying server's connection stays open"
        elapsed = time.monotonic() - started
    assert type(caught.value) in (ProtocolViolation, ConnectionFailed)
    assert elapsed < 4 * TIMEOUT, f"took {elapsed:.1f} s"


async def test_greeting_with_another_version_only_is_a_clear_error() -> None:
    async with LyingServer() as server:
        server.lies.greeting = b"HOWDY rune/2 from the future\r\n"
        with pytest.raises(ClientError, match="rune/2"):
            await connect_only(server)


async def test_refusal_in_place_of_the_greeting_is_reported_with_its_reason() -> None:
    async with LyingServer() as server:
        server.lies.greeting = b"421 too many connections\r\n"
        with pytest.raises(ServerError) as caught:
            await connect_only(server)
        assert caught.value.code == status.CLOSING and caught.value.closes


async def test_closing_421_after_a_reply_is_reported_at_the_next_command() -> None:
    """Legitimate (server shutdown, §4.4): not a lie, but it must not be read as a reply."""
    async with LyingServer() as server:
        alice = user(server, "alice")
        server.lies.tamper = replace_reply(Noop, lambda r: r + b"421 server shutting down\r\n")
        async with session_to(server, alice) as session:
            await bounded(session.noop())
            with pytest.raises(ServerError) as caught:
                await bounded(session.list())
            assert caught.value.code == status.CLOSING and session.closed


async def test_huge_max_payload_does_not_raise_what_the_client_will_buffer() -> None:
    async with LyingServer() as server:

        def huge(command: Command, honest: Reply) -> bytes | None:
            if not isinstance(command, Capa):
                return None
            return format_reply(honest).replace(b"MAX_PAYLOAD 1048576", b"MAX_PAYLOAD " + b"9" * 19)

        server.lies.tamper = huge
        async with session_to(server) as session:
            assert session.capabilities is not None
            assert session.capabilities.max_payload == 10**19 - 1
            assert session._conn.max_payload == LARGEST_PAYLOAD
            await bounded(session.noop())


async def test_blob_of_the_right_size_but_random_is_unreadable() -> None:
    async with LyingServer() as server:
        alice = user(server, "alice")
        target = server.deliver(alice[0], bytes(range(256)) * 73 + bytes(18846 - 256 * 73))
        async with session_to(server, alice) as session:
            received = await bounded(session.retrieve(target))
        assert not received.verified and not received.verification.decrypted


# --- fuzzing: mutated replies over the network, mutated envelopes offline -------------

FUZZ_ACTIONS: dict[str, tuple[type[Command], Any]] = {
    "noop": (Noop, _noop),
    "list": (ListMessages, _list),
    "retrieve": (Retrieve, _retrieve),
    "delete": (Delete, _delete),
    "lookup": (Lookup, _lookup),
    "send": (Send, _send),
}
_FUZZ_USERS = (Identity.generate(), Identity.generate())


def _mutate(data: st.DataObject, honest: bytes) -> bytes:
    """One mutation of ``honest``. Every draw has fixed bounds (positions are taken
    modulo the length), so random bytes in the input cannot change what is drawn."""
    kind = data.draw(st.sampled_from(["flip", "cut", "insert", "token", "append", "reverse"]))
    near = st.one_of(st.integers(0, 63), st.integers(-64, -1), st.integers(0, 2**24))
    at = data.draw(near) % max(1, len(honest))
    if kind == "flip":
        return honest[:at] + bytes([honest[at] ^ data.draw(st.integers(1, 255))]) + honest[at + 1 :]
    if kind == "cut":
        return honest[:at]
    if kind == "insert":
        return honest[:at] + data.draw(st.binary(min_size=1, max_size=40)) + honest[at:]
    if kind == "token":
        tokens = honest.rstrip(b"\r\n").split(b" ")
        index = data.draw(st.integers(0, 7)) % len(tokens)
        tokens[index] = data.draw(st.sampled_from([b"", b"x", b"-1", OTHER_ID.encode(), b"\xff"]))
        return b" ".join(tokens) + b"\r\n"
    if kind == "append":
        return honest + data.draw(st.sampled_from([b"200 OK\r\n", b".\r\n", b"\r\n", b"x"]))
    return honest[:at] + honest[at:][::-1]


@pytest.mark.slow
@settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(action=st.sampled_from(sorted(FUZZ_ACTIONS)), data=st.data())
def test_fuzzed_replies_only_ever_raise_client_errors(action: str, data: st.DataObject) -> None:
    """Any mutation of a real reply: the operation succeeds or raises a ClientError
    (ProtocolViolation, ConnectionFailed, ServerError…), within a bound. Never
    another exception type, never a hang, never a verified message from a lie."""
    kind, act = FUZZ_ACTIONS[action]
    sent: list[tuple[bytes, bytes]] = []  # (honest, mutated)

    def tamper(command: Command, honest: Reply) -> bytes | None:
        if not isinstance(command, kind):
            return None
        truth = format_reply(honest)
        sent.append((truth, _mutate(data, truth)))
        return sent[-1][1]

    async def scenario() -> None:
        async with LyingServer() as server:
            alice = (parse_address(f"alice@{server.domain}"), _FUZZ_USERS[0])
            bob = (parse_address(f"bob@{server.domain}"), _FUZZ_USERS[1])
            for who in (alice, bob):
                server.add_account(who[0], who[1].public)
            sealed = seal_message(bob[0], bob[1], alice[0], alice[1].public, Content("s", "b"))
            message = server.deliver(alice[0], server.wrap(alice[0], bob[0], sealed))
            ids = {"message": message, "bob": bob[0]}
            server.lies.tamper = tamper
            server.lies.close_after_tamper = True  # a cut reply ends at once, not by timeout
            async with asyncio.timeout(BOUND), session_to(server, alice, timeout=0.5) as session:
                try:
                    result = await act(session, ids)
                except ClientError:
                    return
            if isinstance(result, ReceivedMessage) and result.verified:
                honest, mutated = sent[0]
                assert mutated.startswith(honest), "a mutated 250 was shown as verified"

    asyncio.run(scenario())


_OFFLINE = {name: Identity.generate() for name in ("server", "alice", "bob")}


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(layer=st.sampled_from(["stored", "block", "body"]), data=st.data())
def test_mutated_envelopes_are_never_verified_and_never_crash(
    layer: str, data: st.DataObject
) -> None:
    """A compromised server can seal anything to the receiver's key (it knows it) and
    sign the wrap with its real key: every parser of §11 meets attacker-chosen bytes."""
    server_id, alice_id, bob_id = _OFFLINE["server"], _OFFLINE["alice"], _OFFLINE["bob"]
    alice, bob = parse_address("alice@lies.example"), parse_address("bob@lies.example")
    mid = bytes(16)
    when = struct.pack(">Q", 1_700_000_000_000)
    content = Content("subject", "body", (), None).to_json()
    keys = (alice_id.public.raw, bob_id.public.raw)
    signed = canonical(
        CTX_MESSAGE, alice.encode(), keys[0], bob.encode(), keys[1], mid, when, content
    )
    body = lp(alice.encode(), alice_id.public.raw, bob.encode(), mid, when, content)
    body += alice_id.sign(signed)
    if layer == "body":
        new_body = _mutate(data, body)
        block = pad(new_body)
    else:
        new_body = body
        block = pad(body)
        if layer == "block":
            block = _mutate(data, block)
    sealed = seal(bob_id.public.kem, block, CTX_MESSAGE)
    stamp = b"2026-01-02T03:04:05Z"
    sender_field = bytes([len(alice.encode())]) + alice.encode().ljust(MAX_ADDRESS_LENGTH, b"\0")
    digest = hashlib.sha256(sealed).digest()
    wrap_signed = canonical(
        CTX_STORED_MESSAGE, bob.encode(), keys[1], alice.encode(), stamp, digest
    )
    plain = sender_field + stamp + lp(sealed) + server_id.sign(wrap_signed)
    honest_plain = plain
    if layer == "stored":
        plain = _mutate(data, plain)
    blob = seal(bob_id.public.kem, plain, CTX_STORED_MESSAGE)
    contacts = ContactBook()
    received = open_retrieved(
        str(uuid.uuid4()),
        blob,
        identity=bob_id,
        address=bob,
        server_key=server_id.public,
        contacts=contacts,
        replays=ReplayLog(),
    )
    unchanged = new_body == body and block == pad(body) and plain == honest_plain
    assert received.verified == unchanged, received.verification.problems
    if not unchanged:
        assert received.verification.problems  # it says why
        assert contacts.get(alice) is None  # and pinned nothing
