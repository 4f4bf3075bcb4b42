"""Passphrase encryption for secrets at rest: scrypt + ChaCha20-Poly1305.

Used wherever a private key must live in a file (the server's keys, and a
client's keys when no OS keyring is usable), so no key is ever on disk in the
clear. Layout: ``b"RUNEBOX1" ‖ log2(n) ‖ r ‖ p ‖ salt(16) ‖ nonce(12) ‖ ciphertext``.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"RUNEBOX1"
_HEADER = struct.Struct(">8sBBB16s12s")
DEFAULT_LOG_N = 15  # ~50-100 ms here: cheap once at start-up, costly per guess


class SecretBoxError(ValueError):
    """The box is malformed, or the passphrase or context is wrong."""


class WrongPassphrase(SecretBoxError):
    """The box is well formed but does not open: wrong passphrase, or altered."""


def _key(passphrase: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    if not 10 <= log_n <= 22 or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise SecretBoxError("secret box has implausible scrypt parameters")
    kdf = Scrypt(salt=salt, length=32, n=1 << log_n, r=r, p=p)
    return kdf.derive(passphrase.encode("utf-8"))


def seal_secret(
    secret: bytes, passphrase: str, context: bytes, *, log_n: int = DEFAULT_LOG_N
) -> bytes:
    """Encrypt ``secret``; ``context`` (e.g. what the key is for) is authenticated."""
    if not passphrase:
        raise SecretBoxError("an empty passphrase protects nothing")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = _HEADER.pack(MAGIC, log_n, 8, 1, salt, nonce)
    key = _key(passphrase, salt, log_n, 8, 1)
    return header + ChaCha20Poly1305(key).encrypt(nonce, secret, header + context)


def open_secret(box: bytes, passphrase: str, context: bytes) -> bytes:
    if len(box) < _HEADER.size + 16:
        raise SecretBoxError("secret box is truncated")
    magic, log_n, r, p, salt, nonce = _HEADER.unpack(box[: _HEADER.size])
    if magic != MAGIC:
        raise SecretBoxError("not a Rune secret box")
    key = _key(passphrase, salt, log_n, r, p)
    try:
        return ChaCha20Poly1305(key).decrypt(
            nonce, box[_HEADER.size :], box[: _HEADER.size] + context
        )
    except InvalidTag as exc:
        raise WrongPassphrase("wrong passphrase (or the file was altered)") from exc
