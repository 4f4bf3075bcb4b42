"""Known-answer vectors (tests/vectors/*.json, made by tests/vectors/generate.py).

Every vector is checked against the library, and the formats (key layout, canonical
signed bytes, padding) are also rebuilt here by hand from the documented rules, so a
change to the library that keeps itself consistent but breaks the format still fails.
"""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from rune_proto import envelope, handshake, padding
from rune_proto.address import AddressError, parse_address
from rune_proto.encoding import b64decode
from rune_proto.keys import Identity, PublicKey
from rune_proto.suite import (
    CTX_CLIENT_MESSAGE,
    CTX_MESSAGE,
    CTX_REGISTER,
    CTX_REGISTER_ANSWER,
    CTX_STORED_MESSAGE,
    SUITE,
)

VECTORS = Path(__file__).parent / "vectors"


@cache
def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@cache
def identity(name: str) -> Identity:
    return Identity(bytes.fromhex(load("envelopes.json")["keys"][name]))


def derived_private(name: str) -> bytes:
    """The documented derivation of a vector key, rebuilt independently."""
    return b"".join(
        hashlib.sha256(f"rune/1 test vector {name} {i}".encode()).digest() for i in range(4)
    )


def by_hand(context: bytes, *fields: bytes) -> bytes:
    """The documented canonical encoding: u32 big-endian length before every field."""
    out = b""
    for f in (context, *fields):
        out += len(f).to_bytes(4, "big") + f
    return out


# --- addresses -----------------------------------------------------------------


@pytest.mark.parametrize("case", load("addresses.json")["valid"], ids=lambda c: c["input"])
def test_valid_address_vector_parses_to_its_canonical_form(case: dict[str, str]) -> None:
    address = parse_address(case["input"])
    assert str(address) == case["canonical"]
    assert address.encode() == case["canonical"].encode("ascii")
    assert case["canonical"] == case["input"].lower()


@pytest.mark.parametrize("case", load("addresses.json")["invalid"], ids=lambda c: repr(c["input"]))
def test_invalid_address_vector_raises_its_message(case: dict[str, str]) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(case["input"])
    assert case["error"] in str(info.value)


# --- keys ----------------------------------------------------------------------


@pytest.mark.parametrize("case", load("keys.json")["keys"], ids=lambda c: c["name"])
def test_key_vector_public_token_and_fingerprint(case: dict[str, str]) -> None:
    private = bytes.fromhex(case["private"])
    assert private == derived_private(case["name"])
    ident = Identity(private)
    assert ident.private_bytes() == private
    assert ident.public.token() == case["public_token"]
    assert ident.public.fingerprint().hex() == case["fingerprint"]
    assert ident.public.fingerprint_text() == case["fingerprint_text"]
    parsed = PublicKey.from_token(case["public_token"])
    assert parsed == ident.public


@pytest.mark.parametrize("case", load("keys.json")["keys"], ids=lambda c: c["name"])
def test_key_vector_layout_rebuilt_from_primitives(case: dict[str, str]) -> None:
    private = bytes.fromhex(case["private"])
    ed = ed25519.Ed25519PrivateKey.from_private_bytes(private[:32]).public_key()
    ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[32:96]).public_key()
    xx = x25519.X25519PrivateKey.from_private_bytes(private[96:]).public_key()
    raw = ed.public_bytes_raw() + ml.public_bytes_raw() + xx.public_bytes_raw()
    assert len(raw) == 1248
    assert raw[:32].hex() == case["ed25519_public"]
    assert raw[-32:].hex() == case["x25519_public"]
    assert hashlib.sha256(raw[32:-32]).hexdigest() == case["mlkem768_public_sha256"]
    token = case["public_token"]
    assert token.startswith("rune1pk.")
    assert b64decode(token.removeprefix("rune1pk.")) == raw
    digest = hashlib.sha256(raw).digest()
    assert digest.hex() == case["fingerprint"]
    groups = case["fingerprint_text"].split(" ")
    assert len(groups) == 16 and all(len(g) == 4 for g in groups)
    assert "".join(groups) == digest.hex().upper()


