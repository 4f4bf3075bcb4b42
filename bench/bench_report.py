"""The server benchmark's crypto floor, machine description and tables."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench_workload import SUBJECT, TEXT, address, cpu_ticks, identity_seed
from server_load import Phase

# --- the crypto floor ---------------------------------------------------------------


def crypto_floor(repeats: int) -> tuple[float, list[tuple[str, float]]]:
    """Best-of CPU µs of the primitives the server runs for one message, and each one's."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from rune_proto import envelope
    from rune_proto.address import parse_address
    from rune_proto.keys import Identity, PublicKey
    from rune_proto.suite import SUITE

    sender, to = parse_address(address(0)), parse_address(address(1))
    alice, bob = Identity(identity_seed(0)), Identity(identity_seed(1))
    server = Identity(hashlib.sha512(b"rune bench server").digest() * 2)
    sealed = envelope.seal_message(sender, alice, to, bob.public, envelope.Content(SUBJECT, TEXT))
    client_message = envelope.seal_client_message(sender, alice, to, server.public, sealed)

    calls: list[tuple[str, Callable[[], object]]] = []
    ed_private = ed25519.Ed25519PrivateKey.from_private_bytes(server.private_bytes()[:32])
    real_seal, real_open = envelope.seal, envelope.open_sealed
    real_sign, real_verify, real_hashlib = Identity.sign, PublicKey.verify, envelope.hashlib

    def seal(public_key: Any, plaintext: bytes, info: bytes) -> bytes:
        calls.append(
            (
                f"HPKE seal {len(plaintext):,} B",
                lambda: SUITE.encrypt(plaintext, public_key, info=info),
            )
        )
        return real_seal(public_key, plaintext, info)

    def open_sealed(private_key: Any, ciphertext: bytes, info: bytes, **kw: Any) -> bytes:
        calls.append(
            (
                f"HPKE open {len(ciphertext):,} B",
                lambda: SUITE.decrypt(ciphertext, private_key, info=info),
            )
        )
        return real_open(private_key, ciphertext, info, **kw)

    def sign(self: Identity, message: bytes) -> bytes:
        calls.append((f"Ed25519 sign {len(message):,} B", lambda: ed_private.sign(message)))
        return real_sign(self, message)

    def verify(self: PublicKey, signature: bytes, message: bytes) -> bool:
        key = ed25519.Ed25519PublicKey.from_public_bytes(self.raw[:32])
        calls.append((f"Ed25519 verify {len(message):,} B", lambda: key.verify(signature, message)))
        return real_verify(self, signature, message)

    class Hashes:
        @staticmethod
        def sha256(data: bytes = b"") -> Any:
            calls.append((f"SHA-256 {len(data):,} B", lambda: hashlib.sha256(data).digest()))
            return hashlib.sha256(data)

    envelope.seal, envelope.open_sealed = seal, open_sealed  # type: ignore[assignment]
    Identity.sign, PublicKey.verify = sign, verify  # type: ignore[method-assign]
    envelope.hashlib = Hashes  # type: ignore[assignment]
    try:
        inner = envelope.open_client_message(server, sender, alice.public, to, client_message)
        envelope.seal_stored_message(server, to, bob.public, sender, inner)
    finally:
        envelope.seal, envelope.open_sealed = real_seal, real_open  # type: ignore[assignment]
        Identity.sign, PublicKey.verify = real_sign, real_verify  # type: ignore[method-assign]
        envelope.hashlib = real_hashlib

    def best(fn: Callable[[], object]) -> float:
        fastest = float("inf")
        for _ in range(repeats):
            start = time.thread_time()
            fn()
            fastest = min(fastest, time.thread_time() - start)
        return fastest * 1e6

    fns = [fn for _, fn in calls]

    def all_calls() -> None:
        for fn in fns:
            fn()

    all_calls()
    parts = [(name, best(fn)) for name, fn in calls]
    return best(all_calls), parts


# --- the report ---------------------------------------------------------------------


def background_load(seconds: float = 1.0) -> float:
    """Share of all CPUs busy while nothing of ours runs (other work on the machine)."""
    total0, busy0 = cpu_ticks()
    time.sleep(seconds)
    total1, busy1 = cpu_ticks()
    return (busy1 - busy0) / max(1, total1 - total0)


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import cryptography

    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


LEGEND = """\
  server µs/msg: CPU of the server process (all threads, utime + stime) per message;
  (loop thread): the part spent on its event loop's thread; client µs/msg: CPU of the
  load generators per message; db µs/msg: CPU of the PostgreSQL cluster per message
  (pg rows; SQLite works inside the server process); others: CPUs kept busy meanwhile
  by anything else. pg: rune-server on PostgreSQL; pg-w2: the same with --workers 2
  (server µs/msg sums the supervisor and both workers)."""


def table(phases: Sequence[Phase], unit: str = "msg") -> list[str]:
    count = "msgs" if unit == "msg" else "conns"
    head = (
        f"{'side':<5} {'C':>3} {count:>6} {unit + '/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server µs/' + unit:>15} {'(loop thread)':>13} {'client µs/' + unit:>15} "
        f"{'db µs/' + unit:>11} {'stored/acked':>13} {'others':>6}"
    )
    rows = [head, "-" * len(head)]
    for p in phases:
        errors = f"  errors: {p.errors}" if p.errors else ""
        rows.append(
            f"{p.side:<5} {p.conns:>3} {p.total:>6} {p.rate:>8.0f} {p.percentile(50):>8.2f} "
            f"{p.percentile(99):>8.2f} {p.per_item(p.server_cpu):>15.0f} "
            f"{p.per_item(p.server_main_cpu):>13.0f} {p.per_item(p.client_cpu):>15.0f} "
            f"{p.per_item(p.database_cpu) if p.database_cpu else 0:>11.0f} "
            f"{f'{p.stored}/{p.acked}':>13} {p.other_cpu / p.seconds if p.seconds else 0:>6.2f}"
            f"{errors}"
        )
    return rows


def verdict(ok: bool) -> str:
    return "PASS" if ok else "SHORT"
