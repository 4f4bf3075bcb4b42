"""Negative tests for every envelope: each failure is an EnvelopeError with a reason.

Nothing else may escape: not InvalidTag, not a bare ValueError, not RecursionError.
``raises_envelope_error`` insists on the exact type, so a foreign exception fails.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rune_proto import envelope, handshake
from rune_proto.address import Address, parse_address
from rune_proto.encoding import b64encode, lp
from rune_proto.envelope import (
    Attachment,
    Content,
    open_client_message,
    open_message,
    open_stored_message,
    seal_client_message,
    seal_message,
    seal_stored_message,
)
from rune_proto.keys import Identity
from rune_proto.padding import pad
from rune_proto.suite import (
    AEAD_TAG_SIZE,
    CTX_CLIENT_MESSAGE,
    CTX_MESSAGE,
    CTX_REGISTER,
    CTX_STORED_MESSAGE,
    KEM_ENC_SIZE,
    SUITE,
    EnvelopeError,
    seal,
)


def _private(name: str) -> bytes:
    return b"".join(
        hashlib.sha256(f"rune/1 test vector {name} {i}".encode()).digest() for i in range(4)
    )


ALICE_ID, BOB_ID, CAROL_ID, SERVER_ID, MALLORY_ID = (
    Identity(_private(n)) for n in ("alice", "bob", "carol", "server", "mallory")
)
ALICE = parse_address("alice@example.org")
BOB = parse_address("bob@example.org")
CAROL = parse_address("carol@example.org")
MALLORY = parse_address("mallory@example.org")
CONTENT = Content(
    "Lunch?",
    "Tomorrow at noon.",
    (Attachment("map.png", b"\x89PNG fake"),),
    in_reply_to="5b0e4a528b1e4f379c550d6a4e2f1c3b",
)
RECEIVED_AT = datetime(2026, 11, 29, 14, 50, 37, tzinfo=UTC)
NONCE = bytes(range(32))


@contextmanager
def raises_envelope_error(*reason_parts: str) -> Iterator[None]:
    """Exactly EnvelopeError (no other exception type), whose reason names the problem."""
    try:
        yield
    except EnvelopeError as exc:
        assert type(exc) is EnvelopeError
        assert exc.reason == str(exc) and exc.reason
        for part in reason_parts:
            assert part in exc.reason, (part, exc.reason)
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__} escaped instead of EnvelopeError: {exc}")
    else:
        pytest.fail("no EnvelopeError raised")


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


# --- one sealed instance of every envelope, and how its receiver opens it ------


def sealed_message(**kw: object) -> bytes:
    return seal_message(ALICE, ALICE_ID, BOB, BOB_ID.public, CONTENT, **kw)  # type: ignore[arg-type]


MESSAGE = sealed_message()
CLIENT = seal_client_message(ALICE, ALICE_ID, BOB, SERVER_ID.public, MESSAGE)
STORED = seal_stored_message(SERVER_ID, BOB, BOB_ID.public, ALICE, MESSAGE, RECEIVED_AT)
CHALLENGE = handshake.make_challenge(SERVER_ID, CAROL, CAROL_ID.public, NONCE)
ANSWER = handshake.answer_challenge(CAROL_ID, CAROL, SERVER_ID.public, CHALLENGE)


def open_msg(blob: bytes) -> object:
    return open_message(BOB_ID, BOB, blob)


def open_client(blob: bytes) -> object:
    return open_client_message(SERVER_ID, ALICE, ALICE_ID.public, BOB, blob)


def open_stored(blob: bytes) -> object:
    return open_stored_message(BOB_ID, BOB, SERVER_ID.public, blob)


def open_challenge(blob: bytes) -> object:
    return handshake.answer_challenge(CAROL_ID, CAROL, SERVER_ID.public, blob)


def open_answer(blob: bytes) -> object:
    return handshake.check_answer(SERVER_ID, CAROL, CAROL_ID.public, NONCE, blob)


ENVELOPES: dict[str, tuple[bytes, Callable[[bytes], object]]] = {
    "message": (MESSAGE, open_msg),
    "client-message": (CLIENT, open_client),
    "stored-message": (STORED, open_stored),
    "challenge": (CHALLENGE, open_challenge),
    "answer": (ANSWER, open_answer),
}


def test_every_envelope_opens_untouched() -> None:
    """The baseline: without tampering, each opener succeeds (so the failures below mean it)."""
    assert open_message(BOB_ID, BOB, MESSAGE).verified
    assert open_client(CLIENT) == MESSAGE
    assert open_stored_message(BOB_ID, BOB, SERVER_ID.public, STORED).server_signature_ok
    handshake.check_answer(SERVER_ID, CAROL, CAROL_ID.public, NONCE, ANSWER)


def _regions(name: str, size: int) -> dict[str, list[int]]:
    """Byte positions in each region: KEM enc (ML-KEM part, X25519 part), body, tag."""
    hpke_end = size - 64 if name == "challenge" else size  # challenge = hpke ‖ signature
    regions = {
        "kem-enc-mlkem": [0, 543, 1087],
        "kem-enc-x25519": [1088, 1119],
        "ciphertext-body": [KEM_ENC_SIZE, (KEM_ENC_SIZE + hpke_end - 16) // 2, hpke_end - 17],
        "tag": [hpke_end - AEAD_TAG_SIZE, hpke_end - 1],
    }
    if name == "challenge":
        regions["server-signature"] = [size - 64, size - 1]
    return regions


FLIP_CASES = [
    (name, region, index)
    for name, (blob, _) in ENVELOPES.items()
    for region, indexes in _regions(name, len(blob)).items()
    for index in indexes
]


@pytest.mark.parametrize(
    ("name", "region", "index"), FLIP_CASES, ids=[f"{n}-{r}-{i}" for n, r, i in FLIP_CASES]
)
def test_flipping_one_byte_in_any_region_is_an_envelope_error(
    name: str, region: str, index: int
) -> None:
    blob, opener = ENVELOPES[name]
    for mask in (0x01, 0x80):
        with raises_envelope_error():
            opener(flip(blob, index, mask))


@pytest.mark.parametrize("name", list(ENVELOPES))
def test_truncated_by_one_byte_is_an_envelope_error(name: str) -> None:
    blob, opener = ENVELOPES[name]
    with raises_envelope_error():
        opener(blob[:-1])
    with raises_envelope_error():
        opener(blob[1:])


@pytest.mark.parametrize("name", list(ENVELOPES))
def test_extended_by_one_byte_is_an_envelope_error(name: str) -> None:
    blob, opener = ENVELOPES[name]
    with raises_envelope_error():
        opener(blob + b"\0")
    with raises_envelope_error():
        opener(b"\0" + blob)


@pytest.mark.parametrize("name", list(ENVELOPES))
@pytest.mark.parametrize("size", [0, 1, KEM_ENC_SIZE, KEM_ENC_SIZE + AEAD_TAG_SIZE - 1])
def test_short_blobs_are_an_envelope_error(name: str, size: int) -> None:
    _, opener = ENVELOPES[name]
    with raises_envelope_error():
        opener(bytes(size))


# --- wrong keys ------------------------------------------------------------------


def test_message_for_bob_does_not_open_with_carols_key() -> None:
    with raises_envelope_error("does not open"):
        open_message(CAROL_ID, BOB, MESSAGE)
    with raises_envelope_error("does not open"):
        open_message(CAROL_ID, CAROL, MESSAGE)


def test_client_message_does_not_open_with_another_server_key() -> None:
    with raises_envelope_error("does not open"):
        open_client_message(MALLORY_ID, ALICE, ALICE_ID.public, BOB, CLIENT)


def test_stored_message_does_not_open_with_another_receiver_key() -> None:
    with raises_envelope_error("does not open"):
        open_stored_message(CAROL_ID, BOB, SERVER_ID.public, STORED)


def test_challenge_for_carol_is_refused_by_another_client_key() -> None:
    with raises_envelope_error("signature on the challenge"):
        handshake.answer_challenge(MALLORY_ID, CAROL, SERVER_ID.public, CHALLENGE)


def test_answer_does_not_open_with_another_server_key() -> None:
    with raises_envelope_error("does not open"):
        handshake.check_answer(MALLORY_ID, CAROL, CAROL_ID.public, NONCE, ANSWER)


def test_open_client_message_with_wrong_sender_key() -> None:
    with raises_envelope_error("sender's signature on the client message"):
        open_client_message(SERVER_ID, ALICE, MALLORY_ID.public, BOB, CLIENT)


def test_client_message_signed_by_someone_else_for_alice() -> None:
    """Mallory wraps a message claiming to be alice: the server checks alice's key."""
    forged = seal_client_message(ALICE, MALLORY_ID, BOB, SERVER_ID.public, MESSAGE)
    with raises_envelope_error("sender's signature"):
        open_client(forged)


