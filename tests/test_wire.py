"""The line codec: the line reader, command and reply readers and writers.

Table-driven cases pin the exact bytes; Hypothesis checks that every command and
every reply survives format → parse unchanged (commands through ``parse_command``,
replies through a client ``Connection`` that sent the matching command).
"""

from __future__ import annotations

import hashlib
import string
import uuid
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rune_proto.address import Address, parse_address
from rune_proto.connection import Connection, Role, State
from rune_proto.encoding import b64encode
from rune_proto.errors import LocalProtocolError, RemoteProtocolError
from rune_proto.events import (
    NEED_DATA,
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
    Done,
    ErrorReply,
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
    WaitOver,
)
from rune_proto.keys import Identity, PublicKey
from rune_proto.wire import (
    LineBuffer,
    TooLong,
    expects_body,
    format_command,
    format_reply,
    message_line_limit,
    parse_command,
    parse_greeting,
    parse_reply,
    split_reply,
)

KEYS = [
    Identity(b"".join(hashlib.sha256(f"wire {n} {i}".encode()).digest() for i in range(4))).public
    for n in range(3)
]
KEY, KEY2 = KEYS[0], KEYS[1]
ALICE = parse_address("alice@example.org")
BOB = parse_address("bob@example.org")
MID = "5b0e4a52-8b1e-4f37-9c55-0d6a4e2f1c3b"
MAX_PAYLOAD = 4096


def parse(line: str | bytes, max_payload: int = MAX_PAYLOAD) -> Command:
    raw = line.encode("utf-8") if isinstance(line, str) else line
    return parse_command(raw, max_payload=max_payload)


# --- LineBuffer ---------------------------------------------------------------


TOO_LONG = "too long"


def drain(buffer: LineBuffer, limit: int) -> list[bytes | str]:
    """Lines as bytes, TooLong as TOO_LONG, until the buffer needs more data."""
    out: list[bytes | str] = []
    while (line := buffer.next_line(limit)) is not None:
        out.append(TOO_LONG if isinstance(line, TooLong) else line)
    return out


@pytest.mark.parametrize(
    ("chunks", "limit", "expected", "left"),
    [
        ([b"NOOP\r\n"], 10, [b"NOOP"], 0),
        ([b"NOOP\n"], 10, [b"NOOP"], 0),
        ([b"A\r\nB\nC\r\n"], 10, [b"A", b"B", b"C"], 0),
        ([b"NO", b"OP", b"\r", b"\n"], 10, [b"NOOP"], 0),
        ([b"\r\n"], 10, [b""], 0),
        ([b"\n\n"], 10, [b"", b""], 0),
        ([b"partial"], 10, [], 7),
        ([b"A\r\npart"], 10, [b"A"], 4),
        ([b"A\r\r\n"], 10, [b"A\r"], 0),  # only one CR is the line ending
        ([b"A\rB\n"], 10, [b"A\rB"], 0),  # a bare CR stays for the parser to refuse
        ([b"x" * 10 + b"\r\n"], 10, [b"x" * 10], 0),
        ([b"x" * 11 + b"\r\n"], 10, [TOO_LONG], 0),
        ([b"x" * 11 + b"\n"], 10, [TOO_LONG], 0),
        ([b"x" * 5, b"x" * 6, b"\r\nOK\n"], 10, [TOO_LONG, b"OK"], 0),
        ([b"x" * 30, b"x" * 30, b"x\nOK\n"], 10, [TOO_LONG, b"OK"], 0),
        ([b"x" * 10, b"\r", b"\n"], 10, [b"x" * 10], 0),  # CR of a full line arrives alone
        ([b"x" * 10 + b"\r", b"\n"], 10, [b"x" * 10], 0),
        ([b"x" * 11, b"\r\n"], 10, [TOO_LONG], 0),
    ],
)
def test_line_buffer_table(
    chunks: list[bytes], limit: int, expected: list[bytes | str], left: int
) -> None:
    buffer = LineBuffer()
    got: list[bytes | str] = []
    for chunk in chunks:
        buffer.feed(chunk)
        got += drain(buffer, limit)
    assert got == expected
    assert len(buffer) == left


