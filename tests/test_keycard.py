"""Key cards (protocol.md Appendix D): the line a QR code carries, made and read back."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from rune_proto.address import parse_address
from rune_proto.keycard import KeyCard, KeyCardError, parse_key_card
from rune_proto.keys import Identity

PROTOCOL = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def alice_key() -> Identity:
    """Appendix C.1's alice."""
    parts = (hashlib.sha256(f"rune/1 test vector alice {i}".encode()).digest() for i in range(4))
    return Identity(b"".join(parts))


def test_a_key_card_is_the_address_and_the_fingerprint_in_hex() -> None:
    key = alice_key().public
    card = KeyCard.of(parse_address("Alice@Example.org"), key)
    assert card.payload() == f"rune:alice@example.org#{key.fingerprint().hex()}"
    assert card.fingerprint_text() == key.fingerprint_text()
    again = parse_key_card(card.payload())
    assert again == card and again.matches(key)
    assert not again.matches(Identity(bytes(128)).public)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice@example.org#" + "00" * 32,  # no scheme
        "rune:alice@example.org",  # no fingerprint
        "rune:alice@example.org#" + "00" * 31,  # too short
        "rune:alice@example.org#" + "AB" * 32,  # upper case
        "rune:al@example.org#" + "00" * 32,  # not an address
        "rune:Alice@example.org#" + "00" * 32,  # not canonical
        "rune:alice@example.org#" + "00" * 32 + "\n",
    ],
)
def test_what_is_not_a_key_card_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(KeyCardError):
        parse_key_card(text)


def test_the_worked_example_in_the_protocol_is_what_the_code_makes() -> None:
    """Appendix D's example: Appendix C.1's alice."""
    appendix = PROTOCOL.read_text("utf-8").split("## Appendix D.", 1)[1]
    shown = re.findall(r"^rune:\S+$", appendix, flags=re.MULTILINE)
    card = KeyCard.of(parse_address("alice@example.org"), alice_key().public)
    assert shown == [card.payload()]
    assert card.fingerprint_text() in appendix
