"""Sent: a sealed copy of what you sent, its view, and conversations in both directions.

Everything goes through a real ``rune-server`` over TLS; the copies are checked on disk
(sealed, opaque names) and across a restart of the whole app.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from rune_proto.address import random_part
from rune_proto.client.vault import Vault
from rune_proto.envelope import Attachment
from rune_tui.app import RuneApp
from rune_tui.components.formatting import OWN_BADGE
from rune_tui.components.message_list import MessageList
from rune_tui.config import Paths, load_config, save_config
from rune_tui.screens import save_dialog
from rune_tui.screens.compose import ComposeScreen
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.passphrase import PassphraseScreen
from rune_tui.screens.sent import SentReaderScreen, SentScreen
from rune_tui.sent import SentMessage, SentStore
from rune_tui.service import Mailbox
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_app import registered_profile
from tests.tui.test_contacts import palette
from tests.tui.test_mail_screens import (
    MailApp,
    build_mailbox,
    inbox_app,
    registered_mailbox,
    wait_until,
)
from tests.tui.wizard_pilot import PASSPHRASE, SIZE

SUBJECT = "Harbour plans"
BODY = "Meet at the lighthouse at nine."


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


async def person(server: RuneServerProcess, name: str, root: Path) -> Mailbox:
    """A fresh account on the shared server (names must differ between tests)."""
    return await registered_mailbox(server, f"{name}-{random_part(6)}", root)


def screen_text(app: Any) -> str:
    return "\n".join(str(w.visual) for w in app.screen.query(Static))


def rendered_rows(listing: MessageList) -> list[str]:
    return [listing.render_line(y).text for y in range(listing.row_count)]


async def signed_in(pilot: Any, app: RuneApp) -> None:
    """Past the key file's passphrase prompt, into the inbox, its first refresh done."""
    await wait_until(pilot, lambda: isinstance(app.screen, PassphraseScreen))
    app.screen.query_one("#passphrase").value = PASSPHRASE  # type: ignore[attr-defined]
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
    await wait_until(pilot, lambda: not app.screen.refreshing)  # type: ignore[attr-defined]


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


async def test_a_sent_message_is_kept_sealed_and_shown_after_a_restart(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    account = await registered_profile(server, profile)
    bob = await person(server, "bob", tmp_path)
    app = RuneApp(Paths.from_profile(profile))
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press(*str(bob.address), "tab", *SUBJECT, "tab", *BODY)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert not any("No copy" in str(n.message) for n in app._notifications)
        await pilot.press("q")
    assert len(await bob.refresh()) == 1  # it did go out

    # Sealed: no subject, body or receiver anywhere in the profile's data, no name says it.
    data = Paths.from_profile(profile).data_dir
    sent_files = files_under(data / "sent")
    assert len(sent_files) == 2  # the index and the one message
    for path in files_under(profile):
        raw = path.read_bytes()
        assert SUBJECT.encode() not in raw and b"lighthouse" not in raw, path
        assert str(account.address) not in str(path) or "contacts" in str(path)
    for path in sent_files:
        assert str(bob.address).encode() not in path.read_bytes()
        assert "bob" not in str(path.relative_to(data))

    paths = Paths.from_profile(profile)
    config = load_config(paths)  # the setting reaches the mailbox the app opens
    save_config(
        paths, replace(config, settings=replace(config.settings, sent_attachment_limit_mib=3))
    )
    app = RuneApp(paths)  # a restart
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        assert app.mailbox is not None and app.mailbox.sent_attachment_limit == 3 << 20
        await pilot.press("S")
        await wait_until(pilot, lambda: isinstance(app.screen, SentScreen))
        listing = app.screen.query_one(MessageList)
        assert listing.row_count == 1
        (row,) = rendered_rows(listing)
        assert OWN_BADGE in row and f"To {bob.address}" in row and SUBJECT in row
        assert "1 sent message, kept on this computer" in str(
            app.screen.query_one("#sent-status", Static).visual
        )
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SentReaderScreen))
        text = screen_text(app)
        assert BODY in text
        await pilot.press("q", "q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await palette(pilot, "sent")  # the palette finds it too
        await wait_until(pilot, lambda: isinstance(app.screen, SentScreen))


async def test_conversations_interleave_received_mail_and_your_replies(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    alice = await person(server, "alice", tmp_path)
    bob = await person(server, "bob", tmp_path)
    await bob.send(str(alice.address), "Lunch?", "Noon?")
    (first,) = [alice.messages[i] for i in await alice.refresh()]
    await alice.send(str(bob.address), "Re: Lunch?", "Yes!", in_reply_to=first.message_id)
    (reply,) = [bob.messages[i] for i in await bob.refresh()]
    await bob.send(str(alice.address), "Re: Lunch?", "See you there.", in_reply_to=reply.message_id)
    await alice.send(str(bob.address), "Unrelated", "A thread of mine alone.")

    app = inbox_app(Mailbox(alice.paths, alice.account, alice.identity))  # as after a restart
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: listing.row_count == 2)  # flat: received mail only
        await pilot.press("t")
        await wait_until(pilot, lambda: listing.row_count == 3)
        rows = list(listing.messages)
        assert [m.body or m.subject for m in rows[:1]] == ["Noon?"]
        assert isinstance(rows[1], SentMessage) and rows[1].in_reply_to == first.message_id
        assert not isinstance(rows[2], SentMessage) and rows[2].in_reply_to == reply.message_id
        lines = rendered_rows(listing)
        assert OWN_BADGE in lines[1] and f"To {bob.address}" in lines[1]
        assert OWN_BADGE not in lines[0] and OWN_BADGE not in lines[2]
        assert "●" not in lines[1]  # your own message is never unread
        assert all("Unrelated" not in line for line in lines)  # sent-only: in Sent
        listing.move_cursor(1)
        await pilot.press("d")  # not a server message: nothing is deleted
        await pilot.pause()
        assert listing.row_count == 3
        assert any("a message you sent" in str(n.message) for n in app._notifications)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SentReaderScreen))
        assert "Yes!" in screen_text(app)


