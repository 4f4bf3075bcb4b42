"""``rune-server accounts|invitations|mailbox`` against a running server (issue 18).

A real server process, real TLS clients, and the CLI as a second process on the same
database: what the server does must follow from the database alone. Every test runs
on both stores (``store_kind``: SQLite, and PostgreSQL through pg/admin.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

from rune_proto import status
from rune_proto.address import random_address
from rune_proto.envelope import Content
from rune_proto.events import Authenticated, Listing, ListMessages, Registered, Roger
from rune_proto.keys import Identity
from tests.pg_tools import pg_usage_row
from tests.server_process import RuneServerProcess, ServerFactory, run_cli

from .conftest import User, register_user
from .wire_client import WireClient, code_of

DEADLINE = 10.0  # generous: two CPUs shared with other test runs
pytestmark = pytest.mark.usefixtures("store_kind")


def admin(server: RuneServerProcess, *args: str) -> str:
    """One CLI command on the server's data directory; its stdout (it must succeed)."""
    command, rest = args[0], args[1:]
    result = run_cli(command, *rest[:1], "--data-dir", str(server.data_dir), *rest[1:])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


@contextlib.contextmanager
def logged_in(server: RuneServerProcess, user: User) -> Iterator[WireClient]:
    with WireClient.to(server) as client:
        assert client.login(*user, server.server_public_key) == Authenticated(user[0])
        yield client


