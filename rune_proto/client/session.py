"""The asyncio client: a thin driver over the sans-I/O :class:`Connection`.

``connect()`` opens TLS, checks the certificate pin, reads the greeting, asks
``CAPA`` and checks the server key, then hands back a :class:`Session` whose
methods map one-to-one onto protocol operations. Every reply that is not the
expected one becomes a typed exception; nothing is retried behind the caller's back.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..address import Address, AddressError, parse_address
from ..connection import MAX_BODY_BYTES, MAX_BODY_LINES, Connection, Role, State
from ..envelope import (
    Attachment,
    Content,
    new_message_id,
    seal_client_message,
    seal_message,
)
from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import (
    NEED_DATA,
    Authenticated,
    Bye,
    Capa,
    Capabilities,
    Challenge,
    ChallengeAccepted,
    Command,
    ConnectionClosed,
    Delete,
    Deleted,
    ErrorReply,
    Event,
    Greeting,
    KeyFound,
    Listing,
    ListMessages,
    Login,
    LoginNonce,
    Lookup,
    Message,
    Noop,
    Ok,
    Proof,
    Quit,
    Register,
    Registered,
    RegisterInvitation,
    Reply,
    Retrieve,
    Retrieved,
    Roger,
    Send,
    SendReady,
)
from ..handshake import answer_challenge, login_proof
from ..keys import Identity, InvalidKey, PublicKey
from ..padding import MAX_PLAINTEXT, padded_size
from ..suite import EnvelopeError
from ..tlspin import normalise_pin, pins_match, spki_fingerprint
from ..wire import message_line_limit
from .contacts import ContactBook, ReplayLog
from .errors import (
    ClientError,
    ConnectionFailed,
    ContactKeyChanged,
    NotTrusted,
    PayloadTooLarge,
    ProtocolViolation,
    ServerError,
    ServerKeyChanged,
    TLSPinMismatch,
)
from .messages import ReceivedMessage, open_retrieved

DEFAULT_PORT = 7117
DEFAULT_TIMEOUT = 30.0
_READ_CHUNK = 256 * 1024
_THREAD_THRESHOLD = 256 * 1024  # seal big messages off the event loop
# A reply must arrive within the timeout; one still arriving at least this fast (bytes
# per second) gets more time, so a big RETRIEVE on a slow link completes while a server
# that trickles bytes cannot hold the client forever.
_MIN_RATE = 32 * 1024
_LINE = 16 * 1024  # the longest single-line reply but 250 (connection._REPLY_LINE_LIMIT)
_CLOSE_REPORT_TURNS = 3  # loop turns for asyncio to report a broken connection (SSL: two)
# The largest CLIENT MESSAGE a valid message can need (protocol.md §9.8): a server that
# announces a bigger MAX_PAYLOAD cannot make the client buffer longer RETRIEVE replies.
LARGEST_PAYLOAD = padded_size(MAX_PLAINTEXT) + 2340

_R = TypeVar("_R", bound=Reply)


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


class Session:
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
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = Connection(Role.CLIENT)
        self._lock = asyncio.Lock()
        self._pinned_server_key = server_key
        self._timeout = timeout
        self.tls_fingerprint = tls_fingerprint
        self.contacts = contacts
        self.replays = replays
        self.greeting: Greeting | None = None
        self.capabilities: Capabilities | None = None
        self.address: Address | None = None
        self._identity: Identity | None = None

    # --- plumbing -------------------------------------------------------------

    @property
    def server_key(self) -> PublicKey:
        """The server's signing key, as pinned (or as first seen in ``CAPA``)."""
        key = self._pinned_server_key or (self.capabilities and self.capabilities.server_key)
        if not key:
            raise ClientError("the server's key is not known yet")
        return key

    @property
    def closed(self) -> bool:
        return self._conn.state is State.CLOSED

    async def _next_event(self, budget: int = 2 * _LINE) -> Event:
        """The next event from the server, within bounds of time and size.

        The whole reply must arrive within the timeout (extended only while data keeps
        coming at ``_MIN_RATE``) and within ``budget`` bytes, so a silent, trickling or
        flooding server cannot hold the client: it gets ConnectionFailed or
        ProtocolViolation instead.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        received = 0
        while True:
            try:
                event = self._conn.next_event()
            except RemoteProtocolError as exc:
                self._abort()
                raise ProtocolViolation(f"the server broke the protocol: {exc}") from exc
            if event is not NEED_DATA:
                return event
            try:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):  # no task per read, as wait_for makes
                    data = await self._reader.read(_READ_CHUNK)
                if data and self._writer.transport.is_closing():
                    await self._closing_reason()
            except TimeoutError as exc:
                self._abort()
                raise ConnectionFailed(
                    f"the server did not answer within {self._timeout:g} s"
                ) from exc
            except (OSError, ssl.SSLError) as exc:
                self._abort()
                raise ConnectionFailed(f"the connection broke: {exc}") from exc
            received += len(data)
            if received > budget:
                self._abort()
                raise ProtocolViolation(f"the server sent more than {budget:,} bytes for one reply")
            deadline += len(data) / _MIN_RATE
            self._conn.receive_data(data)

    async def _closing_reason(self) -> None:
        """Raise the error that is closing the connection, if there is one.

        A read returns as soon as bytes arrive, before asyncio reports that the same
        wake-up also broke the connection (say our write met a server that is gone).
        Those bytes were then sent before it went away, not in answer to us: let the
        report land (it takes a few loop turns) and raise it instead of reading them.
        """
        for _ in range(_CLOSE_REPORT_TURNS):
            if self._reader.exception() is not None:
                break
            await asyncio.sleep(0)
        exc = self._reader.exception()
        if exc is not None:
            raise exc

    def _budget(self, command: Command) -> int:
        """The most bytes any valid reply to ``command`` can take (with a closing 421)."""
        if isinstance(command, Retrieve):
            return message_line_limit(self._conn.max_payload + 64 * 1024) + 2 * _LINE
        if isinstance(command, ListMessages | Capa):
            return MAX_BODY_BYTES + 2 * MAX_BODY_LINES + 4 * _LINE
        return 2 * _LINE

    async def _unsolicited(self) -> None:
        """The server spoke before being asked: a closing status is reported, else a lie."""
        event = await self._next_event()
        self._abort()
        if isinstance(event, ErrorReply):
            raise ServerError(event.status, event.text)
        if isinstance(event, ConnectionClosed):
            raise ConnectionFailed("the server closed the connection")
        raise ProtocolViolation(f"the server sent {type(event).__name__} unasked")

    def _abort(self) -> None:
        self._conn.state = State.CLOSED
        self._writer.close()

    async def _exchange(self, command: Command, expected: type[_R]) -> _R:
        if self.closed:
            raise ConnectionFailed("the connection is closed")
        if self._conn.buffered:  # nothing may arrive between a reply and our next command
            await self._unsolicited()
        try:
            data = self._conn.send(command)
        except LocalProtocolError as exc:
            raise ClientError(f"cannot {command.verb} now: {exc}") from exc
        try:
            self._writer.write(data)
            if self._writer.transport.get_write_buffer_size() == 0:
                await self._writer.drain()  # all sent: cannot wait, needs no timer
            else:
                async with asyncio.timeout(self._timeout):
                    await self._writer.drain()
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self._abort()
            raise ConnectionFailed(f"could not send to the server: {exc}") from exc
        reply = await self._next_event(self._budget(command))
        if isinstance(reply, ConnectionClosed):
            self._abort()
            raise ConnectionFailed("the server closed the connection")
        if isinstance(reply, ErrorReply):
            if self.closed:
                self._writer.close()
            raise ServerError(reply.status, reply.text)
        if not isinstance(reply, expected):  # pragma: no cover - the codec types replies
            self._abort()
            raise ProtocolViolation(f"unexpected reply {reply!r}")
        if isinstance(reply, Capabilities | SendReady):
            # A lying MAX_PAYLOAD must not raise how much of a reply we are willing to hold.
            self._conn.max_payload = min(self._conn.max_payload, LARGEST_PAYLOAD)
        return reply

    def _violation(self, what: str) -> ProtocolViolation:
        """Close the connection and describe the lie (for the caller to raise)."""
        self._abort()
        return ProtocolViolation(what)

    async def _start(self) -> None:
        greeting = await self._next_event()
        if isinstance(greeting, ErrorReply):  # e.g. 421 too many connections, told why
            self._abort()
            raise ServerError(greeting.status, greeting.text)
        if not isinstance(greeting, Greeting):
            self._abort()
            raise ConnectionFailed("the server closed the connection before greeting")
        if "rune/1" not in greeting.versions:
            self._abort()
            raise ClientError(f"the server speaks {', '.join(greeting.versions)}, not rune/1")
        self.greeting = greeting
        self.capabilities = await self._exchange(Capa(), Capabilities)
        self._check_server_key(self.capabilities.server_key, "CAPA")

    def _check_server_key(self, offered: PublicKey, where: str) -> None:
        """Every server key the server presents must be the pinned one and CAPA's (§3.3).

        A mismatch ends the session: a server that changes its key is not to be used.
        """
        pinned = self._pinned_server_key
        if pinned is not None and pinned != offered:
            self._abort()
            raise ServerKeyChanged(pinned.fingerprint_text(), offered.fingerprint_text())
        announced = self.capabilities.server_key if self.capabilities else None
        if announced is not None and announced != offered:
            raise self._violation(f"the server's key in its {where} differs from CAPA's")

    def _require_login(self) -> tuple[Address, Identity]:
        if self.address is None or self._identity is None:
            raise ClientError("log in first")
        return self.address, self._identity

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

    async def send(
        self,
        to: str | Address,
        subject: str,
        body: str,
        attachments: Iterable[Attachment | tuple[str, bytes]] = (),
        *,
        in_reply_to: str | None = None,
    ) -> str:
        """Encrypt, sign and deliver a message; returns its message id (hex).

        Blocks (raises :class:`ContactKeyChanged`) when the receiver's key differs
        from the pinned one, without sending anything.
        """
        sender, identity = self._require_login()
        receiver = _as_address(to)
        files = tuple(a if isinstance(a, Attachment) else Attachment(*a) for a in attachments)
        content = Content(subject, body, files, in_reply_to)
        message_id = new_message_id()
        async with self._lock:
            ready = await self._exchange(Send(receiver), SendReady)
            try:
                self._check_server_key(ready.server_key, "201")
                check = self.contacts.check(receiver, ready.receiver_key, "first send")
                if check.changed:
                    raise ContactKeyChanged(
                        str(receiver),
                        check.contact.fingerprint,
                        ready.receiver_key.fingerprint_text(),
                        ready.receiver_key,
                    )
                payload = await self._seal(sender, identity, receiver, ready, content, message_id)
                if len(payload) > ready.max_payload:
                    raise PayloadTooLarge(len(payload), ready.max_payload)
            except ClientError:
                if not self.closed:  # abandon the send; its failure must not hide ours
                    with suppress(ClientError):
                        await self._exchange(Noop(), Ok)
                raise
            await self._exchange(Message(sender, payload), Roger)
        return message_id.hex()

    async def _seal(
        self,
        sender: Address,
        identity: Identity,
        receiver: Address,
        ready: SendReady,
        content: Content,
        message_id: bytes,
    ) -> bytes:
        def work() -> bytes:
            sealed = seal_message(
                sender, identity, receiver, ready.receiver_key, content, message_id=message_id
            )
            return seal_client_message(sender, identity, receiver, ready.server_key, sealed)

        size = sum(len(a.data) for a in content.attachments) + len(content.body)
        return await asyncio.to_thread(work) if size > _THREAD_THRESHOLD else work()

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
        self._require_login()
        try:
            command = Delete(message_id)
        except LocalProtocolError as exc:
            raise ClientError(f"{message_id!r} is not a message id") from exc
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


def _tls_context(ca_path: Path | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_path is not None:
        context.load_verify_locations(cafile=str(ca_path))
    else:  # the pin, checked right after the handshake, replaces CA validation
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


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
    timeout: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[Session]:
    """Open a session. Refuses unless a TLS pin, a CA, or trust-on-first-use is given.

    With ``trust_on_first_use=True`` and no pin, any certificate is accepted and its
    fingerprint is in ``session.tls_fingerprint`` for the caller to pin.
    """
    if tls_fingerprint is None and ca_path is None and not trust_on_first_use:
        raise NotTrusted(
            "refusing to connect: give the server's TLS fingerprint, a CA file, "
            "or trust_on_first_use=True"
        )
    expected = normalise_pin(tls_fingerprint) if tls_fingerprint else None
    pinned_key = _as_key(server_key)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=_tls_context(ca_path), server_hostname=host, limit=_READ_CHUNK
            ),
            timeout,
        )
    except TimeoutError as exc:
        raise ConnectionFailed(f"no answer from {host}:{port} within {timeout:g} s") from exc
    except ssl.SSLError as exc:
        raise ConnectionFailed(f"TLS handshake with {host}:{port} failed: {exc.reason}") from exc
    except OSError as exc:
        raise ConnectionFailed(f"cannot reach {host}:{port}: {exc.strerror or exc}") from exc
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            raise ConnectionFailed("the server presented no certificate")
        actual = spki_fingerprint(der)
        if expected is not None and not pins_match(expected, actual):
            raise TLSPinMismatch(expected, actual)
        session = Session(
            reader,
            writer,
            actual,
            server_key=pinned_key,
            contacts=contacts if contacts is not None else ContactBook(),
            replays=replays if replays is not None else ReplayLog(),
            timeout=timeout,
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
