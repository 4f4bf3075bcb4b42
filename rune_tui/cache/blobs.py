"""The blob files: the server's sealed blobs byte for byte, each behind a sealed header.

A header, sealed by the :class:`~rune_proto.client.vault.Vault`, holds the SHA-256 of the
blob, the SHA-256 of the server key that was pinned when the blob was retrieved (and its
signature checked), and the server id. So a damaged file is told apart from a message that
never opened, a file under another file's name is refused, the index can be rebuilt from
the blobs alone, and a message retrieved before an accepted server-key change is checked
again against the key it was retrieved under (see :class:`ServerKeys`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from rune_proto.client import Vault, VaultError
from rune_proto.local.atomicfile import write_atomically

_NO_KEY = bytes(32)  # a header written before server keys were recorded, or without one


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """What a blob file holds, once its header and hash checked."""

    message_id: str
    blob: bytes
    server_key: str | None  # the server key token pinned at retrieval; None: not recorded


def key_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


class ServerKeys:
    """Every server key token a blob header names, by digest: one small sealed file.

    Written only when a new key is first used (at registration, after an accepted change),
    so the history of accepted keys costs nothing per message.
    """

    def __init__(self, path: Path, vault: Vault, account: str) -> None:
        self.path = path
        self.vault = vault
        self._context = f"rune/1 cache server keys {account}"
        self._tokens: dict[bytes, str] | None = None

    def _known(self) -> dict[bytes, str]:
        if self._tokens is None:
            self._tokens = {}
            try:
                raw = self.vault.read(self.path, self._context)
                tokens = json.loads(raw) if raw is not None else []
            except (OSError, VaultError, ValueError):
                tokens = []  # rows then check against today's key: safe, if less kind
            if isinstance(tokens, list):
                self._tokens = {key_digest(t): t for t in tokens if isinstance(t, str)}
        return self._tokens

    def digest(self, token: str) -> bytes:
        """The digest a header records for ``token``, writing the history if it is new."""
        digest = key_digest(token)
        known = self._known()
        if digest not in known:
            known[digest] = token
            data = json.dumps(sorted(known.values())).encode("ascii")
            self.vault.write(self.path, data, self._context)
        return digest

    def token(self, digest: bytes) -> str | None:
        return None if digest == _NO_KEY else self._known().get(digest)


class BlobStore:
    """``blobs/`` of one account's cache. Writing raises OSError; reading never raises."""

    def __init__(self, root: Path, vault: Vault, account: str) -> None:
        self.root = root
        self.vault = vault
        self.dir = root / "blobs"
        self.keys = ServerKeys(root / "server-keys", vault, account)
        self._context = f"rune/1 cache blob header 2 {account}"
        self._context_v1 = f"rune/1 cache blob header {account}"

    def path(self, message_id: str) -> Path:
        return self.dir / self.vault.name(f"rune/1 cache blob {message_id}")

    def make_dirs(self) -> None:
        """``cache/``, the account's folder and ``blobs/``, each readable by the user only."""
        if not self.dir.is_dir():
            for folder in (self.root.parent, self.root, self.dir):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write(self, message_id: str, blob: bytes, server_key: str | None) -> None:
        """Header + blob, written whole under a temporary name and renamed into place.

        No fsync per blob: a crash can at worst leave a file whose hash does not match,
        which reads as missing and is fetched again. The index itself is fsynced.
        """
        self.make_dirs()
        key = _NO_KEY if server_key is None else self.keys.digest(server_key)
        header = self.vault.seal(
            hashlib.sha256(blob).digest() + key + message_id.encode("utf-8"), self._context
        )
        path = self.path(message_id)
        write_atomically(path, len(header).to_bytes(2, "big") + header, blob, sync=False)

    def unwrap(self, data: bytes) -> Unwrapped | None:
        """What a cache file holds if its header and hash check, else None."""
        if len(data) < 2:
            return None
        size = int.from_bytes(data[:2], "big")
        box, blob = data[2 : 2 + size], data[2 + size :]
        key: bytes | None = None
        try:
            header = self.vault.open(box, self._context)
            key, rest = header[32:64], header[64:]
        except VaultError:
            try:  # a file cached before headers named the server key
                header = self.vault.open(box, self._context_v1)
            except VaultError:
                return None
            rest = header[32:]
        if not rest or hashlib.sha256(blob).digest() != header[:32]:
            return None
        try:
            message_id = rest.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return Unwrapped(message_id, blob, None if key is None else self.keys.token(key))

    def stored(self, message_id: str) -> Unwrapped | None:
        """The cached blob of ``message_id`` exactly as the server sent it, if intact."""
        try:
            data = self.path(message_id).read_bytes()
        except OSError:
            return None
        unwrapped = self.unwrap(data)
        if unwrapped is None or unwrapped.message_id != message_id:
            return None
        return unwrapped

    def any(self) -> bool:
        try:
            with os.scandir(self.dir) as entries:
                return any(True for _ in entries)
        except OSError:
            return False

    def entries(self) -> list[os.DirEntry[str]]:
        """Every file in ``blobs/``, in name order (empty if the folder is unreadable)."""
        try:
            with os.scandir(self.dir) as scan:
                return sorted(scan, key=lambda e: e.name)
        except OSError:
            return []
