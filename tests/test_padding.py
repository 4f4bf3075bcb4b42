"""Length hiding: 16 KiB fixed padding, then Padmé."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rune_proto.padding import (
    FIXED_PADDED_SIZE,
    MAX_PLAINTEXT,
    PaddingError,
    is_padded_size,
    pad,
    padded_size,
    padme,
    unpad,
)

HEADER = 4
lengths = st.integers(0, MAX_PLAINTEXT)
above_fixed = st.integers(FIXED_PADDED_SIZE - HEADER + 1, MAX_PLAINTEXT)


@settings(max_examples=500)
@given(length=lengths)
def test_padded_size_is_at_least_length_plus_header(length: int) -> None:
    assert padded_size(length) >= length + HEADER


@settings(max_examples=300)
@given(length=st.integers(0, FIXED_PADDED_SIZE - HEADER))
def test_everything_that_fits_is_padded_to_16k(length: int) -> None:
    assert padded_size(length) == FIXED_PADDED_SIZE


@settings(max_examples=500)
@given(length=st.integers(16 * 1024 + 1, MAX_PLAINTEXT))
def test_overhead_is_at_most_12_percent_above_16k(length: int) -> None:
    assert padded_size(length) <= length * 1.12


@settings(max_examples=500)
@given(length=st.integers(2, 2**40))
def test_padme_keeps_only_the_top_bits(length: int) -> None:
    padded = padme(length)
    exponent = length.bit_length() - 1
    size_bits = exponent.bit_length()
    low = exponent - size_bits
    assert padded >= length
    assert padded % (1 << low) == 0  # the low E - S bits are zero
    assert padded - length < (1 << low)  # and it is the smallest such value
    significant = padded >> (padded & -padded).bit_length() - 1
    assert significant.bit_length() <= size_bits + 1


@settings(max_examples=300)
@given(a=lengths, b=lengths)
def test_padded_size_is_monotonic(a: int, b: int) -> None:
    if a <= b:
        assert padded_size(a) <= padded_size(b)


def test_padme_small_values() -> None:
    assert [padme(n) for n in range(0, 10)] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]


def test_few_distinct_sizes_leak() -> None:
    """Up to 64 MiB, Padmé leaves few possible sizes: about 9 bits of length leak."""
    sizes = set()
    for exponent in range(14, 27):
        for step in range(0, 1 << exponent, max(1, (1 << exponent) // 4096)):
            n = (1 << exponent) + step
            if n <= MAX_PLAINTEXT:
                sizes.add(padded_size(n))
    assert len(sizes) < 2**9


@settings(max_examples=200)
@given(data=st.binary(max_size=40_000))
def test_pad_round_trip(data: bytes) -> None:
    block = pad(data)
    assert len(block) == padded_size(len(data))
    assert block[:HEADER] == struct.pack(">I", len(data))
    assert block[HEADER : HEADER + len(data)] == data
    assert not any(block[HEADER + len(data) :])
    assert unpad(block) == data


@settings(max_examples=20)
@given(length=st.integers(FIXED_PADDED_SIZE, 1 << 20), fill=st.binary(min_size=1, max_size=1))
def test_pad_round_trip_above_16k(length: int, fill: bytes) -> None:
    data = fill * length
    block = pad(data)
    assert len(block) == padded_size(length) > FIXED_PADDED_SIZE
    assert unpad(block) == data


@pytest.mark.parametrize("length", [-1, MAX_PLAINTEXT + 1, 2**32])
def test_out_of_range_lengths(length: int) -> None:
    with pytest.raises(PaddingError):
        padded_size(length)


def test_unpad_refuses_non_zero_filler() -> None:
    block = bytearray(pad(b"hello"))
    for index in (HEADER + 5, len(block) // 2, len(block) - 1):
        bad = bytearray(block)
        bad[index] = 0x01
        with pytest.raises(PaddingError, match="not zero"):
            unpad(bytes(bad))


@pytest.mark.parametrize("delta", [-1, 1, -FIXED_PADDED_SIZE // 2, FIXED_PADDED_SIZE])
def test_unpad_refuses_wrong_block_size(delta: int) -> None:
    block = pad(b"hello")
    bad = block[:delta] if delta < 0 else block + bytes(delta)
    with pytest.raises(PaddingError, match="wrong size"):
        unpad(bad)


def test_unpad_refuses_lengths_that_do_not_match_the_block() -> None:
    block = bytearray(pad(b"hello"))
    for declared in (FIXED_PADDED_SIZE - HEADER + 1, 20000, MAX_PLAINTEXT + 1, 2**32 - 1):
        block[:HEADER] = struct.pack(">I", declared)
        with pytest.raises(PaddingError):
            unpad(bytes(block))


@pytest.mark.parametrize("block", [b"", b"\0", b"\0\0\0"])
def test_unpad_refuses_blocks_shorter_than_the_header(block: bytes) -> None:
    with pytest.raises(PaddingError, match="too short"):
        unpad(block)


@settings(max_examples=300)
@given(block=st.one_of(st.binary(max_size=64), st.binary(max_size=8).map(pad)))
def test_unpad_accepts_only_what_pad_makes(block: bytes) -> None:
    """Arbitrary bytes raise PaddingError (nothing else) unless pad() made exactly them."""
    try:
        data = unpad(block)
    except PaddingError:
        return
    assert pad(data) == block


@settings(max_examples=300)
@given(length=lengths)
def test_every_size_pad_makes_is_a_padded_size(length: int) -> None:
    assert is_padded_size(padded_size(length))


@settings(max_examples=300)
@given(size=st.integers(0, padded_size(MAX_PLAINTEXT) + 10))
def test_is_padded_size_accepts_exactly_the_sizes_pad_makes(size: int) -> None:
    expected = size == FIXED_PADDED_SIZE or (
        size > FIXED_PADDED_SIZE
        and padded_size(min(size - HEADER, MAX_PLAINTEXT)) == size  # the data fills it exactly
    )
    assert is_padded_size(size) == expected


@pytest.mark.parametrize(
    "size",
    [0, 1, FIXED_PADDED_SIZE - 1, FIXED_PADDED_SIZE + 1, 17407, padded_size(MAX_PLAINTEXT) + 1],
)
def test_sizes_pad_never_makes_are_not_padded_sizes(size: int) -> None:
    assert not is_padded_size(size)
