"""Read marks: the live set the screens change, and the sealed ``marks`` journal behind it.

The journal starts with a sealed snapshot of every read id, then holds one sealed record per
mark made since, so marking a message read costs a 75-byte append, not an index rewrite.
It belongs to one index generation (a random token the index names too): each index write
starts a new journal, whose snapshot repeats the read flags the index holds. That copy is
what lets read marks survive an index that has to be rebuilt from the blobs — the journal
carries its own generation, so it opens without the index.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, MutableSet
from pathlib import Path

from rune_proto.client import Vault, VaultError
from rune_proto.local.atomicfile import write_atomically

GEN_BYTES = 16
_MAGIC_V1 = b"RUNEMRK1"  # a journal without a snapshot (before read marks survived rebuilds)
_MAGIC = b"RUNEMRK2"
_HEAD = len(_MAGIC) + GEN_BYTES


class ReadMarks(MutableSet[str]):
    """The ids of read messages; ``add`` and ``discard`` tell the cache, which persists them."""

    __slots__ = ("_changed", "_ids")

    def __init__(
        self,
        ids: Iterable[str] = (),
        changed: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._ids = set(ids)
        self._changed = changed

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"ReadMarks({len(self._ids)} read)"

    def add(self, value: str) -> None:
        if value not in self._ids:
            self._ids.add(value)
            if self._changed is not None:
                self._changed(value, True)

    def discard(self, value: str) -> None:
        if value in self._ids:
            self._ids.remove(value)
            if self._changed is not None:
                self._changed(value, False)

    def reset(self, ids: Iterable[str]) -> None:
        """Replace every mark without telling anyone (the cache loaded them)."""
        self._ids = set(ids)

    def set_quietly(self, value: str, read: bool) -> None:
        """Change a mark without telling anyone (loading, forgetting a deleted message)."""
        if read:
            self._ids.add(value)
        else:
            self._ids.discard(value)


class MarksJournal:
    """The ``marks`` file of one account's cache. Disk errors are the caller's to catch."""

    def __init__(self, path: Path, vault: Vault, account: str) -> None:
        self.path = path
        self.vault = vault
        self.account = account
        self.generation = secrets.token_bytes(GEN_BYTES)
        self.count = -1  # records in the journal of this generation; -1: start a new one
        self.snapshotted = True  # False: a journal from before snapshots (start a new one)

    def _record_context(self, generation: bytes, position: int) -> str:
        return f"rune/1 cache mark {self.account} {generation.hex()} {position}"

    def _snapshot_context(self, generation: bytes) -> str:
        return f"rune/1 cache read snapshot {self.account} {generation.hex()}"

    def start(self, read: Iterable[str]) -> None:
        """A new journal for :attr:`generation`: the snapshot of ``read``, no records yet.

        Written whole, fsynced and renamed into place, like the index it goes with.
        """
        snapshot = self.vault.seal(
            "\n".join(sorted(read)).encode("utf-8"), self._snapshot_context(self.generation)
        )
        write_atomically(
            self.path, _MAGIC + self.generation + len(snapshot).to_bytes(4, "big"), snapshot
        )
        self.count = 0
        self.snapshotted = True

    def append(self, message_id: str, read: bool) -> None:
        """One sealed record at the end (the journal must have been started)."""
        box = self.vault.seal(
            (b"1" if read else b"0") + message_id.encode("utf-8"),
            self._record_context(self.generation, self.count),
        )
        with self.path.open("ab") as handle:
            handle.write(len(box).to_bytes(2, "big") + box)
        self.count += 1

    def replay(self) -> list[tuple[str, bool]]:
        """The marks of the current generation, in order; a torn or foreign tail is cut off.

        A journal of another generation is ignored: its marks are in the index already.
        """
        try:
            data = self.path.read_bytes()
        except OSError:
            self.count = -1
            return []
        layout = _layout(data)
        if layout is None or layout[0] != self.generation:
            self.count = -1
            return []
        self.snapshotted = layout[1] is not None
        marks, self.count, end = self._records(data, layout[2], self.generation)
        if end != len(data):  # a torn last append: cut it off so appends line up
            try:
                with self.path.open("r+b") as handle:
                    handle.truncate(end)
            except OSError:
                self.count = -1
        return marks

    def recover(self) -> dict[str, bool]:
        """Every mark the journal knows, whatever index it belonged to (for a rebuild)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return {}
        layout = _layout(data)
        if layout is None:
            return {}
        generation, snapshot, start = layout
        marks: dict[str, bool] = {}
        if snapshot is not None:
            try:
                text = self.vault.open(snapshot, self._snapshot_context(generation))
            except VaultError:
                text = b""  # another identity's, or damaged: the records may still open
            marks.update((i, True) for i in text.decode("utf-8", "replace").split("\n") if i)
        records, _, _ = self._records(data, start, generation)
        marks.update(records)
        return marks

    def _records(
        self, data: bytes, position: int, generation: bytes
    ) -> tuple[list[tuple[str, bool]], int, int]:
        """(marks, how many records, where the last good one ends) from ``position`` on."""
        marks: list[tuple[str, bool]] = []
        count = 0
        while position + 2 <= len(data):
            size = int.from_bytes(data[position : position + 2], "big")
            box = data[position + 2 : position + 2 + size]
            if len(box) != size:
                break
            try:
                payload = self.vault.open(box, self._record_context(generation, count))
            except VaultError:
                break
            marks.append((payload[1:].decode("utf-8", "replace"), payload[:1] == b"1"))
            count += 1
            position += 2 + size
        return marks, count, position


def _layout(data: bytes) -> tuple[bytes, bytes | None, int] | None:
    """(generation, sealed snapshot or None, where the records start); None if no journal."""
    if data.startswith(_MAGIC) and len(data) >= _HEAD + 4:
        size = int.from_bytes(data[_HEAD : _HEAD + 4], "big")
        start = _HEAD + 4 + size
        if start > len(data):
            return None  # a torn snapshot: the whole journal is unusable
        return data[len(_MAGIC) : _HEAD], data[_HEAD + 4 : start], start
    if data.startswith(_MAGIC_V1) and len(data) >= _HEAD:
        return data[len(_MAGIC_V1) : _HEAD], None, _HEAD
    return None
