"""Where a client remembers key pins and seen or deleted messages between sessions.

Both protect the user only if they outlive the session: a contact book kept in memory
pins a key for one session, and a replay log kept in memory forgets what was deleted
as soon as the session ends. So ``connect()`` never picks in-memory ones silently; it
takes them, or a state directory to keep them in, or an explicit ``ephemeral=True``.

Nothing under the state directory names the account: each account's folder is a keyed
hash of its address (:meth:`~.vault.Vault.name`), and both files in it are sealed. A
folder named by the address (older versions) is moved over on the first login.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ..address import Address
from ..keys import Identity
from .contacts import ContactBook, ReplayLog
from .errors import ClientError
from .vault import Vault

CONTACTS_FILE = "contacts"  # in <state_dir>/<Vault.name of the address>/, sealed
REPLAY_LOG_FILE = "seen"  # likewise
LEGACY_CONTACTS_FILE = "contacts.toml"  # in <state_dir>/<address>/, in the clear
NO_STATE = (
    "connect() needs somewhere to remember contact keys and seen or deleted messages, "
    "or it cannot detect a changed key or a replay in a later session: pass "
    "state_dir=<a private directory>, or contacts= and replays=, or ephemeral=True "
    "for a throwaway session that remembers nothing"
)


def account_folder_name(vault: Vault, address: Address) -> str:
    """The account's folder under a state directory: says nothing of the address."""
    return vault.name(f"rune/1 state dir {address}")


@dataclass(frozen=True, slots=True)
class StateDir:
    """A state directory, and which of the two files the caller left to it."""

    root: Path
    contacts: bool
    replays: bool

    def open(
        self, address: Address, identity: Identity, contacts: ContactBook, replays: ReplayLog
    ) -> tuple[ContactBook, ReplayLog]:
        """The account's sealed book and log under ``root/<keyed hash>/`` (made 0700)."""
        vault = Vault(identity)
        folder = self.root / account_folder_name(vault, address)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        legacy = self.root / str(address)
        if self.replays:
            replays = ReplayLog(
                folder / REPLAY_LOG_FILE, vault, migrate_from=legacy / REPLAY_LOG_FILE
            )
        if self.contacts:
            contacts = ContactBook(
                folder / CONTACTS_FILE,
                vault,
                address,
                migrate_from=legacy / LEGACY_CONTACTS_FILE,
            )
        remove_if_empty(legacy)
        return contacts, replays


def remove_if_empty(folder: Path) -> None:
    """Drop a folder left empty by a migration (one holding anything else stays)."""
    with contextlib.suppress(OSError):  # absent, or holds something else: keep it
        folder.rmdir()


def choose_state(
    contacts: ContactBook | None,
    replays: ReplayLog | None,
    state_dir: Path | None,
    ephemeral: bool,
) -> StateDir | None:
    """What connect() was told, checked; None when nothing is opened at login."""
    if ephemeral and state_dir is not None:
        raise ClientError("connect(): ephemeral=True keeps nothing; drop state_dir")
    if state_dir is not None:
        return StateDir(Path(state_dir), contacts is None, replays is None)
    if not ephemeral and (contacts is None or replays is None):
        raise ClientError(NO_STATE)
    return None
