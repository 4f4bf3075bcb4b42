"""The demo's welcome bot answers a reply by quoting what the person wrote, not its own text.

rune-tui's reply puts the quoted original (and its "On …, … wrote:" line) above the
cursor, so the first lines of a reply are the bot's own welcome; the bot must skip them.
The reply is written in the real compose screen and goes through a real server.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from rune_tui.components.formatting import quote_body
from rune_tui.screens.compose import ComposeScreen
from tests.tui.test_mail_screens import MailApp, make_message, registered_mailbox, wait_until
from tests.tui.wizard_pilot import SIZE

ROOT = Path(__file__).resolve().parents[2]


def demo_module() -> ModuleType:
    """scripts/demo.py is a script, not a package: load it by path."""
    spec = importlib.util.spec_from_file_location("rune_demo", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("rune_demo", module)
    spec.loader.exec_module(module)
    return module


def test_own_words_leave_out_the_quote_and_its_attribution() -> None:
    demo = demo_module()
    welcome = make_message(1, sender="welcome@demo", body="Hello!\n\nThis is your first.")
    reply = quote_body(welcome, "%Y-%m-%d %H:%M") + "Thanks, it works.\n\nSee you."
    assert demo.own_words(reply) == ["Thanks, it works.", "", "See you."]
    inline = "> Hello!\nHi yourself.\n>\n> This is your first.\nIt is."
    assert demo.own_words(inline) == ["Hi yourself.", "It is."]
    assert demo.own_words(quote_body(welcome, "%Y-%m-%d %H:%M")) == []
    typed_in_front = "Hi bot!" + quote_body(welcome, "%Y-%m-%d %H:%M")  # cursor at the top
    assert demo.own_words(typed_in_front) == ["Hi bot!"]


async def test_the_bot_quotes_the_reply_written_in_rune_tui(
    rune_server: Any, tmp_path: Path
) -> None:
    demo = demo_module()
    server = rune_server()
    local = demo.LocalServer(
        server.host, server.port, server.tls_pin, server.domain, server.database, tmp_path / "log"
    )
    bot = demo.WelcomeBot(local, tmp_path / "bot.log")
    async with bot.session() as session:
        await session.register(bot.address, bot.identity)
    person = await registered_mailbox(server, "newcomer", tmp_path)
    await bot.greet(person.address)
    (welcome,) = [person.messages[i] for i in await person.refresh()]

    app = MailApp(lambda: ComposeScreen.reply(person, welcome))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        app.screen.query_one("#compose-body").focus()
        await pilot.pause()
        await pilot.press("ctrl+end", *"Lovely, thank you.")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: any("Sent to" in str(n.message) for n in app._notifications)
        )

    await bot.answer_replies()
    (answer,) = [person.messages[i] for i in await person.refresh()]
    assert answer.in_reply_to is not None
    assert "> Lovely, thank you." in answer.body
    quoted = [line for line in answer.body.splitlines() if line.startswith(">")]
    assert quoted == ["> Lovely, thank you."]  # not "> On …, welcome@… wrote:", "> > Hello"
