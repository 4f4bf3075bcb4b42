"""What each command means on the server: one :class:`ServerSession` per connection, no I/O.

The core :class:`~rune_proto.connection.Connection` has already checked syntax and
that the command is legal in the current state; a session only decides the answer.
Answers that could tell an outsider something are uniform on purpose: ``LOGIN``
always returns a nonce, a failed ``PROOF`` reads the same for unknown addresses and
wrong keys, and another user's message id gets the same ``404`` as a random one.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from .. import status
from ..address import Address
from ..connection import Connection
from ..envelope import is_sealed_message_size, open_client_message, seal_stored_message
from ..events import (
    Authenticated,
    BoundSend,
    Bye,
    Capa,
    Capabilities,
    Challenge,
    ChallengeAccepted,
    Command,
    Delete,
    Deleted,
    ErrorReply,
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
from ..handshake import check_answer, check_login_proof, make_challenge, new_nonce
from ..keys import Identity, PublicKey
from ..suite import EnvelopeError
from .admission import RateLimitedLog
from .config import ServerConfig
from .limits import Kind, Limiter, LimitReached, Rule, secret_of
from .notifier import LocalNotifier, MailNotifier
from .store import DiskFull, Invitation, Outcome, Store
from .throttle import Throttle, backoff

VERSIONS = ("rune/1",)
PIPELINE = ("SEND",)  # announced in CAPA: the bound SEND of docs/protocol.md §9.9
# Payloads at least this large have their crypto run on a worker thread. Measured
# (docs/server.md): below it a thread hop costs more throughput than the ~0.4 ms of
# inline crypto stalls the loop; above it inline crypto stalls every other client.
OFFLOAD_BYTES = 64 * 1024
SENDER_MISMATCH = "sender is not the logged-in address"
DISK_FULL = "disk full, nothing stored; try later"
RECEIVER_KEY_CACHE = 1024  # parsed receiver keys kept for SEND (~3 KB each)

_T = TypeVar("_T")


limit_log = RateLimitedLog()


def hash_invitation(token: str) -> bytes:
    """Invitations are stored only as this hash; the token itself is shown once."""
    return hashlib.sha256(token.encode("ascii")).digest()


def error(code: int, text: str | None = None) -> ErrorReply:
    return ErrorReply(code, text or status.default_text(code))


@dataclass(slots=True)
class Services:
    """What every session shares: config, identity, store, and the crypto workers."""

    config: ServerConfig
    identity: Identity
    store: Store
    crypto: Executor
    # Failed PROOFs for unknown addresses are checked against this key, so they cost
    # the same as failures for real accounts.
    dummy_key: bytes = field(default_factory=lambda: Identity.generate().public.raw)
    # Failed attempts per target address, counted in the store (throttle.py).
    login_throttle: Throttle = field(init=False)
    register_throttle: Throttle = field(init=False)
    # Parsed receiver keys for SEND, by address (see receiver_key).
    receiver_keys: dict[str, PublicKey] = field(default_factory=dict)
    # Wall-clock seconds for invitation expiry and the abuse limits' windows; tests
    # pass their own to move time on.
    clock: Callable[[], float] = time.time
    limiter: Limiter = field(init=False)
    # Limits reached since start, by kind (aggregate counts for the log and metrics).
    limits_hit: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    # Tells connections waiting on an address (WAIT) that mail was stored for it.
    notifier: MailNotifier = field(default_factory=LocalNotifier)

    def __post_init__(self) -> None:
        self.login_throttle = self.new_throttle("login")
        self.register_throttle = self.new_throttle("register")
        config = self.config
        rules = {
            Kind.REGISTER: Rule(config.register_limit, config.register_window),
            Kind.SEND: Rule(config.send_limit, config.send_window),
            Kind.INFLOW: Rule(config.inflow_limit, config.inflow_window),
        }
        self.limiter = Limiter(secret_of(self.identity), rules, self.clock)

    def limit_reached(self, kind: Kind) -> ErrorReply:
        """Count and log a limit hit (its kind only: never who), and the answer."""
        self.limits_hit[kind] += 1
        limit_log.warning(f"limit reached: {kind.value}")
        return error(kind.code)

    def new_throttle(self, kind: str) -> Throttle:
        config = self.config
        return Throttle(
            self.store,
            kind,
            secret_of(self.identity),
            free=config.throttle_after,
            base=config.throttle_delay,
            cap=config.throttle_max_delay,
            window=config.throttle_window,
            capacity=config.throttle_table,
            clock=self.clock,
        )

    async def receiver_key(self, address: str) -> PublicKey | None:
        """The key SEND answers with, parsed once and kept: no store round trip per SEND.

        Only for SEND (whose 404 tells a logged-in user whether an address exists
        anyway), never for LOGIN or REGISTER, where a cached answer would be a timing
        oracle. An account's key never changes; the only way an address loses it is
        an operator's delete, and the server clears the cache then (service.py,
        ``watch_holds``). That holds with several nodes on one database: the delete
        draws a new holds generation *in the database* (admin.py, pg/admin.py), every
        node's watcher polls that row every ``admin_poll_interval`` seconds, and a
        node that sees it change clears its own cache (tests/pg/test_nodes_admin.py).
        A released address registered again gets a new key only after that delete,
        so no node can keep the old key past one poll interval.
        """
        key = self.receiver_keys.get(address)
        if key is None:
            raw = await self.store.public_key(address)
            if raw is None:
                return None
            key = _key(raw)
            if len(self.receiver_keys) >= RECEIVER_KEY_CACHE:
                del self.receiver_keys[next(iter(self.receiver_keys))]  # the oldest
            self.receiver_keys[address] = key
        return key

    async def offload(self, size: int, call: Callable[[], _T]) -> _T:
        if size < OFFLOAD_BYTES:
            return call()
        return await asyncio.get_running_loop().run_in_executor(self.crypto, call)


@dataclass(slots=True)
class _Registration:
    address: Address
    key: PublicKey
    nonce: bytes
    token_hash: bytes | None


@dataclass(slots=True)
class ServerSession:
    """The per-connection memory between a command and the one that must follow it."""

    services: Services
    conn: Connection
    source: str = ""  # the peer's address or IPv6 /64 (admission.source_of), for limits
    _registration: _Registration | None = None
    _login: tuple[Address, bytes] | None = None
    _account_key: PublicKey | None = None
    _receiver: tuple[Address, PublicKey] | None = None
    _auth_failures: int = 0  # failed logins and registrations on this connection

    async def handle(self, command: Command) -> Reply:
        match command:
            case Capa():
                return self._capabilities()
            case Register(address=a, public_key=k):
                return await self._register(a, k, None)
            case RegisterInvitation(address=a, invitation=t, public_key=k):
                return await self._register(a, k, t)
            case ChallengeAccepted(answer=answer):
                return await self._challenge_accepted(answer)
            case Login(address=a):
                self._login = (a, new_nonce())
                return LoginNonce(self._login[1])
            case Proof(signature=signature):
                return await self._proof(signature)
            case Send(receiver=r):
                return await self._send(r)
            case BoundSend(receiver=r, fingerprint=f):
                return await self._send(r, f)
            case Message(sender=sender, payload=payload):
                return await self._message(sender, payload)
            case ListMessages():
                return Listing(tuple(await self.services.store.list_messages(self._me)))
            case Retrieve(message_id=m):
                blob = await self.services.store.message(self._me, m)
                return error(status.NOT_FOUND) if blob is None else Retrieved(m, blob)
            case Delete(message_id=m):
                try:
                    found = await self.services.store.delete_message(self._me, m)
                except DiskFull:
                    return error(status.TRY_AGAIN, DISK_FULL)
                return Deleted(m) if found else error(status.NOT_FOUND)
            case Lookup(address=a):
                raw = await self.services.store.public_key(str(a))
                return error(status.NOT_FOUND) if raw is None else KeyFound(a, _key(raw))
            case Noop():
                return Ok()
            case Quit():
                return Bye()
        raise AssertionError(f"no handler for {command.verb}")

    @property
    def _me(self) -> str:
        if self.conn.address is None:  # the state machine only lets logged-in users here
            raise AssertionError("mailbox command without a login")
        return str(self.conn.address)

    def _capabilities(self) -> Capabilities:
        config = self.services.config
        return Capabilities(
            VERSIONS,
            config.domain,
            config.modes,
            config.max_payload,
            config.max_line,
            self.services.identity.public,
            config.wait_seconds,
            PIPELINE,
        )

    async def _register(self, address: Address, key: PublicKey, token: str | None) -> Reply:
        config, store = self.services.config, self.services.store
        if token is None and "free" not in config.modes:
            return error(status.FREE_REGISTRATION_UNAVAILABLE)
        if token is not None and "invite" not in config.modes:
            return error(status.INVITATION_REGISTRATION_UNAVAILABLE)
        if address.domain != config.domain:
            return error(status.BAD_ADDRESS)
        await self._throttle(self.services.register_throttle, str(address))
        token_hash = None if token is None else hash_invitation(token)
        if token_hash is not None:
            # The token is checked before the address, so without a valid one nobody
            # learns which addresses are taken on an invitation-only server.
            state = await store.invitation(token_hash, str(address), int(self.services.clock()))
            if state is Invitation.INVALID:
                return await self._registration_failed(address, status.INVITATION_INVALID)
            if state is Invitation.EXPIRED:
                return await self._registration_failed(address, status.INVITATION_EXPIRED)
        if not await store.registrable(str(address)):  # taken, or reserved by the operator
            return await self._registration_failed(address, status.ADDRESS_TAKEN)
        nonce = new_nonce()
        challenge = make_challenge(self.services.identity, address, key, nonce)
        self._registration = _Registration(address, key, nonce, token_hash)
        return Challenge(challenge, self.services.identity.public)

    async def _challenge_accepted(self, answer: bytes) -> Reply:
        pending, self._registration = self._registration, None
        if pending is None:
            raise AssertionError("CHALLANGE_ACCEPTED without a challenge")
        try:
            check_answer(
                self.services.identity, pending.address, pending.key, pending.nonce, answer
            )
        except EnvelopeError:
            return await self._registration_failed(pending.address, status.CHALLENGE_FAILED)
        services = self.services
        try:
            outcome = await services.store.create_account(
                str(pending.address),
                pending.key.raw,
                pending.token_hash,
                int(services.clock()),
                services.limiter.registration(self.source),
            )
        except DiskFull:
            return error(status.TRY_AGAIN, DISK_FULL)
        match outcome:
            case Outcome.CREATED:
                return Registered(pending.address)
            case Outcome.REGISTRATION_LIMIT:
                return services.limit_reached(Kind.REGISTER)
            case Outcome.TAKEN:
                return await self._registration_failed(pending.address, status.ADDRESS_TAKEN)
            case Outcome.INVITATION_EXPIRED:
                return await self._registration_failed(pending.address, status.INVITATION_EXPIRED)
        return await self._registration_failed(pending.address, status.INVITATION_INVALID)

    async def _registration_failed(self, address: Address, code: int) -> ErrorReply:
        await self.services.register_throttle.failed(str(address))
        self._auth_failures += 1
        return error(code)

    async def _throttle(self, throttle: Throttle, key: str) -> None:
        """Hold the verdict of a login or registration attempt after repeated failures.

        The wait depends only on failure counts (of the target address, and of this
        connection), never on whether the address exists, so it tells nothing; and
        it comes before the verdict is known, so hanging up early gains nothing.
        """
        config = self.services.config
        own = backoff(
            self._auth_failures,
            free=config.throttle_after,
            base=config.throttle_delay,
            cap=config.throttle_max_delay,
        )
        delay = max(await throttle.delay(key), own)
        if delay > 0:
            await asyncio.sleep(delay)

    async def _proof(self, signature: bytes) -> Reply:
        pending, self._login = self._login, None
        if pending is None:
            raise AssertionError("PROOF without LOGIN")
        address, nonce = pending
        throttle = self.services.login_throttle
        await self._throttle(throttle, str(address))
        raw = await self.services.store.public_key(str(address))
        # Same work whether or not the account exists: parse a key, verify once.
        key = _key(raw if raw is not None else self.services.dummy_key)
        server_key = self.services.identity.public
        verified = check_login_proof(key, address, server_key, nonce, signature)
        if raw is None or not verified:
            await throttle.failed(str(address))
            self._auth_failures += 1
            return error(status.AUTHENTICATION_FAILED)
        if await self.services.store.blocked(str(address)):
            # Only after a valid proof: nobody else learns that the account exists.
            return error(status.ACCOUNT_BLOCKED)
        # A success does not clear the count: a count that dropped would tell anyone
        # probing the address that it exists and was just used.
        self._account_key = key
        return Authenticated(address)

    async def _send(self, receiver: Address, fingerprint: bytes | None = None) -> Reply:
        """201 with the receiver's key; for a bound SEND only if the client holds that key.

        A bound SEND's MESSAGE is already on its way, sealed to the key the client
        named: if the receiver's key is another now (the address was deleted and
        registered again), it gets 417 and the MESSAGE is dropped unread (§9.9).
        """
        self._receiver = None
        key = await self.services.receiver_key(str(receiver))
        if key is None:
            return error(status.NOT_FOUND)
        if fingerprint is not None and key.fingerprint() != fingerprint:
            return error(status.KEY_CHANGED)
        self._receiver = (receiver, key)
        return SendReady(self.services.config.max_payload, key, self.services.identity.public)

    async def _message(self, sender: Address, payload: bytes) -> Reply:
        target, self._receiver = self._receiver, None
        if target is None or self._account_key is None:
            raise AssertionError("MESSAGE without SEND or login")
        if sender != self.conn.address:
            return error(status.BAD_SIGNATURE, SENDER_MISMATCH)
        receiver, receiver_key = target
        services = self.services
        try:
            sealed = await services.offload(
                len(payload),
                partial(
                    open_client_message,
                    services.identity,
                    sender,
                    self._account_key,
                    receiver,
                    payload,
                ),
            )
        except EnvelopeError:
            return error(status.BAD_SIGNATURE)
        if not is_sealed_message_size(len(sealed)):  # cannot be valid; would stand out at rest
            return error(status.BAD_SIGNATURE)
        blob = await services.offload(
            len(payload),
            partial(seal_stored_message, services.identity, receiver, receiver_key, sender, sealed),
        )
        charges = services.limiter.message(str(sender), str(receiver))
        try:
            stored = await services.store.add_message(
                str(receiver), blob, services.config.mailbox_quota, charges
            )
        except LimitReached as exc:
            return services.limit_reached(exc.kind)
        except DiskFull:
            return error(status.TRY_AGAIN, DISK_FULL)
        if stored is None:
            return error(status.MAILBOX_FULL)
        services.notifier.publish(str(receiver))  # committed: wake whoever waits for it
        return Roger()


def _key(raw: bytes) -> PublicKey:
    return PublicKey.from_bytes(raw)
