"""WAIT and DONE in the sans-I/O core: states on both sides, the DONE that crosses a
reply, what a server must refuse while waiting, and the CAPA line that announces it."""

from __future__ import annotations

import pytest

from rune_proto import status
from rune_proto.address import parse_address
from rune_proto.connection import Connection, Role, State
from rune_proto.errors import LocalProtocolError, RemoteProtocolError
from rune_proto.events import (
    NEED_DATA,
    PAUSED,
    Authenticated,
    Capa,
    Capabilities,
    Done,
    ErrorReply,
    Greeting,
    Login,
    LoginNonce,
    NewMail,
    Noop,
    Ok,
    Proof,
    Wait,
    WaitOver,
)
from rune_proto.keys import Identity
from rune_proto.wire import format_reply, parse_reply

ALICE = parse_address("alice@example.org")
SERVER_KEY = Identity.generate().public


def _logged_in() -> tuple[Connection, Connection]:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.receive_data(server.send(Greeting(("rune/1",))))
    client.next_event()
    for command, reply in ((Login(ALICE), LoginNonce(b"n")), (Proof(b"p"), Authenticated(ALICE))):
        server.receive_data(client.send(command))
        assert server.next_event() == command
        client.receive_data(server.send(reply))
        assert client.next_event() == reply
    return client, server


def _start_wait() -> tuple[Connection, Connection]:
    client, server = _logged_in()
    server.receive_data(client.send(Wait()))
    assert server.next_event() == Wait()
    assert client.state is server.state is State.WAITING
    assert server.next_event() is NEED_DATA  # it listens for DONE, and owes the reply
    return client, server


def test_new_mail_ends_the_wait_on_both_sides() -> None:
    client, server = _start_wait()
    client.receive_data(server.send(NewMail()))
    assert client.next_event() == NewMail()
    assert client.state is server.state is State.AUTHENTICATED


def test_done_is_answered_by_the_waits_281_and_nothing_else() -> None:
    client, server = _start_wait()
    server.receive_data(client.send(Done()))
    assert server.next_event() == Done()
    assert server.wait_done
    assert server.next_event() is PAUSED  # now the WAIT's reply is owed
    with pytest.raises(LocalProtocolError):
        client.send(Done())  # only once
    client.receive_data(server.send(WaitOver()))
    assert client.next_event() == WaitOver()
    assert client.state is server.state is State.AUTHENTICATED
    server.receive_data(client.send(Noop()))
    assert server.next_event() == Noop()  # no DONE is swallowed after a DONE-ended wait


def test_a_done_crossing_the_servers_reply_is_dropped_once() -> None:
    client, server = _start_wait()
    reply = server.send(WaitOver())  # the lifetime ended ...
    server.receive_data(client.send(Done()))  # ... as the client gave up
    client.receive_data(reply)
    assert client.next_event() == WaitOver()
    assert server.next_event() is NEED_DATA  # the late DONE: no reply, no error
    server.receive_data(client.send(Noop()))
    assert server.next_event() == Noop()
    client.receive_data(server.send(Ok()))
    assert client.next_event() == Ok()
    server.receive_data(b"DONE\r\n")  # a second one is an error like any
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status == status.BAD_SEQUENCE


def test_anything_but_done_while_waiting_ends_the_wait_with_402() -> None:
    client, server = _start_wait()
    server.receive_data(b"LIST\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status == status.BAD_SEQUENCE and not info.value.fatal
    assert server.next_event() is PAUSED
    client.receive_data(server.send(ErrorReply(status.BAD_SEQUENCE, "only DONE")))
    assert client.next_event() == ErrorReply(status.BAD_SEQUENCE, "only DONE")
    assert client.state is server.state is State.AUTHENTICATED
    with pytest.raises(LocalProtocolError):
        client.send(Done())  # the wait is over


def test_the_client_sends_nothing_but_done_while_waiting() -> None:
    client, _ = _start_wait()
    with pytest.raises(LocalProtocolError) as info:
        client.send(Noop())
    assert info.value.status == status.BAD_SEQUENCE


def test_wait_needs_a_login() -> None:
    server = Connection(Role.SERVER)
    server.send(Greeting(("rune/1",)))
    server.receive_data(b"WAIT\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status == status.LOGIN_REQUIRED


def test_capa_announces_the_longest_wait_and_older_servers_announce_none() -> None:
    caps = Capabilities(("rune/1",), "example.org", ("free",), 1024, 4096, SERVER_KEY, 300)
    lines = format_reply(caps).decode().split("\r\n")
    assert "WAIT 300" in lines
    body = [line for line in lines[1:] if line and line != "."]
    assert parse_reply(Capa(), 211, "capabilities follow", body) == caps
    older = [line for line in body if not line.startswith("WAIT")]
    parsed = parse_reply(Capa(), 211, "capabilities follow", older)
    assert isinstance(parsed, Capabilities) and parsed.wait_seconds is None


def test_280_answers_only_a_wait() -> None:
    assert parse_reply(Wait(), 280, "new mail") == NewMail()
    assert parse_reply(Wait(), 281, "wait over") == WaitOver()
    with pytest.raises(RemoteProtocolError) as info:
        parse_reply(Noop(), 280, "new mail")
    assert info.value.fatal
