"""The per-connection state machine, both roles, driven against each other.

A paired-connection helper runs whole sessions (with real crypto behind a tiny
in-test server) through a client and a server ``Connection`` and checks that both
agree on the state after every exchange. Wrong-state commands, lock-step rules,
closing statuses, oversized lines and fuzzed byte streams follow.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rune_proto import handshake, status
from rune_proto.address import Address, parse_address
from rune_proto.connection import Connection, Role, State
from rune_proto.envelope import (
    Attachment,
    Content,
    open_client_message,
    open_message,
    open_stored_message,
    seal_client_message,
    seal_message,
    seal_stored_message,
)
from rune_proto.errors import LocalProtocolError, RemoteProtocolError
from rune_proto.events import (
    DISCARDED,
    NEED_DATA,
    PAUSED,
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
    Done,
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
    NewMail,
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
    Wait,
)
from rune_proto.keys import Identity, PublicKey
from rune_proto.suite import EnvelopeError
from rune_proto.wire import format_command, format_reply, message_line_limit


def _identity(name: str) -> Identity:
    return Identity(
        b"".join(
            hashlib.sha256(f"rune/1 test vector {name} {i}".encode()).digest() for i in range(4)
        )
    )


SERVER_ID, ALICE_ID, BOB_ID = _identity("server"), _identity("alice"), _identity("bob")
ALICE = parse_address("alice@example.org")
BOB = parse_address("bob@example.org")
CAROL = parse_address("carol@example.org")
MID = "5b0e4a52-8b1e-4f37-9c55-0d6a4e2f1c3b"
GREETING = Greeting(("rune/1",), "Welcome to Rune")
MAX_LINE = 4096
MAX_PAYLOAD = 64 * 1024


# --- a tiny server with real crypto, and the paired-connection helper ------------


@dataclass
class Store:
    accounts: dict[Address, PublicKey] = field(default_factory=dict)
    mailboxes: dict[Address, dict[str, bytes]] = field(default_factory=dict)


class Brain:
    """What a server does with each command: enough of it to drive a real session."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.nonce = b""
        self.candidate: tuple[Address, PublicKey] | None = None
        self.login: Address | None = None
        self.user: Address | None = None
        self.receiver: Address | None = None

    def handle(self, command: Command) -> Reply:
        accounts = self.store.accounts
        match command:
            case Capa():
                return Capabilities(
                    ("rune/1",), "example.org", ("free",), MAX_PAYLOAD, MAX_LINE, SERVER_ID.public
                )
            case Register(address=address, public_key=key):
                if address in accounts:
                    return ErrorReply(status.ADDRESS_TAKEN, "address already registered")
                self.nonce, self.candidate = handshake.new_nonce(), (address, key)
                challenge = handshake.make_challenge(SERVER_ID, address, key, self.nonce)
                return Challenge(challenge, SERVER_ID.public)
            case ChallengeAccepted(answer=answer):
                assert self.candidate is not None
                address, key = self.candidate
                try:
                    handshake.check_answer(SERVER_ID, address, key, self.nonce, answer)
                except EnvelopeError:
                    return ErrorReply(status.CHALLENGE_FAILED, "registration challenge failed")
                accounts[address] = key
                self.store.mailboxes[address] = {}
                return Registered(address)
            case Login(address=address):
                self.nonce, self.login = handshake.new_nonce(), address
                return LoginNonce(self.nonce)
            case Proof(signature=signature):
                key = accounts.get(self.login) if self.login else None
                if key is None or not handshake.check_login_proof(
                    key,
                    self.login,
                    SERVER_ID.public,
                    self.nonce,
                    signature,  # type: ignore[arg-type]
                ):
                    return ErrorReply(status.AUTHENTICATION_FAILED, "authentication failed")
                self.user = self.login
                return Authenticated(self.login)  # type: ignore[arg-type]
            case Send(receiver=receiver):
                if receiver not in accounts:
                    return ErrorReply(status.NOT_FOUND, "not found")
                self.receiver = receiver
                return SendReady(MAX_PAYLOAD, accounts[receiver], SERVER_ID.public)
            case Message(sender=sender, payload=payload):
                assert self.user is not None and self.receiver is not None
                if sender != self.user:
                    return ErrorReply(status.BAD_SIGNATURE, "message signature invalid")
                try:
                    sealed = open_client_message(
                        SERVER_ID, sender, accounts[sender], self.receiver, payload
                    )
                except EnvelopeError:
                    return ErrorReply(status.BAD_SIGNATURE, "message signature invalid")
                blob = seal_stored_message(
                    SERVER_ID, self.receiver, accounts[self.receiver], sender, sealed
                )
                self.store.mailboxes[self.receiver][str(uuid.uuid4())] = blob
                return Roger()
            case ListMessages():
                assert self.user is not None
                box = self.store.mailboxes[self.user]
                return Listing(tuple((m, len(b)) for m, b in box.items()))
            case Retrieve(message_id=message_id):
                assert self.user is not None
                blob = self.store.mailboxes[self.user].get(message_id)
                if blob is None:
                    return ErrorReply(status.NOT_FOUND, "not found")
                return Retrieved(message_id, blob)
            case Delete(message_id=message_id):
                assert self.user is not None
                if self.store.mailboxes[self.user].pop(message_id, None) is None:
                    return ErrorReply(status.NOT_FOUND, "not found")
                return Deleted(message_id)
            case Lookup(address=address):
                if address not in accounts:
                    return ErrorReply(status.NOT_FOUND, "not found")
                return KeyFound(address, accounts[address])
            case Noop():
                return Ok()
            case Quit():
                return Bye()
        raise AssertionError(f"unhandled {command!r}")


