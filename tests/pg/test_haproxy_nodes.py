"""Three rune-server nodes on one PostgreSQL behind HAProxy, as docs/deploy.md builds them.

Real parts throughout: the private cluster of tests/postgres.py, three ``rune-server``
processes with the same keys (node 1 made by ``init``, the others by ``export-node`` and
``init --from-node``, the documented way), and HAProxy running docs/deploy/haproxy.cfg.
Clients are the client library's, over TLS, through HAProxy's one address.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from rune_proto import status
from rune_proto.address import Address, parse_address
from rune_proto.client import ClientError, ContactBook, ReplayLog, ServerError, Session, connect
from rune_proto.keys import Identity
from rune_proto.server.pg.notifier import APPLICATION_NAME
from tests.deploy import settings
from tests.haproxy import HAProxy, haproxy
from tests.postgres import PostgresServer
from tests.server_process import RuneServerProcess, ServerFactory, finish_server, run_cli

CLIENTS = 20
MESSAGES = 30  # each client sends this many, so 600 in all
KILL_AFTER = CLIENTS * MESSAGES // 3  # acknowledged messages before a node is killed
ATTEMPTS = 40  # per operation, across reconnections: bounded
DEADLINE = 60.0  # for one wake-up; generous, the machine is shared
LOAD_DEADLINE = 600.0  # for the whole load

# Answers after which a client tries again: closing (its node going away), try later.
RETRY_CODES = {421, 451}
T = TypeVar("T")

pytestmark = pytest.mark.slow


@dataclass
class Nodes:
    servers: list[RuneServerProcess]
    proxy: HAProxy

    @property
    def first(self) -> RuneServerProcess:
        return self.servers[0]


def _node_from(first: RuneServerProcess, root: Path) -> RuneServerProcess:
    """A node with ``first``'s keys: ``export-node``, then ``init --from-node`` (docs/deploy.md)."""
    root.mkdir(parents=True)
    bundle = root / "node.bundle"
    exported = run_cli("export-node", "--data-dir", str(first.data_dir), str(bundle))
    assert exported.returncode == 0, exported.stderr
    data = root / "data"
    made = run_cli(
        "init", "--from-node", str(bundle), "--data-dir", str(data),
        "--passphrase-file", str(first.passphrase_file),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    bundle.unlink()
    node = RuneServerProcess(
        root=root,
        data_dir=data,
        passphrase_file=first.passphrase_file,
        domain=first.domain,
        tls_pin=first.tls_pin,
        server_key=first.server_key,
    )
    node.start()
    return node


@pytest.fixture
def nodes(rune_server: ServerFactory, postgres: PostgresServer, tmp_path: Path) -> Iterator[Nodes]:
    # The documented node settings (docs/deploy/node.toml), on this test's own database.
    first = rune_server(**settings("node.toml", database=postgres.new_database()))
    others: list[RuneServerProcess] = []
    problems: list[str] = []
    try:
        others = [_node_from(first, tmp_path / f"node{n}") for n in (2, 3)]
        servers = [first, *others]
        with haproxy(tmp_path / "haproxy", [node.port for node in servers]) as proxy:
            proxy.wait_for(dict.fromkeys(proxy.nodes, "UP"))
            yield Nodes(servers, proxy)
    finally:
        for node in others:
            problems += finish_server(node)
    if problems:
        pytest.fail("\n".join(problems))


@dataclass
class User:
    address: Address
    identity: Identity = field(default_factory=Identity.generate)
    contacts: ContactBook = field(default_factory=ContactBook)
    replays: ReplayLog = field(default_factory=ReplayLog)
    invitation: str = ""  # from ``rune-server invite`` (node.toml: registration by invitation)
    registered: bool = False


@dataclass(frozen=True)
class Sent:
    sender: Address
    receiver: Address
    subject: str
    body: str


class Client:
    """One user's connection, which survives its node's death by reconnecting (bounded)
    through HAProxy's one address, with the same pins, contacts and replay log."""

    def __init__(self, user: User, port: int, nodes: Nodes) -> None:
        self.user = user
        self._port = port
        self._nodes = nodes
        self._stack: AsyncExitStack | None = None
        self._session: Session | None = None
        self.reconnections = 0
        self.errors: Counter[str] = Counter()

    async def session(self) -> Session:
        if self._session is None:
            self._stack = AsyncExitStack()
            self._session = await self._stack.enter_async_context(
                connect(
                    "127.0.0.1",
                    self._port,
                    tls_fingerprint=self._nodes.first.tls_pin,
                    server_key=self._nodes.first.server_key,
                    contacts=self.user.contacts,
                    replays=self.user.replays,
                )
            )
            if self.user.registered:
                await self._session.login(self.user.address, self.user.identity)
        return self._session

    async def close(self) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def attempt(self, act: Callable[[Session], Awaitable[T]]) -> T:
        """``act`` on a live session; on a broken link, reconnect and try again (bounded)."""
        for tries in range(ATTEMPTS):
            try:
                return await act(await self.session())
            except (ClientError, OSError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, ServerError) and exc.code not in RETRY_CODES:
                    raise
                self.errors[type(exc).__name__] += 1
                await self.close()
                self.reconnections += 1
                await asyncio.sleep(min(0.1 * 2**tries, 2.0))  # backoff between reconnections
        raise AssertionError(f"{self.user.address}: gave up after {ATTEMPTS} tries: {self.errors}")

    async def register(self) -> None:
        async def register(session: Session) -> None:
            if not self.user.registered:
                try:
                    await session.register(
                        self.user.address, self.user.identity, self.user.invitation
                    )
                except ServerError as exc:  # a first try got through before the link broke
                    if exc.code != status.ADDRESS_TAKEN:
                        raise
                self.user.registered = True
            await session.login(self.user.address, self.user.identity)

        await self.attempt(register)


@dataclass
class Load:
    """What the clients did: every acknowledged (202) message, and every one retrieved."""

    acked: dict[str, Sent] = field(default_factory=dict)  # sender's message id → what
    attempted: set[Sent] = field(default_factory=set)
    # receiver → server id → (sender's message id, what it said, verified)
    received: dict[Address, dict[str, tuple[str | None, Sent | None, bool]]] = field(
        default_factory=dict
    )


async def _send_all(client: Client, others: list[Address], load: Load, seed: int) -> None:
    rng = random.Random(seed)
    for n in range(MESSAGES):
        sent = Sent(
            client.user.address, rng.choice(others), f"{n} of {MESSAGES}", secrets.token_hex(24)
        )
        load.attempted.add(sent)
        message_id = await client.attempt(
            lambda session, sent=sent: session.send(sent.receiver, sent.subject, sent.body)
        )
        assert message_id not in load.acked
        load.acked[message_id] = sent


async def _retrieve_new(client: Client, load: Load) -> None:
    """Retrieve what is new in the mailbox (by server id); nothing is deleted."""
    mine = load.received.setdefault(client.user.address, {})

    async def sweep(session: Session) -> None:
        for info in await session.list():
            if info.id in mine:
                continue
            message = await session.retrieve(info.id)
            said = None
            if message.sender is not None:
                said = Sent(message.sender, client.user.address, message.subject, message.body)
            mine[info.id] = (message.message_id, said, message.verified)

    await client.attempt(sweep)


async def _receive_until(client: Client, load: Load, done: asyncio.Event) -> None:
    """Retrieve as mail comes, waiting (WAIT) between sweeps, until the senders are done."""
    while not done.is_set():
        await _retrieve_new(client, load)
        await client.attempt(lambda session: session.wait(timeout=1.0))


async def _kill_midway(nodes: Nodes, load: Load, killed: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOAD_DEADLINE
    while len(load.acked) < KILL_AFTER:
        assert loop.time() < deadline, "the load never got a third of the way"
        await asyncio.sleep(0.05)
    nodes.servers[1].kill()  # SIGKILL: no drain, no goodbye
    killed.set()


async def _new_users(nodes: Nodes, names: list[str]) -> list[User]:
    """Users with invitations (``rune-server invite`` on node 1's data directory)."""
    users = [User(parse_address(f"{n}-{secrets.token_hex(3)}@{nodes.first.domain}")) for n in names]
    tokens = await asyncio.gather(
        *(asyncio.to_thread(nodes.first.invite, str(user.address)) for user in users)
    )
    for user, token in zip(users, tokens, strict=True):
        user.invitation = token
    return users


async def test_mail_crosses_nodes_under_load_and_survives_a_killed_node(nodes: Nodes) -> None:
    port = nodes.proxy.port
    users = await _new_users(nodes, [f"user{n}" for n in range(CLIENTS)])
    senders = [Client(user, port, nodes) for user in users]
    receivers = [Client(user, port, nodes) for user in users]
    load = Load()
    try:
        await asyncio.gather(*(client.register() for client in senders))
        for receiver in receivers:
            await receiver.session()
        done, killed = asyncio.Event(), asyncio.Event()
        receiving = [
            asyncio.create_task(_receive_until(client, load, done)) for client in receivers
        ]
        addresses = [user.address for user in users]
        killer = asyncio.create_task(_kill_midway(nodes, load, killed))
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    _send_all(client, [a for a in addresses if a != client.user.address], load, n)
                    for n, client in enumerate(senders)
                )
            ),
            LOAD_DEADLINE,
        )
        await killer
        done.set()
        await asyncio.wait_for(asyncio.gather(*receiving), LOAD_DEADLINE)
        # HAProxy took the dead node out; the clients that were on it carried on elsewhere.
        await asyncio.to_thread(
            nodes.proxy.wait_for, {"node1": "UP", "node2": "DOWN", "node3": "UP"}
        )
        moved = [client for client in senders + receivers if client.reconnections]
        assert moved, "no client was on the killed node"
        for client in receivers:  # a last sweep, through the live nodes
            await _retrieve_new(client, load)
    finally:
        for client in senders + receivers:
            await client.close()

    assert len(load.acked) == CLIENTS * MESSAGES
    copies: Counter[str | None] = Counter()
    for receiver, mailbox in load.received.items():
        for message_id, said, verified in mailbox.values():
            assert verified, f"an unverified message for {receiver}"
            assert said in load.attempted, "a message nobody sent"  # content checked
            copies[message_id] += 1
    for message_id, sent in load.acked.items():
        assert copies[message_id] == 1, f"acknowledged message stored {copies[message_id]} times"
        stored = next(
            said for mid, said, _ in load.received[sent.receiver].values() if mid == message_id
        )
        assert stored == sent
    # The killed node comes back and HAProxy takes it in again.
    nodes.servers[1].start()
    await asyncio.to_thread(nodes.proxy.wait_for, {"node2": "UP"})


