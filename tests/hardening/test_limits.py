"""Resource limits of a real rune-server, each measured: memory, time, connections, guesses.

- A 100 MiB line (no LF until the end), streamed in chunks, is answered 414 (413 in
  SENDING) and the server's resident memory does not grow with it.
- A payload over the announced maximum is 413, also without being buffered.
- A client dribbling a byte a second is cut off by the idle timeout (421) while other
  clients are served without delay; so is one that sends but never reads its replies.
- Connections beyond ``max_connections`` get 421 and are closed; the others go on.
- Failed logins and registrations are throttled per target address and per connection,
  in memory only, with the same delays for registered and unknown addresses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections.abc import Callable

import pytest

from rune_proto import status
from rune_proto.address import Address, random_address
from rune_proto.events import (
    Authenticated,
    ErrorReply,
    Login,
    LoginNonce,
    Noop,
    Ok,
    Proof,
    Register,
    Send,
    SendReady,
)
from rune_proto.handshake import login_proof
from rune_proto.keys import Identity
from rune_proto.server.config import OperatorError, ServerConfig
from rune_proto.server.limits import secret_of
from rune_proto.server.throttle import MemoryLedger, Throttle, backoff
from tests.server.wire_client import WireClient
from tests.server_process import RuneServerProcess, ServerFactory

from .rawlink import RawLink, client_context, peak_rss

MIB = 1024 * 1024
HUGE = 100 * MIB
CHUNK = 64 * 1024
RSS_BUDGET_KIB = 32 * 1024


def register(server: RuneServerProcess) -> tuple[Address, Identity]:
    address, identity = random_address(server.domain), Identity.generate()
    with WireClient.to(server) as client:
        assert client.register(address, identity).code == status.REGISTERED
    return address, identity


def stream_line(client: WireClient, head: bytes, total: int, fill: bytes = b"A") -> None:
    """``head`` then filler up to ``total`` bytes, in 64 KiB chunks, then CRLF."""
    client.sock.sendall(head)
    chunk = fill * (CHUNK // len(fill))
    sent = len(head)
    while sent < total:
        piece = chunk[: total - sent]
        client.sock.sendall(piece)
        sent += len(piece)
    client.sock.sendall(b"\r\n")


# --- 100 MiB lines and payloads over the maximum ---------------------------------------


@pytest.mark.slow
def test_a_100_mib_line_is_refused_without_being_buffered(rune_server: ServerFactory) -> None:
    server = rune_server()  # default limits: 4096-byte lines, 16 MiB payloads
    assert server.process is not None
    pid = server.process.pid
    sender, identity = register(server)
    receiver, _ = register(server)
    with WireClient.to(server) as client:
        with peak_rss(pid) as idle:
            started = time.monotonic()
            stream_line(client, b"NOOP ", HUGE)
            code, text = client.read_line()
            idle_seconds = time.monotonic() - started
        assert code == status.LINE_TOO_LONG, text
        assert client.request(Noop()) == Ok()  # and the connection goes on

        assert client.login(sender, identity, server.server_public_key).code == 230
        assert isinstance(client.request(Send(receiver)), SendReady)
        with peak_rss(pid) as sending:
            stream_line(client, f"MESSAGE {sender} ".encode(), HUGE, b"QUJD")
            code, text = client.read_line()
        assert code == status.PAYLOAD_TOO_LARGE, text
        assert client.request(Noop()) == Ok()  # back in AUTHENTICATED, still usable
    print(
        f"\n100 MiB line in IDLE: 414 after {idle_seconds:.1f} s, server RSS "
        f"+{idle['growth'] / 1024:.1f} MiB (from {idle['before'] / 1024:.0f} MiB); "
        f"in SENDING (16 MiB payload limit): 413, RSS +{sending['growth'] / 1024:.1f} MiB"
    )
    assert idle["growth"] < RSS_BUDGET_KIB, idle
    assert sending["growth"] < RSS_BUDGET_KIB, sending


@pytest.mark.slow
def test_a_payload_over_the_announced_maximum_is_413_without_being_buffered(
    rune_server: ServerFactory,
) -> None:
    server = rune_server(max_payload_mib=1)
    assert server.process is not None
    sender, identity = register(server)
    receiver, _ = register(server)
    with WireClient.to(server) as client:
        assert client.login(sender, identity, server.server_public_key).code == 230
        ready = client.request(Send(receiver))
        assert isinstance(ready, SendReady) and ready.max_payload == MIB  # announced
        # Decodes to one byte more than announced, on a line that is within the limit.
        over = (b"QUJD" * ((MIB + 3) // 3))[: (4 * (MIB + 1) + 2) // 3]
        assert client.raw(f"MESSAGE {sender} ".encode() + over + b"\r\n")[0] == 413
        assert client.request(Noop()) == Ok()
        # Fifty times the maximum: read through and dropped as it arrives.
        assert isinstance(client.request(Send(receiver)), SendReady)
        with peak_rss(server.process.pid) as memory:
            stream_line(client, f"MESSAGE {sender} ".encode(), 50 * MIB, b"QUJD")
            code, _ = client.read_line()
        assert code == status.PAYLOAD_TOO_LARGE
        assert client.request(Noop()) == Ok()
    print(f"\n50 MiB payload (limit 1 MiB): 413, server RSS +{memory['growth'] / 1024:.1f} MiB")
    assert memory["growth"] < RSS_BUDGET_KIB, memory


# --- time: the idle timeout and a slow client ---------------------------------------


@pytest.mark.slow
async def test_a_slow_client_is_cut_off_while_others_are_served(
    rune_server: ServerFactory,
) -> None:
    server = rune_server(idle_timeout=2)
    dribblers = 20

    async def dribble() -> tuple[float, bytes, bool]:
        """One byte a second of an endless NOOP line; returns when the server cuts us."""
        link = await RawLink.open(server.host, server.port)
        started = time.monotonic()
        reply = asyncio.ensure_future(link.line(timeout=10))
        try:
            for byte in b"NOOP NOOP NOOP NOOP":
                if reply.done():
                    break
                try:
                    await link.write(bytes([byte]))
                except (OSError, ConnectionError):
                    break
                await asyncio.wait([reply], timeout=1.0)
            line = await reply
            return time.monotonic() - started, line, await link.closed(timeout=5)
        finally:
            await link.close()

    async def busy() -> list[float]:
        """Another client's NOOP round trips while the slow ones dribble."""
        link = await RawLink.open(server.host, server.port)
        latencies = []
        try:
            end = time.monotonic() + 3.0
            while time.monotonic() < end:
                started = time.monotonic()
                reply = await link.request(b"NOOP\r\n")
                latencies.append(time.monotonic() - started)
                assert reply is not None and reply.code == status.OK
                await asyncio.sleep(0.05)
        finally:
            await link.close()
        return latencies

    slow = [asyncio.ensure_future(dribble()) for _ in range(dribblers)]
    latencies = await busy()
    results = await asyncio.gather(*slow)
    cut_offs = sorted(seconds for seconds, _, _ in results)
    print(
        f"\n{dribblers} clients at 1 byte/s, idle_timeout=2: cut off after "
        f"{cut_offs[0]:.2f}–{cut_offs[-1]:.2f} s; meanwhile {len(latencies)} NOOPs of another "
        f"client took at most {max(latencies) * 1000:.1f} ms"
    )
    for seconds, line, closed in results:
        assert line == b"421 idle timeout", line
        assert 1.8 < seconds < 3.5, seconds
        assert closed
    assert max(latencies) < 0.25


