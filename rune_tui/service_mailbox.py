"""One account's mailbox: the encrypted cache at once, the server through one pinned door.

Part of the service layer (see :mod:`rune_tui.service`, which re-exports it). Every call
that reaches the server goes through :meth:`Mailbox.session`, so a subclass that watches
sessions (the app's ``WatchedMailbox``) sees every changed certificate or server key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, MutableSet
from contextlib import asynccontextmanager
from functools import partial

from rune_proto.address import Address, parse_address
from rune_proto.client import (
    ContactBook,
    ReceivedMessage,
    ReplayLog,
    Session,
    connect,
    open_retrieved,
)
from rune_proto.envelope import Attachment
from rune_proto.keys import Identity, PublicKey

from .cache import MessageCache, Summary, received_key
from .config import Account, Paths
from .filenames import safe_filename
from .key_changes import PendingKeyChange
from .sent import DEFAULT_ATTACHMENT_LIMIT_MIB, ID_PREFIX, MIB, SentStore
from .service_contacts import open_contact_book, open_replay_log

SAVE_EVERY = 500  # a long refresh writes the index this often, so a crash loses little


class Mailbox:
    """One account's mailbox: the local cache at once, the server when asked.

    Made without the network: the cache's index gives every row at once (see
    :mod:`rune_tui.cache`), so the inbox opens offline. ``messages`` maps server ids to
    messages — :class:`~rune_tui.cache.Summary` rows whose body is decrypted from the
    cached blob only when read, or full messages when the disk refused to cache one.
    ``read`` is the live set of read ids: adding or discarding persists the mark
    (:meth:`mark_read` says it in words). :meth:`refresh` fetches only what the cache lacks
    and forgets what the server no longer holds.
    """

    # Sessions that got as far as a login: a screen that last saw the server unreachable
    # knows from a higher count that something (a send, say) has reached it since.
    logins = 0

    def __init__(self, paths: Paths, account: Account, identity: Identity) -> None:
        if not account.address_known:  # every file's name and seal depends on the address
            raise ValueError("open the account first (service.unlock): its address is sealed")
        self.paths = paths
        self.account = account
        self.identity = identity
        self._contacts: ContactBook | None = None  # loaded when first needed: the list
        self._replays: ReplayLog | None = None  # rows need neither (~15 ms on a big mailbox)
        # Why the contact book did not open (pins then live in memory), and who to tell.
        self.contacts_problem = ""
        self.on_contacts_problem: Callable[[str], None] | None = None
        self._server_key: tuple[str, PublicKey] | None = None
        self._max_payload: tuple[tuple[str, int, str, str], int] | None = None
        self.cache = MessageCache.open(
            paths.data_dir, account.address, identity, self.open_blob, defer_rebuild=True
        )
        self._rebuilding: asyncio.Future[None] | None = None  # see recover()
        self.messages: dict[str, ReceivedMessage] = dict(self.cache.rows)
        self.read: MutableSet[str] = self.cache.read
        # sender → id of their newest signed message; built on first use (see key_change_for)
        self._newest: tuple[tuple[int, int], dict[Address, str]] | None = None
        self.sent = SentStore(paths.data_dir, account.address, self.cache.vault)
        self.sent_attachment_limit = DEFAULT_ATTACHMENT_LIMIT_MIB * MIB  # the app sets it
        self.sent_copy_problem: str | None = None  # why the last send kept no copy, if so

    @property
    def address(self) -> Address:
        return self.account.address

    @property
    def contacts(self) -> ContactBook:
        if self._contacts is None:
            self._contacts, problem = open_contact_book(
                self.paths, self.account.address, self.cache.vault
            )
            if problem:
                self.contacts_problem = problem
                if self.on_contacts_problem is not None:
                    self.on_contacts_problem(problem)
        return self._contacts

    @contacts.setter
    def contacts(self, book: ContactBook) -> None:
        self._contacts = book

    @property
    def replays(self) -> ReplayLog:
        if self._replays is None:  # sealed, like the cache
            self._replays = open_replay_log(self.paths, self.account.address, self.cache.vault)
        return self._replays

    @replays.setter
    def replays(self, log: ReplayLog) -> None:
        self._replays = log

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with connect(
            self.account.host,
            self.account.port,
            tls_fingerprint=self.account.tls_pin,
            server_key=self.account.server_key,
            contacts=self.contacts,
            replays=self.replays,
        ) as session:
            await session.login(self.address, self.identity)
            self.logins += 1
            yield session

    async def max_payload(self) -> int:
        """The largest CLIENT MESSAGE the server accepts (its CAPA ``max_payload``).

        Asked through :meth:`session` like every other call, so a changed certificate or
        server key is caught here as anywhere else; remembered for these pins, so compose
        shows the limit without a round trip each time it opens.
        """
        account = self.account
        pins = (account.host, account.port, account.tls_pin, account.server_key)
        if self._max_payload is None or self._max_payload[0] != pins:
            async with self.session() as session:
                caps = session.capabilities
                assert caps is not None  # connect() only returns once CAPA was answered
                self._max_payload = (pins, caps.max_payload)
        return self._max_payload[1]

    # -- messages ------------------------------------------------------------------------

    def open_blob(
        self, message_id: str, blob: bytes, server_key: str | None = None
    ) -> ReceivedMessage:
        """Open a STORED MESSAGE blob (fetched now or cached) and run every check; offline.

        ``server_key``: the server key pinned when a cached blob was retrieved (the cache
        records it), so an accepted server-key change does not unverify older messages.
        """
        with self.cache.lock:  # a rebuild thread opens blobs too: one at a time
            token = server_key or self.account.server_key
            if self._server_key is None or self._server_key[0] != token:
                self._server_key = (token, PublicKey.from_token(token))
            return open_retrieved(
                message_id,
                blob,
                identity=self.identity,
                address=self.address,
                server_key=self._server_key[1],
                contacts=self.contacts,
                replays=self.replays,
            )

    def ingest(self, message_id: str, blob: bytes) -> ReceivedMessage:
        """Open ``blob``, cache it and list it; returns the opened message."""
        message = self.open_blob(message_id, blob)
        row = self.cache.add(message_id, blob, message, self.account.server_key)
        self.messages[message_id] = row if row is not None else message
        self._newest = None
        return message

    def message(self, message_id: str) -> ReceivedMessage:
        """The whole message (body, attachments, sender key), decrypted on demand.

        Cached rows are opened from their blob the first time and kept in a small LRU.
        KeyError for an id the mailbox does not hold. A Sent row's id gives the sent copy.
        """
        if message_id.startswith(ID_PREFIX):
            return self.sent.message(message_id)
        found = self.messages[message_id]
        return self.cache.message(message_id) if isinstance(found, Summary) else found

    async def recover(self) -> bool:
        """Rebuild an unusable cache index from the blobs in a thread, then list the rows.

        Opening every blob takes seconds on a big cache: the UI keeps running meanwhile.
        True if a rebuild ran; refresh waits for it, so it never sees a half-listed cache.
        """
        running = self._rebuilding
        if running is None:
            if not self.cache.needs_rebuild:
                return False
            _ = self.contacts, self.replays  # made here, not by two threads at once
            running = self._rebuilding = asyncio.ensure_future(
                asyncio.to_thread(self.cache.rebuild)
            )
        try:
            await asyncio.shield(running)  # a cancelled caller leaves it running
        finally:
            if running.done() and self._rebuilding is running:
                self._rebuilding = None
        for message_id, row in self.cache.rows.items():
            self.messages.setdefault(message_id, row)
        self._newest = None
        return True

    async def refresh(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Fetch what the cache lacks, forget what is gone; returns the new ids, oldest first.

        A blob already on disk (a refresh interrupted before its index was written) is
        used without downloading it again; a damaged one is fetched again but not
        reported as new.
        """
        await self.recover()
        new: list[str] = []
        complete = False
        try:
            async with self.session() as session:
                listing = await session.list()
                on_server = {info.id for info in listing}
                gone = [i for i in self.messages if i not in on_server]
                if gone:
                    self._forget(gone)
                stale = self.cache.stale
                wanted = [i.id for i in listing if i.id not in self.messages or i.id in stale]
                for done, message_id in enumerate(wanted, 1):
                    blob = self.cache.stored_blob(message_id)
                    if blob is None:
                        blob = await session.retrieve_blob(message_id)
                    if message_id not in self.messages:
                        new.append(message_id)
                    self.ingest(message_id, blob)
                    if done % SAVE_EVERY == 0:
                        self.cache.save(partial=True)
                    if progress is not None:
                        progress(done, len(wanted))
            complete = True
        finally:
            self.cache.save_if_dirty(partial=not complete)
        if self.cache.sweep():
            self.cache.save_if_dirty()
        return new

    def _forget(self, message_ids: Iterable[str]) -> None:
        ids = list(message_ids)
        self._newest = None
        self.cache.remove(ids)
        for message_id in ids:
            self.messages.pop(message_id, None)
            self.read.discard(message_id)

    def ordered(self) -> list[ReceivedMessage]:
        """Newest first, by the server's receive time."""
        return sorted(self.messages.values(), key=received_key, reverse=True)

    def unread_count(self) -> int:
        read = self.read
        return sum(1 for m in self.messages if m not in read)

    def is_read(self, message_id: str) -> bool:
        return message_id in self.read

    def mark_read(self, message_id: str, read: bool = True) -> None:
        """Mark a message read (or unread again); the mark survives a restart."""
        if read:
            self.read.add(message_id)
        else:
            self.read.discard(message_id)

    def flush(self) -> None:
        """Write what the cache holds only in memory (call when the app exits)."""
        self.cache.save_if_dirty()

    async def send(
        self,
        to: str,
        subject: str,
        body: str,
        attachments: Iterable[tuple[str, bytes]] = (),
        *,
        in_reply_to: str | None = None,
    ) -> str:
        receiver = parse_address(to.strip())
        # A name the protocol refuses would fail the send; made safe here, as it would
        # be made safe on saving anyway ("../../notes.txt" goes out as "notes.txt").
        files = [Attachment(safe_filename(name), data) for name, data in attachments]
        async with self.session() as session:
            message_id = await session.send(receiver, subject, body, files, in_reply_to=in_reply_to)
        # Accepted (202): only now is it worth a copy. A disk that refuses it does not
        # undo the send; ``sent_copy_problem`` says why Sent lacks it.
        self.sent_copy_problem = None
        try:
            await asyncio.to_thread(
                partial(
                    self.sent.record,
                    message_id=message_id,
                    to=receiver,
                    subject=subject,
                    body=body,
                    attachments=tuple(files),
                    in_reply_to=in_reply_to,
                    attachment_limit=self.sent_attachment_limit,
                )
            )
        except OSError as exc:
            self.sent_copy_problem = exc.strerror or str(exc) or type(exc).__name__
        return message_id

    async def delete(self, message_id: str) -> None:
        async with self.session() as session:
            await session.delete(message_id)
        self._forget([message_id])
        self.cache.save_if_dirty()

    def accept_key(self, address: Address, key: PublicKey) -> None:
        with self.cache.lock:  # the contact book is shared with a rebuild thread
            self.contacts.accept(address, key)
        self.reverify(address)

    def stop(self) -> None:
        """The app is leaving this mailbox: a running rebuild stops after its message."""
        self.cache.stop_rebuild.set()

    def reverify(self, sender: Address | None = None) -> int:
        """Check cached messages (of ``sender``, or all) again against today's pins.

        The list shows the verification from when a message was fetched; after a key is
        accepted or a contact removed, this brings those rows up to date (one open each).
        """
        count = self.cache.reverify(lambda row: sender is None or row.sender == sender)
        self.cache.save_if_dirty()
        self._newest = None
        return count

    # -- changed keys, before sending ------------------------------------------------------

    def key_change_for(self, address: Address) -> PendingKeyChange | None:
        """The change of ``address``'s key that the cache knows of and the user has not
        accepted, else None. Cheap: no decryption, a dict lookup once the index is built.

        Judged by their newest signed message (a replay does not count): if its key is not
        the one pinned now, sending to them is blocked. Older messages signed with a key
        replaced since (accepted) are history, not a change. With no pin there is nothing
        to differ from: the first send pins the server's key, as ever.
        """
        pinned = self.contacts.get(address)
        message_id = self._newest_signed().get(address)
        if message_id is not None and message_id not in self.messages:  # gone meanwhile
            self._newest = None
            message_id = self._newest_signed().get(address)
        if pinned is None or message_id is None:
            return None
        change = self.messages[message_id].verification.key_change
        if change is None or change.offered == pinned.fingerprint:
            return None
        return PendingKeyChange(address, pinned.fingerprint, change.offered, message_id)

    def offered_key(self, change: PendingKeyChange) -> PublicKey | None:
        """The key ``change`` offers (its message opened once), or None if it is gone."""
        if change.key is not None or change.message_id is None:
            return change.key
        try:
            key = self.message(change.message_id).sender_key
        except KeyError:  # deleted meanwhile
            return None
        return key if key is not None and key.fingerprint_text() == change.offered else None

    def _newest_signed(self) -> dict[Address, str]:
        """sender → id of their newest message with a good signature, built lazily.

        One pass over the rows' index fields (about 10 ms for 10,000); rebuilt after
        messages come, go or are checked again (and if ``messages`` was replaced).
        """
        marker = (id(self.messages), len(self.messages))
        if self._newest is None or self._newest[0] != marker:
            newest: dict[Address, tuple[float, str]] = {}
            for message_id, message in self.messages.items():
                sender, check = message.sender, message.verification
                if sender is None or not check.sender_signature or check.replay:
                    continue
                when = received_key(message)
                best = newest.get(sender)
                if best is None or when > best[0]:
                    newest[sender] = (when, message_id)
            self._newest = (marker, {who: found for who, (_, found) in newest.items()})
        return self._newest[1]
