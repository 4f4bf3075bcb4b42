"""Issue 16, a newcomer's list: the wizard items (1, 2, 7, 8 and the help of 10).

Driven with a Pilot as a person would, against a real rune-server over real TLS (and,
for item 7, a real plain-text listener on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.css.query import NoMatches
from textual.errors import NoWidget
from textual.pilot import Pilot
from textual.widgets import Input

from rune_proto.address import parse_address, random_part
from rune_proto.client import connect
from rune_proto.keys import Identity
from rune_tui.app import RuneApp
from rune_tui.screens.wizard_steps import split_host_port
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_mail_screens import help_text
from tests.tui.wizard_pilot import (
    PASSPHRASE,
    SIZE,
    connect_step,
    new_app,
    text_of,
    to_register_step,
    type_into,
    until,
    wizard,
)

SMALL = (60, 15)


@pytest.fixture(scope="module")
def both_server(rune_server_session: ServerFactory) -> RuneServerProcess:
    """Free registration and invitations: the user can switch between the two."""
    return rune_server_session("both")


@pytest.fixture(scope="module")
def free_server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


async def register_elsewhere(server: RuneServerProcess, username: str) -> None:
    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        await session.register(parse_address(f"{username}@{server.domain}"), Identity.generate())


async def on_to_register(pilot: Pilot[Any], app: RuneApp) -> None:
    """From the address step, Next through the keys step (its answers are kept)."""
    screen = wizard(app)
    await pilot.press("enter")
    await until(pilot, lambda: screen.current == "keys" and screen.keystore, "the keys step")
    if screen.keystore is not None and screen.keystore[0] == "file":
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#passphrase-again", PASSPHRASE)
    screen.query_one("#keys-next").focus()
    await pilot.press("enter")
    await until(pilot, lambda: screen.current == "register", "the register step")


# -- 1. no stale error after switching the way of joining --------------------------------


async def test_taken_address_then_invitation_shows_no_stale_error(
    tmp_path: Path, both_server: RuneServerProcess
) -> None:
    taken = "taken-" + random_part(6)
    await register_elsewhere(both_server, taken)
    app = new_app(tmp_path / "profile", both_server.host, both_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await to_register_step(pilot, app, taken)
        await pilot.press("enter")  # Register: the name is taken
        screen = wizard(app)
        await until(pilot, lambda: screen.current == "address", "back to the username")
        assert "already taken" in text_of(app, "#username-error")
        await pilot.click("#method-invite")
        await until(pilot, lambda: app.screen.query_one("#token").display, "the token field")
        fresh = "invited-" + random_part(6)
        await type_into(pilot, "#username", fresh)
        await type_into(pilot, "#token", both_server.invite(f"{fresh}@{both_server.domain}"))
        app.screen.query_one("#token").focus()
        await on_to_register(pilot, app)
        assert text_of(app, "#step-register .status") == ""  # not "already taken"
        assert text_of(app, "#summary-method") == (f"{both_server.domain} with an invitation token")
        assert text_of(app, "#summary-address") == f"{fresh}@{both_server.domain}"


async def test_token_error_then_free_registration_shows_no_stale_error(
    tmp_path: Path, both_server: RuneServerProcess
) -> None:
    app = new_app(tmp_path / "profile", both_server.host, both_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await connect_step(pilot, app)
        await pilot.press("enter")
        screen = wizard(app)
        await until(pilot, lambda: screen.current == "address", "the address step")
        await pilot.click("#method-invite")
        await until(pilot, lambda: app.screen.query_one("#token").display, "the token field")
        await type_into(pilot, "#token", "A" * 24)
        await on_to_register(pilot, app)
        await pilot.press("enter")  # Register: the token is refused
        await until(pilot, lambda: screen.current == "address", "back to the token")
        assert "not valid" in text_of(app, "#token-error")
        await pilot.click("#method-free")
        await until(pilot, lambda: not app.screen.query_one("#token").display, "free chosen")
        app.screen.query_one("#username").focus()
        await on_to_register(pilot, app)
        assert text_of(app, "#step-register .status") == ""  # not "token is not valid"
        assert text_of(app, "#summary-method") == f"{both_server.domain} by free registration"


# -- 2. every step usable at 60x15 by keyboard ------------------------------------------


def visible(app: RuneApp, selector: str) -> bool:
    """True if the whole widget is on screen (not scrolled away or clipped)."""
    try:
        widget = app.screen.query_one(selector)
        geometry = app.screen.find_widget(widget)
    except (NoMatches, NoWidget):
        return False
    return geometry.visible_region == geometry.region and geometry.region.area > 0


async def test_every_step_fits_60x15_by_keyboard(
    tmp_path: Path, free_server: RuneServerProcess
) -> None:
    app = new_app(tmp_path / "profile", free_server.host, free_server.port)
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: app.screen.query("#connect"), "the wizard")
        await pilot.pause()
        for field in ("#host", "#port", "#connect"):
            assert visible(app, field), f"{field} is out of view at 60x15"
        await pilot.press("enter")
        screen = wizard(app)
        await until(pilot, lambda: screen.current == "trust", "the trust step")
        await until(pilot, lambda: visible(app, "#trust"), "Trust in view")
        # The fingerprints are above the button: page up brings them into view.
        for _ in range(6):
            if visible(app, "#tls-pin") and visible(app, "#server-key"):
                break
            await pilot.press("pageup")
            await pilot.pause()
        assert visible(app, "#tls-pin") and visible(app, "#server-key")
        for _ in range(6):  # and page down back to the button, which kept the focus
            if visible(app, "#trust"):
                break
            await pilot.press("pagedown")
            await pilot.pause()
        assert visible(app, "#trust") and app.focused is screen.query_one("#trust")
        await pilot.press("enter")
        await until(pilot, lambda: screen.current == "address", "the address step")
        await until(pilot, lambda: visible(app, "#username"), "the username in view")
        await pilot.press("enter")
        await until(pilot, lambda: screen.current == "keys" and screen.keystore, "the keys")
        if screen.keystore is not None and screen.keystore[0] == "file":
            await until(pilot, lambda: visible(app, "#passphrase"), "the passphrase in view")
            await pilot.press(*PASSPHRASE, "enter")
            await until(pilot, lambda: visible(app, "#passphrase-again"), "Again in view")
            await pilot.press(*PASSPHRASE, "enter")
        else:
            await pilot.press("tab")  # from Back to Next
            await pilot.press("enter")
        await until(pilot, lambda: screen.current == "register", "the register step")
        await until(pilot, lambda: visible(app, "#register"), "Register in view")


# -- 7. the host field ------------------------------------------------------------------


async def test_a_number_in_host_is_taken_for_a_port(tmp_path: Path) -> None:
    app = new_app(tmp_path / "profile")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#host"), "the wizard")
        await type_into(pilot, "#host", "8099")
        await pilot.press("enter")
        await pilot.pause()
        assert text_of(app, "#step-server .status") == (
            "8099 looks like a port number: put it in Port, and the server's name or IP "
            "address in Host."
        )
        assert wizard(app).current == "server"


async def test_host_colon_port_in_host_is_understood(
    tmp_path: Path, free_server: RuneServerProcess
) -> None:
    app = new_app(tmp_path / "profile")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#host"), "the wizard")
        await type_into(pilot, "#host", f"{free_server.host}:{free_server.port}")
        await pilot.press("enter")
        await until(pilot, lambda: wizard(app).current == "trust", "the trust step")
        host = app.screen.query_one("#host", Input).value
        port = app.screen.query_one("#port", Input).value
        assert (host, port) == (free_server.host, str(free_server.port))


@pytest.fixture
async def plain_text_port() -> AsyncIterator[int]:
    """A real listener on 127.0.0.1 that answers like a web server: not TLS, not Rune."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # the TLS hello
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def test_a_port_that_speaks_http_is_not_a_rune_server(
    tmp_path: Path, plain_text_port: int
) -> None:
    app = new_app(tmp_path / "profile", "127.0.0.1", plain_text_port)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#connect"), "the wizard")
        await pilot.press("enter")
        status = "#step-server .status"
        await until(pilot, lambda: "Rune" in text_of(app, status), "the explanation")
        text = text_of(app, status)
        assert "this is not a Rune server" in text
        assert "WRONG_VERSION_NUMBER" not in text