@settings(max_examples=200)
@given(
    data=st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"\r\n")),
    limit=st.integers(1, 40),
    cuts=st.lists(st.integers(0, 300), max_size=10),
)
def test_line_buffer_result_does_not_depend_on_chunking(
    data: bytes, limit: int, cuts: list[int]
) -> None:
    whole = LineBuffer()
    whole.feed(data)
    expected = drain(whole, limit)
    for chunks in (
        [data[i : i + 1] for i in range(len(data))],
        [data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True)],
    ):
        buffer = LineBuffer()
        got: list[bytes | str] = []
        for chunk in chunks:
            buffer.feed(chunk)
            got += drain(buffer, limit)
            assert len(buffer) <= limit + 1
        assert got == expected


def test_line_buffer_drops_an_oversized_line_as_it_arrives() -> None:
    buffer = LineBuffer()
    chunk = b"y" * 65536
    for _ in range(32):
        buffer.feed(chunk)
        assert buffer.next_line(1000) is None
        assert len(buffer) == 0
    buffer.feed(b"tail\r\nNEXT\r\n")
    first = buffer.next_line(1000)
    assert isinstance(first, TooLong)
    assert first.length in (32 * 65536 + 4, 32 * 65536 + 5)  # with or without the CR
    assert buffer.next_line(1000) == b"NEXT"


def test_too_long_reports_the_length_of_a_line_read_whole() -> None:
    buffer = LineBuffer()
    buffer.feed(b"x" * 11 + b"\r\n")
    line = buffer.next_line(10)
    assert isinstance(line, TooLong) and line.length == 11


# --- commands: reading ---------------------------------------------------------

TOKEN = KEY.token()
INVITE = "AbCdEfGhIjKlMnOp_-12"
GOOD_COMMANDS: list[tuple[str, Command]] = [
    ("CAPA", Capa()),
    ("capa", Capa()),
    ("Noop", Noop()),
    ("LIST", ListMessages()),
    ("QUIT", Quit()),
    (f"REGISTER Alice@Example.org {TOKEN}", Register(ALICE, KEY)),
    (
        f"REGISTER_INVITATION alice@example.org {INVITE} {TOKEN}",
        RegisterInvitation(ALICE, INVITE, KEY),
    ),
    ("CHALLANGE_ACCEPTED " + b64encode(b"answer"), ChallengeAccepted(b"answer")),
    ("CHALLENGE_ACCEPTED " + b64encode(b"answer"), ChallengeAccepted(b"answer")),
    ("LOGIN alice@example.org", Login(ALICE)),
    ("PROOF " + b64encode(bytes(64)), Proof(bytes(64))),
    ("SEND BOB@example.org", Send(BOB)),
    ("SEND bob@example.org " + b64encode(bytes(range(32))), BoundSend(BOB, bytes(range(32)))),
    (
        "MESSAGE alice@example.org " + b64encode(b"\x00payload\xff"),
        Message(ALICE, b"\x00payload\xff"),
    ),
    (
        "MESSAGE alice@example.org " + b64encode(bytes(MAX_PAYLOAD)),
        Message(ALICE, bytes(MAX_PAYLOAD)),
    ),
    (f"RETRIEVE {MID}", Retrieve(MID)),
    (f"DELETE {MID}", Delete(MID)),
    ("LOOKUP bob@example.org", Lookup(BOB)),
]


@pytest.mark.parametrize(("line", "event"), GOOD_COMMANDS, ids=[c[0][:30] for c in GOOD_COMMANDS])
def test_parse_command_table(line: str, event: Command) -> None:
    assert parse(line) == event