class Pair:
    """A client and a server Connection wired back to back."""

    def __init__(self, brain: Brain | None = None, **limits: int) -> None:
        self.client = Connection(Role.CLIENT, **limits)
        self.server = Connection(Role.SERVER, **limits)
        self.brain = brain or Brain(Store())
        self.client.receive_data(self.server.send(GREETING))
        assert self.client.next_event() == GREETING
        self.check(State.IDLE)

    def check(self, state: State) -> None:
        assert self.client.state is state, ("client", self.client.state, state)
        assert self.server.state is state, ("server", self.server.state, state)

    def command(self, command: Command) -> Command:
        """Client sends; the server reads the same command and then owes a reply."""
        self.server.receive_data(self.client.send(command))
        got = self.server.next_event()
        assert got == command
        # WAIT is the one command after which the server keeps reading (for DONE).
        assert self.server.next_event() is (NEED_DATA if isinstance(command, Wait) else PAUSED)
        assert self.server.buffered == 0
        return got  # type: ignore[return-value]

    def reply(self, reply: Reply) -> Reply:
        """Server answers; the client reads the same reply and nothing more."""
        self.client.receive_data(self.server.send(reply))
        got = self.client.next_event()
        assert got == reply
        assert self.client.next_event() in (NEED_DATA, ConnectionClosed())
        return got  # type: ignore[return-value]

    def exchange(self, command: Command, expected: type[Reply], state: State) -> Reply:
        reply = self.reply(self.brain.handle(self.command(command)))
        assert type(reply) is expected, reply
        self.check(state)
        return reply


def register(pair: Pair, address: Address, identity: Identity) -> None:
    reply = pair.exchange(Register(address, identity.public), Challenge, State.AWAIT_ANSWER)
    assert isinstance(reply, Challenge)
    answer = handshake.answer_challenge(identity, address, reply.server_key, reply.challenge)
    done = pair.exchange(ChallengeAccepted(answer), Registered, State.IDLE)
    assert done == Registered(address)


def login(pair: Pair, address: Address, identity: Identity) -> None:
    reply = pair.exchange(Login(address), LoginNonce, State.AWAIT_PROOF)
    assert isinstance(reply, LoginNonce)
    proof = handshake.login_proof(identity, address, SERVER_ID.public, reply.nonce)
    pair.exchange(Proof(proof), Authenticated, State.AUTHENTICATED)
    assert pair.client.address == pair.server.address == address


def test_whole_session_through_client_and_server_connections() -> None:
    store = Store()
    content = Content("Hello", "A whole session.", (Attachment("a.txt", b"attached"),))

    # alice: greeting, capa, register + challenge, login + proof, send + message, …
    alice = Pair(Brain(store), max_payload=MAX_PAYLOAD)
    caps = alice.exchange(Capa(), Capabilities, State.IDLE)
    assert isinstance(caps, Capabilities) and caps.server_key == SERVER_ID.public
    assert alice.client.max_payload == MAX_PAYLOAD
    register(alice, ALICE, ALICE_ID)
    # bob registers in his own session first, so alice can send to him
    bob = Pair(Brain(store), max_payload=MAX_PAYLOAD)
    register(bob, BOB, BOB_ID)
    bob.exchange(Quit(), Bye, State.CLOSED)

    login(alice, ALICE, ALICE_ID)
    ready = alice.exchange(Send(BOB), SendReady, State.SENDING)
    assert isinstance(ready, SendReady) and ready.receiver_key == BOB_ID.public
    sealed = seal_message(ALICE, ALICE_ID, BOB, ready.receiver_key, content)
    payload = seal_client_message(ALICE, ALICE_ID, BOB, ready.server_key, sealed)
    alice.exchange(Message(ALICE, payload), Roger, State.AUTHENTICATED)
    assert len(store.mailboxes[BOB]) == 1
    empty = alice.exchange(ListMessages(), Listing, State.AUTHENTICATED)
    assert empty == Listing(())
    found = alice.exchange(Lookup(BOB), KeyFound, State.AUTHENTICATED)
    assert found == KeyFound(BOB, BOB_ID.public)
    alice.exchange(Lookup(CAROL), ErrorReply, State.AUTHENTICATED)
    alice.exchange(Noop(), Ok, State.AUTHENTICATED)
    alice.exchange(Quit(), Bye, State.CLOSED)
    assert alice.client.next_event() == ConnectionClosed()
    assert alice.server.next_event() == ConnectionClosed()

    # bob: login + proof, list, retrieve (and open both layers), delete, noop, quit
    bob = Pair(Brain(store), max_payload=MAX_PAYLOAD)
    login(bob, BOB, BOB_ID)
    listing = bob.exchange(ListMessages(), Listing, State.AUTHENTICATED)
    assert isinstance(listing, Listing) and len(listing.entries) == 1
    message_id, size = listing.entries[0]
    retrieved = bob.exchange(Retrieve(message_id), Retrieved, State.AUTHENTICATED)
    assert isinstance(retrieved, Retrieved) and len(retrieved.blob) == size
    stored = open_stored_message(BOB_ID, BOB, SERVER_ID.public, retrieved.blob)
    opened = open_message(BOB_ID, BOB, stored.sealed_message)
    assert stored.sender == opened.sender == ALICE
    assert opened.verified and opened.content == content
    deleted = bob.exchange(Delete(message_id), Deleted, State.AUTHENTICATED)
    assert deleted == Deleted(message_id)
    bob.exchange(Retrieve(message_id), ErrorReply, State.AUTHENTICATED)
    assert bob.exchange(ListMessages(), Listing, State.AUTHENTICATED) == Listing(())
    bob.exchange(Noop(), Ok, State.AUTHENTICATED)
    bob.exchange(Quit(), Bye, State.CLOSED)


