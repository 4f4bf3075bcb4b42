"""``rune-server serve --workers 2`` on PostgreSQL (issue 14): real processes throughout.

Which worker serves a connection is the kernel's choice (they share one listening
socket); a test that needs a given worker stops the other with SIGSTOP, so the one
left accepts everything, and lets it go on with SIGCONT.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from rune_proto import status
from rune_proto.envelope import Content, open_stored_message
from rune_proto.events import (
    Greeting,
    Listing,
    ListMessages,
    NewMail,
    Noop,
    Ok,
    Retrieve,
    Retrieved,
    Roger,
    Wait,
)
from rune_proto.server.config import DataDir, load_config, write_config
from tests.postgres import PostgresServer
from tests.server.conftest import User, register_user
from tests.server.wire_client import WireClient
from tests.server_process import RuneServerProcess, ServerFactory, run_cli

DEADLINE = 30.0


def _workers(server: RuneServerProcess) -> list[int]:
    """The supervisor's child processes (Linux /proc)."""
    assert server.process is not None
    found: list[int] = []
    for children in Path(f"/proc/{server.process.pid}/task").glob("*/children"):
        found += [int(pid) for pid in children.read_text().split()]
    return sorted(found)


def _wait_for(predicate: object, what: str, server: RuneServerProcess) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)  # polling a process list or a log file, bounded by the deadline
    raise AssertionError(f"{what} did not happen:\n{server.stderr_text()}")