async def test_a_wait_on_one_node_wakes_for_mail_stored_through_another(nodes: Nodes) -> None:
    alice, bob = await _new_users(nodes, ["alice", "bob"])
    on_node1 = Client(bob, nodes.servers[0].port, nodes)
    on_node3 = Client(alice, nodes.servers[2].port, nodes)
    try:
        await on_node1.register()
        await on_node3.register()
        waiting = await on_node1.session()
        assert waiting.can_wait
        assert await waiting.list() == []
        wait = asyncio.create_task(waiting.wait(timeout=DEADLINE))
        sender = await on_node3.session()
        await sender.send(bob.address, "across", "stored on node 3, heard on node 1")
        assert await asyncio.wait_for(wait, DEADLINE + 10) is True
        assert len(await waiting.list()) == 1
    finally:
        await on_node1.close()
        await on_node3.close()


async def test_nodes_whose_listening_links_are_cut_wake_their_waiters_and_hear_again(
    nodes: Nodes, postgres: PostgresServer
) -> None:
    """Every node's notices connection ended by PostgreSQL (pg_terminate_backend): each
    reconnects and wakes its waiters once (a 280 with nothing new: the client lists),
    then hears the other nodes again."""
    alice, bob = await _new_users(nodes, ["alice", "bob"])
    on_node1 = Client(bob, nodes.servers[0].port, nodes)
    on_node3 = Client(alice, nodes.servers[2].port, nodes)
    database = str(nodes.first.config()["database"]).rsplit("/", 1)[1]
    try:
        await on_node1.register()
        await on_node3.register()
        waiting = await on_node1.session()
        wait = asyncio.create_task(waiting.wait(timeout=DEADLINE))
        ended = postgres.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            f" WHERE application_name = '{APPLICATION_NAME}' AND datname = current_database()",
            database,
        )
        assert ended.strip() == str(len(nodes.servers))
        assert await asyncio.wait_for(wait, DEADLINE + 10) is True  # woken to re-check
        assert await waiting.list() == []
        wait = asyncio.create_task(waiting.wait(timeout=DEADLINE))
        sender = await on_node3.session()
        await sender.send(bob.address, "after the cut", "heard again")
        assert await asyncio.wait_for(wait, DEADLINE + 10) is True
        assert len(await waiting.list()) == 1
    finally:
        await on_node1.close()
        await on_node3.close()
    assert "mail notices: listening again" in nodes.first.stderr_text()
