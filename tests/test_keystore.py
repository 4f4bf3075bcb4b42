"""Key storage against a real Secret Service, and the encrypted-file fallback without one."""

from __future__ import annotations

import base64
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from keyring.errors import InitError

from rune_proto.local.keystore import (
    EncryptedFileStore,
    KeyNotFound,
    KeyringStore,
    KeystoreError,
    KeystoreLocked,
    WrongPassphrase,
    keyring_usable,
    open_keystore,
)
from tests.secret_service import SecretServiceDaemons

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def address() -> str:
    return f"user{secrets.token_hex(4)}@example.test"


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(128)


def _never_asked() -> str:
    raise AssertionError("a passphrase was asked for although the keyring is usable")


# --- the OS keyring, through a private gnome-keyring -------------------------------------


@pytest.mark.keyring
def test_keyring_roundtrip(
    secret_service: SecretServiceDaemons, tmp_path: Path, address: str, key: bytes
) -> None:
    store = open_keystore(tmp_path, passphrase=_never_asked)
    assert isinstance(store, KeyringStore)
    assert "system keyring" in store.description
    store.save(address, key)
    assert store.load(address) == key
    store.delete(address)
    with pytest.raises(KeyNotFound):
        store.load(address)
    assert not (tmp_path / "keys").exists()


