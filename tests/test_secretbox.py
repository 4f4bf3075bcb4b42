"""Passphrase boxes for secrets at rest (scrypt + ChaCha20-Poly1305)."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from rune_proto.secretbox import MAGIC, SecretBoxError, WrongPassphrase, open_secret, seal_secret

LOG_N = 10  # the smallest the format allows: keeps the tests fast
SECRET = bytes(range(128))
HEADER = struct.Struct(">8sBBB16s12s")


@pytest.fixture(scope="module")
def box() -> bytes:
    return seal_secret(SECRET, "correct horse", b"rune key alice@example.org", log_n=LOG_N)


def test_round_trip(box: bytes) -> None:
    assert open_secret(box, "correct horse", b"rune key alice@example.org") == SECRET


def test_layout_and_independent_decryption(box: bytes) -> None:
    """The documented layout, decrypted here with the primitives directly."""
    magic, log_n, r, p, salt, nonce = HEADER.unpack(box[: HEADER.size])
    assert (magic, log_n, r, p) == (MAGIC, LOG_N, 8, 1)
    assert len(box) == HEADER.size + len(SECRET) + 16
    key = Scrypt(salt=salt, length=32, n=1 << log_n, r=r, p=p).derive(b"correct horse")
    plain = ChaCha20Poly1305(key).decrypt(
        nonce, box[HEADER.size :], box[: HEADER.size] + b"rune key alice@example.org"
    )
    assert plain == SECRET


def test_secret_is_not_in_the_box_in_the_clear(box: bytes) -> None:
    assert SECRET not in box
    assert SECRET[:16] not in box


def test_each_seal_uses_fresh_salt_and_nonce() -> None:
    a = seal_secret(SECRET, "pw", b"c", log_n=LOG_N)
    b = seal_secret(SECRET, "pw", b"c", log_n=LOG_N)
    assert a != b
    assert HEADER.unpack(a[: HEADER.size])[4] != HEADER.unpack(b[: HEADER.size])[4]
    assert HEADER.unpack(a[: HEADER.size])[5] != HEADER.unpack(b[: HEADER.size])[5]


def test_wrong_passphrase(box: bytes) -> None:
    with pytest.raises(SecretBoxError, match="wrong passphrase"):
        open_secret(box, "Correct horse", b"rune key alice@example.org")


def test_wrong_context(box: bytes) -> None:
    with pytest.raises(SecretBoxError, match="wrong passphrase"):
        open_secret(box, "correct horse", b"rune key bob@example.org")


@pytest.mark.parametrize("index", [HEADER.size, -17, -1])
def test_tampered_ciphertext_or_tag(box: bytes, index: int) -> None:
    bad = bytearray(box)
    bad[index] ^= 1
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        open_secret(bytes(bad), "correct horse", b"rune key alice@example.org")


@pytest.mark.parametrize("field_index", [12, 20, 30])  # inside salt and nonce
def test_tampered_header_is_authenticated(box: bytes, field_index: int) -> None:
    bad = bytearray(box)
    bad[field_index] ^= 1
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        open_secret(bytes(bad), "correct horse", b"rune key alice@example.org")


def test_bad_magic(box: bytes) -> None:
    with pytest.raises(SecretBoxError, match="not a Rune secret box"):
        open_secret(b"RUNEBOX2" + box[8:], "correct horse", b"rune key alice@example.org")


@pytest.mark.parametrize("size", [0, 1, HEADER.size, HEADER.size + 15])
def test_truncated(box: bytes, size: int) -> None:
    with pytest.raises(SecretBoxError, match="truncated"):
        open_secret(box[:size], "correct horse", b"rune key alice@example.org")


@pytest.mark.parametrize(
    ("offset", "value"),
    [(8, 9), (8, 23), (8, 255), (9, 0), (9, 33), (10, 0), (10, 17)],
    ids=["log_n-9", "log_n-23", "log_n-255", "r-0", "r-33", "p-0", "p-17"],
)
def test_implausible_scrypt_parameters_are_refused_before_deriving(
    box: bytes, offset: int, value: int
) -> None:
    bad = bytearray(box)
    bad[offset] = value
    with pytest.raises(SecretBoxError, match="implausible scrypt parameters"):
        open_secret(bytes(bad), "correct horse", b"rune key alice@example.org")


def test_changed_but_plausible_parameters_fail_as_wrong_key(box: bytes) -> None:
    bad = bytearray(box)
    bad[8] = LOG_N + 1
    with pytest.raises(SecretBoxError, match="wrong passphrase"):
        open_secret(bytes(bad), "correct horse", b"rune key alice@example.org")


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(SecretBoxError, match="empty passphrase"):
        seal_secret(SECRET, "", b"c", log_n=LOG_N)


def test_sealing_with_implausible_log_n_is_refused() -> None:
    with pytest.raises(SecretBoxError, match="implausible scrypt parameters"):
        seal_secret(SECRET, "pw", b"c", log_n=9)


def test_unicode_passphrase_round_trip() -> None:
    box = seal_secret(b"k", "pässwörd ✓", b"c", log_n=LOG_N)
    assert open_secret(box, "pässwörd ✓", b"c") == b"k"
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        open_secret(box, "passwörd ✓", b"c")


def test_empty_secret_round_trip() -> None:
    box = seal_secret(b"", "pw", b"c", log_n=LOG_N)
    assert len(box) == HEADER.size + 16
    assert open_secret(box, "pw", b"c") == b""


def test_secret_box_error_is_a_value_error() -> None:
    assert issubclass(SecretBoxError, ValueError)