# --- padding -------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", load("padding.json")["padded_size"], ids=lambda c: str(c["length"])
)
def test_padded_size_vector(case: dict[str, int]) -> None:
    assert padding.padded_size(case["length"]) == case["padded"]
    if case["length"] <= 1 << 20:
        block = padding.pad(b"\xab" * case["length"])
        assert len(block) == case["padded"]
        assert block[:4] == struct.pack(">I", case["length"])
        assert padding.unpad(block) == b"\xab" * case["length"]


def test_padded_size_vectors_pin_the_fixed_16k_floor() -> None:
    doc = load("padding.json")
    assert doc["fixed_padded_size"] == padding.FIXED_PADDED_SIZE == 16384
    sizes = {c["length"]: c["padded"] for c in doc["padded_size"]}
    assert sizes[0] == sizes[1] == sizes[16380] == 16384
    assert sizes[16381] > 16384


@pytest.mark.parametrize("case", load("padding.json")["padme"], ids=lambda c: str(c["length"]))
def test_padme_vector(case: dict[str, int]) -> None:
    assert padding.padme(case["length"]) == case["padme"]


@pytest.mark.parametrize("length", load("padding.json")["invalid_lengths"])
def test_padded_size_vector_rejects_out_of_range(length: int) -> None:
    with pytest.raises(padding.PaddingError):
        padding.padded_size(length)


# --- canonical signed bytes ----------------------------------------------------


def _helper_bytes(case: dict[str, Any]) -> bytes:
    """Call the module's own helper with the vector's typed inputs."""
    i = case["inputs"]
    key = {n: identity(n).public for n in ("alice", "bob", "carol", "server")}
    helper = case["helper"]
    if helper == "envelope._message_signed_bytes":
        return envelope._message_signed_bytes(
            parse_address(i["sender"]),
            key[i["sender_key"]],
            parse_address(i["receiver"]),
            key[i["receiver_key"]],
            bytes.fromhex(i["message_id"]),
            struct.pack(">Q", i["sent_at_ms"]),
            i["content_json"].encode("utf-8"),
        )
    if helper == "envelope._client_signed_bytes":
        return envelope._client_signed_bytes(
            parse_address(i["sender"]),
            key[i["sender_key"]],
            parse_address(i["receiver"]),
            key[i["server_key"]],
            bytes.fromhex(i["sealed"]),
        )
    if helper == "envelope._stored_signed_bytes":
        return envelope._stored_signed_bytes(
            parse_address(i["receiver"]),
            key[i["receiver_key"]],
            parse_address(i["sender"]),
            i["received_at"].encode("ascii"),
            bytes.fromhex(i["sealed"]),
        )
    if helper == "handshake._challenge_signed":
        return handshake._challenge_signed(
            parse_address(i["address"]),
            key[i["client_key"]],
            key[i["server_key"]],
            bytes.fromhex(i["ciphertext"]),
        )
    if helper == "handshake._answer_signed":
        return handshake._answer_signed(
            parse_address(i["address"]),
            key[i["client_key"]],
            key[i["server_key"]],
            bytes.fromhex(i["nonce"]),
        )
    if helper == "handshake._login_signed":
        return handshake._login_signed(
            key[i["server_key"]], parse_address(i["address"]), bytes.fromhex(i["nonce"])
        )
    raise AssertionError(f"unknown helper {helper}")