def test_stored_message_signed_by_another_server_key() -> None:
    forged = seal_stored_message(MALLORY_ID, BOB, BOB_ID.public, ALICE, MESSAGE, RECEIVED_AT)
    with raises_envelope_error("server's signature"):
        open_stored(forged)
    lax = open_stored_message(BOB_ID, BOB, SERVER_ID.public, forged, strict=False)
    assert lax.server_signature_ok is False


# --- swapped addresses -----------------------------------------------------------


def _bobs_plaintext() -> bytes:
    return SUITE.decrypt(MESSAGE, BOB_ID.kem, info=CTX_MESSAGE)


def test_surreptitious_forwarding_is_detected() -> None:
    """Davis 2001: bob re-seals alice's signed message to carol, unchanged inside."""
    forwarded = seal(CAROL_ID.public.kem, _bobs_plaintext(), CTX_MESSAGE)
    with raises_envelope_error("addressed to bob@example.org, not to carol@example.org"):
        open_message(CAROL_ID, CAROL, forwarded)
    lax = open_message(CAROL_ID, CAROL, forwarded, strict=False)
    assert not lax.verified
    assert any("addressed to bob@example.org" in p for p in lax.problems)
    # the signature also binds bob's key, so it cannot verify against carol's either
    assert "sender's signature does not verify" in lax.problems
    assert lax.receiver == BOB
    assert lax.sender == ALICE
    assert lax.content == CONTENT