def test_failed_exchanges_fall_back_without_ending_the_session() -> None:
    store = Store()
    pair = Pair(Brain(store), max_payload=MAX_PAYLOAD)
    register(pair, ALICE, ALICE_ID)
    # a wrong proof: 411, back to IDLE on both sides
    pair.exchange(Login(ALICE), LoginNonce, State.AWAIT_PROOF)
    pair.exchange(Proof(bytes(64)), ErrorReply, State.IDLE)
    assert pair.client.address is None and pair.server.address is None
    # registering a taken address: 409 straight from IDLE
    pair.exchange(Register(ALICE, ALICE_ID.public), ErrorReply, State.IDLE)
    # an unknown receiver: 404, still AUTHENTICATED
    login(pair, ALICE, ALICE_ID)
    pair.exchange(Send(CAROL), ErrorReply, State.AUTHENTICATED)
    # a message whose signature fails: 412 closes the connection on both sides
    pair.exchange(Send(ALICE), SendReady, State.SENDING)
    bogus = seal_client_message(ALICE, BOB_ID, ALICE, SERVER_ID.public, b"x")
    pair.exchange(Message(ALICE, bogus), ErrorReply, State.CLOSED)
    with pytest.raises(LocalProtocolError):
        pair.client.send(Noop())
    with pytest.raises(LocalProtocolError):
        pair.server.send(Ok())


def test_failed_registration_challenge_closes_on_both_sides() -> None:
    pair = Pair()
    pair.exchange(Register(ALICE, ALICE_ID.public), Challenge, State.AWAIT_ANSWER)
    pair.exchange(ChallengeAccepted(b"\0" * handshake.ANSWER_SIZE), ErrorReply, State.CLOSED)


def test_noop_while_sending_abandons_the_send_on_both_sides() -> None:
    pair = pair_in(State.SENDING)
    pair.command(Noop())
    pair.reply(Ok())
    pair.check(State.AUTHENTICATED)
    pair.command(ListMessages())


@pytest.mark.parametrize("state", [State.AWAIT_ANSWER, State.AWAIT_PROOF, State.SENDING])
def test_quit_is_allowed_in_every_sub_state(state: State) -> None:
    pair = pair_in(state)
    pair.command(Quit())
    pair.reply(Bye())
    pair.check(State.CLOSED)


# --- wrong-state commands ----------------------------------------------------------

SAMPLES: dict[type[Command], Command] = {
    Capa: Capa(),
    Register: Register(ALICE, ALICE_ID.public),
    RegisterInvitation: RegisterInvitation(ALICE, "A" * 20, ALICE_ID.public),
    ChallengeAccepted: ChallengeAccepted(b"answer"),
    Login: Login(ALICE),
    Proof: Proof(bytes(64)),
    Send: Send(BOB),
    Message: Message(ALICE, b"payload"),
    ListMessages: ListMessages(),
    Retrieve: Retrieve(MID),
    Delete: Delete(MID),
    Lookup: Lookup(BOB),
    Noop: Noop(),
    Quit: Quit(),
    Wait: Wait(),
    Done: Done(),
}

