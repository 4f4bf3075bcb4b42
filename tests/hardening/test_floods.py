"""Connection floods: slots are counted from accept and cannot be held before login.

Against a real rune-server over real TLS on 127.0.0.1, hostile connections come from
other loopback addresses (127.0.0.2 …) so the source-address rules apply:

- A real client registers, sends and retrieves while 300+ hostile connections (bare
  TCP, half-done handshakes, idle NOOP sessions) try to hold every slot.
- A handshake that never finishes is closed after ``handshake_timeout``.
- NOOP does not keep an anonymous connection past ``login_timeout``; a logged-in one
  is not cut by it.
- One source holds at most ``max_anonymous_per_source`` pre-login connections; when
  the pre-login share is full, a newcomer from another source displaces the oldest
  connection of the biggest holder, and a newcomer from the biggest one is refused.
- With a descriptor limit of 256 and more connections than that, the server lives,
  logs a bounded number of lines, and serves a real client during and after.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from rune_proto.address import parse_address
from rune_proto.client import connect
from rune_proto.keys import Identity
from rune_proto.server.admission import (
    Admission,
    Limits,
    RateLimitedLog,
    Verdict,
    fit_limits,
    source_of,
)
from tests.server_process import RuneServerProcess, ServerFactory

from .flood import Flood, client_hello
from .rawlink import RawLink, client_context, rss_kib

SOURCES = [f"127.0.0.{n}" for n in range(2, 10)]  # the real client comes from 127.0.0.1
CLIENT_DEADLINE = 30.0  # generous: a loaded 2-CPU CI box must not flake
FLOOD_START_DEADLINE = 90.0


async def open_from(server: RuneServerProcess, source: str) -> RawLink:
    """A TLS line link from ``source`` (a 127.0.0.x address), greeting read."""
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(
            server.host, server.port, ssl=client_context(), local_addr=(source, 0)
        )
        link = RawLink(reader, writer)
        link.greeting = await reader.readline()
    return link


async def real_client_round(server: RuneServerProcess, name: str) -> float:
    """Register, log in, send to oneself, list and retrieve; returns the seconds it took."""
    started = time.monotonic()
    identity = Identity.generate()
    async with asyncio.timeout(CLIENT_DEADLINE):
        async with connect(
            server.host, server.port, trust_on_first_use=True, ephemeral=True
        ) as session:
            assert session.capabilities is not None
            address = parse_address(f"{name}@{session.capabilities.domain}")
            await session.register(address, identity)
            await session.login(address, identity)
            await session.send(address, "under siege", "still here")
            listing = await session.list()
            assert len(listing) == 1
            message = await session.retrieve(listing[0].id)
            assert (message.subject, message.body) == ("under siege", "still here")
    return time.monotonic() - started


# --- the bookkeeping alone -------------------------------------------------------------


def test_admission_rules() -> None:
    """Per-source cap, displacement of the biggest holder, the logged-in reserve."""
    admission = Admission(Limits(slots=6, anonymous=4, per_source=3, sockets=100, refusing=1))
    flood = [admission.arrive(("10.0.0.1", n)) for n in range(3)]
    assert [verdict for verdict, _ in flood] == [Verdict.ADMIT] * 3
    assert admission.arrive(("10.0.0.1", 9))[0] is Verdict.REFUSE  # over its per-source cap
    assert admission.arrive(("10.0.0.1", 9))[0] is Verdict.DROP  # no refusal budget left
    verdict, user = admission.arrive(("10.0.0.2", 1))
    assert verdict is Verdict.ADMIT and user is not None  # the share (4) is now full
    verdict, newcomer = admission.arrive(("10.0.0.3", 1))
    assert verdict is Verdict.ADMIT and newcomer is not None
    first = flood[0][1]
    assert first is not None and first.evicted  # the oldest of the biggest holder went
    admission.log_in(user)  # a login moves a slot into the reserve
    assert (admission.anonymous, admission.logged_in) == (3, 1)
    assert admission.arrive(("10.0.0.4", 1))[0] is Verdict.ADMIT
    # The share is full again: 10.0.0.1 (two) gives way to 10.0.0.3 (one) ...
    assert admission.arrive(("10.0.0.3", 2))[0] is Verdict.ADMIT
    second = flood[1][1]
    assert second is not None and second.evicted
    # ... and now 10.0.0.3 is the biggest holder: it cannot take another, a fresh source can.
    admission.refused()
    assert admission.arrive(("10.0.0.3", 3))[0] is Verdict.REFUSE
    assert admission.arrive(("10.0.0.5", 1))[0] is Verdict.ADMIT
    assert newcomer.evicted and not user.evicted
    assert (admission.anonymous, admission.logged_in) == (4, 1)


def test_sockets_over_the_descriptor_budget_are_dropped() -> None:
    admission = Admission(Limits(slots=10, anonymous=10, per_source=10, sockets=2))
    assert [admission.arrive(("10.0.0.1", n))[0] for n in range(3)] == [
        Verdict.ADMIT,
        Verdict.ADMIT,
        Verdict.DROP,  # slots are free, descriptors are not
    ]
    admission.socket_closed()  # the dropped one
    admission.socket_closed()  # and one that had closed (its slot may still be held)
    assert admission.arrive(("10.0.0.2", 1))[0] is Verdict.ADMIT


def test_sources_are_addresses_and_ipv6_networks() -> None:
    assert source_of(("127.0.0.5", 4242)) == "127.0.0.5"
    assert source_of(("::ffff:10.1.2.3", 1, 0, 0)) == "10.1.2.3"
    one_host = {source_of((f"2001:db8:1:2::{n:x}", 1, 0, 0)) for n in range(1, 300)}
    assert one_host == {"2001:db8:1:2::/64"}  # a host's /64 is one source
    assert source_of(("2001:db8:1:3::1", 1, 0, 0)) != "2001:db8:1:2::/64"


def test_flood_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warnings = RateLimitedLog(interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="rune_proto.server"):
        for step in range(3000):  # 30 s of a warning every 10 ms
            now[0] = step / 100
            warnings.warning("socket.accept() out of system resource")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3, lines
    assert lines[1] == "socket.accept() out of system resource (999 more like it in the last 10 s)"


def test_limits_fit_the_descriptor_limit() -> None:
    assert fit_limits(256, 64, 32, descriptors=20000).slots == 256
    small = fit_limits(256, 64, 32, descriptors=256)
    assert small.slots < small.sockets <= 256 - 64 and small.anonymous < small.slots
    assert fit_limits(2, 64, 32, descriptors=20000).anonymous == 2  # no reserve in a tiny one


# --- against a real server -------------------------------------------------------------


@pytest.mark.slow
async def test_a_real_client_gets_in_while_300_hostile_connections_hold_on(
    rune_server: ServerFactory,
) -> None:
    server = rune_server()  # the default limits
    flood = Flood(server.host, server.port, SOURCES)
    flood.start(bare=60, half=40, noop=270)
    try:
        await flood.wait_started(FLOOD_START_DEADLINE)
        await flood.wait_churn(200, FLOOD_START_DEADLINE)  # the refused ones are back
        held = flood.open_now
        took = await real_client_round(server, "alice")
        assert server.process is not None
        rss = rss_kib(server.process.pid)
        print(
            f"\n{flood.workers} hostile workers, {held} connections held when the client"
            f" started; register+login+send+list+retrieve took {took:.2f} s; server RSS"
            f" {rss // 1024} MiB; flood: {dict(sorted(flood.counts.items()))}"
        )
    finally:
        await flood.stop()
    assert server.process is not None and server.process.poll() is None


@pytest.mark.slow
async def test_an_unfinished_handshake_is_closed_after_handshake_timeout(
    rune_server: ServerFactory,
) -> None:
    server = rune_server(handshake_timeout=1)
    for first_flight in (b"", client_hello()):  # nothing at all, or a ClientHello only
        started = time.monotonic()
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(first_flight)
        try:
            async with asyncio.timeout(20):
                while await reader.read(65536):
                    pass
        except OSError:
            pass
        finally:
            writer.transport.abort()
        closed_after = time.monotonic() - started
        print(
            f"\nhandshake_timeout=1, first flight {len(first_flight)} bytes: closed after"
            f" {closed_after:.2f} s"
        )
        assert 0.8 < closed_after < 10
    link = await RawLink.open(server.host, server.port)  # a real handshake still works
    assert link.greeting.startswith(b"HOWDY rune/1")
    await link.close()


@pytest.mark.slow
async def test_noop_does_not_keep_an_anonymous_connection_past_login_timeout(
    rune_server: ServerFactory,
) -> None:
    server = rune_server(login_timeout=2)
    link = await RawLink.open(server.host, server.port)
    started = time.monotonic()
    last = None
    while time.monotonic() - started < 15:  # bounded: the server must close well before
        last = await link.request(b"NOOP\r\n")
        if last is None or last.code != 200:
            break
        await asyncio.sleep(0.2)  # pacing the NOOPs, not waiting for an event
    cut_after = time.monotonic() - started
    await link.close()
    assert last is not None and last.line == b"421 login timeout", last
    assert 1.5 < cut_after < 8, cut_after
    # A logged-in client is not cut by it: only its idle timeout applies.
    identity = Identity.generate()
    async with connect(
        server.host, server.port, trust_on_first_use=True, ephemeral=True
    ) as session:
        opened = time.monotonic()
        assert session.capabilities is not None
        address = parse_address(f"bob@{session.capabilities.domain}")
        await session.register(address, identity)
        await session.login(address, identity)
        while time.monotonic() - opened < 3.5:
            await session.noop()
            await asyncio.sleep(0.2)
    print(f"\nlogin_timeout=2: a NOOPing anonymous connection was cut after {cut_after:.2f} s")


@pytest.mark.slow
async def test_one_source_cannot_take_the_pre_login_share(rune_server: ServerFactory) -> None:
    # 8 slots, 2 kept for logged-in clients: 6 before login, at most 4 per source.
    server = rune_server(
        max_connections=8, login_reserved_connections=2, max_anonymous_per_source=4
    )
    first = [await open_from(server, "127.0.0.2") for _ in range(4)]
    links = list(first)
    try:
        assert all(link.greeting.startswith(b"HOWDY") for link in first)
        over = await open_from(server, "127.0.0.2")
        links.append(over)
        assert over.greeting == b"421 too many connections\r\n"  # its per-source cap
        others = [await open_from(server, "127.0.0.3") for _ in range(2)]
        links += others
        assert all(link.greeting.startswith(b"HOWDY") for link in others)  # share now full
        newcomer = await open_from(server, "127.0.0.4")
        links.append(newcomer)
        assert newcomer.greeting.startswith(b"HOWDY")  # it displaced 127.0.0.2's oldest
        displaced = await first[0].reply()
        assert displaced is not None and displaced.line == b"421 too many connections"
        assert await first[0].closed(timeout=10)
        for link in [*first[1:], *others]:  # the others are still served
            reply = await link.request(b"NOOP\r\n")
            assert reply is not None and reply.code == 200
    finally:
        for link in links:
            await link.close()


@pytest.mark.slow
async def test_running_out_of_descriptors_is_survived(rune_server: ServerFactory) -> None:
    server = rune_server(nofile=256)
    assert server.process is not None
    lines_before = len(server.stderr_text().splitlines())
    flood = Flood(server.host, server.port, SOURCES[:4])
    flood.start(bare=400)
    try:
        await flood.wait_started(FLOOD_START_DEADLINE)
        during = await real_client_round(server, "carol")
        held = flood.open_now
        # Keep the flood on past one warning interval (10 s), so warnings would repeat.
        flooding_since = time.monotonic()
        while time.monotonic() - flooding_since < 12:
            await asyncio.sleep(0.5)
    finally:
        await flood.stop()
    assert server.process.poll() is None, "the server died"
    after = await real_client_round(server, "dave")
    stderr = server.stderr_text().splitlines()
    flood_lines = len(stderr) - lines_before
    print(
        f"\nRLIMIT_NOFILE=256, {flood.workers} bare TCP workers ({held} held open):"
        f" client round {during:.2f} s during the flood, {after:.2f} s after;"
        f" {flood_lines} log lines; flood: {dict(sorted(flood.counts.items()))}"
    )
    print("\n".join(stderr[lines_before:]))
    assert flood_lines <= 20, "\n".join(stderr[lines_before:][:40])
    # Each socket is judged before the next accept(), so the limit itself is never hit.
    assert not [line for line in stderr if "out of system resource" in line]


@pytest.mark.slow
async def test_shutdown_closes_connections_still_in_their_handshake(
    rune_server: ServerFactory,
) -> None:
    server = rune_server()
    assert server.process is not None
    bare = [await asyncio.open_connection(server.host, server.port) for _ in range(5)]
    idle = await RawLink.open(server.host, server.port)
    started = time.monotonic()
    code = server.stop()  # SIGTERM: no wait for the handshakes' 10 s deadline
    stopped_after = time.monotonic() - started
    for _, writer in bare:
        writer.transport.abort()
    await idle.close()
    assert code == 0 and stopped_after < 5, (code, stopped_after)
