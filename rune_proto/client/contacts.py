"""Trust on first use for contacts, and replay detection for received messages.

A contact's key is pinned the first time we see it (in a received message or in the
server's ``201``). A different key later is never silently accepted: sending is
blocked and received messages are flagged until the user accepts the new key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import tomlfile
from ..address import Address, parse_address
from ..keys import PublicKey

COMPARED_IN_PERSON = "compared in person"


@dataclass(frozen=True, slots=True)
class Contact:
    address: Address
    key: PublicKey
    first_seen: datetime
    # How the pin was made: "first message", "first send", "lookup", "accepted change",
    # or "compared in person" once the user confirmed the fingerprint out of band.
    how: str
    name: str = ""

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint_text()


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The outcome of comparing an offered key with the pin."""

    contact: Contact
    new: bool  # pinned just now
    changed: bool  # the offered key differs from the pin
    offered: PublicKey


class ContactBook:
    """Address → pinned key, kept in a TOML file (or only in memory if ``path`` is None)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._contacts: dict[Address, Contact] = {}
        if path is not None:
            self._load(tomlfile.read(path))

    def _load(self, doc: dict[str, Any]) -> None:
        for text, entry in doc.get("contacts", {}).items():
            try:
                address = parse_address(text)
                self._contacts[address] = Contact(
                    address=address,
                    key=PublicKey.from_token(entry["key"]),
                    first_seen=datetime.fromisoformat(entry["first_seen"]),
                    how=str(entry.get("how", "")),
                    name=str(entry.get("name", "")),
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise tomlfile.TomlError(
                    f"contact {text!r} in {self.path} is damaged: {exc}"
                ) from exc

    def save(self) -> None:
        if self.path is None:
            return
        tomlfile.write(
            self.path,
            {
                "contacts": {
                    str(c.address): {
                        "key": c.key.token(),
                        "fingerprint": c.fingerprint,
                        "first_seen": c.first_seen.isoformat(),
                        "how": c.how,
                        "name": c.name,
                    }
                    for c in sorted(self._contacts.values(), key=lambda c: str(c.address))
                }
            },
        )

    def __iter__(self) -> Iterator[Contact]:
        return iter(sorted(self._contacts.values(), key=lambda c: str(c.address)))

    def __len__(self) -> int:
        return len(self._contacts)

    def get(self, address: Address) -> Contact | None:
        return self._contacts.get(address)

    def check(self, address: Address, key: PublicKey, how: str) -> KeyCheck:
        """Pin ``key`` if ``address`` is new; otherwise report whether it changed."""
        known = self._contacts.get(address)
        if known is None:
            known = Contact(address, key, datetime.now(UTC), how)
            self._contacts[address] = known
            self.save()
            return KeyCheck(known, new=True, changed=False, offered=key)
        return KeyCheck(known, new=False, changed=known.key != key, offered=key)

    def accept(self, address: Address, key: PublicKey) -> Contact:
        """The user accepted a (changed) key: pin it."""
        known = self._contacts.get(address)
        first = known.first_seen if known else datetime.now(UTC)
        contact = Contact(address, key, first, "accepted change" if known else "accepted")
        if known is not None:
            contact = replace(contact, name=known.name)
        self._contacts[address] = contact
        self.save()
        return contact

    def mark_compared(self, address: Address, key: PublicKey) -> Contact:
        """The user compared ``key``'s fingerprint with the contact in person: record it.

        ``key`` is the key the user was shown; if the pin changed meanwhile, nothing is
        marked (ValueError), so a confirmation can never vouch for a key it did not see.
        """
        known = self._contacts.get(address)
        if known is None:
            raise KeyError(f"{address} is not a contact")
        if known.key != key:
            raise ValueError(f"the pinned key of {address} changed since it was shown")
        contact = replace(known, how=COMPARED_IN_PERSON)
        self._contacts[address] = contact
        self.save()
        return contact

    def remove(self, address: Address) -> None:
        self._contacts.pop(address, None)
        self.save()


class ReplayLog:
    """Sender message ids already seen, with the server id that first carried each.

    A message id arriving again under a different server id is a replay: the server
    (or someone who had the blob) stored the same signed message twice.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._seen: dict[str, str] = {}
        if path is not None and path.exists():
            for line in path.read_text("ascii").splitlines():
                message_id, _, server_id = line.partition(" ")
                if message_id and server_id:
                    self._seen.setdefault(message_id, server_id)

    def is_replay(self, message_id: str, server_id: str) -> bool:
        """Record ``message_id``; True if an earlier, different server id carried it."""
        first = self._seen.get(message_id)
        if first is None:
            self._seen[message_id] = server_id
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="ascii") as handle:
                    handle.write(f"{message_id} {server_id}\n")
            return False
        return first != server_id