# Written out by hand from the design (not computed by the module under test).
_LOGIN_ONLY = (Send, ListMessages, Retrieve, Delete, Lookup, Wait)
WRONG_STATE: list[tuple[State, type[Command], int]] = [
    *((State.IDLE, c, 401) for c in _LOGIN_ONLY),
    *((State.IDLE, c, 402) for c in (ChallengeAccepted, Proof, Message, Done)),
    *((State.AWAIT_ANSWER, c, 401) for c in _LOGIN_ONLY),
    *(
        (State.AWAIT_ANSWER, c, 402)
        for c in (Capa, Register, RegisterInvitation, Login, Proof, Message, Noop, Done)
    ),
    *((State.AWAIT_PROOF, c, 401) for c in _LOGIN_ONLY),
    *(
        (State.AWAIT_PROOF, c, 402)
        for c in (Capa, Register, RegisterInvitation, ChallengeAccepted, Login, Message, Noop, Done)
    ),
    *(
        (State.AUTHENTICATED, c, 402)
        for c in (Register, RegisterInvitation, ChallengeAccepted, Login, Proof, Message, Done)
    ),
    *((State.SENDING, c, 402) for c in SAMPLES if c not in (Message, Noop, Quit)),
    *((State.WAITING, c, 402) for c in SAMPLES if c is not Done),
]
RIGHT_STATE: list[tuple[State, type[Command]]] = [
    (state, c)
    for state in (
        State.IDLE,
        State.AWAIT_ANSWER,
        State.AWAIT_PROOF,
        State.AUTHENTICATED,
        State.SENDING,
        State.WAITING,
    )
    for c in SAMPLES
    if (state, c) not in {(s, k) for s, k, _ in WRONG_STATE}
]
FALLBACK = {
    State.AWAIT_ANSWER: State.IDLE,
    State.AWAIT_PROOF: State.IDLE,
    State.SENDING: State.AUTHENTICATED,
    State.WAITING: State.AUTHENTICATED,
}
_PRELUDE: dict[State, list[tuple[Command, Reply]]] = {
    State.IDLE: [],
    State.AWAIT_ANSWER: [(Register(ALICE, ALICE_ID.public), Challenge(b"c", SERVER_ID.public))],
    State.AWAIT_PROOF: [(Login(ALICE), LoginNonce(b"n"))],
    State.AUTHENTICATED: [(Login(ALICE), LoginNonce(b"n")), (Proof(b"p"), Authenticated(ALICE))],
    State.SENDING: [
        (Login(ALICE), LoginNonce(b"n")),
        (Proof(b"p"), Authenticated(ALICE)),
        (Send(BOB), SendReady(MAX_PAYLOAD, BOB_ID.public, SERVER_ID.public)),
    ],
}
_PRELUDE[State.WAITING] = _PRELUDE[State.AUTHENTICATED]


def pair_in(state: State, **limits: int) -> Pair:
    pair = Pair(**limits)
    for command, reply in _PRELUDE[state]:
        pair.command(command)
        pair.reply(reply)
    if state is State.WAITING:
        pair.command(Wait())
    pair.check(state)
    return pair


def test_the_wrong_state_table_is_complete() -> None:
    """Every (state, command) pair is either listed as wrong or exercised as right."""
    assert len({(s, c) for s, c, _ in WRONG_STATE}) == len(WRONG_STATE)  # no duplicates
    assert len(WRONG_STATE) + len(RIGHT_STATE) == 6 * len(SAMPLES)
    assert {c for _, c in RIGHT_STATE} == set(SAMPLES)  # every command is legal somewhere


@pytest.mark.parametrize(
    ("state", "kind", "code"),
    WRONG_STATE,
    ids=[f"{s.value}-{c.__name__}-{n}" for s, c, n in WRONG_STATE],
)
def test_wrong_state_command_is_refused_by_the_server(
    state: State, kind: type[Command], code: int
) -> None:
    pair = pair_in(state)
    pair.server.receive_data(format_command(SAMPLES[kind]))
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.status == code
    assert not info.value.fatal
    assert pair.server.next_event() is PAUSED  # it owes the error reply first
    with pytest.raises(LocalProtocolError):
        pair.server.send(Ok())  # …and only an error reply will do
    pair.server.send(ErrorReply(code, "refused"))
    assert pair.server.state is FALLBACK.get(state, state)
    pair.server.receive_data(b"QUIT\r\n")
    assert pair.server.next_event() == Quit()


@pytest.mark.parametrize(
    ("state", "kind", "code"),
    WRONG_STATE,
    ids=[f"{s.value}-{c.__name__}-{n}" for s, c, n in WRONG_STATE],
)
def test_wrong_state_command_is_refused_by_the_client(
    state: State, kind: type[Command], code: int
) -> None:
    pair = pair_in(state)
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(SAMPLES[kind])
    assert info.value.status == code
    assert pair.client.state is state
    # nothing was left pending by the refusal (a wait is still ended with DONE)
    pair.client.send(Done() if state is State.WAITING else Quit())


@pytest.mark.parametrize(
    ("state", "kind"), RIGHT_STATE, ids=[f"{s.value}-{c.__name__}" for s, c in RIGHT_STATE]
)
def test_right_state_command_is_accepted_by_both(state: State, kind: type[Command]) -> None:
    pair = pair_in(state)
    assert pair.command(SAMPLES[kind]) == SAMPLES[kind]


# --- lock-step and greeting rules ---------------------------------------------------


def test_server_must_greet_first() -> None:
    server = Connection(Role.SERVER)
    with pytest.raises(LocalProtocolError, match="must send its greeting first"):
        server.next_event()
    with pytest.raises(LocalProtocolError, match="first thing a server sends is its greeting"):
        server.send(Ok())
    server.send(GREETING)
    with pytest.raises(LocalProtocolError, match="greeting was already sent"):
        server.send(GREETING)
    assert server.state is State.IDLE