def test_opening_for_the_wrong_receiver_address_is_detected() -> None:
    with raises_envelope_error("addressed to bob@example.org, not to carol@example.org"):
        open_message(BOB_ID, CAROL, MESSAGE)
    lax = open_message(BOB_ID, CAROL, MESSAGE, strict=False)
    assert lax.problems == ("message was addressed to bob@example.org, not to carol@example.org",)


def test_message_naming_a_different_receiver_is_detected_even_if_correctly_signed() -> None:
    """Alice signs a message naming carol but seals it to bob: bob sees the mismatch."""
    misaddressed = seal_message(ALICE, ALICE_ID, CAROL, BOB_ID.public, CONTENT)
    with raises_envelope_error("addressed to carol@example.org"):
        open_msg(misaddressed)
    lax = open_message(BOB_ID, BOB, misaddressed, strict=False)
    assert lax.receiver == CAROL
    # the signature covered bob's key, so only the address is wrong
    assert lax.problems == ("message was addressed to carol@example.org, not to bob@example.org",)


def test_message_whose_signature_covers_another_receiver_key() -> None:
    """Signed for carol's key but sealed to bob (and naming bob): the key swap is caught."""
    when = struct.pack(">Q", 1_790_000_000_000)
    mid = bytes(16)
    cj = CONTENT.to_json()
    sig = ALICE_ID.sign(
        envelope._message_signed_bytes(ALICE, ALICE_ID.public, BOB, CAROL_ID.public, mid, when, cj)
    )
    body = lp(ALICE.encode(), ALICE_ID.public.raw, BOB.encode(), mid, when, cj)
    blob = seal(BOB_ID.public.kem, pad(body + sig), CTX_MESSAGE)
    with raises_envelope_error("sender's signature does not verify"):
        open_msg(blob)
    assert open_message(BOB_ID, BOB, blob, strict=False).problems == (
        "sender's signature does not verify",
    )


@pytest.mark.parametrize(
    ("sender", "receiver"), [(BOB, ALICE), (ALICE, CAROL), (CAROL, BOB)], ids=str
)
def test_client_message_with_swapped_addresses(sender: Address, receiver: Address) -> None:
    with raises_envelope_error("sender's signature on the client message"):
        open_client_message(SERVER_ID, sender, ALICE_ID.public, receiver, CLIENT)


def test_stored_message_opened_for_another_receiver_address() -> None:
    with raises_envelope_error("server's signature"):
        open_stored_message(BOB_ID, CAROL, SERVER_ID.public, STORED)


def test_challenge_for_another_address_is_refused() -> None:
    with raises_envelope_error("signature on the challenge"):
        handshake.answer_challenge(CAROL_ID, MALLORY, SERVER_ID.public, CHALLENGE)


def test_answer_for_another_address_is_refused() -> None:
    with raises_envelope_error("client's signature"):
        handshake.check_answer(SERVER_ID, MALLORY, CAROL_ID.public, NONCE, ANSWER)


# --- server-asserted sender, server signature, replays ---------------------------


def test_stored_sender_differing_from_inner_signer_is_detectable() -> None:
    """A server that claims carol sent alice's message: the two senders disagree."""
    lying = seal_stored_message(SERVER_ID, BOB, BOB_ID.public, CAROL, MESSAGE, RECEIVED_AT)
    stored = open_stored(lying)
    assert isinstance(stored, envelope.StoredMessage)
    assert stored.server_signature_ok  # the server did sign its (false) claim
    opened = open_message(BOB_ID, BOB, stored.sealed_message)
    assert stored.sender == CAROL
    assert opened.sender == ALICE
    assert stored.sender != opened.sender
    honest = open_stored(STORED)
    assert isinstance(honest, envelope.StoredMessage)
    assert honest.sender == open_message(BOB_ID, BOB, honest.sealed_message).sender


def _stored_plaintext(
    sender: bytes, stamp: bytes, sealed: bytes, signature: bytes, *, length: int | None = None
) -> bytes:
    field = bytes([len(sender) if length is None else length]) + sender.ljust(101, b"\0")
    return field + stamp + lp(sealed) + signature


def test_tampered_server_signature() -> None:
    stamp = envelope.format_timestamp(RECEIVED_AT).encode()
    good = SERVER_ID.sign(envelope._stored_signed_bytes(BOB, BOB_ID.public, ALICE, stamp, MESSAGE))
    for index in (0, 31, 63):
        blob = seal(
            BOB_ID.public.kem,
            _stored_plaintext(ALICE.encode(), stamp, MESSAGE, flip(good, index)),
            CTX_STORED_MESSAGE,
        )
        with raises_envelope_error("server's signature on the stored message does not verify"):
            open_stored(blob)
        lax = open_stored_message(BOB_ID, BOB, SERVER_ID.public, blob, strict=False)
        assert lax.server_signature_ok is False
        assert lax.sealed_message == MESSAGE
    # control: the same construction with the untouched signature verifies
    blob = seal(
        BOB_ID.public.kem,
        _stored_plaintext(ALICE.encode(), stamp, MESSAGE, good),
        CTX_STORED_MESSAGE,
    )
    stored = open_stored(blob)
    assert isinstance(stored, envelope.StoredMessage) and stored.server_signature_ok


