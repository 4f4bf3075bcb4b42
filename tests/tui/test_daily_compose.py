"""Compose for daily use: To completion, drafts that survive, $EDITOR, attachments and limits.

Drafts are checked on disk (sealed, never plaintext) and across a restart of the screen
with a fresh Mailbox, as after a crash. Sending, the server's size limit and what
arrives run against a real ``rune-server``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Input, OptionList, TextArea

from rune_proto.address import parse_address
from rune_proto.client.vault import MAGIC
from rune_proto.envelope import Attachment, Content, seal_client_message, seal_message
from rune_proto.keys import Identity
from rune_tui import service
from rune_tui.drafts import Draft, DraftStore
from rune_tui.screens import compose as compose_module
from rune_tui.screens import compose_drafts
from rune_tui.screens.compose import (
    AttachmentList,
    ComposeScreen,
    LeaveComposeScreen,
    PathSuggester,
    human_size,
)
from rune_tui.screens.drafts import DraftsScreen
from rune_tui.service import Mailbox
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_contacts import SAMPLE, write_contacts
from tests.tui.test_mail_screens import (
    SIZE,
    MailApp,
    build_mailbox,
    label_text,
    registered_mailbox,
    wait_until,
)


@pytest.fixture(autouse=True)
def _quick_autosave(monkeypatch: pytest.MonkeyPatch) -> None:
    """The debounce is 1 s in the app; a fifth of that keeps these tests quick."""
    monkeypatch.setattr(compose_drafts, "AUTOSAVE_SECONDS", 0.2)


def compose_app(mailbox: Mailbox, **kwargs: Any) -> MailApp:
    return MailApp(lambda: ComposeScreen(mailbox, **kwargs))


def compose_of(app: App[Any]) -> ComposeScreen:
    screen = app.screen
    assert isinstance(screen, ComposeScreen), f"expected compose, not {screen!r}"
    return screen


def draft_files(mailbox: Mailbox) -> list[Path]:
    folder = DraftStore.for_mailbox(mailbox).folder
    return sorted(folder.glob("*.draft")) if folder.is_dir() else []


def reopened(mailbox: Mailbox) -> Mailbox:
    """The same account opened afresh, as after a restart."""
    return Mailbox(mailbox.paths, mailbox.account, mailbox.identity)


# -- To completion -------------------------------------------------------------------------


async def test_to_completes_from_contacts(tmp_path: Path) -> None:
    write_contacts(tmp_path, SAMPLE)
    mailbox = build_mailbox(tmp_path, [])
    app = compose_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        field = compose_of(app).query_one("#compose-to", Input)
        assert field.has_focus
        await pilot.press(*"Ca")  # case does not matter
        await wait_until(pilot, lambda: field._suggestion == "carol@xyz")
        await pilot.press("right")
        assert field.value == "carol@xyz"
        field.value = ""
        await pilot.press(*"zed")
        await pilot.pause(0.1)
        assert field._suggestion == ""  # nobody by that name: no suggestion


# -- drafts --------------------------------------------------------------------------------


async def test_typing_saves_a_sealed_draft_after_a_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compose_drafts, "AUTOSAVE_SECONDS", 1.0)  # the real debounce
    mailbox = build_mailbox(tmp_path, [])
    app = compose_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"bob@xyz", "tab", *"Secret plans", "tab", *"Meet at the old mill")
        assert draft_files(mailbox) == []  # not on every key: debounced
        await wait_until(pilot, lambda: len(draft_files(mailbox)) == 1, timeout=5)
        raw = draft_files(mailbox)[0].read_bytes()
        assert raw.startswith(MAGIC)
        for plaintext in (b"Secret plans", b"old mill", b"bob@xyz", b"alice"):
            assert plaintext not in raw
        assert stat.S_IMODE(draft_files(mailbox)[0].stat().st_mode) == 0o600
        assert "alice" not in str(draft_files(mailbox)[0])  # the folder name says nothing
        (draft,) = DraftStore.for_mailbox(reopened(mailbox)).list()
        assert (draft.to, draft.subject, draft.body) == (
            "bob@xyz",
            "Secret plans",
            "Meet at the old mill",
        )
        # another identity cannot open it
        other = DraftStore(mailbox.paths.data_dir, mailbox.address, _vault(Identity.generate()))
        other.folder = DraftStore.for_mailbox(mailbox).folder
        assert other.list() == [] and other.damaged == 1
        assert other.count() == 0 and DraftStore.for_mailbox(mailbox).count() == 1


def _vault(identity: Identity) -> Any:
    from rune_proto.client.vault import Vault

    return Vault(identity)


async def test_a_draft_survives_a_restart_and_is_offered_again(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    app = compose_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"carol@xyz", "tab", *"Minutes", "tab", *"Draft one")
        store = DraftStore.for_mailbox(mailbox)
        await wait_until(pilot, lambda: [d.body for d in store.list()] == ["Draft one"], timeout=5)
        # The app dies here: no unmount, no goodbye. What is on disk is all there is.
        on_disk = draft_files(mailbox)[0].read_bytes()
    draft_files(mailbox)[0].write_bytes(on_disk)

    fresh = reopened(mailbox)
    app = compose_app(fresh)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert label_text(app, "#compose-status") == (
            "You have an unsent draft: ctrl+o to resume one."
        )
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, DraftsScreen))
        listing = app.screen.query_one("#drafts-list", OptionList)
        assert listing.option_count == 1
        assert "carol@xyz — Minutes" in str(listing.get_option_at_index(0).prompt)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = compose_of(app)
        assert (screen.to, screen.subject, screen.body) == ("carol@xyz", "Minutes", "Draft one")
        assert screen.title == "Draft to carol@xyz"
        # Editing the resumed draft updates the same file, not a second one.
        await pilot.press(*" and two")
        await wait_until(
            pilot,
            lambda: DraftStore.for_mailbox(fresh).list()[0].body == "Draft one and two",
            timeout=5,
        )
        assert len(draft_files(fresh)) == 1


async def test_closing_keeps_the_draft_and_discarding_removes_it(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    app = compose_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"dmitri@xyz")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, LeaveComposeScreen))
        await pilot.press("y")  # close: kept as a draft at once, no autosave needed
        await wait_until(pilot, lambda: not isinstance(app.screen, LeaveComposeScreen))
        assert [d.to for d in DraftStore.for_mailbox(mailbox).list()] == ["dmitri@xyz"]

    mailbox = reopened(mailbox)
    (draft,) = DraftStore.for_mailbox(mailbox).list()
    app = MailApp(lambda: ComposeScreen.from_draft(mailbox, draft))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("escape")  # nothing changed since it was resumed: just closes
        await pilot.pause()
        assert DraftStore.for_mailbox(mailbox).list() != []
    app = MailApp(lambda: ComposeScreen.from_draft(mailbox, draft))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"x", "escape")
        await wait_until(pilot, lambda: isinstance(app.screen, LeaveComposeScreen))
        await pilot.press("d")  # discard
        await wait_until(pilot, lambda: not isinstance(app.screen, LeaveComposeScreen))
        assert DraftStore.for_mailbox(mailbox).list() == []
        assert draft_files(mailbox) == []


async def test_quitting_saves_what_the_autosave_had_not_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compose_drafts, "AUTOSAVE_SECONDS", 30.0)  # never, in this test
    mailbox = build_mailbox(tmp_path, [])
    app = compose_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"erin@xyz", "tab", *"Last words")
        assert draft_files(mailbox) == []
        app.exit()
    (draft,) = DraftStore.for_mailbox(reopened(mailbox)).list()
    assert (draft.to, draft.subject) == ("erin@xyz", "Last words")


async def test_nothing_typed_leaves_no_draft(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    app = compose_app(mailbox)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"ab")
        await wait_until(pilot, lambda: len(draft_files(mailbox)) == 1, timeout=5)
        await pilot.press("backspace", "backspace")  # typed, then took it back
        await wait_until(pilot, lambda: draft_files(mailbox) == [], timeout=5)
        await pilot.press("escape")
        await pilot.pause()
    assert draft_files(mailbox) == []


def test_drafts_store_lists_newest_first_and_deletes(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    store = DraftStore.for_mailbox(mailbox)
    first = store.save(Draft("a" * 32, to="bob@xyz", body="one"))
    second = store.save(Draft("b" * 32, to="carol@xyz", body="two", attachments=("/x/y",)))
    assert [d.id for d in store.list()] == [second.id, first.id]
    assert store.load("b" * 32) == second
    store.delete(first.id)
    assert [d.id for d in store.list()] == [second.id]
    with pytest.raises(ValueError):
        store.load("../../etc/passwd")


# -- $EDITOR ---------------------------------------------------------------------------------


EDITOR_SCRIPT = """\
import os, stat, sys
path = sys.argv[-1]
record = {record!r}
with open(record, "w") as out:
    out.write(path + "\\n")
    out.write(oct(stat.S_IMODE(os.stat(path).st_mode)) + "\\n")
    out.write(oct(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)) + "\\n")
    out.write(open(path).read())
