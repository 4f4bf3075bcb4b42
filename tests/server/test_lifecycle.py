"""Restarts, graceful shutdown, and the command line's files and errors."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rune_proto import status
from rune_proto.envelope import Attachment, Content, open_message, open_stored_message
from rune_proto.events import (
    ErrorReply,
    Listing,
    ListMessages,
    Message,
    Noop,
    Ok,
    Retrieve,
    Retrieved,
    Roger,
    Send,
    SendReady,
)
from rune_proto.keys import Identity
from rune_proto.secretbox import open_secret
from rune_proto.server.datadir import IDENTITY_CONTEXT
from rune_proto.tlspin import pin_text
from tests.server_process import RuneServerProcess, ServerFactory, run_cli

from .conftest import User, register_user
from .wire_client import WireClient, client_payload


def _login(server: RuneServerProcess, user: User) -> WireClient:
    client = WireClient.to(server)
    assert client.login(*user, server.server_public_key).code == status.AUTHENTICATED
    return client


def _mailbox(server: RuneServerProcess, user: User) -> list[str]:
    with _login(server, user) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing)
        return [message_id for message_id, _ in listing.entries]


def _tcp_table() -> list[tuple[int, int, str, int, int]]:
    """Loopback IPv4 sockets as the kernel lists them: (local port, remote port, state,
    send queue, receive queue)."""
    rows = []
    with open("/proc/net/tcp") as table:
        for row in table.readlines()[1:]:
            fields = row.split()
            tx, rx = fields[4].split(":")
            rows.append(
                (
                    int(fields[1].split(":")[1], 16),
                    int(fields[2].split(":")[1], 16),
                    fields[3],
                    int(tx, 16),
                    int(rx, 16),
                )
            )
    return rows


def _queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """The kernel's (send, receive) queue bytes of the TCP socket between the ports."""
    for local, remote, _, tx, rx in _tcp_table():
        if (local, remote) == (local_port, remote_port):
            return tx, rx
    return None


def _wait_until_the_server_has_read(client: WireClient, timeout: float = 15.0) -> None:
    """Every byte sent on ``client`` has left our socket and the server's kernel buffer.

    The server then holds it (its reads are eager), so a signal sent next finds the line
    in flight: an event to wait for rather than a pause that a loaded machine outlasts.
    """
    ours, theirs = client.sock.getsockname()[1], client.sock.getpeername()[1]
    deadline = time.monotonic() + timeout
    while (_queues(ours, theirs), _queues(theirs, ours)) != ((0, 0), (0, 0)):
        assert time.monotonic() < deadline, "the server did not read what was sent"
        time.sleep(0.01)


def _wait_until_refusing(server: RuneServerProcess, timeout: float = 15.0) -> None:
    """The server has handled its stop signal: its listening socket is gone.

    Read from the kernel's table, not by connecting: a connection racing the stop is a
    different case (on Python 3.11 it makes asyncio log InvalidStateError from the
    cancelled accept).
    """
    listening = "0A"
    deadline = time.monotonic() + timeout
    while any(row[0] == server.port and row[2] == listening for row in _tcp_table()):
        assert time.monotonic() < deadline, "the server still listens"
        time.sleep(0.01)


def _assert_one_clean_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rune-server: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_data_survives_a_restart(rune_server: ServerFactory) -> None:
    server = rune_server()
    alice, bob = register_user(server), register_user(server)
    with _login(server, alice) as client:
        assert client.send_message(*alice, bob[0], Content("kept", "across restarts")) == Roger()
    pin, key = server.tls_pin, server.server_key
    server.restart()
    with _login(server, bob) as client:
        assert client.tls_pin == pin
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 1
        retrieved = client.request(Retrieve(listing.entries[0][0]))
        assert isinstance(retrieved, Retrieved)
    stored = open_stored_message(bob[1], bob[0], server.server_public_key, retrieved.blob)
    assert server.server_key == key and stored.server_signature_ok
    assert open_message(bob[1], bob[0], stored.sealed_message).content.body == "across restarts"


def test_sigterm_sends_421_to_idle_clients_and_exits_0(rune_server: ServerFactory) -> None:
    server = rune_server()
    with WireClient.to(server) as client:
        assert server.stop(signal.SIGTERM) == 0
        assert client.read_line() == (status.CLOSING, "server shutting down")
        assert client.is_closed()
    with pytest.raises(ConnectionRefusedError):
        WireClient.to(server)
    assert "stopped; 1 connections" in server.stderr_text()


def test_sigint_is_graceful_too(rune_server: ServerFactory) -> None:
    server = rune_server()
    assert server.stop(signal.SIGINT) == 0


def test_a_command_in_flight_at_sigterm_is_finished_and_stored(
    rune_server: ServerFactory,
) -> None:
    """SIGTERM while a MESSAGE line is half sent: the server takes the rest, stores, then 421."""
    server = rune_server()
    alice, bob = register_user(server), register_user(server)
    content = Content("late", "in flight", (Attachment("a", os.urandom(100_000)),))
    with _login(server, alice) as client:
        ready = client.request(Send(bob[0]))
        assert isinstance(ready, SendReady)
        line = client.conn.send(Message(alice[0], client_payload(*alice, bob[0], ready, content)))
        client.sock.sendall(line[:-1])
        _wait_until_the_server_has_read(client)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        _wait_until_refusing(server)  # stopping, with the MESSAGE line still unfinished
        client.sock.sendall(line[-1:])
        assert client.read_line() == (status.ROGER, "ROGER")
        assert client.read_line() == (status.CLOSING, "server shutting down")
        assert client.is_closed()
    assert server.process.wait(timeout=15) == 0
    server.process = None
    server.start()
    assert len(_mailbox(server, bob)) == 1


