"""The TUI's only door to the network and to keys: wraps the client library.

Screens call these coroutines from workers; nothing here touches Textual, so it is
tested on its own against a real server. Each operation opens a session, does its
work and closes it: a terminal mail client is idle most of the time, and a fresh
session means a dropped connection never leaves the app in a half state.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
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

from .config import Account, Config, Paths, save_config


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


@dataclass(slots=True)
class Mailbox:
    """One account's view of its server mailbox, kept in memory while the app runs."""

    paths: Paths
    account: Account
    identity: Identity
    messages: dict[str, ReceivedMessage] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)
    contacts: ContactBook = field(init=False)
    replays: ReplayLog = field(init=False)

    def __post_init__(self) -> None:
        self.contacts = ContactBook(self.paths.contacts_file(self.account.address))
        self.replays = ReplayLog(self.paths.replay_log(self.account.address))

    @property
    def address(self) -> Address:
        return self.account.address

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

    async def refresh(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Fetch what is new, forget what is gone; returns the new ids, oldest first."""
        async with self.session() as session:
            listing = await session.list()
            on_server = {info.id for info in listing}
            for gone in set(self.messages) - on_server:
                del self.messages[gone]
            new = [info.id for info in listing if info.id not in self.messages]
            for done, message_id in enumerate(new, 1):
                self.messages[message_id] = await session.retrieve(message_id)
                if progress is not None:
                    progress(done, len(new))
        return new

    def ordered(self) -> list[ReceivedMessage]:
        """Newest first, by the server's receive time."""
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(self.messages.values(), key=lambda m: m.received_at or epoch, reverse=True)

    def unread_count(self) -> int:
        return sum(1 for m in self.messages if m not in self.read)

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
        self.messages.pop(message_id, None)
        self.read.discard(message_id)

    def accept_key(self, address: Address, key: PublicKey) -> None:
        self.contacts.accept(address, key)
