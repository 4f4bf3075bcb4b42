"""docs/protocol.md, Appendix C: every value in its worked examples, recomputed.

The appendix is for implementers who have only the spec, so it must not drift from
the code. This test reads every ``name = value`` entry out of the appendix's code
blocks and recomputes it: keys from their fixed seeds, signed bytes and signatures
with the library, and each HPKE seal step by step from RFC 9180 and X-Wing (§6.5)
with nothing but primitives. The ``enc`` of each seal comes from the sealed vectors
in tests/vectors/envelopes.json (HPKE randomness cannot be fixed through
``cryptography``), and the rebuilt ``enc ‖ ciphertext`` must equal that recorded
envelope byte for byte — so the appendix, the vectors and the library agree.

    python tests/test_spec_appendix.py   # prints the appendix's entries, to paste in
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import re
import struct
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from rune_proto import envelope, handshake, padding
from rune_proto.address import parse_address
from rune_proto.encoding import b64decode, lp
from rune_proto.keys import Identity
from rune_proto.suite import (
    CTX_MESSAGE,
    CTX_REGISTER,
    CTX_REGISTER_ANSWER,
    CTX_STORED_MESSAGE,
    KEM_ENC_SIZE,
    SUITE,
)

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "docs" / "protocol.md"
HEADING = "## Appendix C. Worked examples"
HEX_PER_LINE = 64
SUITE_ID = b"HPKE" + struct.pack(">HHH", 0x647A, 0x0001, 0x0003)
XWING_LABEL = b"\\.//^\\"


@cache
def vectors() -> ModuleType:
    """tests/vectors/generate.py: the one home of the fixed keys and inputs."""
    spec = importlib.util.spec_from_file_location(
        "rune_vectors", ROOT / "tests/vectors/generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def envelopes() -> dict[str, dict[str, str]]:
    data = json.loads((ROOT / "tests/vectors/envelopes.json").read_text(encoding="utf-8"))
    return data  # type: ignore[no-any-return]


# --- HPKE base mode by hand (RFC 9180 §5.1, X-Wing decapsulation) ----------------


def _extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, b"HPKE-v1" + SUITE_ID + label + ikm, "sha256")


def _expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = struct.pack(">H", length) + b"HPKE-v1" + SUITE_ID + label + info
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + labeled + bytes([counter]), "sha256")
        out += block
        counter += 1
    return out[:length]


def xwing_decapsulate(private: bytes, enc: bytes) -> bytes:
    """The X-Wing shared secret for ``enc`` under a 128-byte Rune private key (§6.5)."""
    ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[32:96])
    xx = x25519.X25519PrivateKey.from_private_bytes(private[96:])
    ct_m, ct_x = enc[:1088], enc[1088:]
    ss_m = ml.decapsulate(ct_m)
    ss_x = xx.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    pk_x = xx.public_key().public_bytes_raw()
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def key_schedule(shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
    """HPKE base mode: (key, base_nonce) for ChaCha20-Poly1305."""
    context = b"\x00" + _extract(b"", b"psk_id_hash", b"") + _extract(b"", b"info_hash", info)
    secret = _extract(shared_secret, b"secret", b"")
    return _expand(secret, b"key", context, 32), _expand(secret, b"base_nonce", context, 12)


# --- the values ------------------------------------------------------------------


def _seal(
    values: dict[str, bytes], name: str, private: bytes, sealed: bytes, info: bytes, pt: bytes
) -> None:
    """Entries for one seal, rebuilt from its recorded ``enc``; must equal ``sealed``."""
    enc = sealed[:KEM_ENC_SIZE]
    shared = xwing_decapsulate(private, enc)
    key, nonce = key_schedule(shared, info)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, pt, b"")
    assert enc + ciphertext == sealed, f"{name}: the recorded envelope is not enc ‖ AEAD(pt)"
    values[f"{name}.enc"] = enc
    values[f"{name}.shared_secret"] = shared
    values[f"{name}.key"] = key
    values[f"{name}.base_nonce"] = nonce
    values[name] = sealed


@cache
def compute() -> dict[str, bytes]:
    """Every entry of Appendix C, by name, from the code and the recorded envelopes."""
    gen = vectors()
    rec = envelopes()
    ids = gen.identities()
    pub = {name: identity.public for name, identity in ids.items()}
    alice, bob, carol = (parse_address(gen.address(n)) for n in ("alice", "bob", "carol"))
    values: dict[str, bytes] = {}

    for name in ("alice", "bob", "carol", "server"):
        values[f"{name}.private"] = gen.private_key(name)
        values[f"{name}.ed25519_public"] = pub[name].raw[:32]
        values[f"{name}.mlkem768_public"] = pub[name].raw[32:-32]
        values[f"{name}.x25519_public"] = pub[name].raw[-32:]
        values[f"{name}.public"] = pub[name].raw

    # Login (§8): alice@example.org at the server.
    values["login.nonce"] = gen.LOGIN_NONCE
    values["login.signed"] = handshake._login_signed(pub["server"], alice, gen.LOGIN_NONCE)
    values["login.proof"] = handshake.login_proof(
        ids["alice"], alice, pub["server"], gen.LOGIN_NONCE
    )

    # Registration (§7): carol@example.org.
    nonce = gen.REGISTER_NONCE
    challenge = b64decode(rec["registration"]["challenge"])
    ct = challenge[:-64]
    values["register.nonce"] = nonce
    _seal(values, "register.ct", gen.private_key("carol"), ct, CTX_REGISTER, nonce)
    signed = handshake._challenge_signed(carol, pub["carol"], pub["server"], ct)
    values["register.challenge.signed"] = signed
    values["register.challenge.signature"] = ids["server"].sign(signed)
    values["register.challenge"] = ct + values["register.challenge.signature"]
    answer_signed = handshake._answer_signed(carol, pub["carol"], pub["server"], nonce)
    values["register.answer.signed"] = answer_signed
    values["register.answer.signature"] = ids["carol"].sign(answer_signed)
    answer = b64decode(rec["registration"]["answer"])
    plaintext = nonce + ids["carol"].sign(answer_signed)
    _seal(
        values, "register.answer", gen.private_key("server"), answer, CTX_REGISTER_ANSWER, plaintext
    )

    # MESSAGE (§9.3) from alice to bob.
    when = struct.pack(">Q", gen.SENT_AT_MS)
    content = gen.CONTENT.to_json()
    values["message.message_id"] = gen.MESSAGE_ID
    values["message.sent_at"] = when
    values["message.content"] = content
    signed = envelope._message_signed_bytes(
        alice, pub["alice"], bob, pub["bob"], gen.MESSAGE_ID, when, content
    )
    values["message.signed"] = signed
    values["message.signature"] = ids["alice"].sign(signed)
    body = lp(alice.encode(), pub["alice"].raw, bob.encode(), gen.MESSAGE_ID, when, content)
    body += ids["alice"].sign(signed)
    values["message.body"] = body
    values["message.padded"] = padding.pad(body)
    sealed = b64decode(rec["message"]["sealed"])
    _seal(values, "message", gen.private_key("bob"), sealed, CTX_MESSAGE, padding.pad(body))

    # STORED MESSAGE (§9.7) of that MESSAGE, for bob.
    stamp = envelope.format_timestamp(gen.RECEIVED_AT).encode("ascii")
    sender_field = bytes([len(alice.encode())]) + alice.encode().ljust(101, b"\0")
    signed = envelope._stored_signed_bytes(bob, pub["bob"], alice, stamp, sealed)
    values["stored.sender_field"] = sender_field
    values["stored.received_at"] = stamp
    values["stored.signed"] = signed
    values["stored.signature"] = ids["server"].sign(signed)
    plaintext = sender_field + stamp + lp(sealed) + ids["server"].sign(signed)
    values["stored.plaintext"] = plaintext
    stored = b64decode(rec["stored_message"]["sealed"])
    _seal(values, "stored", gen.private_key("bob"), stored, CTX_STORED_MESSAGE, plaintext)
    assert SUITE.decrypt(stored, Identity(gen.private_key("bob")).kem, info=CTX_STORED_MESSAGE)
    return values


# --- the document ----------------------------------------------------------------

_ENTRY = re.compile(r"([a-z0-9_.]+) =(?: (.+))?")
_SHORT = 96  # octets: longer values are given as length and SHA-256, except these
_IN_FULL = frozenset({"message.content", "stored.sender_field"})
_IN_FULL_KINDS = (".enc", ".private")


def render(values: dict[str, bytes], names: list[str]) -> str:
    """The entries for ``names`` as they appear in the appendix."""
    lines = []
    for name in names:
        value = values[name]
        if len(value) > _SHORT and name not in _IN_FULL and not name.endswith(_IN_FULL_KINDS):
            lines.append(f"{name}.length = {len(value)}")
            lines.append(f"{name}.sha256 = {hashlib.sha256(value).hexdigest()}")
            continue
        text = value.hex()
        if len(text) <= HEX_PER_LINE:
            lines.append(f"{name} = {text}")
        else:
            lines.append(f"{name} =")
            lines.extend(
                "  " + text[i : i + HEX_PER_LINE] for i in range(0, len(text), HEX_PER_LINE)
            )
    return "\n".join(lines)


def parse(text: str) -> dict[str, str]:
    """``name = value`` entries in the appendix's code blocks; wrapped hex joined."""
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    section = text[start : end if end >= 0 else len(text)]
    entries: dict[str, str] = {}
    current: str | None = None
    in_block = False
    for line in section.splitlines():
        if line.startswith("```"):
            in_block, current = not in_block, None
            continue
        if not in_block:
            continue
        match = _ENTRY.fullmatch(line)
        if match:
            current = match.group(1)
            assert current not in entries, f"{current} is given twice"
            entries[current] = match.group(2) or ""
        elif line.startswith("  ") and current is not None:
            entries[current] += line.strip()
        elif line.strip():
            current = None  # a line of prose or wire text inside a block
    return entries


