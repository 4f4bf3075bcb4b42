"""A deliberately malicious Rune server, built on the real core, for client-library tests.

It is honest by default: the real sans-I/O :class:`Connection` in the server role, the
real handshake and envelope functions, real TLS with a self-signed certificate made
with ``cryptography``, accounts and mailboxes in memory. Each lie is switched on
through :class:`Lies`: another TLS certificate, another server key in ``CAPA``,
``205`` or ``201``, an attacker's key for the receiver on ``SEND``, raw bytes in place
of any reply (malformed, oversized, unsolicited, a greeting that is not ``HOWDY``), a
server that never speaks or trickles bytes. STORED MESSAGEs can be forged, re-signed,
replayed and re-labelled with :meth:`LyingServer.wrap` and :meth:`LyingServer.deliver`,
from the sealed MESSAGEs the server saw (:attr:`LyingServer.deliveries`) — exactly
what a compromised server holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import tempfile
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rune_proto import status
from rune_proto.address import Address
from rune_proto.connection import Connection, Role, State
from rune_proto.envelope import open_client_message, seal_stored_message
from rune_proto.errors import LocalProtocolError, RemoteProtocolError
from rune_proto.events import (
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
    Reply,
    Retrieve,
    Retrieved,
    Roger,
    Send,
    SendReady,
)
from rune_proto.handshake import check_answer, check_login_proof, make_challenge, new_nonce
from rune_proto.keys import Identity, PublicKey
from rune_proto.server.datadir import self_signed_certificate
from rune_proto.suite import EnvelopeError
from rune_proto.tlspin import spki_fingerprint

HOST = "127.0.0.1"
MAX_PAYLOAD = 1024 * 1024


@dataclass(frozen=True)
class Certificate:
    """A self-signed TLS certificate, its key (PEM) and its SPKI pin."""

    cert_pem: bytes
    key_pem: bytes
    pin: str
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def self_signed(
        cls, key: ec.EllipticCurvePrivateKey | None = None, name: str = "rune-server"
    ) -> Certificate:
        """A fresh certificate; pass an old ``key`` to renew with the same pin."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        cert = self_signed_certificate(key, name, dt.timedelta(days=30))
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pin = spki_fingerprint(cert.public_bytes(serialization.Encoding.DER))
        return cls(cert.public_bytes(serialization.Encoding.PEM), key_pem, pin, key)


# Given the command and the honest reply: None (tell the truth), another Reply (a typed
# lie), or raw bytes to send instead of the reply (anything at all).
Tamper = Callable[[Command, Reply], Reply | bytes | None]


@dataclass
class Lies:
    """What the server lies about; everything off means an honest server."""

    certificate: Certificate | None = None  # serve this instead of the server's own
    tls_maximum: ssl.TLSVersion | None = None  # e.g. TLSv1_1: an outdated server
    greeting: bytes | None = None  # raw bytes instead of "HOWDY rune/1 …\r\n"
    after_greeting: bytes = b""  # unsolicited bytes right after the greeting
    stall: bool = False  # complete TLS, then never say anything
    trickle: bytes = b""  # send these one byte at a time, slowly, instead of greeting
    trickle_interval: float = 0.05
    capa_server_key: PublicKey | None = None
    challenge_server_key: PublicKey | None = None
    send_server_key: PublicKey | None = None
    send_receiver_key: PublicKey | None = None  # the key-substitution attack
    lookup_keys: dict[Address, PublicKey] = field(default_factory=dict)
    tamper: Tamper | None = None
    close_after_tamper: bool = False  # hang up right after a tampered reply


@dataclass(frozen=True)
class Delivery:
    """A MESSAGE as the server saw it: who sent it to whom, and the sealed MESSAGE."""

    sender: Address
    receiver: Address
    sealed: bytes
    stored_id: str


