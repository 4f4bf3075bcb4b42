"""Drafts: what compose has not sent yet, kept sealed on disk so it survives a crash.

Each draft is one file under ``<data dir>/drafts/<keyed hash of the address>/``, sealed
with the account's :class:`~rune_proto.client.vault.Vault`: the disk shows neither the
text nor who it is for, and a draft of one account cannot be opened — or swapped in —
as another's. Attachments are remembered by path (the files stay where they are).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rune_proto.address import Address
from rune_proto.client.vault import Vault, VaultError

if TYPE_CHECKING:
    from .service import Mailbox

SUFFIX = ".draft"


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
    saved_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def empty(self) -> bool:
        return not (self.to.strip() or self.subject.strip() or self.body.strip())

    def to_json(self) -> bytes:
        doc = {
            "version": 1,
            "to": self.to,
            "subject": self.subject,
            "body": self.body,
            "in_reply_to": self.in_reply_to,
            "attachments": list(self.attachments),
            "saved_at": self.saved_at.isoformat(),
        }
        return json.dumps(doc, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, draft_id: str, raw: bytes) -> Draft:
        doc: dict[str, Any] = json.loads(raw.decode("utf-8"))
        reply = doc.get("in_reply_to")
        return cls(
            id=draft_id,
            to=str(doc.get("to", "")),
            subject=str(doc.get("subject", "")),
            body=str(doc.get("body", "")),
            in_reply_to=str(reply) if reply is not None else None,
            attachments=tuple(str(p) for p in doc.get("attachments", [])),
            saved_at=datetime.fromisoformat(str(doc["saved_at"])),
        )


class DraftStore:
    """The drafts of one account, sealed under its identity."""

    def __init__(self, data_dir: Path, address: Address, vault: Vault) -> None:
        self.address = address
        self.vault = vault
        self.folder = data_dir / "drafts" / vault.name(f"drafts of {address}")
        self.damaged = 0  # files the last listing could not open

    @classmethod
    def for_mailbox(cls, mailbox: Mailbox) -> DraftStore:
        return cls(mailbox.paths.data_dir, mailbox.address, Vault(mailbox.identity))

    def _path(self, draft_id: str) -> Path:
        if not draft_id.isalnum():
            raise ValueError(f"{draft_id!r} is not a draft id")
        return self.folder / f"{draft_id}{SUFFIX}"

    def _context(self, draft_id: str) -> str:
        return f"rune-tui draft v1 {self.address} {draft_id}"

    def save(self, draft: Draft) -> Draft:
        """Seal and write ``draft`` (atomically, 0600); returns it with the new time."""
        saved = replace(draft, saved_at=datetime.now(UTC))
        self.vault.write(self._path(draft.id), saved.to_json(), self._context(draft.id))
        return saved

    def load(self, draft_id: str) -> Draft | None:
        raw = self.vault.read(self._path(draft_id), self._context(draft_id))
        return None if raw is None else Draft.from_json(draft_id, raw)

    def delete(self, draft_id: str) -> None:
        self._path(draft_id).unlink(missing_ok=True)

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
