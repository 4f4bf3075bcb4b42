"""Generate the known-answer vectors in ``tests/vectors/`` (run from anywhere).

    python tests/vectors/generate.py            # rewrite the deterministic files
    python tests/vectors/generate.py --reseal   # also reseal envelopes.json

How the vectors are made, so anyone can check them:

* Fixed keys. A vector key named NAME has the 128-byte private key
  ``SHA-256("rune/1 test vector NAME 0") ‖ … ‖ SHA-256("rune/1 test vector NAME 3")``
  (``ed25519 seed(32) ‖ mlkem seed(64) ‖ x25519(32)``). Ed25519 and ML-KEM-768
  key generation from a seed are deterministic, so the public key tokens and
  fingerprints in ``keys.json`` are true known answers.
* ``addresses.json`` and ``padding.json`` are plain input → output tables.
* ``canonical.json`` records, for each signature context, the fixed inputs, the
  fields in signing order, and the exact signed bytes (``lp(context, *fields)``,
  each field prefixed by its length as a 4-byte big-endian integer), plus the
  Ed25519 signature over them (Ed25519 is deterministic, so it is a true KAT).
* ``envelopes.json`` holds envelopes sealed once with the fixed keys. HPKE
  encryption is randomized and ``cryptography`` offers no API to fix its
  randomness, so the sealed bytes themselves cannot be reproduced: they are
  recorded, and the tests require that they still open, with the fixed private
  keys, to the recorded plaintext (whose SHA-256 is recorded too). The
  signatures inside are deterministic and are recorded as KATs. Because
  resealing changes every ciphertext, envelopes.json is only rewritten with
  ``--reseal`` (or when it does not exist yet). docs/protocol.md, Appendix C, takes
  the ``enc`` of these envelopes: after a reseal, reprint its entries with
  ``python tests/test_spec_appendix.py`` (tests/test_spec_appendix.py fails until then).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from rune_proto import envelope, handshake, padding  # noqa: E402
from rune_proto.address import AddressError, parse_address  # noqa: E402
from rune_proto.encoding import b64encode  # noqa: E402
from rune_proto.keys import Identity  # noqa: E402
from rune_proto.suite import SUITE  # noqa: E402

KEY_NAMES = ("alice", "bob", "carol", "server")
MESSAGE_ID = bytes(range(16))
SENT_AT_MS = 1_790_000_000_123  # 2026-09-21T14:13:20.123Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECEIVED_AT = datetime(2026, 11, 29, 14, 50, 37, tzinfo=UTC)
REGISTER_NONCE = hashlib.sha256(b"rune/1 test vector register nonce").digest()
LOGIN_NONCE = hashlib.sha256(b"rune/1 test vector login nonce").digest()
CONTENT = envelope.Content(
    subject="Vectors, naïvely",
    body="Hello Bob,\nthis message is a known-answer vector. ✉\n",
    attachments=(envelope.Attachment("notes.txt", b"line one\nline two\n\x00\xff"),),
    in_reply_to="5b0e4a528b1e4f379c550d6a4e2f1c3b",
)


def private_key(name: str) -> bytes:
    return b"".join(
        hashlib.sha256(f"rune/1 test vector {name} {i}".encode()).digest() for i in range(4)
    )


def identities() -> dict[str, Identity]:
    return {name: Identity(private_key(name)) for name in KEY_NAMES}


def address(name: str) -> str:
    return f"{name}@example.org"


# --- addresses -----------------------------------------------------------------

VALID_ADDRESSES = [
    "alice@example.org",
    "Alice@Example.ORG",
    "BOB@EXAMPLE.ORG",
    "a.b-c_d@x-y.z_w",
    "abc@xyz",
    "a" * 50 + "@" + "b" * 50,
    "0123456789@0123456789",
    "..._@---",
    "MiXeD.CaSe_42@Rune-Server.Example",
]
INVALID_ADDRESSES = [
    "",
    "alice",
    "alice@",
    "@example.org",
    "ab@example.org",
    "alice@ex",
    "alice@@example.org",
    "alice@example@org",
    "a" * 51 + "@example.org",
    "alice@" + "b" * 51,
    "a" * 50 + "@" + "b" * 51,
    "alice smith@example.org",
    "alice@exa mple.org",
    "älice@example.org",
    "alice+tag@example.org",
    "alice@example.org\n",
    " alice@example.org",
    "alice@example.org ",
    "al/ce@example.org",
    "alice@exam\x00ple.org",
]


def address_vectors() -> dict[str, Any]:
    valid = [{"input": text, "canonical": str(parse_address(text))} for text in VALID_ADDRESSES]
    invalid = []
    for text in INVALID_ADDRESSES:
        try:
            parse_address(text)
        except AddressError as exc:
            invalid.append({"input": text, "error": str(exc)})
        else:  # pragma: no cover - the table above is wrong
            raise SystemExit(f"{text!r} unexpectedly parsed")
    return {
        "description": "parse_address: valid inputs and their canonical form; invalid inputs "
        "and a substring of the AddressError message",
        "valid": valid,
        "invalid": invalid,
    }


# --- keys ----------------------------------------------------------------------


def key_vectors() -> dict[str, Any]:
    keys = []
    for name, identity in identities().items():
        public = identity.public
        keys.append(
            {
                "name": name,
                "private": private_key(name).hex(),
                "ed25519_public": public.raw[:32].hex(),
                "x25519_public": public.raw[-32:].hex(),
                "mlkem768_public_sha256": hashlib.sha256(public.raw[32:-32]).hexdigest(),
                "public_token": public.token(),
                "fingerprint": public.fingerprint().hex(),
                "fingerprint_text": public.fingerprint_text(),
            }
        )
    return {
        "description": "private = SHA-256('rune/1 test vector NAME i') for i in 0..3, "
        "concatenated; public token = 'rune1pk.' + base64url(ed25519 ‖ mlkem768 ‖ x25519); "
        "fingerprint = SHA-256(public key bytes)",
        "keys": keys,
    }


# --- padding -------------------------------------------------------------------

PADDED_LENGTHS = [0, 1, 100, 16380, 16381, 16384, 20000, 1 << 20, (1 << 20) + 1, 64 << 20]
PADME_LENGTHS = [0, 1, 2, 3, 9, 100, 1000, 16385, 20004, 65536, 65537, 1_000_000, 64 << 20]


def padding_vectors() -> dict[str, Any]:
    return {
        "description": "padded_size(plaintext length) and padme(length); the padded block is "
        "u32 length ‖ data ‖ zeros",
        "fixed_padded_size": padding.FIXED_PADDED_SIZE,
        "max_plaintext": padding.MAX_PLAINTEXT,
        "padded_size": [{"length": n, "padded": padding.padded_size(n)} for n in PADDED_LENGTHS],
        "padme": [{"length": n, "padme": padding.padme(n)} for n in PADME_LENGTHS],
        "invalid_lengths": [-1, padding.MAX_PLAINTEXT + 1],
    }


# --- canonical signed bytes ----------------------------------------------------


def _field_list(fields: list[tuple[str, bytes]]) -> list[dict[str, str]]:
    return [{"name": n, "hex": v.hex()} for n, v in fields]


def canonical_vectors() -> dict[str, Any]:
    ids = identities()
    alice, bob = (parse_address(address(n)) for n in ("alice", "bob"))
    carol = parse_address(address("carol"))
    when = struct.pack(">Q", SENT_AT_MS)
    content_json = CONTENT.to_json()
    stamp = envelope.format_timestamp(RECEIVED_AT).encode("ascii")
    sealed_stand_in = b"a sealed MESSAGE stands here" * 3
    ciphertext_stand_in = b"an HPKE ciphertext stands here" * 2
    pk = {n: i.public for n, i in ids.items()}
    cases: list[dict[str, Any]] = []

    def add(
        context: str,
        helper: str,
        signer: str,
        inputs: dict[str, Any],
        fields: list[tuple[str, bytes]],
        signed: bytes,
    ) -> None:
        cases.append(
            {
                "context": context,
                "helper": helper,
                "signer": signer,
                "inputs": inputs,
                "fields": _field_list(fields),
                "signed": signed.hex(),
                "signature": ids[signer].sign(signed).hex(),
            }
        )

    add(
        "rune/1 message",
        "envelope._message_signed_bytes",
        "alice",
        {
            "sender": str(alice),
            "sender_key": "alice",
            "receiver": str(bob),
            "receiver_key": "bob",
            "message_id": MESSAGE_ID.hex(),
            "sent_at_ms": SENT_AT_MS,
            "content_json": content_json.decode("utf-8"),
        },
        [
            ("sender", alice.encode()),
            ("sender_key", pk["alice"].raw),
            ("receiver", bob.encode()),
            ("receiver_key", pk["bob"].raw),
            ("message_id", MESSAGE_ID),
            ("sent_at_ms", when),
            ("content_json", content_json),
        ],
        envelope._message_signed_bytes(
            alice, pk["alice"], bob, pk["bob"], MESSAGE_ID, when, content_json
        ),
    )
    add(
        "rune/1 client-message",
        "envelope._client_signed_bytes",
        "alice",
        {
            "sender": str(alice),
            "sender_key": "alice",
            "receiver": str(bob),
            "server_key": "server",
            "sealed": sealed_stand_in.hex(),
        },
        [
            ("sender", alice.encode()),
            ("sender_key", pk["alice"].raw),
            ("receiver", bob.encode()),
            ("server_key", pk["server"].raw),
            ("sealed", sealed_stand_in),
        ],
        envelope._client_signed_bytes(alice, pk["alice"], bob, pk["server"], sealed_stand_in),
    )
    add(
        "rune/1 stored-message",
        "envelope._stored_signed_bytes",
        "server",
        {
            "receiver": str(bob),
            "receiver_key": "bob",
            "sender": str(alice),
            "received_at": stamp.decode("ascii"),
            "sealed": sealed_stand_in.hex(),
        },
        [
            ("receiver", bob.encode()),
            ("receiver_key", pk["bob"].raw),
            ("sender", alice.encode()),
            ("received_at", stamp),
            ("sealed_sha256", hashlib.sha256(sealed_stand_in).digest()),
        ],
        envelope._stored_signed_bytes(bob, pk["bob"], alice, stamp, sealed_stand_in),
    )
    add(
        "rune/1 register",
        "handshake._challenge_signed",
        "server",
        {
            "address": str(carol),
            "client_key": "carol",
            "server_key": "server",
            "ciphertext": ciphertext_stand_in.hex(),
        },
        [
            ("address", carol.encode()),
            ("client_key", pk["carol"].raw),
            ("server_key", pk["server"].raw),
            ("ciphertext", ciphertext_stand_in),
        ],
        handshake._challenge_signed(carol, pk["carol"], pk["server"], ciphertext_stand_in),
    )
    add(
        "rune/1 register-answer",
        "handshake._answer_signed",
        "carol",
        {
            "address": str(carol),
            "client_key": "carol",
            "server_key": "server",
            "nonce": REGISTER_NONCE.hex(),
        },
        [
            ("address", carol.encode()),
            ("client_key", pk["carol"].raw),
            ("server_key", pk["server"].raw),
            ("nonce", REGISTER_NONCE),
        ],
        handshake._answer_signed(carol, pk["carol"], pk["server"], REGISTER_NONCE),
    )
    add(
        "rune/1 login",
        "handshake._login_signed",
        "alice",
        {"server_key": "server", "address": str(alice), "nonce": LOGIN_NONCE.hex()},
        [
            ("server_key", pk["server"].raw),
            ("address", alice.encode()),
            ("nonce", LOGIN_NONCE),
        ],
        handshake._login_signed(pk["server"], alice, LOGIN_NONCE),
    )
    return {
        "description": "signed = u32be(len(context)) ‖ context ‖ for each field: "
        "u32be(len(field)) ‖ field; addresses are their canonical ASCII text, keys the "
        "1248 public key bytes, sent_at_ms an 8-byte big-endian integer; signature = "
        "Ed25519(signer's fixed key, signed)",
        "cases": cases,
    }


# --- envelopes -----------------------------------------------------------------


def _plaintext_record(identity: Identity, sealed: bytes, info: bytes) -> dict[str, Any]:
    plaintext = SUITE.decrypt(sealed, identity.kem, info=info)
    return {"plaintext_length": len(plaintext), "plaintext_sha256": _sha(plaintext)}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def envelope_vectors() -> dict[str, Any]:
    from rune_proto.suite import CTX_CLIENT_MESSAGE, CTX_MESSAGE, CTX_REGISTER_ANSWER
    from rune_proto.suite import CTX_STORED_MESSAGE as CTX_STORED

    ids = identities()
    alice, bob, carol = (parse_address(address(n)) for n in ("alice", "bob", "carol"))
    when = struct.pack(">Q", SENT_AT_MS)
    content_json = CONTENT.to_json()

    sealed = envelope.seal_message(
        alice,
        ids["alice"],
        bob,
        ids["bob"].public,
        CONTENT,
        message_id=MESSAGE_ID,
        sent_at_ms=SENT_AT_MS,
    )
    message_sig = ids["alice"].sign(
        envelope._message_signed_bytes(
            alice, ids["alice"].public, bob, ids["bob"].public, MESSAGE_ID, when, content_json
        )
    )
    client = envelope.seal_client_message(alice, ids["alice"], bob, ids["server"].public, sealed)
    client_sig = ids["alice"].sign(
        envelope._client_signed_bytes(alice, ids["alice"].public, bob, ids["server"].public, sealed)
    )
    stamp = envelope.format_timestamp(RECEIVED_AT)
    stored = envelope.seal_stored_message(
        ids["server"], bob, ids["bob"].public, alice, sealed, RECEIVED_AT
    )
    stored_sig = ids["server"].sign(
        envelope._stored_signed_bytes(bob, ids["bob"].public, alice, stamp.encode(), sealed)
    )
    challenge = handshake.make_challenge(ids["server"], carol, ids["carol"].public, REGISTER_NONCE)
    answer = handshake.answer_challenge(ids["carol"], carol, ids["server"].public, challenge)
    answer_sig = ids["carol"].sign(
        handshake._answer_signed(carol, ids["carol"].public, ids["server"].public, REGISTER_NONCE)
    )
    proof = handshake.login_proof(ids["alice"], alice, ids["server"].public, LOGIN_NONCE)

    return {
        "description": "Envelopes sealed once with the fixed keys of keys.json. HPKE is "
        "randomized, so 'sealed' cannot be reproduced; it must open to the recorded "
        "plaintext (length and SHA-256 of the HPKE plaintext). Signatures are deterministic "
        "Ed25519 and are true known answers. Binary values: 'sealed'/'challenge'/'answer' "
        "base64url without padding, the rest hex.",
        "keys": {name: private_key(name).hex() for name in KEY_NAMES},
        "message": {
            "sender": str(alice),
            "receiver": str(bob),
            "message_id": MESSAGE_ID.hex(),
            "sent_at_ms": SENT_AT_MS,
            "sent_at": (EPOCH + timedelta(milliseconds=SENT_AT_MS)).isoformat(),
            "content": {
                "subject": CONTENT.subject,
                "body": CONTENT.body,
                "attachments": [
                    {"filename": a.filename, "data": a.data.hex()} for a in CONTENT.attachments
                ],
                "in_reply_to": CONTENT.in_reply_to,
            },
            "content_json": content_json.decode("utf-8"),
            "signature": message_sig.hex(),
            "sealed": b64encode(sealed),
            **_plaintext_record(ids["bob"], sealed, CTX_MESSAGE),
        },
        "client_message": {
            "sender": str(alice),
            "receiver": str(bob),
            "signature": client_sig.hex(),
            "inner_sealed_sha256": _sha(sealed),
            "sealed": b64encode(client),
            **_plaintext_record(ids["server"], client, CTX_CLIENT_MESSAGE),
        },
        "stored_message": {
            "sender": str(alice),
            "receiver": str(bob),
            "received_at": stamp,
            "signature": stored_sig.hex(),
            "inner_sealed_sha256": _sha(sealed),
            "sealed": b64encode(stored),
            **_plaintext_record(ids["bob"], stored, CTX_STORED),
        },
        "registration": {
            "address": str(carol),
            "nonce": REGISTER_NONCE.hex(),
            "challenge": b64encode(challenge),
            "challenge_signature": challenge[-64:].hex(),
            "answer": b64encode(answer),
            "answer_signature": answer_sig.hex(),
            **_plaintext_record(ids["server"], answer, CTX_REGISTER_ANSWER),
        },
        "login": {
            "address": str(alice),
            "nonce": LOGIN_NONCE.hex(),
            "proof": proof.hex(),
        },
    }


def write(name: str, doc: dict[str, Any]) -> None:
    path = HERE / name
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(HERE.parent.parent)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--reseal", action="store_true", help="also rewrite envelopes.json (new ciphertexts)"
    )
    args = parser.parse_args()
    write("addresses.json", address_vectors())
    write("keys.json", key_vectors())
    write("padding.json", padding_vectors())
    write("canonical.json", canonical_vectors())
    if args.reseal or not (HERE / "envelopes.json").exists():
        write("envelopes.json", envelope_vectors())
    else:
        print("kept envelopes.json (use --reseal to seal new ones)")


if __name__ == "__main__":
    main()
