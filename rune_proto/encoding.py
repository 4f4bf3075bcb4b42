"""Byte-level building blocks shared by keys, envelopes and the wire codec.

Two encodings only: base64url without padding (used once, on the wire line) and
length-prefixed binary fields (used everywhere inside envelopes and for the exact
bytes every signature covers). Nothing is ever re-serialised before verifying.
"""

from __future__ import annotations

import base64
import binascii
import struct

_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


class EncodingError(ValueError):
    """Bytes or text do not follow one of our encodings."""


def b64encode(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str | bytes, *, max_length: int | None = None) -> bytes:
    """Strict base64url without padding; rejects stray characters and non-canonical tails.

    Every MESSAGE line goes through here, so it is kept to one pass of the C decoder
    (about half the cost of a regex screen, a decode and a full re-encode): ``+``, ``/``
    and ``=`` are refused up front, strict mode refuses everything else outside the
    alphabet, and only the last partial group can be non-canonical, so only it is
    re-encoded and compared.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if max_length is not None and len(raw) > (max_length * 4 + 2) // 3:
        raise EncodingError("base64 token is longer than allowed")
    tail = len(raw) % 4
    if tail == 1 or b"+" in raw or b"/" in raw or b"=" in raw:
        raise EncodingError("not base64url without padding")
    try:
        data = binascii.a2b_base64(
            raw.translate(_TO_STANDARD) + b"=" * (-tail % 4), strict_mode=True
        )
    except binascii.Error as exc:
        raise EncodingError("not base64url without padding") from exc
    if tail and b64encode(data[-(tail - 1) :]).encode("ascii") != raw[-tail:]:
        raise EncodingError("non-canonical base64url")
    return data


_U32 = struct.Struct(">I").pack


def lp(*fields: bytes) -> bytes:
    """Concatenate fields, each prefixed by its length as a 4-byte big-endian integer.

    One join over prefixes and fields: no ``prefix + field`` copy of each ~20 KB field.
    """
    parts: list[bytes] = []
    for f in fields:
        parts += (_U32(len(f)), f)
    return b"".join(parts)


def canonical(context: bytes, *fields: bytes) -> bytes:
    """The exact bytes a signature covers: a domain-separation context, then the fields."""
    return lp(context, *fields)


class FieldReader:
    """Reads length-prefixed and fixed-width fields; every overrun is an EncodingError."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def fixed(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise EncodingError("truncated field")
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk

    def field(self, max_size: int | None = None) -> bytes:
        (size,) = struct.unpack(">I", self.fixed(4))
        if max_size is not None and size > max_size:
            raise EncodingError("field longer than allowed")
        return self.fixed(size)

    def u64(self) -> int:
        (value,) = struct.unpack(">Q", self.fixed(8))
        return int(value)

    def end(self) -> None:
        """Insist that nothing trails the last field (exact-length rule)."""
        if self._pos != len(self._data):
            raise EncodingError("unexpected bytes after the last field")
