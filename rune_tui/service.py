"""The TUI's only door to the network and to keys: wraps the client library.

Screens call these coroutines from workers; nothing here touches Textual, so it is
tested on its own against a real server. Each operation opens a session, does its
work and closes it: a terminal mail client is idle most of the time, and a fresh
session means a dropped connection never leaves the app in a half state.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, MutableSet
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from rune_proto import status
from rune_proto.address import Address, AddressError, parse_address, validate_part
from rune_proto.client import (
    ClientError,
    ConnectionFailed,
    ContactBook,
    ProtocolViolation,
    ReceivedMessage,
    ReplayLog,
    ServerError,
    Session,
    connect,
)
from rune_proto.client.messages import open_retrieved
from rune_proto.envelope import Attachment
from rune_proto.events import INVITATION_PATTERN
from rune_proto.keys import Identity, PublicKey
from rune_proto.keystore import (
    EncryptedFileStore,
    KeyNotFound,
    KeyringStore,
    KeystoreError,
    keyring_usable,
)
from rune_proto.tlspin import pin_text

from .cache import MessageCache, Summary, received_key
from .config import Account, Config, Paths, save_config

SAVE_EVERY = 500  # a long refresh writes the index this often, so a crash loses little


@dataclass(frozen=True, slots=True)
class ServerProbe:
    """What the wizard shows before the user decides to trust a server."""

    host: str
    port: int
    tls_pin: str
    server_key: str
    domain: str
    registration: tuple[str, ...]
    max_payload: int
    welcome: str

    @property
    def tls_pin_text(self) -> str:
        return pin_text(self.tls_pin)

    @property
    def server_key_text(self) -> str:
        return PublicKey.from_token(self.server_key).fingerprint_text()


async def probe_server(host: str, port: int, *, timeout: float = 10.0) -> ServerProbe:
    """Connect trusting on first use, and report the server's identity and offer."""
    async with connect(host, port, trust_on_first_use=True, timeout=timeout) as session:
        caps = session.capabilities
        assert caps is not None and session.greeting is not None
        return ServerProbe(
            host=host,
            port=port,
            tls_pin=session.tls_fingerprint,
            server_key=caps.server_key.token(),
            domain=caps.domain,
            registration=caps.registration,
            max_payload=caps.max_payload,
            welcome=session.greeting.welcome,
        )


def keystore_choice() -> tuple[str, str]:
    """``("keyring", why)`` when the OS keyring works, else ``("file", why not)``."""
    usable, reason = keyring_usable()
    return ("keyring", reason) if usable else ("file", reason)


def key_file_dir(paths: Paths) -> Path:
    """Where the encrypted key files go when there is no keyring (the wizard shows it)."""
    return paths.data_dir / "keys"


def key_store(paths: Paths, kind: str, passphrase: str | None) -> KeyringStore | EncryptedFileStore:
    if kind == "keyring":
        return KeyringStore()
    if not passphrase:
        raise ValueError("a passphrase is needed to protect the key file")
    return EncryptedFileStore(key_file_dir(paths), passphrase)


def describe_error(exc: BaseException) -> str:
    """One sentence a person can act on, for any failure the TUI meets at its boundary.

    Screens catch everything a worker raises and show this instead of a traceback.
    """
    if isinstance(exc, ServerError):
        return exc.explain()
    if isinstance(exc, AddressError):
        return _sentence(f"invalid address: {exc}")
    if isinstance(exc, ProtocolViolation):
        return _sentence(f"the server broke the protocol: {exc}")
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    cause = exc.__cause__
    # asyncio words a refused connection as "Connect call failed (...)"; errno says it
    # better ("connection refused"). Name-lookup errors have negative errnos: keep those.
    if (
        isinstance(exc, ConnectionFailed)
        and isinstance(cause, OSError)
        and (cause.errno or 0) > 0
        and text.startswith("cannot reach")
    ):
        text = f"{text.split(': ', 1)[0]}: {os.strerror(cause.errno or 0).lower()}"
    elif not isinstance(exc, ClientError | KeystoreError | OSError | ValueError):
        text = f"unexpected error ({type(exc).__name__}): {text}"
    return _sentence(text)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def check_invitation(token: str) -> str:
    """The token without stray spaces, or ValueError saying what is wrong with it.

    Checked as it is typed, so a half-pasted token is caught before the server sees it.
    """
    token = token.strip()
    if not INVITATION_PATTERN.fullmatch(token):
        raise ValueError(
            "an invitation token is 16 to 128 letters, digits, '-' and '_'; "
            "check that you pasted all of it"
        )
    return token


