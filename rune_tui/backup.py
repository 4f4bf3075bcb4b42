"""One passphrase-sealed file that carries an account to a new profile or a second device.

Lose the keyring and the address is lost with it: the private key is the address. A
backup holds the key, the server the account lives on and how it is trusted (its TLS
pin and server key, so the import needs no trust prompt), the sealed contact book and
replay log exactly as they are on disk (sealed by a Vault the key derives, so they open
again wherever the key goes, and the replay log's deletions keep deleted mail from
coming back as new), and the settings and keymap. All of it is one JSON document sealed
by :mod:`rune_proto.secretbox` (scrypt + ChaCha20-Poly1305) under a passphrase of at
least :data:`MIN_PASSPHRASE` characters: nothing in the file is in the clear, not even
the address. See docs/backup.md.

This module does no Textual; the command line (:mod:`rune_tui.backup_cli`), the wizard
and the export screen all call it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rune_proto.address import Address, parse_address
from rune_proto.client import Vault
from rune_proto.keys import Identity
from rune_proto.local.atomicfile import write_atomically
from rune_proto.local.keystore import KeystoreError
from rune_proto.secretbox import SecretBoxError, WrongPassphrase, open_secret, seal_secret

from .config import Account, Config, Paths, Settings, save_config, settings_from_table
from .service_contacts import open_contact_book, open_replay_log
from .service_registration import key_store, opaque_account_id, seal_address

FORMAT = 1
MIN_PASSPHRASE = 12
CONTEXT = b"rune/1 account backup"
SUFFIX = ".runebackup"
# The sealed files carried verbatim: each opens only with the key in the same backup.
_FILES = ("contact_book", "replay_log")


class BackupError(ValueError):
    """A backup cannot be written or read; the message says why in words a user can act on."""


class WrongBackupPassphrase(BackupError):
    """The passphrase does not open this backup (or the file was altered)."""


@dataclass(frozen=True, slots=True)
class Backup:
    """What an opened backup holds (the key and the account's server, pins included)."""

    address: Address
    private_key: bytes
    host: str
    port: int
    tls_pin: str
    server_key: str
    settings: Settings
    files: dict[str, bytes]  # name in _FILES → the sealed file's bytes
    problems: tuple[str, ...] = ()  # settings in the backup this version could not use


def check_passphrase(passphrase: str, again: str | None = None) -> None:
    """BackupError if the passphrase is too short to guard a private key (or mistyped)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupError(
            f"Use a passphrase of at least {MIN_PASSPHRASE} characters: it is all that "
            "guards your private key in the backup file."
        )
    if again is not None and again != passphrase:
        raise BackupError("The two passphrases differ; type the same one twice.")


def _carried_files(paths: Paths, address: Address, vault: Vault) -> dict[str, Path]:
    return {
        "contact_book": paths.contacts_file(address, vault),
        "replay_log": paths.replay_log(address, vault),
    }


def export_account(
    paths: Paths,
    config: Config,
    account: Account,
    identity: Identity,
    target: Path,
    passphrase: str,
) -> Path:
    """Write the account's backup to ``target`` (mode 0600, atomically); returns the path.

    The caller should have written the contact book and replay log already (they are
    copied from disk as they are, still sealed by the account's Vault).
    """
    check_passphrase(passphrase)
    if not account.address_known:
        raise BackupError("Unlock the account first: its address is sealed until then.")
    target = Path(target).expanduser()
    if target.is_dir():
        raise BackupError(f"{target} is a folder; name the backup file to write.")
    if target.exists():
        raise BackupError(f"{target} already exists; choose another name (nothing is replaced).")
    vault = Vault(identity)
    # Opening them moves files an older version named by the address to where we read.
    open_contact_book(paths, account.address, vault)
    open_replay_log(paths, account.address, vault)
    files: dict[str, str] = {}
    for name, path in _carried_files(paths, account.address, vault).items():
        try:
            files[name] = base64.b64encode(path.read_bytes()).decode("ascii")
        except FileNotFoundError:
            continue  # nothing pinned or seen yet: the import starts it empty
        except OSError as exc:
            raise BackupError(f"Cannot read {path}: {exc.strerror}.") from exc
    settings = dataclasses.asdict(config.settings)
    keymap = settings.pop("keymap")
    document = {
        "format": FORMAT,
        "address": str(account.address),
        "private_key": base64.b64encode(identity.private_bytes()).decode("ascii"),
        "server": {
            "host": account.host,
            "port": account.port,
            "tls_pin": account.tls_pin,
            "server_key": account.server_key,
        },
        "settings": settings,
        "keymap": keymap,
        "files": files,
    }
    box = seal_secret(json.dumps(document).encode("utf-8"), passphrase, CONTEXT)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, box, suffix=SUFFIX)
    except OSError as exc:
        raise BackupError(f"Cannot write {target}: {exc.strerror}.") from exc
    return target


def read_backup(source: Path, passphrase: str) -> Backup:
    """Open a backup; a wrong passphrase or a damaged file is a BackupError in words."""
    source = Path(source).expanduser()
    try:
        box = source.read_bytes()
    except FileNotFoundError:
        raise BackupError(f"There is no file {source}.") from None
    except IsADirectoryError:
        raise BackupError(f"{source} is a folder; pick the backup file in it.") from None
    except OSError as exc:
        raise BackupError(f"Cannot read {source}: {exc.strerror}.") from exc
    try:
        data = open_secret(box, passphrase, CONTEXT)
    except WrongPassphrase:
        raise WrongBackupPassphrase(
            "Wrong passphrase for this backup (or the file was altered)."
        ) from None
    except SecretBoxError:
        raise BackupError(f"{source} is damaged or is not a Rune backup.") from None
    try:
        return _parse(json.loads(data))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BackupError(f"{source} opened but does not hold a usable backup ({exc}).") from exc


def _parse(doc: Any) -> Backup:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("unknown format; made by a newer rune-tui?")
    server = doc["server"]
    port = server["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port {port!r}")
    texts = [server["host"], server["tls_pin"], server["server_key"]]
    if not all(isinstance(text, str) and text for text in texts):
        raise ValueError("the server entry is incomplete")
    problems: list[str] = []
    table = dict(doc.get("settings", {}))
    table["keymap"] = doc.get("keymap", {})
    settings = settings_from_table(table, problems)
    files = {
        name: base64.b64decode(text, validate=True)
        for name, text in dict(doc.get("files", {})).items()
        if name in _FILES
    }
    return Backup(
        address=parse_address(doc["address"]),
        private_key=base64.b64decode(doc["private_key"], validate=True),
        host=server["host"],
        port=port,
        tls_pin=server["tls_pin"],
        server_key=server["server_key"],
        settings=settings,
        files=files,
        problems=tuple(problems),
    )


def import_account(
    paths: Paths,
    config: Config,
    backup: Backup,
    *,
    keystore: str = "keyring",
    passphrase: str | None = None,
) -> tuple[Config, Account, Identity]:
    """Add the backup's account to this profile, its server trusted as before.

    The key goes into ``keystore`` (for ``"file"``, sealed with ``passphrase``); the
    contact book and replay log are written where this profile looks for them; the
    settings are taken only into a profile with no account yet (an existing profile
    keeps its own). An account already here is refused rather than overwritten.
    """
    try:
        identity = Identity(backup.private_key)
    except ValueError as exc:
        raise BackupError(f"The key in the backup is not usable ({exc}).") from exc
    vault = Vault(identity)
    account_id = opaque_account_id(vault, backup.address)
    if any(a.config_key in (account_id, str(backup.address)) for a in config.accounts):
        raise BackupError(f"{backup.address} is already on this computer; nothing was changed.")
    try:
        store = key_store(paths, keystore, passphrase)
        for name, path in _carried_files(paths, backup.address, vault).items():
            blob = backup.files.get(name)
            if blob is not None and not path.exists():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_atomically(path, blob)
        store.save(account_id, identity.private_bytes())
    except (KeystoreError, ValueError) as exc:
        raise BackupError(f"The key could not be stored: {exc}.") from exc
    except OSError as exc:
        raise BackupError(f"Cannot write to this profile: {exc.strerror or exc}.") from exc
    account = Account(
        backup.address,
        backup.host,
        backup.port,
        backup.tls_pin,
        backup.server_key,
        keystore,
        id=account_id,
        sealed_address=seal_address(vault, account_id, backup.address),
    )
    updated = config.with_account(account)
    if not config.accounts:
        updated = replace(updated, settings=backup.settings)
    try:
        save_config(paths, updated)
    except OSError as exc:
        raise BackupError(f"Cannot save the config: {exc.strerror or exc}.") from exc
    return updated, account, identity


def default_backup_name(account: Account) -> str:
    """A file name that says what it is but names nobody (the id's start, not the address)."""
    return f"rune-account-{account.id[:8] or 'backup'}{SUFFIX}"
