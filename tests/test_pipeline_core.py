"""The bound SEND of docs/protocol.md §9.9 in the sans-I/O core, both roles back to back.

A client writes SEND (with the receiver's key fingerprint) and MESSAGE without waiting;
whatever the server answers the SEND, both sides must agree on the state and on which
reply belongs to which line, and the connection must stay usable.
"""

from __future__ import annotations

import pytest

from rune_proto import status
from rune_proto.connection import Connection, State
from rune_proto.errors import LocalProtocolError, RemoteProtocolError
from rune_proto.events import (
    DISCARDED,
    NEED_DATA,
    PAUSED,
    BoundSend,
    ConnectionClosed,
    ErrorReply,
    Event,
    Message,
    Noop,
    Ok,
    Roger,
    SendReady,
)
from tests.test_connection import ALICE, BOB, BOB_ID, MAX_PAYLOAD, SERVER_ID, Pair, pair_in

FINGERPRINT = BOB_ID.public.fingerprint()
BOUND = BoundSend(BOB, FINGERPRINT)
MESSAGE = Message(ALICE, b"sealed to bob" * 100)
READY = SendReady(MAX_PAYLOAD, BOB_ID.public, SERVER_ID.public)


def _pipelined(pair: Pair) -> None:
    """The client writes both lines before reading anything; the server reads the SEND."""
    data = pair.client.send(BOUND) + pair.client.send(MESSAGE)
    pair.server.receive_data(data)
    assert pair.server.next_event() == BOUND
    assert pair.server.next_event() is PAUSED  # one reply at a time, even pipelined


def _client_reads(client: Connection, *replies: bytes) -> list[Event]:
    client.receive_data(b"".join(replies))
    events = [client.next_event() for _ in replies]
    assert client.next_event() in (NEED_DATA, ConnectionClosed())
    return events


def test_bound_send_and_message_back_to_back_are_answered_in_order() -> None:
    pair = pair_in(State.AUTHENTICATED)
    _pipelined(pair)
    ready = pair.server.send(READY)
    assert pair.server.state is State.SENDING
    assert pair.server.next_event() == MESSAGE  # read under the MESSAGE line limit
    roger = pair.server.send(Roger())
    assert _client_reads(pair.client, ready, roger) == [READY, Roger()]
    pair.check(State.AUTHENTICATED)
    assert pair.client.max_payload == MAX_PAYLOAD


@pytest.mark.parametrize("code", [status.NOT_FOUND, status.KEY_CHANGED, status.BAD_ADDRESS])
def test_a_refused_bound_send_discards_its_message_on_both_sides(code: int) -> None:
    pair = pair_in(State.AUTHENTICATED)
    _pipelined(pair)
    refused = pair.server.send(ErrorReply(code, "no"))
    assert pair.server.next_event() is DISCARDED  # the MESSAGE, dropped unparsed
    assert pair.server.buffered == 0
    with pytest.raises(LocalProtocolError):
        pair.server.send(Roger())  # a discarded line gets an error, nothing else
    discarded = pair.server.send(ErrorReply(status.BAD_SEQUENCE, "message discarded"))
    events = _client_reads(pair.client, refused, discarded)
    assert [e.status for e in events] == [code, status.BAD_SEQUENCE]  # type: ignore[attr-defined]
    pair.check(State.AUTHENTICATED)
    pair.command(Noop())  # no desync: the next exchange is an ordinary one
    pair.reply(Ok())


def test_a_discarded_message_is_dropped_as_it_arrives_however_long() -> None:
    pair = pair_in(State.AUTHENTICATED)
    pair.server.receive_data(pair.client.send(BOUND))
    assert pair.server.next_event() == BOUND
    pair.server.send(ErrorReply(status.NOT_FOUND, "not found"))
    for _ in range(200):  # 200 x 64 KiB of one line, never held
        pair.server.receive_data(b"A" * 65536)
        assert pair.server.next_event() is NEED_DATA
        assert pair.server.buffered == 0
    pair.server.receive_data(b"\r\nNOOP\r\n")
    assert pair.server.next_event() is DISCARDED
    pair.server.send(ErrorReply(status.BAD_SEQUENCE, "message discarded"))
    assert pair.server.next_event() == Noop()


