"""rune/1 identities and public keys: token encoding, exact lengths, secrecy."""

from __future__ import annotations

import copy
import hashlib
import pickle

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from rune_proto.encoding import b64encode
from rune_proto.keys import (
    PRIVATE_KEY_SIZE,
    PUBLIC_KEY_PREFIX,
    PUBLIC_KEY_SIZE,
    Identity,
    InvalidKey,
    PublicKey,
    fingerprint_text,
)

IDENTITY = Identity(hashlib.sha512(b"alice").digest() * 2)
PUBLIC = IDENTITY.public


def test_sizes_match_the_documented_layout() -> None:
    assert PUBLIC_KEY_SIZE == 32 + 1184 + 32 == 1248
    assert PRIVATE_KEY_SIZE == 32 + 64 + 32 == 128
    assert len(PUBLIC.raw) == PUBLIC_KEY_SIZE
    assert len(IDENTITY.private_bytes()) == PRIVATE_KEY_SIZE


def test_generate_gives_distinct_usable_identities() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a.public != b.public
    assert a.private_bytes() != b.private_bytes()
    signature = a.sign(b"hello")
    assert a.public.verify(signature, b"hello")
    assert not b.public.verify(signature, b"hello")


def test_private_bytes_round_trip() -> None:
    fresh = Identity.generate()
    again = Identity(fresh.private_bytes())
    assert again.public == fresh.public
    assert again.private_bytes() == fresh.private_bytes()


def test_private_layout_is_ed25519_seed_mlkem_seed_x25519() -> None:
    private = IDENTITY.private_bytes()
    ed = ed25519.Ed25519PrivateKey.from_private_bytes(private[:32])
    ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[32:96])
    xx = x25519.X25519PrivateKey.from_private_bytes(private[96:])
    assert PUBLIC.raw == (
        ed.public_key().public_bytes_raw()
        + ml.public_key().public_bytes_raw()
        + xx.public_key().public_bytes_raw()
    )


@pytest.mark.parametrize("size", [0, 127, 129, 96])
def test_private_key_of_wrong_length(size: int) -> None:
    with pytest.raises(InvalidKey, match="128 bytes"):
        Identity(bytes(size))


def test_token_round_trip() -> None:
    token = PUBLIC.token()
    assert token.startswith(PUBLIC_KEY_PREFIX)
    assert token == "rune1pk." + b64encode(PUBLIC.raw)
    assert "=" not in token and "+" not in token and "/" not in token
    parsed = PublicKey.from_token(token)
    assert parsed == PUBLIC
    assert parsed.raw == PUBLIC.raw
    assert hash(parsed) == hash(PUBLIC)
    assert PublicKey.from_bytes(PUBLIC.raw) == PUBLIC


def test_parsed_key_verifies_and_encrypts_like_the_original() -> None:
    from rune_proto.suite import SUITE

    parsed = PublicKey.from_token(PUBLIC.token())
    assert parsed.verify(IDENTITY.sign(b"m"), b"m")
    sealed = SUITE.encrypt(b"secret", parsed.kem, info=b"t")
    assert SUITE.decrypt(sealed, IDENTITY.kem, info=b"t") == b"secret"


@pytest.mark.parametrize("prefix", ["", "rune2pk.", "RUNE1PK.", "rune1pk", "rune1sk.", " rune1pk."])
def test_wrong_prefix(prefix: str) -> None:
    with pytest.raises(InvalidKey, match=r"starts with 'rune1pk\.'"):
        PublicKey.from_token(prefix + b64encode(PUBLIC.raw))


@pytest.mark.parametrize("size", [0, 32, 1216, 1247])
def test_wrong_length_token(size: int) -> None:
    with pytest.raises(InvalidKey, match=f"1248 bytes, not {size}"):
        PublicKey.from_token(PUBLIC_KEY_PREFIX + b64encode(bytes(size)))


@pytest.mark.parametrize("size", [1249, 1251, 4096])
def test_overlong_token_is_refused_before_decoding(size: int) -> None:
    with pytest.raises(InvalidKey):
        PublicKey.from_token(PUBLIC_KEY_PREFIX + b64encode(bytes(size)))


@pytest.mark.parametrize("size", [0, 1247, 1249])
def test_wrong_length_bytes(size: int) -> None:
    with pytest.raises(InvalidKey, match=f"not {size}"):
        PublicKey.from_bytes(bytes(size))


