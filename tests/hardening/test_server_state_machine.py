"""A Hypothesis state machine against a real rune-server: the replies follow §13.

Two TLS connections to one server; each rule sends one command (well-formed or not,
legal in the current state or not) on one of them, and checks the reply code against a
model of docs/protocol.md: the legality table of §13.2, the transitions and fallbacks of
§13.1/§13.3, the closing codes of §12, the failure budget of §4.6 (``429``), and what
the command should do (a fresh address gets ``205``, a taken one ``409``; a valid proof
``230``, any other ``411``; a mailbox lists exactly what was delivered to it, …).
"""

from __future__ import annotations

import collections
import secrets
import socket
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from rune_proto import status
from rune_proto.address import Address, parse_address
from rune_proto.connection import State
from rune_proto.encoding import b64decode, b64encode
from rune_proto.envelope import Content, seal_client_message, seal_message
from rune_proto.handshake import answer_challenge, login_proof
from rune_proto.keys import Identity, PublicKey
from tests.server_process import RuneServerProcess, ServerFactory

from .rawlink import after, client_context

pytestmark = pytest.mark.slow

MAX_FAILURES = 8
CONNECTIONS = 2
TIMEOUT = 10.0
NOT_LOGGED_IN = (State.IDLE, State.AWAIT_ANSWER, State.AWAIT_PROOF)


class Link:
    """A blocking TLS connection that sends lines and reads whole replies."""

    def __init__(self, server: RuneServerProcess) -> None:
        raw = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        self.sock = client_context().wrap_socket(raw)
        self.file = self.sock.makefile("rb")
        greeting = self.file.readline()
        assert greeting.startswith(b"HOWDY rune/1"), greeting

    def send(self, line: str | bytes) -> tuple[int, str, list[str]]:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + b"\r\n")
        first = self.file.readline()
        assert first.endswith(b"\r\n"), f"no reply to {data[:60]!r}: {first!r}"
        code, text = int(first[:3]), first[4:-2].decode()
        body = []
        if code in (status.CAPABILITIES, status.LISTING):
            while (line_ := self.file.readline()) != b".\r\n":
                assert line_, "EOF inside a multi-line reply"
                body.append(line_[:-2].decode())
        return code, text, body

    def is_closed(self) -> bool:
        """Hang up as a client should after a closing reply; True once the server closed.

        Our TLS close_notify ends the server's linger at once (waiting for the server
        to give up on us would cost a fraction of a second per close); then its
        close_notify, then EOF on the TCP socket, must follow.
        """
        try:
            plain = self.sock.unwrap()
            return plain.recv(1) == b""
        except (OSError, ssl.SSLError):
            return True  # reset or cut: closed as well

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@dataclass
class Peer:
    """The model of one connection."""

    link: Link
    state: State = State.IDLE
    failures: int = 0
    me: Address | None = None
    identity: Identity | None = None
    registering: tuple[Address, Identity, bytes] | None = None  # address, identity, answer
    login: tuple[Address, bytes] | None = None  # address, nonce
    receiver: tuple[Address, PublicKey] | None = None


@dataclass
class World:
    accounts: dict[Address, Identity] = field(default_factory=dict)
    mailboxes: dict[Address, set[str]] = field(default_factory=dict)  # ids seen in LIST
    unlisted: collections.Counter[Address] = field(default_factory=collections.Counter)


