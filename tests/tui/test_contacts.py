"""Contacts and changed keys: the contacts screen, the key-change screen, the server's key.

The screens are driven with a Pilot. Everything that involves the network — a contact
whose key changed when sending, a server whose certificate or key changed — runs against
a real ``rune-server`` process.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.command import CommandList, CommandPalette
from textual.widgets import Button, DataTable, Input, Label, Static

from rune_proto.address import parse_address
from rune_proto.client import ContactBook, ReplayLog
from rune_proto.client.contacts import COMPARED_IN_PERSON
from rune_proto.client.vault import Vault
from rune_proto.keys import Identity, PublicKey
from rune_proto.local import tomlfile
from rune_proto.tlspin import pin_text
from rune_tui import service
from rune_tui.app import RuneApp
from rune_tui.components.formatting import fingerprint_block
from rune_tui.config import Paths, load_config, save_config
from rune_tui.screens.compose import ComposeScreen
from rune_tui.screens.confirm import ConfirmScreen
from rune_tui.screens.contacts import ContactsScreen, short_fingerprint
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.key_change import KeyChangeScreen, ServerKeyScreen
from rune_tui.screens.passphrase import PassphraseScreen
from rune_tui.service import Mailbox
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_mail_screens import (
    SIZE,
    MailApp,
    build_mailbox,
    label_text,
    registered_mailbox,
    wait_until,
)
from tests.tui.wizard_pilot import PASSPHRASE

FIRST_SEEN = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def fixed_key(seed: int) -> PublicKey:
    return Identity(bytes([seed]) * 128).public


def write_contacts(tmp_path: Path, entries: list[tuple[str, int, str]]) -> Path:
    """A contacts file for alice@xyz (build_mailbox's account) with fixed keys and dates.

    Written as older versions did (clear TOML named by the address): the mailbox seals it
    and moves it to its keyed-hash name when it first opens the book.
    """
    paths = Paths(tmp_path / "config", tmp_path / "data")
    path = paths.legacy_contacts_file(parse_address("alice@xyz"))
    table = {}
    for index, (address, seed, how) in enumerate(entries):
        key = fixed_key(seed)
        table[address] = {
            "key": key.token(),
            "fingerprint": key.fingerprint_text(),
            "first_seen": (FIRST_SEEN + timedelta(days=index)).isoformat(),
            "how": how,
            "name": "",
        }
    tomlfile.write(path, {"contacts": table})
    return path


SAMPLE = [
    ("bob@xyz", 1, "first message"),
    ("carol@xyz", 2, "first send"),
    ("dmitri@xyz", 3, "accepted change"),
    ("erin@xyz", 4, COMPARED_IN_PERSON),
]


def contacts_app(tmp_path: Path, entries: list[tuple[str, int, str]] = SAMPLE) -> MailApp:
    write_contacts(tmp_path, entries)
    mailbox = build_mailbox(tmp_path, [])
    return MailApp(lambda: ContactsScreen(mailbox))


def reopened(mailbox: Mailbox) -> ContactBook:
    """The mailbox's book as a later run would read it from disk."""
    vault = mailbox.cache.vault
    return ContactBook(mailbox.paths.contacts_file(mailbox.address, vault), vault, mailbox.address)


def row_texts(app: Any) -> list[list[str]]:
    table = app.screen.query_one("#contacts-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


# -- the contact book ---------------------------------------------------------------------


def test_mark_compared_records_it_only_for_the_key_that_was_shown(tmp_path: Path) -> None:
    path, vault = tmp_path / "contacts", Vault(Identity(b"\7" * 128))
    alice = parse_address("alice@xyz")
    book = ContactBook(path, vault, alice)
    bob = parse_address("bob@xyz")
    book.check(bob, fixed_key(1), "first message")
    with pytest.raises(ValueError, match="changed since it was shown"):
        book.mark_compared(bob, fixed_key(2))
    assert book.get(bob) is not None and book.get(bob).how == "first message"  # type: ignore[union-attr]
    book.mark_compared(bob, fixed_key(1))
    assert b"bob@xyz" not in path.read_bytes()  # sealed
    again = ContactBook(path, vault, alice).get(bob)  # saved, not just in memory
    assert again is not None and again.how == COMPARED_IN_PERSON
    with pytest.raises(KeyError):
        book.mark_compared(parse_address("nobody@xyz"), fixed_key(1))


# -- the contacts screen -------------------------------------------------------------------


async def test_contacts_list_pins_and_the_selected_fingerprint_in_full(tmp_path: Path) -> None:
    app = contacts_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await pilot.pause()
        rows = row_texts(app)
        assert [r[0] for r in rows] == ["bob@xyz", "carol@xyz", "dmitri@xyz", "erin@xyz"]
        bob = fixed_key(1).fingerprint_text()
        assert rows[0][1] == short_fingerprint(bob) and rows[0][1].endswith("…")
        local = FIRST_SEEN.astimezone().strftime("%Y-%m-%d %H:%M")
        assert rows[0][2] == local
        assert [r[3] for r in rows] == [
            "first message",
            "first send",
            "accepted change",
            "✓ compared in person",
        ]
        detail = app.screen.query_one("#detail-fingerprint", Static)
        assert str(detail.content) == fingerprint_block(bob, per_line=8)
        await pilot.press("j")
        carol = fixed_key(2).fingerprint_text()
        assert str(detail.content) == fingerprint_block(carol, per_line=8)
        assert label_text(app, "#detail-address") == "carol@xyz"
        assert "not compared yet" in label_text(app, "#detail-how")
        assert "4 contacts, 1 compared in person" in label_text(app, "#contacts-status")


async def test_compared_in_person_after_the_user_confirms(tmp_path: Path) -> None:
    write_contacts(tmp_path, SAMPLE)
    mailbox = build_mailbox(tmp_path, [])
    app = MailApp(lambda: ContactsScreen(mailbox))
    bob = parse_address("bob@xyz")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = label_text(app, "#confirm-question")
        assert fingerprint_block(fixed_key(1).fingerprint_text(), per_line=8) in question
        await pilot.press("n")  # not now: nothing changes
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        assert reopened(mailbox).get(bob).how == "first message"  # type: ignore[union-attr]
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await pilot.pause()
        assert reopened(mailbox).get(bob).how == COMPARED_IN_PERSON  # type: ignore[union-attr]
        assert row_texts(app)[0][3] == "✓ compared in person"
        assert "2 compared in person" in label_text(app, "#contacts-status")
        assert app.screen.query_one("#detail-how").has_class("-compared")


async def test_remove_a_contact_after_a_yes(tmp_path: Path) -> None:
    write_contacts(tmp_path, SAMPLE)
    mailbox = build_mailbox(tmp_path, [])
    app = MailApp(lambda: ContactsScreen(mailbox))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await pilot.press("j", "d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "carol@xyz" in label_text(app, "#confirm-question")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        assert len(reopened(mailbox)) == 4
        await pilot.press("delete")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await pilot.pause()
        assert [str(c.address) for c in reopened(mailbox)] == ["bob@xyz", "dmitri@xyz", "erin@xyz"]
        assert [r[0] for r in row_texts(app)] == ["bob@xyz", "dmitri@xyz", "erin@xyz"]
        assert label_text(app, "#detail-address") == "dmitri@xyz"  # the cursor stayed put


def test_the_mailbox_seals_an_old_clear_book_and_names_it_by_no_address(tmp_path: Path) -> None:
    legacy = write_contacts(tmp_path, SAMPLE)
    mailbox = build_mailbox(tmp_path, [])
    assert [str(c.address) for c in mailbox.contacts] == [a for a, _, _ in SAMPLE]
    assert not legacy.exists()
    (book,) = (tmp_path / "config" / "contacts").iterdir()
    assert book == mailbox.paths.contacts_file(mailbox.address, mailbox.cache.vault)
    assert "alice" not in book.name
    data = book.read_bytes()
    for address, seed, _how in SAMPLE:
        assert address.encode() not in data and fixed_key(seed).token().encode() not in data
    assert reopened(mailbox).get(parse_address("erin@xyz")).how == COMPARED_IN_PERSON  # type: ignore[union-attr]


def test_the_mailbox_moves_an_old_replay_log_to_its_keyed_hash_name(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    legacy = mailbox.paths.legacy_replay_log(mailbox.address)
    ReplayLog(legacy, mailbox.cache.vault).record_deleted("a-deleted-server-id")
    assert mailbox.replays.was_deleted("", "a-deleted-server-id")
    assert not legacy.exists()
    assert [p.name for p in legacy.parent.iterdir()] == [mailbox.replays.path.name]  # type: ignore[union-attr]
    assert "alice" not in mailbox.replays.path.name  # type: ignore[union-attr]


async def test_a_book_that_does_not_open_is_kept_and_the_screen_says_so(tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    path = mailbox.paths.contacts_file(mailbox.address, mailbox.cache.vault)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RUNEVLT1" + bytes(40))  # torn, or sealed by another identity
    told: list[str] = []
    mailbox.on_contacts_problem = told.append
    app = MailApp(lambda: ContactsScreen(mailbox))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await wait_until(pilot, lambda: "does not open" in label_text(app, "#contacts-status"))
        assert "left as it is" in label_text(app, "#contacts-status")
    assert len(told) == 1 and "not remembered" in told[0]
    mailbox.contacts.check(parse_address("bob@xyz"), fixed_key(1), "first message")
    assert path.read_bytes() == b"RUNEVLT1" + bytes(40)  # never overwritten


async def test_no_contacts_says_how_they_come(tmp_path: Path) -> None:
    app = contacts_app(tmp_path, [])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await pilot.pause()
        assert label_text(app, "#contacts-status").startswith("No contacts yet.")
        assert not app.screen.query_one("#contact-detail").display
        await pilot.press("v", "d")  # nothing to act on: a word, not a crash
        assert isinstance(app.screen, ContactsScreen)


async def test_write_to_a_contact_opens_compose_addressed_to_them(tmp_path: Path) -> None:
    app = contacts_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await pilot.press("j", "j", "m")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        assert app.screen.query_one("#compose-to", Input).value == "dmitri@xyz"


# -- the key-change screen -----------------------------------------------------------------


def key_change_app(tmp_path: Path) -> tuple[App[None], Mailbox, list[bool | None]]:
    """The key-change screen as the reader opens it, over the contacts screen."""
    write_contacts(tmp_path, SAMPLE)
    mailbox = build_mailbox(tmp_path, [])
    results: list[bool | None] = []

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ContactsScreen(mailbox))
            pinned = fixed_key(1).fingerprint_text()
            screen = KeyChangeScreen(mailbox, "bob@xyz", pinned, fixed_key(9))
            self.push_screen(screen, callback=results.append)

    return Host(), mailbox, results


async def test_key_change_shows_both_fingerprints_and_needs_the_typed_word(
    tmp_path: Path,
) -> None:
    app, mailbox, results = key_change_app(tmp_path)
    bob = parse_address("bob@xyz")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, KeyChangeScreen))
        await pilot.pause()
        screen = app.screen
        old, new = (str(s.content) for s in screen.query(".fingerprint-pair .fingerprint"))
        assert old == fingerprint_block(fixed_key(1).fingerprint_text())
        assert new == fingerprint_block(fixed_key(9).fingerprint_text())
        meaning = str(screen.query_one(".key-change-meaning", Static).content)
        assert "new device" in meaning and "impersonating bob@xyz" in meaning
        accept = screen.query_one("#key-change-accept", Button)
        assert accept.disabled
        await pilot.press("enter")  # Enter alone accepts nothing
        assert isinstance(app.screen, KeyChangeScreen)
        assert "Type the word" in label_text(app, "#key-change-error")
        await pilot.press(*"accep")
        assert accept.disabled
        await pilot.press("t")
        assert not accept.disabled
        await pilot.press("enter")
        await wait_until(pilot, lambda: results == [True])
    contact = mailbox.contacts.get(bob)
    assert contact is not None and contact.key == fixed_key(9)
    assert contact.how == "accepted change"
    assert reopened(mailbox).get(bob).key == fixed_key(9)  # type: ignore[union-attr]


async def test_escape_keeps_the_old_key(tmp_path: Path) -> None:
    app, mailbox, results = key_change_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, KeyChangeScreen))
        await pilot.press(*"accept", "escape")
        await wait_until(pilot, lambda: results == [False])
    assert mailbox.contacts.get(parse_address("bob@xyz")).key == fixed_key(1)  # type: ignore[union-attr]