class LyingServer:
    """``async with LyingServer() as server:`` serves on 127.0.0.1:``server.port``."""

    def __init__(self, domain: str = "lies.example", identity: Identity | None = None) -> None:
        self.domain = domain
        self.identity = identity or Identity.generate()
        self.certificate = Certificate.self_signed()
        self.lies = Lies()
        self.accounts: dict[Address, PublicKey] = {}
        self.mailboxes: dict[Address, dict[str, bytes]] = {}
        self.deliveries: list[Delivery] = []
        self.commands: list[Command] = []  # every command received, in order
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dir = tempfile.TemporaryDirectory(prefix="lying-server-")

    # --- what a compromised server can do with its own data --------------------

    @property
    def tls_pin(self) -> str:
        return self.certificate.pin

    def add_account(self, address: Address, key: PublicKey) -> None:
        self.accounts[address] = key

    def deliver(self, receiver: Address, blob: bytes) -> str:
        """Put any blob into a mailbox under a fresh id."""
        message_id = str(uuid.uuid4())
        self.mailboxes.setdefault(receiver, {})[message_id] = blob
        return message_id

    def wrap(
        self,
        receiver: Address,
        sender: Address,
        sealed: bytes,
        *,
        signer: Identity | None = None,
        receiver_key: PublicKey | None = None,
        received_at: dt.datetime | None = None,
    ) -> bytes:
        """A STORED MESSAGE around ``sealed``, asserting ``sender``, signed by ``signer``."""
        return seal_stored_message(
            signer or self.identity,
            receiver,
            receiver_key or self.accounts[receiver],
            sender,
            sealed,
            received_at,
        )

    def commands_of(self, kind: type[Command]) -> list[Command]:
        return [c for c in self.commands if isinstance(c, kind)]

    # --- life cycle --------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        cert = self.lies.certificate or self.certificate
        folder = Path(self._dir.name)
        (folder / "cert.pem").write_bytes(cert.cert_pem)
        (folder / "key.pem").write_bytes(cert.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self.lies.tls_maximum is not None:
            with warnings.catch_warnings():  # deprecated versions, on purpose
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = self.lies.tls_maximum
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        return context

    async def start(self) -> None:
        """Listen (again, on the same port if it ran before) with the current lies."""
        self._server = await asyncio.start_server(
            self._accept, HOST, self.port, ssl=self._context(), ssl_handshake_timeout=5
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def restart(self) -> None:
        """Apply TLS lies (certificate, version), which are fixed per listening socket."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> LyingServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        self._dir.cleanup()

    # --- one connection ----------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lies = self.lies
        conn = Connection(Role.SERVER, max_payload=MAX_PAYLOAD)
        if lies.stall:
            await asyncio.sleep(3600)
        for byte in lies.trickle:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(lies.trickle_interval)
        greeting = conn.send(Greeting(("rune/1",), "Lies, all lies"))
        writer.write((greeting if lies.greeting is None else lies.greeting) + lies.after_greeting)
        await writer.drain()
        session = _Session(self, conn)
        while conn.state is not State.CLOSED:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                if exc.fatal:
                    return
                writer.write(conn.send(ErrorReply(exc.status, str(exc))))
                await writer.drain()
                continue
            if event is NEED_DATA:
                data = await reader.read(64 * 1024)
                conn.receive_data(data)
                continue
            if isinstance(event, ConnectionClosed) or not isinstance(event, Command):
                return
            self.commands.append(event)
            honest = session.answer(event)
            lie = lies.tamper(event, honest) if lies.tamper else None
            writer.write(self._render(conn, honest, lie))
            await writer.drain()
            if lie is not None and lies.close_after_tamper:
                return

    def _render(self, conn: Connection, honest: Reply, lie: Reply | bytes | None) -> bytes:
        if lie is None:
            return conn.send(honest)
        if isinstance(lie, bytes):
            with contextlib.suppress(LocalProtocolError):
                conn.send(honest)  # keep the core's state moving as if we had told the truth
            return lie
        return conn.send(lie)


@dataclass
class _Session:
    """The honest server logic (plus key lies), per connection."""

    server: LyingServer
    conn: Connection
    registration: tuple[Address, PublicKey, bytes] | None = None
    login: tuple[Address, bytes] | None = None
    receiver: Address | None = None

    def answer(self, command: Command) -> Reply:
        server, lies = self.server, self.server.lies
        public = server.identity.public
        match command:
            case Capa():
                return Capabilities(
                    ("rune/1",),
                    server.domain,
                    ("free",),
                    MAX_PAYLOAD,
                    4096,
                    lies.capa_server_key or public,
                )
            case Register(address=address, public_key=key):
                if address in server.accounts:
                    return ErrorReply(status.ADDRESS_TAKEN, "address already registered")
                nonce = new_nonce()
                self.registration = (address, key, nonce)
                challenge = make_challenge(server.identity, address, key, nonce)
                return Challenge(challenge, lies.challenge_server_key or public)
            case ChallengeAccepted(answer=answer):
                assert self.registration is not None
                address, key, nonce = self.registration
                try:
                    check_answer(server.identity, address, key, nonce, answer)
                except EnvelopeError:
                    return ErrorReply(status.CHALLENGE_FAILED, "registration challenge failed")
                server.accounts[address] = key
                return Registered(address)
            case Login(address=address):
                self.login = (address, new_nonce())
                return LoginNonce(self.login[1])
            case Proof(signature=signature):
                assert self.login is not None
                address, nonce = self.login
                account = server.accounts.get(address)
                if account is None or not check_login_proof(
                    account, address, public, nonce, signature
                ):
                    return ErrorReply(status.AUTHENTICATION_FAILED, "authentication failed")
                return Authenticated(address)
            case Send(receiver=receiver):
                if receiver not in server.accounts:
                    return ErrorReply(status.NOT_FOUND, "not found")
                self.receiver = receiver
                key = lies.send_receiver_key or server.accounts[receiver]
                return SendReady(MAX_PAYLOAD, key, lies.send_server_key or public)
            case Message(sender=sender, payload=payload):
                assert self.receiver is not None
                receiver, self.receiver = self.receiver, None
                try:
                    sealed = open_client_message(
                        server.identity, sender, server.accounts[sender], receiver, payload
                    )
                except EnvelopeError:
                    return ErrorReply(status.BAD_SIGNATURE, "message signature invalid")
                stored_id = server.deliver(receiver, server.wrap(receiver, sender, sealed))
                server.deliveries.append(Delivery(sender, receiver, sealed, stored_id))
                return Roger()
            case ListMessages():
                box = server.mailboxes.get(self._me, {})
                return Listing(tuple(sorted((i, len(b)) for i, b in box.items())))
            case Retrieve(message_id=message_id):
                blob = server.mailboxes.get(self._me, {}).get(message_id)
                if blob is None:
                    return ErrorReply(status.NOT_FOUND, "not found")
                return Retrieved(message_id, blob)
            case Delete(message_id=message_id):
                if server.mailboxes.get(self._me, {}).pop(message_id, None) is None:
                    return ErrorReply(status.NOT_FOUND, "not found")
                return Deleted(message_id)
            case Lookup(address=address):
                found = lies.lookup_keys.get(address) or server.accounts.get(address)
                if found is None:
                    return ErrorReply(status.NOT_FOUND, "not found")
                return KeyFound(address, found)
            case Noop():
                return Ok()
            case Quit():
                return Bye()
        raise AssertionError(f"no answer for {command!r}")

    @property
    def _me(self) -> Address:
        assert self.conn.address is not None
        return self.conn.address
