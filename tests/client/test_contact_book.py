"""The contact book on disk: sealed, bound to its account, migrated from the clear file.

The book is the user's social graph, so a copy of the file must show nobody (issue 12,
section 2); a clear book from an older version is sealed without losing a field; a book
that does not open says so and is left as it was.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rune_proto.address import parse_address
from rune_proto.client import ContactBook, ContactBookError
from rune_proto.client.contact_book import book_context
from rune_proto.client.contacts import COMPARED_IN_PERSON
from rune_proto.client.vault import Vault
from rune_proto.keys import Identity, PublicKey
from rune_proto.local import tomlfile

ALICE = parse_address("alice@example")
BOB = parse_address("bob@example")
CAROL = parse_address("carol@example")
FIRST_SEEN = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def key(seed: int) -> PublicKey:
    return Identity(bytes([seed]) * 128).public


def vault(seed: int = 42) -> Vault:
    return Vault(Identity(bytes([seed]) * 128))


def write_clear_book(path: Path) -> None:
    """A book as versions before sealing wrote it, with a field this version never wrote."""
    tomlfile.write(
        path,
        {
            "contacts": {
                str(BOB): {
                    "key": key(1).token(),
                    "fingerprint": key(1).fingerprint_text(),
                    "first_seen": FIRST_SEEN.isoformat(),
                    "how": COMPARED_IN_PERSON,
                    "name": "Bobby Tables",
                    "note": "met at the conference",
                    "met": FIRST_SEEN,  # a TOML date-time, as a hand edit would write
                },
                str(CAROL): {
                    "key": key(2).token(),
                    "fingerprint": key(2).fingerprint_text(),
                    "first_seen": "2025-04-01T08:00:00+00:00",
                    "how": "first send",
                    "name": "",
                },
            }
        },
    )


def secrets_of_the_book() -> list[bytes]:
    texts = [str(BOB), str(CAROL), "Bobby Tables", "met at the conference", "2025-03-14"]
    texts += [key(1).token(), key(2).token(), key(1).fingerprint_text()]
    texts += [key(1).fingerprint().hex(), key(1).fingerprint_text().replace(" ", "")]
    return [t.encode() for t in texts]


def test_a_clear_book_is_sealed_losing_nothing_and_the_clear_file_goes(tmp_path: Path) -> None:
    legacy, sealed = tmp_path / "alice@example.toml", tmp_path / "book"
    write_clear_book(legacy)
    book = ContactBook(sealed, vault(), ALICE, migrate_from=legacy)
    assert not legacy.exists()
    data = sealed.read_bytes()
    for secret in secrets_of_the_book():
        assert secret not in data, secret
    reopened = ContactBook(sealed, vault(), ALICE)
    for opened in (book, reopened):
        bob, carol = opened.get(BOB), opened.get(CAROL)
        assert bob is not None and carol is not None
        assert (bob.key, bob.first_seen, bob.how, bob.name) == (
            key(1),
            FIRST_SEEN,
            COMPARED_IN_PERSON,
            "Bobby Tables",
        )
        assert (carol.key, carol.how, carol.name) == (key(2), "first send", "")
    reopened.rename(CAROL, "Carol")  # a later save still carries the unknown field
    doc = json.loads(vault().open(sealed.read_bytes(), book_context(ALICE)))
    assert doc["contacts"][str(BOB)]["note"] == "met at the conference"
    assert doc["contacts"][str(BOB)]["met"] == FIRST_SEEN.isoformat()
    assert doc["contacts"][str(CAROL)]["name"] == "Carol"


def test_a_crash_between_sealing_and_removing_the_clear_file_loses_nothing(
    tmp_path: Path,
) -> None:
    legacy, sealed = tmp_path / "alice@example.toml", tmp_path / "book"
    write_clear_book(legacy)
    book = ContactBook(sealed, vault(), ALICE)  # the sealed book, newer pin for carol
    book.check(CAROL, key(3), "first message")
    book.check(parse_address("dave@example"), key(4), "lookup")
    merged = ContactBook(sealed, vault(), ALICE, migrate_from=legacy)
    assert not legacy.exists()
    assert [str(c.address) for c in merged] == [str(BOB), str(CAROL), "dave@example"]
    carol = merged.get(CAROL)
    assert carol is not None and carol.key == key(3)  # the sealed book wins a conflict


def test_a_book_of_another_identity_or_account_does_not_open_and_is_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "book"
    ContactBook(path, vault(1), ALICE).check(BOB, key(1), "first message")
    before = path.read_bytes()
    with pytest.raises(ContactBookError, match="another identity or account"):
        ContactBook(path, vault(2), ALICE)
    with pytest.raises(ContactBookError, match="another identity or account"):
        ContactBook(path, vault(1), BOB)  # same key, another account's book
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "does not open"),  # torn
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "does not open"),  # a bit flipped
        (lambda data: b"\xff\xfe not toml [[", "neither sealed nor readable TOML"),
        (lambda data: b'[contacts."bob@example"]\nkey = "x"\n', "damaged"),
    ],
)
def test_a_damaged_book_gives_a_clear_message_and_is_left_as_it_was(
    tmp_path: Path, damage: object, message: str
) -> None:
    path = tmp_path / "book"
    ContactBook(path, vault(), ALICE).check(BOB, key(1), "first message")
    assert callable(damage)
    path.write_bytes(damage(path.read_bytes()))
    before = path.read_bytes()
    with pytest.raises(ContactBookError, match=message) as caught:
        ContactBook(path, vault(), ALICE)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before


def test_a_damaged_clear_book_is_not_removed(tmp_path: Path) -> None:
    legacy, sealed = tmp_path / "alice@example.toml", tmp_path / "book"
    legacy.write_text('[contacts."bob@example"]\nfirst_seen = "yesterday"\n')
    with pytest.raises(ContactBookError, match="bob@example"):
        ContactBook(sealed, vault(), ALICE, migrate_from=legacy)
    assert legacy.exists() and not sealed.exists()


def test_a_book_on_disk_must_be_sealed(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sealed"):
        ContactBook(tmp_path / "book")
