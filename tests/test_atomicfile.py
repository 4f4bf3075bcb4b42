"""write_atomically: whole or not at all, private from the first byte."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rune_proto.local.atomicfile import write_atomically


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_all_chunks_privately(tmp_path: Path) -> None:
    target = tmp_path / "file"
    write_atomically(target, b"one ", b"two")
    assert target.read_bytes() == b"one two"
    assert mode_of(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # no temporary left behind


def test_replaces_an_existing_file_and_honours_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "settings.toml"
    target.write_bytes(b"old")
    write_atomically(target, b"new", mode=0o640, sync=False, prefix=".settings.")
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "contacts"
    target.write_bytes(b"the old, complete contents")
    with pytest.raises(TypeError):
        write_atomically(target, b"half of the new", "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"the old, complete contents"
    assert [p.name for p in tmp_path.iterdir()] == ["contacts"]


def test_a_missing_folder_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "nowhere" / "file", b"data")


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each real fsync call synced: "dir" or "file" (the call still happens)."""
    kinds: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        kinds.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return kinds


def test_a_durable_write_syncs_the_file_then_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kinds = _record_fsyncs(monkeypatch)
    write_atomically(tmp_path / "file", b"data")
    assert kinds == ["file", "dir"]  # the folder after the rename, so the rename survives


def test_a_cache_write_syncs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = _record_fsyncs(monkeypatch)
    write_atomically(tmp_path / "file", b"data", sync=False)
    assert kinds == []
