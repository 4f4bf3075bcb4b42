"""TLS pins: SHA-256 of the certificate's SubjectPublicKeyInfo."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from rune_proto.tlspin import (
    PIN_PREFIX,
    PinError,
    normalise_pin,
    pin_text,
    pins_match,
    spki_fingerprint,
)


def self_signed(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, name: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365))
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(Encoding.DER)


KEY = ec.generate_private_key(ec.SECP256R1())
CERT = self_signed(KEY, "rune.example.org")
SPKI_HEX = hashlib.sha256(
    KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
).hexdigest()


def test_fingerprint_is_sha256_of_the_spki() -> None:
    assert spki_fingerprint(CERT) == PIN_PREFIX + SPKI_HEX
    assert spki_fingerprint(CERT) != PIN_PREFIX + hashlib.sha256(CERT).hexdigest()


def test_renewed_certificate_with_the_same_key_keeps_the_pin() -> None:
    renewed = self_signed(KEY, "another name, same key")
    assert renewed != CERT
    assert spki_fingerprint(renewed) == spki_fingerprint(CERT)


def test_a_new_key_changes_the_pin() -> None:
    other = self_signed(ec.generate_private_key(ec.SECP256R1()), "rune.example.org")
    assert not pins_match(spki_fingerprint(other), spki_fingerprint(CERT))


def test_ed25519_certificates_are_pinned_too() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert spki_fingerprint(self_signed(key, "x")) == PIN_PREFIX + hashlib.sha256(spki).hexdigest()


@pytest.mark.parametrize("data", [b"", b"not a certificate", CERT[:-1], CERT[:100]])
def test_non_der_input_is_a_pin_error(data: bytes) -> None:
    with pytest.raises(PinError, match="not a DER certificate"):
        spki_fingerprint(data)


def test_pem_is_not_der() -> None:
    pem = x509.load_der_x509_certificate(CERT).public_bytes(Encoding.PEM)
    with pytest.raises(PinError):
        spki_fingerprint(pem)


@pytest.mark.parametrize(
    "text",
    [
        PIN_PREFIX + SPKI_HEX,
        SPKI_HEX,
        SPKI_HEX.upper(),
        "SHA256:" + SPKI_HEX.upper(),
        ":".join(SPKI_HEX[i : i + 2] for i in range(0, 64, 2)),
        " ".join(SPKI_HEX[i : i + 4] for i in range(0, 64, 4)),
        f"  {PIN_PREFIX}{SPKI_HEX}\n",
    ],
    ids=["canonical", "bare", "upper", "upper-prefix", "colons", "groups", "whitespace"],
)
def test_normalise_accepts_the_usual_spellings(text: str) -> None:
    assert normalise_pin(text) == PIN_PREFIX + SPKI_HEX
    assert pins_match(text, spki_fingerprint(CERT))


@pytest.mark.parametrize(
    "text",
    ["", "sha256:", SPKI_HEX[:-1], SPKI_HEX + "0", SPKI_HEX[:-1] + "g", "sha1:" + SPKI_HEX[:40]],
    ids=["empty", "prefix-only", "short", "long", "non-hex", "sha1"],
)
def test_malformed_pins_are_refused(text: str) -> None:
    with pytest.raises(PinError, match="64 hex digits"):
        normalise_pin(text)
    with pytest.raises(PinError):
        pins_match(text, SPKI_HEX)


def test_pins_match_detects_a_single_changed_digit() -> None:
    changed = SPKI_HEX[:-1] + ("0" if SPKI_HEX[-1] != "0" else "1")
    assert not pins_match(changed, SPKI_HEX)
    assert pins_match(SPKI_HEX, SPKI_HEX.upper())


def test_pin_text_groups_of_four_upper_case() -> None:
    text = pin_text(PIN_PREFIX + SPKI_HEX)
    groups = text.split(" ")
    assert len(groups) == 16
    assert "".join(groups) == SPKI_HEX.upper()
    assert pin_text(text) == text  # its own output is a valid pin spelling
