"""Identities of suite ``rune/1``: Ed25519 for signing, ML-KEM-768 + X25519 for HPKE.

A public key travels as one text token ``rune1pk.<base64url>`` of
``ed25519(32) ‖ mlkem768(1184) ‖ x25519(32)``. A private key is 128 bytes:
``ed25519 seed(32) ‖ mlkem seed(64) ‖ x25519(32)``. Both layouts are fixed so a
parser can check exact lengths before touching any key material.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from .encoding import EncodingError, b64decode, b64encode

SUITE_NAME = "rune/1"
PUBLIC_KEY_PREFIX = "rune1pk."
ED25519_PUBLIC = 32
MLKEM768_PUBLIC = 1184
X25519_PUBLIC = 32
PUBLIC_KEY_SIZE = ED25519_PUBLIC + MLKEM768_PUBLIC + X25519_PUBLIC  # 1248
PRIVATE_KEY_SIZE = 32 + 64 + 32  # 128
SIGNATURE_SIZE = 64


class InvalidKey(ValueError):
    """A key token or key bytes are malformed (wrong version, wrong length, bad point)."""


def _split_public(raw: bytes) -> tuple[bytes, bytes, bytes]:
    if len(raw) != PUBLIC_KEY_SIZE:
        raise InvalidKey(f"a rune/1 public key is {PUBLIC_KEY_SIZE} bytes, not {len(raw)}")
    a = ED25519_PUBLIC
    b = a + MLKEM768_PUBLIC
    return raw[:a], raw[a:b], raw[b:]


@dataclass(frozen=True, slots=True)
class PublicKey:
    """The public half of an identity; equality is byte equality."""

    raw: bytes
    _signing: ed25519.Ed25519PublicKey = field(compare=False, repr=False)
    _kem: hpke.MLKEM768X25519PublicKey = field(compare=False, repr=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> PublicKey:
        ed, ml, xx = _split_public(bytes(raw))
        try:
            signing = ed25519.Ed25519PublicKey.from_public_bytes(ed)
            kem = hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(ml),
                x25519.X25519PublicKey.from_public_bytes(xx),
            )
        except ValueError as exc:
            raise InvalidKey(f"the public key holds an invalid point: {exc}") from exc
        return cls(bytes(raw), signing, kem)

    @classmethod
    def from_token(cls, token: str) -> PublicKey:
        if not token.startswith(PUBLIC_KEY_PREFIX):
            raise InvalidKey(f"a rune/1 public key token starts with {PUBLIC_KEY_PREFIX!r}")
        try:
            raw = b64decode(token[len(PUBLIC_KEY_PREFIX) :], max_length=PUBLIC_KEY_SIZE)
        except EncodingError as exc:
            raise InvalidKey(f"public key token: {exc}") from exc
        return cls.from_bytes(raw)

    def token(self) -> str:
        return _token(self.raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        if len(signature) != SIGNATURE_SIZE:
            return False
        try:
            self._signing.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @property
    def kem(self) -> hpke.MLKEM768X25519PublicKey:
        return self._kem

    def fingerprint(self) -> bytes:
        """SHA-256 of the public key bytes."""
        return hashlib.sha256(self.raw).digest()

    def fingerprint_text(self) -> str:
        return fingerprint_text(self.fingerprint())

    def __repr__(self) -> str:
        return f"PublicKey({self.fingerprint_text()[:19]}…)"


@functools.lru_cache(maxsize=1024)
def _token(raw: bytes) -> str:
    """Encoded once per key: a server writes two keys into every ``201``."""
    return PUBLIC_KEY_PREFIX + b64encode(raw)


def fingerprint_text(digest: bytes) -> str:
    """Groups of four hex digits, easy to compare aloud: ``3F2A 91C0 …``."""
    hexed = digest.hex().upper()
    return " ".join(hexed[i : i + 4] for i in range(0, len(hexed), 4))


class Identity:
    """A private identity. Never printed, never pickled, never written in the clear."""

    __slots__ = ("_ed", "_kem", "_ml_seed", "_public", "_x")

    def __init__(self, private: bytes) -> None:
        private = bytes(private)
        if len(private) != PRIVATE_KEY_SIZE:
            raise InvalidKey(f"a rune/1 private key is {PRIVATE_KEY_SIZE} bytes")
        self._ed = ed25519.Ed25519PrivateKey.from_private_bytes(private[:32])
        self._ml_seed = private[32:96]
        ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(self._ml_seed)
        self._x = x25519.X25519PrivateKey.from_private_bytes(private[96:])
        self._kem = hpke.MLKEM768X25519PrivateKey(ml, self._x)
        self._public = PublicKey.from_bytes(
            self._ed.public_key().public_bytes_raw()
            + ml.public_key().public_bytes_raw()
            + self._x.public_key().public_bytes_raw()
        )

    @classmethod
    def generate(cls) -> Identity:
        ed = ed25519.Ed25519PrivateKey.generate().private_bytes_raw()
        ml = mlkem.MLKEM768PrivateKey.generate().private_bytes_raw()
        xx = x25519.X25519PrivateKey.generate().private_bytes_raw()
        return cls(ed + ml + xx)

    def private_bytes(self) -> bytes:
        """The 128-byte private key, for the keystore only."""
        return self._ed.private_bytes_raw() + self._ml_seed + self._x.private_bytes_raw()

    @property
    def public(self) -> PublicKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        return self._ed.sign(message)

    @property
    def kem(self) -> hpke.MLKEM768X25519PrivateKey:
        return self._kem

    def __repr__(self) -> str:
        return f"Identity({self.public!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("an Identity is never pickled")
