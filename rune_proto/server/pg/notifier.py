"""New-mail notices across nodes: PostgreSQL ``LISTEN``/``NOTIFY`` behind :class:`MailNotifier`.

A ``WAIT`` on node 1 must wake when node 2 stores mail for that address, without any
waiting client polling the database. Each node keeps **one** connection that
``LISTEN``\\ s on one channel and fans notices out to its own waiting sessions.

What a notice says. Its payload passes through PostgreSQL's queue files on disk
(``pg_notify/``), so it never names the receiver: it carries a keyed digest of the
address under a secret every node derives from the server identity (a thief with the
cluster's files but not the identity cannot test addresses against it), and a random
tag of the node that sent it, so a node skips its own notices (it has woken its own
waiters directly). Nothing else: no sender, size or id.

When it is sent. After the storing transaction commits (the session publishes once
``add_message`` returned), batched on the listening connection, not as a ``NOTIFY``
inside the storing transaction. That one would be delivered only at commit, which
is right, but PostgreSQL serialises the commits of all transactions that notify (a
lock on the queue at commit), across all nodes: every group commit would wait for
the others. Sent after the commit, a notice costs the ``202`` nothing. The price: a
node that dies between the commit and the notice leaves waiters on other nodes
asleep until their wait's lifetime ends (``281``); their next ``LIST`` finds the mail.
Late, never lost.

When the link drops. The connection is watched (its termination, and a ping every
:data:`PING_INTERVAL` seconds for a silent network), and reconnected with backoff.
Notices sent while it was down are gone, so once it listens again it wakes every
local waiter once. That is safe: a ``280`` only makes the client ``LIST``, which
reads the mailbox itself; a wake with no new mail costs one ``LIST`` and cannot lose
or duplicate a message, while a missed wake could delay mail by a whole lifetime.
It listens *before* it wakes them, so nothing sent after the wake-up is missed.
Publishes made while it was down are kept (bounded) and sent once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

from ...keys import Identity
from ..database import StoreError
from ..notifier import LocalNotifier, Unsubscribe, Wake
from .url import masked

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("rune_proto.server")

CHANNEL = "rune_mail"
NOTICE_LABEL = b"rune-server: keys of the new-mail notices, v1"
DIGEST_BYTES = 16  # 128 bits: no two addresses of one server collide in practice
TAG_BYTES = 4  # the sending node's random tag, to skip its own notices
PING_INTERVAL = 10.0  # seconds between checks that an idle listening link still answers
PING_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0  # seconds between reconnection attempts
BATCH = 1000  # digests per NOTIFY statement
MAX_PENDING = 100_000  # digests kept for other nodes while the link is down
APPLICATION_NAME = "rune-server notices"


def notice_secret(identity: Identity) -> bytes:
    """The digest key: the same on every node holding the identity, never stored.

    Ed25519 signatures are deterministic, so signing a fixed label yields a stable
    secret; its own label keeps these digests unlinkable to the abuse limits' ones.
    """
    return hashlib.blake2b(identity.sign(NOTICE_LABEL), digest_size=32).digest()


class PgNotifier:
    """A :class:`~rune_proto.server.notifier.MailNotifier` on PostgreSQL ``LISTEN``/``NOTIFY``.

    ``start()`` connects (raising if it cannot: the node has no database either),
    ``close()`` flushes what is pending (briefly) and disconnects.
    """

    def __init__(self, dsn: str, secret: bytes) -> None:
        self._dsn = dsn
        self._secret = secret
        self._tag = secrets.token_hex(TAG_BYTES)
        self._local = LocalNotifier()  # keyed by digest, not by address
        self._pending: set[str] = set()
        self._attention = asyncio.Event()  # something to send, the link lost, or closing
        self._closed = asyncio.Event()
        self._lost = False
        self._closing = False
        self._conn: asyncpg.Connection[Any] | None = None
        self._runner: asyncio.Task[None] | None = None
        self.generation = 0  # how many times it has started listening (for tests, logs)
        self.dropped = 0  # notices for other nodes given up (pending overflowed)

    def digest(self, address: str) -> str:
        return hashlib.blake2b(
            address.encode("utf-8"), key=self._secret, digest_size=DIGEST_BYTES
        ).hexdigest()

    @property
    def backend_pid(self) -> int | None:
        """The listening connection's server process (tests end it to cut the link)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    async def start(self) -> None:
        """Listen; StoreError (one line, the URL's password masked) if it cannot."""
        try:
            self._conn = await self._listen()
        except Exception as exc:  # asyncpg's errors, OSError, TimeoutError, a bad URL
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else None
            raise StoreError(
                f"cannot listen for new-mail notices on {masked(self._dsn)}:"
                f" {reason or type(exc).__name__}"
            ) from None
        self._runner = asyncio.create_task(self._run(self._conn))

    async def close(self) -> None:
        self._closing = True
        self._closed.set()
        self._attention.set()
        if self._runner is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._runner), PING_TIMEOUT)
            except TimeoutError:
                self._runner.cancel()
                await asyncio.wait((self._runner,))
            self._runner = None

    # -- the MailNotifier seam ------------------------------------------------------

    def publish(self, address: str) -> None:
        """Wake this node's waiters now; tell the other nodes (after the commit: see above)."""
        digest = self.digest(address)
        self._local.publish(digest)
        if self._closing:
            return
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1  # their waiters fall back on the wait's lifetime
            return
        self._pending.add(digest)
        self._attention.set()

    def subscribe(self, address: str, wake: Wake) -> Unsubscribe:
        return self._local.subscribe(self.digest(address), wake)

    def __len__(self) -> int:
        """Digests with at least one local subscriber (for tests)."""
        return len(self._local)

    # -- the link -------------------------------------------------------------------

    async def _listen(self) -> asyncpg.Connection[Any]:
        import asyncpg  # only on a postgresql:// database

        conn = await asyncpg.connect(
            self._dsn,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": APPLICATION_NAME},
        )
        try:
            self._lost = False
            conn.add_termination_listener(self._on_terminated)
            await conn.add_listener(CHANNEL, self._on_notice)
        except BaseException:
            conn.terminate()
            raise
        self.generation += 1
        return conn

    def _on_terminated(self, conn: object) -> None:
        self._lost = True
        self._attention.set()

    def _on_notice(self, conn: object, pid: int, channel: str, payload: object) -> None:
        if not isinstance(payload, str):
            return
        tag, _, digest = payload.partition(".")
        if tag != self._tag and len(digest) == 2 * DIGEST_BYTES:
            self._local.publish(digest)

    async def _run(self, conn: asyncpg.Connection[Any]) -> None:
        """Serve the link; on loss, reconnect with backoff and wake every waiter once.

        Any error of the link ends it (asyncpg raises several kinds for one cut, e.g.
        an InternalClientError if a query starts between the server's FATAL and the
        close): this task must never die while the node serves.
        """
        while True:
            try:
                await self._serve(conn)
            except Exception as exc:
                log.warning("mail notices: the listening link failed (%s)", type(exc).__name__)
            finally:
                conn.terminate()
                self._conn = None
            if self._closing:
                return
            log.warning("mail notices: the listening link was lost; reconnecting")
            delay = BACKOFF_FIRST
            while True:
                try:
                    conn = await self._listen()
                    break
                except Exception as exc:
                    log.warning("mail notices: reconnecting failed (%s)", type(exc).__name__)
                if await self._closed_within(delay):
                    return
                delay = min(2 * delay, BACKOFF_MAX)
            self._conn = conn
            self._local.wake_all()
            log.info("mail notices: listening again; every waiting client woken once")

    async def _serve(self, conn: asyncpg.Connection[Any]) -> None:
        """Send pending notices as they come; ping when idle; return when lost or closing."""
        while not self._lost:
            if self._pending:
                await self._flush(conn)
                continue
            if self._closing:
                return
            self._attention.clear()
            try:
                await asyncio.wait_for(self._attention.wait(), PING_INTERVAL)
            except TimeoutError:
                await conn.fetchval("SELECT 1", timeout=PING_TIMEOUT)

    async def _flush(self, conn: asyncpg.Connection[Any]) -> None:
        batch = [self._pending.pop() for _ in range(min(BATCH, len(self._pending)))]
        try:
            await conn.execute(
                "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload",
                CHANNEL,
                [f"{self._tag}.{digest}" for digest in batch],
                timeout=PING_TIMEOUT,
            )
        except BaseException:
            self._pending.update(batch)  # sent again once the link is back
            raise

    async def _closed_within(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless ``close()`` comes first; whether it did."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)
        return self._closing
