"""A key card: an address and its key's fingerprint in one short line, for a QR code.

``rune:<address>#<fingerprint>`` — the canonical (lower-case) address, then the 64
lower-case hex digits of the key's fingerprint (protocol.md §6.3). Short enough for a
small QR code drawn in a terminal; another client that scans it can check the contact
it has pinned for that address. Defined in protocol.md, Appendix D.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .address import Address, parse_address
from .keys import PublicKey, fingerprint_text

SCHEME = "rune:"
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


class KeyCardError(ValueError):
    """Text that is not a key card."""


@dataclass(frozen=True, slots=True)
class KeyCard:
    address: Address
    fingerprint: bytes  # SHA-256 of the public key (32 octets)

    @classmethod
    def of(cls, address: Address, key: PublicKey) -> KeyCard:
        return cls(address, key.fingerprint())

    def payload(self) -> str:
        return f"{SCHEME}{self.address}#{self.fingerprint.hex()}"

    def fingerprint_text(self) -> str:
        """The fingerprint as people compare it: 16 groups of four upper-case hex digits."""
        return fingerprint_text(self.fingerprint)

    def matches(self, key: PublicKey) -> bool:
        return key.fingerprint() == self.fingerprint


def parse_key_card(text: str) -> KeyCard:
    """The key card in ``text`` (as a scanner reads it); KeyCardError if it is not one."""
    if not text.startswith(SCHEME):
        raise KeyCardError(f"a key card starts with {SCHEME!r}")
    address_text, hash_mark, digits = text[len(SCHEME) :].partition("#")
    if not hash_mark or not _FINGERPRINT.fullmatch(digits):
        raise KeyCardError("a key card ends with '#' and 64 lower-case hex digits")
    try:
        address = parse_address(address_text)
    except ValueError as exc:
        raise KeyCardError(f"not an address: {exc}") from exc
    if str(address) != address_text:
        raise KeyCardError("the address of a key card is in canonical (lower-case) form")
    return KeyCard(address, bytes.fromhex(digits))
