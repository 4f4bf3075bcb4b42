"""The local message cache: offline opening, no re-downloads, deletions, read marks,
no plaintext on disk, and recovery from a damaged or foreign index.

The flows run against a real ``rune-server``; the recovery cases over caches built offline
by ``bench/make_cache.py`` (the same sealed blobs a server would have stored).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from bench.make_cache import BenchProfile, make_profile
from rune_proto.client import ConnectionFailed, ReceivedMessage, Session
from rune_proto.client.vault import Vault
from rune_proto.keys import Identity
from rune_tui.cache import FORMAT, VERSION, MessageCache, Summary
from rune_tui.cache import store as cache_store
from rune_tui.components.message_list import MessageList
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.reader import ReaderScreen
from rune_tui.service import Mailbox
from tests.tui.test_mail_screens import SIZE, inbox_app, registered_mailbox, wait_until

SECRET_SUBJECTS = ("Quartz harmonica 7731", "Velvet lighthouse 4410", "Copper origami 9902")
SECRET_BODIES = (
    "The zeppelin lands at dawn near the marmalade factory.",
    "Bring the turquoise umbrella and the seventeen walnuts.",
    "Nobody may know that the parrot speaks Esperanto.",
)


def files_under(root: Path) -> Iterator[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            yield Path(folder) / name


def reopen(mailbox: Mailbox) -> Mailbox:
    """The same profile opened again, as after a restart."""
    return Mailbox(mailbox.paths, mailbox.account, mailbox.identity)


def rows(mailbox: Mailbox) -> list[tuple[Any, ...]]:
    return [
        (m.id, str(m.sender), m.subject, m.received_at, m.verified, m.message_id, m.size)
        for m in mailbox.ordered()
    ]


@pytest.fixture
def count_downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every RETRIEVE the client sends, by id."""
    fetched: list[str] = []
    original = Session.retrieve_blob

    async def counting(self: Session, message_id: str) -> bytes:
        fetched.append(message_id)
        return await original(self, message_id)

    monkeypatch.setattr(Session, "retrieve_blob", counting)
    return fetched


async def alice_with_mail(server: Any, root: Path) -> tuple[Mailbox, Mailbox, list[str]]:
    """alice, who received the three secret messages from bartholomew, and her ids."""
    alice = await registered_mailbox(server, "alice", root)
    bart = await registered_mailbox(server, "bartholomew", root)
    for subject, body in zip(SECRET_SUBJECTS, SECRET_BODIES, strict=True):
        await bart.send(str(alice.address), subject, body)
    new = await alice.refresh()
    assert len(new) == 3
    by_subject = {alice.messages[i].subject: i for i in new}
    return alice, bart, [by_subject[s] for s in SECRET_SUBJECTS]


# -- against a real server -----------------------------------------------------------------


async def test_refresh_fills_the_cache_and_a_restart_opens_it_offline(
    rune_server: Any, tmp_path: Path, count_downloads: list[str]
) -> None:
    server = rune_server()
    alice, bart, ids = await alice_with_mail(server, tmp_path)
    assert sorted(count_downloads) == sorted(ids)
    alice.mark_read(ids[0])
    alice.mark_read(ids[1])
    alice.mark_read(ids[1], read=False)
    before = rows(alice)
    server.stop()

    again = reopen(alice)
    assert rows(again) == before
    assert all(isinstance(m, Summary) for m in again.messages.values())
    assert again.is_read(ids[0]) and not again.is_read(ids[1]) and not again.is_read(ids[2])
    assert again.unread_count() == 2
    for message_id, subject, body in zip(ids, SECRET_SUBJECTS, SECRET_BODIES, strict=True):
        full = again.message(message_id)
        assert (full.subject, full.body, full.sender) == (subject, body, bart.address)
        assert full.verified, full.verification.problems
        assert again.messages[message_id].body == body  # the row opens its blob on demand
    with pytest.raises(ConnectionFailed):
        await again.refresh()
    assert rows(again) == before  # a failed refresh leaves the cache alone
    assert len(count_downloads) == 3


async def test_a_refresh_downloads_only_what_the_cache_lacks(
    rune_server: Any, tmp_path: Path, count_downloads: list[str]
) -> None:
    server = rune_server()
    alice, bart, _ = await alice_with_mail(server, tmp_path)
    assert await alice.refresh() == []
    assert await reopen(alice).refresh() == []  # a restart downloads nothing either
    assert len(count_downloads) == 3
    later = await bart.send(str(alice.address), "One more", "Fourth.")
    again = reopen(alice)
    [fourth] = await again.refresh()
    assert len(count_downloads) == 4 and count_downloads[-1] == fourth
    assert again.message(fourth).message_id == later
    assert len(reopen(alice).messages) == 4