# -- against a real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


async def test_a_changed_key_blocks_sending_until_accepted(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    alice = await registered_mailbox(server, "kc-alice-" + tmp_path.name[-6:], tmp_path)
    bob = await registered_mailbox(server, "kc-bob-" + tmp_path.name[-6:], tmp_path)
    impostor = fixed_key(7)
    alice.contacts.check(bob.address, impostor, "first send")  # the pin is not bob's key
    app = MailApp(lambda: ComposeScreen(alice, to=str(bob.address), subject="Hi", body="Tea?"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        compose = app.screen
        assert isinstance(compose, ComposeScreen)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, KeyChangeScreen))
        old, new = (str(s.content) for s in app.screen.query(".fingerprint-pair .fingerprint"))
        assert old == fingerprint_block(impostor.fingerprint_text())
        assert new == fingerprint_block(bob.identity.public.fingerprint_text())
        await pilot.press("escape")  # keep the old key: nothing is sent, the draft stays
        await wait_until(pilot, lambda: app.screen is compose)
        await wait_until(
            pilot, lambda: "you kept the old key" in label_text(app, "#compose-status")
        )
        assert compose.banner.display  # and the change stays on show until reviewed
        assert "blocked" in str(compose.banner.content)
        assert (compose.to, compose.subject, compose.body) == (str(bob.address), "Hi", "Tea?")
        assert compose.drafts.list()[0].body == "Tea?"  # kept in the drafts too
        assert await bob.refresh() == []
        await pilot.press("ctrl+s")  # again: the same question
        await wait_until(pilot, lambda: isinstance(app.screen, KeyChangeScreen))
        await pilot.press(*"accept", "enter")  # accepting sends again by itself
        await wait_until(pilot, lambda: not app.screen_stack or app.screen is not compose)
        await wait_until(
            pilot, lambda: any("Sent to" in str(n.message) for n in app._notifications)
        )
        assert compose.drafts.list() == []  # sent: the draft is gone
    pinned = alice.contacts.get(bob.address)
    assert pinned is not None and pinned.key == bob.identity.public
    assert pinned.how == "accepted change"
    new_ids = await bob.refresh()
    assert [bob.messages[i].body for i in new_ids] == ["Tea?"]


async def file_profile(server: RuneServerProcess, profile: Path, name: str) -> Paths:
    """A profile with one account registered the way the wizard does (key in a file)."""
    paths = Paths.from_profile(profile)
    probe = await service.probe_server(server.host, server.port)
    await service.register_account(
        paths, load_config(paths), probe, name, keystore="file", passphrase=PASSPHRASE
    )
    return paths


async def unlock(pilot: Any, app: RuneApp, *, then: type[Any] = InboxScreen) -> None:
    """Type the passphrase and wait for the screen it leads to (the inbox, usually)."""
    await wait_until(pilot, lambda: isinstance(app.screen, PassphraseScreen))
    app.screen.query_one("#passphrase", Input).value = PASSPHRASE
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, then), timeout=20)


