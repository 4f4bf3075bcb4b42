"""The one HPKE suite of ``rune/1`` and the domain-separation contexts.

Every HPKE ``info`` and every signature starts from one of these labels, so bytes
signed or sealed for one purpose can never be accepted for another.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke

SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
KEM_ENC_SIZE = 1120  # ML-KEM-768 ciphertext (1088) + X25519 share (32)
AEAD_TAG_SIZE = 16
HPKE_OVERHEAD = KEM_ENC_SIZE + AEAD_TAG_SIZE

CTX_MESSAGE = b"rune/1 message"
CTX_CLIENT_MESSAGE = b"rune/1 client-message"
CTX_STORED_MESSAGE = b"rune/1 stored-message"
CTX_REGISTER = b"rune/1 register"
CTX_REGISTER_ANSWER = b"rune/1 register-answer"
CTX_LOGIN = b"rune/1 login"


class EnvelopeError(ValueError):
    """An envelope failed to open or verify. ``reason`` is a short, stable description."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def seal(public_key: hpke.MLKEM768X25519PublicKey, plaintext: bytes, info: bytes) -> bytes:
    return SUITE.encrypt(plaintext, public_key, info=info)


def open_sealed(
    private_key: hpke.MLKEM768X25519PrivateKey,
    ciphertext: bytes,
    info: bytes,
    *,
    what: str,
    exact_size: int | None = None,
) -> bytes:
    """HPKE open after the exact-length check; every failure is an EnvelopeError."""
    if exact_size is not None and len(ciphertext) != exact_size:
        raise EnvelopeError(f"{what} is {len(ciphertext)} bytes, expected {exact_size}")
    if len(ciphertext) < HPKE_OVERHEAD:
        raise EnvelopeError(f"{what} is too short to be sealed")
    try:
        return SUITE.decrypt(ciphertext, private_key, info=info)
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError(f"{what} does not open with this key (tampered or not for us)") from exc
