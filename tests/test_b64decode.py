"""The fast strict base64url decoder agrees with the plain reference definition,
with pybase64's SIMD decoder (the default when installed) and with the standard
library's (the path kept for platforms without it)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rune_proto import encoding
from rune_proto.encoding import EncodingError, b64decode, b64encode, b64encode_bytes

_ALPHABET = re.compile(rb"[A-Za-z0-9_-]*")


@pytest.fixture(autouse=True, scope="module", params=["pybase64", "stdlib"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs once per backend (module scope: hypothesis allows it)."""
    before = encoding.BASE64_BACKEND
    encoding.use_base64_backend(request.param)
    yield str(request.param)
    encoding.use_base64_backend(before)


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


@given(st.binary(max_size=200))
def test_encoding_matches_the_standard_library(data: bytes) -> None:
    expected = base64.urlsafe_b64encode(data).rstrip(b"=")
    assert b64encode(data) == expected.decode("ascii")
    assert b64encode_bytes(memoryview(data)) == expected


def test_a_message_sized_line_round_trips() -> None:
    data = bytes(range(256)) * 75  # ~19 KB, a MESSAGE payload's size
    assert b64decode(b64encode(data)) == data


def test_the_simd_decoder_is_the_default_when_installed() -> None:
    """pybase64 is a dependency: the codec must actually use it (~10x faster on a
    25 KB MESSAGE line, docs/performance.md), not silently fall back."""
    pytest.importorskip("pybase64")
    shown = subprocess.run(
        [sys.executable, "-c", "from rune_proto import encoding; print(encoding.BASE64_BACKEND)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert shown.stdout.strip() == "pybase64"


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="no base64 backend"):
        encoding.use_base64_backend("turbo")
