"""The failed-LOGIN throttle is counted in the store: shared by nodes, kept over restarts.

Real server processes over real TLS. Two nodes are two ``rune-server serve`` processes
on one PostgreSQL database with the same keys (the data directory copied, as a new
node gets it); with counts in each process's memory the second node would answer
the attacker's next guess at once. A restart (SQLite and PostgreSQL) used to give
every guess back.
"""

from __future__ import annotations

import statistics
import time

import pytest

from rune_proto import status
from rune_proto.address import Address, random_address
from rune_proto.keys import Identity
from tests.postgres import PostgresServer
from tests.server.wire_client import WireClient, code_of
from tests.server_process import RuneServerProcess, ServerFactory, another_node

DELAY = 0.6  # throttle_delay: the first throttled verdict waits this long, then doubling
THROTTLED = {"throttle_after": 2, "throttle_delay": DELAY, "throttle_max_delay": 8}


def failed_login(server: RuneServerProcess, address: Address) -> float:
    """One failed LOGIN/PROOF on a fresh connection; seconds until the verdict."""
    with WireClient.to(server, timeout=30) as client:
        started = time.monotonic()
        reply = client.login(address, Identity.generate(), server.server_public_key)
        took = time.monotonic() - started
    assert code_of(reply) == status.AUTHENTICATION_FAILED
    return took


def test_two_nodes_share_the_count_no_more_guesses_with_more_nodes(
    postgres: PostgresServer, rune_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = rune_server(database=postgres.new_database(), **THROTTLED)
    second = another_node(first, tmp_path_factory.mktemp("node2"))
    try:
        target = random_address(first.domain)
        free = [failed_login(first, target) for _ in range(2)]  # throttle_after: free
        waited = failed_login(first, target)  # the third waits DELAY on node 1 ...
        across = failed_login(second, target)  # ... and the fourth 2 × DELAY on node 2
        fresh = failed_login(second, random_address(first.domain))
        print(f"\nfree {free}, node 1: {waited:.2f} s, node 2: {across:.2f} s, fresh {fresh:.2f}")
        assert waited >= DELAY * 0.95
        assert across >= 2 * DELAY * 0.95  # node 2 knew node 1's three failures
        assert fresh < across
    finally:
        assert second.stop() == 0
        assert "Traceback" not in second.stderr_text()


@pytest.mark.usefixtures("store_kind")
def test_a_restart_does_not_reset_the_count(rune_server: ServerFactory) -> None:
    server = rune_server(**THROTTLED)
    target = random_address(server.domain)
    for _ in range(3):  # two free, the third waits DELAY
        failed_login(server, target)
    server.restart()
    waited = failed_login(server, target)
    print(f"\nafter the restart: {waited:.2f} s")
    assert waited >= 2 * DELAY * 0.95


@pytest.mark.usefixtures("store_kind")
def test_cost_of_a_failed_login(rune_server: ServerFactory) -> None:
    """Not a bound: the figure for the report (a failed LOGIN now writes a row)."""
    server = rune_server(throttle_after=10_000, max_failures=1000)
    times = []
    with WireClient.to(server, timeout=30) as client:
        for _ in range(60):
            address = random_address(server.domain)
            started = time.perf_counter()
            reply = client.login(address, Identity.generate(), server.server_public_key)
            times.append(time.perf_counter() - started)
            assert code_of(reply) == status.AUTHENTICATION_FAILED
    times.sort()
    print(
        f"\nfailed LOGIN+PROOF round trip ({(server.database_url and 'postgresql') or 'sqlite'}):"
        f" median {statistics.median(times) * 1000:.2f} ms,"
        f" p90 {times[int(len(times) * 0.9)] * 1000:.2f} ms"
    )