def _fields_by_hand(case: dict[str, Any]) -> list[bytes]:
    """The fields each context signs, in the documented order, from the raw inputs."""
    i = case["inputs"]

    def a(text: str) -> bytes:
        return text.lower().encode("ascii")

    def k(name: str) -> bytes:
        return identity(name).public.raw

    match case["context"]:
        case "rune/1 message":
            return [
                a(i["sender"]),
                k(i["sender_key"]),
                a(i["receiver"]),
                k(i["receiver_key"]),
                bytes.fromhex(i["message_id"]),
                i["sent_at_ms"].to_bytes(8, "big"),
                i["content_json"].encode("utf-8"),
            ]
        case "rune/1 client-message":
            return [
                a(i["sender"]),
                k(i["sender_key"]),
                a(i["receiver"]),
                k(i["server_key"]),
                bytes.fromhex(i["sealed"]),
            ]
        case "rune/1 stored-message":
            return [
                a(i["receiver"]),
                k(i["receiver_key"]),
                a(i["sender"]),
                i["received_at"].encode("ascii"),
                hashlib.sha256(bytes.fromhex(i["sealed"])).digest(),
            ]
        case "rune/1 register" | "rune/1 register-answer":
            last = i["ciphertext"] if case["context"] == "rune/1 register" else i["nonce"]
            return [a(i["address"]), k(i["client_key"]), k(i["server_key"]), bytes.fromhex(last)]
        case "rune/1 login":
            return [k(i["server_key"]), a(i["address"]), bytes.fromhex(i["nonce"])]
    raise AssertionError(f"unknown context {case['context']}")


CANONICAL = load("canonical.json")["cases"]


def test_canonical_vectors_cover_every_context() -> None:
    assert {c["context"] for c in CANONICAL} == {
        "rune/1 message",
        "rune/1 client-message",
        "rune/1 stored-message",
        "rune/1 register",
        "rune/1 register-answer",
        "rune/1 login",
    }


@pytest.mark.parametrize("case", CANONICAL, ids=lambda c: c["context"])
def test_canonical_vector_matches_hand_built_bytes(case: dict[str, Any]) -> None:
    fields = [bytes.fromhex(f["hex"]) for f in case["fields"]]
    assert fields == _fields_by_hand(case)
    expected = bytes.fromhex(case["signed"])
    assert by_hand(case["context"].encode("ascii"), *fields) == expected
    # and the struct-based reading of the same rule, field by field
    pos = 0
    parts = []
    while pos < len(expected):
        (size,) = struct.unpack(">I", expected[pos : pos + 4])
        parts.append(expected[pos + 4 : pos + 4 + size])
        pos += 4 + size
    assert parts == [case["context"].encode("ascii"), *fields]


@pytest.mark.parametrize("case", CANONICAL, ids=lambda c: c["context"])
def test_canonical_vector_matches_module_helper(case: dict[str, Any]) -> None:
    assert _helper_bytes(case) == bytes.fromhex(case["signed"])


@pytest.mark.parametrize("case", CANONICAL, ids=lambda c: c["context"])
def test_canonical_vector_signature_is_deterministic_ed25519(case: dict[str, Any]) -> None:
    signer = identity(case["signer"])
    signed = bytes.fromhex(case["signed"])
    signature = bytes.fromhex(case["signature"])
    assert signer.sign(signed) == signature
    assert signer.public.verify(signature, signed)
    assert not signer.public.verify(signature, signed + b"\0")


# --- envelopes -----------------------------------------------------------------

ENV = load("envelopes.json")


def addr(text: str) -> Any:
    return parse_address(text)


def test_envelope_vector_keys_are_the_documented_keys() -> None:
    for name, private in ENV["keys"].items():
        assert bytes.fromhex(private) == derived_private(name)