async def test_attachments_are_kept_up_to_the_limit_then_names_and_sizes_only(
    server: RuneServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await person(server, "alice", tmp_path)
    bob = await person(server, "bob", tmp_path)
    alice.sent_attachment_limit = 4096
    await alice.send(str(bob.address), "Small", "One file.", [("notes.txt", b"n" * 1000)])
    await alice.send(str(bob.address), "Big", "Too big to keep.", [("photo.jpg", b"p" * 9000)])
    store = SentStore(alice.paths.data_dir, alice.address, Vault(alice.identity))
    small, big = sorted(store.rows.values(), key=lambda m: m.subject, reverse=True)
    assert small.subject == "Small" and small.files_kept
    assert store.attachments(small.id) == (Attachment("notes.txt", b"n" * 1000),)
    assert big.files == (("photo.jpg", 9000),) and not big.files_kept
    assert store.attachments(big.id) == ()
    assert store.message(big.id).body == "Too big to keep."
    for path in files_under(store.root):  # the kept file is sealed too
        assert b"n" * 64 not in path.read_bytes()

    app = MailApp(lambda: SentReaderScreen(alice, store.message(big.id)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SentReaderScreen))
        text = " ".join(screen_text(app).split())
        assert "photo.jpg 8.8 KiB" in text
        assert "only names and sizes are kept here" in text and "sent_attachment_limit_mib" in text
        assert not app.screen.check_action("save", ())  # nothing to save

    folder = tmp_path / "downloads"
    folder.mkdir()
    monkeypatch.setattr(save_dialog, "download_dir", lambda: folder)
    app = MailApp(lambda: SentReaderScreen(alice, store.message(small.id)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SentReaderScreen))
        assert "kept here — s saves it" in screen_text(app)
        await pilot.press("s")  # asks where, as the inbox's reader does
        await wait_until(pilot, lambda: isinstance(app.screen, save_dialog.SaveDialog))
        await pilot.press("enter")  # the download folder, as offered
        await wait_until(pilot, lambda: (folder / "notes.txt").exists())
    assert (folder / "notes.txt").read_bytes() == b"n" * 1000


def test_the_attachment_limit_is_a_setting(tmp_path: Path) -> None:
    paths = Paths.from_profile(tmp_path)
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text("[settings]\nsent_attachment_limit_mib = 2\n")
    assert load_config(paths).settings.sent_attachment_limit_mib == 2
    paths.config_file.write_text("[settings]\nsent_attachment_limit_mib = -1\n")
    config = load_config(paths)
    assert config.settings.sent_attachment_limit_mib == 10
    assert any("sent_attachment_limit_mib" in problem for problem in config.problems)


async def test_a_send_whose_copy_cannot_be_saved_is_still_sent_and_says_so(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    alice = await person(server, "alice", tmp_path)
    bob = await person(server, "bob", tmp_path)
    alice.paths.data_dir.mkdir(parents=True, exist_ok=True)
    (alice.paths.data_dir / "sent").write_text("not a folder")  # the disk refuses the copy
    app = MailApp(lambda: ComposeScreen(alice))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press(*str(bob.address), "tab", *"Still sent", "tab", *"Body.")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: any("No copy was kept" in str(n.message) for n in app._notifications)
        )
    (arrived,) = [bob.messages[i] for i in await bob.refresh()]
    assert arrived.subject == "Still sent"


def test_a_damaged_index_is_rebuilt_from_the_message_files(tmp_path: Path) -> None:
    from rune_proto.address import parse_address

    mailbox = build_mailbox(tmp_path, [])
    store = mailbox.sent
    store.record(message_id="ab" * 16, to=parse_address("bob@xyz"), subject="Kept", body="Text")
    store.index_path.write_bytes(b"torn")
    again = SentStore(mailbox.paths.data_dir, mailbox.address, mailbox.cache.vault)
    (row,) = again.rows.values()
    assert (row.subject, again.message(row.id).body) == ("Kept", "Text")
    assert again.problem is not None and "rebuilt" in again.problem
    stranger = build_mailbox(tmp_path / "other", [])  # another identity opens nothing
    foreign = SentStore(mailbox.paths.data_dir, mailbox.address, stranger.cache.vault)
    assert foreign.rows == {}


async def test_a_sent_message_can_be_followed_up_and_forwarded(tmp_path: Path) -> None:
    from rune_proto.address import parse_address

    mailbox = build_mailbox(tmp_path, [])
    message_id = "cd" * 16
    mailbox.sent.record(
        message_id=message_id,
        to=parse_address("bob@xyz"),
        subject="Plans",
        body="The plan, in short.",
        attachments=(Attachment("plan.txt", b"step one"),),
    )
    app = MailApp(lambda: SentReaderScreen(mailbox, mailbox.sent.message("sent:" + message_id)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SentReaderScreen))
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        compose = app.screen
        assert isinstance(compose, ComposeScreen)
        assert (compose.to, compose.subject, compose.in_reply_to) == (
            "bob@xyz",
            "Re: Plans",
            message_id,
        )
        compose.dismiss(None)
        await wait_until(pilot, lambda: isinstance(app.screen, SentReaderScreen))
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        forward = app.screen
        assert isinstance(forward, ComposeScreen)
        assert forward.subject == "Fwd: Plans" and forward.to == ""
        assert "From: alice@xyz" in forward.body and "The plan, in short." in forward.body
        assert [(f.name, f.data) for f in forward._initial_files] == [("plan.txt", b"step one")]
