"""Helpers that drive the setup wizard with a Pilot, as a person would, against a real server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Static

from rune_proto.keys import Identity
from rune_tui.app import RuneApp
from rune_tui.config import Paths
from rune_tui.screens.wizard import WizardScreen
from rune_tui.service import ServerProbe

SIZE = (120, 36)
PASSPHRASE = "correct horse battery"
TIMEOUT = 15.0


async def until(pilot: Pilot[Any], ready: Callable[[], object], what: str) -> None:
    """Let the app run until ``ready()`` is true; fail with ``what`` after a bounded wait."""
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def text_of(app: RuneApp, selector: str) -> str:
    """The plain text a Static shows, with runs of whitespace folded (for wrapped lines)."""
    widget = app.screen.query_one(selector, Static)
    return " ".join(str(widget.visual).split())


def wizard(app: RuneApp) -> WizardScreen:
    screen = app.screen
    assert isinstance(screen, WizardScreen), f"expected the wizard, not {screen!r}"
    return screen


def new_app(profile: Path, host: str | None = None, port: int | None = None) -> RuneApp:
    server = (host, port) if host is not None and port is not None else None
    return RuneApp(Paths.from_profile(profile), server=server)


async def type_into(pilot: Pilot[Any], selector: str, text: str, *, keys: bool = False) -> None:
    """Focus a field and replace its text: key by key with ``keys``, else in one go (faster;
    the field reports the change just the same)."""
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    field.value = "" if keys else text
    await pilot.pause()
    if keys:
        await pilot.press(*text)


async def connect_step(pilot: Pilot[Any], app: RuneApp) -> None:
    """From the pre-filled server step to the trust step."""
    await until(pilot, lambda: isinstance(app.screen, WizardScreen), "the wizard")
    await pilot.press("enter")  # Connect has the focus when --server pre-filled the step
    await until(pilot, lambda: wizard(app).current == "trust", "the trust step")


async def to_register_step(
    pilot: Pilot[Any],
    app: RuneApp,
    username: str,
    *,
    token: str | None = None,
    passphrase: str | None = PASSPHRASE,
) -> None:
    """Connect, trust, choose ``username`` (and ``token``), set keys: stop before Register."""
    await connect_step(pilot, app)
    await pilot.press("enter")  # Trust this server
    await until(pilot, lambda: wizard(app).current == "address", "the address step")
    await type_into(pilot, "#username", username)
    if token is not None:
        await type_into(pilot, "#token", token)
    await pilot.press("enter")
    screen = wizard(app)
    await until(pilot, lambda: screen.current == "keys" and screen.keystore, "the keys step")
    if screen.keystore is not None and screen.keystore[0] == "file":
        assert passphrase is not None
        await type_into(pilot, "#passphrase", passphrase)
        await type_into(pilot, "#passphrase-again", passphrase)
    else:
        await pilot.pause()
        screen.query_one("#keys-next").focus()
    await pilot.press("enter")
    await until(pilot, lambda: screen.current == "register", "the register step")


def sample_probe(registration: tuple[str, ...] = ("free",)) -> ServerProbe:
    """A server as the wizard would see it, with fixed fingerprints (for snapshots)."""
    server_key = Identity(bytes(range(128))).public.token()
    return ServerProbe(
        host="rune.example.org",
        port=7117,
        tls_pin="sha256:" + bytes(range(100, 132)).hex(),
        server_key=server_key,
        domain="example.org",
        registration=registration,
        max_payload=1 << 20,
        welcome="Welcome to the example Rune server. Be kind.",
    )
