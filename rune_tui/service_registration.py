"""Joining a server: probe it, keep the new key safe, register, and unlock the key later.

Part of the service layer (see :mod:`rune_tui.service`, which re-exports all of it): the
wizard and the app's start-up use these; nothing here touches Textual.
"""

from __future__ import annotations

import base64
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

from rune_proto import status
from rune_proto.address import Address, parse_address, validate_part
from rune_proto.client import ServerError, Vault, connect
from rune_proto.events import INVITATION_PATTERN
from rune_proto.keys import Identity, PublicKey
from rune_proto.local.keystore import (
    EncryptedFileStore,
    KeyNotFound,
    KeyringStore,
    KeystoreError,
    key_file_name,
    keyring_usable,
)
from rune_proto.tlspin import pin_text

from .config import Account, Config, Paths, save_config


@dataclass(frozen=True, slots=True)
class ServerProbe:
    """What the wizard shows before the user decides to trust a server."""

    host: str
    port: int
    tls_pin: str
    server_key: str
    domain: str
    registration: tuple[str, ...]
    max_payload: int
    welcome: str

    @property
    def tls_pin_text(self) -> str:
        return pin_text(self.tls_pin)

    @property
    def server_key_text(self) -> str:
        return PublicKey.from_token(self.server_key).fingerprint_text()


async def probe_server(host: str, port: int, *, timeout: float = 10.0) -> ServerProbe:
    """Connect trusting on first use, and report the server's identity and offer."""
    async with connect(
        host, port, trust_on_first_use=True, timeout=timeout, ephemeral=True
    ) as session:
        caps = session.capabilities
        assert caps is not None and session.greeting is not None
        return ServerProbe(
            host=host,
            port=port,
            tls_pin=session.tls_fingerprint,
            server_key=caps.server_key.token(),
            domain=caps.domain,
            registration=caps.registration,
            max_payload=caps.max_payload,
            welcome=session.greeting.welcome,
        )


def keystore_choice() -> tuple[str, str]:
    """``("keyring", why)`` when the OS keyring works, else ``("file", why not)``."""
    usable, reason = keyring_usable()
    return ("keyring", reason) if usable else ("file", reason)


def key_file_dir(paths: Paths) -> Path:
    """Where the encrypted key files go when there is no keyring (the wizard shows it)."""
    return paths.data_dir / "keys"


def key_store(paths: Paths, kind: str, passphrase: str | None) -> KeyringStore | EncryptedFileStore:
    if kind == "keyring":
        return KeyringStore()
    if not passphrase:
        raise ValueError("a passphrase is needed to protect the key file")
    return EncryptedFileStore(key_file_dir(paths), passphrase)


def check_invitation(token: str) -> str:
    """The token without stray spaces, or ValueError saying what is wrong with it.

    Checked as it is typed, so a half-pasted token is caught before the server sees it.
    """
    token = token.strip()
    if not INVITATION_PATTERN.fullmatch(token):
        raise ValueError(
            "an invitation token is 16 to 128 letters, digits, '-' and '_'; "
            "check that you pasted all of it"
        )
    return token


_BLAMED_FIELD = {
    status.BAD_ADDRESS: "username",
    status.ADDRESS_TAKEN: "username",
    status.INVITATION_INVALID: "invitation",
    status.INVITATION_EXPIRED: "invitation",
    status.FREE_REGISTRATION_UNAVAILABLE: "method",
    status.INVITATION_REGISTRATION_UNAVAILABLE: "method",
}


def blamed_field(exc: BaseException) -> str | None:
    """Which registration answer the server refused ("username", "invitation", "method").

    The wizard takes the user straight back to that field instead of making them hunt.
    """
    return _BLAMED_FIELD.get(exc.code) if isinstance(exc, ServerError) else None


