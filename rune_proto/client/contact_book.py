"""Trust on first use for contacts: the contact book, sealed on disk.

A contact's key is pinned the first time we see it (in a received message or in the
server's ``201``). A different key later is never silently accepted: sending is
blocked and received messages are flagged until the user accepts the new key.

The book is the user's social graph (every correspondent, their key, when they first
wrote, the name the user gave them), so on disk it is sealed by the account's
:class:`~.vault.Vault` like every other file a client keeps: one box whose context names
the book and its account, so a book sealed by another identity, or for another account,
never opens as this one's. A book in the clear (from before it was sealed) is read,
rewritten sealed and then removed, losing nothing; see :meth:`ContactBook.__init__`.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from ..address import Address, parse_address
from ..keys import PublicKey
from ..local import tomlfile
from ..local.atomicfile import sync_folder
from .errors import ClientError
from .vault import MAGIC as SEALED_MAGIC
from .vault import Vault, VaultError

COMPARED_IN_PERSON = "compared in person"
_FORMAT = 1  # of the sealed book's JSON


class ContactBookError(ClientError, tomlfile.TomlError):
    """The contact book cannot be opened; the message names the file and what to do.

    The file is left as it was: nothing in it is lost by failing to open it.
    """


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


def book_context(owner: Address) -> str:
    """What the sealed book's box is bound to: the book, and whose it is."""
    return f"rune/1 contact book of {owner}"


class ContactBook:
    """Address → pinned key: sealed in a file, or only in memory if ``path`` is None."""

    def __init__(
        self,
        path: Path | None = None,
        vault: Vault | None = None,
        owner: Address | None = None,
        *,
        migrate_from: Path | None = None,
    ) -> None:
        """Open the book at ``path``, sealed by ``vault`` for the account ``owner``.

        ``migrate_from`` is where an older version kept it (the clear TOML, under a name
        that carried the address): its contacts are merged in (the sealed book wins on a
        conflict), the sealed book is written and fsynced, and only then is the old file
        removed, so a crash at any point loses nothing. A damaged book or one sealed by
        another identity raises :class:`ContactBookError` and is left untouched.
        """
        if path is not None and (vault is None or owner is None):
            raise TypeError("a contact book on disk is sealed: pass the account's Vault and owner")
        self.path = path
        self._vault = vault
        self._owner = owner
        self._contacts: dict[Address, Contact] = {}
        self._extra: dict[Address, dict[str, Any]] = {}  # fields this version does not know
        if path is None:
            return
        needs_sealing = self._load(path)
        legacy = migrate_from if migrate_from is not None and migrate_from != path else None
        if legacy is not None and legacy.exists():
            self._load(legacy, keep_known=True)
            needs_sealing = True
        if needs_sealing:
            self.save()
        if legacy is not None and legacy.exists():
            legacy.unlink()
            sync_folder(legacy.parent)

    def _load(self, path: Path, *, keep_known: bool = False) -> bool:
        """Read a sealed or clear book into memory; True if it was in the clear."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ContactBookError(f"can't read the contact book {path}: {exc.strerror}") from exc
        if data.startswith(SEALED_MAGIC):
            entries = self._open_sealed(path, data)
            clear = False
        else:
            entries = _read_clear(path, data)
            clear = True
        for text, entry in entries.items():
            contact, extra = _parse_entry(path, text, entry)
            if keep_known and contact.address in self._contacts:
                continue
            self._contacts[contact.address] = contact
            if extra:
                self._extra[contact.address] = extra
        return clear

    def _open_sealed(self, path: Path, data: bytes) -> dict[str, Any]:
        assert self._vault is not None and self._owner is not None
        try:
            text = self._vault.open(data, book_context(self._owner))
        except VaultError:
            raise ContactBookError(
                f"the contact book {path} does not open with {self._owner}'s key: it is "
                "damaged, or it belongs to another identity or account. It was left as it "
                "is; restore it from a backup, or move it away to start an empty book"
            ) from None
        try:
            doc = json.loads(text)
            contacts = doc["contacts"]
            if not isinstance(contacts, dict):
                raise TypeError("contacts is not a table")
        except (ValueError, KeyError, TypeError) as exc:
            raise ContactBookError(f"the contact book {path} is damaged inside: {exc}") from exc
        return contacts

    def save(self) -> None:
        if self.path is None:
            return
        assert self._vault is not None and self._owner is not None
        doc = {
            "format": _FORMAT,
            "contacts": {
                str(c.address): {
                    **self._extra.get(c.address, {}),
                    "key": c.key.token(),
                    "first_seen": c.first_seen.isoformat(),
                    "how": c.how,
                    "name": c.name,
                }
                for c in self
            },
        }
        data = json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")
        self._vault.write(self.path, data, book_context(self._owner))

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

    def rename(self, address: Address, name: str) -> Contact:
        """Give a contact the user's own name for them (kept sealed like the rest)."""
        known = self._contacts.get(address)
        if known is None:
            raise KeyError(f"{address} is not a contact")
        contact = replace(known, name=name.strip())
        self._contacts[address] = contact
        self.save()
        return contact

    def remove(self, address: Address) -> None:
        self._contacts.pop(address, None)
        self._extra.pop(address, None)
        self.save()


def _read_clear(path: Path, data: bytes) -> dict[str, Any]:
    """The contacts table of a book from before it was sealed (TOML in the clear)."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ContactBookError(
            f"the contact book {path} is neither sealed nor readable TOML ({exc}); it was "
            "left as it is"
        ) from exc
    contacts = doc.get("contacts", {})
    if not isinstance(contacts, dict):
        raise ContactBookError(f"the contact book {path}: [contacts] is not a table")
    return contacts


def _parse_entry(path: Path, text: str, entry: Any) -> tuple[Contact, dict[str, Any]]:
    """One contact, and the fields this version does not use (kept, never dropped)."""
    try:
        address = parse_address(text)
        contact = Contact(
            address=address,
            key=PublicKey.from_token(entry["key"]),
            first_seen=_when(entry["first_seen"]),
            how=str(entry.get("how", "")),
            name=str(entry.get("name", "")),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ContactBookError(
            f"contact {text!r} in {path} is damaged ({exc}); the book was left as it is"
        ) from exc
    known = {"key", "first_seen", "how", "name", "fingerprint"}  # fingerprint: derived
    extra = {k: _plain(v) for k, v in entry.items() if k not in known}
    return contact, extra


def _when(value: Any) -> datetime:
    """first_seen as written (ISO text), or as a TOML date-time if edited by hand."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _plain(value: Any) -> Any:
    """A TOML value as JSON can hold it (dates and times as ISO text), so none is dropped."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, date | time):
        return value.isoformat()
    return value
