"""The daily-use pictures: a message with files, a search, the contacts, My key (with its
QR code), compose with attachments, a real changed key (inbox, reader, the review, and
compose's banner), and a correctly signed message whose content is malformed, shown as an
unreadable row.

The friend's account is deleted on the server and registered again with a new key, as
an operator's reset would, so every warning is the real one.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from demo import LocalServer
from screenshot_kit import Camera, progress, refresh_until, until
from textual.pilot import Pilot
from textual.widgets import Input

from rune_proto.address import Address
from rune_proto.client import connect
from rune_proto.envelope import Attachment
from rune_proto.keys import Identity
from rune_tui.app import RuneApp

# The hostile sender of the hardening tests: the picture shows what they defend.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.hardening.poison import POISON_DATA_ARRAY, send_raw


async def send_one(
    server: LocalServer,
    sender: tuple[Address, Identity],
    to: Address,
    subject: str,
    body: str,
    attachments: tuple[Attachment, ...] = (),
) -> None:
    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        await session.login(*sender)
        await session.send(to, subject, body, attachments)


async def reregister(server: LocalServer, address: Address) -> Identity:
    """Delete ``address`` on the server and register it again with a new key.

    This is what an operator's reset (or a lost account taken by someone else) looks
    like from outside: same address, different key. The server has no command for it, so
    the rows go straight from its SQLite database, which LOGIN reads every time. (A
    running server keeps the keys it answered SEND with, so sending *to* the address
    would need a restart; the pictures only need its new messages.)
    """
    with sqlite3.connect(server.database) as db:
        db.execute("DELETE FROM accounts WHERE address = ?", (str(address),))
        db.execute("DELETE FROM messages WHERE receiver = ?", (str(address),))
    db.close()
    identity = Identity.generate()
    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        await session.register(address, identity)
    return identity


def attachment_files() -> list[Path]:
    """Two small files for compose to attach (their contents do not matter).

    Compose shows each file's folder, so they live in a folder with a stable name (a
    random temporary one would change the picture on every run); it is ours alone.
    """
    folder = Path(tempfile.gettempdir()) / "rune-screenshots" / "Documents"
    shutil.rmtree(folder.parent, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    made = []
    for name, size in (("menu.pdf", 84_000), ("map-to-the-river.png", 412_000)):
        path = folder / name
        path.write_bytes(random.Random(name).randbytes(size))
        made.append(path)
    return made


MINUTES = (
    "Hi,\n\nThe minutes from Monday are attached, with the budget sheet and the photo of "
    "the whiteboard. The budget line we argued about is on the second tab.\n\n-- ada"
)
NEW_KEY = (
    "Hi,\n\nMy old laptop died, so I set everything up again on a new one: that is why "
    "my key looks different. I will read you my fingerprint on the phone tonight.\n\n"
    "-- friend"
)


async def daily_use(
    pilot: Pilot[Any],
    app: RuneApp,
    shoot: Camera,
    server: LocalServer,
    address: Address,
    sender: tuple[Address, Identity],
    friend: tuple[Address, Identity],
) -> None:
    """Files, search, contacts, compose with attachments, a changed key and a poison
    message, in that order."""
    inbox: Any = app.screen

    def newest_is(subject: str) -> Callable[[], bool]:
        def check() -> bool:
            newest = inbox.mailbox.ordered()
            return bool(newest) and newest[0].subject == subject

        return check

    files = (
        Attachment("minutes-2026-03-02.txt", random.Random(1).randbytes(3_400)),
        Attachment("budget.ods", random.Random(2).randbytes(48_200)),
        Attachment("whiteboard.jpg", random.Random(3).randbytes(1_310_000)),
    )
    await send_one(server, sender, address, "Minutes, budget and the whiteboard", MINUTES, files)
    await refresh_until(pilot, newest_is("Minutes, budget and the whiteboard"), "the files message")
    await pilot.press("g")
    await pilot.pause(0.5)
    shoot("inbox-attachments")  # + before the subject, the names in the preview
    await pilot.press("enter")
    await until(pilot, lambda: app.screen.query("#reader-files-list"), "the reader with files")
    await pilot.pause(0.5)
    shoot("reader-attachments")
    # s asks where: offer a folder with a stable name, not this machine's home
    from rune_tui.screens import reader as reader_module

    downloads = Path(tempfile.gettempdir()) / "rune-screenshots" / "Downloads"
    downloads.mkdir(parents=True, exist_ok=True, mode=0o700)
    reader_module._LAST_FOLDER[app] = downloads
    await pilot.press("s")
    await until(pilot, lambda: app.screen.query("#save-folder"), "the save dialog")
    await pilot.pause(0.5)
    shoot("save-attachments")
    await pilot.press("escape")
    await until(pilot, lambda: app.screen.query("#reader-files-list"), "the reader again")
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is inbox, "the inbox again")

    await pilot.press("slash")
    await until(pilot, lambda: _focused_id(app) == "search-input", "the search line")
    await pilot.pause(0.3)
    await pilot.press(*"budget", "enter")
    await until(pilot, lambda: inbox.hits is not None and inbox.filtering, "the hits")
    await until(pilot, lambda: "Esc shows all" in _status_of(inbox), "every text searched")
    await pilot.pause(0.5)
    shoot("search")
    await pilot.press("escape", "escape")
    await until(pilot, lambda: inbox.search_query is None, "the search to end")

    await pilot.press("C")
    await until(pilot, lambda: type(app.screen).__name__ == "ContactsScreen", "contacts")
    contacts: Any = app.screen
    await pilot.pause(0.3)
    await pilot.press("v")  # ada's fingerprint, compared in person
    await until(pilot, lambda: app.screen is not contacts, "the comparison question")
    await pilot.press("y")
    await until(pilot, lambda: app.screen is contacts, "the contacts again")
    await pilot.press("j", "j")
    await pilot.pause(0.5)
    shoot("contacts")
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is inbox, "the inbox again")

    await pilot.press("M")  # your own key: address, fingerprint and its QR code
    await until(pilot, lambda: type(app.screen).__name__ == "MyKeyScreen", "my key")
    await pilot.pause(0.5)
    shoot("my-key")
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is inbox, "the inbox again")

    await pilot.press("c")
    await until(pilot, lambda: app.screen.query("TextArea"), "compose")
    await pilot.pause(0.3)
    await pilot.press(*str(friend[0]), "tab", *"Saturday: menu and map", "tab")
    await pilot.press(*"Here is the menu, and a map from the station. See you at 7!")
    for path in attachment_files():
        await pilot.press("ctrl+t")
        await until(pilot, lambda: _focused_id(app) == "compose-attach", "the attach field")
        app.screen.query_one("#compose-attach", Input).value = str(path)
        await pilot.press("enter")
        attached = partial(_status_has, app, f"Attached {path.name}")
        await until(pilot, attached, f"{path.name} attached")
    await pilot.pause(0.5)
    shoot("compose-attachments")
    await pilot.press("escape")
    await pilot.pause(0.3)
    if app.screen is not inbox:  # a draft with text asks before it is dropped
        await pilot.press("d")
    await until(pilot, lambda: app.screen is inbox, "the inbox again")

    progress(f"deleting {friend[0]} on the server and registering it again with a new key")
    new_key = await reregister(server, friend[0])
    await send_one(server, (friend[0], new_key), address, "New laptop, new key", NEW_KEY)
    await refresh_until(pilot, newest_is("New laptop, new key"), "the message with a new key")
    await pilot.press("g")
    await pilot.pause(0.5)
    shoot("key-changed-inbox")
    await pilot.press("enter")
    await until(pilot, lambda: app.screen.query("#reader-key-changed"), "the warning")
    await pilot.pause(0.5)
    shoot("key-changed-reader")
    await pilot.press("K")
    await until(pilot, lambda: app.screen.query("#key-change-confirm"), "the key review")
    await pilot.pause(0.5)
    shoot("key-changed-accept")
    await pilot.press("escape")  # keep the old key: the run leaves nothing accepted
    await until(pilot, lambda: not app.screen.query("#key-change-confirm"), "the reader again")
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is inbox, "the inbox again")

    await pilot.press("c")
    await until(pilot, lambda: app.screen.query("TextArea"), "compose")
    await pilot.pause(0.3)
    await pilot.press(*str(friend[0]), "tab", *"About your new key", "tab")
    await pilot.press(*"Can you read me your fingerprint tonight?")

    def banner_shown() -> bool:
        return any(banner.display for banner in app.screen.query("#compose-key-changed"))

    await until(pilot, banner_shown, "compose's changed-key banner")
    await pilot.pause(0.5)
    shoot("key-changed-compose")
    await pilot.press("escape")
    await pilot.pause(0.3)
    if app.screen is not inbox:  # a draft with text asks before it is dropped
        await pilot.press("d")
    await until(pilot, lambda: app.screen is inbox, "the inbox again")

    progress("sending a correctly signed message whose content is malformed")
    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        await session.login(*sender)
        await send_raw(session, address, POISON_DATA_ARRAY)

    def newest_unreadable() -> bool:
        newest = inbox.mailbox.ordered()
        return bool(newest) and newest[0].unreadable

    await refresh_until(pilot, newest_unreadable, "the unreadable message")
    await pilot.press("g")
    await pilot.pause(0.5)
    shoot("unreadable")


def _focused_id(app: RuneApp) -> str | None:
    return app.focused.id if app.focused is not None else None


def _status_has(app: RuneApp, text: str) -> bool:
    return text in _status_of(app.screen)


def _status_of(screen: Any) -> str:
    """The text of a screen's status line (inbox or compose)."""
    for selector in ("#inbox-status", "#compose-status"):
        for label in screen.query(selector):
            return str(label.render())
    return ""