@pytest.mark.slow
def test_a_client_that_does_not_read_its_replies_is_cut_off_without_buffering(
    rune_server: ServerFactory,
) -> None:
    server = rune_server(idle_timeout=2)
    assert server.process is not None
    raw = socket.create_connection((server.host, server.port), timeout=10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock = client_context().wrap_socket(raw)
    burst = b"CAPA\r\n" * 1000  # each answered with ~2 KB that we never read
    sent = 0
    latencies: list[float] = []
    stop = threading.Event()

    def other_client() -> None:  # keeps talking (so is never idle) while the hog hangs
        with WireClient.to(server) as other:
            while not stop.is_set():
                begun = time.monotonic()
                assert other.request(Noop()) == Ok()
                latencies.append(time.monotonic() - begun)
                stop.wait(0.1)

    with peak_rss(server.process.pid) as memory:
        thread = threading.Thread(target=other_client)
        thread.start()
        started = time.monotonic()
        try:
            with pytest.raises(OSError):
                while time.monotonic() - started < 10:
                    sock.sendall(burst)
                    sent += len(burst)
            cut_off = time.monotonic() - started
        finally:
            stop.set()
            thread.join()
    sock.close()
    print(
        f"\na client sending CAPA without reading: cut off after {cut_off:.1f} s "
        f"(idle_timeout=2; {sent // 1024} KiB sent), server RSS +{memory['growth'] / 1024:.1f} "
        f"MiB; another client's {len(latencies)} NOOPs meanwhile took at most "
        f"{max(latencies) * 1000:.1f} ms"
    )
    assert cut_off < 3.5
    assert memory["growth"] < RSS_BUDGET_KIB
    assert len(latencies) > 5 and max(latencies) < 0.25


# --- connections beyond the maximum ---------------------------------------------------


@pytest.mark.slow
async def test_connections_beyond_the_maximum_get_421_and_are_closed(
    rune_server: ServerFactory,
) -> None:
    # No slots kept for logged-in clients: this is about the total (see test_floods.py).
    server = rune_server(max_connections=4, login_reserved_connections=0)
    admitted = [await RawLink.open(server.host, server.port) for _ in range(4)]
    try:
        assert all(link.greeting.startswith(b"HOWDY rune/1") for link in admitted)
        for _ in range(3):
            extra = await RawLink.open(server.host, server.port)
            try:
                assert extra.greeting == b"421 too many connections\r\n"
                assert await extra.closed(timeout=5)
            finally:
                await extra.close()
            for link in admitted:  # the admitted ones are still served, at once
                started = time.monotonic()
                reply = await link.request(b"NOOP\r\n")
                assert reply is not None and reply.code == status.OK
                assert time.monotonic() - started < 0.25
        # A refused client that talks before reading still gets its 421 (no reset).
        extra = await RawLink.open(server.host, server.port)
        await extra.write(b"NOOP\r\n" * 1000)
        assert extra.greeting == b"421 too many connections\r\n"
        await extra.close()
        # A freed slot is given to the next one.
        await admitted.pop().request(b"QUIT\r\n")
        deadline = time.monotonic() + 5
        while True:
            again = await RawLink.open(server.host, server.port)
            if again.greeting.startswith(b"HOWDY"):
                admitted.append(again)
                break
            await again.close()
            assert time.monotonic() < deadline, "the freed slot was never reused"
            await asyncio.sleep(0.05)
    finally:
        for link in admitted:
            await link.close()


# --- throttling of failed logins and registrations ---------------------------------------

FREE, BASE, CAP = 3, 0.05, 0.4  # small figures, so the test is quick; defaults below


def throttled_server(rune_server: ServerFactory, **extra: object) -> RuneServerProcess:
    return rune_server(throttle_after=FREE, throttle_delay=BASE, throttle_max_delay=CAP, **extra)


def wrong_proofs(
    server: RuneServerProcess,
    address: Address,
    count: int,
    per_conn: int,
    times: list[float] | None = None,
) -> list[float]:
    """Time ``count`` failed PROOFs for ``address``, ``per_conn`` per connection.

    ``times``, if given, fills as they are answered: another thread can watch the progress.
    """
    times = [] if times is None else times
    while len(times) < count:
        with WireClient.to(server) as client:
            for _ in range(min(per_conn, count - len(times))):
                nonce = client.request(Login(address))
                assert isinstance(nonce, LoginNonce)
                started = time.monotonic()
                reply = client.request(Proof(bytes(64)))
                times.append(time.monotonic() - started)
                assert reply == ErrorReply(status.AUTHENTICATION_FAILED, "authentication failed")
    return times


def timed_login(server: RuneServerProcess, address: Address, identity: Identity) -> float:
    with WireClient.to(server) as client:
        nonce = client.request(Login(address))
        assert isinstance(nonce, LoginNonce)
        proof = login_proof(identity, address, server.server_public_key, nonce.nonce)
        started = time.monotonic()
        assert client.request(Proof(proof)) == Authenticated(address)
        return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.usefixtures("store_kind")  # counted in the store
def test_failed_logins_for_one_address_are_slowed_down_and_tell_nothing(
    rune_server: ServerFactory,
) -> None:
    server = throttled_server(rune_server)
    (target, target_identity), (other, other_identity) = register(server), register(server)
    unknown = random_address(server.domain)
    attempts = 20
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        # 20 wrong proofs for a registered and for an unregistered address, at the same
        # time, 4 per connection (under the per-connection threshold: the address counts).
        known_so_far: list[float] = []
        unknown_so_far: list[float] = []
        known_run = pool.submit(wrong_proofs, server, target, attempts, FREE, known_so_far)
        unknown_run = pool.submit(wrong_proofs, server, unknown, attempts, FREE, unknown_so_far)
        deadline = time.monotonic() + 30
        while min(len(known_so_far), len(unknown_so_far)) <= FREE + 1:  # not both slowed yet
            assert time.monotonic() < deadline, "the wrong PROOFs were not answered"
            for run in (known_run, unknown_run):
                if run.done():
                    run.result()  # a prober that failed says why
            time.sleep(0.01)
        other_login = timed_login(server, other, other_identity)
        known, unknowns = known_run.result(), unknown_run.result()
    expected = [backoff(n, free=FREE, base=BASE, cap=CAP) for n in range(attempts)]
    print(
        f"\n{attempts} wrong PROOFs for one address (throttle_after={FREE}, "
        f"delay {BASE}→{CAP} s): "
        + " ".join(f"{t * 1000:.0f}" for t in known)
        + " ms; unknown address: "
        + " ".join(f"{t * 1000:.0f}" for t in unknowns)
        + f" ms; another address logged in meanwhile in {other_login * 1000:.1f} ms"
    )
    for i, (a, b, want) in enumerate(zip(known, unknowns, expected, strict=True)):
        assert want - 0.01 <= a <= want + 0.2, (i, a, want)
        assert want - 0.01 <= b <= want + 0.2, (i, b, want)  # no oracle: same schedule
    assert sum(known) >= sum(expected) - 0.1
    # Others are not slowed down: a shared count would hold this login for CAP (0.4 s).
    assert other_login < CAP / 2, other_login
    # The right key still gets in, after the current delay; and that does not reset the
    # count (a reset would tell a prober that the address exists and was just used).
    assert CAP - 0.01 <= timed_login(server, target, target_identity) < CAP + 0.2
    assert min(wrong_proofs(server, target, 2, 2)) >= CAP - 0.01


@pytest.mark.slow
@pytest.mark.usefixtures("store_kind")  # counted in the store
def test_one_connection_guessing_many_addresses_is_slowed_down_then_cut(
    rune_server: ServerFactory,
) -> None:
    server = throttled_server(rune_server, max_failures=8)
    times = []
    with WireClient.to(server) as client:
        for _ in range(8):  # a fresh address each time: only the connection's count grows
            assert isinstance(client.request(Login(random_address(server.domain))), LoginNonce)
            started = time.monotonic()
            assert client.request(Proof(bytes(64))) == ErrorReply(411, "authentication failed")
            times.append(time.monotonic() - started)
        assert isinstance(client.request(Login(random_address(server.domain))), LoginNonce)
        reply = client.request(Proof(bytes(64)))
        assert reply == ErrorReply(status.TOO_MANY_FAILURES, "too many failures")
        assert client.is_closed()
    expected = [backoff(n, free=FREE, base=BASE, cap=CAP) for n in range(8)]
    for got, want in zip(times, expected, strict=True):
        assert want - 0.01 <= got <= want + 0.2, (times, expected)


@pytest.mark.slow
@pytest.mark.usefixtures("store_kind")  # counted in the store
def test_failed_registrations_for_one_address_are_slowed_down(
    rune_server: ServerFactory,
) -> None:
    server = throttled_server(rune_server)
    taken, _ = register(server)
    times = []
    for _ in range(3):  # three connections, three attempts each: the address counts
        with WireClient.to(server) as client:
            for _ in range(3):
                started = time.monotonic()
                reply = client.request(Register(taken, Identity.generate().public))
                times.append(time.monotonic() - started)
                assert reply == ErrorReply(status.ADDRESS_TAKEN, "address already registered")
    expected = [backoff(n, free=FREE, base=BASE, cap=CAP) for n in range(9)]
    for got, want in zip(times, expected, strict=True):
        assert want - 0.01 <= got <= want + 0.2, (times, expected)
    started = time.monotonic()
    register(server)  # another address registers at once
    assert time.monotonic() - started < 0.5


# --- the throttle itself, and its defaults -------------------------------------------------


def test_default_throttle_is_half_a_second_doubling_to_eight_after_five_failures() -> None:
    config = ServerConfig(domain="example")
    schedule = [
        backoff(
            n,
            free=config.throttle_after,
            base=config.throttle_delay,
            cap=config.throttle_max_delay,
        )
        for n in range(12)
    ]
    assert schedule == [0, 0, 0, 0, 0, 0.5, 1, 2, 4, 8, 8, 8]


@pytest.mark.parametrize(
    "settings",
    [
        {"throttle_after": -1},
        {"throttle_delay": -0.5},
        {"throttle_delay": 9, "throttle_max_delay": 8},
        {"throttle_max_delay": 600},
        {"throttle_window": 0},
        {"throttle_table": 0},
    ],
)
def test_throttle_settings_are_checked(settings: dict[str, float]) -> None:
    with pytest.raises(OperatorError, match="throttle"):
        ServerConfig(domain="example", **settings)  # type: ignore[arg-type]


def test_throttle_forgets_after_the_window_and_beyond_its_capacity() -> None:
    now = [0.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    ledger = MemoryLedger()
    throttle = Throttle(
        ledger, "login", b"k" * 32, free=1, base=1, cap=4, window=60, capacity=3, clock=clock
    )

    async def run() -> None:
        for _ in range(4):
            await throttle.failed("a@example")
        assert await throttle.delay("a@example") == 4  # after 4 failures: 1 free, 1, 2, 4
        assert await throttle.delay("b@example") == 0
        now[0] = 59.0
        assert await throttle.delay("a@example") == 4
        now[0] = 120.0  # a minute after the last failure
        assert await throttle.delay("a@example") == 0
        for name in ("a", "b", "c", "d"):  # capacity 3: the oldest failure is forgotten
            now[0] += 1
            await throttle.failed(f"{name}@example")
            await throttle.failed(f"{name}@example")
        assert len(ledger.rows) == 3
        assert await throttle.delay("a@example") == 0 and await throttle.delay("d@example") == 2

    asyncio.run(run())


def test_a_throttle_turned_off_neither_reads_nor_writes_the_store() -> None:
    """throttle_delay = 0: no row per failed login (and no store round trip)."""
    ledger = MemoryLedger()
    throttle = Throttle(ledger, "login", b"k" * 32, free=0, base=0, cap=0, window=60, capacity=9)

    async def run() -> None:
        for _ in range(3):
            await throttle.failed("a@example")
        assert await throttle.delay("a@example") == 0

    asyncio.run(run())
    assert ledger.rows == {}


def test_throttle_keys_are_keyed_digests_the_same_on_every_node() -> None:
    """No address in the ledger; two nodes with one identity file a key the same way,
    a server with another identity (another secret) differently."""
    secret = secret_of(Identity.generate())
    nodes = [
        Throttle(MemoryLedger(), "login", s, free=0, base=1, cap=1, window=60, capacity=10)
        for s in (secret, secret, secret_of(Identity.generate()))
    ]
    for node in nodes:
        asyncio.run(node.failed("secret-user@example"))
    keys = [list(node.ledger.rows) for node in nodes]  # type: ignore[attr-defined]
    assert len(keys[0]) == 1 and len(keys[0][0][1]) == 16
    assert b"secret" not in keys[0][0][1]
    assert keys[0] == keys[1] != keys[2]
    register = Throttle(
        MemoryLedger(), "register", secret, free=0, base=1, cap=1, window=60, capacity=10
    )
    assert register.digest("secret-user@example") != nodes[0].digest("secret-user@example")
