"""One poison message among good ones, through a real rune-server: nothing stops.

A registered user (bob) signs and sends a MESSAGE whose content has an attachment whose
``data`` is a JSON array. Before the fix, opening it raised AttributeError, so the client
library's retrieve raised and rune-tui's refresh stopped at it on every refresh: the
messages after it never reached the inbox and the poison one could not be deleted.
"""

from __future__ import annotations

from typing import Any

import pytest
from rich.text import Text
from textual.widgets import Static

from rune_tui.screens import inbox as inbox_module
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.reader import ReaderScreen
from tests.hardening.poison import POISON_DATA_ARRAY, send_raw
from tests.tui.test_daily_inbox import app_for, listing
from tests.tui.test_mail_screens import SIZE, registered_mailbox, wait_until

REASON = "attachment 1 has no data text"
pytestmark = pytest.mark.usefixtures("store_kind")  # the server on SQLite and PostgreSQL
GOOD_BEFORE, GOOD_AFTER = 4, 6


async def fill_mailbox(rune_server: Any, tmp_path: Any) -> tuple[Any, Any]:
    """alice's mailbox on a fresh server: 4 good messages, the poison one, 6 good ones."""
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    for number in range(GOOD_BEFORE):
        await bob.send(str(alice.address), f"good {number}", "fine")
    async with bob.session() as session:
        await send_raw(session, alice.address, POISON_DATA_ARRAY)
    for number in range(GOOD_BEFORE, GOOD_BEFORE + GOOD_AFTER):
        await bob.send(str(alice.address), f"good {number}", "fine")
    return alice, bob


async def test_retrieve_all_yields_every_message_the_poison_one_unreadable(
    rune_server: Any, tmp_path: Any
) -> None:
    alice, _ = await fill_mailbox(rune_server, tmp_path)
    async with alice.session() as session:
        listed = await session.list()
        got = [message async for message in session.retrieve_all()]
        one = await session.retrieve(next(m.id for m in got if m.unreadable))
    assert [m.id for m in got] == [info.id for info in listed]
    unreadable = [m for m in got if m.unreadable]
    assert len(got) == GOOD_BEFORE + 1 + GOOD_AFTER and len(unreadable) == 1
    assert unreadable[0].verification.problems == (REASON,)
    assert unreadable[0].sender is not None and str(unreadable[0].sender).startswith("bob@")
    assert one.verification.problems == (REASON,)
    assert all(m.verified for m in got if not m.unreadable)


async def test_refresh_lists_all_eleven_the_poison_one_marked_and_deletable(
    rune_server: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_module, "DELETE_UNDO_SECONDS", 0.5)
    alice, _ = await fill_mailbox(rune_server, tmp_path)
    app = app_for(alice)
    async with app.run_test(size=SIZE) as pilot:
        rows = listing(app)
        await wait_until(pilot, lambda: rows.row_count == GOOD_BEFORE + 1 + GOOD_AFTER, 60)
        shown = [m for m in rows.messages]
        poison = next(m for m in shown if m.unreadable)
        index = shown.index(poison)
        line = rows.render_line(index).text
        assert "!" in line and f"unreadable: {REASON}" in line
        subjects = {m.subject for m in shown if not m.unreadable}
        assert subjects == {f"good {n}" for n in range(GOOD_BEFORE + GOOD_AFTER)}
        # the reader says what is wrong, in words
        rows.move_cursor(index)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        body = app.screen.query_one("#reader-text", Static).content
        assert str(body.plain if isinstance(body, Text) else body) == f"unreadable: {REASON}"
        # and the normal delete key removes it, from the server too
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        await wait_until(pilot, lambda: poison.id not in alice.messages, 30)
        assert rows.row_count == GOOD_BEFORE + GOOD_AFTER
    async with alice.session() as session:
        left = {info.id for info in await session.list()}
    assert poison.id not in left and len(left) == GOOD_BEFORE + GOOD_AFTER