def test_server_signature_covers_the_received_time_and_the_inner_message() -> None:
    stamp = envelope.format_timestamp(RECEIVED_AT).encode()
    good = SERVER_ID.sign(envelope._stored_signed_bytes(BOB, BOB_ID.public, ALICE, stamp, MESSAGE))
    other_stamp = b"2026-11-29T14:50:38Z"
    other_message = sealed_message()
    for plaintext in (
        _stored_plaintext(ALICE.encode(), other_stamp, MESSAGE, good),
        _stored_plaintext(ALICE.encode(), stamp, other_message, good),
        _stored_plaintext(CAROL.encode(), stamp, MESSAGE, good),
    ):
        with raises_envelope_error("server's signature"):
            open_stored(seal(BOB_ID.public.kem, plaintext, CTX_STORED_MESSAGE))


@pytest.mark.parametrize(
    ("plaintext", "reason"),
    [
        (
            _stored_plaintext(b"alice@example.org", b"2026-11-29 14:50:37Z", MESSAGE, bytes(64)),
            "timestamp",
        ),
        (_stored_plaintext(b"alice@example.org", b"\xff" * 20, MESSAGE, bytes(64)), "timestamp"),
        (
            _stored_plaintext(b"alice@example.org", b"2026-13-29T14:50:37Z", MESSAGE, bytes(64)),
            "timestamp",
        ),
        (
            _stored_plaintext(
                b"alice@example.org", b"2026-11-29T14:50:37Z", MESSAGE, bytes(64), length=200
            ),
            "sender field",
        ),
        (
            _stored_plaintext(
                b"alice@example.org", b"2026-11-29T14:50:37Z", MESSAGE, bytes(64), length=5
            ),
            "sender field",
        ),
        (
            _stored_plaintext(b"al ce@example.org", b"2026-11-29T14:50:37Z", MESSAGE, bytes(64)),
            "sender address is malformed",
        ),
        (
            _stored_plaintext(
                b"\xffalice@example.org", b"2026-11-29T14:50:37Z", MESSAGE, bytes(64)
            ),
            "sender address is malformed",
        ),
        (
            _stored_plaintext(b"alice@example.org", b"2026-11-29T14:50:37Z", MESSAGE, bytes(63)),
            "cannot be",
        ),
        (
            _stored_plaintext(b"alice@example.org", b"2026-11-29T14:50:37Z", MESSAGE, bytes(65)),
            "cannot be",
        ),
        (b"\x05", "cannot be"),
        (
            _stored_plaintext(
                b"alice@example.org", b"2026-11-29T14:50:37Z", MESSAGE, bytes(64)
            ).replace(struct.pack(">I", len(MESSAGE)), struct.pack(">I", len(MESSAGE) + 64), 1),
            "malformed",
        ),
        (
            _stored_plaintext(
                b"alice@example.org", b"2026-11-29T14:50:37Z", MESSAGE, bytes(64)
            ).replace(struct.pack(">I", len(MESSAGE)), struct.pack(">I", len(MESSAGE) - 64), 1),
            "malformed",
        ),
    ],
    ids=[
        "space-in-stamp",
        "binary-stamp",
        "month-13",
        "sender-length-too-big",
        "sender-filler-not-zero",
        "sender-bad-address",
        "sender-not-ascii",
        "short-signature",
        "long-signature",
        "one-byte",
        "inner-length-too-long",
        "inner-length-too-short",
    ],
)
def test_malformed_stored_message_plaintext(plaintext: bytes, reason: str) -> None:
    blob = seal(BOB_ID.public.kem, plaintext, CTX_STORED_MESSAGE)
    with raises_envelope_error(reason):
        open_stored_message(BOB_ID, BOB, SERVER_ID.public, blob, strict=False)


def test_replayed_message_id_is_detectable() -> None:
    """The server (or anyone holding the blob) delivers the same message twice."""
    first = open_stored(
        seal_stored_message(SERVER_ID, BOB, BOB_ID.public, ALICE, MESSAGE, RECEIVED_AT)
    )
    replay = open_stored(seal_stored_message(SERVER_ID, BOB, BOB_ID.public, ALICE, MESSAGE))
    assert isinstance(first, envelope.StoredMessage)
    assert isinstance(replay, envelope.StoredMessage)
    a = open_message(BOB_ID, BOB, first.sealed_message)
    b = open_message(BOB_ID, BOB, replay.sealed_message)
    assert a.verified and b.verified
    assert a.message_id == b.message_id
    seen = {a.message_id}
    assert b.message_id in seen
    # while a fresh message from the same sender gets a fresh id
    fresh = open_message(BOB_ID, BOB, sealed_message())
    assert fresh.message_id not in seen
    assert len(bytes.fromhex(fresh.message_id)) == envelope.MESSAGE_ID_SIZE