async def test_an_interrupted_refresh_keeps_what_it_fetched(
    rune_server: Any, tmp_path: Path, count_downloads: list[str]
) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bart = await registered_mailbox(server, "bartholomew", tmp_path)
    for index in range(5):
        await bart.send(str(alice.address), f"Number {index}", "text")

    def crash_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt  # the app dies mid-refresh

    with pytest.raises(KeyboardInterrupt):
        await alice.refresh(crash_after_two)
    assert len(reopen(alice).messages) == 2  # the index written on the way out has them
    count_downloads.clear()
    again = reopen(alice)
    assert len(await again.refresh()) == 3
    assert len(count_downloads) == 3
    assert {m.subject for m in again.ordered()} == {f"Number {i}" for i in range(5)}


async def test_a_message_deleted_on_the_server_leaves_the_cache_at_the_next_refresh(
    rune_server: Any, tmp_path: Path
) -> None:
    server = rune_server()
    alice, _, ids = await alice_with_mail(server, tmp_path)
    blob_dir = alice.cache.blob_dir
    assert len(list(blob_dir.iterdir())) == 3
    alice.mark_read(ids[0])
    elsewhere = reopen(alice)  # the same account on another device deletes one
    await elsewhere.delete(ids[0])
    assert ids[0] not in elsewhere.messages

    assert ids[0] in alice.messages  # not yet seen here
    assert await alice.refresh() == []
    assert ids[0] not in alice.messages and ids[0] not in alice.read
    assert not alice.cache.blob_path(ids[0]).exists()
    assert len(list(blob_dir.iterdir())) == 2
    server.stop()
    assert set(reopen(alice).messages) == set(ids[1:])


async def test_no_plaintext_under_the_data_dir(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server()
    alice, bart, ids = await alice_with_mail(server, tmp_path)
    alice.mark_read(ids[0])  # a journal record
    alice.mark_read(ids[1])
    alice.cache.save()  # an index with read flags
    alice.mark_read(ids[2])
    assert alice.message(ids[2]).body == SECRET_BODIES[2]
    secrets = [s.encode() for s in (*SECRET_SUBJECTS, *SECRET_BODIES)]
    secrets += [str(bart.address).encode(), b"bartholomew"]
    cache_files = list(files_under(alice.cache.root))
    assert {p.name for p in cache_files} >= {"index", "marks", "server-keys"}
    assert len(cache_files) == 6
    sender_ids = [alice.messages[i].message_id or "" for i in ids]
    assert alice.paths.replay_log(alice.address, alice.cache.vault).is_file()
    for path in files_under(alice.paths.data_dir):
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"{secret!r} in {path}"
            assert secret.decode() not in str(path)
        for message_id in (*ids, *sender_ids):  # ids: neither in names nor in contents
            assert message_id.encode() not in data and message_id not in str(path)
        if path.is_relative_to(alice.cache.root):
            assert os.stat(path).st_mode & 0o077 == 0, f"{path} is readable by others"
    for folder in (alice.cache.root.parent, alice.cache.root, alice.cache.blob_dir):
        assert os.stat(folder).st_mode & 0o077 == 0, f"{folder} is open to others"


async def test_a_damaged_blob_is_shown_as_such_and_fetched_again(
    rune_server: Any, tmp_path: Path, count_downloads: list[str]
) -> None:
    server = rune_server()
    alice, _, ids = await alice_with_mail(server, tmp_path)
    path = alice.cache.blob_path(ids[1])
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x40
    path.write_bytes(bytes(data))
    again = reopen(alice)
    placeholder = again.message(ids[1])
    assert placeholder.subject == SECRET_SUBJECTS[1]  # the headers still come from the index
    assert not placeholder.verified and "missing or damaged" in placeholder.verification.summary()
    count_downloads.clear()
    assert await again.refresh() == []  # fetched again, but not new mail
    assert count_downloads == [ids[1]]
    assert again.message(ids[1]).body == SECRET_BODIES[1]
    assert again.message(ids[1]).verified


async def test_the_inbox_opens_offline_and_the_readers_marks_persist(
    rune_server: Any, tmp_path: Path
) -> None:
    server = rune_server()
    alice, _, ids = await alice_with_mail(server, tmp_path)
    server.stop()
    mailbox = reopen(alice)
    app = inbox_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: listing.row_count == 3)
        await wait_until(pilot, lambda: not app.screen.refreshing)  # type: ignore[attr-defined]
        newest = listing.highlighted  # all three arrived within a second: any may be first
        assert newest is not None and newest.id in ids
        body = SECRET_BODIES[SECRET_SUBJECTS.index(newest.subject)]
        preview = app.screen.query_one("#preview-body", Static)
        assert body in str(preview.content)  # decrypted from the cached blob, offline
        assert any(n.title == "Cannot refresh" for n in app._notifications)  # said in words
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        assert str(app.screen.query_one("#reader-text", Static).content) == body
    assert reopen(alice).is_read(newest.id)
    assert reopen(alice).unread_count() == 2