@pytest.mark.keyring
def test_keyring_item_is_visible_to_secret_tool(
    secret_service: SecretServiceDaemons, address: str, key: bytes
) -> None:
    KeyringStore().save(address, key)
    lookup = subprocess.run(
        ["secret-tool", "lookup", "service", "rune", "username", address],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert lookup.stdout.strip() == base64.b64encode(key).decode()
    # secret-tool prints attributes on stderr; keyring tags its items with an application.
    search = subprocess.run(
        ["secret-tool", "search", "service", "rune", "username", address],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert f"attribute.username = {address}" in search.stderr
    assert "attribute.application = " in search.stderr


@pytest.mark.keyring
def test_keyring_missing_address(secret_service: SecretServiceDaemons, address: str) -> None:
    store = KeyringStore()
    with pytest.raises(KeyNotFound, match=address):
        store.load(address)
    with pytest.raises(KeyNotFound):
        store.delete(address)


@pytest.mark.keyring
def test_keyring_address_case_does_not_matter(
    secret_service: SecretServiceDaemons, address: str, key: bytes
) -> None:
    store = KeyringStore()
    store.save(address.upper(), key)
    assert store.load(address) == key
    store.delete(address)


@pytest.mark.keyring
def test_locked_keyring(
    locked_secret_service: SecretServiceDaemons, tmp_path: Path, address: str, key: bytes
) -> None:
    store = KeyringStore()
    with pytest.raises(KeystoreLocked, match="is locked; unlock it"):
        store.save(address, key)
    with pytest.raises(KeystoreLocked):
        store.load(address)
    assert keyring_usable() == (False, "the system keyring is locked")
    fallback = open_keystore(tmp_path, passphrase=lambda: PASSPHRASE)
    assert isinstance(fallback, EncryptedFileStore)
    assert fallback.description.endswith("because the system keyring is locked")


# --- the encrypted file store, when no keyring is usable ---------------------------------


@pytest.fixture
def no_keyring() -> None:
    keyring.set_keyring(fail.Keyring())  # the autouse fixture in conftest restores it


def test_fallback_is_chosen_without_keyring(
    no_keyring: None, tmp_path: Path, address: str, key: bytes
) -> None:
    usable, reason = keyring_usable()
    assert not usable
    assert reason == "no system keyring is available"
    store = open_keystore(tmp_path, passphrase=lambda: PASSPHRASE)
    assert isinstance(store, EncryptedFileStore)
    assert store.directory == tmp_path / "keys"
    assert "passphrase-encrypted key file" in store.description
    assert store.description.endswith("because no system keyring is available")
    store.save(address, key)
    assert store.load(address) == key
    # A fresh store (a later run) opens it with the same passphrase, whatever the case.
    assert EncryptedFileStore(tmp_path / "keys", PASSPHRASE).load(address.upper()) == key
    store.delete(address)
    with pytest.raises(KeyNotFound):
        store.load(address)
    with pytest.raises(KeyNotFound):
        store.delete(address)


def test_fallback_without_passphrase_callback_explains(no_keyring: None, tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match=r"no system keyring is available.*needs a passphrase"):
        open_keystore(tmp_path)


def test_wrong_passphrase(tmp_path: Path, address: str, key: bytes) -> None:
    EncryptedFileStore(tmp_path, PASSPHRASE).save(address, key)
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        EncryptedFileStore(tmp_path, "not the passphrase").load(address)


def test_key_file_reveals_neither_key_nor_address(tmp_path: Path, address: str, key: bytes) -> None:
    store = EncryptedFileStore(tmp_path / "keys", PASSPHRASE)
    store.save(address, key)
    files = list((tmp_path / "keys").iterdir())
    assert files == [store.path_for(address)]  # no temp file left behind
    path = files[0]
    data = path.read_bytes()
    username = address.split("@")[0]
    for secret in (key, base64.b64encode(key), address.encode(), username.encode()):
        assert secret not in data
    assert username not in path.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_overwrite_keeps_mode_and_replaces_key(tmp_path: Path, address: str) -> None:
    store = EncryptedFileStore(tmp_path, PASSPHRASE)
    store.save(address, b"first")
    os.chmod(store.path_for(address), 0o644)
    store.save(address, b"second")
    assert store.load(address) == b"second"
    assert stat.S_IMODE(store.path_for(address).stat().st_mode) == 0o600


def test_key_file_is_bound_to_its_address(tmp_path: Path, address: str, key: bytes) -> None:
    store = EncryptedFileStore(tmp_path, PASSPHRASE)
    store.save(address, key)
    other = "mallory@example.test"
    store.path_for(address).rename(store.path_for(other))
    with pytest.raises(WrongPassphrase):
        store.load(other)


def test_damaged_key_file(tmp_path: Path, address: str, key: bytes) -> None:
    store = EncryptedFileStore(tmp_path, PASSPHRASE)
    store.save(address, key)
    path = store.path_for(address)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(KeystoreError, match="damaged"):
        store.load(address)
    path.write_bytes(b"X" * 200)
    with pytest.raises(KeystoreError, match="damaged"):
        store.load(address)


def test_absurd_scrypt_parameters_are_refused(tmp_path: Path, address: str, key: bytes) -> None:
    store = EncryptedFileStore(tmp_path, PASSPHRASE)
    store.save(address, key)
    path = store.path_for(address)
    data = bytearray(path.read_bytes())
    data[8] = 40  # log2(n), right after the 8-byte magic: 2**40 would exhaust memory
    path.write_bytes(bytes(data))
    with pytest.raises(KeystoreError, match="damaged"):
        store.load(address)


def test_empty_passphrase_and_empty_key_are_refused(tmp_path: Path, address: str) -> None:
    with pytest.raises(KeystoreError, match="empty passphrase"):
        EncryptedFileStore(tmp_path, "")
    with pytest.raises(KeystoreError, match="non-empty bytes"):
        EncryptedFileStore(tmp_path, PASSPHRASE).save(address, b"")
    assert list(tmp_path.iterdir()) == []


# --- how keyring_usable judges a backend ---------------------------------------------------


class _FakeBackend:
    name = "Fake"
    priority = 5.0

    def get_password(self, service: str, username: str) -> str | None:
        return None


def test_plaintext_keyrings_alt_backend_is_not_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    plaintext = type("PlaintextKeyring", (_FakeBackend,), {"__module__": "keyrings.alt.file"})
    monkeypatch.setattr(keyring, "get_keyring", plaintext)
    usable, reason = keyring_usable()
    assert not usable
    assert "keeps secrets in a file" in reason


def test_low_priority_backend_is_not_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    weak = type("Weak", (_FakeBackend,), {"priority": 0.5})
    monkeypatch.setattr(keyring, "get_keyring", weak)
    assert keyring_usable() == (False, "the keyring backend 'Fake' is not one keyring recommends")


def test_good_backend_is_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyring, "get_keyring", _FakeBackend)
    assert keyring_usable() == (True, "the system keyring (Fake) is usable")


def test_keyring_init_error_becomes_keystore_error(address: str) -> None:
    class Broken(_FakeBackend):
        def get_password(self, service: str, username: str) -> str | None:
            raise InitError("no D-Bus")

    store = KeyringStore(Broken())  # type: ignore[arg-type]
    with pytest.raises(KeystoreError, match="could not be opened: no D-Bus") as caught:
        store.load(address)
    assert not isinstance(caught.value, KeystoreLocked)


def test_importing_keystore_does_not_import_keyring() -> None:
    code = "import sys, rune_proto.local.keystore; print('keyring' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "False"
