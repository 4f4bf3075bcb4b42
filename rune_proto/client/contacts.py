"""Replay detection for received messages (and, re-exported, the contact book).

A message the user deleted and a server delivers again is a replay too: the log
remembers what was deleted (see :meth:`ReplayLog.record_deleted`). The contact book
(trust on first use) lives in :mod:`.contact_book`.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from ..local.atomicfile import sync_folder, write_atomically
from .contact_book import (
    COMPARED_IN_PERSON,
    Contact,
    ContactBook,
    ContactBookError,
    KeyCheck,
)
from .vault import Vault, VaultError

__all__ = [
    "COMPARED_IN_PERSON",
    "Contact",
    "ContactBook",
    "ContactBookError",
    "KeyCheck",
    "ReplayLog",
]
REPLAY_RECORDS_LIMIT = 256  # records in the replay log before opening it rewrites it as one
_SEEN_MAGIC = b"RUNESEN1"
_SEEN_TOKEN = 16
_SEEN_HEAD = len(_SEEN_MAGIC) + _SEEN_TOKEN
# A deletion's line: no space in it, so a log reader from before deletions ignores it.
_DELETED = "deleted:"


class ReplayLog:
    """Sender message ids already seen, with the server id that first carried each,
    and the messages the user deleted.

    A message id arriving again under a different server id is a replay: the server
    (or someone who had the blob) stored the same signed message twice. A message
    the user deleted that arrives again, under its old server id or a new one, is a
    replay as well: a server that kept a copy must not make it look new and verified.

    On disk the log is sealed by the account's :class:`~.vault.Vault`, like every other
    file a client keeps, so it shows no id: ``RUNESEN1 ‖ file token(16) ‖ records``, each
    record ``length(4) ‖ sealed box`` of one or more ``"<message id> <server id>"`` lines
    (or ``"deleted:<server id>:<message id>"``, the message id empty if never opened),
    its context naming the file token and its position (records cannot be moved between
    files or reordered). A new id appends one record; opening a log of many records
    rewrites it as one. A log in the clear (from before it was sealed) is read, its ids
    kept, and replaced by a sealed one on first open. A torn or undecryptable tail is cut
    off on open: the ids before it are kept (a log sealed by another identity opens as
    empty, and is replaced).
    """

    def __init__(
        self,
        path: Path | None = None,
        vault: Vault | None = None,
        *,
        migrate_from: Path | None = None,
    ) -> None:
        """Open the log at ``path``; ``migrate_from`` is its name in older versions.

        The old file is renamed into place if there is no log yet (its seal names no
        file); if both exist (an older version ran since), the old one's ids are merged
        in, the merged log written and fsynced, and only then the old file removed.
        """
        if path is not None and vault is None:
            raise TypeError("a replay log on disk is sealed: pass the account's Vault")
        self.path = path
        self._vault = vault
        self._seen: dict[str, str] = {}
        self._carried: dict[str, str] = {}  # server id → the message id it first carried
        self._deleted_servers: dict[str, str] = {}  # deleted server id → its message id
        self._deleted_messages: set[str] = set()
        self._lock = threading.Lock()  # the TUI opens blobs on a rebuild thread too
        self._token: bytes | None = None  # of the file on disk; None: none written yet
        self._records = 0
        if path is None:
            return
        if migrate_from is not None and migrate_from != path and migrate_from.exists():
            if not path.exists():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.replace(migrate_from, path)
                sync_folder(path.parent)
            else:
                self._load()
                self._absorb(ReplayLog(migrate_from, vault))
                migrate_from.unlink()
                sync_folder(migrate_from.parent)
                return
        self._load()

    def _absorb(self, older: ReplayLog) -> None:
        """Take every id ``older`` remembers that this log lacks, then rewrite it whole."""
        for message_id, server_id in older._seen.items():
            self._seen.setdefault(message_id, server_id)
            self._carried.setdefault(server_id, message_id)
        for server_id, message_id in older._deleted_servers.items():
            self._mark_deleted(server_id, message_id)
        self._deleted_messages |= older._deleted_messages
        self._rewrite()

    def _context(self, position: int) -> str:
        assert self._token is not None
        return f"rune/1 replay log {self._token.hex()} {position}"

    def _remember(self, text: str) -> None:
        for line in text.splitlines():
            if line.startswith(_DELETED):
                server_id, _, message_id = line[len(_DELETED) :].partition(":")
                self._mark_deleted(server_id, message_id)
                continue
            message_id, _, server_id = line.partition(" ")
            if message_id and server_id and message_id not in self._seen:
                self._seen[message_id] = server_id
                self._carried.setdefault(server_id, message_id)

    def _mark_deleted(self, server_id: str, message_id: str) -> None:
        if server_id:
            self._deleted_servers[server_id] = message_id
        if message_id:
            self._deleted_messages.add(message_id)

    def _load(self) -> None:
        assert self.path is not None and self._vault is not None
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        if not data.startswith(_SEEN_MAGIC):  # the clear log of older versions: migrate
            self._remember(data.decode("utf-8", "replace"))
            self._rewrite()
            return
        self._token = data[len(_SEEN_MAGIC) : _SEEN_HEAD]
        position, count = _SEEN_HEAD, 0
        while position + 4 <= len(data):
            size = int.from_bytes(data[position : position + 4], "big")
            box = data[position + 4 : position + 4 + size]
            if len(box) != size:
                break
            try:
                text = self._vault.open(box, self._context(count))
            except VaultError:
                break
            self._remember(text.decode("utf-8", "replace"))
            count += 1
            position += 4 + size
        self._records = count
        if position != len(data) or count > REPLAY_RECORDS_LIMIT or len(data) < _SEEN_HEAD:
            self._rewrite()

    def _rewrite(self) -> None:
        """The whole log as one sealed record under a new file token (atomic, fsynced)."""
        assert self.path is not None and self._vault is not None
        self._token = secrets.token_bytes(_SEEN_TOKEN)
        lines = "".join(f"{m} {s}\n" for m, s in self._seen.items()) + "".join(
            f"{_DELETED}{s}:{m}\n" for s, m in self._deleted_servers.items()
        )
        data = _SEEN_MAGIC + self._token
        if lines:
            data += _frame(self._vault.seal(lines.encode("utf-8"), self._context(0)))
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(self.path, data)
        self._records = 1 if lines else 0

    def is_replay(self, message_id: str, server_id: str) -> bool:
        """Record ``message_id``; True if an earlier, different server id carried it."""
        with self._lock:
            first = self._seen.get(message_id)
            if first is None:
                self._seen[message_id] = server_id
                self._carried.setdefault(server_id, message_id)
                self._append(f"{message_id} {server_id}\n", durable=False)
                return False
            return first != server_id

    def was_deleted(self, message_id: str, server_id: str) -> bool:
        """True if the user deleted this message, or the message under this server id."""
        with self._lock:
            return message_id in self._deleted_messages or server_id in self._deleted_servers

    def record_deleted(self, server_id: str) -> None:
        """Remember that the user deletes ``server_id`` (and the message it carried).

        Written and fsynced before it returns, so call it *before* sending ``DELETE``:
        the other order leaves a moment (a crash, a kill) after which the server
        has agreed to forget the message but the client has not recorded it, and a
        server that kept a copy could then deliver it again as new. If the DELETE
        then fails, the message is shown as deleted before and delivered again, which
        is what it is; deleting it again clears it from the server.
        """
        with self._lock:
            message_id = self._carried.get(server_id, "")
            if self._deleted_servers.get(server_id) == message_id:
                return
            self._mark_deleted(server_id, message_id)
            self._append(f"{_DELETED}{server_id}:{message_id}\n", durable=True)

    def _append(self, line: str, *, durable: bool) -> None:
        if self.path is None or self._vault is None:
            return
        if self._token is None:
            self._rewrite()  # atomic and fsynced
            return
        box = self._vault.seal(line.encode("utf-8"), self._context(self._records))
        with self.path.open("ab") as handle:
            handle.write(_frame(box))
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        self._records += 1


def _frame(box: bytes) -> bytes:
    return len(box).to_bytes(4, "big") + box
