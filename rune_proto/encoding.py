"""Byte-level building blocks shared by keys, envelopes and the wire codec.

Two encodings only: base64url without padding (used once, on the wire line) and
length-prefixed binary fields (used everywhere inside envelopes and for the exact
bytes every signature covers). Nothing is ever re-serialised before verifying.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

_B64URL = re.compile(rb"[A-Za-z0-9_-]*")


class EncodingError(ValueError):
    """Bytes or text do not follow one of our encodings."""


def b64encode(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str | bytes, *, max_length: int | None = None) -> bytes:
    """Strict base64url without padding; rejects stray characters and non-canonical tails."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if max_length is not None and len(raw) > (max_length * 4 + 2) // 3:
        raise EncodingError("base64 token is longer than allowed")
    if not _B64URL.fullmatch(raw) or len(raw) % 4 == 1:
        raise EncodingError("not base64url without padding")
    try:
        data = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex screens first
        raise EncodingError("not base64url without padding") from exc
    if b64encode(data).encode("ascii") != raw:
        raise EncodingError("non-canonical base64url")
    return data


def lp(*fields: bytes) -> bytes:
    """Concatenate fields, each prefixed by its length as a 4-byte big-endian integer."""
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


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
