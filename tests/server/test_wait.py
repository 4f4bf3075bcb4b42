"""WAIT against a real rune-server over TLS: woken by a stored message, ended by DONE
or by its lifetime, what it refuses, and that it tells and logs nothing new."""

from __future__ import annotations

import time

from rune_proto import status
from rune_proto.envelope import Content
from rune_proto.events import (
    Capa,
    Capabilities,
    Done,
    Listing,
    ListMessages,
    NewMail,
    Noop,
    Ok,
    Roger,
    Wait,
    WaitOver,
)
from tests.server_process import RuneServerProcess, ServerFactory

from .conftest import User, register_user
from .wire_client import WireClient, code_of

PROMPTLY = 5.0  # seconds: generous on a loaded machine; the bench measures the real figure


def _logged_in(server: RuneServerProcess, user: User) -> WireClient:
    client = WireClient.to(server)
    assert client.login(*user, server.server_public_key).code == status.AUTHENTICATED
    return client


def _send(server: RuneServerProcess, sender: User, receiver: User) -> None:
    with _logged_in(server, sender) as client:
        content = Content("hi", "are you there?")
        assert client.send_message(sender[0], sender[1], receiver[0], content) == Roger()


def _start_wait(client: WireClient) -> None:
    client.sock.sendall(client.conn.send(Wait()))


def test_capa_announces_wait(shared_server: RuneServerProcess) -> None:
    with WireClient.to(shared_server) as client:
        caps = client.request(Capa())
    assert isinstance(caps, Capabilities) and caps.wait_seconds == 240


def test_a_stored_message_wakes_the_wait(shared_server: RuneServerProcess) -> None:
    alice, bob = register_user(shared_server), register_user(shared_server)
    with _logged_in(shared_server, bob) as waiting:
        _start_wait(waiting)
        _send(shared_server, register_user(shared_server), alice)  # someone else's mail: no
        started = time.monotonic()
        _send(shared_server, alice, bob)
        assert waiting._next() == NewMail()
        assert time.monotonic() - started < PROMPTLY
        listing = waiting.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 1


def test_done_ends_the_wait_and_the_session_goes_on(shared_server: RuneServerProcess) -> None:
    bob = register_user(shared_server)
    with _logged_in(shared_server, bob) as waiting:
        _start_wait(waiting)
        assert waiting.request(Done()) == WaitOver()
        assert waiting.request(Noop()) == Ok()


def test_mail_since_login_or_list_answers_at_once(shared_server: RuneServerProcess) -> None:
    alice, bob = register_user(shared_server), register_user(shared_server)
    with _logged_in(shared_server, bob) as waiting:
        _send(shared_server, alice, bob)  # stored between login and WAIT: not missed
        assert waiting.request(Wait()) == NewMail()
        _send(shared_server, alice, bob)
        assert isinstance(waiting.request(ListMessages()), Listing)  # LIST saw it
        _start_wait(waiting)
        assert waiting.request(Done()) == WaitOver()


def test_anything_but_done_ends_the_wait_with_402(shared_server: RuneServerProcess) -> None:
    bob = register_user(shared_server)
    with _logged_in(shared_server, bob) as waiting:
        _start_wait(waiting)
        assert waiting.raw(b"LIST\r\n")[0] == status.BAD_SEQUENCE
        waiting.conn.receive_data(b"402 x\r\n")  # keep the test's own state machine in step
        waiting._next()
        assert waiting.request(Noop()) == Ok()


def test_wait_needs_a_login(shared_server: RuneServerProcess) -> None:
    with WireClient.to(shared_server) as client:
        assert client.raw(b"WAIT\r\n")[0] == status.LOGIN_REQUIRED


def test_the_lifetime_ends_the_wait_and_a_late_done_is_dropped(
    rune_server: ServerFactory,
) -> None:
    server = rune_server("free", wait_lifetime=1, idle_timeout=2)
    bob = register_user(server)
    with _logged_in(server, bob) as waiting:
        with WireClient.to(server) as client:
            assert isinstance(caps := client.request(Capa()), Capabilities)
            assert caps.wait_seconds == 1
        for _ in range(3):  # three lifetimes outlast the 2 s idle timeout: waiting is not idle
            _start_wait(waiting)
            assert waiting._next() == WaitOver()
        waiting.sock.sendall(b"DONE\r\n")  # as if it crossed the 281 on the wire
        assert waiting.request(Noop()) == Ok()
    server.stop()
    log = server.stderr_text()
    assert str(bob[0]) not in log and "wait" not in log.lower(), log
    assert "280" not in log and "281" not in log, log  # not even counted


def test_a_wait_outlives_the_idle_timeout(rune_server: ServerFactory) -> None:
    server = rune_server("free", wait_lifetime=3, idle_timeout=1)
    bob = register_user(server)
    with _logged_in(server, bob) as waiting:
        started = time.monotonic()
        _start_wait(waiting)
        assert waiting._next() == WaitOver()  # not 421 idle timeout after 1 s
        assert time.monotonic() - started >= 2.5
        assert waiting.request(Noop()) == Ok()


def test_shutdown_tells_a_waiting_client_421(rune_server: ServerFactory) -> None:
    server = rune_server("free")
    bob = register_user(server)
    with _logged_in(server, bob) as waiting:
        _start_wait(waiting)
        assert server.stop() == 0
        reply = waiting._next()
    assert code_of(reply) == status.CLOSING
