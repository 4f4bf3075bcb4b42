"""A server that kept a copy of a message the user deleted must not be able to deliver
it again as new and verified (issue 11, part D; docs/security.md "Timing and replay").

The client's sealed replay log remembers each deletion, written and fsynced before
``DELETE`` goes out, and a message it names comes back flagged "deleted before,
delivered again", under its old server id or a new one, in this session or a later one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rune_proto.client import ReplayLog
from rune_proto.client.vault import Vault
from rune_proto.events import Command, Delete, Reply
from rune_proto.keys import Identity
from rune_tui.service_mailbox import Mailbox
from tests.pg_tools import pg_blob, pg_put_back
from tests.store_tools import put_back
from tests.tui.test_cache import alice_with_mail

from .lying_server import LyingServer
from .test_lying_server import _one_honest_message, bounded, session_to, user

DELETED = "deleted before, delivered again (a replay)"


async def test_a_deleted_message_delivered_again_is_flagged_in_a_later_session(
    tmp_path: Path,
) -> None:
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        message_id = await _one_honest_message(server, alice, bob)
        (delivery,) = server.deliveries
        blob = server.mailboxes[bob[0]][delivery.stored_id]
        path, vault = tmp_path / "seen", Vault(bob[1])
        async with session_to(server, bob, replays=ReplayLog(path, vault)) as session:
            assert (await bounded(session.retrieve(delivery.stored_id))).verified
            await bounded(session.delete(delivery.stored_id))
        assert delivery.stored_id not in server.mailboxes[bob[0]]
        # The server kept a copy: it puts it back under the same id, and under new ones.
        server.mailboxes[bob[0]][delivery.stored_id] = blob
        copied = server.deliver(bob[0], blob)
        rewrapped = server.deliver(bob[0], server.wrap(bob[0], alice[0], delivery.sealed))
        async with session_to(server, bob, replays=ReplayLog(path, vault)) as session:
            again = [
                await bounded(session.retrieve(i)) for i in (delivery.stored_id, copied, rewrapped)
            ]
    for message in again:
        assert message.message_id == message_id
        assert not message.verified and message.verification.replay
        assert DELETED in message.verification.problems, message.verification.problems
        assert message.verification.server_signature and message.verification.sender_signature
    data = path.read_bytes()  # sealed: no id in the clear
    for text in (delivery.stored_id, message_id, copied):
        assert text.encode() not in data


async def test_the_deletion_is_on_disk_before_the_server_sees_delete(tmp_path: Path) -> None:
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        await _one_honest_message(server, alice, bob)
        (delivery,) = server.deliveries
        path, vault = tmp_path / "seen", Vault(bob[1])
        seen_at_delete: list[bool] = []

        def look_at_the_disk(command: Command, honest: Reply) -> None:
            if isinstance(command, Delete):  # read by a fresh log, as after a crash
                fresh = ReplayLog(path, vault)
                seen_at_delete.append(fresh.was_deleted("", command.message_id))
            return None

        server.lies.tamper = look_at_the_disk
        async with session_to(server, bob, replays=ReplayLog(path, vault)) as session:
            await bounded(session.retrieve(delivery.stored_id))
            await bounded(session.delete(delivery.stored_id))
    assert seen_at_delete == [True]


async def test_deleting_an_unopened_message_still_flags_its_old_id(tmp_path: Path) -> None:
    """Never opened, so the client cannot know its sender id: the server id is kept."""
    async with LyingServer() as server:
        alice, bob = user(server, "alice"), user(server, "bob")
        await _one_honest_message(server, alice, bob)
        (delivery,) = server.deliveries
        blob = server.mailboxes[bob[0]][delivery.stored_id]
        replays = ReplayLog(tmp_path / "seen", Vault(bob[1]))
        async with session_to(server, bob, replays=replays) as session:
            await bounded(session.delete(delivery.stored_id))
            server.mailboxes[bob[0]][delivery.stored_id] = blob
            again = await bounded(session.retrieve(delivery.stored_id))
    assert not again.verified and DELETED in again.verification.problems


def test_an_older_log_and_a_rewritten_log_keep_the_deletions(tmp_path: Path) -> None:
    vault = Vault(Identity.generate())
    path = tmp_path / "seen"
    log = ReplayLog(path, vault)
    assert not log.is_replay("m1", "s1")
    log.record_deleted("s1")
    log.record_deleted("s2")  # never opened
    for n in range(300):  # enough records that opening rewrites it as one
        log.is_replay(f"x{n}", f"y{n}")
    reopened = ReplayLog(path, vault)
    assert reopened.was_deleted("m1", "elsewhere") and reopened.was_deleted("?", "s2")
    assert not reopened.was_deleted("x1", "y1")
    rewritten = ReplayLog(path, vault)
    assert rewritten.was_deleted("m1", "s1") and rewritten.was_deleted("", "s2")


@pytest.mark.usefixtures("store_kind")
async def test_rune_tui_delete_goes_through_the_log(rune_server: Any, tmp_path: Path) -> None:
    """rune-tui's delete (service_mailbox.py) against a real server whose database then
    gets the deleted message back, as a server that kept a copy would put it."""
    server = rune_server()
    alice, _, ids = await alice_with_mail(server, tmp_path)
    target = ids[0]
    if server.database_url is not None:
        blob = pg_blob(server.database_url, str(alice.address), target)
    else:
        with sqlite3.connect(server.database) as db:
            (blob,) = db.execute("SELECT blob FROM messages WHERE id = ?", (target,)).fetchone()
        db.close()
    await alice.delete(target)
    assert target not in alice.messages
    if server.database_url is not None:  # the copy comes back
        pg_put_back(server.database_url, str(alice.address), target, blob)
    else:
        put_back(server.database, str(alice.address), target, blob)
    later = Mailbox(alice.paths, alice.account, alice.identity)  # the app started again
    assert target in await later.refresh()
    again = later.message(target)
    assert not again.verified and DELETED in again.verification.problems
    assert not later.messages[target].verified  # and the inbox row says so
