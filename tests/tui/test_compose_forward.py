"""Forwarding with the original's files, and compose's size lookup through the watched session.

Everything runs against a real ``rune-server`` that accepts at most 64 KiB per message:
the forwarded files are listed in compose, removable, counted against that limit,
delivered (the receiver sees them in the reader and saves them), and kept — sealed — in a
draft that survives a restart. The size lookup goes through ``Mailbox.session()``, so a
changed server key met there brings up the app's server-key prompt like any other call.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, OptionList

from rune_proto.client import ServerKeyChanged
from rune_proto.client.vault import MAGIC
from rune_proto.envelope import Attachment
from rune_proto.keys import Identity
from rune_tui.app import RuneApp
from rune_tui.components.attachment_panel import FORWARDED, AttachmentList
from rune_tui.config import load_config
from rune_tui.drafts import DraftStore
from rune_tui.screens import compose_drafts, save_dialog
from rune_tui.screens.compose import ComposeScreen
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.key_change import ServerKeyScreen
from rune_tui.screens.reader import ReaderScreen
from rune_tui.screens.save_dialog import SaveDialog
from rune_tui.service import Mailbox
from rune_tui.trust import WatchedMailbox
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_contacts import file_profile, unlock
from tests.tui.test_mail_screens import (
    SIZE,
    MailApp,
    inbox_app,
    label_text,
    registered_mailbox,
    wait_until,
)

LIMIT = 64 * 1024


@pytest.fixture(autouse=True)
def _quick_autosave(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose_drafts, "AUTOSAVE_SECONDS", 0.2)


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    """A server that accepts at most 64 KiB per message."""
    return rune_server_session("free", max_payload_mib=0.0625)


@pytest.fixture
def downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "Downloads"
    folder.mkdir()
    monkeypatch.setattr(save_dialog, "download_dir", lambda: folder)
    return folder


async def people(server: RuneServerProcess, tmp_path: Path, *names: str) -> list[Mailbox]:
    tag = tmp_path.name[-6:]
    return [await registered_mailbox(server, f"{name}-{tag}", tmp_path) for name in names]


def compose_of(app: Any) -> ComposeScreen:
    screen = app.screen
    assert isinstance(screen, ComposeScreen), f"expected compose, not {screen!r}"
    return screen


def listed(screen: ComposeScreen) -> list[str]:
    listing = screen.query_one(AttachmentList)
    return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]


def parts_of(mailbox: Mailbox) -> list[Path]:
    folder = DraftStore.for_mailbox(mailbox).folder
    return sorted(folder.glob("*.part")) if folder.is_dir() else []


PHOTO = os.urandom(20_000)  # random: it does not compress, and no byte pattern repeats
NOTES = b"Notes from the meeting.\n" * 100


async def test_forward_from_the_inbox_and_the_reader_delivers_the_files(
    server: RuneServerProcess, tmp_path: Path, downloads: Path
) -> None:
    alice, bob, carol = await people(server, tmp_path, "fw-alice", "fw-bob", "fw-carol")
    files = [("photo.jpg", PHOTO), ("../../notes.txt", NOTES)]
    await bob.send(str(alice.address), "Trip", "Pictures and notes.", files)
    app = inbox_app(alice)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(alice.messages) == 1)
        # From the inbox: both files listed as forwarded, with the limit asked of the server.
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = compose_of(app)
        assert screen.title == f"Forward from {bob.address}"
        assert [(a.name, a.data) for a in screen.attached] == [
            ("photo.jpg", PHOTO),
            ("notes.txt", NOTES),  # the sender's path trick is not passed on
        ]
        assert all(FORWARDED in line for line in listed(screen))
        await wait_until(pilot, lambda: screen.max_payload == LIMIT)
        assert label_text(app, "#compose-size").startswith("2 files, 21.9 KiB")
        # Removable like any attachment: only the notes go to carol.
        screen.query_one(AttachmentList).focus()
        await pilot.press("home", "delete")
        assert [a.name for a in screen.attached] == ["notes.txt"]
        assert label_text(app, "#compose-size").startswith("1 file, 2.3 KiB")
        screen.query_one("#compose-to", Input).focus()
        await pilot.press(*str(carol.address), "ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        # From the reader: both files go to carol.
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        assert [a.name for a in compose_of(app).attached] == ["photo.jpg", "notes.txt"]
        await pilot.press(*str(carol.address), "ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
    assert DraftStore.for_mailbox(alice).list() == [] and parts_of(alice) == []

    await carol.refresh()
    first, second = sorted(carol.messages.values(), key=lambda m: len(m.attachments))
    assert first.verified and second.verified
    assert first.subject == second.subject == "Fwd: Trip"
    assert [(a.filename, a.data) for a in first.attachments] == [("notes.txt", NOTES)]
    assert [(a.filename, a.data) for a in second.attachments] == [
        ("photo.jpg", PHOTO),
        ("notes.txt", NOTES),
    ]
    # Carol sees them in her reader and saves them.
    app = MailApp(lambda: ReaderScreen(carol, carol.message(second.id)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        listing = app.screen.query_one("#reader-files-list", OptionList)
        assert listing.option_count == 2
        assert "photo.jpg" in str(listing.get_option_at_index(0).prompt)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SaveDialog))
        await pilot.press("enter")  # the download folder, as offered
        await wait_until(pilot, lambda: (downloads / "notes.txt").exists())
        await wait_until(pilot, lambda: (downloads / "photo.jpg").exists())
    assert (downloads / "photo.jpg").read_bytes() == PHOTO
    assert (downloads / "notes.txt").read_bytes() == NOTES


async def test_forwarded_files_count_against_the_servers_limit(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    alice, bob = await people(server, tmp_path, "lim-alice", "lim-bob")
    big = Attachment("big.bin", os.urandom(40_000))
    small = Attachment("small.txt", b"small")
    on_disk = tmp_path / "more.bin"
    on_disk.write_bytes(os.urandom(20_000))
    app = MailApp(lambda: ComposeScreen(alice, to=str(bob.address), files=[big, small]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = compose_of(app)
        await wait_until(pilot, lambda: screen.max_payload == LIMIT)
        assert "too large" not in label_text(
            app, "#compose-size"
        )  # 40 KB fits in 64 KiB, base64 and all
        # 40 KB forwarded + 20 KB from disk do not: refused before anything is sent.
        await pilot.press("ctrl+t", *str(on_disk), "enter")
        assert "too large: remove an attachment" in label_text(app, "#compose-size")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "this server accepts at most 64.0 KiB" in label_text(app, "#compose-status")
        assert isinstance(app.screen, ComposeScreen)
        # Removing the forwarded one makes it fit.
        screen.query_one(AttachmentList).focus()
        await pilot.press("home", "x")
        assert [a.name for a in screen.attached] == ["small.txt", "more.bin"]
        assert "too large" not in label_text(app, "#compose-size")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, ComposeScreen))
    (message_id,) = await bob.refresh()
    received = bob.messages[message_id]
    assert [(a.filename, a.data) for a in received.attachments] == [
        ("small.txt", b"small"),
        ("more.bin", on_disk.read_bytes()),
    ]


async def test_a_draft_keeps_forwarded_files_sealed_across_a_restart(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    alice, bob = await people(server, tmp_path, "dr-alice", "dr-bob")
    secret = b"The secret plan, in a file.\n" * 50
    files = [Attachment("plan.txt", secret), Attachment("photo.jpg", PHOTO)]
    app = MailApp(lambda: ComposeScreen(alice, subject="Fwd: Plan", files=files))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*str(bob.address))
        store = DraftStore.for_mailbox(alice)
        await wait_until(pilot, lambda: len(store.list()) == 1, timeout=5)
        # The app dies here: no unmount. What is on disk is all there is.
    parts = parts_of(alice)
    assert len(parts) == 2
    # Start-up only counts drafts: the forwarded files (megabytes, maybe) stay unread.
    counting = DraftStore.for_mailbox(alice)
    opened: list[Path] = []
    read = counting.vault.read
    counting.vault.read = lambda path, context: opened.append(path) or read(path, context)  # type: ignore[method-assign]
    assert counting.count() == 1 and opened and not set(opened) & set(parts)
    for part in parts:
        raw = part.read_bytes()
        assert raw.startswith(MAGIC) and secret[:20] not in raw and PHOTO[:20] not in raw
        assert "plan" not in part.name and "photo" not in part.name

    fresh = Mailbox(alice.paths, alice.account, alice.identity)
    (draft,) = DraftStore.for_mailbox(fresh).list()
    assert draft.forwarded == tuple(files) and draft.file_count == 2
    app = MailApp(lambda: ComposeScreen(fresh))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+o")  # resumed from the drafts list, as a user would
        await wait_until(pilot, lambda: not isinstance(app.screen, ComposeScreen))
        assert "(+2 files)" in str(
            app.screen.query_one("#drafts-list", OptionList).get_option_at_index(0).prompt
        )
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = compose_of(app)
        assert screen.to == str(bob.address)
        assert [(a.name, a.data) for a in screen.attached] == [(f.filename, f.data) for f in files]
        assert all(FORWARDED in line for line in listed(screen))
        # Removing one forwarded file removes its sealed copy with the next save.
        screen.query_one(AttachmentList).focus()
        await pilot.press("end", "delete")
        await wait_until(pilot, lambda: len(parts_of(fresh)) == 1, timeout=5)
        (draft,) = DraftStore.for_mailbox(fresh).list()
        assert draft.forwarded == (files[0],)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, ComposeScreen))
    assert DraftStore.for_mailbox(fresh).list() == [] and parts_of(fresh) == []
    (message_id,) = await bob.refresh()
    assert [(a.filename, a.data) for a in bob.messages[message_id].attachments] == [
        ("plan.txt", secret)
    ]


def test_a_draft_with_a_missing_part_counts_as_damaged(tmp_path: Path) -> None:
    from rune_proto.address import parse_address
    from rune_tui.config import Account, Paths
    from rune_tui.drafts import Draft

    identity = Identity.generate()
    account = Account(
        parse_address("alice@xyz"), "127.0.0.1", 1, "sha256:" + "00" * 32, "k", "file"
    )
    store = DraftStore(
        Paths(tmp_path / "c", tmp_path / "d").data_dir, account.address, _vault(identity)
    )
    store.save(Draft("e" * 32, to="bob@xyz", forwarded=(Attachment("a.txt", b"a"),)))
    assert store.load("e" * 32) is not None
    for part in store.folder.glob("*.part"):
        part.unlink()
    assert store.list() == [] and store.damaged == 1


def _vault(identity: Identity) -> Any:
    from rune_proto.client.vault import Vault

    return Vault(identity)


# -- the size lookup and the server-key check --------------------------------------------------


async def test_the_size_lookup_reports_a_changed_server_key(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    (alice,) = await people(server, tmp_path, "key-alice")
    stale = replace(alice.account, server_key=Identity.generate().public.token())
    watched = WatchedMailbox(alice.paths, stale, alice.identity)
    seen: list[Exception] = []
    watched.on_trust_error = lambda mailbox, exc: seen.append(exc)
    with pytest.raises(ServerKeyChanged):
        await watched.max_payload()
    assert len(seen) == 1 and isinstance(seen[0], ServerKeyChanged)
    # With the right pins, the limit is the server's.
    watched.account = alice.account
    assert await watched.max_payload() == LIMIT
    assert len(seen) == 1


async def test_attaching_in_compose_brings_up_the_server_key_prompt(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    paths = await file_profile(server, tmp_path / "p", "cmp-key-" + tmp_path.name[-6:])
    attachment = tmp_path / "notes.txt"
    attachment.write_bytes(NOTES)
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot, app)
        inbox = app.screen
        assert isinstance(inbox, InboxScreen)
        await wait_until(pilot, lambda: "unread" in label_text(app, "#inbox-status"))
        # The server's key changes while the app runs (here: the pin changes, the same thing
        # to the client). The next call to the server is compose's size lookup.
        assert app.mailbox is not None
        account = app.mailbox.account
        app.mailbox.account = replace(account, server_key=Identity.generate().public.token())
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press("ctrl+t", *str(attachment), "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ServerKeyScreen), timeout=20)
        await pilot.press("escape")  # refused: the old pin stays
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        size_line = label_text(app, "#compose-size")
        assert "the server's size limit is unknown" in size_line
        assert load_config(paths).accounts[0] == account.as_saved()
