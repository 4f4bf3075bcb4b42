"""The client's local-file vault: sealed under the identity, bound to its context."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rune_proto.client.vault import Vault, VaultError
from rune_proto.keys import Identity


def test_round_trip_and_nothing_in_the_clear(tmp_path: Path) -> None:
    vault = Vault(Identity.generate())
    path = tmp_path / "sub" / "draft"
    vault.write(path, b"SECRET-SUBJECT dear bob", "draft alice@x")
    raw = path.read_bytes()
    assert b"SECRET-SUBJECT" not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert vault.read(path, "draft alice@x") == b"SECRET-SUBJECT dear bob"
    assert vault.read(tmp_path / "missing", "draft alice@x") is None


def test_same_identity_opens_what_it_sealed_another_does_not() -> None:
    identity = Identity.generate()
    box = Vault(identity).seal(b"index", "index")
    assert Vault(Identity(identity.private_bytes())).open(box, "index") == b"index"
    with pytest.raises(VaultError, match="another identity"):
        Vault(Identity.generate()).open(box, "index")


def test_context_is_bound_and_tampering_is_caught() -> None:
    vault = Vault(Identity.generate())
    box = vault.seal(b"data", "draft 1")
    with pytest.raises(VaultError):
        vault.open(box, "draft 2")
    flipped = bytearray(box)
    flipped[-1] ^= 1
    with pytest.raises(VaultError):
        vault.open(bytes(flipped), "draft 1")
    with pytest.raises(VaultError, match="not a Rune vault"):
        vault.open(b"plain text", "draft 1")


def test_names_are_stable_and_keyed() -> None:
    identity = Identity.generate()
    one, two = Vault(identity), Vault(Identity(identity.private_bytes()))
    assert one.name("message-id") == two.name("message-id")
    assert one.name("message-id") != Vault(Identity.generate()).name("message-id")
    assert "message" not in one.name("message-id")