def mismatches(entries: dict[str, str], values: dict[str, bytes]) -> list[str]:
    """Every entry whose value is not what the code computes, and every unknown name."""
    wrong = []
    for name, given in entries.items():
        base, _, kind = name.rpartition(".")
        if kind == "length" and base in values:
            expected = str(len(values[base]))
        elif kind == "sha256" and base in values:
            expected = hashlib.sha256(values[base]).hexdigest()
        elif name in values:
            expected = values[name].hex()
        else:
            wrong.append(f"{name}: no such value")
            continue
        if given != expected:
            at = next(
                (i for i, (a, b) in enumerate(zip(given, expected, strict=False)) if a != b), 0
            )
            wrong.append(
                f"{name}: from hex digit {at} the document says {given[at : at + 16]!r}, "
                f"the code {expected[at : at + 16]!r}"
            )
    return wrong


def test_every_value_in_the_appendix_is_what_the_code_computes() -> None:
    entries = parse(PROTOCOL.read_text(encoding="utf-8"))
    assert len(entries) >= 60
    assert mismatches(entries, compute()) == []


def test_every_value_is_given_once() -> None:
    """Each value the examples build appears (by hex, or by length and SHA-256)."""
    entries = parse(PROTOCOL.read_text(encoding="utf-8"))
    given = {name.removesuffix(".length").removesuffix(".sha256") for name in entries}
    assert given == set(compute())


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_one_changed_hex_digit_fails(where: float) -> None:
    text = PROTOCOL.read_text(encoding="utf-8")
    entries = parse(text)
    hex_names = [n for n, v in entries.items() if not n.endswith(".length")]
    name = hex_names[int(len(hex_names) * where)]
    value = entries[name]
    digit = "0" if value[-1] != "0" else "1"
    entries[name] = value[:-1] + digit
    assert mismatches(entries, compute()) != []
    # and in the document itself: the value's first digits open a line of the appendix
    start = text.index(HEADING)
    at = text.index(value[:16], start) + 5
    changed = text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]
    assert mismatches(parse(changed), compute()) != []


if __name__ == "__main__":
    names = list(compute())
    print(render(compute(), names if len(sys.argv) < 2 else sys.argv[1:]))