@pytest.mark.parametrize(
    ("line", "state", "code"),
    [
        (b"SEND bob@example.org !!!", State.AUTHENTICATED, status.SYNTAX_ERROR),
        (b"send bob@example.org " + b"A" * 42, State.AUTHENTICATED, status.SYNTAX_ERROR),
        (b"SEND bob " + b"A" * 43, State.AUTHENTICATED, status.BAD_ADDRESS),
        (b"SEND bob@example.org " + b"A" * 43, State.IDLE, status.LOGIN_REQUIRED),
        (b"SEND bob@example.org " + b"A" * 43, State.SENDING, status.BAD_SEQUENCE),
    ],
)
def test_any_refused_bound_send_line_discards_the_next_line(
    line: bytes, state: State, code: int
) -> None:
    """By its shape (SEND with more than one argument), valid or not: the client that
    wrote it wrote a MESSAGE behind it, which must not be read as a command."""
    pair = pair_in(state)
    pair.server.receive_data(line + b"\r\nMESSAGE alice@example.org AAAA\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.status == code
    pair.server.send(ErrorReply(code, "refused"))
    after = pair.server.state
    assert pair.server.next_event() is DISCARDED
    pair.server.send(ErrorReply(status.BAD_SEQUENCE, "message discarded"))
    expected = State.IDLE if state is State.IDLE else State.AUTHENTICATED
    assert pair.server.state is after is expected


def test_a_closing_answer_to_a_bound_send_closes_without_discarding() -> None:
    pair = pair_in(State.AUTHENTICATED)
    _pipelined(pair)
    closing = pair.server.send(ErrorReply(status.TOO_MANY_FAILURES, "too many failures"))
    assert pair.server.state is State.CLOSED
    assert _client_reads(pair.client, closing)[0] == ErrorReply(429, "too many failures")
    assert pair.client.state is State.CLOSED


def test_the_client_refuses_success_for_a_discarded_message() -> None:
    pair = pair_in(State.AUTHENTICATED)
    pair.client.send(BOUND)
    pair.client.send(MESSAGE)
    pair.client.receive_data(b"404 not found\r\n202 ROGER\r\n")
    assert pair.client.next_event() == ErrorReply(404, "not found")
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.next_event()
    assert info.value.fatal
    assert pair.client.state is State.CLOSED


def test_only_one_message_may_follow_a_bound_send() -> None:
    pair = pair_in(State.AUTHENTICATED)
    pair.client.send(BOUND)
    with pytest.raises(LocalProtocolError):
        pair.client.send(Noop())
    pair.client.send(MESSAGE)
    with pytest.raises(LocalProtocolError):
        pair.client.send(MESSAGE)


def test_a_message_written_after_the_refusal_is_still_the_discarded_line() -> None:
    """A client that read the SEND's error before writing its MESSAGE still owes it."""
    pair = pair_in(State.AUTHENTICATED)
    pair.server.receive_data(pair.client.send(BOUND))
    assert pair.server.next_event() == BOUND
    assert _client_reads(pair.client, pair.server.send(ErrorReply(404, "x")))[0].status == 404  # type: ignore[attr-defined]
    with pytest.raises(LocalProtocolError):
        pair.client.send(Noop())  # the server would drop it: the MESSAGE must come first
    pair.server.receive_data(pair.client.send(MESSAGE))
    assert pair.server.next_event() is DISCARDED
    reply = pair.server.send(ErrorReply(status.BAD_SEQUENCE, "message discarded"))
    assert _client_reads(pair.client, reply)[0] == ErrorReply(402, "message discarded")
    pair.check(State.AUTHENTICATED)
