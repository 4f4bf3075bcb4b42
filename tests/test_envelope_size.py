"""The size of a sealed message, from sizes alone, against the bytes really sealed.

``Content.json_size``, ``sealed_message_size`` and ``client_message_size`` let a client
say how big a message will be before reading its files; they must agree with what
``seal_message`` and ``seal_client_message`` make, byte for byte, across the padding
buckets, with non-ASCII text, several attachments and a reply id.
"""

from __future__ import annotations

import random

import pytest

from rune_proto.address import parse_address
from rune_proto.content import Attachment, Content
from rune_proto.envelope import (
    client_message_size,
    seal_client_message,
    seal_message,
    sealed_message_size,
)
from rune_proto.keys import Identity
from rune_proto.padding import FIXED_PADDED_SIZE, MAX_PLAINTEXT, padded_size
from rune_proto.suite import HPKE_OVERHEAD

ALICE, BOB, SERVER = (Identity.generate() for _ in range(3))

FILES = [("a.bin", 70_000), ("ü €.txt", 5), ("empty", 0), ("one", 1), ("two", 2)]
CASES = [
    ("", "", [], None),
    ("Hi", "short", [], None),
    ("Sübject ☃", 'line "quoted"\t\n\\ \u2028' * 900, FILES[:2], "ab12" * 8),
    ("x", "y" * (FIXED_PADDED_SIZE - 1400), [], None),  # around the fixed size
    ("x", "y" * FIXED_PADDED_SIZE, [], None),  # just past it: the padme buckets
    ("files", "", FILES, None),
    ("big", "b", [("big.bin", 300_001)], None),
]


def sealed_sizes(
    sender: str,
    receiver: str,
    subject: str,
    body: str,
    files: list[tuple[str, int]],
    reply: str | None,
) -> tuple[int, int]:
    attachments = tuple(Attachment(name, b"\xff" * size) for name, size in files)
    content = Content(subject, body, attachments, reply)
    sealed = seal_message(
        parse_address(sender), ALICE, parse_address(receiver), BOB.public, content
    )
    payload = seal_client_message(
        parse_address(sender), ALICE, parse_address(receiver), SERVER.public, sealed
    )
    assert len(content.to_json()) == Content.json_size(subject, body, files, reply)
    return len(sealed), len(payload)


@pytest.mark.parametrize(("subject", "body", "files", "reply"), CASES)
def test_the_estimate_is_the_sealed_size(
    subject: str, body: str, files: list[tuple[str, int]], reply: str | None
) -> None:
    sealed, payload = sealed_sizes("alice@example", "bob@example", subject, body, files, reply)
    content_size = Content.json_size(subject, body, files, reply)
    assert sealed_message_size("alice@example", "bob@example", content_size) == sealed
    assert client_message_size(sealed) == payload


def test_random_bodies_across_the_buckets() -> None:
    """A fixed seed: the same cases every run, bodies of every length class."""
    rng = random.Random(13)
    sender, receiver = "abc@b.example", "some.longer.name@mail.example.org"
    for _ in range(40):
        length = rng.choice(
            [rng.randrange(0, 200), rng.randrange(0, 20_000), rng.randrange(0, 200_000)]
        )
        body = "".join(rng.choice('aé€\n"\\\u0001') for _ in range(length))
        files = [(f"f{n}.dat", rng.randrange(0, 5000)) for n in range(rng.randrange(0, 4))]
        sealed, payload = sealed_sizes(sender, receiver, "s", body, files, None)
        content_size = Content.json_size("s", body, files, None)
        assert sealed_message_size(sender, receiver, content_size) == sealed
        assert client_message_size(sealed) == payload


def test_past_the_largest_message_the_number_keeps_growing() -> None:
    """Too big to seal at all: more than the largest sealed size, by the excess."""
    largest = sealed_message_size("a@b", "c@d", MAX_PLAINTEXT - 10_000)
    beyond = sealed_message_size("a@b", "c@d", MAX_PLAINTEXT + 10_000)
    assert largest <= padded_size(MAX_PLAINTEXT) + HPKE_OVERHEAD
    assert beyond > largest + 10_000 - 1