def test_message_vector_opens_to_the_recorded_message() -> None:
    v = ENV["message"]
    sealed = b64decode(v["sealed"])
    opened = envelope.open_message(identity("bob"), addr(v["receiver"]), sealed)
    assert opened.verified and opened.problems == ()
    assert str(opened.sender) == v["sender"]
    assert opened.sender_key == identity("alice").public
    assert str(opened.receiver) == v["receiver"]
    assert opened.message_id == v["message_id"]
    assert opened.sent_at == datetime.fromisoformat(v["sent_at"])
    assert opened.sent_at.tzinfo is not None
    c = v["content"]
    assert opened.content.subject == c["subject"]
    assert opened.content.body == c["body"]
    assert opened.content.in_reply_to == c["in_reply_to"]
    assert [(a.filename, a.data.hex()) for a in opened.content.attachments] == [
        (a["filename"], a["data"]) for a in c["attachments"]
    ]
    assert opened.content.to_json() == v["content_json"].encode("utf-8")


def test_message_vector_plaintext_layout() -> None:
    """The HPKE plaintext is pad(lp(fields) ‖ signature), exactly as recorded."""
    v = ENV["message"]
    plaintext = SUITE.decrypt(b64decode(v["sealed"]), identity("bob").kem, info=CTX_MESSAGE)
    assert len(plaintext) == v["plaintext_length"] == 16384
    assert hashlib.sha256(plaintext).hexdigest() == v["plaintext_sha256"]
    when = v["sent_at_ms"].to_bytes(8, "big")
    body = by_hand(  # lp() of the fields: by_hand's "context" is just the first field
        v["sender"].encode(),
        identity("alice").public.raw,
        v["receiver"].encode(),
        bytes.fromhex(v["message_id"]),
        when,
        v["content_json"].encode("utf-8"),
    )
    expected = body + bytes.fromhex(v["signature"])
    assert plaintext[:4] == len(expected).to_bytes(4, "big")
    assert plaintext[4 : 4 + len(expected)] == expected
    assert not any(plaintext[4 + len(expected) :])


def test_message_vector_signature_is_a_true_kat() -> None:
    v = ENV["message"]
    signed = by_hand(
        CTX_MESSAGE,
        v["sender"].encode(),
        identity("alice").public.raw,
        v["receiver"].encode(),
        identity("bob").public.raw,
        bytes.fromhex(v["message_id"]),
        v["sent_at_ms"].to_bytes(8, "big"),
        v["content_json"].encode("utf-8"),
    )
    signature = bytes.fromhex(v["signature"])
    assert identity("alice").sign(signed) == signature
    assert identity("alice").public.verify(signature, signed)


def test_client_message_vector_opens_to_the_sealed_message() -> None:
    v = ENV["client_message"]
    inner = envelope.open_client_message(
        identity("server"),
        addr(v["sender"]),
        identity("alice").public,
        addr(v["receiver"]),
        b64decode(v["sealed"]),
    )
    assert inner == b64decode(ENV["message"]["sealed"])
    assert hashlib.sha256(inner).hexdigest() == v["inner_sealed_sha256"]


def test_client_message_vector_plaintext_and_signature() -> None:
    v = ENV["client_message"]
    plaintext = SUITE.decrypt(
        b64decode(v["sealed"]), identity("server").kem, info=CTX_CLIENT_MESSAGE
    )
    assert len(plaintext) == v["plaintext_length"]
    assert hashlib.sha256(plaintext).hexdigest() == v["plaintext_sha256"]
    sealed = b64decode(ENV["message"]["sealed"])
    signature = bytes.fromhex(v["signature"])
    assert plaintext == len(sealed).to_bytes(4, "big") + sealed + signature
    signed = by_hand(
        CTX_CLIENT_MESSAGE,
        v["sender"].encode(),
        identity("alice").public.raw,
        v["receiver"].encode(),
        identity("server").public.raw,
        sealed,
    )
    assert identity("alice").sign(signed) == signature


