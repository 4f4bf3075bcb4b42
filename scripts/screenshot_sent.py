"""The Sent pictures for ``make screenshots``: Sent, a sent message, and a conversation
with your reply in it (see screenshots.py, which calls :func:`sent_views`)."""

from __future__ import annotations

from typing import Any

from screenshot_kit import Camera, until
from textual.pilot import Pilot

from rune_proto.address import Address
from rune_tui.app import RuneApp


async def send_from_compose(pilot: Pilot[Any], app: RuneApp, inbox: Any, *keys: str) -> None:
    """Type ``keys`` into the compose screen that is open, send, and wait for the inbox."""
    await until(pilot, lambda: app.screen.query("TextArea"), "compose")
    await pilot.pause(0.3)
    await pilot.press(*keys)
    await pilot.press("ctrl+s")
    await until(pilot, lambda: app.screen is inbox, "the inbox after sending")
    app.clear_notifications()


async def sent_views(pilot: Pilot[Any], app: RuneApp, shoot: Camera, friend: Address) -> None:
    """Reply to the newest message and write to the friend, then photograph what was sent."""
    inbox: Any = app.screen
    await pilot.press("g", "r")
    await send_from_compose(pilot, app, inbox, *"Sounds good, count me in.")
    await pilot.press("c")
    body = "Shall we try the new place by the river? I can book for 7."
    await send_from_compose(
        pilot, app, inbox, *str(friend), "tab", *"Dinner on Saturday?", "tab", *body
    )

    await pilot.press("S")
    await until(pilot, lambda: type(app.screen).__name__ == "SentScreen", "Sent")
    await pilot.pause(0.5)
    shoot("sent")
    await pilot.press("enter")
    await until(pilot, lambda: type(app.screen).__name__ == "SentReaderScreen", "a sent one")
    await pilot.pause(0.5)
    shoot("sent-reader")
    await pilot.press("escape", "escape")
    await until(pilot, lambda: app.screen is inbox, "the inbox again")

    await pilot.press("t", "g")
    await pilot.pause(0.5)
    app.clear_notifications()
    await pilot.pause(0.3)
    shoot("conversations")
    await pilot.press("t", "g")
    await pilot.pause(0.3)
    app.clear_notifications()