BAD_COMMANDS: list[tuple[bytes, int]] = [
    (b"", 400),
    (b"HELO", 400),
    (b"NOOP x", 400),
    (b" NOOP", 400),
    (b"NOOP\rX", 400),  # bare CR inside
    (b"NOOP\r", 400),  # a second CR left over from CR CR LF
    (b"LOGIN\x00alice@example.org", 400),
    (b"LOGIN alice@example.org\x00", 400),
    (b"LOGIN \xffalice@example.org", 400),  # invalid UTF-8
    (b"\xc3\x28", 400),
    (b"LOGIN  alice@example.org", 400),  # double space
    (b"LOGIN alice@example.org ", 400),  # trailing space
    (b"LOGIN", 400),
    (b"LOGIN alice@example.org bob@example.org", 400),
    (b"LOGIN alice", 403),
    (b"LOGIN al@example.org", 403),
    (b"SEND bob@exa mple.org", 400),  # two tokens: a bound SEND whose fingerprint is bad
    (("SEND bob@example.org " + b64encode(bytes(31))).encode(), 400),  # not a SHA-256
    (("SEND bob@example.org " + b64encode(bytes(33))).encode(), 400),
    (("SEND bob " + b64encode(bytes(32))).encode(), 403),
    (("SEND bob@example.org " + b64encode(bytes(32)) + " x").encode(), 400),
    (b"LOOKUP b\xc3\xb6b@example.org", 403),
    (b"REGISTER alice@example.org", 400),
    (b"REGISTER alice@example.org rune1pk.AAAA", 400),
    (("REGISTER alice@example.org " + TOKEN[:-1]).encode(), 400),
    (("REGISTER alice@example.org rune2pk." + TOKEN[8:]).encode(), 400),
    (("REGISTER ab@example.org " + TOKEN).encode(), 403),
    (("REGISTER_INVITATION alice@example.org short " + TOKEN).encode(), 407),
    (("REGISTER_INVITATION alice@example.org " + "a" * 129 + " " + TOKEN).encode(), 407),
    (("REGISTER_INVITATION alice@example.org inv+itation/token== " + TOKEN).encode(), 407),
    (b"REGISTER_INVITATION alice@example.org " + INVITE.encode(), 400),
    (b"CHALLANGE_ACCEPTED", 400),
    (b"CHALLANGE_ACCEPTED a+b/", 410),
    (b"CHALLANGE_ACCEPTED YQ==", 410),
    (("CHALLANGE_ACCEPTED " + b64encode(bytes(4097))).encode(), 410),
    (("PROOF " + b64encode(bytes(129))).encode(), 400),
    (b"PROOF !!", 400),
    (("MESSAGE alice@example.org " + b64encode(bytes(MAX_PAYLOAD + 1))).encode(), 413),
    (b"MESSAGE alice@example.org", 400),
    (b"MESSAGE alice@example.org a=", 400),
    (b"MESSAGE alice@example.org " + b"A" * 100_000, 413),
    (b"RETRIEVE 1", 400),
    (b"RETRIEVE " + MID.upper().encode(), 400),
    (b"RETRIEVE " + MID.replace("-", "").encode(), 400),
    (b"RETRIEVE {" + MID.encode() + b"}", 400),
    (b"RETRIEVE " + str(uuid.uuid1()).encode(), 400),  # not version 4
    (b"DELETE urn:uuid:" + MID.encode(), 400),
    (b"RETRIEVE", 400),
]


