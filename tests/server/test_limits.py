"""Hard limits: line length, idle timeout, connection cap."""

from __future__ import annotations

import time

import pytest

from rune_proto import status
from rune_proto.events import ErrorReply, Greeting, Noop, Ok
from tests.server_process import RuneServerProcess, ServerFactory

from .wire_client import WireClient


def test_oversized_line_is_414_and_the_connection_stays_usable(
    shared_server: RuneServerProcess,
) -> None:
    with WireClient.to(shared_server) as client:
        code, text = client.raw(b"NOOP " + b"x" * 10_000 + b"\r\n")
        assert code == status.LINE_TOO_LONG and "4096" in text
        assert client.request(Noop()) == Ok()
        # Far beyond the limit, sent in one go: still one 414, still usable.
        assert client.raw(b"Z" * (2 * 1024 * 1024) + b"\n")[0] == status.LINE_TOO_LONG
        assert client.request(Noop()) == Ok()


def test_idle_connection_gets_421_and_is_closed(rune_server: ServerFactory) -> None:
    server = rune_server(idle_timeout=1)
    with WireClient.to(server) as client:
        started = time.monotonic()
        assert client.read_line() == (status.CLOSING, "idle timeout")
        assert 0.5 < time.monotonic() - started < 5
        assert client.is_closed()
    with WireClient.to(server) as client:  # a client dribbling bytes is cut off all the same
        started = time.monotonic()
        client.sock.sendall(b"NO")
        time.sleep(0.6)
        client.sock.sendall(b"O")
        assert client.read_line() == (status.CLOSING, "idle timeout")
        assert time.monotonic() - started < 5
    with WireClient.to(server) as client:  # a client that keeps talking is not
        for _ in range(4):
            time.sleep(0.4)
            assert client.request(Noop()) == Ok()


def test_connections_over_the_limit_get_421_instead_of_the_greeting(
    rune_server: ServerFactory,
) -> None:
    server = rune_server(max_connections=2)
    first, second = WireClient.to(server), WireClient.to(server)
    assert isinstance(first.greeting, Greeting) and isinstance(second.greeting, Greeting)
    with WireClient.to(server) as third:
        assert third.greeting == ErrorReply(status.CLOSING, "too many connections")
        assert third.is_closed()
    first.close()
    deadline = time.monotonic() + 5
    while True:  # the slot frees once the server has seen the close
        with WireClient.to(server) as again:
            if isinstance(again.greeting, Greeting):
                assert again.request(Noop()) == Ok()
                break
        if time.monotonic() > deadline:
            pytest.fail("a freed connection slot was never reused")
        time.sleep(0.05)
    assert second.request(Noop()) == Ok()
    second.close()
