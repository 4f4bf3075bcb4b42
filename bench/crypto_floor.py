"""How close the envelope path runs to the raw cost of its cryptography.

    python bench/crypto_floor.py [N]

For one 4 KiB message, time the whole send-and-receive envelope path

    seal_message → seal_client_message → open_client_message
                 → seal_stored_message → open_stored_message → open_message

against the raw primitive calls that path makes (HPKE seal/open, Ed25519 sign/verify,
SHA-256), replayed with exactly the same inputs. The calls are recorded from one run
of the path itself, so the floor follows the code: nothing is hand-counted. Both sides
are timed in the same process as best of N with time.perf_counter. Goal: ratio <= 1.3.
If the path is SHORT of the goal, a cProfile of it shows where the rest of the time
goes. This is a measurement, not a test: it prints and never fails.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import ed25519

from rune_proto import envelope
from rune_proto.address import parse_address
from rune_proto.keys import Identity, PublicKey
from rune_proto.suite import SUITE

GOAL = 1.3
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200

ALICE, BOB = parse_address("alice@example.org"), parse_address("bob@example.org")
alice, bob, server = (
    Identity(hashlib.sha512(name).digest() * 2) for name in (b"alice", b"bob", b"server")
)
CONTENT = envelope.Content("A 4 KiB message", "x" * 4096)


def envelope_path() -> envelope.OpenedMessage:
    sealed = envelope.seal_message(ALICE, alice, BOB, bob.public, CONTENT)
    client = envelope.seal_client_message(ALICE, alice, BOB, server.public, sealed)
    inner = envelope.open_client_message(server, ALICE, alice.public, BOB, client)
    stored = envelope.seal_stored_message(server, BOB, bob.public, ALICE, inner)
    opened = envelope.open_stored_message(bob, BOB, server.public, stored)
    return envelope.open_message(bob, BOB, opened.sealed_message)


# --- record the primitive calls the path makes ------------------------------------

Call = tuple[str, Callable[[], object]]


def record() -> tuple[list[Call], list[Call]]:
    """Run the path once with the crypto entry points wrapped; return replayable calls."""
    prims: list[Call] = []
    key_parses: list[Call] = []
    raw_ed = {
        id(i): ed25519.Ed25519PrivateKey.from_private_bytes(i.private_bytes()[:32])
        for i in (alice, bob, server)
    }
    saved: dict[str, Any] = {}

    def wrap(owner: Any, name: str, make: Callable[..., Call], sink: list[Call]) -> None:
        original = getattr(owner, name)
        saved[f"{id(owner)}.{name}"] = (owner, name, original)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            sink.append(make(*args, **kwargs))
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    def seal_call(public_key: Any, plaintext: bytes, info: bytes) -> Call:
        return (
            f"HPKE seal {len(plaintext)} B",
            lambda: SUITE.encrypt(plaintext, public_key, info=info),
        )

    def open_call(private_key: Any, ciphertext: bytes, info: bytes, **_: Any) -> Call:
        return (
            f"HPKE open {len(ciphertext)} B",
            lambda: SUITE.decrypt(ciphertext, private_key, info=info),
        )

    def sign_call(identity: Identity, message: bytes) -> Call:
        key = raw_ed[id(identity)]
        return (f"Ed25519 sign {len(message)} B", lambda: key.sign(message))

    def verify_call(public: PublicKey, signature: bytes, message: bytes) -> Call:
        key = ed25519.Ed25519PublicKey.from_public_bytes(public.raw[:32])
        return (
            f"Ed25519 verify {len(message)} B",
            lambda: key.verify(signature, message),
        )

    class HashShim:
        @staticmethod
        def sha256(data: bytes = b"") -> Any:
            prims.append((f"SHA-256 {len(data)} B", lambda: hashlib.sha256(data).digest()))
            return hashlib.sha256(data)

    def parse_call(raw: bytes) -> Call:
        data = bytes(raw)
        return ("decode a public key", lambda: PublicKey.from_bytes(data))

    wrap(envelope, "seal", seal_call, prims)
    wrap(envelope, "open_sealed", open_call, prims)
    wrap(Identity, "sign", sign_call, prims)
    wrap(PublicKey, "verify", verify_call, prims)
    saved["hashlib"] = (envelope, "hashlib", envelope.hashlib)
    envelope.hashlib = HashShim  # type: ignore[assignment]
    original_from_bytes = PublicKey.from_bytes.__func__  # type: ignore[attr-defined]

    def from_bytes(cls: type[PublicKey], raw: bytes) -> PublicKey:
        key_parses.append(parse_call(raw))
        return original_from_bytes(cls, raw)  # type: ignore[no-any-return]

    saved["from_bytes"] = (PublicKey, "from_bytes", PublicKey.__dict__["from_bytes"])
    PublicKey.from_bytes = classmethod(from_bytes)  # type: ignore[method-assign,assignment]
    try:
        opened = envelope_path()
    finally:
        for owner, name, original in saved.values():
            setattr(owner, name, original)
    assert opened.verified and opened.content == CONTENT
    return prims, key_parses


def best_of(n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def replay(calls: list[Call]) -> Callable[[], None]:
    fns = [fn for _, fn in calls]

    def run() -> None:
        for fn in fns:
            fn()

    return run


def main() -> None:
    prims, key_parses = record()
    envelope_path()  # warm up both sides once
    replay(prims)()

    # interleave the two measurements so both see the same machine
    path_best = prim_best = float("inf")
    run_prims = replay(prims)
    for _ in range(N):
        path_best = min(path_best, best_of(1, envelope_path))
        prim_best = min(prim_best, best_of(1, run_prims))
    parse_best = best_of(N, replay(key_parses)) if key_parses else 0.0

    print(f"primitive calls made by the path ({len(prims)}), best of {N} each:")
    for name, fn in prims:
        print(f"  {best_of(N, fn) * 1e6:9.1f} µs  {name}")
    if key_parses:
        print(
            f"  (plus {len(key_parses)} public-key decoding, {parse_best * 1e6:.1f} µs, "
            "counted as overhead)"
        )
    ratio = path_best / prim_best
    verdict = "PASS" if ratio <= GOAL else "SHORT"
    print(
        f"crypto floor: envelope path {path_best * 1e6:.0f} µs, "
        f"primitives {prim_best * 1e6:.0f} µs, ratio {ratio:.2f} (goal <= {GOAL}) {verdict}"
    )
    if verdict == "SHORT":
        print("\nwhere the rest goes (cProfile of the path, by own time):")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(N):
            envelope_path()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())


if __name__ == "__main__":
    main()