@pytest.mark.parametrize(
    ("line", "code"), BAD_COMMANDS, ids=[repr(c[0][:40]) for c in BAD_COMMANDS]
)
def test_bad_command_lines_are_remote_errors_with_a_status(line: bytes, code: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse(line)
    assert info.value.status == code
    assert not info.value.fatal
    assert str(info.value)


def test_unknown_verb_is_named_but_truncated() -> None:
    with pytest.raises(RemoteProtocolError, match="unknown command 'FROB'"):
        parse("FROB x")
    with pytest.raises(RemoteProtocolError) as info:
        parse("X" * 5000)
    assert len(str(info.value)) < 100


# --- commands: writing ----------------------------------------------------------

FORMATTED_COMMANDS: list[tuple[Command, bytes]] = [
    (Capa(), b"CAPA\r\n"),
    (ListMessages(), b"LIST\r\n"),
    (Noop(), b"NOOP\r\n"),
    (Quit(), b"QUIT\r\n"),
    (Register(ALICE, KEY), f"REGISTER alice@example.org {TOKEN}\r\n".encode()),
    (
        RegisterInvitation(ALICE, INVITE, KEY),
        f"REGISTER_INVITATION alice@example.org {INVITE} {TOKEN}\r\n".encode(),
    ),
    (ChallengeAccepted(b"\xff\xfe"), b"CHALLANGE_ACCEPTED __4\r\n"),
    (Login(ALICE), b"LOGIN alice@example.org\r\n"),
    (Proof(b"\x00\x01"), b"PROOF AAE\r\n"),
    (Send(BOB), b"SEND bob@example.org\r\n"),
    (Message(ALICE, b"hi"), b"MESSAGE alice@example.org aGk\r\n"),
    (Retrieve(MID), f"RETRIEVE {MID}\r\n".encode()),
    (Delete(MID), f"DELETE {MID}\r\n".encode()),
    (Lookup(BOB), b"LOOKUP bob@example.org\r\n"),
]


@pytest.mark.parametrize(
    ("event", "line"), FORMATTED_COMMANDS, ids=[type(c[0]).__name__ for c in FORMATTED_COMMANDS]
)
def test_format_command_table(event: Command, line: bytes) -> None:
    assert format_command(event) == line
    assert parse(line[:-2]) == event


def test_format_command_refuses_non_commands() -> None:
    with pytest.raises(LocalProtocolError):
        format_command(Ok())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: RegisterInvitation(ALICE, "short", KEY),
        lambda: RegisterInvitation(ALICE, "has space in it!!", KEY),
        lambda: Retrieve("not-a-uuid"),
        lambda: Delete(MID.upper()),
        lambda: Retrieve(str(uuid.uuid1())),
    ],
)
def test_invalid_command_events_cannot_be_built(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


# --- replies ----------------------------------------------------------------------

CAPS = Capabilities(("rune/1",), "example.org", ("free", "invite"), 1024, 4096, KEY)
FORMATTED_REPLIES: list[tuple[Reply, bytes]] = [
    (Greeting(("rune/1",), "Welcome to Rune"), b"HOWDY rune/1 Welcome to Rune\r\n"),
    (Greeting(("rune/1", "rune/2")), b"HOWDY rune/1 rune/2\r\n"),
    (
        CAPS,
        (
            "211 capabilities follow\r\nVERSIONS rune/1\r\nDOMAIN example.org\r\n"
            "REGISTRATION free invite\r\nMAX_PAYLOAD 1024\r\nMAX_LINE 4096\r\n"
            f"SERVER_KEY {TOKEN}\r\n.\r\n"
        ).encode(),
    ),
    (
        Capabilities(("rune/1",), "example.org", (), 1, 1, KEY),
        (
            "211 capabilities follow\r\nVERSIONS rune/1\r\nDOMAIN example.org\r\n"
            f"REGISTRATION closed\r\nMAX_PAYLOAD 1\r\nMAX_LINE 1\r\nSERVER_KEY {TOKEN}\r\n.\r\n"
        ).encode(),
    ),
    (Challenge(b"\x00\x01", KEY2), f"205 AAE {KEY2.token()}\r\n".encode()),
    (Registered(ALICE), b"210 registered alice@example.org\r\n"),
    (LoginNonce(b"\xfb\xff"), b"220 -_8\r\n"),
    (Authenticated(ALICE), b"230 authenticated alice@example.org\r\n"),
    (SendReady(1024, KEY, KEY2), f"201 1024 {TOKEN} {KEY2.token()}\r\n".encode()),
    (Roger(), b"202 ROGER\r\n"),
    (Listing(()), b"240 0 messages\r\n.\r\n"),
    (Listing(((MID, 17520),)), f"240 1 messages\r\n{MID} 17520\r\n.\r\n".encode()),
    (Retrieved(MID, b"blob"), f"250 {MID} YmxvYg\r\n".encode()),
    (Deleted(MID), f"260 deleted {MID}\r\n".encode()),
    (KeyFound(BOB, KEY), f"270 bob@example.org {TOKEN}\r\n".encode()),
    (Ok(), b"200 OK\r\n"),
    (Bye(), b"221 bye\r\n"),
    (ErrorReply(401, "log in first"), b"401 log in first\r\n"),
    (ErrorReply(500, ""), b"500\r\n"),
]


@pytest.mark.parametrize(
    ("event", "data"), FORMATTED_REPLIES, ids=[type(r[0]).__name__ for r in FORMATTED_REPLIES]
)
def test_format_reply_table(event: Reply, data: bytes) -> None:
    assert format_reply(event) == data


def test_format_reply_refuses_non_replies() -> None:
    with pytest.raises(LocalProtocolError):
        format_reply(Noop())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"HOWDY rune/1 Welcome to Rune", Greeting(("rune/1",), "Welcome to Rune")),
        (b"HOWDY rune/1", Greeting(("rune/1",))),
        (b"HOWDY rune/1 rune/2 hi", Greeting(("rune/1", "rune/2"), "hi")),
        (b"HOWDY Welcome to Rune", Greeting(("rune/1",), "Welcome to Rune")),  # the seed's form
        (b"HOWDY", Greeting(("rune/1",))),
    ],
)
def test_parse_greeting_table(line: bytes, expected: Greeting) -> None:
    assert parse_greeting(line) == expected