def test_client_waits_for_the_greeting() -> None:
    client = Connection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(Capa())
    assert client.next_event() is NEED_DATA
    client.receive_data(b"HOWDY rune/1 hi\r\n")
    assert client.next_event() == Greeting(("rune/1",), "hi")
    client.send(Capa())


def test_roles_send_only_their_own_events() -> None:
    pair = Pair()
    with pytest.raises(LocalProtocolError):
        pair.client.send(Ok())
    with pytest.raises(LocalProtocolError):
        pair.server.send(Noop())


def test_client_sends_one_command_at_a_time() -> None:
    pair = Pair()
    pair.client.send(Noop())
    with pytest.raises(LocalProtocolError, match="wait for the reply to the last command"):
        pair.client.send(Noop())


def test_server_replies_only_to_a_pending_command_with_the_right_type() -> None:
    pair = Pair()
    with pytest.raises(LocalProtocolError):
        pair.server.send(Ok())
    pair.command(Noop())
    with pytest.raises(LocalProtocolError):
        pair.server.send(Roger())
    pair.reply(Ok())


def test_server_reads_pipelined_commands_one_at_a_time() -> None:
    pair = Pair()
    pair.server.receive_data(b"NOOP\r\nCAPA\r\nQUIT\r\n")
    assert pair.server.next_event() == Noop()
    assert pair.server.next_event() is PAUSED
    pair.server.send(Ok())
    assert pair.server.next_event() == Capa()
    pair.server.send(ErrorReply(451, "later"))
    assert pair.server.next_event() == Quit()
    pair.server.send(Bye())
    assert pair.server.state is State.CLOSED
    assert pair.server.next_event() == ConnectionClosed()


def test_server_may_close_with_an_unsolicited_closing_status() -> None:
    pair = Pair()
    pair.client.receive_data(pair.server.send(ErrorReply(421, "shutting down")))
    assert pair.client.next_event() == ErrorReply(421, "shutting down")
    pair.check(State.CLOSED)


def test_server_may_not_send_an_unsolicited_non_closing_reply() -> None:
    pair = Pair()
    with pytest.raises(LocalProtocolError):
        pair.server.send(ErrorReply(404, "not found"))


