"""One account's cache: rows in memory over the sealed index, blob files and marks journal.

:class:`MessageCache` ties the parts together (:mod:`.index`, :mod:`.blobs`, :mod:`.marks`,
:mod:`.rebuild`) and keeps the promises the screens rely on: it never talks to the network,
never raises for a disk problem after it is made (:attr:`MessageCache.error` says what
went wrong), and opens a message's blob only when something reads its body.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from rune_proto.address import Address, AddressError
from rune_proto.client import ReceivedMessage, Vault, VaultError, Verification
from rune_proto.keys import Identity

from . import rebuild as rebuilding
from .blobs import BlobStore
from .index import IndexDoc, compact, dump_index, parse_index, wrap_rows
from .lru import OpenedMessages
from .marks import MarksJournal, ReadMarks
from .rows import CHECK, ID, READ, Summary, received_key, row_of

MARKS_LIMIT = 1000  # journal records before the next mark folds them into the index

# Opens a blob and runs every check: (server id, blob, server key token pinned when it was
# retrieved, or None for the key pinned now) -> the message.
Opener = Callable[[str, bytes, str | None], ReceivedMessage]
_DAMAGED = (
    "the copy of this message on this computer is missing or damaged; "
    "it is fetched again at the next refresh"
)


class MessageCache:
    """One account's cache directory: blobs, the sealed index and the marks journal.

    ``rows`` (server id → :class:`Summary`) and ``read`` are filled by :meth:`load`, or by
    :meth:`rebuild` when the index could not be used; ``opener`` turns a blob into a
    checked message (the Mailbox's contacts and replay log).
    """

    def __init__(self, root: Path, vault: Vault, account: str, opener: Opener) -> None:
        self.root = root
        self.vault = vault
        self.account = account
        self._opener = opener
        self.blobs = BlobStore(root, vault, account)
        self.journal = MarksJournal(root / "marks", vault, account)
        self.rows: dict[str, Summary] = {}
        self.read = ReadMarks(changed=self._marked)
        self.senders: list[Address | None] = []
        self.checks: list[Verification] = []
        self._sender_index: dict[Address | None, int] = {}
        self._check_index: dict[Verification, int] = {}
        self.stale: set[str] = set()  # rows whose blob is missing or damaged: fetch again
        self.rebuilt = False  # the index could not be used and was rebuilt from the blobs
        self.needs_rebuild = False  # ... and the rebuild is still to run (see rebuild())
        self.recovered_marks: dict[str, bool] = {}  # read marks kept for the rebuild
        self.error: str | None = None  # the last disk problem, in words
        self._opened = OpenedMessages()
        self._dirty = False
        self._sweep = False
        self.lock = threading.RLock()
        self.stop_rebuild = threading.Event()  # set when the app leaves: see rebuild()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        address: Address | str,
        identity: Identity,
        opener: Opener,
        *,
        defer_rebuild: bool = False,
    ) -> MessageCache:
        """The account's cache, loaded. With ``defer_rebuild``, an unusable index leaves
        :attr:`needs_rebuild` set for the caller to run :meth:`rebuild` off the UI thread."""
        vault = Vault(identity)
        root = data_dir / "cache" / vault.name(f"rune/1 cache dir {address}")
        cache = cls(root, vault, str(address), opener)
        cache.load(defer_rebuild=defer_rebuild)
        return cache

    # -- paths and contexts --------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.root / "index"

    @property
    def marks_path(self) -> Path:
        return self.journal.path

    @property
    def blob_dir(self) -> Path:
        return self.blobs.dir

    def blob_path(self, message_id: str) -> Path:
        return self.blobs.path(message_id)

    @property
    def _index_context(self) -> str:
        return f"rune/1 cache index {self.account}"

    @property
    def dirty(self) -> bool:
        return self._dirty

    def note(self, what: str, exc: BaseException) -> None:
        """Remember a disk problem in words (:attr:`error`) instead of raising it."""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.error = f"{what}: {reason}"

    # -- opening ---------------------------------------------------------------------------

    def load(self, *, defer_rebuild: bool = False) -> None:
        """Open the index (fast path), or rebuild it from the blobs when it cannot be used."""
        with self.lock:
            self._clear()
            self.needs_rebuild = False
            try:
                raw = self.vault.read(self.index_path, self._index_context)
                if raw is None and not self.blobs.any():
                    return  # a new cache
                if raw is None:
                    raise FileNotFoundError("the cache index is missing")
                doc = parse_index(raw, self.account)
            except (OSError, VaultError, ValueError, TypeError, KeyError, IndexError) as exc:
                self.note("the cache index could not be used", exc)
            except AddressError as exc:
                self.note("the cache index is damaged", exc)
            else:
                self._adopt(doc)
                for message_id, read in self.journal.replay():
                    if message_id in self.rows:
                        self.read.set_quietly(message_id, read)
                if not self.journal.snapshotted:  # an older journal: give it a snapshot
                    try:
                        self.journal.start(self.read)
                    except OSError:
                        self.journal.count = -1
                return
            # Read marks are recovered now, before anything could start a new journal.
            self.recovered_marks = self.journal.recover()
            self.needs_rebuild = True
            if not defer_rebuild:
                self.rebuild()

    def _clear(self) -> None:
        self.rows = {}
        self.read.reset(())
        self.senders, self.checks = [], []
        self._sender_index, self._check_index = {}, {}
        self.stale = set()
        self._opened.clear()

    def _adopt(self, doc: IndexDoc) -> None:
        """Take the opened index's rows and tables as they are."""
        summaries = wrap_rows(self, doc.rows)
        self.senders, self.checks = doc.senders, doc.checks
        self._sender_index = {s: i for i, s in enumerate(doc.senders)}
        self._check_index = {c: i for i, c in enumerate(doc.checks)}
        self.rows = summaries
        self.read.reset(row[ID] for row in doc.rows if row[READ])
        self.journal.generation = doc.generation
        self._sweep = doc.partial

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Rows from every blob file this identity sealed the header of, read marks kept.

        Safe to run in a thread while the UI uses the cache: see :mod:`.rebuild`.
        """
        rebuilding.rebuild(self, progress)

    # -- rows ------------------------------------------------------------------------------

    def _sender(self, sender: Address | None) -> int:
        index = self._sender_index.get(sender)
        if index is None:
            index = self._sender_index[sender] = len(self.senders)
            self.senders.append(sender)
        return index

    def _check(self, check: Verification) -> int:
        index = self._check_index.get(check)
        if index is None:
            index = self._check_index[check] = len(self.checks)
            self.checks.append(check)
        return index

    def put(self, message_id: str, message: ReceivedMessage, size: int) -> Summary:
        """Index ``message`` (its blob is on disk already); call with :attr:`lock` held."""
        row = row_of(
            message_id,
            message,
            size,
            self._sender(message.sender),
            self._check(message.verification),
        )
        summary = self.rows.get(message_id)
        if summary is None:
            summary = self.rows[message_id] = Summary(self, row)
        else:
            summary._row[:] = row  # in place: every holder of the Summary sees the change
        self.stale.discard(message_id)
        self._opened.remember(message_id, message)
        self._dirty = True
        return summary

    def add(
        self,
        message_id: str,
        blob: bytes,
        message: ReceivedMessage,
        server_key: str | None = None,
    ) -> Summary | None:
        """Store ``blob`` and index ``message`` (opened from it); None if the disk refused.

        ``server_key`` is the server key token the blob's signature was checked against
        (pinned now): the blob's header records it, so the message is checked against the
        same key when it is opened again, after an accepted server-key change too.
        """
        with self.lock:
            try:
                self.blobs.write(message_id, blob, server_key)
            except OSError as exc:
                self.note("a message could not be cached", exc)
                return None
            return self.put(message_id, message, len(blob))

    def remove(self, message_ids: Iterable[str]) -> None:
        """Forget messages (deleted here or on the server): rows, marks and blob files."""
        with self.lock:
            for message_id in message_ids:
                if self.rows.pop(message_id, None) is not None:
                    self._dirty = True
                self.read.set_quietly(message_id, False)
                self.stale.discard(message_id)
                self._opened.forget(message_id)
                try:
                    self.blob_path(message_id).unlink(missing_ok=True)
                except OSError as exc:
                    self.note("a deleted message's file could not be removed", exc)

    def stored_blob(self, message_id: str) -> bytes | None:
        """The cached blob of ``message_id`` exactly as the server sent it, if intact."""
        stored = self.blobs.stored(message_id)
        return None if stored is None else stored.blob

    # -- full messages, on demand ------------------------------------------------------------

    def message(self, message_id: str) -> ReceivedMessage:
        """The whole message, decrypted from its blob on first use, then from the LRU.

        KeyError for an id the cache does not hold. A missing or damaged blob gives a
        placeholder with the headers and a problem saying so, and the id is marked stale
        so the next refresh fetches it again.
        """
        return self.opened(self.rows[message_id])

    def opened(self, summary: Summary) -> ReceivedMessage:
        """:meth:`message` for a row; one deleted meanwhile gives a placeholder, no error
        (a screen may still hold it while the list is redrawn)."""
        message_id = summary.id
        with self.lock:
            opened = self._opened.get(message_id)
            if opened is not None:
                return opened
            if self.rows.get(message_id) is not summary:
                return self._placeholder(summary, "this message was deleted")
            stored = self.blobs.stored(message_id)
            if stored is None:
                self.stale.add(message_id)
                message = self._placeholder(summary, _DAMAGED)
            else:
                try:
                    message = self._opener(message_id, stored.blob, stored.server_key)
                except (OSError, ValueError) as exc:  # e.g. the contacts file is unwritable
                    self.note("a cached message could not be opened", exc)
                    return self._placeholder(summary, f"it could not be opened: {exc}")
                self._reconcile(summary, message)
            self._opened.remember(message_id, message)
            return message

    def open_blob(self, message_id: str, blob: bytes, server_key: str | None) -> ReceivedMessage:
        """Run the opener (for :mod:`.rebuild`, which reads the blob files itself)."""
        return self._opener(message_id, blob, server_key)

    def _placeholder(self, summary: Summary, problem: str) -> ReceivedMessage:
        return ReceivedMessage(
            id=summary.id,
            size=summary.size,
            sender=summary.sender,
            received_at=summary.received_at,
            subject=summary.subject,
            in_reply_to=summary.in_reply_to,
            message_id=summary.message_id,
            sent_at=summary.sent_at,
            verification=Verification(problems=(problem,)),
        )

    def _reconcile(self, summary: Summary, message: ReceivedMessage) -> None:
        """A fresh open may judge differently (a key accepted since): the row follows it."""
        check = self._check(message.verification)
        if summary._row[CHECK] != check:
            summary._row[CHECK] = check
            self._dirty = True

    def forget_opened(self) -> None:
        """Drop every decrypted message from memory (they reopen on demand)."""
        with self.lock:
            self._opened.clear()

    def reverify(self, which: Callable[[Summary], bool]) -> int:
        """Open again the rows ``which`` selects and take their fresh verification."""
        with self.lock:
            count = 0
            for summary in [s for s in self.rows.values() if which(s)]:
                self._opened.forget(summary.id)
                self.message(summary.id)
                count += 1
            return count

    # -- read marks and the index ----------------------------------------------------------------

    def _marked(self, message_id: str, read: bool) -> None:
        """Journal one mark (a sealed record appended); fold into the index now and then."""
        if message_id not in self.rows:
            return
        with self.lock:
            try:
                if self.journal.count < 0:
                    self.blobs.make_dirs()
                    self.journal.start(self.read)  # the snapshot includes this mark already
                else:
                    self.journal.append(message_id, read)
            except OSError as exc:
                self.note("a read mark could not be saved", exc)
                self.journal.count = -1
                self._dirty = True  # the index will carry it
            if self.journal.count > MARKS_LIMIT:
                self.save()

    def save(self, *, partial: bool = False) -> bool:
        """Write the index (atomically, fsynced) and start a new marks journal.

        ``partial`` says a refresh is still running: blobs with no row may exist, so the
        next complete refresh sweeps them. False (and :attr:`error` set) if the disk
        refused, or while a rebuild is pending (it writes the index when it is done).
        """
        with self.lock:
            if self.needs_rebuild:
                return False
            order = sorted(self.rows.values(), key=received_key, reverse=True)
            doc = compact(order, self.senders, self.checks, self.read, partial or self._sweep)
            self.senders, self.checks = doc.senders, doc.checks
            self._sender_index = {s: i for i, s in enumerate(self.senders)}
            self._check_index = {c: i for i, c in enumerate(self.checks)}
            self.rows = {s.id: s for s in order}
            try:
                self.blobs.make_dirs()
                raw = dump_index(self.account, doc)
                self.vault.write(self.index_path, raw, self._index_context)
            except OSError as exc:
                self.note("the cache index could not be written", exc)
                return False
            self.journal.generation = doc.generation
            self._dirty = False
            try:
                self.journal.start(self.read)
            except OSError:
                self.journal.count = -1  # the old journal no longer matches: it is ignored
            return True

    def save_if_dirty(self, *, partial: bool = False) -> None:
        if self._dirty:
            self.save(partial=partial)

    def sweep(self) -> int:
        """After a complete refresh: remove blob files no row names (and temp leftovers)."""
        with self.lock:
            if not self._sweep:
                return 0
            removed = rebuilding.sweep(self)
            self._sweep = False
            self._dirty = True  # the index says "partial" until written again
            return removed

    def rebuilt_from_blobs(self) -> None:
        """A rebuild is done (lock held): write the index; a sweep is due."""
        self.rebuilt = True
        self.needs_rebuild = False
        self._sweep = True
        self._dirty = True
        self.save()
