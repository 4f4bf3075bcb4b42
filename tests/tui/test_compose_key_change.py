"""Compose shows a changed key before sending: the banner, its review key, accept and refuse.

The change is real: alice pins a key for bob that is not his, bob writes to her, and her
refresh caches a message signed with his real key. Sending, and what arrives, run against a
real ``rune-server``; the mailbox's lookup is also checked on its own, without one.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Input

from rune_proto.address import parse_address
from rune_proto.client import KeyChange, Verification
from rune_tui.components.key_banner import KeyChangeBanner
from rune_tui.screens import compose_drafts
from rune_tui.screens.compose import ComposeScreen
from rune_tui.screens.contacts import fingerprint_block
from rune_tui.screens.key_change import KeyChangeScreen
from rune_tui.service import Mailbox
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_contacts import SAMPLE, fixed_key, write_contacts
from tests.tui.test_mail_screens import (
    BASE_TIME,
    SIZE,
    VERIFIED,
    MailApp,
    build_mailbox,
    label_text,
    make_message,
    registered_mailbox,
    wait_until,
)

IMPOSTOR = fixed_key(7)  # what alice pinned for bob: not his key


@pytest.fixture(autouse=True)
def _quick_autosave(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose_drafts, "AUTOSAVE_SECONDS", 0.2)


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


def changed(bob_fingerprint: str, pinned: str = IMPOSTOR.fingerprint_text()) -> Verification:
    change = KeyChange(parse_address("bob@xyz"), pinned, bob_fingerprint)
    return Verification(**{**_fields(VERIFIED), "key_change": change})


def _fields(check: Verification) -> dict[str, Any]:
    return {name: getattr(check, name) for name in Verification.__dataclass_fields__}


async def mailboxes(server: RuneServerProcess, tmp_path: Path) -> tuple[Mailbox, ...]:
    """alice, whose cache holds a message from bob signed with a key she did not pin, and
    one from carol signed with the key she pinned (at first sight); bob; carol."""
    tag = tmp_path.name[-6:]
    alice = await registered_mailbox(server, "ck-alice-" + tag, tmp_path)
    bob = await registered_mailbox(server, "ck-bob-" + tag, tmp_path)
    carol = await registered_mailbox(server, "ck-carol-" + tag, tmp_path)
    alice.contacts.check(bob.address, IMPOSTOR, "first send")
    await bob.send(str(alice.address), "New laptop", "Same me, new key.")
    await carol.send(str(alice.address), "Hello", "Nothing new here.")
    assert len(await alice.refresh()) == 2
    flagged = [m for m in alice.messages.values() if m.verification.key_change is not None]
    assert [m.sender for m in flagged] == [bob.address]  # the change is real, and cached
    return alice, bob, carol


def compose_of(app: App[Any]) -> ComposeScreen:
    screen = app.screen
    assert isinstance(screen, ComposeScreen), f"expected compose, not {screen!r}"
    return screen


def banner_of(app: App[Any]) -> KeyChangeBanner:
    return compose_of(app).query_one("#compose-key-changed", KeyChangeBanner)


def sent(app: App[Any]) -> bool:
    return any("Sent to" in str(n.message) for n in app._notifications)


async def type_to(pilot: Any, address: str) -> None:
    field = compose_of(pilot.app).query_one("#compose-to", Input)
    field.value = ""
    field.focus()
    await pilot.press(*address)


async def test_the_banner_shows_for_a_changed_key_only(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    alice, bob, carol = await mailboxes(server, tmp_path)
    app = MailApp(lambda: ComposeScreen(alice))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        banner = banner_of(app)
        assert not banner.display
        for nobody in (str(carol.address), "nobody@" + alice.address.domain):
            await type_to(pilot, nobody)
            await pilot.press("tab")  # leaving the field checks at once
            await pilot.pause(0.5)  # and the check after typing has run too
            assert not banner.display and banner.change is None, nobody
        await type_to(pilot, str(bob.address))
        await wait_until(pilot, lambda: banner.display)  # typing pauses: checked, no Tab
        text = str(banner.content)
        assert f"The key of {bob.address} changed" in text
        assert f"pinned  {IMPOSTOR.fingerprint_text()}" in text
        assert f"now     {bob.identity.public.fingerprint_text()}" in text
        assert "Sending to" in text and "blocked" in text and "Ctrl+K" in text
        assert compose_of(app).query_one("#compose-to", Input).has_focus
        await pilot.press("backspace")  # no longer bob: the banner goes
        await wait_until(pilot, lambda: not banner.display)


async def test_review_side_by_side_accept_then_send(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    alice, bob, _ = await mailboxes(server, tmp_path)
    to = str(bob.address)
    app = MailApp(lambda: ComposeScreen(alice, to=to, subject="Hi", body="Tea?"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        compose = compose_of(app)
        banner = banner_of(app)
        assert banner.display  # To was filled in: shown when compose opens
        await pilot.press("ctrl+k")  # in the To field, which has its own ctrl+k
        await wait_until(pilot, lambda: isinstance(app.screen, KeyChangeScreen))
        old, new = (str(s.content) for s in app.screen.query(".fingerprint-pair .fingerprint"))
        assert old == fingerprint_block(IMPOSTOR.fingerprint_text())
        assert new == fingerprint_block(bob.identity.public.fingerprint_text())
        await pilot.press(*"accept", "enter")
        await wait_until(pilot, lambda: app.screen is compose)
        assert not banner.display
        assert "accepted" in label_text(app, "#compose-status")
        assert compose.to == to  # ctrl+k opened the review; it did not cut the To field
        pinned = alice.contacts.get(bob.address)
        assert pinned is not None and pinned.key == bob.identity.public
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: sent(app))
    new_ids = await bob.refresh()
    assert [bob.messages[i].body for i in new_ids] == ["Tea?"]


async def test_refusing_keeps_the_banner_and_sending_blocked(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    alice, bob, _ = await mailboxes(server, tmp_path)
    to = str(bob.address)
    app = MailApp(lambda: ComposeScreen(alice, to=to, subject="Hi", body="Tea?"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        compose = compose_of(app)
        banner = banner_of(app)
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(app.screen, KeyChangeScreen))
        await pilot.press(*"accept", "escape")  # typed, but Esc keeps the old key
        await wait_until(pilot, lambda: app.screen is compose)
        assert banner.display
        assert "you kept the old key" in label_text(app, "#compose-status")
        await pilot.press("ctrl+s")  # blocked: the review comes back instead of a send
        await wait_until(pilot, lambda: isinstance(app.screen, KeyChangeScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is compose)
        assert banner.display
        assert (compose.to, compose.subject, compose.body) == (to, "Hi", "Tea?")
        await pilot.pause(0.3)
        assert not sent(app)
    pinned = alice.contacts.get(bob.address)
    assert pinned is not None and pinned.key == IMPOSTOR
    assert await bob.refresh() == []


async def test_the_banner_names_a_rebound_key_and_it_opens_the_review(tmp_path: Path) -> None:
    write_contacts(tmp_path, SAMPLE)  # bob@xyz pinned to fixed_key(1)
    pin, new = fixed_key(1), fixed_key(9)
    message = make_message(1, verification=changed(new.fingerprint_text(), pin.fingerprint_text()))
    mailbox = build_mailbox(tmp_path, [replace(message, sender_key=new)])
    app = MailApp(lambda: ComposeScreen(mailbox, to="bob@xyz", max_payload=1 << 20))
    app.set_keymap({"compose.review_key": "f9"})
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        banner = banner_of(app)
        assert banner.display and "press F9." in str(banner.content)
        # ctrl+k is no longer the key: the focused field keeps its own ctrl+k (delete to the
        # end of the line). From the end of the line it deletes nothing — from the start,
        # where the cursor can still be on a loaded machine, it would empty To, and with
        # it the banner this test is about.
        await pilot.press("end", "ctrl+k")
        await pilot.pause()
        assert isinstance(app.screen, ComposeScreen)
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, KeyChangeScreen))
        assert isinstance(app.screen, KeyChangeScreen) and app.screen.offered_key == new


# -- the mailbox's lookup, without a server --------------------------------------------------


def test_the_newest_signed_message_decides(tmp_path: Path) -> None:
    write_contacts(tmp_path, SAMPLE)  # bob@xyz pinned to fixed_key(1)
    new = fixed_key(9).fingerprint_text()
    old_pin = fixed_key(1).fingerprint_text()
    older = make_message(1, verification=changed(new, old_pin))
    mailbox = build_mailbox(tmp_path, [older])
    bob = parse_address("bob@xyz")
    change = mailbox.key_change_for(bob)
    assert change is not None and (change.pinned, change.offered) == (old_pin, new)
    assert change.message_id == older.id
    assert mailbox.key_change_for(parse_address("carol@xyz")) is None  # pinned, no mail
    assert mailbox.key_change_for(parse_address("zed@xyz")) is None  # not pinned at all
    # A newer message signed with the pinned key: the change is history (the index follows).
    newer = make_message(0, received_at=BASE_TIME + timedelta(hours=1))
    mailbox.messages[newer.id] = newer
    assert mailbox.key_change_for(bob) is None
    # A forged newer message (bad signature) does not count either way.
    del mailbox.messages[newer.id]
    forged = make_message(
        2, received_at=BASE_TIME + timedelta(hours=2), verification=Verification(decrypted=True)
    )
    mailbox.messages[forged.id] = forged
    assert mailbox.key_change_for(bob) is not None
    # The key itself comes from the message, and only if it is the one the index named.
    assert mailbox.offered_key(change) is None  # this message carries no key
    mailbox.messages[older.id] = replace(older, sender_key=fixed_key(9))
    assert mailbox.offered_key(change) == fixed_key(9)
    mailbox.messages[older.id] = replace(older, sender_key=fixed_key(8))
    assert mailbox.offered_key(change) is None
    # Accepted (the pin is now the offered key): nothing pending.
    mailbox.contacts.accept(bob, fixed_key(9))
    assert mailbox.key_change_for(bob) is None


def test_the_lookup_finds_one_change_among_10000_messages(tmp_path: Path) -> None:
    """Correct on a big mailbox; its speed is printed here and measured in bench/, not asserted."""
    write_contacts(tmp_path, SAMPLE)
    new = fixed_key(9).fingerprint_text()
    senders = ("carol@xyz", "dmitri@xyz", "erin@xyz", "xena@xyz", "yusuf@xyz")
    messages = [make_message(i, sender=senders[i % len(senders)]) for i in range(1, 10_000)]
    messages.append(
        make_message(10_000, verification=changed(new, fixed_key(1).fingerprint_text()))
    )
    mailbox = build_mailbox(tmp_path, messages)
    bob = parse_address("bob@xyz")
    start = time.perf_counter()
    assert mailbox.key_change_for(bob) is not None  # builds the index
    built = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(1000):
        assert mailbox.key_change_for(bob) is not None
    each = (time.perf_counter() - start) / 1000
    for sender in senders:
        assert mailbox.key_change_for(parse_address(sender)) is None
    print(f"\nindex of 10,000: {built * 1e3:.1f} ms, then {each * 1e6:.1f} µs a lookup")