def test_client_refuses_an_unsolicited_reply() -> None:
    pair = Pair()
    pair.client.receive_data(b"200 OK\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.next_event()
    assert info.value.fatal


def test_client_refuses_the_wrong_success_code() -> None:
    pair = Pair()
    pair.client.send(Noop())
    pair.client.receive_data(b"202 ROGER\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.next_event()
    assert info.value.fatal


def test_client_refuses_an_oversized_reply_line() -> None:
    pair = Pair()
    pair.client.send(Noop())
    pair.client.receive_data(b"200 " + b"x" * 20_000 + b"\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.next_event()
    assert info.value.fatal


def test_client_accepts_a_large_retrieve_reply() -> None:
    pair = pair_in(State.AUTHENTICATED)
    blob = bytes(range(256)) * 200  # 51 KB, over the ordinary 16 KiB reply limit
    pair.command(Retrieve(MID))
    pair.reply(Retrieved(MID, blob))


def test_closing_statuses_close_both_sides() -> None:
    for code in (407, 408, 410, 412, 421, 429, 500, 503):
        pair = Pair()
        pair.command(Noop())
        pair.reply(ErrorReply(code, "closing"))
        pair.check(State.CLOSED)


def test_non_closing_errors_keep_the_session() -> None:
    for code in (400, 401, 402, 403, 404, 409, 411, 413, 414, 415, 451):
        pair = Pair()
        pair.command(Noop())
        pair.reply(ErrorReply(code, "no"))
        pair.check(State.IDLE)


def test_end_of_stream() -> None:
    pair = Pair()
    pair.server.receive_data(b"NOO")
    pair.server.receive_data(b"")
    assert pair.server.next_event() == ConnectionClosed()
    assert pair.server.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        pair.server.receive_data(b"P\r\n")
    pair.client.receive_data(b"")
    assert pair.client.next_event() == ConnectionClosed()


def test_a_complete_line_before_end_of_stream_is_still_read() -> None:
    pair = Pair()
    pair.server.receive_data(b"NOOP\r\n")
    pair.server.receive_data(b"")
    assert pair.server.next_event() == Noop()


def test_multi_line_replies_byte_by_byte() -> None:
    pair = pair_in(State.AUTHENTICATED)
    pair.client.send(ListMessages())
    entries = tuple((str(uuid.UUID(int=i, version=4)), 17520 + i) for i in range(3))
    data = format_reply(Listing(entries))
    events: list[Event] = []
    for i in range(len(data)):
        pair.client.receive_data(data[i : i + 1])
        events.append(pair.client.next_event())
    assert events[:-1] == [NEED_DATA] * (len(data) - 1)
    assert events[-1] == Listing(entries)


def test_capabilities_and_send_ready_update_the_client_payload_limit() -> None:
    pair = Pair()
    pair.command(Capa())
    pair.reply(Capabilities(("rune/1",), "example.org", (), 1234, 4096, SERVER_ID.public))
    assert pair.client.max_payload == 1234
    login_pair = pair_in(State.AUTHENTICATED)
    login_pair.command(Send(BOB))
    login_pair.reply(SendReady(777, BOB_ID.public, SERVER_ID.public))
    assert login_pair.client.max_payload == 777


# --- malformed lines on a server -----------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"NOOP\rX\r\n",  # bare CR
        b"NOOP\r\r\n",
        b"LOGIN \xffalice@example.org\r\n",  # invalid UTF-8
        b"\xed\xa0\x80\r\n",  # an encoded surrogate is not UTF-8
        b"LOGIN  alice@example.org\r\n",  # double space
        b"LOGIN alice@example.org \r\n",
        b"NOOP\x00\r\n",
        b"\r\n",
        b"WHAT\r\n",
    ],
)
def test_malformed_lines_get_400_and_the_session_goes_on(line: bytes) -> None:
    pair = Pair()
    pair.server.receive_data(line + b"NOOP\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.status == 400 and not info.value.fatal
    pair.server.send(ErrorReply(400, "syntax error"))
    assert pair.server.next_event() == Noop()
    pair.check(State.IDLE)


def _feed_oversized(conn: Connection, total: int, chunk_size: int, limit: int) -> None:
    chunk = b"A" * chunk_size
    fed = 0
    while fed < total:
        conn.receive_data(chunk)
        fed += chunk_size
        assert conn.buffered <= limit + chunk_size
        assert conn.next_event() is NEED_DATA
        assert conn.buffered <= limit + 1


def test_oversized_line_is_dropped_as_it_arrives_and_answered_414() -> None:
    pair = Pair()
    _feed_oversized(pair.server, 10 * 1024 * 1024, 64 * 1024, MAX_LINE)
    pair.server.receive_data(b"\r\nNOOP\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.status == status.LINE_TOO_LONG and not info.value.fatal
    pair.client.send(Noop())  # the client had sent something; it reads the 414 for it
    pair.client.receive_data(pair.server.send(ErrorReply(414, "line too long")))
    assert pair.client.next_event() == ErrorReply(414, "line too long")
    assert pair.server.next_event() == Noop()
    assert pair.server.buffered == 0


def test_oversized_message_line_is_answered_413() -> None:
    pair = pair_in(State.SENDING, max_payload=1024)
    limit = message_line_limit(1024)
    _feed_oversized(pair.server, 1024 * 1024, 4096, limit)
    pair.server.receive_data(b"\nNOOP\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.status == status.PAYLOAD_TOO_LARGE and not info.value.fatal
    pair.server.send(ErrorReply(413, "payload too large"))
    assert pair.server.state is State.AUTHENTICATED
    assert pair.server.next_event() == Noop()


def test_a_message_line_can_be_longer_than_max_line_but_not_than_the_payload() -> None:
    pair = pair_in(State.SENDING, max_line=512, max_payload=2048)
    assert pair.command(Message(ALICE, bytes(2048))) == Message(ALICE, bytes(2048))
    pair.reply(Roger())
    pair.check(State.AUTHENTICATED)


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_line_of_exactly_max_line_bytes_is_accepted_however_it_arrives(ending: bytes) -> None:
    line = b"LOOKUP " + b"a" * 50 + b"@" + b"b" * 20
    whole = pair_in(State.AUTHENTICATED, max_line=len(line))
    whole.server.receive_data(line + ending)
    expected = whole.server.next_event()
    assert isinstance(expected, Lookup)
    split = pair_in(State.AUTHENTICATED, max_line=len(line))
    got: Event = NEED_DATA
    for byte in line + ending:
        split.server.receive_data(bytes([byte]))
        got = split.server.next_event()
    assert got == expected
    over = pair_in(State.AUTHENTICATED, max_line=len(line) - 1)
    over.server.receive_data(line + ending)
    with pytest.raises(RemoteProtocolError) as info:
        over.server.next_event()
    assert info.value.status == status.LINE_TOO_LONG


# --- fuzz: arbitrary bytes give events or the two protocol errors, bounded buffers ----

KEY_TOKEN = ALICE_ID.public.token()
VALID_COMMAND_LINES = [
    format_command(c)[:-2]
    for c in (
        *SAMPLES.values(),
        Register(BOB, BOB_ID.public),
        Message(ALICE, bytes(40)),
        ChallengeAccepted(bytes(handshake.ANSWER_SIZE)),
    )
] + [b"CHALLENGE_ACCEPTED AAAA", b"capa", b"noop", b"quit"]


def canned_reply(command: Command) -> Reply:
    """A valid success reply to any command (the fuzz drives state forward with them)."""
    match command:
        case Capa():
            return Capabilities(("rune/1",), "example.org", ("free",), 100, 256, SERVER_ID.public)
        case Register() | RegisterInvitation():
            return Challenge(b"challenge", SERVER_ID.public)
        case ChallengeAccepted():
            return Registered(ALICE)
        case Login():
            return LoginNonce(b"nonce")
        case Proof():
            return Authenticated(ALICE)
        case Send():
            return SendReady(100, BOB_ID.public, SERVER_ID.public)
        case Message():
            return Roger()
        case ListMessages():
            return Listing(((MID, 1),))
        case Retrieve():
            return Retrieved(MID, b"blob")
        case Delete():
            return Deleted(MID)
        case Lookup():
            return KeyFound(BOB, BOB_ID.public)
        case Noop():
            return Ok()
        case Quit():
            return Bye()
        case Wait():
            return NewMail()
    raise AssertionError(command)


ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"\r\r\n"])


def _mutate(line: bytes, index: int, value: int) -> bytes:
    if not line:
        return bytes([value])
    index %= len(line)
    return line[:index] + bytes([value]) + line[index + 1 :]


@st.composite
def streams(
    draw: st.DrawFn, valid_lines: list[bytes], max_line: int, openings: list[bytes]
) -> bytes:
    """An opening that drives the state forward, then valid lines, mutated lines,
    garbage and text in any order, plus at most one line near the length limit."""
    valid = st.sampled_from(valid_lines)
    piece = st.one_of(
        valid.map(lambda line: line + b"\r\n"),
        valid.map(lambda line: line + b"\r\n"),
        st.tuples(valid, ENDINGS).map(b"".join),
        st.tuples(valid, st.integers(0, 10_000), st.integers(0, 255), ENDINGS).map(
            lambda t: _mutate(t[0], t[1], t[2]) + t[3]
        ),
        st.binary(max_size=80),
        st.text(max_size=30).map(lambda t: t.encode("utf-8") + b"\r\n"),
    )
    pieces = [draw(st.sampled_from(openings)), *draw(st.lists(piece, max_size=10))]
    if draw(st.booleans()):
        size = max_line + draw(st.sampled_from([-1, 0, 0, 0, 1, 2]))
        ending = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b""]))
        long_line = b"\nNOOP" + b"x" * (size - 4) + ending  # on a line of its own
        pieces.insert(draw(st.integers(0, len(pieces))), long_line)
    return b"".join(pieces)


