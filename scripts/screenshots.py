"""`make screenshots`: the README's pictures, taken from the real app on a real server.

A temporary rune-server gets a dozen senders and two people: you (registered through
the wizard, which is photographed step by step) and a friend. About 200 messages of
varied senders and subjects land in your inbox, a few are read, and then the inbox, the
reader, compose and help are photographed, then Sent (after a reply and a new message),
a sent message and a conversation with the reply in it. Then the daily-use screens: a
message with files, a search, the contacts, your own key (My key, with its QR code),
compose with attachments, and a changed key — the friend's account is deleted on the
server and registered again with a new key, as an operator's reset would, so the warning
is the real one. Each picture is written as SVG (Textual's
own export) and PNG (rsvg-convert, installed from Debian's librsvg2-bin if missing).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from demo import LocalServer, local_server  # the sibling script: python puts scripts/ on the path
from screenshot_daily import daily_use
from screenshot_kit import OUT, Camera, ensure_rsvg, progress, refresh_until, until
from screenshot_sent import sent_views

from rune_proto.address import Address, parse_address
from rune_proto.client import connect
from rune_proto.keys import Identity
from rune_tui.app import RuneApp
from rune_tui.config import Paths

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


# -- seeded mail --------------------------------------------------------------------------


async def register(server: LocalServer, name: str) -> tuple[Address, Identity]:
    address, identity = parse_address(f"{name}@{server.domain}"), Identity.generate()
    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        await session.register(address, identity)
    return address, identity


async def seed(server: LocalServer, people: list[tuple[Address, Identity]], to: Address) -> int:
    """About 200 messages from ``people`` to ``to``, in a shuffled but repeatable order."""
    rng = random.Random(1917)
    plan = [(rng.choice(people), n) for n in range(200)]
    sent = 0
    for (sender, identity), n in plan:
        async with connect(
            server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
        ) as s:
            await s.login(sender, identity)
            subject = rng.choice(SUBJECTS).format(n=4800 + n)
            body = "\n\n".join(rng.sample(PARAGRAPHS, rng.randint(1, 3)))
            greeting = f"Hi {to.username},\n\n"
            await s.send(to, subject, f"{greeting}{body}\n\n-- {sender.username}")
            sent += 1
    return sent


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
        await pilot.click("#import-backup")  # "I already have an address"
        await until(pilot, lambda: app.screen.query("#backup-file"), "the import dialog")
        await until(pilot, lambda: app.screen.keystore is not None, "its keystore line")
        await pilot.press(*"~/rune-account-3f2a91c0.runebackup")
        await pilot.pause(0.3)
        shoot("backup-import")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is wizard, "the wizard again")
        wizard.query_one("#connect").focus()
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
            await pilot.press("d")  # discard: the later pictures show no draft notice
        await until(pilot, lambda: app.screen is inbox, "the inbox again")

        await pilot.press("question_mark")
        await until(pilot, lambda: app.screen is not inbox, "help")
        await pilot.pause(0.5)
        shoot("help")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is inbox, "the inbox again")

        await pilot.press("ctrl+p")
        await pilot.press(*"back up")
        await pilot.pause(0.5)  # the palette batches its matches
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.query("#backup-again"), "the export dialog")
        await pilot.pause(0.3)
        shoot("backup-export")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is inbox, "the inbox again")

        await sent_views(pilot, app, shoot, friend[0])
        try:
            await daily_use(pilot, app, shoot, server, address, people[0], friend)
        finally:
            shutil.rmtree(Path(tempfile.gettempdir()) / "rune-screenshots", ignore_errors=True)
    return shoot.taken


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
