"""The cache's trust and recovery gaps, closed: read marks that survive a rebuild, a rebuild
that leaves the UI running, a sealed replay log, and messages retrieved before an accepted
server-key change that stay verified.

A real ``rune-server`` whose identity really changes (a new sealed identity in its data
directory, then a restart), real caches from ``bench/make_cache.py``, Textual's Pilot.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.make_cache import BenchProfile, make_profile
from rune_proto.client import ConnectionFailed, ServerKeyChanged
from rune_proto.keys import Identity
from rune_proto.secretbox import seal_secret
from rune_proto.server.config import DataDir
from rune_proto.server.datadir import IDENTITY_CONTEXT
from rune_tui.cache import MessageCache
from rune_tui.components.message_list import MessageList
from rune_tui.service import Mailbox
from rune_tui.trust import find_server_change
from tests.server_process import RuneServerProcess
from tests.tui.test_mail_screens import (
    SIZE,
    OfflineMailbox,
    inbox_app,
    label_text,
    registered_mailbox,
    wait_until,
)


def read_ids(mailbox: Mailbox) -> set[str]:
    return {i for i in mailbox.messages if mailbox.is_read(i)}


@pytest.fixture
def bench_profile(tmp_path: Path) -> BenchProfile:
    return make_profile(tmp_path / "profile", count=80, seed=11)


# -- a rebuild keeps read marks, and runs beside the UI -----------------------------------------


async def test_the_inbox_rebuilds_in_a_thread_and_keeps_read_marks(
    bench_profile: BenchProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    listed = [m.id for m in before.ordered()]
    before.mark_read(listed[0])  # marks in the journal, newer than the index
    before.mark_read(listed[1], read=False)
    marks = read_ids(before)
    assert 0 < len(marks) < len(listed)
    before.cache.index_path.unlink()  # lost: the next start rebuilds it from the blobs

    gate = threading.Event()
    threads: list[threading.Thread] = []
    rebuild = MessageCache.rebuild

    def gated(self: MessageCache, progress: Any = None) -> None:
        threads.append(threading.current_thread())
        assert gate.wait(30), "the test never let the rebuild go on"
        rebuild(self, progress)

    monkeypatch.setattr(MessageCache, "rebuild", gated)
    mailbox = OfflineMailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    assert mailbox.cache.needs_rebuild and mailbox.messages == {}  # nothing opened yet
    app = inbox_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        # The rebuild is held up in its thread, and the UI still runs: keys work.
        await wait_until(pilot, lambda: bool(threads))
        assert threads[0] is not threading.main_thread()
        screen = app.screen
        await pilot.press("t")
        await wait_until(pilot, lambda: screen.sub_title == "conversations")
        await pilot.press("t")
        await wait_until(pilot, lambda: screen.sub_title == "")
        assert not gate.is_set() and screen.query_one(MessageList).row_count == 0
        gate.set()
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: listing.row_count == len(listed), timeout=30)
        assert "80 messages" in label_text(app, "#inbox-status")
    assert mailbox.cache.rebuilt and read_ids(mailbox) == marks
    again = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    assert not again.cache.rebuilt and read_ids(again) == marks  # the fast path again


async def test_one_rebuild_serves_every_caller_and_a_refresh_waits_for_it(
    bench_profile: BenchProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    mailbox.cache.index_path.unlink()
    runs: list[int] = []
    rebuild = MessageCache.rebuild

    def counted(self: MessageCache, progress: Any = None) -> None:
        runs.append(1)
        rebuild(self, progress)

    monkeypatch.setattr(MessageCache, "rebuild", counted)
    again = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    assert again.cache.save() is False  # no half index is written while a rebuild is due
    done = await asyncio.gather(again.recover(), again.recover())
    assert done == [True, True] and runs == [1]
    assert len(again.messages) == 80 and not await again.recover()
    again.cache.index_path.unlink()
    offline = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    with pytest.raises(ConnectionFailed):  # nothing listens: but the rebuild ran first
        await offline.refresh()
    assert runs == [1, 1] and len(offline.messages) == 80


async def test_leaving_stops_a_rebuild_between_messages_and_writes_no_half_index(
    bench_profile: BenchProfile,
) -> None:
    first = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    first.cache.index_path.unlink()
    leaving = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    assert leaving.cache.needs_rebuild
    seen: list[int] = []

    def leave_after_five(done: int, total: int) -> None:
        seen.append(done)
        if done == 5:
            leaving.stop()  # what the inbox does when the app quits

    await asyncio.to_thread(leaving.cache.rebuild, leave_after_five)
    assert seen == [1, 2, 3, 4, 5]  # stopped at the next message, not after all 80
    assert leaving.cache.needs_rebuild and not leaving.cache.index_path.exists()
    again = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    assert await again.recover() and len(again.messages) == 80  # the next start finishes it


def test_a_journal_from_before_snapshots_gets_one_at_the_next_open(
    bench_profile: BenchProfile,
) -> None:
    mailbox = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    marks = read_ids(mailbox)
    journal = mailbox.cache.marks_path
    generation = journal.read_bytes()[8:24]
    journal.write_bytes(b"RUNEMRK1" + generation)  # as older versions wrote it: no snapshot
    opened = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    assert read_ids(opened) == marks and journal.read_bytes()[:8] == b"RUNEMRK2"
    opened.cache.index_path.unlink()
    rebuilt = Mailbox(bench_profile.paths, bench_profile.account, bench_profile.identity)
    assert asyncio.run(rebuilt.recover()) and read_ids(rebuilt) == marks


# -- the replay log, sealed ----------------------------------------------------------------------


async def test_the_replay_log_is_sealed_and_still_refuses_a_replay_after_a_restart(
    rune_server: Any, tmp_path: Path
) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bart = await registered_mailbox(server, "bart", tmp_path)
    await bart.send(str(alice.address), "Only once", "Deliver me once.")
    [server_id] = await alice.refresh()
    sender_id = alice.message(server_id).message_id or ""
    blob = alice.cache.stored_blob(server_id)
    assert blob is not None and sender_id
    log = alice.paths.replay_log(alice.address, alice.cache.vault)
    data = log.read_bytes()
    assert sender_id.encode() not in data and server_id.encode() not in data
    restarted = Mailbox(alice.paths, alice.account, alice.identity)
    assert restarted.message(server_id).verified  # the same id again is no replay
    replayed = restarted.open_blob("0f8fad5b-d9cb-469f-a165-70867728950e", blob)
    assert replayed.verification.replay and not replayed.verified


# -- an accepted server-key change ---------------------------------------------------------------


def give_server_a_new_identity(server: RuneServerProcess) -> Identity:
    """What an operator's re-key does: a new sealed identity in the data directory."""
    server.stop()
    identity = Identity.generate()
    passphrase = server.passphrase_file.read_text().splitlines()[0]
    data = DataDir(server.data_dir)
    data.identity.write_bytes(seal_secret(identity.private_bytes(), passphrase, IDENTITY_CONTEXT))
    data.identity_pub.write_text(identity.public.token() + "\n", encoding="ascii")
    server.start()
    return identity