_BLAMED_FIELD = {
    status.BAD_ADDRESS: "username",
    status.ADDRESS_TAKEN: "username",
    status.INVITATION_INVALID: "invitation",
    status.INVITATION_EXPIRED: "invitation",
    status.FREE_REGISTRATION_UNAVAILABLE: "method",
    status.INVITATION_REGISTRATION_UNAVAILABLE: "method",
}


def blamed_field(exc: BaseException) -> str | None:
    """Which registration answer the server refused ("username", "invitation", "method").

    The wizard takes the user straight back to that field instead of making them hunt.
    """
    return _BLAMED_FIELD.get(exc.code) if isinstance(exc, ServerError) else None


async def register_account(
    paths: Paths,
    config: Config,
    probe: ServerProbe,
    username: str,
    *,
    invitation: str | None = None,
    keystore: str = "keyring",
    passphrase: str | None = None,
) -> tuple[Config, Account, Identity]:
    """Generate keys, store them, register over the pinned connection, save config.

    The key is stored *before* registering, so a keystore failure costs nothing, and
    removed again if the server refuses. An existing key for the address is never
    overwritten: that would destroy a working account.
    """
    address = Address(validate_part("username", username), probe.domain.lower())
    store = key_store(paths, keystore, passphrase)
    try:
        store.load(str(address))
    except KeyNotFound:
        pass
    else:
        raise KeystoreError(
            f"a key for {address} is already stored on this machine; choose another username"
        )
    identity = Identity.generate()
    store.save(str(address), identity.private_bytes())
    try:
        async with connect(
            probe.host, probe.port, tls_fingerprint=probe.tls_pin, server_key=probe.server_key
        ) as session:
            await session.register(address, identity, invitation or None)
    except BaseException:
        with suppress(KeystoreError):
            store.delete(str(address))
        raise
    account = Account(address, probe.host, probe.port, probe.tls_pin, probe.server_key, keystore)
    updated = config.with_account(account)
    save_config(paths, updated)
    return updated, account, identity