SERVER_OPENINGS = [
    b"",
    b"LOGIN alice@example.org\r\nPROOF AAAA\r\n",
    b"LOGIN alice@example.org\r\nPROOF AAAA\r\nSEND bob@example.org\r\n",
    b"LOGIN alice@example.org\r\nPROOF AAAA\r\nSEND bob@example.org\r\nMESSAGE alice@example.org "
    + b"A" * 120
    + b"\r\n",
    b"REGISTER alice@example.org " + ALICE_ID.public.token().encode() + b"\r\n",
]


def _chunkings(data: bytes, cuts: list[int]) -> Iterator[list[bytes]]:
    yield [data] if data else []
    yield [data[i : i + 1] for i in range(len(data))]
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = zip([0, *points], [*points, len(data)], strict=True)
    yield [c for c in (data[a:b] for a, b in bounds) if c]


def run_server(
    chunks: Iterable[bytes], max_line: int, max_payload: int, answers: list[bool]
) -> list[object]:
    """Feed a greeted server; answer every command; return what happened, in order."""
    conn = Connection(Role.SERVER, max_line=max_line, max_payload=max_payload)
    conn.send(GREETING)
    answer = iter(answers)
    log: list[object] = []
    for chunk in chunks:
        if conn.state is State.CLOSED:
            break
        conn.receive_data(chunk)
        assert conn.buffered <= max_line + 1 + len(chunk)
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                log.append(("remote error", exc.status, exc.fatal))
                if exc.fatal:
                    return log
                conn.send(ErrorReply(exc.status, "error"))
                log.append(conn.state)
                continue
            except LocalProtocolError as exc:  # allowed, but never expected here
                log.append(("local error", str(exc)))
                return log
            if event is NEED_DATA:
                break
            if isinstance(event, ConnectionClosed):
                log.append(event)
                return log
            assert event is not PAUSED  # every command is answered at once below
            if event is DISCARDED:  # the line behind a refused bound SEND (§9.9)
                log.append(event)
                conn.send(ErrorReply(402, "no send in progress; message discarded"))
                log.append(conn.state)
                continue
            assert isinstance(event, Command), event
            log.append(event)
            conn.send(canned_reply(event) if next(answer, True) else ErrorReply(451, "later"))
            log.append(conn.state)
        assert conn.buffered <= max_line + len(chunk)
        if conn.state is not State.CLOSED:
            assert conn.buffered <= max_line + 1
    if conn.state is not State.CLOSED:
        conn.receive_data(b"")
        assert conn.next_event() == ConnectionClosed()
    return log


SERVER_LIMITS = st.sampled_from([(256, 100), (4096, 2048)])  # message_line_limit <= max_line
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    data=st.data(),
    limits=SERVER_LIMITS,
    answers=st.lists(st.booleans(), max_size=12),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_server_fuzz_whole_and_byte_at_a_time(
    data: st.DataObject, limits: tuple[int, int], answers: list[bool], cuts: list[int]
) -> None:
    max_line, max_payload = limits
    assert message_line_limit(max_payload) <= max_line
    stream = data.draw(streams(VALID_COMMAND_LINES, max_line, SERVER_OPENINGS))
    results = [run_server(c, max_line, max_payload, answers) for c in _chunkings(stream, cuts)]
    assert results[0] == results[1] == results[2]


