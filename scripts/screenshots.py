"""`make screenshots`: the README's pictures, taken from the real app on a real server.

A temporary rune-server gets a dozen senders and two people: you (registered through
the wizard, which is photographed step by step) and a friend. About 200 messages of
varied senders and subjects land in your inbox, a few are read, and then the inbox, the
reader, compose and help are photographed. Then the daily-use screens: a message with
files, a search, the contacts, compose with attachments, and a changed key — the friend's
account is deleted on the server and registered again with a new key, as an operator's
reset would, so the warning is the real one. Each picture is written as SVG (Textual's
own export) and PNG (rsvg-convert, installed from Debian's librsvg2-bin if missing).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from demo import LocalServer, local_server  # the sibling script: python puts scripts/ on the path
from textual.pilot import Pilot
from textual.widgets import Input

from rune_proto.address import Address, parse_address
from rune_proto.client import connect
from rune_proto.envelope import Attachment
from rune_proto.keys import Identity
from rune_tui.app import RuneApp
from rune_tui.config import Paths

OUT = Path(__file__).resolve().parent.parent / "screenshots"
SIZE = (120, 36)
DOMAIN = "example.org"
PASSPHRASE = "screenshots only"
SERVER_WELCOME = "Welcome to the example.org Rune server. Be kind; report abuse to the operator."
SENDERS = (
    "ada", "grace.h", "linus", "radia", "margaret", "ken.t",
    "barbara", "edsger", "frances", "sophie", "build-bot", "book-club",
)  # fmt: skip
SUBJECTS = (
    "Lunch on Thursday?", "Minutes from Monday", "Photos from the trip",
    "Can you review my patch?", "Server maintenance tonight", "Book club: next pick",
    "Build #{n} passed", "Travel receipts", "Coffee next week", "Quick question about keys",
    "Re: the draft", "Re: Re: offsite plans", "Weekly notes #{n}", "Happy birthday!",
    "Slides for Friday", "Where did we land on the budget?", "Moving the standup",
    "Your parcel", "Garden plans", "Re: recipe",
)  # fmt: skip
PARAGRAPHS = (
    "Thanks for sending this over. I read it on the train and have a few small notes, "
    "nothing that should hold it up.",
    "Could we move this to later in the week? Thursday afternoon works best for me, "
    "but I can do Friday morning if that is easier.",
    "I put the photos in the shared folder. The ones from the second day came out best; "
    "the light on the lake was unreal.",
    "The build is green again after the flaky test was fixed. No action needed.",
    "Here is the summary: we agreed to keep the scope small, ship the first part in two "
    "weeks, and look at the numbers before planning more.",
    "Do you still have the notes from last time? I remember we wrote down a list of "
    "questions but I cannot find it anywhere.",
)


def progress(text: str) -> None:
    print(f"screenshots: {text}", flush=True)


# -- pictures -----------------------------------------------------------------------------


def ensure_rsvg() -> str | None:
    """rsvg-convert's path, installing librsvg2-bin if we can; None means SVG only."""
    found = shutil.which("rsvg-convert")
    if found or shutil.which("apt-get") is None:
        return found
    progress("installing librsvg2-bin for rsvg-convert")
    sudo = [] if _is_root() else ["sudo", "-n"]
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q",
                    "--no-install-recommends", "librsvg2-bin"]):  # fmt: skip
        result = subprocess.run([*sudo, *command], check=False, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            break
    return shutil.which("rsvg-convert")


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def png_ready(svg: str) -> str:
    """Textual's SVG, adjusted for librsvg: keep spaces, and use an installed font.

    Rich sizes every run of text for Fira Code and relies on ``textLength``, which
    librsvg ignores; DejaVu Sans Mono at 20.264px has exactly Rich's 12.2px cell.
    """
    svg = svg.replace("<svg ", '<svg xml:space="preserve" ', 1)
    svg = svg.replace("font-family: Fira Code, monospace;", "font-family: DejaVu Sans Mono;")
    return svg.replace("font-size: 20px;", "font-size: 20.264px;")


class Camera:
    def __init__(self, app: RuneApp, rsvg: str | None) -> None:
        self.app = app
        self.rsvg = rsvg
        self.taken: list[str] = []

    def __call__(self, name: str) -> None:
        for field in self.app.screen.query(Input):
            field.cursor_blink = False  # no half-drawn cursor in a picture
        svg = self.app.export_screenshot(title="rune-tui")
        (OUT / f"{name}.svg").write_text(svg)
        if self.rsvg is not None:
            with tempfile.NamedTemporaryFile("w", suffix=".svg") as tmp:
                tmp.write(png_ready(svg))
                tmp.flush()
                subprocess.run([self.rsvg, "-o", str(OUT / f"{name}.png"), tmp.name], check=True)
        self.taken.append(name)
        progress(f"took {name}")


async def until(pilot: Pilot[Any], ready: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def refresh_until(pilot: Pilot[Any], ready: Callable[[], object], what: str) -> None:
    """Press R (check for mail) until ``ready``: a press during a refresh is ignored."""
    deadline = time.monotonic() + 60
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await pilot.press("R")
        for _ in range(40):
            if ready():
                return
            await pilot.pause(0.05)


# -- seeded mail --------------------------------------------------------------------------


async def register(server: LocalServer, name: str) -> tuple[Address, Identity]:
    address, identity = parse_address(f"{name}@{server.domain}"), Identity.generate()
    async with connect(server.host, server.port, tls_fingerprint=server.tls_pin) as session:
        await session.register(address, identity)
    return address, identity


async def seed(server: LocalServer, people: list[tuple[Address, Identity]], to: Address) -> int:
    """About 200 messages from ``people`` to ``to``, in a shuffled but repeatable order."""
    rng = random.Random(1917)
    plan = [(rng.choice(people), n) for n in range(200)]
    sent = 0
    for (sender, identity), n in plan:
        async with connect(server.host, server.port, tls_fingerprint=server.tls_pin) as s:
            await s.login(sender, identity)
            subject = rng.choice(SUBJECTS).format(n=4800 + n)
            body = "\n\n".join(rng.sample(PARAGRAPHS, rng.randint(1, 3)))
            greeting = f"Hi {to.username},\n\n"
            await s.send(to, subject, f"{greeting}{body}\n\n-- {sender.username}")
            sent += 1
    return sent


async def send_one(
    server: LocalServer,
    sender: tuple[Address, Identity],
    to: Address,
    subject: str,
    body: str,
    attachments: tuple[Attachment, ...] = (),
) -> None:
    async with connect(server.host, server.port, tls_fingerprint=server.tls_pin) as session:
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
    async with connect(server.host, server.port, tls_fingerprint=server.tls_pin) as session:
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


# -- the run --------------------------------------------------------------------------------


async def photograph(server: LocalServer, profile: Path, rsvg: str | None) -> list[str]:
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]  # key file, no keyring
    people = [await register(server, name) for name in SENDERS]
    friend = await register(server, "friend")
    app = RuneApp(Paths.from_profile(profile), server=(server.host, server.port))
    shoot = Camera(app, rsvg)
    async with app.run_test(size=SIZE) as pilot:
        wizard: Any = None

        def at(step: str) -> bool:
            return wizard is not None and wizard.current == step

        await until(pilot, lambda: app.screen.query("#connect"), "the wizard")
        wizard = app.screen
        await pilot.pause(0.3)
        shoot("wizard-1-server")
        await pilot.press("enter")
        await until(pilot, lambda: at("trust"), "the trust step")
        await pilot.pause(0.3)
        shoot("wizard-2-trust")
        await pilot.press("enter")
        await until(pilot, lambda: at("address"), "the address step")
        await pilot.pause(0.3)
        shoot("wizard-3-address")
        await pilot.press("enter")
        await until(pilot, lambda: at("keys") and wizard.keystore, "the keys step")
        await pilot.press(*PASSPHRASE, "enter", *PASSPHRASE)
        await pilot.pause(0.3)
        shoot("wizard-4-keys")
        await pilot.press("enter")
        await until(pilot, lambda: at("register"), "the register step")
        await pilot.pause(0.3)
        shoot("wizard-5-register")
        address = parse_address(str(wizard.query_one("#summary-address").visual))
        await pilot.press("enter")
        await until(pilot, lambda: type(app.screen).__name__ == "InboxScreen", "the inbox")
        inbox: Any = app.screen

        progress(f"sending about 200 messages to {address}")
        await seed(server, [*people, friend], address)
        await refresh_until(pilot, lambda: len(inbox.mailbox.messages) >= 200, "the messages")
        await pilot.pause(0.5)
        for _ in range(7):  # read a few, as a person would have by now
            await pilot.press("enter")
            await until(pilot, lambda: app.screen is not inbox, "the reader")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is inbox, "the inbox again")
            await pilot.press("j", "j", "j")
        await pilot.press("g", "j")
        await pilot.pause(0.5)
        shoot("inbox")

        await pilot.press("enter")
        await until(pilot, lambda: app.screen is not inbox, "the reader")
        await pilot.pause(0.5)
        shoot("reader")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is inbox, "the inbox again")

        await pilot.press("c")
        await until(pilot, lambda: app.screen.query("TextArea"), "compose")
        await pilot.pause(0.3)
        await pilot.press(*str(friend[0]), "tab", *"Dinner on Saturday?", "tab")
        await pilot.press(*"Shall we try the new place by the river? I can book for 7.")
        await pilot.pause(0.3)
        shoot("compose")
        await pilot.press("escape")
        await pilot.pause(0.3)
        if app.screen is not inbox:  # a draft with text asks before it is dropped
            await pilot.press("y")
        await until(pilot, lambda: app.screen is inbox, "the inbox again")

        await pilot.press("question_mark")
        await until(pilot, lambda: app.screen is not inbox, "help")
        await pilot.pause(0.5)
        shoot("help")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is inbox, "the inbox again")

        try:
            await daily_use(pilot, app, shoot, server, address, people[0], friend)
        finally:
            shutil.rmtree(Path(tempfile.gettempdir()) / "rune-screenshots", ignore_errors=True)
    return shoot.taken


async def daily_use(
    pilot: Pilot[Any],
    app: RuneApp,
    shoot: Camera,
    server: LocalServer,
    address: Address,
    sender: tuple[Address, Identity],
    friend: tuple[Address, Identity],
) -> None:
    """Files, search, contacts, compose with attachments and a changed key, in that order."""
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
    await pilot.pause(0.3)
    await pilot.press("enter")
    await until(pilot, lambda: app.screen.query("#reader-files-list"), "the reader with files")
    await pilot.pause(0.5)
    shoot("reader-attachments")
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


def main() -> int:
    OUT.mkdir(exist_ok=True)
    rsvg = ensure_rsvg()
    if rsvg is None:
        progress("rsvg-convert is missing (apt-get install librsvg2-bin): writing SVG only")
    with tempfile.TemporaryDirectory(prefix="rune-") as tmp:
        root = Path(tmp)
        with local_server(root, domain=DOMAIN, welcome=SERVER_WELCOME) as server:
            taken = asyncio.run(photograph(server, root / "profile", rsvg))
    kinds = "SVG and PNG" if rsvg else "SVG"
    progress(f"wrote {len(taken)} pictures ({kinds}) to {OUT}: {', '.join(taken)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
