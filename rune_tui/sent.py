"""Sent: a sealed local copy of every message the server accepted from this account.

Rune's server keeps nothing for the sender, so without this a person could not read what
they wrote, and the conversations view could never put a reply under what it answered.

On disk, under ``<data dir>/sent/<Vault.name>/`` (names are keyed hashes: no address, id
or count beyond the number of files):

* ``index`` — every field a Sent row needs (recipient, subject, message id, in-reply-to,
  sent time, attachment names and sizes), one JSON document sealed by the account's
  :class:`~rune_proto.client.vault.Vault`: opening 10,000 rows is one read, one AEAD open
  and one ``json.loads``.
* ``messages/<Vault.name(message id)>`` — one sealed file per message: its row again and
  the body. Opened only when the preview or the reader shows it.
* ``files/<Vault.name(…)>`` — the attachments of a message, when together they fit
  ``sent_attachment_limit_mib`` (else only their names and sizes are kept, in the row, and
  the reader says so). Opened only when they are saved.

A copy is written only after the server accepted the message (202): attachments and
message file first, then the index, each atomically (temp file, fsync, rename). A lost or
damaged index is rebuilt from the message files, since each holds its own row. Nothing
here touches Textual.
"""

from __future__ import annotations

import contextlib
import gc
import json
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rune_proto.address import Address, AddressError, parse_address
from rune_proto.client import ReceivedMessage, Vault, VaultError, Verification
from rune_proto.envelope import Attachment

FORMAT = "rune-sent"
VERSION = 1
ID_PREFIX = "sent:"  # a Sent row's id, so it never collides with a server's message id
DEFAULT_ATTACHMENT_LIMIT_MIB = 10
MIB = 1024 * 1024
# Rows are checked column by column on load; a row that is not one is skipped, not fatal.
_ROW_LENGTH = 8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Our own message: nothing to verify, but nothing to warn about either.
OWN = Verification(
    decrypted=True,
    server_signature=True,
    sender_signature=True,
    addressed_to_me=True,
    sender_match=True,
)


@dataclass(frozen=True, slots=True)
class SentMessage(ReceivedMessage):
    """A sent message, shaped as a received one so the list, threads and headers take it.

    ``sender`` is this account, ``received_at`` and ``sent_at`` the time the server
    accepted it, ``id`` is ``"sent:" + message_id``. ``body`` and ``attachments`` are
    empty in an index row; :meth:`SentStore.message` fills them in. ``files`` always
    lists every attachment's name and size; ``files_kept`` says whether their data is.
    """

    to: Address | None = None
    files: tuple[tuple[str, int], ...] = ()
    files_kept: bool = True


def _row(message: SentMessage) -> list[Any]:
    when = message.sent_at.timestamp() if message.sent_at is not None else 0.0
    return [
        message.message_id,
        str(message.to),
        message.subject,
        message.in_reply_to,
        when,
        [[name, size] for name, size in message.files],
        1 if message.files_kept else 0,
        message.size,
    ]