# -- 8. the passphrase step -------------------------------------------------------------


async def test_enter_on_an_empty_passphrase_says_what_is_needed(
    tmp_path: Path, free_server: RuneServerProcess
) -> None:
    app = new_app(tmp_path / "profile", free_server.host, free_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await connect_step(pilot, app)
        await pilot.press("enter")
        screen = wizard(app)
        await until(pilot, lambda: screen.current == "address", "the address step")
        await pilot.press("enter")
        await until(pilot, lambda: screen.current == "keys" and screen.keystore, "the keys")
        screen.show_keystore("file", "no system keyring is available")  # as on a headless box
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "passphrase"
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "passphrase"  # did not move on
        assert "Type a passphrase of at least 8 characters" in text_of(app, "#step-keys .status")
        await pilot.press(*"short", "enter")
        await pilot.pause()
        assert "at least 8 characters (5 so far)" in text_of(app, "#step-keys .status")
        await pilot.press(*"-and-long")
        await pilot.pause()
        assert text_of(app, "#step-keys .status") == ""  # fixed: the complaint is gone
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "passphrase-again"


# -- 10. the wizard's help --------------------------------------------------------------


async def test_wizard_help_does_not_offer_contacts(tmp_path: Path) -> None:
    app = new_app(tmp_path / "profile")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#host"), "the wizard")
        await pilot.press("f1")
        await until(pilot, lambda: app.screen.query("#help-title"), "the help")
        keys = help_text(app)
        assert "Contacts" not in keys
        assert "Back" in keys  # the wizard's own keys are there


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("rune.example.org:7118", ("rune.example.org", "7118")),
        ("[2001:db8::1]:7117", ("2001:db8::1", "7117")),
        ("[2001:db8::1]", ("2001:db8::1", None)),
        ("2001:db8::1", ("2001:db8::1", None)),  # a bare IPv6 address has no port in it
        ("rune.example.org", ("rune.example.org", None)),
        ("host:notaport", ("host:notaport", None)),
    ],
)
def test_host_and_port_are_split(typed: str, expected: tuple[str, str | None]) -> None:
    assert split_host_port(typed) == expected