def usage_row(server: RuneServerProcess, address: str) -> tuple[int, int] | None:
    if server.database_url is not None:
        return pg_usage_row(server.database_url, address)
    with contextlib.closing(sqlite3.connect(server.database)) as db:
        row = db.execute("SELECT bytes, count FROM usage WHERE receiver = ?", (address,)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def test_block_ends_the_open_session_and_refuses_the_next_login(
    rune_server: ServerFactory,
) -> None:
    server = rune_server()
    alice, bob = register_user(server), register_user(server)
    with logged_in(server, alice) as session, logged_in(server, bob) as other:
        started = time.monotonic()
        out = admin(server, "accounts", "block", str(alice[0]))
        assert "blocked" in out
        session.sock.settimeout(DEADLINE)
        code, text = session.read_line()  # unsolicited: the server ends the session
        took = time.monotonic() - started
        assert (code, text) == (status.CLOSING, "account blocked")
        assert session.is_closed()
        assert took < DEADLINE
        print(f"\nblock → 421 on the open session: {took * 1000:.0f} ms (incl. CLI start)")
        # The other account's session goes on.
        assert isinstance(other.request(ListMessages()), Listing)
    with WireClient.to(server) as client:
        reply = client.login(*alice, server.server_public_key)
        assert code_of(reply) == status.ACCOUNT_BLOCKED == 416
        assert client.is_closed()
    with WireClient.to(server) as client:  # and still taken: not registrable
        assert code_of(client.register(alice[0], Identity.generate())) == status.ADDRESS_TAKEN
    listed = admin(server, "accounts", "list")
    assert any(line.split()[:2] == [str(alice[0]), "blocked"] for line in listed.splitlines())
    admin(server, "accounts", "unblock", str(alice[0]))
    with logged_in(server, alice) as session:
        assert isinstance(session.request(ListMessages()), Listing)


def test_delete_erases_the_mail_and_keeps_the_address_reserved_until_released(
    rune_server: ServerFactory,
) -> None:
    server = rune_server("both")
    alice, bob = register_user(server), register_user(server)
    with logged_in(server, bob) as client:
        for n in range(3):
            assert client.send_message(*bob, alice[0], Content(f"m{n}", "x")) == Roger()
    with logged_in(server, alice) as session:
        out = admin(server, "accounts", "delete", str(alice[0]), "--yes")
        assert "3 messages" in out and "reserved" in out
        session.sock.settimeout(DEADLINE)
        assert session.read_line() == (status.CLOSING, "account deleted")
    assert usage_row(server, str(alice[0])) is None
    with WireClient.to(server) as client:
        assert code_of(client.login(*alice, server.server_public_key)) == 411
    with WireClient.to(server) as client:  # someone else tries the freed address
        assert code_of(client.register(alice[0], Identity.generate())) == status.ADDRESS_TAKEN
    refused = run_cli("invite", "--data-dir", str(server.data_dir), str(alice[0]))
    assert refused.returncode == 2 and "reserved" in refused.stderr
    with logged_in(server, bob) as client:  # the server forgot the deleted key too
        assert code_of(client.send_message(*bob, alice[0], Content("s", "b"))) == 404
    assert str(alice[0]) in admin(server, "accounts", "list")  # listed as reserved
    assert "reserved addresses: 1" in admin(server, "accounts", "count")
    admin(server, "accounts", "release", str(alice[0]))
    newcomer = (alice[0], Identity.generate())
    with WireClient.to(server) as client:
        assert client.register(*newcomer) == Registered(alice[0])
    with logged_in(server, newcomer) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and listing.entries == ()


def test_mailbox_erase_frees_the_quota_of_a_running_server(rune_server: ServerFactory) -> None:
    server = rune_server(mailbox_quota_mib=0.05)
    alice, bob = register_user(server), register_user(server)
    with logged_in(server, bob) as client:
        for _ in range(60):  # bounded: a message is at least ~1 KiB
            reply = client.send_message(*bob, alice[0], Content("fill", "x" * 2000))
            if code_of(reply) == status.MAILBOX_FULL:
                break
            assert reply == Roger()
        else:
            raise AssertionError("the quota never filled")
        out = admin(server, "mailbox", "erase", str(alice[0]))
        assert out.startswith("erased ")
        assert client.send_message(*bob, alice[0], Content("fits", "again")) == Roger()
    assert usage_row(server, str(alice[0])) is not None
    with logged_in(server, alice) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 1
        assert usage_row(server, str(alice[0])) == (listing.entries[0][1], 1)


def test_admin_commands_run_while_the_server_takes_messages(rune_server: ServerFactory) -> None:
    """The CLI writes the same database as the server: no 202 lost, no error, counts right."""
    server = rune_server()
    sender, receiver, victim = (register_user(server) for _ in range(3))
    sent: list[int] = []
    failures: list[BaseException] = []

    def send_all() -> None:
        try:
            with logged_in(server, sender) as client:
                for n in range(40):
                    reply = client.send_message(*sender, receiver[0], Content(f"{n}", "body"))
                    sent.append(code_of(reply))
        except BaseException as exc:  # reported below
            failures.append(exc)

    with logged_in(server, sender) as client:
        for _ in range(5):
            assert client.send_message(*sender, victim[0], Content("v", "x")) == Roger()
    thread = threading.Thread(target=send_all)
    thread.start()
    try:
        for _ in range(3):
            admin(server, "accounts", "count")
            admin(server, "accounts", "list")
            admin(server, "mailbox", "erase", str(victim[0]))
            admin(server, "invitations", "list")
    finally:
        thread.join(timeout=120)
    assert not failures, failures
    assert sent == [status.ROGER] * 40
    rows = {
        line.split()[0]: line.split() for line in admin(server, "accounts", "list").splitlines()
    }
    assert rows[str(receiver[0])][2] == "40"
    assert rows[str(victim[0])][2] == "0"
    with logged_in(server, receiver) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 40


def test_invitations_list_shows_no_token_and_revoke_invalidates(
    rune_server: ServerFactory,
) -> None:
    server = rune_server("invite")
    address = random_address(server.domain)
    token = server.invite(str(address))
    listed = admin(server, "invitations", "list")
    assert str(address) in listed and token not in listed
    assert "revoked 1 invitation" in admin(server, "invitations", "revoke", str(address))
    with WireClient.to(server) as client:
        reply = client.register(address, Identity.generate(), token)
        assert code_of(reply) == status.INVITATION_INVALID


def test_admin_output_shows_no_message_metadata(rune_server: ServerFactory) -> None:
    """Counts and byte totals only: no sender, no message id."""
    server = rune_server()
    alice, bob = register_user(server), register_user(server)
    with logged_in(server, bob) as client:
        assert client.send_message(*bob, alice[0], Content("secret", "x")) == Roger()
    with logged_in(server, alice) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing)
        message_id = listing.entries[0][0]
    output = admin(server, "accounts", "list") + admin(server, "accounts", "count")
    assert message_id not in output
    alice_line = next(line for line in output.splitlines() if line.startswith(str(alice[0])))
    assert str(bob[0]) not in alice_line


def test_admin_mistakes_are_one_line_and_exit_2(rune_server: ServerFactory) -> None:
    server = rune_server()
    data = str(server.data_dir)
    for args, word in (
        (("accounts", "block", "--data-dir", data, "nobody@" + server.domain), "no account"),
        (("accounts", "block", "--data-dir", data, "no"), "bad address"),
        (("accounts", "unblock", "--data-dir", data, "nobody@" + server.domain), "not blocked"),
        (("accounts", "delete", "--data-dir", data, "nobody@" + server.domain), "--yes"),
        (("accounts", "release", "--data-dir", data, "nobody@" + server.domain), "not a deleted"),
        (("invitations", "revoke", "--data-dir", data, "nobody@" + server.domain), "no invit"),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and word in lines[0], (args, result.stderr)