class SentStore:
    """One account's Sent folder. Loads on first use; writing raises OSError."""

    def __init__(self, data_dir: Path, address: Address, vault: Vault) -> None:
        self.address = address
        self.vault = vault
        self.root = data_dir / "sent" / vault.name(f"rune/1 sent dir {address}")
        self.index_path = self.root / "index"
        self.messages_dir = self.root / "messages"
        self.files_dir = self.root / "files"
        self._index_context = f"rune/1 sent index {address}"
        self._message_context = f"rune/1 sent message {address}"
        self._rows: dict[str, SentMessage] | None = None
        self._lock = threading.Lock()  # guards loading and replacing the rows
        self._writing = threading.Lock()  # one record at a time (a send runs in a thread)
        self.problem: str | None = None  # what went wrong loading, in words, if anything

    # -- reading -------------------------------------------------------------------------

    @property
    def rows(self) -> dict[str, SentMessage]:
        """Row id (``sent:…``) → row without body, loaded from the index on first use."""
        with self._lock:
            if self._rows is None:
                self._rows = self._load()
            return self._rows

    def ordered(self) -> list[SentMessage]:
        """Newest first."""
        return sorted(self.rows.values(), key=_when, reverse=True)

    def message(self, row_id: str) -> SentMessage:
        """The row with its body; KeyError if it is not in Sent. Attachments are not read
        (see :meth:`attachments`), so moving through the list stays cheap.

        A message file that is gone or damaged gives the row with a body saying so.
        """
        row = self.rows[row_id]
        try:
            doc = self._read_message(self._path(row.message_id or ""))
        except (OSError, VaultError, ValueError) as exc:
            reason = "missing" if isinstance(exc, FileNotFoundError) else "damaged"
            return replace(row, body=f"(the copy of this message on this computer is {reason})")
        body = doc.get("body")
        return replace(row, body=body if isinstance(body, str) else "")

    def attachments(self, row_id: str) -> tuple[Attachment, ...]:
        """The kept attachments of a sent message; () when none were kept.

        KeyError if it is not in Sent; OSError or VaultError if the file is gone or damaged.
        """
        row = self.rows[row_id]
        if not row.files or not row.files_kept:
            return ()
        message_id = row.message_id or ""
        raw = self.vault.read(self._files_path(message_id), self._files_context(message_id))
        if raw is None:
            raise FileNotFoundError("the attachments kept with this message are missing")
        return _unpack_files(raw)

    def _path(self, message_id: str) -> Path:
        return self.messages_dir / self.vault.name(message_id)

    def _files_path(self, message_id: str) -> Path:
        return self.files_dir / self.vault.name(f"files of {message_id}")

    def _files_context(self, message_id: str) -> str:
        return f"rune/1 sent files {self.address} {message_id}"

    def _read_message(self, path: Path) -> dict[str, Any]:
        raw = self.vault.read(path, self._message_context)
        if raw is None:
            raise FileNotFoundError(path)
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a sent message")
        return doc

    def _load(self) -> dict[str, SentMessage]:
        collecting = gc.isenabled()
        gc.disable()  # its passes over 10,000 young rows would cost more than making them
        try:
            return self._load_rows()
        finally:
            if collecting:
                gc.enable()

    def _load_rows(self) -> dict[str, SentMessage]:
        try:
            raw = self.vault.read(self.index_path, self._index_context)
            if raw is not None:
                doc = json.loads(raw)
                if (
                    isinstance(doc, dict)
                    and doc.get("format") == FORMAT
                    and doc.get("version") == VERSION
                    and doc.get("account") == str(self.address)
                ):
                    return self._parse_rows(doc.get("rows"))
        except (OSError, VaultError, ValueError) as exc:
            self.problem = f"the Sent index was unreadable ({exc}); rebuilt from the messages"
        return self._rebuild()

    def _parse_rows(self, rows: object) -> dict[str, SentMessage]:
        parsed: dict[str, SentMessage] = {}
        if not isinstance(rows, list):
            return parsed
        addresses: dict[str, Address] = {}
        for row in rows:
            message = self._from_row(row, addresses)
            if message is not None:
                parsed[message.id] = message
        return parsed

    def _from_row(self, row: object, addresses: dict[str, Address]) -> SentMessage | None:
        """One index row as a SentMessage, or None if it is not one (never raises)."""
        if not isinstance(row, list) or len(row) != _ROW_LENGTH:
            return None
        message_id, to, subject, in_reply_to, when, files, kept, size = row
        try:
            if not isinstance(message_id, str) or not isinstance(subject, str):
                return None
            address = addresses.get(to)
            if address is None:
                address = addresses[to] = parse_address(to)
            sent_at = _EPOCH + timedelta(seconds=float(when))
            listed = tuple((str(name), int(length)) for name, length in files) if files else ()
        except (AddressError, ValueError, TypeError, OverflowError, OSError):
            return None
        return SentMessage(
            id=ID_PREFIX + message_id,
            size=int(size) if isinstance(size, int) else 0,
            sender=self.address,
            received_at=sent_at,
            subject=subject,
            in_reply_to=in_reply_to if isinstance(in_reply_to, str) else None,
            message_id=message_id,
            sent_at=sent_at,
            verification=OWN,
            to=address,
            files=listed,
            files_kept=bool(kept),
        )

    def _rebuild(self) -> dict[str, SentMessage]:
        """Every row from the message files (each holds its own); the index is rewritten."""
        rows: dict[str, SentMessage] = {}
        try:
            paths = sorted(self.messages_dir.iterdir())
        except OSError:
            return rows
        addresses: dict[str, Address] = {}
        for path in paths:
            try:
                doc = self._read_message(path)
            except (OSError, VaultError, ValueError):
                continue
            message = self._from_row(doc.get("row"), addresses)
            # A file under another message's name (copied over it) is not trusted.
            if message is not None and path.name == self.vault.name(message.message_id or ""):
                rows[message.id] = message
        if rows:
            with contextlib.suppress(OSError):  # rebuilt again next time; rows shown anyway
                self._write_index(rows)
        return rows

    # -- writing -------------------------------------------------------------------------

    def record(
        self,
        *,
        message_id: str,
        to: Address,
        subject: str,
        body: str,
        attachments: tuple[Attachment, ...] = (),
        in_reply_to: str | None = None,
        sent_at: datetime | None = None,
        attachment_limit: int = DEFAULT_ATTACHMENT_LIMIT_MIB * MIB,
    ) -> SentMessage:
        """Keep a copy of a message the server accepted; OSError if the disk refused.

        Attachments are kept when together they are at most ``attachment_limit`` bytes;
        above it, only their names and sizes.
        """
        total = sum(len(a.data) for a in attachments)
        kept = total <= attachment_limit
        when = sent_at or datetime.now(UTC)
        message = SentMessage(
            id=ID_PREFIX + message_id,
            size=len(body.encode("utf-8")) + total,
            sender=self.address,
            received_at=when,
            subject=subject,
            in_reply_to=in_reply_to,
            message_id=message_id,
            sent_at=when,
            verification=OWN,
            to=to,
            files=tuple((a.filename, len(a.data)) for a in attachments),
            files_kept=kept,
        )
        doc = {"row": _row(message), "body": body}
        data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with self._writing:  # the rows stay readable meanwhile; only the swap is locked
            if kept and attachments:
                packed = _pack_files(attachments)
                self.vault.write(
                    self._files_path(message_id), packed, self._files_context(message_id)
                )
            self.vault.write(self._path(message_id), data, self._message_context)
            updated = {**self.rows, message.id: message}
            self._write_index(updated)
            with self._lock:
                self._rows = updated
        return message

    def _write_index(self, rows: dict[str, SentMessage]) -> None:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "account": str(self.address),
            "rows": [_row(message) for message in rows.values()],
        }
        raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.vault.write(self.index_path, raw, self._index_context)


def _pack_files(attachments: tuple[Attachment, ...]) -> bytes:
    """Names and sizes as a JSON header, then the data as it is (no base64 growth)."""
    header = json.dumps([[a.filename, len(a.data)] for a in attachments]).encode("utf-8")
    return b"".join([len(header).to_bytes(4, "big"), header, *(a.data for a in attachments)])


def _unpack_files(raw: bytes) -> tuple[Attachment, ...]:
    """The inverse of :func:`_pack_files`; ValueError if the lengths do not add up."""
    size = int.from_bytes(raw[:4], "big")
    listed = json.loads(raw[4 : 4 + size])
    files: list[Attachment] = []
    offset = 4 + size
    for name, length in listed:
        files.append(Attachment(str(name), raw[offset : offset + int(length)]))
        offset += int(length)
    if offset != len(raw):
        raise ValueError("the attachments kept with this message are damaged")
    return tuple(files)


def _when(message: SentMessage) -> datetime:
    return message.sent_at or datetime.min.replace(tzinfo=UTC)