def load_identity(paths: Paths, account: Account, passphrase: str | None = None) -> Identity:
    """The account's private key from its keystore (raises KeystoreError subclasses)."""
    store = key_store(paths, account.keystore, passphrase)
    return Identity(store.load(str(account.address)))


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

    def __init__(self, paths: Paths, account: Account, identity: Identity) -> None:
        self.paths = paths
        self.account = account
        self.identity = identity
        self._contacts: ContactBook | None = None  # loaded when first needed: the list
        self._replays: ReplayLog | None = None  # rows need neither (~15 ms on a big mailbox)
        self._server_key: tuple[str, PublicKey] | None = None
        self.cache = MessageCache.open(paths.data_dir, account.address, identity, self.open_blob)
        self.messages: dict[str, ReceivedMessage] = dict(self.cache.rows)
        self.read: MutableSet[str] = self.cache.read

    @property
    def address(self) -> Address:
        return self.account.address

    @property
    def contacts(self) -> ContactBook:
        if self._contacts is None:
            self._contacts = ContactBook(self.paths.contacts_file(self.account.address))
        return self._contacts

    @contacts.setter
    def contacts(self, book: ContactBook) -> None:
        self._contacts = book

    @property
    def replays(self) -> ReplayLog:
        if self._replays is None:
            self._replays = ReplayLog(self.paths.replay_log(self.account.address))
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
            yield session

    # -- messages ------------------------------------------------------------------------

    def open_blob(self, message_id: str, blob: bytes) -> ReceivedMessage:
        """Open a STORED MESSAGE blob (fetched now or cached) and run every check; offline."""
        token = self.account.server_key
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
        row = self.cache.add(message_id, blob, message)
        self.messages[message_id] = row if row is not None else message
        return message

    def message(self, message_id: str) -> ReceivedMessage:
        """The whole message (body, attachments, sender key), decrypted on demand.

        Cached rows are opened from their blob the first time and kept in a small LRU.
        KeyError for an id the mailbox does not hold.
        """
        found = self.messages[message_id]
        return self.cache.message(message_id) if isinstance(found, Summary) else found

    async def refresh(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Fetch what the cache lacks, forget what is gone; returns the new ids, oldest first.

        A blob already on disk (a refresh interrupted before its index was written) is
        used without downloading it again; a damaged one is fetched again but not
        reported as new.
        """
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
        files = [Attachment(name, data) for name, data in attachments]
        async with self.session() as session:
            return await session.send(receiver, subject, body, files, in_reply_to=in_reply_to)

    async def delete(self, message_id: str) -> None:
        async with self.session() as session:
            await session.delete(message_id)
        self._forget([message_id])
        self.cache.save_if_dirty()

    def accept_key(self, address: Address, key: PublicKey) -> None:
        self.contacts.accept(address, key)
        self.reverify(address)

    def reverify(self, sender: Address | None = None) -> int:
        """Check cached messages (of ``sender``, or all) again against today's pins.

        The list shows the verification from when a message was fetched; after a key is
        accepted or a contact removed, this brings those rows up to date (one open each).
        """
        count = self.cache.reverify(lambda row: sender is None or row.sender == sender)
        self.cache.save_if_dirty()
        return count


# -- compose helpers (sizes and limits) ------------------------------------------------

_PAYLOAD_LIMITS: dict[tuple[str, int, str], int] = {}


async def server_max_payload(account: Account, *, timeout: float = 10.0) -> int:
    """The largest CLIENT MESSAGE the account's server accepts (its CAPA ``max_payload``).

    Asked once per server and run (a pinned connection, no login), so compose can show
    the limit before anything is sent without a round trip each time it opens.
    """
    key = (account.host, account.port, account.tls_pin)
    if key not in _PAYLOAD_LIMITS:
        async with connect(
            account.host,
            account.port,
            tls_fingerprint=account.tls_pin,
            server_key=account.server_key,
            timeout=timeout,
        ) as session:
            caps = session.capabilities
            assert caps is not None  # connect() only returns once CAPA was answered
            _PAYLOAD_LIMITS[key] = caps.max_payload
    return _PAYLOAD_LIMITS[key]


def estimate_payload(
    sender: str,
    receiver: str,
    subject: str,
    body: str,
    attachments: Iterable[tuple[str, int]] = (),
    in_reply_to: str | None = None,
) -> int:
    """The size in bytes of the CLIENT MESSAGE that sending this would make.

    Computed from sizes alone (attachment contents are not read), following the layout of
    ``envelope.seal_message`` and ``seal_client_message``: content JSON with base64url
    attachments, length-prefixed fields and a signature, padded, sealed, then wrapped.
    """
    import json

    from rune_proto.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
    from rune_proto.padding import MAX_PLAINTEXT, padded_size
    from rune_proto.suite import HPKE_OVERHEAD

    doc: dict[str, object] = {"subject": subject, "body": body, "attachments": []}
    if in_reply_to is not None:
        doc["in_reply_to"] = in_reply_to
    size = len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    for index, (name, length) in enumerate(attachments):
        entry = json.dumps(
            {"filename": name, "data": ""}, ensure_ascii=False, separators=(",", ":")
        )
        size += len(entry.encode("utf-8")) + (length * 4 + 2) // 3 + (1 if index else 0)
    fields = (len(sender.encode()), PUBLIC_KEY_SIZE, len(receiver.encode()), 16, 8, size)
    inner = sum(fields) + 4 * len(fields) + SIGNATURE_SIZE
    sealed = padded_size(min(inner, MAX_PLAINTEXT)) + HPKE_OVERHEAD
    if inner > MAX_PLAINTEXT:
        sealed += inner - MAX_PLAINTEXT  # too big to send at all; keep the number honest
    return 4 + sealed + SIGNATURE_SIZE + HPKE_OVERHEAD