@FUZZ
@given(stream=st.binary(max_size=2000), limits=SERVER_LIMITS)
def test_server_fuzz_random_bytes(stream: bytes, limits: tuple[int, int]) -> None:
    max_line, max_payload = limits
    whole = run_server([stream] if stream else [], max_line, max_payload, [])
    bytewise = run_server(
        (stream[i : i + 1] for i in range(len(stream))), max_line, max_payload, []
    )
    assert whole == bytewise


CLIENT_COMMANDS = [
    (State.IDLE, Capa()),
    (State.IDLE, Register(ALICE, ALICE_ID.public)),
    (State.AWAIT_ANSWER, ChallengeAccepted(b"answer")),
    (State.IDLE, Login(ALICE)),
    (State.AWAIT_PROOF, Proof(b"proof")),
    (State.AUTHENTICATED, Send(BOB)),
    (State.SENDING, Message(ALICE, b"payload")),
    (State.AUTHENTICATED, ListMessages()),
    (State.AUTHENTICATED, Retrieve(MID)),
    (State.AUTHENTICATED, Delete(MID)),
    (State.AUTHENTICATED, Lookup(BOB)),
    (State.IDLE, Noop()),
    (State.IDLE, Quit()),
]
VALID_REPLY_LINES = [
    line
    for reply in (
        *(canned_reply(c) for _, c in CLIENT_COMMANDS),
        Capabilities(("rune/1",), "example.org", (), 10**15, 10**15, SERVER_ID.public),
        Listing(()),
        ErrorReply(404, "not found"),
        ErrorReply(421, "bye"),
        ErrorReply(500, ""),
        GREETING,
    )
    for line in format_reply(reply).split(b"\r\n")
    if line
] + [b".", b"VERSIONS rune/1", f"{MID} 12".encode(), b"200", b"999 what"]
CLIENT_MAX_PAYLOAD = 1024


def client_in(state: State, command: Command) -> Connection:
    client = Connection(Role.CLIENT, max_payload=CLIENT_MAX_PAYLOAD)
    client.receive_data(format_reply(GREETING))
    assert client.next_event() == GREETING
    for earlier, reply in _PRELUDE[state]:
        client.send(earlier)
        client.receive_data(format_reply(reply))
        assert client.next_event() == reply
    client.max_payload = CLIENT_MAX_PAYLOAD  # SendReady in the prelude raised it
    client.send(command)
    return client


def run_client(state: State, command: Command, chunks: Iterable[bytes]) -> list[object]:
    client = client_in(state, command)
    limit = max(client.max_line, 16 * 1024)
    if isinstance(command, Retrieve):
        limit = max(limit, message_line_limit(CLIENT_MAX_PAYLOAD + 64 * 1024))
    log: list[object] = []
    for chunk in chunks:
        client.receive_data(chunk)
        assert client.buffered <= limit + 1 + len(chunk)
        while True:
            try:
                event = client.next_event()
            except RemoteProtocolError as exc:
                log.append(("remote error", exc.fatal))
                if exc.fatal:
                    return log
                continue
            except LocalProtocolError as exc:
                log.append(("local error", str(exc)))
                return log
            if event is NEED_DATA:
                break
            log.append((event, client.state))
            if isinstance(event, ConnectionClosed):
                return log
        assert client.buffered <= limit + 1 + len(chunk)
    return log


@FUZZ
@given(
    data=st.data(),
    which=st.sampled_from(CLIENT_COMMANDS),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_client_fuzz_whole_and_byte_at_a_time(
    data: st.DataObject, which: tuple[State, Command], cuts: list[int]
) -> None:
    state, command = which
    openings = [b"", format_reply(canned_reply(command)), format_reply(ErrorReply(404, "no"))]
    stream = data.draw(streams(VALID_REPLY_LINES, 16 * 1024, openings))
    results = [run_client(state, command, c) for c in _chunkings(stream, cuts)]
    assert results[0] == results[1] == results[2]


@FUZZ
@given(stream=st.binary(max_size=2000), which=st.sampled_from(CLIENT_COMMANDS))
def test_client_fuzz_random_bytes(stream: bytes, which: tuple[State, Command]) -> None:
    state, command = which
    whole = run_client(state, command, [stream] if stream else [])
    bytewise = run_client(state, command, (stream[i : i + 1] for i in range(len(stream))))
    assert whole == bytewise


def test_client_oversized_reply_is_dropped_without_buffering_it() -> None:
    client = client_in(State.IDLE, Noop())
    chunk = b"2" * 65536
    for _ in range(40):
        client.receive_data(chunk)
        assert client.next_event() is NEED_DATA
        assert client.buffered <= 16 * 1024 + 1
    client.receive_data(b"\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        client.next_event()
    assert info.value.fatal


def test_greeting_then_valid_replies_fed_in_one_chunk() -> None:
    client = Connection(Role.CLIENT)
    client.receive_data(format_reply(GREETING))
    assert client.next_event() == GREETING
    client.send(Noop())
    client.receive_data(b"200 OK\r\n")
    assert client.next_event() == Ok()
    client.send(Login(ALICE))
    client.receive_data(b"403 address not valid on this server\r\n")
    assert client.next_event() == ErrorReply(403, "address not valid on this server")
    assert client.state is State.IDLE
