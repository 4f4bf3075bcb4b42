"""Hard limits: line length, idle timeout, connection cap."""

from __future__ import annotations

import select
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
        for byte in b"NOOP NOOP NOOP NOOP":  # a byte every 0.3 s: 5.7 s unless cut off
            readable, _, _ = select.select([client.sock], [], [], 0.3)
            if readable or client.sock.pending():
                break
            client.sock.sendall(bytes([byte]))
        cut_after = time.monotonic() - started
        assert client.read_line() == (status.CLOSING, "idle timeout")
        # Bytes without a whole line do not postpone the deadline (a reset per byte
        # would keep this connection open for as long as the dribble lasts).
        assert 0.5 < cut_after < 4, cut_after
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
