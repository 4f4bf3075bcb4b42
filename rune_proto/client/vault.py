"""Encryption for a client's own files: cache index, drafts, read marks, the replay log.

Everything a client keeps on disk beyond the server's sealed blobs is sealed here,
under a key derived from the account's private key, so a stolen laptop disk shows no
subject, body, sender or draft. One ChaCha20-Poly1305 key per identity (HKDF-SHA256,
``info = "rune/1 local vault"``); each file's *context* (what it is, for which account)
is authenticated, so one sealed file cannot be swapped in for another.

Layout of a sealed file: ``b"RUNEVLT1" ‖ nonce(12) ‖ ciphertext+tag``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..keys import Identity
from ..local.atomicfile import write_atomically

MAGIC = b"RUNEVLT1"
_NONCE = 12


class VaultError(ValueError):
    """A sealed file is damaged, was made by another identity, or is not the one asked for."""


class Vault:
    """Seals and opens a client's local data with a key only its identity can derive."""

    def __init__(self, identity: Identity) -> None:
        material = HKDF(
            algorithm=hashes.SHA256(), length=64, salt=None, info=b"rune/1 local vault"
        ).derive(identity.private_bytes())
        self._aead = ChaCha20Poly1305(material[:32])
        self._naming_key = material[32:]

    def seal(self, data: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, context.encode("utf-8"))

    def open(self, box: bytes, context: str) -> bytes:
        if len(box) < len(MAGIC) + _NONCE + 16 or not box.startswith(MAGIC):
            raise VaultError("not a Rune vault file")
        nonce = box[len(MAGIC) : len(MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, box[len(MAGIC) + _NONCE :], context.encode("utf-8"))
        except InvalidTag as exc:
            raise VaultError(f"{context}: damaged, or sealed by another identity") from exc

    def name(self, text: str) -> str:
        """A stable file name for ``text`` that reveals nothing about it (keyed hash)."""
        return hmac.new(self._naming_key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def write(self, path: Path, data: bytes, context: str) -> None:
        """Seal and write atomically (temp file, fsync, rename), mode 0600."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(path, self.seal(data, context))

    def read(self, path: Path, context: str) -> bytes | None:
        """The opened file, or None if it does not exist."""
        try:
            box = path.read_bytes()
        except FileNotFoundError:
            return None
        return self.open(box, context)