def test_replayed_message_id_survives_resealing_by_the_sender() -> None:
    """Even re-encrypted (new HPKE ciphertext), a replay carries the same signed id."""
    mid = bytes.fromhex("00112233445566778899aabbccddeeff")
    one = sealed_message(message_id=mid, sent_at_ms=1_790_000_000_000)
    two = sealed_message(message_id=mid, sent_at_ms=1_790_000_000_000)
    assert one != two  # HPKE is randomized
    assert open_msg(one).message_id == open_msg(two).message_id == mid.hex()  # type: ignore[attr-defined]


# --- crafted MESSAGE plaintexts (the sender controls everything inside) ---------


def craft_message(
    content_json: bytes = b'{"subject":"s","body":"b"}',
    *,
    sender: bytes = b"alice@example.org",
    receiver: bytes = b"bob@example.org",
    mid: bytes = bytes(16),
    when: bytes = struct.pack(">Q", 1_790_000_000_000),
    sign: bool = True,
    key: bytes | None = None,
    extra: bytes = b"",
) -> bytes:
    """A MESSAGE body built by hand (and correctly signed by alice, unless told not to)."""
    key_raw = ALICE_ID.public.raw if key is None else key
    fields = lp(sender, key_raw, receiver, mid, when, content_json) + extra
    signature = bytes(64)
    if sign:
        signature = ALICE_ID.sign(
            lp(CTX_MESSAGE, sender, key_raw, receiver, BOB_ID.public.raw, mid, when, content_json)
        )
    return fields + signature


def seal_body(body: bytes) -> bytes:
    return seal(BOB_ID.public.kem, pad(body), CTX_MESSAGE)


def test_crafted_message_control_opens() -> None:
    opened = open_msg(seal_body(craft_message()))
    assert isinstance(opened, envelope.OpenedMessage)
    assert opened.verified and opened.content == Content("s", "b")


def test_padding_with_non_zero_filler() -> None:
    block = bytearray(pad(craft_message()))
    block[-1] = 1
    with raises_envelope_error("padding bytes are not zero"):
        open_msg(seal(BOB_ID.public.kem, bytes(block), CTX_MESSAGE))


@pytest.mark.parametrize(
    ("delta", "reason"),
    [(-1, "cannot be"), (1, "cannot be"), (16384, "wrong size"), (17408 - 16384, "wrong size")],
)
def test_padding_with_wrong_block_size(delta: int, reason: str) -> None:
    """Sizes pad() never makes are refused before decrypting; valid sizes by unpad()."""
    block = pad(craft_message())
    block = block[:delta] if delta < 0 else block + bytes(delta)
    with raises_envelope_error(reason):
        open_msg(seal(BOB_ID.public.kem, block, CTX_MESSAGE))


def test_padding_declaring_more_than_the_block_holds() -> None:
    block = bytearray(pad(craft_message()))
    block[:4] = struct.pack(">I", 16381)
    with raises_envelope_error("wrong size"):
        open_msg(seal(BOB_ID.public.kem, bytes(block), CTX_MESSAGE))


def test_unpadded_plaintext_is_refused() -> None:
    with raises_envelope_error("cannot be"):
        open_msg(seal(BOB_ID.public.kem, craft_message(), CTX_MESSAGE))


MALFORMED_CONTENT = {
    "not-json": b"subject: hello",
    "invalid-utf8": b'{"subject":"\xff","body":"b"}',
    "array": b'["subject","body"]',
    "string": b'"hello"',
    "null": b"null",
    "missing-subject": b'{"body":"b"}',
    "missing-body": b'{"subject":"s"}',
    "subject-number": b'{"subject":1,"body":"b"}',
    "body-list": b'{"subject":"s","body":["b"]}',
    "in-reply-to-number": b'{"subject":"s","body":"b","in_reply_to":5}',
    "attachments-not-list": b'{"subject":"s","body":"b","attachments":7}',
    "attachment-not-object": b'{"subject":"s","body":"b","attachments":[[1,2]]}',
    "attachment-missing-data": b'{"subject":"s","body":"b","attachments":[{"filename":"x"}]}',
    "attachment-bad-base64": b'{"subject":"s","body":"b","attachments":'
    b'[{"filename":"x","data":"a+b/"}]}',
    "attachment-padded-base64": b'{"subject":"s","body":"b","attachments":'
    b'[{"filename":"x","data":"YQ=="}]}',
    "attachment-data-number": b'{"subject":"s","body":"b","attachments":'
    b'[{"filename":"x","data":12}]}',
    "attachment-data-non-ascii": b'{"subject":"s","body":"b","attachments":'
    b'[{"filename":"x","data":"\xc3\xa9"}]}',
    "huge-number": b'{"subject":"s","body":"b","n":' + b"9" * 5000 + b"}",
    "deep-nesting": b'{"subject":"s","body":"b","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
    "deep-nesting-unclosed": b"[" * 15000,
    "empty": b"",
}


