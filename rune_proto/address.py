"""Rune addresses: ``USERNAME@DOMAIN``.

Both parts are 3–50 characters of ASCII letters, digits, ``.``, ``-`` and ``_``.
Addresses compare case-insensitively, so we normalise to lower case once, here,
and every other module can compare the canonical text byte for byte.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

PART_MIN = 3
PART_MAX = 50
MAX_ADDRESS_LENGTH = 2 * PART_MAX + 1
_PART = re.compile(r"[A-Za-z0-9._-]+")
_RANDOM_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no l/o/0/1: easy to read aloud


class AddressError(ValueError):
    """A text is not a valid Rune address; the message says which rule it breaks."""


def _check_part(label: str, part: str) -> None:
    if not PART_MIN <= len(part) <= PART_MAX:
        raise AddressError(
            f"the {label} must be {PART_MIN} to {PART_MAX} characters long, not {len(part)}"
        )
    if not _PART.fullmatch(part):
        bad = next(c for c in part if not _PART.fullmatch(c))
        raise AddressError(
            f"the {label} may hold only letters, digits, '.', '-' and '_' (found {bad!r})"
        )


@dataclass(frozen=True, slots=True)
class Address:
    """A validated, lower-cased address; ``str(address)`` is its canonical form."""

    username: str
    domain: str

    def __post_init__(self) -> None:
        _check_part("username", self.username)
        _check_part("domain", self.domain)
        if self.username != self.username.lower() or self.domain != self.domain.lower():
            raise AddressError("address parts must be lower case; use parse_address()")

    def __str__(self) -> str:
        return f"{self.username}@{self.domain}"

    def encode(self) -> bytes:
        """The canonical bytes that signatures cover."""
        return str(self).encode("ascii")


def parse_address(text: str) -> Address:
    """Parse and normalise ``USERNAME@DOMAIN``; raise :class:`AddressError` if invalid."""
    if not isinstance(text, str):
        raise AddressError("an address must be text")
    if len(text) > MAX_ADDRESS_LENGTH:
        raise AddressError(f"an address is at most {MAX_ADDRESS_LENGTH} characters long")
    if text.count("@") != 1:
        raise AddressError("an address has exactly one '@', as in username@domain")
    username, domain = text.split("@")
    _check_part("username", username)
    _check_part("domain", domain)
    return Address(username.lower(), domain.lower())


def validate_part(label: str, part: str) -> str:
    """Check one part on its own (the TUI validates a username as it is typed)."""
    _check_part(label, part)
    return part.lower()


def random_part(length: int = 12) -> str:
    """A random username or domain, as the draft recommends for anonymity."""
    if not PART_MIN <= length <= PART_MAX:
        raise AddressError(f"a random part must be {PART_MIN} to {PART_MAX} characters long")
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(length))


def random_address(domain: str, length: int = 12) -> Address:
    """A fresh random username on ``domain``."""
    return Address(random_part(length), validate_part("domain", domain))
