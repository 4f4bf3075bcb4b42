"""The TUI's service layer against a real server: registration keeps keys consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rune_proto import status
from rune_proto.client import ServerError
from rune_proto.local.keystore import EncryptedFileStore, KeyNotFound, KeystoreError
from rune_tui.config import Config, Paths, load_config
from rune_tui.service import key_file_dir, probe_server, register_account

PASSPHRASE = "correct horse battery staple"


async def test_refused_registration_leaves_no_key_behind(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server()
    probe = await probe_server(server.host, server.port)
    first = Paths.from_profile(tmp_path / "first")
    await register_account(first, Config(), probe, "alice", keystore="file", passphrase=PASSPHRASE)
    second = Paths.from_profile(tmp_path / "second")
    with pytest.raises(ServerError) as refused:
        await register_account(
            second, Config(), probe, "alice", keystore="file", passphrase=PASSPHRASE
        )
    assert refused.value.code == status.ADDRESS_TAKEN  # alice is taken on the server
    store = EncryptedFileStore(key_file_dir(second), PASSPHRASE)
    with pytest.raises(KeyNotFound):
        store.load(f"alice@{probe.domain}")
    assert load_config(second).accounts == ()


async def test_an_existing_key_is_never_overwritten(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server()
    probe = await probe_server(server.host, server.port)
    paths = Paths.from_profile(tmp_path / "profile")
    config, account, identity = await register_account(
        paths, Config(), probe, "bob", keystore="file", passphrase=PASSPHRASE
    )
    with pytest.raises(KeystoreError, match="already stored"):
        await register_account(paths, config, probe, "bob", keystore="file", passphrase=PASSPHRASE)
    store = EncryptedFileStore(key_file_dir(paths), PASSPHRASE)
    assert store.load(account.key_name) == identity.private_bytes()