@pytest.mark.parametrize(
    "body",
    [
        "!" + b64encode(PUBLIC.raw)[1:],
        b64encode(PUBLIC.raw) + "=",
        b64encode(PUBLIC.raw)[:-1] + "/",
        b64encode(PUBLIC.raw)[:-1] + "+",
        b64encode(PUBLIC.raw)[:100] + " " + b64encode(PUBLIC.raw)[101:],
        b64encode(PUBLIC.raw)[:-1] + "é",
        b64encode(PUBLIC.raw)[:-1],  # length ≡ 1 mod 4 is never valid base64
    ],
    ids=["bang", "padding", "slash", "plus", "space", "non-ascii", "bad-tail-length"],
)
def test_bad_base64(body: str) -> None:
    with pytest.raises(InvalidKey, match="public key token"):
        PublicKey.from_token(PUBLIC_KEY_PREFIX + body)


def test_non_canonical_base64_tail_is_refused() -> None:
    token = b64encode(PUBLIC.raw)  # 1248 bytes → 1664 chars, no spare bits; make one
    raw = PUBLIC.raw[:-1]  # 1247 bytes → 1663 chars, the last carries 2 unused bits
    text = b64encode(raw)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(text[-1])
    tweaked = text[:-1] + alphabet[last | 1]
    assert tweaked != text and len(token) == 1664
    with pytest.raises(InvalidKey, match="non-canonical"):
        PublicKey.from_token(PUBLIC_KEY_PREFIX + tweaked)


def test_invalid_mlkem_point() -> None:
    """ML-KEM coefficients must be < q = 3329; all-ones 12-bit values are 4095."""
    raw = PUBLIC.raw[:32] + b"\xff" * 1184 + PUBLIC.raw[-32:]
    with pytest.raises(InvalidKey, match="invalid point"):
        PublicKey.from_bytes(raw)
    with pytest.raises(InvalidKey, match="invalid point"):
        PublicKey.from_token(PUBLIC_KEY_PREFIX + b64encode(raw))


def test_fingerprint_is_sha256_of_the_public_bytes() -> None:
    digest = hashlib.sha256(PUBLIC.raw).digest()
    assert PUBLIC.fingerprint() == digest
    text = PUBLIC.fingerprint_text()
    assert text == fingerprint_text(digest)
    groups = text.split(" ")
    assert len(groups) == 16
    assert all(len(g) == 4 and g == g.upper() for g in groups)
    assert "".join(groups).lower() == digest.hex()


def test_fingerprint_text_format() -> None:
    assert fingerprint_text(bytes.fromhex("3f2a91c0")) == "3F2A 91C0"
    assert fingerprint_text(b"") == ""


def test_public_key_equality_is_byte_equality() -> None:
    other = Identity(hashlib.sha512(b"bob").digest() * 2).public
    assert other != PUBLIC
    assert PublicKey.from_bytes(bytes(PUBLIC.raw)) == PUBLIC
    assert len({PUBLIC, PublicKey.from_bytes(PUBLIC.raw), other}) == 2


def test_verify_rejects_wrong_length_signatures() -> None:
    signature = IDENTITY.sign(b"m")
    assert PUBLIC.verify(signature, b"m")
    assert not PUBLIC.verify(signature[:-1], b"m")
    assert not PUBLIC.verify(signature + b"\0", b"m")
    assert not PUBLIC.verify(b"", b"m")
    assert not PUBLIC.verify(signature, b"n")


def test_identity_is_not_picklable() -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="never pickled"):
            pickle.dumps(IDENTITY, protocol=protocol)
    with pytest.raises(TypeError):
        copy.copy(IDENTITY)
    with pytest.raises(TypeError):
        copy.deepcopy(IDENTITY)


def test_identity_has_no_instance_dict() -> None:
    with pytest.raises(AttributeError):
        IDENTITY.__dict__  # noqa: B018
    with pytest.raises(AttributeError):
        IDENTITY.extra = 1  # type: ignore[attr-defined]


def _secret_renderings(identity: Identity) -> list[str]:
    private = identity.private_bytes()
    out = []
    for part in (private, private[:32], private[32:96], private[96:]):
        out += [part.hex(), part.hex().upper(), b64encode(part), repr(part)[2:-1]]
    # and any 8-byte window of the private key, in hex
    out += [private[i : i + 8].hex() for i in range(0, len(private) - 8, 8)]
    return out


def test_repr_and_str_reveal_nothing_secret() -> None:
    for rendering in (repr(IDENTITY), str(IDENTITY), f"{IDENTITY}", repr([IDENTITY])):
        assert rendering.startswith(("Identity(PublicKey(", "[Identity(PublicKey("))
        low = rendering.lower()
        for secret in _secret_renderings(IDENTITY):
            assert secret.lower() not in low


def test_repr_shows_the_fingerprint_prefix() -> None:
    assert PUBLIC.fingerprint_text()[:19] in repr(IDENTITY)
    assert repr(PUBLIC) == f"PublicKey({PUBLIC.fingerprint_text()[:19]}…)"


def test_public_key_repr_does_not_dump_key_material() -> None:
    assert len(repr(PUBLIC)) < 40
    assert b64encode(PUBLIC.raw)[:16] not in repr(PUBLIC)