@pytest.mark.parametrize(
    "line", [b"HELLO rune/1", b"howdy rune/1", b"220 HOWDY", b"", b" HOWDY rune/1"]
)
def test_a_greeting_that_is_not_howdy_is_fatal(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_greeting(line)
    assert info.value.fatal


@pytest.mark.parametrize("line", [b"HOWDY rune/x hi", b"HOWDY rune/12345 hi", b"HOWDY rune/"])
def test_a_greeting_with_a_malformed_version_is_refused(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_greeting(line)


@pytest.mark.parametrize(
    ("line", "code", "rest"),
    [
        (b"200 OK", 200, "OK"),
        (b"200", 200, ""),
        (b"599 x y", 599, "x y"),
        (b"400  two spaces", 400, " two spaces"),
    ],
)
def test_split_reply_table(line: bytes, code: int, rest: str) -> None:
    assert split_reply(line) == (code, rest)


@pytest.mark.parametrize(
    "line", [b"", b"OK", b"20 OK", b"2000 OK", b"600 no", b"100 no", b"200OK", b"+OK", b" 200 OK"]
)
def test_split_reply_refuses_non_reply_lines(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        split_reply(line)
    assert info.value.fatal


def test_parse_reply_refuses_an_unexpected_code() -> None:
    with pytest.raises(RemoteProtocolError, match="expected 200") as info:
        parse_reply(Noop(), 202, "ROGER")
    assert info.value.fatal


@pytest.mark.parametrize(
    ("command", "code", "rest"),
    [
        (Login(ALICE), 220, "!!"),
        (Login(ALICE), 220, b64encode(bytes(65))),
        (Login(ALICE), 220, "a b"),
        (Proof(b"x"), 230, "authenticated al"),
        (Proof(b"x"), 230, "alice@example.org"),
        (Send(BOB), 201, f"0 {TOKEN} {TOKEN}"),
        (Send(BOB), 201, f"-1 {TOKEN} {TOKEN}"),
        (Send(BOB), 201, f"12 {TOKEN}"),
        (Send(BOB), 201, f"12 {TOKEN} rune1pk.AAAA"),
        (Retrieve(MID), 250, f"{MID}"),
        (Retrieve(MID), 250, f"{MID.upper()} YmxvYg"),
        (Retrieve(MID), 250, f"{MID} Ym=="),
        (Delete(MID), 260, "deleted nope"),
        (Lookup(BOB), 270, "bob@example.org"),
        (Register(ALICE, KEY), 205, f"!! {TOKEN}"),
        (Register(ALICE, KEY), 205, b64encode(bytes(4097)) + f" {TOKEN}"),
    ],
)
def test_malformed_success_replies_are_fatal(command: Command, code: int, rest: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_reply(command, code, rest)
    assert info.value.fatal


@pytest.mark.parametrize(
    "body",
    [
        [],
        ["VERSIONS rune/1", "DOMAIN example.org", "REGISTRATION free", "MAX_PAYLOAD 1"],
        [
            "VERSIONS rune/1",
            "DOMAIN a b",
            "REGISTRATION free",
            "MAX_PAYLOAD 1",
            "MAX_LINE 1",
            f"SERVER_KEY {TOKEN}",
        ],
        [
            "VERSIONS rune/1",
            "REGISTRATION free",
            "MAX_PAYLOAD 1",
            "MAX_LINE 1",
            f"SERVER_KEY {TOKEN}",
        ],
        [
            "VERSIONS rune/1",
            "DOMAIN x",
            "REGISTRATION free",
            "MAX_PAYLOAD 1",
            "MAX_LINE 1 2",
            f"SERVER_KEY {TOKEN}",
        ],
        [
            "VERSIONS rune/1",
            "DOMAIN x",
            "REGISTRATION free",
            "MAX_PAYLOAD 0",
            "MAX_LINE 1",
            f"SERVER_KEY {TOKEN}",
        ],
        [
            "VERSIONS rune/1",
            "DOMAIN x",
            "REGISTRATION free",
            "MAX_PAYLOAD x",
            "MAX_LINE 1",
            f"SERVER_KEY {TOKEN}",
        ],
        [
            "VERSIONS rune/1",
            "DOMAIN x",
            "REGISTRATION free",
            "MAX_PAYLOAD 1",
            "MAX_LINE -1",
            f"SERVER_KEY {TOKEN}",
        ],
        [
            "VERSIONS rune/1",
            "DOMAIN x",
            "REGISTRATION free",
            "MAX_PAYLOAD 1",
            "MAX_LINE 1",
            "SERVER_KEY nope",
        ],
    ],
)
def test_malformed_capabilities_are_fatal(body: list[str]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_reply(Capa(), 211, "capabilities follow", body)
    assert info.value.fatal


def test_capabilities_ignore_unknown_modes_versions_and_keys() -> None:
    """Forward compatible: what a later server adds is skipped, not fatal."""
    body = [
        "VERSIONS rune/1 one rune/2",
        "DOMAIN example.org",
        "REGISTRATION free smoke-signals",
        "MAX_PAYLOAD 10",
        "MAX_LINE 20",
        f"SERVER_KEY {TOKEN}",
        "FUTURE_THING yes",
    ]
    assert parse_reply(Capa(), 211, "capabilities follow", body) == Capabilities(
        ("rune/1", "rune/2"), "example.org", ("free",), 10, 20, KEY
    )


@pytest.mark.parametrize("body", [["nope 1"], [f"{MID}"], [f"{MID} -1"], [f"{MID}  1"]])
def test_malformed_listings_are_fatal(body: list[str]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_reply(ListMessages(), 240, "1 messages", body)
    assert info.value.fatal


def test_error_codes_always_parse_as_error_replies() -> None:
    for code in (400, 404, 412, 451, 500, 599):
        assert parse_reply(Noop(), code, "text") == ErrorReply(code, "text")


def test_only_capabilities_and_listings_have_bodies() -> None:
    assert expects_body(Capa(), 211)
    assert expects_body(ListMessages(), 240)
    assert not expects_body(Capa(), 240)
    assert not expects_body(ListMessages(), 211)
    assert not expects_body(Noop(), 200)
    assert not expects_body(Capa(), 400)


def test_message_line_limit_fits_the_largest_message_line() -> None:
    for payload in (1, 2, 3, 1000, MAX_PAYLOAD):
        line = format_command(Message(parse_address("u" * 50 + "@" + "d" * 50), bytes(payload)))
        assert len(line) <= message_line_limit(payload)
        assert len(line) >= message_line_limit(payload) - 4


@pytest.mark.parametrize(
    "build",
    [
        lambda: Greeting(()),
        lambda: Greeting(("rune/one",)),
        lambda: Greeting(("rune/1",), "line\r\nbreak"),
        lambda: Greeting(("rune/1",), "nul\0"),
        lambda: Greeting(("rune/1",), "lone surrogate \ud800"),
        lambda: Greeting(("rune/1",), "rune/2 is the first word"),
        lambda: Capabilities(("rune/1",), "example.org", ("open",), 1, 1, KEY),
        lambda: Capabilities(("rune/1",), "example.org", (), 0, 1, KEY),
        lambda: Capabilities(("rune/1",), "example.org", (), 1, 0, KEY),
        lambda: Capabilities(("rune/1",), "exa mple", (), 1, 1, KEY),
        lambda: Capabilities(("rune/1",), "", (), 1, 1, KEY),
        lambda: Capabilities(("rune/1",), "\udcff", (), 1, 1, KEY),
        lambda: Capabilities(("v1",), "example.org", (), 1, 1, KEY),
        lambda: SendReady(0, KEY, KEY),
        lambda: Listing((("x", 1),)),
        lambda: Listing(((MID, -1),)),
        lambda: Retrieved("x", b""),
        lambda: Deleted("x"),
        lambda: ErrorReply(399, "x"),
        lambda: ErrorReply(600, "x"),
        lambda: ErrorReply(400, "a\nb"),
        lambda: ErrorReply(400, "bad \udc80 byte"),
    ],
)
def test_invalid_reply_events_cannot_be_built(build: object) -> None:
    """Constructors validate, so an event that exists can always be written to the wire."""
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


# --- Hypothesis: every command and every reply round-trips -------------------------

ADDRESS_CHARS = string.ascii_lowercase + string.digits + ".-_"
addresses = st.builds(
    Address,
    st.text(ADDRESS_CHARS, min_size=3, max_size=50),
    st.text(ADDRESS_CHARS, min_size=3, max_size=50),
)
keys = st.sampled_from(KEYS)
message_ids = st.uuids(version=4).map(str)
invitations = st.text(string.ascii_letters + string.digits + "_-", min_size=16, max_size=128)
versions = st.integers(0, 9999).map(lambda n: f"rune/{n}")
line_text = st.text(
    st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)), max_size=60
)
sizes = st.integers(0, 10**18)
positive = st.integers(1, 10**18)

commands = st.one_of(
    st.just(Capa()),
    st.builds(Register, addresses, keys),
    st.builds(RegisterInvitation, addresses, invitations, keys),
    st.builds(ChallengeAccepted, st.binary(min_size=1, max_size=4096)),
    st.builds(Login, addresses),
    st.builds(Proof, st.binary(min_size=1, max_size=128)),
    st.builds(Send, addresses),
    st.builds(BoundSend, addresses, st.binary(min_size=32, max_size=32)),
    st.builds(Message, addresses, st.binary(min_size=1, max_size=MAX_PAYLOAD)),
    st.just(ListMessages()),
    st.builds(Retrieve, message_ids),
    st.builds(Delete, message_ids),
    st.builds(Lookup, addresses),
    st.just(Noop()),
    st.just(Quit()),
    st.just(Wait()),
    st.just(Done()),
)


@settings(max_examples=300)
@given(command=commands)
def test_every_command_round_trips(command: Command) -> None:
    line = format_command(command)
    assert line.endswith(b"\r\n") and line.count(b"\n") == 1
    assert parse_command(line[:-2], max_payload=MAX_PAYLOAD) == command
    # verbs are case-insensitive
    verb, _, rest = line[:-2].partition(b" ")
    assert parse_command(
        verb.lower() + (b" " + rest if rest else b""), max_payload=MAX_PAYLOAD
    ) == (command)


def test_every_command_type_is_covered_by_the_strategy() -> None:
    from rune_proto.events import COMMANDS

    seen: set[type[Command]] = set()

    @settings(max_examples=300, database=None)
    @given(command=commands)
    def collect(command: Command) -> None:
        seen.add(type(command))

    collect()
    assert seen == set(COMMANDS)


# The state each command needs and the replies that lead there.
_PRELUDE: dict[State, list[tuple[Command, Reply]]] = {
    State.IDLE: [],
    State.AWAIT_ANSWER: [(Register(ALICE, KEY), Challenge(b"c", KEY))],
    State.AWAIT_PROOF: [(Login(ALICE), LoginNonce(b"n"))],
    State.AUTHENTICATED: [(Login(ALICE), LoginNonce(b"n")), (Proof(b"p"), Authenticated(ALICE))],
    State.SENDING: [
        (Login(ALICE), LoginNonce(b"n")),
        (Proof(b"p"), Authenticated(ALICE)),
        (Send(BOB), SendReady(MAX_PAYLOAD, KEY, KEY2)),
    ],
}
NEEDS: dict[type[Command], State] = {
    Capa: State.IDLE,
    Register: State.IDLE,
    RegisterInvitation: State.IDLE,
    ChallengeAccepted: State.AWAIT_ANSWER,
    Login: State.IDLE,
    Proof: State.AWAIT_PROOF,
    Send: State.AUTHENTICATED,
    BoundSend: State.AUTHENTICATED,
    Message: State.SENDING,
    ListMessages: State.AUTHENTICATED,
    Retrieve: State.AUTHENTICATED,
    Delete: State.AUTHENTICATED,
    Lookup: State.AUTHENTICATED,
    Noop: State.IDLE,
    Quit: State.IDLE,
    Wait: State.AUTHENTICATED,
    Done: State.AUTHENTICATED,  # then WAIT, see client_after
}
SAMPLE_COMMAND: dict[type[Reply], Command] = {
    Capabilities: Capa(),
    Challenge: Register(ALICE, KEY),
    Registered: ChallengeAccepted(b"a"),
    LoginNonce: Login(ALICE),
    Authenticated: Proof(b"p"),
    SendReady: Send(BOB),
    Roger: Message(ALICE, b"m"),
    Listing: ListMessages(),
    Retrieved: Retrieve(MID),
    Deleted: Delete(MID),
    KeyFound: Lookup(BOB),
    Ok: Noop(),
    Bye: Quit(),
    NewMail: Wait(),
    WaitOver: Wait(),
}


def client_after(command: Command) -> Connection:
    """A client in the state ``command`` needs, which has just sent it."""
    client = Connection(Role.CLIENT)
    client.receive_data(b"HOWDY rune/1 hi\r\n")
    assert client.next_event() == Greeting(("rune/1",), "hi")
    for earlier, reply in _PRELUDE[NEEDS[type(command)]]:
        client.send(earlier)
        client.receive_data(format_reply(reply))
        assert client.next_event() == reply
    assert client.state is NEEDS[type(command)]
    if isinstance(command, Done):
        client.send(Wait())
    client.send(command)
    return client


replies = st.one_of(
    st.builds(
        Capabilities,
        st.lists(versions, max_size=3).map(tuple),
        line_text.filter(lambda t: t and " " not in t),
        st.lists(st.sampled_from(["free", "invite"]), max_size=2).map(tuple),
        positive,
        positive,
        keys,
        st.none() | positive,
        st.sampled_from([(), ("SEND",)]),
    ),
    st.builds(Challenge, st.binary(min_size=1, max_size=4096), keys),
    st.builds(Registered, addresses),
    st.builds(LoginNonce, st.binary(min_size=1, max_size=64)),
    st.builds(Authenticated, addresses),
    st.builds(SendReady, positive, keys, keys),
    st.just(Roger()),
    st.builds(Listing, st.lists(st.tuples(message_ids, sizes), max_size=5).map(tuple)),
    st.builds(Retrieved, message_ids, st.binary(min_size=1, max_size=3000)),
    st.builds(Deleted, message_ids),
    st.builds(KeyFound, addresses, keys),
    st.just(Ok()),
    st.just(Bye()),
    st.just(NewMail()),
    st.just(WaitOver()),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(reply=replies, byte_at_a_time=st.booleans())
def test_every_reply_round_trips_through_a_client(reply: Reply, byte_at_a_time: bool) -> None:
    client = client_after(SAMPLE_COMMAND[type(reply)])
    data = format_reply(reply)
    if byte_at_a_time:
        events = []
        for i in range(len(data)):
            client.receive_data(data[i : i + 1])
            events.append(client.next_event())
        assert all(e is NEED_DATA for e in events[:-1])
        assert events[-1] == reply
    else:
        client.receive_data(data)
        assert client.next_event() == reply
    assert client.buffered == 0


@settings(max_examples=200)
@given(command=commands, code=st.integers(400, 599), text=line_text)
def test_every_error_reply_round_trips_after_any_command(
    command: Command, code: int, text: str
) -> None:
    client = client_after(command)
    reply = ErrorReply(code, text)
    client.receive_data(format_reply(reply))
    assert client.next_event() == reply


@settings(max_examples=200)
@given(
    versions_=st.lists(versions, min_size=1, max_size=3).map(tuple),
    welcome=line_text.filter(lambda t: not t.split(" ")[0].startswith("rune/")),
)
def test_every_greeting_round_trips(versions_: tuple[str, ...], welcome: str) -> None:
    greeting = Greeting(versions_, welcome)
    client = Connection(Role.CLIENT)
    client.receive_data(format_reply(greeting))
    assert client.next_event() == greeting
    assert client.state is State.IDLE


def test_public_key_tokens_parse_inside_lines() -> None:
    line = format_command(Register(ALICE, KEY2))
    event = parse(line[:-2])
    assert isinstance(event, Register)
    assert isinstance(event.public_key, PublicKey)
    assert event.public_key.raw == KEY2.raw


# --- empty binary values cannot be built (they would write as a missing token) -----


@pytest.mark.parametrize(
    "build",
    [
        lambda: Proof(b""),
        lambda: ChallengeAccepted(b""),
        lambda: Message(ALICE, b""),
    ],
    ids=["proof", "challenge-accepted", "message"],
)
def test_empty_binary_values_are_refused(build: Callable[[], object]) -> None:
    with pytest.raises(LocalProtocolError, match="may not be empty"):
        build()
