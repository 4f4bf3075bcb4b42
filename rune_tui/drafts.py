"""Drafts: what compose has not sent yet, kept sealed on disk so it survives a crash.

Each draft is one file under ``<data dir>/drafts/<keyed hash of the address>/``, sealed
with the account's :class:`~rune_proto.client.vault.Vault`: the disk shows neither the
text nor who it is for, and a draft of one account cannot be opened — or swapped in —
as another's. Attachments are remembered by path (the files stay where they are),
except those carried in memory — a forwarded message's files, which exist nowhere else.
Those are sealed beside the draft, one ``<draft id>.<keyed hash>.part`` file each:
written once and kept while the draft refers to them, so the autosave after every pause
in typing does not re-encrypt megabytes, and the disk shows no file name or content hash.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rune_proto.address import Address
from rune_proto.client import Vault, VaultError
from rune_proto.envelope import Attachment

from .filenames import safe_filename

if TYPE_CHECKING:
    from .service import Mailbox

SUFFIX = ".draft"
PART_SUFFIX = ".part"


def new_draft_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Draft:
    id: str
    to: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: str | None = None
    attachments: tuple[str, ...] = ()  # paths of the files to attach
    forwarded: tuple[Attachment, ...] = ()  # files carried in memory (a forward's)
    saved_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def empty(self) -> bool:
        return not (self.to.strip() or self.subject.strip() or self.body.strip())

    @property
    def file_count(self) -> int:
        return len(self.attachments) + len(self.forwarded)

    def to_json(self, parts: tuple[str, ...] = ()) -> bytes:
        """The draft as JSON; ``parts`` names where each forwarded file is sealed."""
        doc = {
            "version": 1,
            "to": self.to,
            "subject": self.subject,
            "body": self.body,
            "in_reply_to": self.in_reply_to,
            "attachments": list(self.attachments),
            "forwarded": [
                {"filename": file.filename, "part": part}
                for file, part in zip(self.forwarded, parts, strict=True)
            ],
            "saved_at": self.saved_at.isoformat(),
        }
        return json.dumps(doc, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(
        cls, draft_id: str, raw: bytes, read_part: Callable[[str], bytes] | None = None
    ) -> Draft:
        """The draft in ``raw``; ``read_part`` opens a forwarded file by its part name."""
        doc: dict[str, Any] = json.loads(raw.decode("utf-8"))
        reply = doc.get("in_reply_to")
        forwarded = tuple(
            Attachment(safe_filename(str(entry["filename"])), read_part(str(entry["part"])))
            for entry in doc.get("forwarded", [])
            if read_part is not None
        )
        return cls(
            id=draft_id,
            to=str(doc.get("to", "")),
            subject=str(doc.get("subject", "")),
            body=str(doc.get("body", "")),
            in_reply_to=str(reply) if reply is not None else None,
            attachments=tuple(str(p) for p in doc.get("attachments", [])),
            forwarded=forwarded,
            saved_at=datetime.fromisoformat(str(doc["saved_at"])),
        )


class DraftStore:
    """The drafts of one account, sealed under its identity."""

    def __init__(self, data_dir: Path, address: Address, vault: Vault) -> None:
        self.address = address
        self.vault = vault
        self.folder = data_dir / "drafts" / vault.name(f"drafts of {address}")
        self.damaged = 0  # files the last listing could not open
        self._digests: dict[int, tuple[bytes, str]] = {}  # id(data) → (data, its part name)

    @classmethod
    def for_mailbox(cls, mailbox: Mailbox) -> DraftStore:
        return cls(mailbox.paths.data_dir, mailbox.address, Vault(mailbox.identity))

    def _path(self, draft_id: str) -> Path:
        if not draft_id.isalnum():
            raise ValueError(f"{draft_id!r} is not a draft id")
        return self.folder / f"{draft_id}{SUFFIX}"

    def _context(self, draft_id: str) -> str:
        return f"rune-tui draft v1 {self.address} {draft_id}"

    def _part_name(self, data: bytes) -> str:
        """A name for a forwarded file's content that reveals nothing (keyed hash)."""
        known = self._digests.get(id(data))
        if known is None or known[0] is not data:
            digest = hashlib.sha256(data).hexdigest()
            known = (data, self.vault.name(f"draft part {digest}")[:24])
            self._digests[id(data)] = known
        return known[1]

    def _part_path(self, draft_id: str, part: str) -> Path:
        if not part.isalnum():
            raise ValueError(f"{part!r} is not a draft part")
        return self._path(draft_id).with_suffix(f".{part}{PART_SUFFIX}")

    def _part_context(self, draft_id: str, part: str) -> str:
        return f"rune-tui draft part v1 {self.address} {draft_id} {part}"

    def _parts_on_disk(self, draft_id: str) -> dict[str, Path]:
        self._path(draft_id)  # checks the id
        found = self.folder.glob(f"{draft_id}.*{PART_SUFFIX}") if self.folder.is_dir() else []
        return {p.name.split(".")[1]: p for p in found}

    def save(self, draft: Draft) -> Draft:
        """Seal and write ``draft`` (atomically, 0600); returns it with the new time.

        Forwarded files are sealed first, each once, so the draft never names a part
        that is not on disk; parts it no longer names are removed after it is written.
        """
        saved = replace(draft, saved_at=datetime.now(UTC))
        parts = tuple(self._part_name(file.data) for file in draft.forwarded)
        on_disk = self._parts_on_disk(draft.id)
        for file, part in zip(draft.forwarded, parts, strict=True):
            if part not in on_disk:
                path = self._part_path(draft.id, part)
                self.vault.write(path, file.data, self._part_context(draft.id, part))
        self.vault.write(self._path(draft.id), saved.to_json(parts), self._context(draft.id))
        for part, path in on_disk.items():
            if part not in parts:
                path.unlink(missing_ok=True)
        return saved

    def load(self, draft_id: str) -> Draft | None:
        raw = self.vault.read(self._path(draft_id), self._context(draft_id))
        if raw is None:
            return None

        def read_part(part: str) -> bytes:
            data = self.vault.read(
                self._part_path(draft_id, part), self._part_context(draft_id, part)
            )
            if data is None:
                raise VaultError(f"a forwarded file of draft {draft_id} is missing")
            return data

        return Draft.from_json(draft_id, raw, read_part)

    def delete(self, draft_id: str) -> None:
        self._path(draft_id).unlink(missing_ok=True)
        for path in self._parts_on_disk(draft_id).values():
            path.unlink(missing_ok=True)

    def count(self) -> int:
        """How many drafts open, without reading their forwarded files (start-up asks)."""
        if not self.folder.is_dir():
            return 0
        found = 0
        for path in self.folder.glob(f"*{SUFFIX}"):
            draft_id = path.name.removesuffix(SUFFIX)
            try:
                found += self.vault.read(path, self._context(draft_id)) is not None
            except (VaultError, OSError):
                continue
        return found

    def list(self) -> list[Draft]:
        """Every draft that opens, newest first; ``damaged`` counts those that do not."""
        drafts: list[Draft] = []
        self.damaged = 0
        if not self.folder.is_dir():
            return drafts
        for path in self.folder.glob(f"*{SUFFIX}"):
            draft_id = path.name.removesuffix(SUFFIX)
            try:
                draft = self.load(draft_id)
            except (VaultError, ValueError, KeyError, TypeError, OSError):
                self.damaged += 1
                continue
            if draft is not None:
                drafts.append(draft)
        drafts.sort(key=lambda d: d.saved_at, reverse=True)
        return drafts