@pytest.mark.parametrize("raw", MALFORMED_CONTENT.values(), ids=MALFORMED_CONTENT.keys())
def test_malformed_content_json_is_an_envelope_error(raw: bytes) -> None:
    """Correctly signed by the sender, but the JSON inside is not a valid content."""
    blob = seal_body(craft_message(raw))
    with raises_envelope_error("message content is not valid"):
        open_msg(blob)
    with raises_envelope_error("message content is not valid"):
        open_message(BOB_ID, BOB, blob, strict=False)


@pytest.mark.parametrize(
    "when",
    [struct.pack(">Q", 2**64 - 1), struct.pack(">Q", 2**63), struct.pack(">Q", 10**17)],
    ids=["u64-max", "2^63", "year-3e6"],
)
def test_timestamp_out_of_datetime_range_is_an_envelope_error(when: bytes) -> None:
    """A correctly signed message whose sent_at_ms no datetime can hold."""
    blob = seal_body(craft_message(when=when))
    with raises_envelope_error("timestamp"):
        open_msg(blob)
    with raises_envelope_error("timestamp"):
        open_message(BOB_ID, BOB, blob, strict=False)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"mid": bytes(15)}, "wrong size"),
        ({"mid": bytes(17)}, "malformed"),
        ({"when": bytes(7)}, "wrong size"),
        ({"when": bytes(9)}, "malformed"),
        ({"key": ALICE_ID.public.raw[:-1]}, "malformed"),
        ({"key": b"\xff" * 1248}, "malformed"),
        ({"sender": b"a" * 102}, "malformed"),
        ({"sender": b"al ce@example.org"}, "sender address is malformed"),
        ({"sender": b"\xe4lice@example.org"}, "sender address is malformed"),
        ({"receiver": b"bob"}, "receiver address is malformed"),
        ({"extra": b"\0"}, "malformed"),
    ],
    ids=[
        "mid-15",
        "mid-17",
        "when-7",
        "when-9",
        "short-key",
        "invalid-key",
        "long-sender",
        "bad-sender",
        "non-ascii-sender",
        "bad-receiver",
        "trailing-byte",
    ],
)
def test_malformed_message_fields(kwargs: dict[str, bytes], reason: str) -> None:
    blob = seal_body(craft_message(**kwargs))  # type: ignore[arg-type]
    with raises_envelope_error(reason):
        open_message(BOB_ID, BOB, blob, strict=False)


def test_message_shorter_than_a_signature() -> None:
    with raises_envelope_error("too short"):
        open_msg(seal_body(b"\0" * 63))


def test_bad_sender_signature_strict_and_lax() -> None:
    blob = seal_body(craft_message(sign=False))
    with raises_envelope_error("sender's signature does not verify"):
        open_msg(blob)
    lax = open_message(BOB_ID, BOB, blob, strict=False)
    assert lax.problems == ("sender's signature does not verify",)
    assert not lax.verified


def test_signature_by_someone_else_than_the_named_key() -> None:
    """Mallory signs but names alice's key: verification uses the named key and fails."""
    when = struct.pack(">Q", 0)
    cj = b'{"subject":"s","body":"b"}'
    signed = lp(
        CTX_MESSAGE,
        ALICE.encode(),
        ALICE_ID.public.raw,
        BOB.encode(),
        BOB_ID.public.raw,
        bytes(16),
        when,
        cj,
    )
    body = lp(ALICE.encode(), ALICE_ID.public.raw, BOB.encode(), bytes(16), when, cj)
    blob = seal_body(body + MALLORY_ID.sign(signed))
    with raises_envelope_error("sender's signature does not verify"):
        open_msg(blob)


def test_crafted_client_message_fields() -> None:
    sig = ALICE_ID.sign(
        envelope._client_signed_bytes(ALICE, ALICE_ID.public, BOB, SERVER_ID.public, MESSAGE)
    )
    for inner, reason in [
        (lp(MESSAGE) + sig[:-1], "malformed"),
        (lp(MESSAGE) + sig + b"\0", "malformed"),
        (MESSAGE + sig, "malformed"),
        (b"", "malformed"),
    ]:
        with raises_envelope_error(reason):
            open_client(seal(SERVER_ID.public.kem, inner, CTX_CLIENT_MESSAGE))
    ok = seal(SERVER_ID.public.kem, lp(MESSAGE) + sig, CTX_CLIENT_MESSAGE)
    assert open_client(ok) == MESSAGE


# --- wrong suite, wrong context --------------------------------------------------


def _bob_x25519_public() -> object:
    return BOB_ID._x.public_key()


@pytest.mark.parametrize(
    ("kem", "kdf", "aead"),
    [
        ("X25519", "HKDF_SHA256", "CHACHA20_POLY1305"),
        ("MLKEM768_X25519", "HKDF_SHA256", "AES_128_GCM"),
        ("MLKEM768_X25519", "HKDF_SHA256", "AES_256_GCM"),
        ("MLKEM768_X25519", "HKDF_SHA384", "CHACHA20_POLY1305"),
        ("MLKEM768_X25519", "HKDF_SHA512", "CHACHA20_POLY1305"),
    ],
)
def test_ciphertext_of_another_suite_is_an_envelope_error(kem: str, kdf: str, aead: str) -> None:
    from cryptography.hazmat.primitives import hpke

    suite = hpke.Suite(getattr(hpke.KEM, kem), getattr(hpke.KDF, kdf), getattr(hpke.AEAD, aead))
    public = _bob_x25519_public() if kem == "X25519" else BOB_ID.public.kem
    block = pad(craft_message())
    blob = suite.encrypt(block, public, info=CTX_MESSAGE)
    if kem != "X25519":
        assert len(blob) == len(MESSAGE)  # same size: only the suite differs
    with raises_envelope_error():
        open_msg(blob)


