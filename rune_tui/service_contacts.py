"""Opening an account's contact book and replay log, from their sealed, hashed names.

Part of the service layer. Both files were once named by the address (and the book
kept in the clear); opening them here moves them over, losing nothing.
"""

from __future__ import annotations

from rune_proto.address import Address
from rune_proto.client import ContactBook, ContactBookError, ReplayLog, Vault

from .config import Paths


def open_contact_book(paths: Paths, address: Address, vault: Vault) -> tuple[ContactBook, str]:
    """The account's book, and "" or why it did not open.

    A book that does not open (damaged, or another identity's) is left as it is, and
    this run pins in a book kept in memory: the user is told, in the returned words.
    """
    try:
        book = ContactBook(
            paths.contacts_file(address, vault),
            vault,
            address,
            migrate_from=paths.legacy_contacts_file(address),
        )
    except ContactBookError as exc:
        text = str(exc)
        return ContactBook(), (
            f"{text[:1].upper()}{text[1:]}. Until then, keys seen in this session are not "
            "remembered, and a changed key of a known contact cannot be noticed."
        )
    return book, ""


def open_replay_log(paths: Paths, address: Address, vault: Vault) -> ReplayLog:
    """The account's sealed replay log (moved from its old, address-named file)."""
    legacy = paths.legacy_replay_log(address)
    return ReplayLog(paths.replay_log(address, vault), vault, migrate_from=legacy)