# -- offline, over generated caches ---------------------------------------------------------


@pytest.fixture
def bench_profile(tmp_path: Path) -> BenchProfile:
    return make_profile(tmp_path / "profile", count=60, seed=7)


def open_bench(bench: BenchProfile) -> Mailbox:
    """The bench profile's mailbox, as the app opens it (a rebuild, if any, done)."""
    mailbox = Mailbox(bench.paths, bench.account, bench.identity)
    asyncio.run(mailbox.recover())
    return mailbox


def read_ids(mailbox: Mailbox) -> set[str]:
    return {i for i in mailbox.messages if mailbox.is_read(i)}


def test_the_generator_makes_a_realistic_cache(bench_profile: BenchProfile) -> None:
    mailbox = open_bench(bench_profile)
    assert len(mailbox.messages) == 60
    assert not mailbox.cache.rebuilt and mailbox.cache.error is None
    unread = {m.server_id for m in bench_profile.messages if m.unread}
    assert {i for i in mailbox.messages if not mailbox.is_read(i)} == unread
    newest = mailbox.ordered()[0]
    expected = bench_profile.messages[-1]
    assert (newest.id, newest.subject) == (expected.server_id, expected.subject)
    assert newest.body == expected.body and newest.verified
    replies = [m for m in mailbox.ordered() if m.in_reply_to]
    assert replies and all(mailbox.message(m.id).verified for m in replies)