@contextlib.contextmanager
def _paused(pid: int) -> Iterator[None]:
    """SIGSTOP a worker: the other accepts every new connection meanwhile."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _logged_in(server: RuneServerProcess, user: User) -> WireClient:
    client = WireClient.to(server)
    assert client.login(*user, server.server_public_key).code == status.AUTHENTICATED
    return client


def _on_workers(
    rune_server: ServerFactory, postgres: PostgresServer, **config: object
) -> RuneServerProcess:
    return rune_server(database=postgres.new_database(), workers=2, **config)


def test_clients_spread_over_both_workers_and_mail_crosses_them(
    rune_server: ServerFactory, postgres: PostgresServer
) -> None:
    server = _on_workers(rune_server, postgres, stats_interval=0.2)
    _wait_for(lambda: len(_workers(server)) == 2, "two workers", server)
    first, second = _workers(server)
    alice, bob = register_user(server), register_user(server)
    with _paused(second), _logged_in(server, alice) as client:  # through `first` only
        assert client.send_message(*alice, bob[0], Content("hi", "across")) == Roger()
    with _paused(first), _logged_in(server, bob) as client:  # through `second` only
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 1
        retrieved = client.request(Retrieve(listing.entries[0][0]))
        assert isinstance(retrieved, Retrieved)
        stored = open_stored_message(bob[1], bob[0], server.server_public_key, retrieved.blob)
        assert stored.sender == alice[0] and stored.server_signature_ok
    # Left to the kernel, both serve: each worker's own counts line says so.
    clients = [_logged_in(server, alice) for _ in range(16)]
    try:

        def both_counted() -> bool:
            text = server.stderr_text()
            return all(
                any(
                    line.split("counts: ")[1].split()[0] != "0"
                    for line in text.splitlines()
                    if f"worker {n}: counts: " in line
                )
                for n in (1, 2)
            )

        _wait_for(both_counted, "connections counted by both workers", server)
    finally:
        for client in clients:
            client.close()


def test_a_wait_on_one_worker_hears_of_mail_stored_through_the_other(
    rune_server: ServerFactory, postgres: PostgresServer
) -> None:
    server = _on_workers(rune_server, postgres)
    _wait_for(lambda: len(_workers(server)) == 2, "two workers", server)
    first, second = _workers(server)
    alice, bob = register_user(server), register_user(server)
    with _paused(second):
        waiting = _logged_in(server, bob)  # on `first`
    with waiting:
        waiting.sock.sendall(waiting.conn.send(Wait()))
        with _paused(first), _logged_in(server, alice) as client:  # on `second`
            assert client.send_message(*alice, bob[0], Content("woken", "b")) == Roger()
        assert waiting._next() == NewMail()  # PostgreSQL NOTIFY, across processes


def test_a_killed_worker_is_started_again_and_clients_carry_on(
    rune_server: ServerFactory, postgres: PostgresServer
) -> None:
    server = _on_workers(rune_server, postgres)
    _wait_for(lambda: len(_workers(server)) == 2, "two workers", server)
    alice, bob = register_user(server), register_user(server)
    victim, survivor = _workers(server)
    with _paused(victim):  # these are the survivor's
        held = [_logged_in(server, alice) for _ in range(3)]
    os.kill(victim, signal.SIGKILL)
    _wait_for(
        lambda: len(_workers(server)) == 2 and victim not in _workers(server),
        "a new worker in place of the killed one",
        server,
    )
    assert "was killed by SIGKILL; starting it again" in server.stderr_text()
    for client in held:  # the other worker's clients never noticed
        with client:
            assert client.request(Noop()) == Ok()
            assert client.send_message(*alice, bob[0], Content("held", "b")) == Roger()
    for n in range(10):  # clients reconnect and carry on, on whichever worker
        with _logged_in(server, alice) as client:
            assert client.send_message(*alice, bob[0], Content(f"{n}", "b")) == Roger()
    with _logged_in(server, bob) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 10 + len(held)
    assert survivor in _workers(server)


def test_sigterm_stops_every_worker_with_exit_0(
    rune_server: ServerFactory, postgres: PostgresServer
) -> None:
    server = _on_workers(rune_server, postgres)
    _wait_for(lambda: len(_workers(server)) == 2, "two workers", server)
    workers = _workers(server)
    alice = register_user(server)
    with _logged_in(server, alice):
        assert server.stop() == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)
    text = server.stderr_text()
    assert "Traceback" not in text
    assert text.count("stopped; ") == 3  # each worker drained, then the supervisor
    stdout = (server.root / "stdout.1.log").read_text()
    assert stdout.count("rune-server listening on") == 1


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return "gone"


def test_two_workers_hold_no_more_connections_than_one_process(
    rune_server: ServerFactory, postgres: PostgresServer
) -> None:
    cap = 100
    server = _on_workers(
        rune_server,
        postgres,
        max_connections=cap,
        login_reserved_connections=0,
        max_anonymous_per_source=1000,
    )
    _wait_for(lambda: len(_workers(server)) == 2, "two workers", server)
    greeted: list[WireClient] = []
    refused = 0
    try:
        for _ in range(300):
            try:
                client = WireClient.to(server, timeout=10)
            except (OSError, ssl.SSLError):
                refused += 1  # closed before TLS: over the cap under a flood
                continue
            if isinstance(client.greeting, Greeting):
                greeted.append(client)
            else:
                refused += 1
                client.close()
        assert cap // 2 < len(greeted) <= cap, (len(greeted), refused)
        assert len(greeted) + refused == 300
    finally:
        for client in greeted:
            client.close()


def test_a_worker_that_keeps_dying_at_start_stops_the_server(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.new_database().replace(postgres.password, "not-the-password")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a passphrase for this test\n")
    data = tmp_path / "data"
    made = run_cli(
        "init", "--data-dir", str(data), "--domain", "example", "--passphrase-file",
        str(passphrase),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    config = DataDir(data).config
    write_config(config, replace(load_config(config), database=url))
    result = run_cli(
        "serve", "--data-dir", str(data), "--port", "0", "--workers", "2",
        "--passphrase-file", str(passphrase), timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert "before it listened or within 10 s, 3 times in a row; stopping" in last, result.stderr
    assert "not-the-password" not in result.stderr and "Traceback" not in result.stderr


def _two_free_ports() -> int:
    """A port P with P and P + 1 both free on 127.0.0.1 (the two workers' metrics)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


def test_each_worker_serves_metrics_and_status_sums_them(
    rune_server: ServerFactory, postgres: PostgresServer
) -> None:
    port = _two_free_ports()
    server = _on_workers(rune_server, postgres, metrics_port=port)
    _wait_for(lambda: len(_workers(server)) == 2, "two workers", server)
    for worker_port in (port, port + 1):
        with urllib.request.urlopen(f"http://127.0.0.1:{worker_port}/metrics", timeout=10) as r:
            assert "rune_connections_open" in r.read().decode()
    alice = register_user(server)
    clients = [_logged_in(server, alice) for _ in range(3)]
    try:
        status = run_cli("status", "--data-dir", str(server.data_dir))
        assert status.returncode == 0, status.stderr
        assert "live rune_connections_open 3" in status.stdout, status.stdout
    finally:
        for client in clients:
            client.close()


def test_workers_stop_when_the_supervisor_is_killed(
    rune_server: ServerFactory, postgres: PostgresServer
) -> None:
    server = _on_workers(rune_server, postgres)
    _wait_for(lambda: len(_workers(server)) == 2, "two workers", server)
    workers = _workers(server)
    server.kill()  # SIGKILL: no chance to stop them itself
    _wait_for(
        lambda: all(_state(pid) in ("gone", "Z") for pid in workers),
        "the orphaned workers stopping",
        server,
    )
    assert "Traceback" not in server.stderr_text()
