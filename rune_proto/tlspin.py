"""TLS certificate pinning by SHA-256 of the SubjectPublicKeyInfo.

Pinning the SPKI rather than the whole certificate lets a server renew its
certificate with the same key without breaking every client's pin.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PIN_PREFIX = "sha256:"


class PinError(ValueError):
    """A certificate or a pin text is malformed."""


def spki_fingerprint(der_certificate: bytes) -> str:
    """``sha256:`` and the hex digest of the certificate's public key info."""
    try:
        certificate = x509.load_der_x509_certificate(der_certificate)
    except ValueError as exc:
        raise PinError(f"not a DER certificate: {exc}") from exc
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return PIN_PREFIX + hashlib.sha256(spki).hexdigest()


def normalise_pin(text: str) -> str:
    """Accept ``sha256:HEX`` or bare hex, with or without spaces or colons between bytes."""
    body = text.strip().lower().removeprefix(PIN_PREFIX)
    body = body.replace(" ", "").replace(":", "")
    if len(body) != 64 or any(c not in "0123456789abcdef" for c in body):
        raise PinError("a TLS pin is sha256: followed by 64 hex digits")
    return PIN_PREFIX + body


def pins_match(a: str, b: str) -> bool:
    return hmac.compare_digest(normalise_pin(a), normalise_pin(b))


def pin_text(pin: str) -> str:
    """The pin in groups of four hex digits, for people to compare."""
    body = normalise_pin(pin).removeprefix(PIN_PREFIX).upper()
    return " ".join(body[i : i + 4] for i in range(0, len(body), 4))