def test_opening_decrypts_no_message_until_its_body_is_read(
    bench_profile: BenchProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    original = Mailbox.open_blob

    def counting(
        self: Mailbox, message_id: str, blob: bytes, key: str | None = None
    ) -> ReceivedMessage:
        opened.append(message_id)
        return original(self, message_id, blob, key)

    monkeypatch.setattr(Mailbox, "open_blob", counting)
    mailbox = open_bench(bench_profile)
    listed = mailbox.ordered()
    assert [(m.subject, str(m.sender), m.verified) for m in listed]  # every header field read
    assert mailbox.unread_count() and listed[0] == mailbox.messages[listed[0].id]
    assert len({*listed}) == 60
    assert opened == []
    assert listed[3].body
    assert listed[3].body and listed[3].attachments == ()
    assert opened == [listed[3].id]  # once: then from the LRU


@pytest.mark.parametrize(
    "damage",
    ["flip", "truncate", "empty", "garbage", "wrong-shape"],
)
def test_a_damaged_index_is_rebuilt_from_the_blobs(
    bench_profile: BenchProfile, damage: str
) -> None:
    mailbox = open_bench(bench_profile)
    before = rows(mailbox)
    mailbox.mark_read(before[0][0], read=False)  # a mark in the journal, after the index
    mailbox.mark_read(before[1][0])
    marks = read_ids(mailbox)
    index = mailbox.cache.index_path
    blobs = sorted(p.name for p in mailbox.cache.blob_dir.iterdir())
    data = bytearray(index.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        index.write_bytes(bytes(data))
    elif damage == "truncate":
        index.write_bytes(bytes(data[: len(data) // 3]))
    elif damage == "empty":
        index.write_bytes(b"")
    elif damage == "garbage":
        index.write_bytes(os.urandom(4096))
    else:  # sealed correctly, by us, but not an index we can read (a bug, another version)
        doc = {"format": FORMAT, "version": VERSION, "account": str(mailbox.address)}
        doc |= {"generation": "00" * 16, "senders": [], "checks": [], "rows": [["x"]]}
        mailbox.cache.vault.write(index, json.dumps(doc).encode(), mailbox.cache._index_context)
    again = open_bench(bench_profile)
    assert again.cache.rebuilt
    assert rows(again) == before
    assert read_ids(again) == marks  # read marks survive: the journal keeps a copy
    assert sorted(p.name for p in again.cache.blob_dir.iterdir()) == blobs  # no blob lost
    assert again.message(before[0][0]).verified
    third = open_bench(bench_profile)  # and the rebuilt index is the fast path again
    assert not third.cache.rebuilt and rows(third) == before


def test_a_missing_index_is_rebuilt_too(bench_profile: BenchProfile) -> None:
    mailbox = open_bench(bench_profile)
    before = rows(mailbox)
    mailbox.cache.index_path.unlink()
    mailbox.cache.marks_path.unlink()
    again = open_bench(bench_profile)
    assert again.cache.rebuilt and rows(again) == before
    assert again.unread_count() == 60  # no marks left anywhere: no mail is hidden


def test_an_index_sealed_by_another_identity_is_not_trusted(bench_profile: BenchProfile) -> None:
    mailbox = open_bench(bench_profile)
    before = rows(mailbox)
    # Mallory writes an index with a forged row, sealed under her own vault key.
    mallory = MessageCache(
        mailbox.cache.root, Vault(Identity.generate()), str(mailbox.address), mailbox.open_blob
    )
    forged = mailbox.ordered()[0]
    mallory.add("00000000-0000-4000-8000-000000000001", b"not a blob", forged)
    mallory.senders[0] = None
    mallory.save()
    assert mallory.error is None
    again = open_bench(bench_profile)
    assert again.cache.rebuilt
    assert "00000000-0000-4000-8000-000000000001" not in again.messages
    assert rows(again) == before


def test_a_blob_file_under_another_name_is_refused(bench_profile: BenchProfile) -> None:
    mailbox = open_bench(bench_profile)
    first, second = (m.id for m in mailbox.ordered()[:2])
    mailbox.cache.blob_path(second).write_bytes(mailbox.cache.blob_path(first).read_bytes())
    again = open_bench(bench_profile)
    swapped = again.message(second)
    assert swapped.body == "" and not swapped.verified and second in again.cache.stale
    assert again.message(first).body  # the original is untouched


def test_read_marks_journal_survives_restarts_and_a_torn_tail(
    bench_profile: BenchProfile,
) -> None:
    mailbox = open_bench(bench_profile)
    listed = [m.id for m in mailbox.ordered()]
    journal = mailbox.cache.marks_path
    started = journal.stat().st_size  # the header and its snapshot of read ids
    for message_id in listed[:10]:
        mailbox.mark_read(message_id, read=False)
    for message_id in listed[:4]:
        mailbox.read.add(message_id)  # the live set persists too
    expected = {i for i in listed if mailbox.is_read(i)}
    size = journal.stat().st_size
    assert size - started < 14 * 100  # ~90 bytes a mark, and the index was not rewritten
    again = open_bench(bench_profile)
    assert {i for i in listed if again.is_read(i)} == expected
    with journal.open("ab") as handle:  # a crash in the middle of an append
        handle.write(b"\x00\x50partial")
    third = open_bench(bench_profile)
    assert {i for i in listed if third.is_read(i)} == expected
    assert journal.stat().st_size == size  # the torn tail was cut off
    third.mark_read(listed[5], read=False)
    assert not open_bench(bench_profile).is_read(listed[5])


def test_many_marks_fold_into_the_index(
    bench_profile: BenchProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_store, "MARKS_LIMIT", 5)
    mailbox = open_bench(bench_profile)
    listed = [m.id for m in mailbox.ordered()]
    for message_id in listed:
        mailbox.mark_read(message_id)
    assert mailbox.unread_count() == 0
    assert mailbox.cache.journal.count <= 5  # records since the last index write
    assert open_bench(bench_profile).unread_count() == 0


def test_a_cache_is_private_to_its_identity(bench_profile: BenchProfile, tmp_path: Path) -> None:
    """Another identity for the same address finds no cache, and leaves this one intact."""
    other = Mailbox(bench_profile.paths, bench_profile.account, Identity.generate())
    assert other.messages == {} and other.cache.root != open_bench(bench_profile).cache.root
    assert len(open_bench(bench_profile).messages) == 60


def test_a_row_deleted_while_a_screen_holds_it_does_not_crash(
    bench_profile: BenchProfile,
) -> None:
    mailbox = open_bench(bench_profile)
    held = mailbox.ordered()[0]
    assert isinstance(held, Summary)
    mailbox._forget([held.id])  # as a refresh or a delete does
    assert held.body == "" and held.attachments == ()
    assert mailbox.cache.opened(held).verification.problems == ("this message was deleted",)
    assert held.subject  # the headers it was listed with remain
    with pytest.raises(KeyError):
        mailbox.message(held.id)


def test_summary_identity_never_decrypts(bench_profile: BenchProfile) -> None:
    mailbox = open_bench(bench_profile)
    a, b = mailbox.ordered()[:2]
    assert a != b and a == mailbox.messages[a.id] and len({a, b, a}) == 2
    assert "Summary" in repr(a) and a.subject not in repr(a)
    assert len(mailbox.cache._opened) == 0  # nothing was opened to compare, hash or print