async def register_account(
    paths: Paths,
    config: Config,
    probe: ServerProbe,
    username: str,
    *,
    invitation: str | None = None,
    keystore: str = "keyring",
    passphrase: str | None = None,
) -> tuple[Config, Account, Identity]:
    """Generate keys, store them, register over the pinned connection, save config.

    The key is stored *before* registering, so a keystore failure costs nothing, and
    removed again if the server refuses. An existing key for the address is never
    overwritten: that would destroy a working account.
    """
    address = Address(validate_part("username", username), probe.domain.lower())
    store = key_store(paths, keystore, passphrase)
    if any(a.address == address for a in config.accounts):
        raise KeystoreError(
            f"a key for {address} is already stored on this machine; choose another username"
        )
    identity = Identity.generate()
    vault = Vault(identity)
    account_id = opaque_account_id(vault, address)
    store.save(account_id, identity.private_bytes())
    try:
        async with connect(
            probe.host,
            probe.port,
            tls_fingerprint=probe.tls_pin,
            server_key=probe.server_key,
            ephemeral=True,
        ) as session:
            await session.register(address, identity, invitation or None)
    except BaseException:
        with suppress(KeystoreError):
            store.delete(account_id)
        raise
    account = Account(
        address,
        probe.host,
        probe.port,
        probe.tls_pin,
        probe.server_key,
        keystore,
        id=account_id,
        sealed_address=seal_address(vault, account_id, address),
    )
    updated = config.with_account(account)
    save_config(paths, updated)
    return updated, account, identity


def load_identity(paths: Paths, account: Account, passphrase: str | None = None) -> Identity:
    """The account's private key from its keystore (raises KeystoreError subclasses)."""
    store = key_store(paths, account.keystore, passphrase)
    return Identity(store.load(account.key_name, shown_as=account.label))


def opaque_account_id(vault: Vault, address: Address) -> str:
    """The account's name in config.toml and the keystore: says nothing of the address."""
    return vault.name(f"rune/1 account id {address}")


def seal_address(vault: Vault, account_id: str, address: Address) -> str:
    box = vault.seal(str(address).encode("utf-8"), f"rune/1 account address {account_id}")
    return base64.urlsafe_b64encode(box).decode("ascii")


@dataclass(frozen=True, slots=True)
class Unlocked:
    """An account whose key was unlocked: its address known, its key in hand.

    ``was`` is the config entry as read when it had to change: an older config's entry,
    keyed by the address, now named by an opaque id (the key is stored under the id as
    well). Save the config with it, then call :func:`forget_old_key`.
    """

    account: Account
    identity: Identity
    was: Account | None = None


def unlock(paths: Paths, account: Account, passphrase: str | None = None) -> Unlocked:
    """Load the key, open the sealed address; convert an older entry keyed by address."""
    identity = load_identity(paths, account, passphrase)
    vault = Vault(identity)
    if account.id:
        try:
            box = base64.urlsafe_b64decode(account.sealed_address.encode("ascii"))
            text = vault.open(box, f"rune/1 account address {account.id}").decode("utf-8")
            address = parse_address(text)
        except (ValueError, UnicodeError) as exc:  # VaultError and binascii.Error too
            raise KeystoreError(
                f"the entry {account.id} in config.toml does not open with its key: it was "
                "changed, or belongs to another key"
            ) from exc
        return Unlocked(replace(account, address=address), identity)
    account_id = opaque_account_id(vault, account.address)
    key_store(paths, account.keystore, passphrase).save(account_id, identity.private_bytes())
    sealed = seal_address(vault, account_id, account.address)
    converted = replace(account, id=account_id, sealed_address=sealed)
    return Unlocked(converted, identity, was=account)


def forget_old_key(paths: Paths, unlocked: Unlocked, passphrase: str | None = None) -> None:
    """Remove the key stored under the address, once the config names the id instead."""
    if unlocked.was is None:
        return
    if unlocked.account.keystore == "file":
        (key_file_dir(paths) / key_file_name(str(unlocked.was.address))).unlink(missing_ok=True)
        return
    with suppress(KeyNotFound):
        key_store(paths, unlocked.account.keystore, passphrase).delete(str(unlocked.was.address))