def test_message_sealed_under_another_context_is_refused() -> None:
    block = pad(craft_message())
    for info in (CTX_STORED_MESSAGE, CTX_CLIENT_MESSAGE, CTX_REGISTER, b"", b"rune/2 message"):
        with raises_envelope_error("does not open"):
            open_msg(seal(BOB_ID.public.kem, block, info))


def test_stored_message_passed_as_a_message_is_refused() -> None:
    with raises_envelope_error():
        open_msg(STORED)
    with raises_envelope_error():
        open_stored(MESSAGE)


# --- handshake -------------------------------------------------------------------


def test_check_answer_with_the_wrong_nonce() -> None:
    with raises_envelope_error("wrong nonce"):
        handshake.check_answer(SERVER_ID, CAROL, CAROL_ID.public, flip(NONCE, 0), ANSWER)


def test_check_answer_with_the_wrong_client_key() -> None:
    with raises_envelope_error("client's signature on the challenge answer"):
        handshake.check_answer(SERVER_ID, CAROL, MALLORY_ID.public, NONCE, ANSWER)


def test_answer_challenge_with_the_wrong_server_key() -> None:
    with raises_envelope_error("server's signature on the challenge does not verify"):
        handshake.answer_challenge(CAROL_ID, CAROL, MALLORY_ID.public, CHALLENGE)


def test_tampered_challenge_signature() -> None:
    for index in (len(CHALLENGE) - 64, len(CHALLENGE) - 1):
        with raises_envelope_error("server's signature on the challenge does not verify"):
            open_challenge(flip(CHALLENGE, index))


def test_challenge_signed_correctly_but_unreadable_by_the_client() -> None:
    """A server that seals the nonce to mallory's key but signs for carol."""
    ciphertext = seal(MALLORY_ID.public.kem, NONCE, CTX_REGISTER)
    signature = SERVER_ID.sign(
        handshake._challenge_signed(CAROL, CAROL_ID.public, SERVER_ID.public, ciphertext)
    )
    with raises_envelope_error("challenge does not open"):
        open_challenge(ciphertext + signature)


@pytest.mark.parametrize("delta", [-1, 1, -64])
def test_challenge_of_wrong_length(delta: int) -> None:
    blob = CHALLENGE[:delta] if delta < 0 else CHALLENGE + bytes(delta)
    with raises_envelope_error(f"challenge is {len(blob)} bytes, expected"):
        open_challenge(blob)


def test_challenge_with_a_short_nonce_is_refused_by_length() -> None:
    short = handshake.make_challenge(SERVER_ID, CAROL, CAROL_ID.public, NONCE[:31])
    with raises_envelope_error("expected"):
        open_challenge(short)


@pytest.mark.parametrize("delta", [-1, 1, -64, 64])
def test_answer_of_wrong_length(delta: int) -> None:
    blob = ANSWER[:delta] if delta < 0 else ANSWER + bytes(delta)
    with raises_envelope_error(f"challenge answer is {len(blob)} bytes, expected"):
        open_answer(blob)


def test_answer_with_wrong_inner_signature() -> None:
    """Right nonce, right size, but carol signed the answer for another server key."""
    sig = CAROL_ID.sign(handshake._answer_signed(CAROL, CAROL_ID.public, MALLORY_ID.public, NONCE))
    blob = seal(SERVER_ID.public.kem, NONCE + sig, b"rune/1 register-answer")
    assert len(blob) == handshake.ANSWER_SIZE
    with raises_envelope_error("client's signature"):
        open_answer(blob)


def test_login_proof_binds_key_address_nonce_and_server() -> None:
    proof = handshake.login_proof(ALICE_ID, ALICE, SERVER_ID.public, NONCE)
    assert handshake.check_login_proof(ALICE_ID.public, ALICE, SERVER_ID.public, NONCE, proof)
    assert not handshake.check_login_proof(MALLORY_ID.public, ALICE, SERVER_ID.public, NONCE, proof)
    assert not handshake.check_login_proof(ALICE_ID.public, BOB, SERVER_ID.public, NONCE, proof)
    assert not handshake.check_login_proof(ALICE_ID.public, ALICE, MALLORY_ID.public, NONCE, proof)
    assert not handshake.check_login_proof(
        ALICE_ID.public, ALICE, SERVER_ID.public, flip(NONCE, 5), proof
    )
    for bad in (flip(proof, 0), flip(proof, 63), proof[:-1], proof + b"\0", b""):
        assert not handshake.check_login_proof(ALICE_ID.public, ALICE, SERVER_ID.public, NONCE, bad)


