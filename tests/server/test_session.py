"""Login, discovery, the state machine's refusals, and the per-connection failure budget."""

from __future__ import annotations

from collections.abc import Callable

from rune_proto import status
from rune_proto.address import random_address
from rune_proto.events import (
    Authenticated,
    Bye,
    Capa,
    Capabilities,
    ErrorReply,
    Greeting,
    KeyFound,
    Login,
    LoginNonce,
    Lookup,
    Noop,
    Ok,
    Proof,
    Quit,
    Send,
    SendReady,
)
from rune_proto.handshake import login_proof
from rune_proto.keys import Identity
from tests.server_process import RuneServerProcess, ServerFactory

from .conftest import User
from .wire_client import WireClient

AUTH_FAILED = ErrorReply(status.AUTHENTICATION_FAILED, "authentication failed")


def test_greeting_and_capabilities_name_the_domain_and_limits(
    shared_server: RuneServerProcess,
) -> None:
    with WireClient.to(shared_server) as client:
        assert client.greeting == Greeting(("rune/1",), "Rune is Not Email")
        assert client.tls_pin == shared_server.tls_pin
        capabilities = client.request(Capa())
        assert capabilities == Capabilities(
            versions=("rune/1",),
            domain=shared_server.domain,
            registration=("free", "invite"),
            max_payload=256 * 1024,
            max_line=4096,
            server_key=shared_server.server_public_key,
            wait_seconds=240,
            pipeline=("SEND",),
        )


def test_login_succeeds_with_the_registered_key(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    address, identity = new_user()
    with WireClient.to(shared_server) as client:
        reply = client.login(address, identity, shared_server.server_public_key)
        assert reply == Authenticated(address)
        assert client.request(Capa()).code == status.CAPABILITIES  # CAPA after login too


def test_wrong_key_fails_exactly_like_an_unknown_address(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    address, _ = new_user()
    unknown = random_address(shared_server.domain)
    server_key = shared_server.server_public_key
    with WireClient.to(shared_server) as client:
        wrong_key = client.login(address, Identity.generate(), server_key)
        assert client.request(Noop()) == Ok()  # a failed login does not close
        no_account = client.login(unknown, Identity.generate(), server_key)
    assert wrong_key == no_account == AUTH_FAILED


def test_login_nonce_is_given_for_unknown_addresses_too(shared_server: RuneServerProcess) -> None:
    with WireClient.to(shared_server) as client:
        first = client.request(Login(random_address(shared_server.domain)))
        assert isinstance(first, LoginNonce) and len(first.nonce) == 32
        assert client.request(Proof(bytes(64))) == AUTH_FAILED


def test_proof_for_another_nonce_fails(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    address, identity = new_user()
    server_key = shared_server.server_public_key
    with WireClient.to(shared_server) as client:
        old = client.request(Login(address))
        assert isinstance(old, LoginNonce)
        assert client.request(Proof(bytes(64))) == AUTH_FAILED
        assert isinstance(client.request(Login(address)), LoginNonce)
        replayed = login_proof(identity, address, server_key, old.nonce)
        assert client.request(Proof(replayed)) == AUTH_FAILED


def test_mailbox_commands_before_login_are_401(shared_server: RuneServerProcess) -> None:
    some = random_address(shared_server.domain)
    with WireClient.to(shared_server) as client:
        for line in (b"LIST", b"SEND " + str(some).encode(), b"LOOKUP " + str(some).encode()):
            code, _ = client.raw(line + b"\r\n")
            assert code == status.LOGIN_REQUIRED, line
        assert client.raw(b"NOOP\r\n")[0] == status.OK


def test_commands_out_of_sequence_are_402(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    address, identity = new_user()
    with WireClient.to(shared_server) as client:
        assert client.raw(b"PROOF " + b"A" * 86 + b"\r\n")[0] == status.BAD_SEQUENCE
        assert client.raw(b"CHALLANGE_ACCEPTED AAAA\r\n")[0] == status.BAD_SEQUENCE
        assert client.login(address, identity, shared_server.server_public_key).code == 230
        message = f"MESSAGE {address} AAAA\r\n".encode()
        assert client.raw(message)[0] == status.BAD_SEQUENCE  # no SEND first
        assert client.raw(f"LOGIN {address}\r\n".encode())[0] == status.BAD_SEQUENCE


def test_lookup_returns_the_key_or_404(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    (me, identity), (other, other_identity) = new_user(), new_user()
    with WireClient.to(shared_server) as client:
        client.login(me, identity, shared_server.server_public_key)
        assert client.request(Lookup(other)) == KeyFound(other, other_identity.public)
        missing = client.request(Lookup(random_address(shared_server.domain)))
        assert missing == ErrorReply(status.NOT_FOUND, "not found")


def test_quit_says_bye_and_closes(shared_server: RuneServerProcess) -> None:
    with WireClient.to(shared_server) as client:
        assert client.request(Quit()) == Bye()
        assert client.is_closed()


def test_unknown_command_is_400_and_the_connection_stays_usable(
    shared_server: RuneServerProcess,
) -> None:
    with WireClient.to(shared_server) as client:
        code, text = client.raw(b"FROBNICATE now\r\n")
        assert code == status.SYNTAX_ERROR and "unknown command" in text
        assert client.raw(b"noop\r\n") == (status.OK, "OK")  # verbs are case-insensitive


def test_too_many_failures_is_429_and_closes(rune_server: ServerFactory) -> None:
    server = rune_server(max_failures=3)
    with WireClient.to(server) as client:
        for _ in range(3):
            assert client.raw(b"BOGUS\r\n")[0] == status.SYNTAX_ERROR
        assert client.raw(b"NOOP\r\n")[0] == status.OK  # successes do not count
        assert client.raw(b"BOGUS\r\n") == (status.TOO_MANY_FAILURES, "too many failures")
        assert client.is_closed()
    with WireClient.to(server) as client:  # the budget is per connection
        assert client.raw(b"BOGUS\r\n")[0] == status.SYNTAX_ERROR


def test_noop_while_sending_abandons_the_send(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    (me, identity), (other, _) = new_user(), new_user()
    with WireClient.to(shared_server) as client:
        client.login(me, identity, shared_server.server_public_key)
        assert isinstance(client.request(Send(other)), SendReady)
        assert client.request(Noop()) == Ok()
        assert client.raw(f"MESSAGE {me} AAAA\r\n".encode())[0] == status.BAD_SEQUENCE
