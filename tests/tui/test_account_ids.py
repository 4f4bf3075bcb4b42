"""config.toml names accounts by opaque ids (issue 12, section 2).

The account table used to be keyed by address, and so did the keystore: a copy of the
profile named its owner. Now each account is named by a keyed hash, its address sealed
by the account's Vault, and its key stored under the id. An older config is converted
the first time its key is unlocked: the key is stored under the id, the config saved,
and only then the key under the address removed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rune_proto.address import Address, parse_address
from rune_proto.client import connect
from rune_proto.keys import Identity
from rune_proto.local.keystore import EncryptedFileStore, KeyNotFound, KeyringStore, KeystoreError
from rune_tui import service
from rune_tui.app import RuneApp
from rune_tui.config import Account, Config, Paths, load_config, save_config
from rune_tui.screens.inbox import InboxScreen
from rune_tui.screens.passphrase import PassphraseScreen
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.wizard_pilot import PASSPHRASE, SIZE, until


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


async def registered(server: RuneServerProcess, name: str) -> tuple[Address, Identity]:
    identity = Identity.generate()
    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        assert session.capabilities is not None
        address = parse_address(f"{name}@{session.capabilities.domain}")
        await session.register(address, identity)
    return address, identity


def older_profile(
    paths: Paths, server: RuneServerProcess, address: Address, keystore: str
) -> Account:
    """config.toml as versions before opaque ids wrote it: keyed by the address."""
    account = Account(
        address, server.host, server.port, server.tls_pin, server.server_key, keystore
    )
    save_config(paths, Config().with_account(account))
    assert f'[accounts."{address}"]' in paths.config_file.read_text()
    return account


async def open_inbox(app: RuneApp, pilot: object, *, passphrase: bool) -> None:
    if passphrase:
        await until(pilot, lambda: isinstance(app.screen, PassphraseScreen), "the prompt")
        app.screen.query_one("#passphrase").value = PASSPHRASE  # type: ignore[attr-defined]
        await pilot.press("enter")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")


async def test_an_older_config_with_a_key_file_is_converted_on_unlock(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    address, identity = await registered(server, "olderfile")
    paths = Paths.from_profile(tmp_path / "profile")
    older_profile(paths, server, address, "file")
    store = EncryptedFileStore(service.key_file_dir(paths), PASSPHRASE)
    store.save(str(address), identity.private_bytes())
    old_key_file = store.path_for(str(address))
    for _ in range(2):  # converted on the first start; the second opens the sealed entry
        app = RuneApp(paths)
        async with app.run_test(size=SIZE) as pilot:
            await open_inbox(app, pilot, passphrase=True)
            assert app.sub_title == str(address)
        text = paths.config_file.read_text()
        assert str(address) not in text and address.username not in text
        (account,) = load_config(paths).accounts
        assert load_config(paths).default_account == account.id and not account.address_known
        assert not old_key_file.exists()
        assert store.load(account.id) == identity.private_bytes()
    assert [p.name for p in service.key_file_dir(paths).iterdir()] == [
        store.path_for(account.id).name
    ]


@pytest.mark.keyring
async def test_an_older_config_with_a_keyring_key_is_converted_on_unlock(
    server: RuneServerProcess, tmp_path: Path, secret_service: object
) -> None:
    address, identity = await registered(server, "olderring")
    paths = Paths.from_profile(tmp_path / "profile")
    older_profile(paths, server, address, "keyring")
    KeyringStore().save(str(address), identity.private_bytes())
    # What the app does on unlocking (driven through the service layer: starting RuneApp
    # on a keyring account trips a Textual Header race in tests, on main as well).
    config = load_config(paths)
    (older,) = config.accounts
    unlocked = service.unlock(paths, older)
    assert unlocked.was == older and unlocked.account.address == address
    assert KeyringStore().load(str(address)) == identity.private_bytes()  # kept until saved
    save_config(paths, config.replacing(unlocked.account, was=unlocked.was))
    service.forget_old_key(paths, unlocked)
    assert str(address) not in paths.config_file.read_text()
    (account,) = load_config(paths).accounts
    assert KeyringStore().load(account.id) == identity.private_bytes()
    with pytest.raises(KeyNotFound):
        KeyringStore().load(str(address))  # the entry naming the address is gone


async def test_an_entry_that_does_not_open_with_its_key_says_so(
    server: RuneServerProcess, tmp_path: Path
) -> None:
    paths = Paths.from_profile(tmp_path / "profile")
    probe = await service.probe_server(server.host, server.port)
    config = Config()
    for name in ("sealone", "sealtwo"):
        config, _, _ = await service.register_account(
            paths, config, probe, name, keystore="file", passphrase=PASSPHRASE
        )
    one, two = load_config(paths).accounts
    swapped = replace(one, sealed_address=two.sealed_address)  # an entry copied over
    with pytest.raises(KeystoreError, match="does not open with its key"):
        service.unlock(paths, swapped, PASSPHRASE)
    unlocked = service.unlock(paths, one, PASSPHRASE)
    assert unlocked.account.address.username == "sealone"
    with pytest.raises(ValueError, match=r"service\.unlock"):  # no mailbox for an unknown address
        service.Mailbox(paths, one, unlocked.identity)
