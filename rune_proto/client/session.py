"""The asyncio client: a thin driver over the sans-I/O :class:`Connection`.

``connect()`` opens TLS, checks the certificate pin, reads the greeting, asks
``CAPA`` and checks the server key, then hands back a :class:`Session` whose
methods map one-to-one onto protocol operations. Every reply that is not the
expected one becomes a typed exception; nothing is retried behind the caller's back.

The TLS stream and its pin are in :mod:`.tls`, the request/reply loop and the
greeting in :class:`~.channel.Channel`; this module holds the operations.

``connect()`` never guesses where to remember things: key pins and the replay log
(seen and deleted messages) protect the user only if they outlive the session, so it
wants them given, or a ``state_dir`` to keep them in, or ``ephemeral=True``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ..address import Address, AddressError, parse_address
from ..errors import LocalProtocolError
from ..events import (
    Authenticated,
    Bye,
    Challenge,
    ChallengeAccepted,
    Command,
    Delete,
    Deleted,
    KeyFound,
    Listing,
    ListMessages,
    Login,
    LoginNonce,
    Lookup,
    Noop,
    Ok,
    Proof,
    Quit,
    Register,
    Registered,
    RegisterInvitation,
    Retrieve,
    Retrieved,
)
from ..handshake import answer_challenge, login_proof
from ..keys import Identity, InvalidKey, PublicKey
from ..suite import EnvelopeError
from ..tlspin import normalise_pin
from ..transport import DEFAULT_PORT
from .channel import LARGEST_PAYLOAD
from .contacts import ContactBook, ReplayLog
from .errors import (
    ClientError,
    NotTrusted,
    ProtocolViolation,
)
from .messages import ReceivedMessage, open_retrieved
from .sending import Sender
from .state import StateDir, choose_state
from .tls import open_pinned
from .waiting import MailWaiter

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "LARGEST_PAYLOAD",
    "MessageInfo",
    "Session",
    "connect",
]

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """One line of ``LIST``: a stored message's id and padded size."""

    id: str
    size: int


def _as_address(value: str | Address) -> Address:
    if isinstance(value, Address):
        return value
    try:
        return parse_address(value)
    except AddressError as exc:
        raise ClientError(f"{value!r} is not a valid address: {exc}") from exc


def _as_key(value: str | PublicKey | None) -> PublicKey | None:
    if value is None or isinstance(value, PublicKey):
        return value
    try:
        return PublicKey.from_token(value)
    except InvalidKey as exc:
        raise ClientError(f"the pinned server key is malformed: {exc}") from exc


