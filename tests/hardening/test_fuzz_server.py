"""Fuzz a real rune-server over TLS on 127.0.0.1 with generated and mutated lines.

Eight connections at once send pipelined bursts of broken commands: valid verbs with
broken arguments, mutations of valid lines (bit flips, splices, stray bytes), random
bytes, huge tokens, invalid UTF-8, bare CR, NUL and odd line endings. Before a burst a
connection is first brought, with the real client crypto, into the state the burst
should hit: IDLE, AWAIT_ANSWER, AWAIT_PROOF, AUTHENTICATED or SENDING.

Pass means: every line gets exactly one reply that the state table allows (or, after a
closing reply, the connection is closed) within ``REPLY_TIMEOUT``; the server never
dies, never answers 500, never logs a traceback; and afterwards the client library
can still register, send and read. The seed is fixed, so every run fuzzes the same way
(``RUNE_FUZZ_SEED=N`` tries another; it is printed either way). Speed is not checked here
(see bench/): the time cap only stops a run that hangs.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import re
import time
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import NoReturn

import pytest

from rune_proto import status
from rune_proto.address import Address, parse_address
from rune_proto.client import Session, connect
from rune_proto.connection import State
from rune_proto.encoding import b64decode, b64encode
from rune_proto.envelope import Content, seal_client_message, seal_message
from rune_proto.handshake import answer_challenge, login_proof
from rune_proto.keys import Identity, PublicKey
from rune_proto.wire import message_line_limit
from tests.server.wire_client import WireClient
from tests.server_process import RuneServerProcess, ServerFactory

from .rawlink import REPLY_TIMEOUT, RawLink, after, plausible, rss_kib

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]

TOTAL_LINES = 120_000
CONNECTIONS = 8
TIME_CAP = 900.0  # only catches a hang: ~30 s on a quiet 2-CPU machine, not a speed test
FUZZ_SEED = 13
MAX_PAYLOAD_MIB = 1 / 16  # 64 KiB: huge tokens in SENDING hit 413 quickly
MAX_FAILURES = 200  # connections are recycled by 429 now and then
USERS = 4
# States a connection is brought into before a burst; the sub-states twice as often,
# since the first error there falls back to IDLE or AUTHENTICATED.
TARGETS = (State.IDLE, State.AUTHENTICATED) + (
    State.AWAIT_ANSWER,
    State.AWAIT_PROOF,
    State.SENDING,
) * 2
CHECK_CLOSE = 0.1  # how often to wait for the server's close after a closing reply

INVALID_UTF8 = (
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xc3\x28",
    b"\xc0\x80",  # overlong NUL
    b"\xe2\x28\xa1",
    b"\xed\xa0\x80",  # a UTF-16 surrogate
    b"\xf0\x90\x28\xbc",
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xf8\x88\x80\x80\x80",
    b"\xc3",  # truncated sequence
)
ODD_TEXT = ("é", "ı", "ﬀ", "ß", "\u200d", "\u202e", "Ｎ", "\ufeff", "\U0001f600", "Ο")
INTERESTING = b"\x00\r \t=+/@.-_:\x7f\x1b\x0c\x0b"
VERBS = (
    "CAPA",
    "REGISTER",
    "REGISTER_INVITATION",
    "CHALLANGE_ACCEPTED",
    "CHALLENGE_ACCEPTED",
    "LOGIN",
    "PROOF",
    "SEND",
    "MESSAGE",
    "LIST",
    "RETRIEVE",
    "DELETE",
    "LOOKUP",
    "NOOP",
    "QUIT",
)
ENDINGS = (b"\r\n",) * 8 + (b"\n", b"\n", b"\r\r\n", b"\r \r\n")


@dataclass
class Material:
    """Valid pieces the generator breaks: users, keys, tokens, payloads."""

    domain: str
    server_key: PublicKey
    users: list[tuple[Address, Identity]]
    key_tokens: list[str]
    payloads: list[bytes]  # valid CLIENT MESSAGEs, each for one (sender, receiver) pair
    payload_pairs: list[tuple[Address, Address]]
    noise: bytes  # 1 MiB of random bytes to slice from


@dataclass
class Stats:
    lines: int = 0
    bursts: int = 0
    connections: int = 0
    setups: int = 0
    by_state: collections.Counter[str] = field(default_factory=collections.Counter)
    by_code: collections.Counter[int] = field(default_factory=collections.Counter)
    sent: int = 0
    closes: int = 0
    worst_reply: float = 0.0


class Generator:
    """Protocol lines for one connection, from its own seeded Random."""

    def __init__(self, rng: random.Random, material: Material) -> None:
        self.rng = rng
        self.m = material
        # The valid answer to the outstanding challenge; the address logged in as
        self.answer: bytes | None = None
        self.me: Address | None = None
        self.receiver: Address | None = None

    # --- building blocks ------------------------------------------------------------

    def address(self) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.4:
            return str(r.choice(self.m.users)[0])
        if roll < 0.7:
            name = "".join(r.choices("abcdefghjkmnpqrstuvwxyz23456789", k=r.randint(3, 20)))
            return f"{name}@{r.choice([self.m.domain, self.m.domain.upper(), 'other-domain'])}"
        broken = (
            "",
            "@",
            "a@b",
            "ab@" + self.m.domain,
            "x" * 51 + "@" + self.m.domain,
            "user@" + "d" * 51,
            "user@@" + self.m.domain,
            "us er@" + self.m.domain,
            "üser@" + self.m.domain,
            "user@" + self.m.domain + "@x",
            "user",
            "user@" + self.m.domain + "\x00",
            "USER@" + self.m.domain,
            "a" * 200,
        )
        return r.choice(broken)

    def b64(self, size: int) -> str:
        return b64encode(self.rng.randbytes(size))

    def bad_b64(self) -> str:
        r = self.rng
        good = self.b64(r.choice([0, 1, 2, 3, 16, 32, 63, 64, 65, 1232]))
        roll = r.randrange(6)
        if roll == 0:
            return good + "="
        if roll == 1:
            return good + r.choice("+/ =*.~")
        if roll == 2:
            return good + "A"  # length ≡ 1 (mod 4) for many sizes
        if roll == 3 and good:
            return good[:-1] + "B"  # non-canonical tail bits, often
        if roll == 4:
            return "=" * r.randint(1, 8)
        return good

    def uuid_like(self) -> str:
        r = self.rng
        u = str(uuid.UUID(bytes=r.randbytes(16), version=4))
        roll = r.randrange(8)
        if roll == 0:
            return u.upper()
        if roll == 1:
            return "{" + u + "}"
        if roll == 2:
            return u.replace("-", "")
        if roll == 3:
            return str(uuid.UUID(bytes=r.randbytes(16), version=1))
        if roll == 4:
            return u[:-1]
        return u

    def key_token(self) -> str:
        r = self.rng
        token = r.choice(self.m.key_tokens)
        roll = r.randrange(6)
        if roll == 0:
            return token[: r.randrange(len(token))]
        if roll == 1:
            i = r.randrange(len(token))
            return token[:i] + r.choice("Aa0_-") + token[i + 1 :]
        if roll == 2:
            return token.replace("rune1pk.", r.choice(["rune2pk.", "", "RUNE1PK."]), 1)
        return token

    def address_for_login(self) -> str:
        """LOGIN targets for AWAIT_PROOF: mostly fresh addresses, sometimes a real user."""
        r = self.rng
        if r.random() < 0.2:
            return str(r.choice(self.m.users)[0])
        name = "".join(r.choices("abcdefghjkmnpqrstuvwxyz", k=14))
        return f"{name}@{self.m.domain}"

    # --- lines --------------------------------------------------------------------

    def valid(self, state: State) -> str:
        """A well-formed command, usually one that fits ``state``."""
        r = self.rng
        m = self.m
        me = self.me or m.users[0][0]
        choices: list[str]
        if state is State.AWAIT_ANSWER and self.answer is not None:
            choices = [f"CHALLANGE_ACCEPTED {b64encode(self.answer)}"]
        elif state is State.AWAIT_PROOF:
            choices = [f"PROOF {self.b64(64)}"]
        elif state is State.SENDING:
            pair = (me, self.receiver or me)
            index = m.payload_pairs.index(pair) if pair in m.payload_pairs else 0
            if r.random() < 0.2:  # signed for someone else: 412
                index = r.randrange(len(m.payloads))
            message = f"MESSAGE {m.payload_pairs[index][0]} {b64encode(m.payloads[index])}"
            choices = [message, message, f"MESSAGE {me} AAAA"]
        else:
            choices = []
        choices += [
            "CAPA",
            "NOOP",
            "LIST",
            f"LOOKUP {self.address()}",
            f"SEND {self.address()}",
            f"RETRIEVE {uuid.UUID(bytes=r.randbytes(16), version=4)}",
            f"DELETE {uuid.UUID(bytes=r.randbytes(16), version=4)}",
            f"LOGIN {self.address()}",
            f"PROOF {self.b64(64)}",
            f"REGISTER {self.address()} {r.choice(m.key_tokens)}",
        ]
        if r.random() < 0.05:  # these close the connection; keep them rare
            choices += [
                "QUIT",
                f"REGISTER_INVITATION {self.address()} {self.b64(24)} {r.choice(m.key_tokens)}",
                f"CHALLANGE_ACCEPTED {self.b64(1232)}",
            ]
        return r.choice(choices)

    def broken_arguments(self) -> str:
        r = self.rng
        verb = r.choice(VERBS)
        if r.random() < 0.3:
            verb = "".join(c.lower() if r.random() < 0.5 else c for c in verb)
        makers = (
            lambda: self.address(),
            lambda: self.bad_b64(),
            lambda: self.key_token(),
            lambda: self.uuid_like(),
            lambda: self.b64(r.randint(0, 200)),
            lambda: str(r.randint(-5, 10**30)),
            lambda: "",
        )
        args = [r.choice(makers)() for _ in range(r.choice([0, 1, 1, 2, 2, 3, 4]))]
        sep = r.choice([" ", " ", " ", " ", "  ", "\t"])
        line = sep.join([verb, *args])
        roll = r.random()
        if roll < 0.1:
            line += " "
        elif roll < 0.15:
            line = " " + line
        return line

    def mutate(self, data: bytes) -> bytes:
        r = self.rng
        buf = bytearray(data)
        for _ in range(r.randint(1, 4)):
            op = r.randrange(11)
            pos = r.randrange(len(buf) + 1)
            if op == 0 and buf:
                i = min(pos, len(buf) - 1)
                buf[i] ^= 1 << r.randrange(8)
            elif op == 1 and buf:
                buf[min(pos, len(buf) - 1)] = r.choice(INTERESTING)
            elif op == 2:
                buf[pos:pos] = bytes([r.choice(INTERESTING)])
            elif op == 3:
                buf[pos:pos] = r.choice(INVALID_UTF8)
            elif op == 4:
                buf[pos:pos] = r.choice(ODD_TEXT).encode()
            elif op == 5 and buf:
                end = min(len(buf), pos + r.randint(1, 40))
                del buf[pos:end]
            elif op == 6 and buf:
                end = min(len(buf), pos + r.randint(1, 40))
                buf[pos:pos] = buf[pos:end] * r.randint(1, 5)
            elif op == 7:
                del buf[pos:]
            elif op == 8:
                words = bytes(buf).split(b" ")
                r.shuffle(words)
                buf = bytearray(b" ".join(words))
            elif op == 9:
                buf[pos:pos] = r.randbytes(r.randint(1, 16))
            else:
                buf = bytearray(bytes(buf).swapcase())
        return bytes(buf)

    def huge(self, state: State) -> bytes:
        r = self.rng
        limit = message_line_limit(int(MAX_PAYLOAD_MIB * 1024 * 1024))
        size = r.choice([4097, 5000, 70_000, limit - 20, limit + 10, 200_000, 1_500_000])
        verb = r.choice(["MESSAGE", "REGISTER", "PROOF", "NOOP", "X"])
        me = self.me or self.m.users[0][0]
        head = f"{verb} {me} ".encode()
        alphabet = r.choice([b"A", b"Ab-_", None])
        if alphabet is None:
            noise = self.m.noise
            start = r.randrange(len(noise) - min(size, len(noise) - 1))
            body = noise[start : start + size].replace(b"\n", b"")
        else:
            body = (alphabet * (size // len(alphabet) + 1))[:size]
        return head + body

    def line(self, state: State) -> bytes:
        """One line with its ending; never an LF before the ending."""
        r = self.rng
        roll = r.random()
        if roll < 0.2:
            body = self.valid(state).encode()
        elif roll < 0.5:
            body = self.broken_arguments().encode("utf-8", "surrogatepass")
        elif roll < 0.8:
            body = self.mutate(self.valid(state).encode())
        elif roll < 0.86:
            body = r.randbytes(r.randint(0, 120))
        elif roll < 0.88:
            body = self.huge(state)
        elif roll < 0.95:
            text = self.valid(state).encode()
            pos = r.randrange(len(text) + 1)
            body = text[:pos] + r.choice([b"\x00", b"\r", *INVALID_UTF8]) + text[pos:]
        else:
            verb = r.choice(VERBS)
            body = r.choice(
                [
                    verb.lower().encode(),
                    (verb[:-1] + r.choice(ODD_TEXT)).encode(),
                    r.choice(["FROB", "HELO", "EHLO", "STARTTLS", "AUTH", "RSET", ""]).encode(),
                    b"\r",
                    b" ",
                    b".",
                ]
            )
        return body.replace(b"\n", b"") + r.choice(ENDINGS)


class Worker:
    """One connection at a time; brings it into a state, then sends a burst."""

    def __init__(
        self,
        index: int,
        seed: int,
        server: RuneServerProcess,
        material: Material,
        stats: Stats,
        deadline: float,
    ) -> None:
        self.index = index
        self.rng = random.Random(f"{seed}/{index}")
        self.gen = Generator(self.rng, material)
        self.server = server
        self.m = material
        self.stats = stats
        self.deadline = deadline
        self.link: RawLink | None = None
        self.state = State.CLOSED
        self.trail: collections.deque[str] = collections.deque(maxlen=12)

    def fail(self, message: str) -> NoReturn:
        trail = "\n  ".join(self.trail)
        raise AssertionError(f"connection {self.index}: {message}\n  last lines:\n  {trail}")

    async def run(self) -> None:
        try:
            while self.stats.lines < TOTAL_LINES and time.monotonic() < self.deadline:
                if self.state is State.CLOSED:
                    await self.connect()
                if self.rng.random() < 0.5 or self.state is State.IDLE:
                    await self.setup(self.rng.choice(TARGETS))
                if self.state is not State.CLOSED:
                    await self.burst()
            if self.link is not None and self.state is not State.CLOSED:
                reply = await self.link.request(b"QUIT\r\n")
                if reply is None or reply.code != status.BYE:
                    self.fail(f"QUIT at the end got {reply}: replies out of step?")
                if not await self.link.closed():
                    self.fail("the server did not close after 221")
        finally:
            if self.link is not None:
                await self.link.close()

    async def connect(self) -> None:
        if self.link is not None:
            await self.link.close()
        self.link = await RawLink.open(self.server.host, self.server.port)
        if not self.link.greeting.startswith(b"HOWDY rune/1"):
            self.fail(f"greeting {self.link.greeting!r}")
        self.state = State.IDLE
        self.stats.connections += 1
        self.gen.me = None

    async def expect(self, line: str, code: int) -> bytes:
        assert self.link is not None
        self.trail.append(f"[setup] {line[:100]}")
        reply = await self.link.request(line.encode() + b"\r\n")
        if reply is None or reply.code != code:
            self.fail(f"setup {line.split(' ')[0]} expected {code}, got {reply}")
        self.state = after(self.state, code)
        return reply.line

    async def setup(self, target: State) -> None:
        """Reach ``target`` with well-formed commands and the real crypto."""
        if target is self.state:
            return
        if self.state is State.CLOSED:
            await self.connect()
        # Leave a half-done exchange without spending an error: NOOP abandons a send;
        # from AWAIT_ANSWER or AWAIT_PROOF only an error leads back, so start afresh.
        if self.state is State.SENDING:
            await self.expect("NOOP", status.OK)
        elif self.state in (State.AWAIT_ANSWER, State.AWAIT_PROOF):
            await self.connect()
        self.stats.setups += 1
        r = self.rng
        m = self.m
        if target is State.IDLE:
            if self.state is not State.IDLE:
                await self.connect()
            return
        if target is State.AWAIT_ANSWER:
            if self.state is not State.IDLE:
                await self.connect()
            identity = Identity.generate()
            name = "".join(r.choices("abcdefghjkmnpqrstuvwxyz", k=12))
            address = parse_address(f"{name}@{m.domain}")
            line = await self.expect(f"REGISTER {address} {identity.public.token()}", 205)
            challenge_b64, _ = line[4:].decode().split(" ")
            challenge = b64decode(challenge_b64)
            self.gen.answer = answer_challenge(identity, address, m.server_key, challenge)
            return
        if target is State.AWAIT_PROOF:
            if self.state is not State.IDLE:
                await self.connect()
            await self.expect(f"LOGIN {self.gen.address_for_login()}", 220)
            return
        # AUTHENTICATED or SENDING
        if self.state is not State.AUTHENTICATED:
            if self.state is not State.IDLE:
                await self.connect()
            address, identity = r.choice(m.users)
            line = await self.expect(f"LOGIN {address}", 220)
            nonce = b64decode(line[4:])
            proof = login_proof(identity, address, m.server_key, nonce)
            await self.expect(f"PROOF {b64encode(proof)}", 230)
            self.gen.me = address
        if target is State.SENDING:
            receiver = r.choice(m.users)[0]
            await self.expect(f"SEND {receiver}", 201)
            self.gen.receiver = receiver

    async def burst(self) -> None:
        link = self.link
        assert link is not None
        r = self.rng
        if self.state in (State.AWAIT_ANSWER, State.AWAIT_PROOF, State.SENDING):
            count = r.choice([1, 1, 1, 2, 3, 5, 8])
        else:
            count = r.choice([1, 2, 3, 5, 8, 13, 21, 34])
        if r.random() < 0.01:
            count = 150  # a long pipelined run
        count = max(1, min(count, TOTAL_LINES - self.stats.lines))
        self.stats.sent += count
        lines = [self.gen.line(self.state) for _ in range(count)]
        self.stats.bursts += 1

        async def write() -> None:
            try:
                for line in lines:
                    link.writer.write(line)
                    if len(line) > 65536:
                        await link.writer.drain()
                await link.writer.drain()
            except (OSError, ConnectionError):
                pass  # the server closed after a closing reply; the reader checks that

        writer = asyncio.ensure_future(write())
        discard = False  # the line after a refused bound SEND is dropped, answered 402
        try:
            for line in lines:
                bound = refuses_discard(line, self.state)
                self.trail.append(f"[{self.state.value}] {line[:100]!r}")
                started = time.monotonic()
                reply = await link.reply(REPLY_TIMEOUT)
                elapsed = time.monotonic() - started
                self.stats.worst_reply = max(self.stats.worst_reply, elapsed)
                if reply is None:
                    self.fail(f"the server closed without answering a line in {self.state}")
                self.stats.lines += 1
                self.stats.by_state[self.state.value] += 1
                self.stats.by_code[reply.code] += 1
                if not plausible(self.state, reply.code):
                    self.fail(f"reply {reply.line[:120]!r} is not allowed in {self.state}")
                if discard and reply.code != status.BAD_SEQUENCE:
                    self.fail(f"the line after a refused bound SEND got {reply.code}, not 402")
                is_error = reply.code >= 400 and not status.closes(reply.code)
                discard = not discard and bound and is_error
                self.state = after(self.state, reply.code)
                if self.state is State.CLOSED:
                    # The server lingers until the client stops sending (so that no TCP
                    # reset eats its last replies), then closes. Check that now and
                    # then; otherwise hang up at once, as a real client does.
                    self.stats.closes += 1
                    if r.random() < CHECK_CLOSE and not await link.closed():
                        self.fail(f"no close after the closing reply {reply.code}")
                    break
        finally:
            await asyncio.wait_for(writer, REPLY_TIMEOUT)
        if discard and self.state is not State.CLOSED:  # the server drops our next line
            await self.expect("NOOP", status.BAD_SEQUENCE)


def build_material(server: RuneServerProcess, rng: random.Random) -> Material:
    users = []
    for i in range(USERS):
        address = parse_address(f"fuzzuser{i}@{server.domain}")
        identity = Identity.generate()
        with WireClient.to(server) as client:
            assert client.register(address, identity).code == status.REGISTERED
        users.append((address, identity))
    server_key = server.server_public_key
    payloads, pairs = [], []
    for sender, identity in users:
        for receiver, receiver_identity in users:
            content = Content(f"fuzz {sender}→{receiver}", "x" * rng.randint(0, 3000))
            sealed = seal_message(sender, identity, receiver, receiver_identity.public, content)
            payloads.append(seal_client_message(sender, identity, receiver, server_key, sealed))
            pairs.append((sender, receiver))
    keys = [identity.public.token() for _, identity in users]
    keys += [Identity.generate().public.token() for _ in range(4)]
    return Material(
        domain=server.domain,
        server_key=server_key,
        users=users,
        key_tokens=keys,
        payloads=payloads,
        payload_pairs=pairs,
        noise=rng.randbytes(2 * 1024 * 1024),
    )


def refuses_discard(line: bytes, state: State) -> bool:
    """Whether an error to ``line`` makes the server drop the next line (protocol.md
    §9.9): a SEND with more than one argument, read whole (not over its state's limit)."""
    read = line.split(b"\n", 1)[0]
    read = read[:-1] if read.endswith(b"\r") else read
    limit = message_line_limit(int(MAX_PAYLOAD_MIB * 2**20)) if state is State.SENDING else 4096
    shaped = read[:5].upper() == b"SEND " and b" " in read[5:]
    return shaped and len(read) <= limit and state is not State.WAITING


async def well_behaved_client_works(server: RuneServerProcess) -> None:
    """Register two fresh users with the client library, send, list and read."""

    def session() -> AbstractAsyncContextManager[Session]:
        return connect(
            server.host, server.port, tls_fingerprint=server.tls_pin, timeout=10, ephemeral=True
        )

    alice, bob = Identity.generate(), Identity.generate()
    a = parse_address(f"after-fuzz-a{os.getpid()}@{server.domain}")
    b = parse_address(f"after-fuzz-b{os.getpid()}@{server.domain}")
    for address, identity in ((a, alice), (b, bob)):
        async with session() as s:
            assert await s.register(address, identity) == address
    async with session() as s:
        await s.login(a, alice)
        await s.send(b, "after the storm", "still standing")
    async with session() as s:
        await s.login(b, bob)
        (info,) = await s.list()
        message = await s.retrieve(info.id)
        assert message.subject == "after the storm" and message.verified, message


def fuzz_seed() -> int:
    env = os.environ.get("RUNE_FUZZ_SEED")
    return int(env) if env else FUZZ_SEED


async def test_fuzz_the_server_over_tls(rune_server: ServerFactory) -> None:
    seed = fuzz_seed()
    print(f"\nfuzz seed {seed} (replay with RUNE_FUZZ_SEED={seed})")
    server = rune_server(
        "both",
        max_payload_mib=MAX_PAYLOAD_MIB,
        max_failures=MAX_FAILURES,
        # The throttle path runs, but with tiny delays so the fuzzer is not slowed.
        throttle_after=2,
        throttle_delay=0.001,
        throttle_max_delay=0.01,
        throttle_table=500,
    )
    material = build_material(server, random.Random(seed))
    assert server.process is not None
    rss_before = rss_kib(server.process.pid)
    stats = Stats()
    started = time.monotonic()
    workers = [
        Worker(i, seed, server, material, stats, started + TIME_CAP) for i in range(CONNECTIONS)
    ]
    try:
        await asyncio.gather(*(w.run() for w in workers))
    except BaseException as exc:
        exc.add_note(f"fuzz seed {seed}; replay with RUNE_FUZZ_SEED={seed}")
        raise
    elapsed = time.monotonic() - started
    assert server.process is not None and server.process.poll() is None, "the server died"
    rate = stats.lines / elapsed
    print(
        f"fuzzed {stats.sent} lines ({stats.lines} answered, the rest after a close) "
        f"in {elapsed:.1f} s = {rate:.0f} lines/s over "
        f"{stats.connections} connections ({stats.closes} closed by the server), "
        f"{stats.bursts} bursts, {stats.setups} setups; "
        f"slowest reply {stats.worst_reply * 1000:.0f} ms"
    )
    rss_after = rss_kib(server.process.pid)
    print(f"server RSS {rss_before // 1024} MiB before, {rss_after // 1024} MiB after")
    print("lines per state:", dict(stats.by_state))
    print("replies:", dict(sorted(stats.by_code.items())))
    assert stats.lines >= TOTAL_LINES, (
        f"only {stats.lines} lines answered before the {TIME_CAP:g} s cap: hung? (seed {seed})"
    )
    for state in ("idle", "await-answer", "await-proof", "authenticated", "sending"):
        assert stats.by_state[state] >= 2000, f"too few lines in {state}: {stats.by_state}"
    assert rss_after - rss_before < 64 * 1024, "the server's memory grew by more than 64 MiB"

    await well_behaved_client_works(server)
    assert server.stop() == 0
    stderr = server.stderr_text()
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    assert not re.search(r"\b500×", stderr), stderr


async def write_lines(link: RawLink, lines: list[bytes]) -> None:
    try:
        for line in lines:
            await link.write(line + b"\r\n")
    except (OSError, ConnectionError):
        pass  # the server closed; what matters is what was read before


async def test_replies_survive_a_client_that_pipelines_past_a_closing_reply(
    rune_server: ServerFactory,
) -> None:
    """Found by the fuzzer: the server closed with unread input, so the kernel sent a TCP
    reset, and the reset destroyed replies the client had not read yet — here the 202 of
    a stored message. The server now lingers (reads and drops) before it closes."""
    server = rune_server()
    users = build_material(server, random.Random(0)).users[:2]
    (sender, identity), (receiver, receiver_identity) = users
    for closing in (b"QUIT", b"CHALLANGE_ACCEPTED !!!"):  # 221, and 410 (a bad token)
        link = await RawLink.open(server.host, server.port)
        try:
            reply = await link.request(f"LOGIN {sender}\r\n".encode())
            assert reply is not None and reply.code == status.LOGIN_NONCE
            nonce = b64decode(reply.line[4:])
            proof = login_proof(identity, sender, server.server_public_key, nonce)
            reply = await link.request(f"PROOF {b64encode(proof)}\r\n".encode())
            assert reply is not None and reply.code == status.AUTHENTICATED
            reply = await link.request(f"SEND {receiver}\r\n".encode())
            assert reply is not None and reply.code == status.SEND_READY
            content = Content("pipelined", "then hung up")
            sealed = seal_message(sender, identity, receiver, receiver_identity.public, content)
            payload = seal_client_message(
                sender, identity, receiver, server.server_public_key, sealed
            )
            lines = [f"MESSAGE {sender} {b64encode(payload)}".encode(), closing]
            lines += [b"NOOP"] * 2000
            # Line by line, so that the client is still sending when the server closes.
            writer = asyncio.ensure_future(write_lines(link, lines))
            first, second = await link.reply(), await link.reply()
            await writer
            assert first is not None and first.code == status.ROGER, (closing, first)
            assert second is not None and status.closes(second.code), (closing, second)
            assert await link.reply() is None  # and nothing after the closing reply
        finally:
            await link.close()