async def palette(pilot: Any, command: str) -> None:
    """Run a command from the command palette, typed as a person would.

    Enter waits until the palette lists and highlights a match (it batches its results
    for a quarter second), not for a fixed time that a busy machine can outlast.
    """
    await pilot.press("ctrl+p")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CommandPalette))
    await pilot.press(*command)

    def match_highlighted() -> bool:
        results = pilot.app.screen.query_one(CommandList)
        index = results.highlighted
        if index is None or not results.option_count:
            return False
        prompt = results.get_option_at_index(index).prompt
        return command.lower() in str(getattr(prompt, "plain", prompt)).lower()

    await wait_until(pilot, match_highlighted)
    await pilot.press("enter")


@pytest.mark.parametrize("what", ["tls", "key"])
async def test_a_changed_server_is_shown_and_accepting_repins_it(
    server: RuneServerProcess, tmp_path: Path, what: str
) -> None:
    paths = await file_profile(server, tmp_path / "p", f"srv-{what}-{tmp_path.name[-6:]}")
    config = load_config(paths)
    account = config.accounts[0]
    # The config pins something else: to the client this is exactly a changed server.
    if what == "tls":
        stale = replace(account, tls_pin="sha256:" + "ab" * 32)
    else:
        stale = replace(account, server_key=fixed_key(5).token())
    save_config(paths, config.replacing(stale))
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        # The inbox opens, its first refresh meets the changed server, and the app asks.
        await unlock(pilot, app, then=ServerKeyScreen)
        screen = app.screen
        assert isinstance(screen, ServerKeyScreen)
        pairs = list(screen.query(".fingerprint-pair"))
        assert len(pairs) == 1  # only what changed
        old, new = (str(s.content) for s in pairs[0].query(".fingerprint"))
        if what == "tls":
            assert old == fingerprint_block(pin_text("sha256:" + "ab" * 32))
            assert new == fingerprint_block(pin_text(server.tls_pin))
        else:
            assert old == fingerprint_block(fixed_key(5).fingerprint_text())
            real = server.server_public_key.fingerprint_text()
            assert new == fingerprint_block(real)
        assert "intercepting" in str(screen.query_one(".key-change-meaning", Static).content)
        await pilot.press(*"accept", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await wait_until(pilot, lambda: load_config(paths).accounts[0] == account.as_saved())
        assert app.mailbox is not None and app.mailbox.account.as_saved() == account.as_saved()
        # The inbox refreshes with the new pins, and this time it works.
        status = app.screen.query_one("#inbox-status", Label)
        await wait_until(pilot, lambda: "unread" in str(status.content))


async def test_refusing_a_changed_server_keeps_the_old_pins_and_asks_once(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    paths = await file_profile(server, tmp_path / "p", "srv-no-" + tmp_path.name[-6:])
    config = load_config(paths)
    stale = replace(config.accounts[0], tls_pin="sha256:" + "cd" * 32)
    save_config(paths, config.replacing(stale))
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        # The inbox opens, its first refresh meets the changed server, and the app asks.
        await unlock(pilot, app, then=ServerKeyScreen)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert load_config(paths).accounts[0].tls_pin == "sha256:" + "cd" * 32

        app.clear_notifications()
        await pilot.press("R")  # fails again, but the question is not asked again
        await wait_until(  # this refresh is over
            pilot, lambda: any(n.title == "Cannot refresh" for n in app._notifications)
        )
        assert not app._checking_server  # no new question under way
        await pilot.pause(0.5)
        assert isinstance(app.screen, InboxScreen)
        status = app.screen.query_one("#inbox-status", Label)
        assert "TLS certificate changed" in str(status.content)
        # ...until asked for, from the palette
        app.action_check_server()
        await wait_until(pilot, lambda: isinstance(app.screen, ServerKeyScreen), timeout=20)


async def test_capital_c_opens_contacts_from_the_inbox(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    paths = await file_profile(server, tmp_path / "p", "cc-" + tmp_path.name[-6:])
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot, app)
        await pilot.press("C")
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await pilot.press("C")  # not a second contacts screen on top of the first
        await pilot.pause()
        assert sum(isinstance(s, ContactsScreen) for s in app.screen_stack) == 1
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await palette(pilot, "contacts")  # and from the command palette
        await wait_until(pilot, lambda: isinstance(app.screen, ContactsScreen))
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await pilot.press("c")  # in compose, typing C types a C
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press("C")
        assert app.screen.query_one("#compose-to", Input).value == "C"