class Session(Sender, MailWaiter):
    """One logged-in (or not yet logged-in) connection to a Rune server."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls_fingerprint: str,
        *,
        server_key: PublicKey | None,
        contacts: ContactBook,
        replays: ReplayLog,
        timeout: float,
        state: StateDir | None = None,
    ) -> None:
        super().__init__(reader, writer, server_key=server_key, timeout=timeout)
        self._lock = asyncio.Lock()
        self.tls_fingerprint = tls_fingerprint
        # With a state directory, login() replaces whichever of these was not given (in
        # memory and unused until then: every operation that reads them needs a login).
        self.contacts = contacts
        self.replays = replays
        self._state = state
        self.address: Address | None = None
        self._identity: Identity | None = None

    def _require_login(self) -> tuple[Address, Identity]:
        if self.address is None or self._identity is None:
            raise ClientError("log in first")
        return self.address, self._identity

    def _as_receiver(self, to: str | Address) -> Address:
        return _as_address(to)

    # --- operations -----------------------------------------------------------

    async def register(
        self, address: str | Address, identity: Identity, invitation: str | None = None
    ) -> Address:
        """Register ``address`` with ``identity``'s public key; proves both key halves."""
        target = _as_address(address)
        caps = self.capabilities
        if caps is not None and target.domain != caps.domain.lower():
            raise ClientError(f"this server's domain is {caps.domain}, not {target.domain}")
        command: Command
        if invitation is None:
            command = Register(target, identity.public)
        else:
            try:
                command = RegisterInvitation(target, invitation.strip(), identity.public)
            except LocalProtocolError as exc:
                raise ClientError(f"that invitation token is malformed: {exc}") from exc
        async with self._lock:
            challenge = await self._exchange(command, Challenge)
            self._check_server_key(challenge.server_key, "challenge")
            try:
                answer = answer_challenge(
                    identity, target, challenge.server_key, challenge.challenge
                )
            except EnvelopeError as exc:
                self._abort()
                raise ProtocolViolation(f"the server's challenge is not valid: {exc}") from exc
            registered = await self._exchange(ChallengeAccepted(answer), Registered)
            if registered.address != target:
                raise self._violation(f"the server registered {registered.address}, not {target}")
        if self._pinned_server_key is None:
            self._pinned_server_key = challenge.server_key
        return registered.address

    async def login(self, address: str | Address, identity: Identity) -> None:
        target = _as_address(address)
        async with self._lock:
            nonce = await self._exchange(Login(target), LoginNonce)
            proof = login_proof(identity, target, self.server_key, nonce.nonce)
            done = await self._exchange(Proof(proof), Authenticated)
            if done.address != target:
                raise self._violation(f"the server logged us in as {done.address}, not {target}")
        self.address, self._identity = target, identity
        if self._state is not None:
            self.contacts, self.replays = self._state.open(
                target, identity, self.contacts, self.replays
            )

    async def list(self) -> list[MessageInfo]:
        self._require_login()
        async with self._lock:
            listing = await self._exchange(ListMessages(), Listing)
        return [MessageInfo(i, n) for i, n in listing.entries]

    async def retrieve_blob(self, message_id: str) -> bytes:
        """The stored, still-encrypted blob (for a local cache)."""
        self._require_login()
        try:
            command = Retrieve(message_id)
        except LocalProtocolError as exc:
            raise ClientError(f"{message_id!r} is not a message id") from exc
        async with self._lock:
            reply = await self._exchange(command, Retrieved)
            if reply.message_id != message_id:
                raise self._violation(f"asked for {message_id}, the server sent {reply.message_id}")
            return reply.blob

    async def retrieve(self, message_id: str) -> ReceivedMessage:
        """Fetch and open a message; every check's result is in ``.verification``."""
        return self.open_blob(message_id, await self.retrieve_blob(message_id))

    async def retrieve_all(self) -> AsyncIterator[ReceivedMessage]:
        """Every message in the mailbox, in LIST order, unreadable ones included.

        Opening never raises for a message's content, so one poison message is yielded as
        unreadable (and can be deleted by its id) instead of hiding the ones after it.
        """
        for info in await self.list():
            yield await self.retrieve(info.id)

    def open_blob(self, message_id: str, blob: bytes) -> ReceivedMessage:
        """Open a stored blob (fetched now or earlier) without touching the network."""
        address, identity = self._require_login()
        return open_retrieved(
            message_id,
            blob,
            identity=identity,
            address=address,
            server_key=self.server_key,
            contacts=self.contacts,
            replays=self.replays,
        )

    async def delete(self, message_id: str) -> None:
        """Delete a stored message; the replay log remembers it, so the server
        cannot deliver it again as a new message."""
        self._require_login()
        try:
            command = Delete(message_id)
        except LocalProtocolError as exc:
            raise ClientError(f"{message_id!r} is not a message id") from exc
        # Recorded (fsynced) before DELETE goes out: see ReplayLog.record_deleted.
        self.replays.record_deleted(message_id)
        async with self._lock:
            reply = await self._exchange(command, Deleted)
            if reply.message_id != message_id:
                raise self._violation(f"deleted {message_id}, the server says {reply.message_id}")

    async def lookup(self, address: str | Address) -> PublicKey:
        """The key the server holds for ``address`` (compare it with the pin yourself)."""
        self._require_login()
        target = _as_address(address)
        async with self._lock:
            found = await self._exchange(Lookup(target), KeyFound)
            if found.address != target:
                raise self._violation(f"asked for {target}'s key, got {found.address}'s")
            return found.public_key

    async def noop(self) -> None:
        async with self._lock:
            await self._exchange(Noop(), Ok)

    async def quit(self) -> None:
        """Say goodbye politely; the session is closed afterwards either way."""
        if self.closed:
            return
        async with self._lock:
            with suppress(ClientError):
                await self._exchange(Quit(), Bye)
        self._abort()


@asynccontextmanager
async def connect(
    host: str,
    port: int = DEFAULT_PORT,
    *,
    tls_fingerprint: str | None = None,
    trust_on_first_use: bool = False,
    ca_path: Path | None = None,
    server_key: str | PublicKey | None = None,
    contacts: ContactBook | None = None,
    replays: ReplayLog | None = None,
    state_dir: Path | None = None,
    ephemeral: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[Session]:
    """Open a session. Refuses unless a TLS pin, a CA, or trust-on-first-use is given.

    With ``trust_on_first_use=True`` and no pin, any certificate is accepted and its
    fingerprint is in ``session.tls_fingerprint`` for the caller to pin.

    Refuses (:class:`ClientError`) unless it knows where key pins and the replay log
    live: ``contacts`` and ``replays``; or ``state_dir``, under which ``login()`` opens
    ``<address>/contacts.toml`` and the sealed ``<address>/seen`` for whichever of the
    two was not given; or ``ephemeral=True``, for a session that keeps both in memory
    only (registration, probes, tests) and so pins nothing beyond its own end.
    """
    if tls_fingerprint is None and ca_path is None and not trust_on_first_use:
        raise NotTrusted(
            "refusing to connect: give the server's TLS fingerprint, a CA file, "
            "or trust_on_first_use=True"
        )
    state = choose_state(contacts, replays, state_dir, ephemeral)
    expected = normalise_pin(tls_fingerprint) if tls_fingerprint else None
    pinned_key = _as_key(server_key)
    reader, writer, actual = await open_pinned(host, port, expected, ca_path, timeout)
    try:
        session = Session(
            reader,
            writer,
            actual,
            server_key=pinned_key,
            contacts=contacts if contacts is not None else ContactBook(),
            replays=replays if replays is not None else ReplayLog(),
            timeout=timeout,
            state=state,
        )
        await session._start()
    except BaseException:
        writer.close()
        raise
    try:
        yield session
    finally:
        with suppress(Exception):
            await asyncio.wait_for(session.quit(), 2)
        writer.close()
        with suppress(Exception):
            await writer.wait_closed()
