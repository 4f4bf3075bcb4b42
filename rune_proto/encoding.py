"""Byte-level building blocks shared by keys, envelopes and the wire codec.

Two encodings only: base64url without padding (used once, on the wire line) and
length-prefixed binary fields (used everywhere inside envelopes and for the exact
bytes every signature covers). Nothing is ever re-serialised before verifying.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable

try:  # SIMD base64 (AVX2, NEON): ~6 µs for a 25 KB MESSAGE line against ~55-85 µs
    import pybase64

    _HAVE_SIMD = True
except ImportError:  # pragma: no cover - the standard library's decoder then
    _HAVE_SIMD = False

_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _decode_standard(padded: bytes) -> bytes:
    """Padded base64url to bytes with the standard library (strict: any stray byte fails)."""
    return binascii.a2b_base64(padded.translate(_TO_STANDARD), strict_mode=True)


def _encode_standard(data: bytes | memoryview) -> bytes:
    return base64.urlsafe_b64encode(data)


def _decode_simd(padded: bytes) -> bytes:
    """The same with pybase64. It takes ``+`` and ``/`` as well as ``-`` and ``_`` even
    with ``altchars``; b64decode refuses those before it gets here."""
    return pybase64.b64decode(padded, altchars=b"-_", validate=True)


def _encode_simd(data: bytes | memoryview) -> bytes:
    return pybase64.urlsafe_b64encode(data)


# Which base64 the codec runs: pybase64 when it is installed (a project dependency,
# but the standard library path stays, and is tested: tests/test_b64decode.py).
BASE64_BACKEND = "pybase64" if _HAVE_SIMD else "stdlib"
_Encoder = Callable[[bytes | memoryview], bytes]
_decode_padded: Callable[[bytes], bytes] = _decode_simd if _HAVE_SIMD else _decode_standard
_encode_padded: _Encoder = _encode_simd if _HAVE_SIMD else _encode_standard


def use_base64_backend(name: str) -> None:
    """Switch the codec to ``"pybase64"`` or ``"stdlib"`` (tests, benchmarks)."""
    global BASE64_BACKEND, _decode_padded, _encode_padded
    if name == "pybase64" and _HAVE_SIMD:
        _decode_padded, _encode_padded = _decode_simd, _encode_simd
    elif name == "stdlib":
        _decode_padded, _encode_padded = _decode_standard, _encode_standard
    else:
        raise ValueError(f"no base64 backend {name!r} here")
    BASE64_BACKEND = name


class EncodingError(ValueError):
    """Bytes or text do not follow one of our encodings."""


def b64encode(data: bytes) -> str:
    """Base64url without padding."""
    return _encode_padded(data).rstrip(b"=").decode("ascii")


def b64encode_bytes(data: bytes | memoryview) -> bytes:
    """Base64url without padding, as ASCII bytes (a piece of a long reply line)."""
    return _encode_padded(data).rstrip(b"=")


def b64decode(text: str | bytes, *, max_length: int | None = None) -> bytes:
    """Strict base64url without padding; rejects stray characters and non-canonical tails.

    Every MESSAGE line goes through here, so it is kept to one pass of a C decoder
    (pybase64's SIMD one when installed, else the standard library's): ``+``, ``/``
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
        data = _decode_padded(raw + b"=" * (-tail % 4) if tail else raw)
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
