"""``rune-tui export FILE`` and ``rune-tui import FILE``: backups without the full-screen UI.

Passphrases are read with :func:`getpass.getpass` (never from the command line, where
other users and the shell's history would see them); tests pass their own ``ask``.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from pathlib import Path

from rune_proto.local.keystore import KeystoreError

from .backup import BackupError, check_passphrase, export_account, import_account, read_backup
from .config import Config, Paths, save_config
from .service_registration import forget_old_key, keystore_choice, unlock

Ask = Callable[[str], str]
TRIES = 3


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _new_passphrase(ask: Ask, what: str) -> str:
    """A passphrase typed twice, long enough; BackupError after TRIES attempts."""
    problem = ""
    for _ in range(TRIES):
        first = ask(f"Passphrase for {what} (at least 12 characters): ")
        try:
            check_passphrase(first, ask("The same passphrase again: "))
        except BackupError as exc:
            problem = str(exc)
            _say(problem)
            continue
        return first
    raise BackupError(problem)


def export_command(paths: Paths, config: Config, target: Path, ask: Ask) -> int:
    """Unlock the default account and write its backup to ``target``."""
    account = config.current
    if account is None:
        _say("rune-tui: there is no account to export in this profile.")
        return 1
    key_passphrase = None
    if account.keystore == "file":
        key_passphrase = ask(f"Passphrase of the key file for {account.label}: ")
    try:
        unlocked = unlock(paths, account, key_passphrase)
        if unlocked.was is not None:  # an older entry: save it converted, as the app does
            config = config.replacing(unlocked.account, unlocked.was)
            save_config(paths, config)
            forget_old_key(paths, unlocked, key_passphrase)
        passphrase = _new_passphrase(ask, "the backup")
        written = export_account(
            paths, config, unlocked.account, unlocked.identity, target, passphrase
        )
    except (KeystoreError, BackupError, OSError) as exc:
        _say(f"rune-tui: {exc}")
        return 1
    _say(
        f"Wrote the backup of {unlocked.account.address} to {written}. It holds your private "
        "key: keep it somewhere safe, and remember its passphrase."
    )
    return 0


def import_command(paths: Paths, config: Config, source: Path, ask: Ask) -> int:
    """Read a backup and add its account to this profile."""
    try:
        backup = read_backup(source, ask("Passphrase of the backup: "))
        keystore, why = keystore_choice()
        key_passphrase = None
        if keystore == "file":
            _say(f"The key will be kept in an encrypted file here, because {why}.")
            key_passphrase = _new_passphrase(ask, "the key file on this computer")
        _, account, _ = import_account(
            paths, config, backup, keystore=keystore, passphrase=key_passphrase
        )
    except (KeystoreError, BackupError, OSError) as exc:
        _say(f"rune-tui: {exc}")
        return 1
    for problem in backup.problems:
        _say(f"rune-tui: {problem}")
    _say(
        f"Added {account.address} on {account.host}:{account.port}, its server trusted as "
        "before. This computer now reads the same mailbox: a message deleted on one "
        "device is deleted on the server, so it is gone for both."
    )
    return 0


def run(command: str, paths: Paths, config: Config, file: Path, ask: Ask | None = None) -> int:
    ask = ask or getpass.getpass
    try:
        if command == "export":
            return export_command(paths, config, file, ask)
        return import_command(paths, config, file, ask)
    except (EOFError, KeyboardInterrupt):
        _say("rune-tui: stopped; nothing was changed.")
        return 1