class ServerMachine(RuleBasedStateMachine):
    server: RuneServerProcess  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.peers = [Peer(Link(self.server)) for _ in range(CONNECTIONS)]
        self.server_key = self.server.server_public_key
        # Two accounts to start with, so that logins and sends happen early.
        link = Link(self.server)
        for _ in range(2):
            address, identity = self.fresh_address(), Identity.generate()
            code, text, _ = link.send(f"REGISTER {address} {identity.public.token()}")
            assert code == status.CHALLENGE, text
            challenge = b64decode(text.split(" ")[0])
            answer = answer_challenge(identity, address, self.server_key, challenge)
            assert link.send(f"CHALLANGE_ACCEPTED {b64encode(answer)}")[0] == status.REGISTERED
            self.world.accounts[address] = identity
            self.world.mailboxes[address] = set()
        link.close()

    def teardown(self) -> None:
        for peer in self.peers:
            peer.link.close()

    # --- helpers --------------------------------------------------------------------

    def fresh_address(self) -> Address:
        return parse_address(f"sm{secrets.token_hex(6)}@{self.server.domain}")

    def known(self, pick: int) -> Address | None:
        accounts = sorted(self.world.accounts, key=str)
        return accounts[pick % len(accounts)] if accounts else None

    def exchange(
        self, index: int, line: str | bytes, expected: int, *, legal: tuple[State, ...]
    ) -> tuple[int, str, list[str]]:
        """Send ``line``; expect ``expected`` if the state is in ``legal``, else 401/402.

        Then apply the failure budget, and move the model as §13 says.
        """
        peer = self.peers[index]
        state = peer.state
        if state not in legal:  # §13.2: 401 for the commands that need a login, else 402
            needs_login = legal == (State.AUTHENTICATED,)
            login_first = needs_login and state in NOT_LOGGED_IN
            expected = status.LOGIN_REQUIRED if login_first else status.BAD_SEQUENCE
        if expected >= 400:
            peer.failures += 1
            if peer.failures > MAX_FAILURES and not status.closes(expected):
                expected = status.TOO_MANY_FAILURES
        code, text, body = peer.link.send(line)
        shown = line if isinstance(line, str) else line[:60].decode(errors="replace")
        assert code == expected, f"{shown[:80]!r} in {state.value}: got {code} {text}"
        peer.state = after(state, code)
        if state is not peer.state:
            if peer.state is not State.AWAIT_ANSWER:
                peer.registering = None
            if peer.state is not State.AWAIT_PROOF:
                peer.login = None
            if peer.state is not State.SENDING:
                peer.receiver = None
        if peer.state is State.CLOSED:
            assert peer.link.is_closed(), f"{code} did not close the connection"
            peer.link.close()
            self.peers[index] = Peer(Link(self.server))
        return code, text, body

    def in_state(self, *states: State) -> int | None:
        return next((i for i, p in enumerate(self.peers) if p.state in states), None)

    # --- one command each, right or wrong for the connection's state -------------------

    def capa(self, i: int) -> None:
        self.exchange(i, "CAPA", 211, legal=(State.IDLE, State.AUTHENTICATED))

    def noop(self, i: int) -> None:
        legal = (State.IDLE, State.AUTHENTICATED, State.SENDING)
        self.exchange(i, "NOOP", 200, legal=legal)

    def quit(self, i: int) -> None:
        self.exchange(i, "QUIT", 221, legal=tuple(State))

    def register(self, i: int, taken: bool, pick: int) -> None:
        address = (self.known(pick) if taken else None) or self.fresh_address()
        identity = Identity.generate()
        free = address not in self.world.accounts
        code, text, _ = self.exchange(
            i,
            f"REGISTER {address} {identity.public.token()}",
            205 if free else 409,
            legal=(State.IDLE,),
        )
        if code == 205:
            challenge, key = text.split(" ")
            assert key == self.server.server_key
            answer = answer_challenge(identity, address, self.server_key, b64decode(challenge))
            self.peers[i].registering = (address, identity, answer)

    def register_other_domain(self, i: int) -> None:
        line = f"REGISTER someone@not-{self.server.domain} {Identity.generate().public.token()}"
        self.exchange(i, line, 403, legal=(State.IDLE,))

    def challenge_accepted(self, i: int, good: bool) -> None:
        pending = self.peers[i].registering
        if pending is None:
            self.exchange(i, f"CHALLANGE_ACCEPTED {b64encode(bytes(1232))}", 410, legal=())
            return
        address, identity, answer = pending
        if not good:
            answer = answer[:-1] + bytes([answer[-1] ^ 1])
        taken = address in self.world.accounts
        expected = (409 if taken else 210) if good else 410
        code, _, _ = self.exchange(
            i, f"CHALLANGE_ACCEPTED {b64encode(answer)}", expected, legal=(State.AWAIT_ANSWER,)
        )
        if code == 210:
            self.world.accounts[address] = identity
            self.world.mailboxes[address] = set()

    def login(self, i: int, known: bool, pick: int) -> None:
        address = (self.known(pick) if known else None) or self.fresh_address()
        code, text, _ = self.exchange(i, f"LOGIN {address}", 220, legal=(State.IDLE,))
        if code == 220:
            self.peers[i].login = (address, b64decode(text))

    def proof(self, i: int, good: bool) -> None:
        peer = self.peers[i]
        if peer.login is None:
            self.exchange(i, f"PROOF {b64encode(bytes(64))}", 411, legal=())
            return
        address, nonce = peer.login
        identity = self.world.accounts.get(address)
        signer = identity if identity is not None and good else Identity.generate()
        proof = login_proof(signer, address, self.server_key, nonce)
        expected = 230 if identity is not None and good else 411
        code, _, _ = self.exchange(
            i, f"PROOF {b64encode(proof)}", expected, legal=(State.AWAIT_PROOF,)
        )
        if code == 230:
            peer = self.peers[i]
            peer.me, peer.identity = address, identity

    def send(self, i: int, known: bool, pick: int) -> None:
        address = (self.known(pick) if known else None) or self.fresh_address()
        registered = address in self.world.accounts
        code, text, _ = self.exchange(
            i, f"SEND {address}", 201 if registered else 404, legal=(State.AUTHENTICATED,)
        )
        if code == 201:
            _, key, server_key = text.split(" ")
            assert server_key == self.server.server_key
            self.peers[i].receiver = (address, PublicKey.from_token(key))

    def message(self, i: int, forge: bool) -> None:
        peer = self.peers[i]
        if peer.receiver is None or peer.me is None or peer.identity is None:
            self.exchange(i, f"MESSAGE {self.fresh_address()} AAAA", 202, legal=())
            return
        receiver, key = peer.receiver
        sealed = seal_message(peer.me, peer.identity, receiver, key, Content("s", "b"))
        payload = seal_client_message(peer.me, peer.identity, receiver, self.server_key, sealed)
        if forge:  # a valid envelope, but not from the logged-in address: 412, closes
            line = f"MESSAGE {self.fresh_address()} {b64encode(payload)}"
            self.exchange(i, line, 412, legal=(State.SENDING,))
            return
        self.exchange(i, f"MESSAGE {peer.me} {b64encode(payload)}", 202, legal=(State.SENDING,))
        self.world.unlisted[receiver] += 1  # its id is learnt from LIST

    def list_messages(self, i: int) -> None:
        code, text, body = self.exchange(i, "LIST", 240, legal=(State.AUTHENTICATED,))
        if code == 240:
            me = self.peers[i].me
            assert me is not None
            ids = {line.split(" ")[0] for line in body}
            assert text == f"{len(body)} messages"
            delivered = len(self.world.mailboxes[me]) + self.world.unlisted[me]
            assert len(ids) == delivered, f"LIST shows {len(ids)}, {delivered} delivered"
            assert self.world.mailboxes[me] <= ids, "a listed message went missing"
            self.world.mailboxes[me] = ids
            self.world.unlisted[me] = 0

    def own_id(self, i: int, pick: int) -> str | None:
        me = self.peers[i].me
        if self.peers[i].state is not State.AUTHENTICATED or me is None:
            return None
        ids = sorted(self.world.mailboxes[me])
        return ids[pick % len(ids)] if ids else None

    def retrieve(self, i: int, mine: bool, pick: int) -> None:
        message_id = self.own_id(i, pick) if mine else None
        expected = 250 if message_id else 404
        message_id = message_id or str(uuid.uuid4())
        self.exchange(i, f"RETRIEVE {message_id}", expected, legal=(State.AUTHENTICATED,))

    def delete(self, i: int, mine: bool, pick: int) -> None:
        message_id = self.own_id(i, pick) if mine else None
        expected = 260 if message_id else 404
        code, _, _ = self.exchange(
            i, f"DELETE {message_id or uuid.uuid4()}", expected, legal=(State.AUTHENTICATED,)
        )
        me = self.peers[i].me
        if code == 260 and me is not None:
            self.world.mailboxes[me].discard(str(message_id))

    def lookup(self, i: int, known: bool, pick: int) -> None:
        address = (self.known(pick) if known else None) or self.fresh_address()
        expected = 270 if address in self.world.accounts else 404
        self.exchange(i, f"LOOKUP {address}", expected, legal=(State.AUTHENTICATED,))

    GARBAGE = (b"FROB", b"", b" NOOP", b"NOOP ", b"LIST x", b"N\x00OOP", b"NO\rOP", b"\xff")

    def garbage(self, i: int, pick: int) -> None:
        self.exchange(i, self.GARBAGE[pick % len(self.GARBAGE)], 400, legal=tuple(State))

    def long_line(self, i: int, size: int) -> None:
        # Over MAX_LINE (4096), so 414; in SENDING the limit is the MESSAGE line's
        # (~87 KB for 64 KiB payloads): the short one parses (400), the long one is 413.
        expected = 414
        if self.peers[i].state is State.SENDING:
            expected = 413 if size > 90_000 else 400
        self.exchange(i, b"NOOP " + b"x" * size, expected, legal=tuple(State))

    def command(self, i: int, what: str, pick: int) -> None:
        """The command called ``what``; ``pick`` chooses among its variants."""
        variant = pick % 2 == 0
        calls: dict[str, Callable[[], None]] = {
            "CAPA": lambda: self.capa(i),
            "NOOP": lambda: self.noop(i),
            "QUIT": lambda: self.quit(i),
            "REGISTER": lambda: self.register(i, variant, pick),
            "REGISTER elsewhere": lambda: self.register_other_domain(i),
            "CHALLANGE_ACCEPTED": lambda: self.challenge_accepted(i, variant),
            "LOGIN": lambda: self.login(i, variant, pick),
            "PROOF": lambda: self.proof(i, variant),
            "SEND": lambda: self.send(i, pick % 4 != 0, pick),
            "MESSAGE": lambda: self.message(i, pick % 5 == 0),
            "LIST": lambda: self.list_messages(i),
            "RETRIEVE": lambda: self.retrieve(i, variant, pick),
            "DELETE": lambda: self.delete(i, variant, pick),
            "LOOKUP": lambda: self.lookup(i, variant, pick),
            "garbage": lambda: self.garbage(i, pick),
            "long line": lambda: self.long_line(i, 5000 if variant else 100_000),
        }
        calls[what]()

    COMMANDS = (
        *("CAPA", "NOOP", "QUIT", "REGISTER", "REGISTER elsewhere", "CHALLANGE_ACCEPTED"),
        *("LOGIN", "PROOF", "SEND", "MESSAGE", "LIST", "RETRIEVE", "DELETE", "LOOKUP"),
        *("garbage", "long line"),
    )

    # --- rules ------------------------------------------------------------------------

    @rule(
        i=st.integers(0, CONNECTIONS - 1),
        what=st.sampled_from(COMMANDS),
        pick=st.integers(0, 50),
    )
    def any_command(self, i: int, what: str, pick: int) -> None:
        """Any command on any connection, whatever state it is in."""
        self.command(i, what, pick)

    @rule(
        into=st.sampled_from([State.AWAIT_ANSWER, State.AWAIT_PROOF, State.SENDING]),
        what=st.sampled_from(COMMANDS),
        pick=st.integers(0, 50),
    )
    def enter_then_command(self, into: State, what: str, pick: int) -> None:
        """Bring a connection into a sub-state the right way, then send any command."""
        start = State.AUTHENTICATED if into is State.SENDING else State.IDLE
        i = self.in_state(start)
        if i is None:
            return
        if into is State.AWAIT_ANSWER:
            self.register(i, False, pick)
        elif into is State.AWAIT_PROOF:
            self.login(i, True, pick)
        else:
            self.send(i, True, pick)
        assert self.peers[i].state is into
        self.command(i, what, pick)

    @precondition(lambda self: self.in_state(State.IDLE) is not None)
    @rule(pick=st.integers(0, 50), what=st.sampled_from(COMMANDS))
    def log_in_then_command(self, pick: int, what: str) -> None:
        """LOGIN and a valid PROOF, then any command as a logged-in user."""
        i = self.in_state(State.IDLE)
        assert i is not None
        address = self.known(pick)
        assert address is not None
        _, text, _ = self.exchange(i, f"LOGIN {address}", 220, legal=(State.IDLE,))
        identity = self.world.accounts[address]
        proof = login_proof(identity, address, self.server_key, b64decode(text))
        self.exchange(i, f"PROOF {b64encode(proof)}", 230, legal=(State.AWAIT_PROOF,))
        peer = self.peers[i]
        peer.me, peer.identity = address, identity
        self.command(i, what, pick)

    @precondition(lambda self: self.in_state(State.AUTHENTICATED) is not None)
    @rule(pick=st.integers(0, 50), forge=st.sampled_from([False] * 4 + [True]))
    def send_message(self, pick: int, forge: bool) -> None:
        """SEND and MESSAGE on a logged-in connection, so that mail flows."""
        i = self.in_state(State.AUTHENTICATED)
        assert i is not None
        self.send(i, True, pick)
        self.message(i, forge)

    @precondition(lambda self: self.in_state(State.AUTHENTICATED) is not None)
    @rule(pick=st.integers(0, 50), delete=st.booleans())
    def read_mailbox(self, pick: int, delete: bool) -> None:
        """LIST, then RETRIEVE (and maybe DELETE) one of the listed messages."""
        i = self.in_state(State.AUTHENTICATED)
        assert i is not None
        self.list_messages(i)
        if self.peers[i].state is State.AUTHENTICATED:
            self.retrieve(i, True, pick)
        if delete and self.peers[i].state is State.AUTHENTICATED:
            self.delete(i, True, pick)

    @invariant()
    def model_is_consistent(self) -> None:
        for peer in self.peers:
            assert peer.state is not State.CLOSED
            assert (peer.state is State.AWAIT_ANSWER) == (peer.registering is not None)
            assert (peer.state is State.AWAIT_PROOF) == (peer.login is not None)
            assert (peer.state is State.SENDING) == (peer.receiver is not None)
            logged_in = peer.state in (State.AUTHENTICATED, State.SENDING)
            assert logged_in == (peer.me is not None)


@pytest.mark.usefixtures("store_kind")
def test_replies_follow_the_state_table(rune_server: ServerFactory) -> None:
    server = rune_server(
        "free",
        max_failures=MAX_FAILURES,
        max_payload_mib=1 / 16,
        throttle_delay=0,  # wrong proofs are part of the game; the throttle is tested apart
    )

    class Machine(ServerMachine):
        pass

    Machine.server = server
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=80,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
