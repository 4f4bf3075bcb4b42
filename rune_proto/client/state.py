"""Where a client remembers key pins and seen or deleted messages between sessions.

Both protect the user only if they outlive the session: a contact book kept in memory
pins a key for one session, and a replay log kept in memory forgets what was deleted
as soon as the session ends. So ``connect()`` never picks in-memory ones silently; it
takes them, or a state directory to keep them in, or an explicit ``ephemeral=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..address import Address
from ..keys import Identity
from .contacts import ContactBook, ReplayLog
from .errors import ClientError
from .vault import Vault

CONTACTS_FILE = "contacts.toml"  # in <state_dir>/<address>/
REPLAY_LOG_FILE = "seen"  # likewise, sealed by the account's vault
NO_STATE = (
    "connect() needs somewhere to remember contact keys and seen or deleted messages, "
    "or it cannot detect a changed key or a replay in a later session: pass "
    "state_dir=<a private directory>, or contacts= and replays=, or ephemeral=True "
    "for a throwaway session that remembers nothing"
)


@dataclass(frozen=True, slots=True)
class StateDir:
    """A state directory, and which of the two files the caller left to it."""

    root: Path
    contacts: bool
    replays: bool

    def open(
        self, address: Address, identity: Identity, contacts: ContactBook, replays: ReplayLog
    ) -> tuple[ContactBook, ReplayLog]:
        """The account's book and sealed log under ``root/<address>/`` (made 0700)."""
        folder = self.root / str(address)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.contacts:
            contacts = ContactBook(folder / CONTACTS_FILE)
        if self.replays:
            replays = ReplayLog(folder / REPLAY_LOG_FILE, Vault(identity))
        return contacts, replays


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