def test_login_proof_is_not_a_registration_answer_signature() -> None:
    """Domain separation: a login signature over the same nonce proves nothing else."""
    proof = handshake.login_proof(CAROL_ID, CAROL, SERVER_ID.public, NONCE)
    blob = seal(SERVER_ID.public.kem, NONCE + proof, b"rune/1 register-answer")
    with raises_envelope_error("client's signature"):
        open_answer(blob)


# --- nothing but EnvelopeError, whatever the bytes ------------------------------

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    name=st.sampled_from(list(ENVELOPES)),
    data=st.data(),
)
def test_mutated_envelopes_raise_only_envelope_error(name: str, data: st.DataObject) -> None:
    blob, opener = ENVELOPES[name]
    kind = data.draw(st.sampled_from(["flip", "cut", "insert", "replace"]))
    i = data.draw(st.integers(0, len(blob) - 1))
    if kind == "flip":
        mutated = flip(blob, i, data.draw(st.integers(1, 255)))
    elif kind == "cut":
        mutated = blob[:i] + blob[i + data.draw(st.integers(1, 64)) :]
    elif kind == "insert":
        mutated = blob[:i] + data.draw(st.binary(min_size=1, max_size=64)) + blob[i:]
    else:
        mutated = data.draw(st.binary(max_size=2 * len(blob)))
    with raises_envelope_error():
        opener(mutated)


_JSON_DOCS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def _content_doc() -> st.SearchStrategy[bytes]:
    field = st.one_of(st.text(max_size=8), _JSON_DOCS)
    doc = st.fixed_dictionaries(
        {},
        optional={
            "subject": field,
            "body": field,
            "in_reply_to": field,
            "attachments": st.one_of(
                _JSON_DOCS,
                st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "filename": field,
                            "data": st.one_of(field, st.binary(max_size=8).map(b64encode)),
                        },
                    ),
                    max_size=2,
                ),
            ),
        },
    )
    return st.one_of(
        doc.map(lambda d: json.dumps(d).encode()),
        _JSON_DOCS.map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=40),
    )


@FUZZ
@given(
    content_json=_content_doc(),
    sender=st.one_of(st.just(b"alice@example.org"), st.binary(max_size=110)),
    receiver=st.one_of(st.just(b"bob@example.org"), st.binary(max_size=110)),
    mid=st.one_of(st.just(bytes(16)), st.binary(max_size=20)),
    when=st.one_of(
        st.integers(0, 2**64 - 1).map(lambda n: struct.pack(">Q", n)), st.binary(max_size=10)
    ),
    sign=st.booleans(),
    strict=st.booleans(),
)
def test_crafted_messages_open_or_raise_only_envelope_error(
    content_json: bytes,
    sender: bytes,
    receiver: bytes,
    mid: bytes,
    when: bytes,
    sign: bool,
    strict: bool,
) -> None:
    blob = seal_body(
        craft_message(content_json, sender=sender, receiver=receiver, mid=mid, when=when, sign=sign)
    )
    try:
        opened = open_message(BOB_ID, BOB, blob, strict=strict)
    except EnvelopeError as exc:
        assert type(exc) is EnvelopeError and exc.reason
    else:
        # whatever opened must be what was sent
        assert opened.sender.encode() == sender.lower()
        assert opened.message_id == mid.hex()
        assert (not strict) or opened.verified


@FUZZ
@given(
    sender=st.one_of(st.just(b"alice@example.org"), st.binary(max_size=101)),
    length=st.one_of(st.none(), st.integers(0, 255)),
    stamp=st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(
            lambda d: envelope.format_timestamp(d).encode().ljust(20, b"0")[:20]
        ),
        st.binary(min_size=20, max_size=20),
    ),
    sealed=st.sampled_from([MESSAGE, CHALLENGE[:-64] + bytes(16384 - 32)]),
    signature=st.binary(min_size=64, max_size=64),
    strict=st.booleans(),
)
def test_crafted_stored_messages_open_or_raise_only_envelope_error(
    sender: bytes, length: int | None, stamp: bytes, sealed: bytes, signature: bytes, strict: bool
) -> None:
    blob = seal(
        BOB_ID.public.kem,
        _stored_plaintext(sender, stamp, sealed, signature, length=length),
        CTX_STORED_MESSAGE,
    )
    try:
        stored = open_stored_message(BOB_ID, BOB, SERVER_ID.public, blob, strict=strict)
    except EnvelopeError as exc:
        assert type(exc) is EnvelopeError and exc.reason
    else:
        assert not strict  # a random signature never verifies
        assert stored.server_signature_ok is False
        assert stored.sealed_message == sealed


def test_exception_chain_hides_no_foreign_exception_type() -> None:
    """The EnvelopeError from a tampered tag is the one raised; InvalidTag is only its cause."""
    from cryptography.exceptions import InvalidTag

    with pytest.raises(EnvelopeError) as info:
        open_msg(flip(MESSAGE, len(MESSAGE) - 1))
    assert type(info.value) is EnvelopeError
    assert isinstance(info.value.__cause__, InvalidTag | ValueError)
