"""``rune-server passphrase`` and ``renew-cert``: the sealed key files, rewritten safely.

Both may run while the server runs: it holds its keys in memory and reads the files
again only when it starts. Each file is replaced whole (write beside, fsync, rename),
so a crash leaves it old or new, never torn.

A passphrase change rewrites two files, the TLS key and the identity, one after the
other. A crash between the two renames leaves one under each passphrase; each file is
therefore opened with the old passphrase *or* the new one, so running the command
again with the same two passphrases finishes the job.

``renew-cert`` signs a new self-signed certificate for the *same* TLS key. Clients
pin the key (the SPKI fingerprint), not the certificate, so every pin holds.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..local.atomicfile import write_atomically
from ..secretbox import SecretBoxError, open_secret, seal_secret
from ..tlspin import spki_fingerprint
from .config import DataDir, OperatorError
from .datadir import CERT_COMMON_NAME, CERT_LIFETIME, IDENTITY_CONTEXT, self_signed_certificate


def change_passphrase(data: DataDir, old: str, new: str) -> None:
    """Seal the TLS key and the identity under ``new``; ``old`` must open them."""
    if old == new:
        raise OperatorError("the new passphrase is the same as the old one")
    key = _tls_key(data, old, new)
    secret = _identity(data, old, new)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(new.encode("utf-8")),
    )
    box = seal_secret(secret, new, IDENTITY_CONTEXT)
    try:
        write_atomically(data.tls_key, key_pem, prefix=".tls.key.", mode=0o600)
        write_atomically(data.identity, box, prefix=".identity.key.", mode=0o600)
    except OSError as exc:
        raise OperatorError(
            f"cannot write the key files: {exc.strerror or exc}; run the command again"
        ) from exc


def renew_certificate(data: DataDir, passphrase: str) -> str:
    """A new certificate for the same TLS key; returns the (unchanged) pin."""
    key = _tls_key(data, passphrase)
    try:
        old_pin = spki_fingerprint(
            x509.load_pem_x509_certificate(data.tls_cert.read_bytes()).public_bytes(
                serialization.Encoding.DER
            )
        )
    except (OSError, ValueError):
        old_pin = None  # missing or corrupt: replaced by a good one below
    cert = self_signed_certificate(key, CERT_COMMON_NAME, CERT_LIFETIME)
    pin = spki_fingerprint(cert.public_bytes(serialization.Encoding.DER))
    if old_pin is not None and old_pin != pin:
        raise OperatorError("tls.crt does not belong to tls.key; not replacing it")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    write_atomically(data.tls_cert, pem, prefix=".tls.crt.", mode=0o644)
    return pin


def certificate_expiry(data: DataDir) -> dt.datetime:
    cert = x509.load_pem_x509_certificate(data.tls_cert.read_bytes())
    return cert.not_valid_after_utc


def _tls_key(data: DataDir, *passphrases: str) -> ec.EllipticCurvePrivateKey:
    try:
        pem = data.tls_key.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read {data.tls_key}: {exc.strerror}") from exc
    for passphrase in passphrases:
        try:
            key = serialization.load_pem_private_key(pem, passphrase.encode("utf-8"))
        except (ValueError, TypeError):
            continue
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise OperatorError(f"{data.tls_key} is not an EC key")
        return key
    raise OperatorError("the passphrase does not open the TLS key")


def _identity(data: DataDir, *passphrases: str) -> bytes:
    try:
        box = data.identity.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read {data.identity}: {exc.strerror}") from exc
    for passphrase in passphrases:
        try:
            return open_secret(box, passphrase, IDENTITY_CONTEXT)
        except SecretBoxError:
            continue
    raise OperatorError("the passphrase does not open the server identity")
