"""Keys in a server's replies are parsed once per token (see wire_readers._reply_key).

The cache must give exactly what a fresh parse gives, never a key for another token,
never swallow a bad key, and never apply to what a server parses from clients.
"""

from __future__ import annotations

import hashlib

import pytest

from rune_proto.address import parse_address
from rune_proto.errors import RemoteProtocolError
from rune_proto.events import Register, Send, SendReady
from rune_proto.keys import Identity, PublicKey
from rune_proto.wire import parse_command, parse_reply

SEND = Send(parse_address("bob@x.example"))


def identity(name: str) -> Identity:
    return Identity(hashlib.sha512(name.encode()).digest() * 2)


ALICE, BOB, SERVER = identity("alice"), identity("bob"), identity("server")


def send_ready(receiver: PublicKey, server: PublicKey = SERVER.public) -> SendReady:
    reply = parse_reply(SEND, 201, f"65536 {receiver.token()} {server.token()}")
    assert isinstance(reply, SendReady)
    return reply


def test_the_same_tokens_give_the_same_parsed_keys() -> None:
    first, second = send_ready(ALICE.public), send_ready(ALICE.public)
    assert first.receiver_key is second.receiver_key
    assert first.server_key is second.server_key
    assert first.receiver_key == PublicKey.from_token(ALICE.public.token())


def test_another_token_gives_its_own_key() -> None:
    send_ready(ALICE.public)
    other = send_ready(BOB.public)
    assert other.receiver_key == BOB.public
    assert other.receiver_key.raw != ALICE.public.raw
    assert other.receiver_key.kem is not ALICE.public.kem


def test_a_bad_key_is_refused_every_time() -> None:
    broken = ALICE.public.token()[:-4]  # three bytes short
    for _ in range(2):
        with pytest.raises(RemoteProtocolError) as caught:
            parse_reply(SEND, 201, f"65536 {broken} {SERVER.public.token()}")
        assert caught.value.fatal


def test_a_server_parses_every_registered_key_afresh() -> None:
    """A cached parse would let a client time whether a key was seen before."""
    line = f"REGISTER alice@x.example {ALICE.public.token()}".encode()
    first, second = (parse_command(line, max_payload=65536) for _ in range(2))
    assert isinstance(first, Register) and isinstance(second, Register)
    assert first.public_key == second.public_key
    assert first.public_key is not second.public_key


def test_the_encoded_token_does_not_depend_on_the_cache() -> None:
    raw = ALICE.public.raw
    assert ALICE.public.token() == PublicKey.from_bytes(bytes(raw)).token()
    assert PublicKey.from_token(ALICE.public.token()).raw == raw
