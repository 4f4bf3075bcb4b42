"""Timing oracles: a logged-in user must not learn, from how long a ``404`` or a ``411``
takes, whether another user's message id exists or whether an address is registered.

The first version of the store looked messages up by id alone (``id`` was the primary
key of a WITHOUT ROWID table), so an id held by someone else was found, its row read,
and only then rejected for the wrong receiver: with large messages, many of them,
the row's overflow pages made that ~260 µs slower than a random id. The lookup is
now by ``(receiver, id)``, so another's id and a random one walk the same path and
both miss at once. These tests measure that over a real server and raw TLS lines.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import pytest

from rune_proto.address import Address, random_address
from rune_proto.envelope import Attachment, Content
from rune_proto.events import Roger
from rune_proto.handshake import login_proof
from rune_proto.keys import Identity
from tests.hardening.test_tls_auth import (
    LineClient,
    Prober,
    Timing,
    _b64,
    _b64e,
    _register,
    compare,
)
from tests.server.wire_client import WireClient
from tests.server_process import RuneServerProcess, server_factory

User = tuple[Address, Identity]
SAMPLES = 1000  # per arm, interleaved at random
LARGE_MESSAGES = 8  # the other user's mailbox: many messages ...
LARGE_BYTES = 1024 * 1024  # ... each spanning hundreds of overflow pages
SMALL_MESSAGES = 150  # and the rest of the store small, as it mostly is


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuneServerProcess]:
    with server_factory(tmp_path_factory.mktemp("timing")) as factory:
        yield factory(throttle_delay=0)  # measure the server, not the throttle


def _fill_store(server: RuneServerProcess, sender: User, large: User, small: User) -> list[str]:
    """``large`` gets LARGE_MESSAGES large messages, ``small`` many small ones."""
    rng = random.Random(5)
    with WireClient.to(server) as client:
        client.login(*sender, server.server_public_key)
        for n in range(LARGE_MESSAGES):
            data = rng.randbytes(LARGE_BYTES)
            content = Content(f"big {n}", "b", (Attachment(f"{n}.bin", data),))
            assert isinstance(client.send_message(*sender, large[0], content), Roger)
        for n in range(SMALL_MESSAGES):
            assert isinstance(client.send_message(*sender, small[0], Content(f"s{n}", "b")), Roger)
    return Prober(server, large).listing()


def _time_lines(server: RuneServerProcess, who: User, verb: str, foreign_ids: list[str]) -> Timing:
    budget = int(server.config().get("max_failures", 10))
    rng = random.Random(13)
    arms = [True] * SAMPLES + [False] * SAMPLES
    rng.shuffle(arms)
    times: dict[bool, list[float]] = {True: [], False: []}
    replies: set[bytes] = set()
    for start in range(0, len(arms), budget - 1):
        prober = LineClient(server)
        nonce_line, _ = prober.ask(f"LOGIN {who[0]}\r\n".encode())
        proof = login_proof(who[1], who[0], server.server_public_key, _b64(nonce_line[4:-2]))
        assert prober.ask(b"PROOF " + _b64e(proof) + b"\r\n")[0].startswith(b"230")
        block = arms[start : start + budget - 1]
        lines = [  # built before the block: equal client-side gaps for both arms
            f"{verb} {rng.choice(foreign_ids) if foreign else uuid.uuid4()}\r\n".encode()
            for foreign in block
        ]
        for foreign, line in zip(block, lines, strict=True):
            reply, elapsed = prober.ask(line)
            replies.add(reply)
            times[foreign].append(elapsed)
        prober.close()
    assert replies == {b"404 not found\r\n"}
    return compare(times[True], times[False], ("another's id", "random id"))


@pytest.fixture(scope="module")
def crowded(server: RuneServerProcess) -> tuple[User, list[str]]:
    """A prober (alice), and bob's large message ids amid carol's many small ones."""
    alice, bob, carol = _register(server), _register(server), _register(server)
    return alice, _fill_store(server, carol, bob, carol)


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["RETRIEVE", "DELETE"])
def test_anothers_large_messages_and_random_ids_take_the_same_time(
    server: RuneServerProcess, crowded: tuple[User, list[str]], verb: str
) -> None:
    alice, bobs = crowded
    result = _time_lines(server, alice, verb, bobs)
    print(f"{verb}: {result}")
    assert not result.clearly_different(), str(result)


ACCOUNTS = 200  # registered addresses probed, and as many unknown ones


@pytest.mark.slow
def test_proof_for_registered_and_unknown_addresses_takes_the_same_time(
    server: RuneServerProcess,
) -> None:
    """The PROOF after ``LOGIN`` fails with the same ``411`` either way, and as fast."""
    registered = [_register(server)[0] for _ in range(ACCOUNTS)]
    unknown = [random_address(server.domain) for _ in range(ACCOUNTS)]
    budget = int(server.config().get("max_failures", 10))
    wrong = Identity.generate()
    rng = random.Random(17)
    arms = [True] * SAMPLES + [False] * SAMPLES
    rng.shuffle(arms)
    times: dict[bool, list[float]] = {True: [], False: []}
    replies: set[bytes] = set()
    for start in range(0, len(arms), budget - 1):
        client = LineClient(server)
        block = arms[start : start + budget - 1]
        addresses = [rng.choice(registered if known else unknown) for known in block]
        for known, address in zip(block, addresses, strict=True):
            reply, _ = client.ask(f"LOGIN {address}\r\n".encode())
            signature = login_proof(wrong, address, server.server_public_key, _b64(reply[4:-2]))
            reply, elapsed = client.ask(b"PROOF " + _b64e(signature) + b"\r\n")
            replies.add(reply)
            times[known].append(elapsed)
        client.close()
    assert replies == {b"411 authentication failed\r\n"}
    result = compare(times[True], times[False])
    print(f"PROOF: {result}")
    assert not result.clearly_different(), str(result)
