"""The bound SEND (docs/protocol.md §9.9) against a real rune-server over TLS.

SEND with the receiver's key fingerprint and MESSAGE are written back to back; the
server answers both in order, refuses a MESSAGE sealed to a key the receiver no longer
has, and drops the MESSAGE behind any refused SEND without losing the connection.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

from rune_proto import status
from rune_proto.address import Address, random_address
from rune_proto.envelope import Content
from rune_proto.events import (
    BoundSend,
    Capa,
    Capabilities,
    ErrorReply,
    KeyFound,
    Listing,
    ListMessages,
    Lookup,
    Message,
    Noop,
    Ok,
    Registered,
    Roger,
    SendReady,
)
from rune_proto.keys import Identity, PublicKey
from rune_proto.wire import format_command
from tests.server_process import RuneServerProcess, ServerFactory

from .conftest import User, register_user
from .test_admin import admin, logged_in
from .wire_client import WireClient, client_payload

CONTENT = Content("pipelined", "one round trip")
DISCARDED = ErrorReply(status.BAD_SEQUENCE, "no send in progress; message discarded")


def _pair(
    server: RuneServerProcess, sender: User, receiver: Address, sealed_to: PublicKey
) -> tuple[BoundSend, Message]:
    """A bound SEND and its MESSAGE, sealed to ``sealed_to`` (the key the client holds)."""
    ready = SendReady(1 << 18, sealed_to, server.server_public_key)
    payload = client_payload(sender[0], sender[1], receiver, ready, CONTENT)
    return BoundSend(receiver, sealed_to.fingerprint()), Message(sender[0], payload)


def _mail_count(server: RuneServerProcess, user: User) -> int:
    with logged_in(server, user) as client:
        listing = client.request(ListMessages())
    assert isinstance(listing, Listing)
    return len(listing.entries)


def test_capa_announces_the_pipelined_send(shared_server: RuneServerProcess) -> None:
    with WireClient.to(shared_server) as client:
        caps = client.request(Capa())
    assert isinstance(caps, Capabilities) and caps.pipeline == ("SEND",)


def test_bound_send_and_message_written_together_are_stored(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    alice, bob = new_user(), new_user()
    with logged_in(shared_server, alice) as client:
        replies = client.pipeline(*_pair(shared_server, alice, bob[0], bob[1].public))
        assert isinstance(replies[0], SendReady) and replies[1] == Roger()
        assert replies[0].receiver_key == bob[1].public
        assert client.request(Noop()) == Ok()
    assert _mail_count(shared_server, bob) == 1


def test_both_replies_leave_in_one_tls_record(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    """One write for the pair: the client wakes once, not twice."""
    alice, bob = new_user(), new_user()
    with logged_in(shared_server, alice) as client:
        bound, message = _pair(shared_server, alice, bob[0], bob[1].public)
        client.sock.sendall(client.conn.send(bound) + client.conn.send(message))
        record = client.sock.recv(1 << 16)  # an SSL socket returns at most one record
    assert record.startswith(b"201 ") and record.endswith(b"\r\n202 ROGER\r\n"), record[-60:]


def test_a_message_sealed_to_a_stale_key_is_refused_and_not_stored(
    rune_server: ServerFactory,
) -> None:
    """The receiver was deleted and registered again with another key meanwhile."""
    server = rune_server()
    alice, bob = register_user(server), register_user(server)
    admin(server, "accounts", "delete", str(bob[0]), "--yes")
    admin(server, "accounts", "release", str(bob[0]))
    newcomer = (bob[0], Identity.generate())
    with WireClient.to(server) as client:
        assert client.register(*newcomer) == Registered(bob[0])
    with logged_in(server, alice) as client:
        deadline = time.monotonic() + 30  # until the server has forgotten the old key
        while True:
            found = client.request(Lookup(bob[0]))
            assert isinstance(found, KeyFound)
            if found.public_key == newcomer[1].public or time.monotonic() > deadline:
                break
        replies = client.pipeline(*_pair(server, alice, bob[0], bob[1].public))
        assert isinstance(replies[0], ErrorReply)
        assert replies[0].status == status.KEY_CHANGED == 417
        assert replies[1] == DISCARDED
        assert client.request(Noop()) == Ok()  # no desync
        replies = client.pipeline(*_pair(server, alice, bob[0], newcomer[1].public))
        assert replies[1] == Roger()
    assert _mail_count(server, newcomer) == 1  # only the one sealed to the new key


def test_refused_bound_sends_keep_the_connection_and_count_one_failure_each(
    rune_server: ServerFactory,
) -> None:
    server = rune_server(max_failures=10)
    alice = register_user(server)
    with logged_in(server, alice) as client:
        for _ in range(8):  # 16 errors if the discarded MESSAGEs counted: 429 long before
            nobody = random_address(server.domain)
            replies = client.pipeline(*_pair(server, alice, nobody, alice[1].public))
            assert replies == [ErrorReply(404, "not found"), DISCARDED]
        assert client.request(Noop()) == Ok()
        replies = client.pipeline(*_pair(server, alice, alice[0], alice[1].public))
        assert replies[1] == Roger()


def test_an_old_style_send_still_works(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    alice, bob = new_user(), new_user()
    with logged_in(shared_server, alice) as client:
        assert client.send_message(*alice, bob[0], CONTENT) == Roger()
    assert _mail_count(shared_server, bob) == 1


def test_a_message_without_a_send_is_refused_and_the_session_goes_on(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    alice, bob = new_user(), new_user()
    _, message = _pair(shared_server, alice, bob[0], bob[1].public)
    with logged_in(shared_server, alice) as client:
        code, _ = client.raw(format_command(message))  # longer than MAX_LINE outside SENDING
        assert code == status.LINE_TOO_LONG
        assert client.request(Noop()) == Ok()
    assert _mail_count(shared_server, bob) == 0


def test_two_messages_behind_one_bound_send_store_one(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    alice, bob = new_user(), new_user()
    bound, message = _pair(shared_server, alice, bob[0], bob[1].public)
    with logged_in(shared_server, alice) as client:
        extra = format_command(message)
        client.sock.sendall(client.conn.send(bound) + client.conn.send(message) + extra)
        assert isinstance(client._next(), SendReady)
        assert client._next() == Roger()
        assert client.read_line()[0] == status.LINE_TOO_LONG
        assert client.request(Noop()) == Ok()
    assert _mail_count(shared_server, bob) == 1


def test_a_huge_pipeline_is_read_only_as_fast_as_it_is_answered(
    rune_server: ServerFactory,
) -> None:
    """A client that writes without reading is held back by TCP, not by server memory."""
    server = rune_server()
    alice, bob = register_user(server), register_user(server)
    assert server.process is not None
    before = _rss_kib(server.process.pid)
    with logged_in(server, alice) as client:
        line = format_command(Lookup(bob[0]))  # 31 bytes in, 1.7 KB out
        sent = 0
        client.sock.settimeout(5.0)
        try:
            for _ in range(200_000):  # ~6 MB asked, ~340 MB of answers if all were held
                client.sock.sendall(line * 100)
                sent += 100
        except (TimeoutError, ssl.SSLError):
            pass
        grown = _rss_kib(server.process.pid) - before
        assert sent < 200_000 * 100, "the server kept reading a client that never reads"
        assert grown < 32 * 1024, f"the server grew by {grown} KiB"
    with logged_in(server, alice) as client:  # and it still serves
        assert client.request(Noop()) == Ok()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status_file:
        for line in status_file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
