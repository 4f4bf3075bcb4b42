"""The fast strict base64url decoder agrees with the plain reference definition."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rune_proto.encoding import EncodingError, b64decode, b64encode

_ALPHABET = re.compile(rb"[A-Za-z0-9_-]*")


def reference(raw: bytes) -> bytes | None:
    """Strict base64url without padding, as the spec says it: None when refused."""
    if not _ALPHABET.fullmatch(raw) or len(raw) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    return data if b64encode(data).encode("ascii") == raw else None


def decoded(raw: bytes | str) -> bytes | None:
    try:
        return b64decode(raw)
    except EncodingError:
        return None


nearly_base64 = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= \n\r\0é",
    max_size=16,
)


@given(nearly_base64)
def test_agrees_with_the_reference(text: str) -> None:
    raw = text.encode("utf-8")
    assert decoded(raw) == reference(raw)
    assert decoded(text) == reference(text.encode("ascii", "replace"))


@given(st.binary(max_size=64))
def test_round_trip(data: bytes) -> None:
    assert b64decode(b64encode(data)) == data


@pytest.mark.parametrize("token", ["AB", "AAB", "AAAAAB", "AAAAAAB"])
def test_non_canonical_tails_are_refused(token: str) -> None:
    assert reference(token.encode()) is None
    with pytest.raises(EncodingError, match="non-canonical"):
        b64decode(token)


@pytest.mark.parametrize("token", ["A", "AA==", "AA+A", "AA/A", "AA A", "AA\nA", "AAé"])
def test_foreign_characters_and_bad_lengths_are_refused(token: str) -> None:
    with pytest.raises(EncodingError):
        b64decode(token)