def test_a_second_signal_cuts_the_connections_still_open(rune_server: ServerFactory) -> None:
    server = rune_server()
    with WireClient.to(server) as client:
        client.sock.sendall(b"NO")  # mid-line: the first signal lets it finish the line
        _wait_until_the_server_has_read(client)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        _wait_until_refusing(server)
        assert server.process.poll() is None
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5
        assert client.is_closed()


def test_an_internal_error_is_500_on_that_connection_only(rune_server: ServerFactory) -> None:
    server = rune_server()
    alice = register_user(server)
    with sqlite3.connect(server.database) as db:  # break the store under the running server
        db.execute("DROP TABLE mailbox")
    db.close()
    with _login(server, alice) as client:
        reply = client.request(ListMessages())
        assert reply == ErrorReply(status.INTERNAL_ERROR, "internal server error")
        assert client.is_closed()
    with WireClient.to(server) as client:
        assert client.request(Noop()) == Ok()
    server.stop()
    log = server.stderr_text()
    assert "internal error in the LIST handler" in log and "OperationalError" in log
    assert str(alice[0]) not in log and "no such table" not in log  # no data, no message
    server.stderr_path.write_text("")  # the traceback was provoked; don't fail teardown


# --- the command line -----------------------------------------------------------------


def test_init_writes_no_private_key_in_the_clear(tmp_path: Path) -> None:
    passphrase = tmp_path / "pass"
    passphrase.write_text("correct horse\nignored second line\n")
    data = tmp_path / "data"
    result = run_cli("init", "--data-dir", str(data), "--passphrase-file", str(passphrase))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("tls.key", "identity.key", "rune.db"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    assert (data / "tls.key").read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    private = open_secret((data / "identity.key").read_bytes(), "correct horse", IDENTITY_CONTEXT)
    identity = Identity(private)
    for path in data.iterdir():
        assert private not in path.read_bytes(), path.name
    # Both fingerprints are printed, and `fingerprint` prints the same without a passphrase.
    fingerprint = run_cli("fingerprint", "--data-dir", str(data))
    assert fingerprint.returncode == 0 and fingerprint.stdout in result.stdout
    assert identity.public.fingerprint_text() in result.stdout
    pin_line = next(line for line in result.stdout.splitlines() if "sha256:" in line)
    assert pin_text(pin_line.split()[-1]) in result.stdout
    config = (data / "config.toml").read_text()
    assert 'registration = "free"' in config and "port = 7117" in config
    assert "domain = " in config  # a random one, since none was given


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    passphrase = tmp_path / "pass"
    passphrase.write_text("pw\n")
    result = run_cli("init", "--data-dir", str(tmp_path), "--passphrase-file", str(passphrase))
    _assert_one_clean_line(result, "not empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "pass"]


def test_init_without_any_passphrase_source_is_refused(tmp_path: Path) -> None:
    result = run_cli("init", "--data-dir", str(tmp_path / "data"))
    _assert_one_clean_line(result, "passphrase")
    assert not (tmp_path / "data").exists()


def test_init_reads_the_passphrase_from_the_environment(tmp_path: Path) -> None:
    env = dict(os.environ, RUNE_SERVER_PASSPHRASE="from env")
    data = tmp_path / "data"
    command = [sys.executable, "-m", "rune_proto.server", "init", "--data-dir", str(data)]
    done = subprocess.run(command, env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert len(open_secret((data / "identity.key").read_bytes(), "from env", IDENTITY_CONTEXT))


def test_operator_mistakes_are_one_line_and_exit_2(
    shared_server: RuneServerProcess, tmp_path: Path
) -> None:
    data = str(shared_server.data_dir)
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    serve = ("serve", "--data-dir", data, "--port", "0")
    _assert_one_clean_line(run_cli(*serve, "--passphrase-file", str(wrong)), "passphrase")
    _assert_one_clean_line(run_cli("fingerprint", "--data-dir", str(tmp_path / "none")))
    _assert_one_clean_line(run_cli("invite", "--data-dir", data, "not-an-address"), "address")
    _assert_one_clean_line(run_cli("invite", "--data-dir", data, "someone@elsewhere"), "domain")
    _assert_one_clean_line(
        run_cli("invite", "--data-dir", data, f"abc@{shared_server.domain}", "--expires", "7y"),
        "duration",
    )
    in_use = ("serve", "--data-dir", data, "--port", str(shared_server.port))
    passphrase = ("--passphrase-file", str(shared_server.passphrase_file))
    _assert_one_clean_line(run_cli(*in_use, *passphrase), "cannot listen")


def test_invite_refuses_a_registered_address(shared_server: RuneServerProcess) -> None:
    address, _ = register_user(shared_server)
    result = run_cli("invite", "--data-dir", str(shared_server.data_dir), str(address))
    _assert_one_clean_line(result, "already registered")


def test_serve_is_ready_quickly(rune_server: ServerFactory) -> None:
    started = time.monotonic()
    server = rune_server()
    assert time.monotonic() - started < 10
    assert server.port > 0
