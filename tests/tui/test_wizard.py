"""The setup wizard, driven with a Pilot against a real rune-server over real TLS."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from textual.widgets import Static

from rune_proto import status
from rune_proto.address import parse_address, random_part
from rune_proto.client import ServerError, connect
from rune_proto.keys import Identity, PublicKey
from rune_proto.tlspin import pin_text
from rune_tui import service
from rune_tui.config import Paths, load_config
from rune_tui.screens.inbox import InboxScreen
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.wizard_pilot import (
    PASSPHRASE,
    SIZE,
    connect_step,
    new_app,
    sample_probe,
    text_of,
    to_register_step,
    type_into,
    until,
    wizard,
)


@pytest.fixture(scope="module")
def free_server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


@pytest.fixture(scope="module")
def invite_server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("invite")


def dead_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_dead_port_is_reported_in_words(tmp_path: Path) -> None:
    port = dead_port()
    app = new_app(tmp_path / "profile", "127.0.0.1", port)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#connect"), "the wizard")
        await pilot.press("enter")
        await until(pilot, lambda: "Cannot reach" in text_of(app, "#step-server .status"), "err")
        assert text_of(app, "#step-server .status") == (
            f"Cannot reach 127.0.0.1:{port}: connection refused."
        )
        assert wizard(app).current == "server"
        assert not app.screen.query_one("#connect").disabled  # ready for another try


async def test_a_bad_port_is_refused_before_connecting(tmp_path: Path) -> None:
    app = new_app(tmp_path / "profile")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#host"), "the wizard")
        await type_into(pilot, "#host", "127.0.0.1")
        await type_into(pilot, "#port", "99999")
        await pilot.press("enter")
        assert "The port is a number from 1 to 65535" in text_of(app, "#step-server .status")
        assert wizard(app).current == "server"


async def test_trust_step_shows_the_servers_real_fingerprints(
    tmp_path: Path, free_server: RuneServerProcess
) -> None:
    app = new_app(tmp_path / "profile", free_server.host, free_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await connect_step(pilot, app)
        assert text_of(app, "#tls-pin") == pin_text(free_server.tls_pin)
        server_key = PublicKey.from_token(free_server.server_key).fingerprint_text()
        assert text_of(app, "#server-key") == server_key
        assert text_of(app, "#domain").startswith(free_server.domain)
        assert f"{free_server.host}:{free_server.port} says:" in text_of(app, "#welcome")
        await pilot.press("escape")  # back to the server step, still filled in
        assert wizard(app).current == "server"


async def test_an_invalid_username_is_explained_as_it_is_typed(
    tmp_path: Path, free_server: RuneServerProcess
) -> None:
    app = new_app(tmp_path / "profile", free_server.host, free_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await connect_step(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: wizard(app).current == "address", "the address step")
        assert text_of(app, "#address-preview").endswith(f"@{free_server.domain}")
        await type_into(pilot, "#username", "no way!", keys=True)
        assert "may hold only letters, digits" in text_of(app, "#username-error")
        assert text_of(app, "#address-preview") == ""
        await pilot.press("enter")
        assert wizard(app).current == "address"  # Next refuses
        await type_into(pilot, "#username", "ab")
        assert "3 to 50 characters long" in text_of(app, "#username-error")
        await pilot.press("ctrl+r")  # a random name is always valid
        assert text_of(app, "#username-error") == ""
        assert text_of(app, "#address-preview").startswith("Your address: ")


async def test_passphrases_must_be_long_enough_and_match(
    tmp_path: Path, free_server: RuneServerProcess
) -> None:
    app = new_app(tmp_path / "profile", free_server.host, free_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await connect_step(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: wizard(app).current == "address", "the address step")
        await pilot.press("enter")
        screen = wizard(app)
        await until(pilot, lambda: screen.keystore is not None, "the keystore choice")
        assert "no system keyring is available" in text_of(app, "#keys-where")
        await type_into(pilot, "#passphrase", "short")
        await pilot.press("enter")  # too short: it says so instead of moving on
        assert "at least 8 characters" in text_of(app, "#step-keys .status")
        assert app.focused is not None and app.focused.id == "passphrase"
        await type_into(pilot, "#passphrase-again", "short")
        await pilot.press("enter")  # Next from the second field checks the first too
        assert "at least 8 characters" in text_of(app, "#step-keys .status")
        assert app.focused is not None and app.focused.id == "passphrase"
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#passphrase-again", PASSPHRASE + "x")
        await pilot.press("enter")
        assert "differ" in text_of(app, "#step-keys .status")
        assert screen.current == "keys"


async def test_free_registration_lands_in_the_inbox(
    tmp_path: Path, free_server: RuneServerProcess
) -> None:
    profile = tmp_path / "profile"
    username = "first-" + random_part(6)
    app = new_app(profile, free_server.host, free_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await to_register_step(pilot, app, username)
        assert text_of(app, "#summary-address") == f"{username}@{free_server.domain}"
        assert text_of(app, "#summary-method") == f"{free_server.domain} by free registration"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
    config = load_config(Paths.from_profile(profile))
    locked = config.current
    assert locked is not None and not locked.address_known  # config.toml names no address
    account = service.unlock(Paths.from_profile(profile), locked, PASSPHRASE).account
    assert str(account.address) == f"{username}@{free_server.domain}"
    assert (account.tls_pin, account.server_key) == (free_server.tls_pin, free_server.server_key)
    assert account.keystore == "file"
    # The key in the encrypted file opens with the passphrase and logs in.
    identity = service.load_identity(Paths.from_profile(profile), account, PASSPHRASE)
    mailbox = service.Mailbox(Paths.from_profile(profile), account, identity)
    assert await mailbox.refresh() == []


async def test_a_taken_address_sends_the_user_back_to_the_username(
    tmp_path: Path, free_server: RuneServerProcess
) -> None:
    taken = "taken-" + random_part(6)
    async with connect(
        free_server.host, free_server.port, tls_fingerprint=free_server.tls_pin, ephemeral=True
    ) as s:
        await s.register(parse_address(f"{taken}@{free_server.domain}"), Identity.generate())
    app = new_app(tmp_path / "profile", free_server.host, free_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await to_register_step(pilot, app, taken)
        await pilot.press("enter")
        screen = wizard(app)
        await until(pilot, lambda: screen.current == "address", "the way back to the username")
        assert text_of(app, "#username-error") == (
            "That address is already taken; pick another username."
        )
        assert app.focused is not None and app.focused.id == "username"
    assert load_config(Paths.from_profile(tmp_path / "profile")).current is None


async def test_a_wrong_invitation_token_is_explained(
    tmp_path: Path, invite_server: RuneServerProcess
) -> None:
    app = new_app(tmp_path / "profile", invite_server.host, invite_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await connect_step(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: wizard(app).current == "address", "the address step")
        assert not app.screen.query_one("#method-row").display  # one way in: no choice to make
        assert app.screen.query_one("#token").display
        await type_into(pilot, "#token", "too-short")
        assert "16 to 128" in text_of(app, "#token-error")
        await type_into(pilot, "#token", "A" * 24)
        assert text_of(app, "#token-error") == ""
        await pilot.press("enter")
        screen = wizard(app)
        await until(pilot, lambda: screen.current == "keys" and screen.keystore, "the keys step")
        await type_into(pilot, "#passphrase", PASSPHRASE)
        await type_into(pilot, "#passphrase-again", PASSPHRASE)
        await pilot.press("enter")
        await until(pilot, lambda: screen.current == "register", "the register step")
        domain = invite_server.domain
        assert text_of(app, "#summary-method") == f"{domain} with an invitation token"
        await pilot.press("enter")
        await until(pilot, lambda: screen.current == "address", "the way back to the token")
        assert text_of(app, "#token-error") == (
            "The invitation token is not valid for this address "
            "(mistyped, used, or for someone else)."
        )


async def test_a_real_invitation_registers(
    tmp_path: Path, invite_server: RuneServerProcess
) -> None:
    username = "invited-" + random_part(6)
    token = invite_server.invite(f"{username}@{invite_server.domain}")
    app = new_app(tmp_path / "profile", invite_server.host, invite_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await to_register_step(pilot, app, username, token=token)
        domain = invite_server.domain
        assert text_of(app, "#summary-method") == f"{domain} with an invitation token"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
    # Registered on the server, not just shown the inbox: the saved key logs in there,
    # and the invitation is used up.
    paths = Paths.from_profile(tmp_path / "profile")
    locked = load_config(paths).current
    assert locked is not None
    account = service.unlock(paths, locked, PASSPHRASE).account
    assert str(account.address) == f"{username}@{invite_server.domain}"
    identity = service.load_identity(paths, account, PASSPHRASE)
    assert await service.Mailbox(paths, account, identity).refresh() == []
    async with connect(
        invite_server.host,
        invite_server.port,
        tls_fingerprint=invite_server.tls_pin,
        ephemeral=True,
    ) as session:
        with pytest.raises(ServerError) as reused:
            await session.register(account.address, Identity.generate(), invitation=token)
    assert reused.value.code == status.INVITATION_INVALID


async def test_a_closed_server_says_so(tmp_path: Path, rune_server: ServerFactory) -> None:
    server = rune_server("closed")
    app = new_app(tmp_path / "profile", server.host, server.port)
    async with app.run_test(size=SIZE) as pilot:
        await connect_step(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: wizard(app).current == "address", "the address step")
        assert "not taking new accounts" in text_of(app, "#method-note")
        assert app.screen.query_one("#address-next").disabled


@pytest.mark.keyring
async def test_registration_keeps_the_key_in_the_keyring(
    tmp_path: Path, free_server: RuneServerProcess, secret_service: object
) -> None:
    profile = tmp_path / "profile"
    username = "ring-" + random_part(6)
    app = new_app(profile, free_server.host, free_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await to_register_step(pilot, app, username, passphrase=None)
        assert not app.screen.query_one("#passphrase-form").display
        assert "the system keyring" in text_of(app, "#keys-where")
        assert text_of(app, "#summary-keys") == "the system keyring"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
    paths = Paths.from_profile(profile)
    account = load_config(paths).current
    assert account is not None and account.keystore == "keyring"
    assert service.load_identity(paths, account).public is not None
    assert not service.key_file_dir(paths).exists()  # nothing written to disk


async def test_f1_lists_the_wizards_keys(tmp_path: Path) -> None:
    app = new_app(tmp_path / "profile")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#host"), "the wizard")
        wizard(app).show_probe(sample_probe())
        await pilot.pause()
        await pilot.press("f1")
        await until(pilot, lambda: app.screen.query("#help-title"), "the help")
        assert "Setup" in str(app.screen.query_one("#help-title", Static).visual)
        await pilot.press("escape")
        assert wizard(app).current == "trust"  # help closed, the wizard where it was