async def test_messages_retrieved_before_an_accepted_server_key_change_stay_verified(
    rune_server: Any, tmp_path: Path
) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bart = await registered_mailbox(server, "bart", tmp_path)
    await bart.send(str(alice.address), "Before", "Sealed by the old server key.")
    [old] = await alice.refresh()
    assert alice.message(old).verified

    new_key = give_server_a_new_identity(server)
    with pytest.raises(ServerKeyChanged):
        await alice.refresh()
    change = await find_server_change(alice.account)
    assert change.key_changed and not change.tls_changed
    alice.account = change.accepted()  # what the app does when the user accepts
    assert alice.account.server_key == new_key.public.token()
    bart.account = replace(bart.account, server_key=change.server_key)
    await bart.send(str(alice.address), "After", "Sealed by the new server key.")
    [new] = await alice.refresh()
    assert alice.message(new).verified

    # The old message was verified under the key pinned when it was retrieved: it stays
    # verified after a restart, after checking every message again, and after a rebuild.
    restarted = Mailbox(alice.paths, alice.account, alice.identity)
    assert restarted.message(old).verified and restarted.message(new).verified
    assert restarted.reverify() == 2
    assert all(m.verified for m in restarted.ordered())
    restarted.cache.index_path.unlink()
    rebuilt = Mailbox(alice.paths, alice.account, alice.identity)
    assert await rebuilt.recover() and rebuilt.cache.rebuilt
    assert {m.id: m.verified for m in rebuilt.ordered()} == {old: True, new: True}
    # The record is what it vouches for: the blob alone, checked against today's key,
    # does not verify (the server sealed it under the old key).
    blob = rebuilt.cache.stored_blob(old)
    assert blob is not None
    today = rebuilt.open_blob(old, blob)
    assert not today.verification.server_signature
