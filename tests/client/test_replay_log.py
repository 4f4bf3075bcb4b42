"""The client's replay log on disk: sealed by the account's vault, migrated from the clear
log of older versions, and still refusing a replay after a restart, a torn write or many
appends. Real files, a real vault."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from rune_proto.client import ReplayLog
from rune_proto.client import contacts as contacts_module
from rune_proto.client.vault import Vault
from rune_proto.keys import Identity


@pytest.fixture
def vault() -> Vault:
    return Vault(Identity.generate())


def ids(count: int) -> list[tuple[str, str]]:
    """(sender message id, server id) pairs, as the client records them."""
    return [(uuid.uuid4().hex, str(uuid.uuid4())) for _ in range(count)]


def test_no_id_is_written_in_the_clear_and_a_restart_remembers(
    tmp_path: Path, vault: Vault
) -> None:
    path = tmp_path / "seen" / "alice@example"
    seen = ids(5)
    log = ReplayLog(path, vault)
    for message_id, server_id in seen:
        assert not log.is_replay(message_id, server_id)
    data = path.read_bytes()
    for message_id, server_id in seen:
        assert message_id.encode() not in data and server_id.encode() not in data
    assert path.stat().st_mode & 0o077 == 0
    again = ReplayLog(path, vault)  # a restart
    for message_id, server_id in seen:
        assert not again.is_replay(message_id, server_id)  # the same stored message
        assert again.is_replay(message_id, str(uuid.uuid4()))  # stored twice: a replay


def test_a_clear_log_is_migrated_on_first_open_keeping_its_ids(
    tmp_path: Path, vault: Vault
) -> None:
    path = tmp_path / "seen" / "alice@example"
    path.parent.mkdir()
    seen = ids(3)
    path.write_text("".join(f"{m} {s}\n" for m, s in seen), "ascii")  # as before 0.x
    log = ReplayLog(path, vault)
    data = path.read_bytes()
    assert all(m.encode() not in data and s.encode() not in data for m, s in seen)
    assert all(log.is_replay(m, "another-server-id") for m, _ in seen)
    reopened = ReplayLog(path, vault)
    assert all(reopened.is_replay(m, "another-server-id") for m, _ in seen)
    assert path.read_bytes() == data  # migrated once; nothing new was seen since


def test_a_torn_append_is_cut_off_and_earlier_ids_kept(tmp_path: Path, vault: Vault) -> None:
    path = tmp_path / "seen"
    seen = ids(4)
    log = ReplayLog(path, vault)
    for message_id, server_id in seen:
        log.is_replay(message_id, server_id)
    with path.open("ab") as handle:  # a crash in the middle of an append
        handle.write(b"\x00\x00\x01\x00partial")
    again = ReplayLog(path, vault)
    assert all(again.is_replay(m, "x") for m, _ in seen)
    later = ids(1)[0]
    assert not again.is_replay(*later)  # appends line up again after the cut
    assert ReplayLog(path, vault).is_replay(later[0], "x")


def test_many_appends_are_folded_into_one_record_on_open(
    tmp_path: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contacts_module, "REPLAY_RECORDS_LIMIT", 3)
    path = tmp_path / "seen"
    seen = ids(10)
    log = ReplayLog(path, vault)
    for message_id, server_id in seen:
        log.is_replay(message_id, server_id)
    appended = path.stat().st_size
    folded = ReplayLog(path, vault)
    assert path.stat().st_size < appended  # one box instead of ten
    assert all(folded.is_replay(m, "x") for m, _ in seen)


def test_another_identity_cannot_read_it_and_a_log_needs_a_vault(
    tmp_path: Path, vault: Vault
) -> None:
    path = tmp_path / "seen"
    message_id, server_id = ids(1)[0]
    ReplayLog(path, vault).is_replay(message_id, server_id)
    stranger = ReplayLog(path, Vault(Identity.generate()))
    assert not stranger.is_replay(message_id, "x")  # it learnt nothing from the file
    with pytest.raises(TypeError, match="sealed"):
        ReplayLog(path)
    assert not ReplayLog().is_replay(message_id, server_id)  # in memory needs no vault


def test_a_log_under_its_old_name_is_moved_or_merged_and_the_old_name_goes(
    tmp_path: Path, vault: Vault
) -> None:
    """Issue 12 §2: ``seen/<address>`` becomes a keyed-hash name, losing no id."""
    old, new = tmp_path / "seen" / "alice@example", tmp_path / "seen" / "0123abcd"
    first, second = ids(3), ids(3)
    log = ReplayLog(old, vault)
    for message_id, server_id in first:
        log.is_replay(message_id, server_id)
    log.record_deleted(first[0][1])
    moved = ReplayLog(new, vault, migrate_from=old)  # only the old one: renamed
    assert not old.exists() and moved.was_deleted("", first[0][1])
    older = ReplayLog(old, vault)  # an older version ran again and wrote the old name
    for message_id, server_id in second:
        older.is_replay(message_id, server_id)
    older.record_deleted(second[1][1])
    merged = ReplayLog(new, vault, migrate_from=old)
    assert not old.exists()
    for reopened in (merged, ReplayLog(new, vault)):
        for message_id, _ in (*first, *second):
            assert reopened.is_replay(message_id, str(uuid.uuid4()))
        assert reopened.was_deleted("", first[0][1]) and reopened.was_deleted("", second[1][1])
