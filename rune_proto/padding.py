"""Length hiding for message plaintexts.

Everything that fits is padded to one fixed size (16 KiB), so typical mail leaks no
length at all. Larger plaintexts are padded with Padmé (Nikitin et al., 2019): the
padded length keeps only the top ~log2(log2(L)) bits of the length, leaking at most
about 9 bits up to 64 MiB for under 12% overhead.

Layout: ``u32 length ‖ data ‖ zero bytes`` up to :func:`padded_size`.
"""

from __future__ import annotations

import struct

FIXED_PADDED_SIZE = 16 * 1024
MAX_PLAINTEXT = 64 * 1024 * 1024
_HEADER = 4


class PaddingError(ValueError):
    """A padded block is malformed: wrong total size, bad length, non-zero filler."""


def padme(length: int) -> int:
    """Round ``length`` up so that only the top bits of its magnitude remain."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1  # floor(log2(L))
    size_bits = exponent.bit_length()  # floor(log2(E)) + 1
    mask = (1 << (exponent - size_bits)) - 1
    return (length + mask) & ~mask


def padded_size(plaintext_length: int) -> int:
    """The total padded size for a plaintext of this many bytes."""
    if plaintext_length < 0 or plaintext_length > MAX_PLAINTEXT:
        raise PaddingError(f"plaintext must be 0 to {MAX_PLAINTEXT} bytes")
    total = plaintext_length + _HEADER
    if total <= FIXED_PADDED_SIZE:
        return FIXED_PADDED_SIZE
    return padme(total)


def pad(data: bytes) -> bytes:
    size = padded_size(len(data))
    return struct.pack(">I", len(data)) + data + bytes(size - _HEADER - len(data))


def unpad(block: bytes) -> bytes:
    """Undo :func:`pad`, insisting the block is exactly the size ``pad`` would make."""
    if len(block) < _HEADER:
        raise PaddingError("padded block is too short")
    (length,) = struct.unpack(">I", block[:_HEADER])
    if length > MAX_PLAINTEXT or padded_size(length) != len(block):
        raise PaddingError("padded block has the wrong size for its declared length")
    end = _HEADER + length
    if block.count(0, end) != len(block) - end:  # count() is ~10x faster than any()
        raise PaddingError("padding bytes are not zero")
    return bytes(block[_HEADER:end])


def is_padded_size(size: int) -> bool:
    """Whether ``pad`` can produce a block of exactly this size (checked before decrypting)."""
    if size == FIXED_PADDED_SIZE:
        return True
    return FIXED_PADDED_SIZE < size <= padded_size(MAX_PLAINTEXT) and padme(size) == size
