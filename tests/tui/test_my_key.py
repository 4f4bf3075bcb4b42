"""My key: reached by M and the palette, shows the address, the grouped fingerprint and a
QR code that holds the key card, fits 80×24, scrolls at 60×15, and marks a contact as
compared in person.

The QR code is checked by reading the widget's rendered text back into modules and
comparing them with segno's own matrix for the key card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import segno
from textual.command import CommandList, CommandPalette
from textual.containers import ScrollableContainer
from textual.geometry import Region

from rune_proto.address import parse_address
from rune_proto.client.contacts import COMPARED_IN_PERSON
from rune_proto.keycard import parse_key_card
from rune_tui.app import RuneApp
from rune_tui.components.formatting import fingerprint_block
from rune_tui.components.qr_code import QUIET_ZONE, QrCode, matrix_from_lines
from rune_tui.screens.confirm import ConfirmScreen
from rune_tui.screens.help import HelpScreen, binding_rows
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.my_key import ContactPickScreen, MyKeyScreen
from rune_tui.service import Mailbox
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_contacts import (
    SAMPLE,
    file_profile,
    fixed_key,
    palette,
    reopened,
    unlock,
    write_contacts,
)
from tests.tui.test_mail_screens import SIZE, MailApp, build_mailbox, label_text, wait_until


def my_key_app(tmp_path: Path, entries: list[tuple[str, int, str]] = SAMPLE) -> MailApp:
    write_contacts(tmp_path, entries)
    mailbox = build_mailbox(tmp_path, [])
    return MailApp(lambda: MyKeyScreen(mailbox))


def rendered_lines(widget: QrCode) -> list[str]:
    """What the widget draws, character by character (after any wrapping or cropping)."""
    width, height = widget.size
    return [strip.text for strip in widget.render_lines(Region(0, 0, width, height))]


def shown_fingerprint(app: Any) -> str:
    return str(app.screen.query_one("#my-key-fingerprint").content)


# -- what it shows ----------------------------------------------------------------------------


async def test_my_key_shows_the_address_and_the_fingerprint_grouped_as_contacts_do(
    tmp_path: Path,
) -> None:
    app = my_key_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MyKeyScreen)
        assert label_text(app, "#my-key-address") == "alice@xyz"
        own = screen.mailbox.identity.public.fingerprint_text()
        # The contacts screen's detail shows a contact's fingerprint in this very block.
        assert shown_fingerprint(app) == fingerprint_block(own, per_line=8)
        assert "My key — alice@xyz" in screen.title


async def test_the_qr_code_holds_the_key_card(tmp_path: Path) -> None:
    app = my_key_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await pilot.pause()
        mailbox: Mailbox = app.screen.mailbox  # type: ignore[attr-defined]
        qr = app.screen.query_one(QrCode)
        card = parse_key_card(qr.payload)
        assert str(card.address) == "alice@xyz" and card.matches(mailbox.identity.public)
        assert qr.payload == f"rune:alice@xyz#{mailbox.identity.public.fingerprint().hex()}"

        drawn = matrix_from_lines(rendered_lines(qr))
        expected = [[bool(m) for m in row] for row in segno.make_qr(qr.payload).matrix]
        size = len(expected)
        side = size + 2 * QUIET_ZONE
        assert all(len(row) == side for row in drawn)
        assert len(drawn) in (side, side + 1)  # an odd height is padded with a light row
        inner = [row[QUIET_ZONE : QUIET_ZONE + size] for row in drawn[QUIET_ZONE:][:size]]
        assert inner == expected
        border = drawn[:QUIET_ZONE] + drawn[QUIET_ZONE + size :]
        border += [row[:QUIET_ZONE] + row[QUIET_ZONE + size :] for row in drawn]
        assert not any(any(row) for row in border)  # the quiet zone is all light


async def test_it_fits_80x24_and_scrolls_by_keyboard_at_60x15(tmp_path: Path) -> None:
    app = my_key_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await pilot.pause()
        qr = app.screen.query_one(QrCode)
        assert app.screen.region.contains_region(qr.region)
        assert qr.region.bottom <= 23  # above the footer
        assert app.screen.query_one("#my-key", ScrollableContainer).max_scroll_y == 0
        assert app.screen.query_one("#my-key-address").region.right <= qr.region.x  # beside
    app = my_key_app(tmp_path / "small")
    async with app.run_test(size=(60, 15)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await pilot.pause()
        scroller = app.screen.query_one("#my-key", ScrollableContainer)
        qr = app.screen.query_one(QrCode)
        assert app.screen.query_one("#my-key-body").has_class("-stacked")
        own = app.screen.mailbox.identity.public.fingerprint_text()  # type: ignore[attr-defined]
        assert shown_fingerprint(app) == fingerprint_block(own, per_line=8)  # 39 < 56 columns
        assert scroller.scroll_y == 0 and scroller.max_scroll_y > 0
        await pilot.press("j", "j")
        await wait_until(pilot, lambda: scroller.scroll_y == 2)
        await pilot.press("end")
        await wait_until(pilot, lambda: scroller.scroll_y == scroller.max_scroll_y)
        assert qr.region.bottom <= scroller.region.bottom  # the code's last line is in view
        await pilot.press("k")
        await wait_until(pilot, lambda: scroller.scroll_y == scroller.max_scroll_y - 1)


# -- marking a contact compared ---------------------------------------------------------------


async def test_marking_a_contact_compared_from_my_key_persists(tmp_path: Path) -> None:
    write_contacts(tmp_path, SAMPLE)
    mailbox = build_mailbox(tmp_path, [])
    app = MailApp(lambda: MyKeyScreen(mailbox))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ContactPickScreen))
        await pilot.press("escape")  # changed my mind: nothing happens
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))

        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ContactPickScreen))
        await pilot.press("down", "enter")  # bob is highlighted first; carol is next
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = label_text(app, "#confirm-question")
        assert "carol@xyz" in question
        assert fingerprint_block(fixed_key(2).fingerprint_text(), per_line=8) in question
        await pilot.press("n")  # not now
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        assert reopened(mailbox).get(parse_address("carol@xyz")).how == "first send"  # type: ignore[union-attr]

        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ContactPickScreen))
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await wait_until(pilot, lambda: "compared in person" in label_text(app, "#my-key-status"))
    saved = reopened(mailbox).get(parse_address("carol@xyz"))  # read again from the file
    assert saved is not None and saved.how == COMPARED_IN_PERSON
    assert saved.key == fixed_key(2)
    others = {str(c.address): c.how for c in reopened(mailbox)}
    assert others["bob@xyz"] == "first message"  # nobody else was touched


async def test_a_contact_already_compared_or_none_at_all_is_said_not_crashed(
    tmp_path: Path,
) -> None:
    app = my_key_app(tmp_path, [("erin@xyz", 4, COMPARED_IN_PERSON)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ContactPickScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        assert "already marked" in label_text(app, "#my-key-status")
    app = my_key_app(tmp_path / "none", [])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await pilot.press("v")
        await wait_until(
            pilot, lambda: any("No contacts yet" in n.message for n in app._notifications)
        )
        assert isinstance(app.screen, MyKeyScreen)


# -- how it is reached ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


async def palette_offers(pilot: Any, query: str, name: str) -> None:
    """Type ``query`` into the palette and wait until ``name`` is among the matches."""
    await pilot.press("ctrl+p")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CommandPalette))
    await pilot.press(*query)

    def offered() -> bool:
        results = pilot.app.screen.query_one(CommandList)
        prompts = (results.get_option_at_index(i).prompt for i in range(results.option_count))
        return any(name in str(getattr(p, "plain", p)) for p in prompts)

    await wait_until(pilot, offered)
    await pilot.press("escape")
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, CommandPalette))


async def test_capital_m_and_the_palette_open_my_key(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    paths = await file_profile(server, tmp_path / "p", "mk-" + tmp_path.name[-6:])
    app = RuneApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot, app)
        assert app.mailbox is not None
        await pilot.press("M")
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        assert label_text(app, "#my-key-address") == str(app.mailbox.address)
        await pilot.press("M")  # not a second one on top of the first
        await pilot.pause()
        assert sum(isinstance(s, MyKeyScreen) for s in app.screen_stack) == 1
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        for query in ("key", "fingerprint", "my key", "QR"):
            await palette_offers(pilot, query, "My key")
        await palette(pilot, "fingerprint")
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await pilot.press("question_mark")  # help lists the screen's keys
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = binding_rows(app.screen_stack[-2], app)
        assert ("v", "my_key.compare") in {(r.keys, r.binding_id) for r in rows}


async def test_a_damaged_contact_book_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    path = write_contacts(tmp_path, SAMPLE)
    path.write_text('[contacts."bob@xyz"]\nkey = "not a key"\n')
    mailbox = build_mailbox(tmp_path, [])
    app = MailApp(lambda: MyKeyScreen(mailbox))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MyKeyScreen))
        await pilot.press("v")
        await wait_until(
            pilot, lambda: any(n.title == "Cannot open your contacts" for n in app._notifications)
        )
        assert isinstance(app.screen, MyKeyScreen)
        assert label_text(app, "#my-key-address") == "alice@xyz"  # the key is still shown
