"""Registration, free and by invitation, with the seed's codes and close rules."""

from __future__ import annotations

import os

from rune_proto import status
from rune_proto.address import Address, random_address
from rune_proto.encoding import b64encode
from rune_proto.events import (
    Challenge,
    ChallengeAccepted,
    ErrorReply,
    Register,
    Registered,
    RegisterInvitation,
    Reply,
)
from rune_proto.handshake import ANSWER_SIZE, answer_challenge
from rune_proto.keys import Identity
from tests.server_process import RuneServerProcess, ServerFactory

from .conftest import register_user
from .wire_client import WireClient


def test_free_registration_is_answered_with_registered(shared_server: RuneServerProcess) -> None:
    address, identity = random_address(shared_server.domain), Identity.generate()
    with WireClient.to(shared_server) as client:
        challenge = client.request(Register(address, identity.public))
        assert isinstance(challenge, Challenge)
        assert challenge.server_key == shared_server.server_public_key
        answer = answer_challenge(identity, address, challenge.server_key, challenge.challenge)
        assert client.request(ChallengeAccepted(answer)) == Registered(address)
        assert client.login(address, identity, shared_server.server_public_key).code == 230


def test_corrected_spelling_challenge_accepted_also_registers(
    shared_server: RuneServerProcess,
) -> None:
    address, identity = random_address(shared_server.domain), Identity.generate()
    with WireClient.to(shared_server) as client:
        challenge = client.request(Register(address, identity.public))
        assert isinstance(challenge, Challenge)
        answer = answer_challenge(identity, address, challenge.server_key, challenge.challenge)
        line = f"CHALLENGE_ACCEPTED {b64encode(answer)}\r\n".encode()
        assert client.raw(line) == (status.REGISTERED, f"registered {address}")


def test_address_of_another_domain_is_403(shared_server: RuneServerProcess) -> None:
    with WireClient.to(shared_server) as client:
        reply = client.request(Register(random_address("elsewhere"), Identity.generate().public))
        assert isinstance(reply, ErrorReply) and reply.status == status.BAD_ADDRESS
        assert client.raw(b"NOOP\r\n")[0] == status.OK


def test_taken_address_is_409(shared_server: RuneServerProcess) -> None:
    address, _ = register_user(shared_server)
    with WireClient.to(shared_server) as client:
        reply = client.request(Register(address, Identity.generate().public))
        assert isinstance(reply, ErrorReply) and reply.status == status.ADDRESS_TAKEN


def test_failed_challenge_is_410_and_closes_and_registers_nothing(
    shared_server: RuneServerProcess,
) -> None:
    address, identity = random_address(shared_server.domain), Identity.generate()
    with WireClient.to(shared_server) as client:
        assert isinstance(client.request(Register(address, identity.public)), Challenge)
        reply = client.request(ChallengeAccepted(os.urandom(ANSWER_SIZE)))
        assert reply == ErrorReply(status.CHALLENGE_FAILED, "registration challenge failed")
        assert client.is_closed()
    # The address is still free.
    assert register_user_at(shared_server, address, identity) == Registered(address)


def test_answer_to_another_connections_challenge_fails(
    shared_server: RuneServerProcess,
) -> None:
    """Each challenge has its own nonce: a valid answer cannot be replayed elsewhere."""
    address, identity = random_address(shared_server.domain), Identity.generate()
    with WireClient.to(shared_server) as first, WireClient.to(shared_server) as second:
        one = first.request(Register(address, identity.public))
        two = second.request(Register(address, identity.public))
        assert isinstance(one, Challenge) and isinstance(two, Challenge)
        answer = answer_challenge(identity, address, one.server_key, one.challenge)
        reply = second.request(ChallengeAccepted(answer))
        assert isinstance(reply, ErrorReply) and reply.status == status.CHALLENGE_FAILED
        assert second.is_closed()
        assert first.request(ChallengeAccepted(answer)) == Registered(address)


def register_user_at(server: RuneServerProcess, address: Address, identity: Identity) -> Reply:
    with WireClient.to(server) as client:
        return client.register(address, identity)


def test_invitation_registers_exactly_once(shared_server: RuneServerProcess) -> None:
    address, identity = random_address(shared_server.domain), Identity.generate()
    token = shared_server.invite(str(address))
    with WireClient.to(shared_server) as client:
        assert client.register(address, identity, token) == Registered(address)
    with WireClient.to(shared_server) as client:
        reply = client.register(address, Identity.generate(), token)
        assert reply == ErrorReply(status.INVITATION_INVALID, "invitation token invalid")
        assert client.is_closed()


def test_wrong_invitation_token_is_407_and_closes(shared_server: RuneServerProcess) -> None:
    address = random_address(shared_server.domain)
    shared_server.invite(str(address))
    with WireClient.to(shared_server) as client:
        reply = client.request(
            RegisterInvitation(address, b64encode(os.urandom(24)), Identity.generate().public)
        )
        assert reply == ErrorReply(status.INVITATION_INVALID, "invitation token invalid")
        assert client.is_closed()


def test_invitation_is_bound_to_its_address(shared_server: RuneServerProcess) -> None:
    token = shared_server.invite(str(random_address(shared_server.domain)))
    other = random_address(shared_server.domain)
    with WireClient.to(shared_server) as client:
        reply = client.request(RegisterInvitation(other, token, Identity.generate().public))
        assert isinstance(reply, ErrorReply) and reply.status == status.INVITATION_INVALID
        assert client.is_closed()


def test_invitation_survives_a_failed_challenge(shared_server: RuneServerProcess) -> None:
    """The token is consumed only when the account is created."""
    address, identity = random_address(shared_server.domain), Identity.generate()
    token = shared_server.invite(str(address))
    with WireClient.to(shared_server) as client:
        challenge = client.request(RegisterInvitation(address, token, identity.public))
        assert isinstance(challenge, Challenge)
        reply = client.request(ChallengeAccepted(os.urandom(ANSWER_SIZE)))
        assert isinstance(reply, ErrorReply) and reply.status == status.CHALLENGE_FAILED
    with WireClient.to(shared_server) as client:
        assert client.register(address, identity, token) == Registered(address)


def test_closed_registration_refuses_both_modes(rune_server: ServerFactory) -> None:
    server = rune_server("closed")
    address, identity = random_address(server.domain), Identity.generate()
    with WireClient.to(server) as client:
        free = client.request(Register(address, identity.public))
        assert free == ErrorReply(
            status.FREE_REGISTRATION_UNAVAILABLE, "free registration not available"
        )
        invited = client.request(RegisterInvitation(address, "A" * 32, identity.public))
        assert invited == ErrorReply(
            status.INVITATION_REGISTRATION_UNAVAILABLE, "invitation registration not available"
        )
        assert client.raw(b"NOOP\r\n")[0] == status.OK  # neither code closes


def test_invite_only_server_refuses_free_registration(rune_server: ServerFactory) -> None:
    server = rune_server("invite")
    address, identity = random_address(server.domain), Identity.generate()
    with WireClient.to(server) as client:
        reply = client.request(Register(address, identity.public))
        assert isinstance(reply, ErrorReply)
        assert reply.status == status.FREE_REGISTRATION_UNAVAILABLE
    token = server.invite(str(address))
    with WireClient.to(server) as client:
        assert client.register(address, identity, token) == Registered(address)