with open(path, "a") as f:
    f.write("\\nWritten in my editor.")
sys.exit({code})
"""


@contextlib.contextmanager
def no_suspend() -> Iterator[None]:
    yield


def fake_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int = 0) -> Path:
    record = tmp_path / "editor-saw.txt"
    script = tmp_path / "editor.py"
    script.write_text(EDITOR_SCRIPT.format(record=str(record), code=code))
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    monkeypatch.delenv("VISUAL", raising=False)
    # The test terminal cannot be handed over; everything else is the real path.
    monkeypatch.setattr(App, "suspend", lambda self: no_suspend())
    return record


async def test_ctrl_e_hands_the_body_to_the_editor_and_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = fake_editor(tmp_path, monkeypatch)
    mailbox = build_mailbox(tmp_path, [])
    app = compose_app(mailbox, to="bob@xyz", subject="Plans", body="Typed in rune-tui.")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+e")
        await pilot.pause()
        screen = compose_of(app)
        assert screen.body == "Typed in rune-tui.\nWritten in my editor."
        assert screen.query_one("#compose-body", TextArea).has_focus
        path, file_mode, dir_mode, seen = record.read_text().split("\n", 3)
        assert seen == "Typed in rune-tui."
        assert (file_mode, dir_mode) == ("0o600", "0o700")
        assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
        # the edit is a change like any other: it goes to the (sealed) draft
        assert DraftStore.for_mailbox(mailbox).list()[0].body.endswith("Written in my editor.")


async def test_a_failing_editor_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = fake_editor(tmp_path, monkeypatch, code=3)
    mailbox = build_mailbox(tmp_path, [])
    app = compose_app(mailbox, to="bob@xyz", body="Keep me.")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert compose_of(app).body == "Keep me."
        assert "exited with status 3" in label_text(app, "#compose-status")
        path = record.read_text().split("\n")[0]
        assert not os.path.exists(os.path.dirname(path))


def test_editor_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISUAL", "code --wait")
    monkeypatch.setenv("EDITOR", "nano")
    assert compose_module.editor_command() == ["code", "--wait"]
    monkeypatch.delenv("VISUAL")
    assert compose_module.editor_command() == ["nano"]
    monkeypatch.delenv("EDITOR")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert compose_module.editor_command() is None


# -- attachments -----------------------------------------------------------------------------


async def test_path_suggester_completes_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "report-2025.pdf").write_bytes(b"%PDF")
    (tmp_path / ".hidden").write_text("x")
    suggest = PathSuggester()
    assert await suggest.get_suggestion(f"{tmp_path}/report-") == f"{tmp_path}/report-2025.pdf"
    assert await suggest.get_suggestion(f"{tmp_path}/reports") is None  # already whole
    assert await suggest.get_suggestion(f"{tmp_path}/repo") == f"{tmp_path}/report-2025.pdf"
    assert await suggest.get_suggestion(f"{tmp_path}/reportsx") is None
    assert await suggest.get_suggestion(f"{tmp_path}/") in (
        f"{tmp_path}/report-2025.pdf",
        f"{tmp_path}/reports/",
    )
    assert await suggest.get_suggestion(f"{tmp_path}/.h") == f"{tmp_path}/.hidden"
    assert await suggest.get_suggestion("/no/such/folder/x") is None


async def test_attach_list_with_sizes_and_remove(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "notes.txt").write_bytes(b"n" * 1500)
    (files / "photo.jpg").write_bytes(b"p" * 300_000)
    mailbox = build_mailbox(tmp_path, [])
    app = compose_app(mailbox, to="bob@xyz", max_payload=16 * 1024 * 1024)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = compose_of(app)
        assert not screen.query_one(AttachmentList).display
        await pilot.press("ctrl+t")
        field = screen.query_one("#compose-attach", Input)
        assert field.has_focus
        await pilot.press(*f"{files}/no", "right")  # → takes the completion
        assert field.value == f"{files}/notes.txt"
        await pilot.press("enter")
        await pilot.press(*f"{files}/photo.jpg", "enter")
        await pilot.press(*f"{files}/missing.bin", "enter")
        assert label_text(app, "#compose-status").startswith("Not attached: There is no file")
        assert field.value.endswith("missing.bin")  # kept, to be corrected
        field.value = ""
        await pilot.press(*f"{files}", "enter")
        assert "is a folder" in label_text(app, "#compose-status")
        listing = screen.query_one(AttachmentList)
        assert listing.display and listing.option_count == 2
        first = str(listing.get_option_at_index(0).prompt)
        assert "notes.txt" in first and "1.5 KiB" in first
        size_line = label_text(app, "#compose-size")
        assert size_line.startswith("2 files, 294.4 KiB")
        assert "this server accepts up to 16.0 MiB" in size_line
        listing.focus()
        await pilot.press("home", "delete")
        assert [a.name for a in screen.attached] == ["photo.jpg"]
        assert label_text(app, "#compose-size").startswith("1 file, 293.0 KiB")
        await pilot.press("x")
        assert screen.attached == []
        assert not listing.display and not screen.query_one("#compose-size").display


async def test_too_large_is_refused_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40_000))
    sent: list[str] = []

    async def send(*args: Any, **kwargs: Any) -> str:
        sent.append("sent")
        return "id"

    mailbox = build_mailbox(tmp_path, [])
    monkeypatch.setattr(mailbox, "send", send)
    app = compose_app(mailbox, to="bob@xyz", subject="Big", max_payload=32 * 1024)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+t", *str(big), "enter")
        size_line = label_text(app, "#compose-size")
        assert "this server accepts up to 32.0 KiB" in size_line and "too large" in size_line
        await pilot.press("ctrl+s")
        await pilot.pause()
        status = label_text(app, "#compose-status")
        assert status.startswith("Not sent: the message would be about")
        assert "this server accepts at most 32.0 KiB" in status
        assert sent == []
        assert isinstance(app.screen, ComposeScreen)


def test_the_size_estimate_is_the_size_that_is_sent() -> None:
    alice, bob, server = (Identity.generate() for _ in range(3))
    sender, receiver = parse_address("alice@example"), parse_address("bob@example")
    cases = [
        ("Hi", "short", [], None),
        ("Sübject ☃", 'line "quoted"\t\n' * 900, [("a.bin", 70_000), ("ü.txt", 5)], "ab12" * 8),
        ("", "", [("big.bin", 2_000_001)], None),
    ]
    for subject, body, files, reply in cases:
        attachments = tuple(Attachment(name, b"\0" * size) for name, size in files)
        content = Content(subject, body, attachments, reply)
        sealed = seal_message(sender, alice, receiver, bob.public, content)
        payload = seal_client_message(sender, alice, receiver, server.public, sealed)
        estimate = service.estimate_payload(str(sender), str(receiver), subject, body, files, reply)
        assert estimate == len(payload)


# -- against a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(rune_server_session: ServerFactory) -> RuneServerProcess:
    """A server that accepts at most 64 KiB per message."""
    return rune_server_session("free", max_payload_mib=0.0625)


async def test_attachments_are_sent_within_the_servers_limit(
    small_server: RuneServerProcess, tmp_path: Path
) -> None:
    alice = await registered_mailbox(small_server, "att-alice-" + tmp_path.name[-6:], tmp_path)
    bob = await registered_mailbox(small_server, "att-bob-" + tmp_path.name[-6:], tmp_path)
    files = tmp_path / "files"
    files.mkdir()
    (files / "too-big.bin").write_bytes(os.urandom(100_000))
    (files / "notes.txt").write_bytes(b"Notes from the meeting.\n" * 200)
    app = compose_app(alice, to=str(bob.address), subject="Files")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = compose_of(app)
        await pilot.press("ctrl+t", *str(files / "too-big.bin"), "enter")
        # The limit comes from the server's CAPA, asked once the first file is attached.
        await wait_until(pilot, lambda: screen.max_payload is not None)
        assert screen.max_payload == 64 * 1024
        assert "this server accepts up to 64.0 KiB" in label_text(app, "#compose-size")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "this server accepts at most 64.0 KiB" in label_text(app, "#compose-status")
        screen.query_one(AttachmentList).focus()
        await pilot.press("delete")
        await pilot.press("ctrl+t", *str(files / "notes.txt"), "enter")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, ComposeScreen))
    new = await bob.refresh()
    received = bob.messages[new[0]]
    assert received.verified
    assert [(a.filename, a.data) for a in received.attachments] == [
        ("notes.txt", (files / "notes.txt").read_bytes())
    ]


async def test_a_sent_draft_is_deleted(small_server: RuneServerProcess, tmp_path: Path) -> None:
    alice = await registered_mailbox(small_server, "dr-alice-" + tmp_path.name[-6:], tmp_path)
    bob = await registered_mailbox(small_server, "dr-bob-" + tmp_path.name[-6:], tmp_path)
    store = DraftStore.for_mailbox(alice)
    draft = store.save(Draft("c" * 32, to=str(bob.address), subject="Later", body="Now."))
    app = MailApp(lambda: ComposeScreen.from_draft(alice, draft))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, ComposeScreen))
    assert store.list() == [] and draft_files(alice) == []
    (message_id,) = await bob.refresh()
    assert bob.messages[message_id].body == "Now."


def test_human_sizes() -> None:
    assert human_size(0) == "0 bytes"
    assert human_size(1023) == "1,023 bytes"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(16 * 1024 * 1024) == "16.0 MiB"


async def test_the_palette_offers_drafts_after_a_restart(
    small_server: RuneServerProcess, tmp_path: Path
) -> None:
    from rune_tui.app import RuneApp
    from rune_tui.config import load_config
    from tests.tui.test_contacts import file_profile, palette, unlock
    from tests.tui.wizard_pilot import PASSPHRASE

    paths = await file_profile(small_server, tmp_path / "p", "pal-" + tmp_path.name[-6:])
    unlocked = service.unlock(paths, load_config(paths).accounts[0], PASSPHRASE)
    mailbox = Mailbox(paths, unlocked.account, unlocked.identity)
    DraftStore.for_mailbox(mailbox).save(Draft("d" * 32, to="carol@xyz", subject="Left over"))
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot, app)
        assert any("You have an unsent draft" in str(n.message) for n in app._notifications)
        await palette(pilot, "drafts")
        await wait_until(pilot, lambda: isinstance(app.screen, DraftsScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = compose_of(app)
        assert (screen.to, screen.subject, screen.draft_id) == ("carol@xyz", "Left over", "d" * 32)
