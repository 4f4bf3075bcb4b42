"""New mail shows in the inbox the moment it is stored (WAIT), with polling switched
off; the link's drop and return are told in the status line; and an old server
without WAIT is polled. Real server over TLS, the inbox under Pilot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rune_tui.components.message_list import MessageList
from rune_tui.config import Settings
from rune_tui.screens.inbox import InboxScreen
from tests.tui.test_mail_screens import (
    SIZE,
    inbox_app,
    label_text,
    registered_mailbox,
    wait_until,
)

NO_POLLING = Settings(poll_seconds=24 * 3600)  # only WAIT can bring mail in time
DEADLINE = 30.0  # generous for a loaded machine; bench/ measures the real latency


async def test_new_mail_appears_without_polling(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    app = inbox_app(alice, NO_POLLING)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: not app.screen.refreshing)
        for count in (1, 2):  # and again: the wait is renewed after each notice
            await bob.send(str(alice.address), f"Live {count}", "You did not press R.")
            await wait_until(pilot, lambda n=count: listing.row_count == n, DEADLINE)
        assert app.screen.title == f"{alice.address} — 2 unread"


async def test_a_dropped_link_is_told_and_comes_back(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server()
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    app = inbox_app(alice, NO_POLLING)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        screen = app.screen
        assert isinstance(screen, InboxScreen)
        await wait_until(pilot, lambda: not screen.refreshing)
        server.stop()
        await wait_until(pilot, lambda: screen.link_down is not None, DEADLINE)
        assert label_text(app, "#inbox-status").startswith("Offline:")
        assert "Trying again in" in label_text(app, "#inbox-status")
        server.start()
        started = time.monotonic()
        await wait_until(pilot, lambda: screen.link_down is None, DEADLINE)
        assert any("again" in str(n.message) for n in app._notifications)
        await bob.send(str(alice.address), "After the break", "Still live?")
        listing = screen.query_one(MessageList)
        await wait_until(pilot, lambda: listing.row_count == 1, DEADLINE)
        assert time.monotonic() - started < DEADLINE


async def test_a_server_without_wait_is_polled(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server(wait_lifetime=0)
    alice = await registered_mailbox(server, "alice", tmp_path)
    bob = await registered_mailbox(server, "bob", tmp_path)
    app = inbox_app(alice, Settings(poll_seconds=1))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InboxScreen))
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: not app.screen.refreshing)
        await bob.send(str(alice.address), "Polled", "The old way.")
        await wait_until(pilot, lambda: listing.row_count == 1, DEADLINE)