def test_stored_message_vector_opens_with_fixed_received_at() -> None:
    v = ENV["stored_message"]
    stored = envelope.open_stored_message(
        identity("bob"), addr(v["receiver"]), identity("server").public, b64decode(v["sealed"])
    )
    assert stored.server_signature_ok
    assert str(stored.sender) == v["sender"]
    assert stored.received_at == datetime.strptime(v["received_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    assert stored.sealed_message == b64decode(ENV["message"]["sealed"])
    opened = envelope.open_message(identity("bob"), addr(v["receiver"]), stored.sealed_message)
    assert opened.sender == stored.sender
    assert opened.message_id == ENV["message"]["message_id"]


def test_stored_message_vector_plaintext_layout_and_signature() -> None:
    v = ENV["stored_message"]
    plaintext = SUITE.decrypt(b64decode(v["sealed"]), identity("bob").kem, info=CTX_STORED_MESSAGE)
    assert len(plaintext) == v["plaintext_length"]
    assert hashlib.sha256(plaintext).hexdigest() == v["plaintext_sha256"]
    sealed = b64decode(ENV["message"]["sealed"])
    sender = v["sender"].encode()
    stamp = v["received_at"].encode()
    signature = bytes.fromhex(v["signature"])
    sender_field = bytes([len(sender)]) + sender + bytes(101 - len(sender))
    assert len(sender_field) == 102 and len(stamp) == 20
    assert plaintext == sender_field + stamp + len(sealed).to_bytes(4, "big") + sealed + signature
    signed = by_hand(
        CTX_STORED_MESSAGE,
        v["receiver"].encode(),
        identity("bob").public.raw,
        sender,
        stamp,
        hashlib.sha256(sealed).digest(),
    )
    assert identity("server").sign(signed) == signature


def test_registration_vector_challenge_opens_to_the_nonce() -> None:
    v = ENV["registration"]
    carol, server = identity("carol"), identity("server")
    challenge = b64decode(v["challenge"])
    nonce = bytes.fromhex(v["nonce"])
    assert len(challenge) == handshake.CHALLENGE_SIZE
    ciphertext, signature = challenge[:-64], challenge[-64:]
    assert SUITE.decrypt(ciphertext, carol.kem, info=CTX_REGISTER) == nonce
    assert signature.hex() == v["challenge_signature"]
    signed = by_hand(
        CTX_REGISTER, v["address"].encode(), carol.public.raw, server.public.raw, ciphertext
    )
    assert server.sign(signed) == signature  # deterministic given the ciphertext
    # the client accepts the recorded challenge and its fresh answer passes the server
    answer = handshake.answer_challenge(carol, addr(v["address"]), server.public, challenge)
    handshake.check_answer(server, addr(v["address"]), carol.public, nonce, answer)


def test_registration_vector_answer_proves_both_keys() -> None:
    v = ENV["registration"]
    carol, server = identity("carol"), identity("server")
    nonce = bytes.fromhex(v["nonce"])
    answer = b64decode(v["answer"])
    assert len(answer) == handshake.ANSWER_SIZE
    handshake.check_answer(server, addr(v["address"]), carol.public, nonce, answer)
    plaintext = SUITE.decrypt(answer, server.kem, info=CTX_REGISTER_ANSWER)
    assert len(plaintext) == v["plaintext_length"]
    assert hashlib.sha256(plaintext).hexdigest() == v["plaintext_sha256"]
    signature = bytes.fromhex(v["answer_signature"])
    assert plaintext == nonce + signature
    signed = by_hand(
        CTX_REGISTER_ANSWER, v["address"].encode(), carol.public.raw, server.public.raw, nonce
    )
    assert carol.sign(signed) == signature
    assert carol.public.verify(signature, signed)


def test_login_vector_proof_is_a_true_kat() -> None:
    v = ENV["login"]
    alice, server = identity("alice"), identity("server")
    nonce = bytes.fromhex(v["nonce"])
    proof = handshake.login_proof(alice, addr(v["address"]), server.public, nonce)
    assert proof.hex() == v["proof"]
    assert handshake.check_login_proof(
        alice.public, addr(v["address"]), server.public, nonce, proof
    )
    signed = by_hand(b"rune/1 login", server.public.raw, v["address"].encode(), nonce)
    assert alice.public.verify(proof, signed)
