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


Floor = tuple[float, list[tuple[str, float]]]


def crypto_floor(repeats: int) -> Floor:
    """Best-of CPU µs of the primitives the server runs for one message, and each one's:
    opening the CLIENT MESSAGE and sealing the STORED MESSAGE."""
    from rune_proto import envelope

    w = _Workload()
    client_message = w.client_message()
    return _recorded_floor(
        lambda: envelope.seal_stored_message(
            w.server,
            w.to,
            w.bob.public,
            w.sender,
            envelope.open_client_message(w.server, w.sender, w.alice.public, w.to, client_message),
        ),
        repeats,
    )


def client_crypto_floor(repeats: int) -> Floor:
    """The same for the client library's side of one send (what a load generator does
    per message): sealing the message to its receiver and the CLIENT MESSAGE to the
    server, each signed."""
    w = _Workload()
    return _recorded_floor(w.client_message, repeats)


class _Workload:
    """The bench's sender, receiver and server keys, and its one message."""

    def __init__(self) -> None:
        from rune_proto.address import parse_address
        from rune_proto.keys import Identity

        self.sender, self.to = parse_address(address(0)), parse_address(address(1))
        self.alice, self.bob = Identity(identity_seed(0)), Identity(identity_seed(1))
        self.server = Identity(hashlib.sha512(b"rune bench server").digest() * 2)

    def client_message(self) -> bytes:
        from rune_proto import envelope

        sealed = envelope.seal_message(
            self.sender, self.alice, self.to, self.bob.public, envelope.Content(SUBJECT, TEXT)
        )
        return envelope.seal_client_message(
            self.sender, self.alice, self.to, self.server.public, sealed
        )


def _recorded_floor(path: Callable[[], object], repeats: int) -> Floor:
    """Run ``path`` once recording each primitive call (HPKE, Ed25519, SHA-256) with its
    inputs, then time those calls alone: best of ``repeats``, each and all in a row."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from rune_proto import envelope
    from rune_proto.keys import Identity, PublicKey
    from rune_proto.suite import SUITE

    calls: list[tuple[str, Callable[[], object]]] = []
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
        ed_private = ed25519.Ed25519PrivateKey.from_private_bytes(self.private_bytes()[:32])
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
        path()
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


# --- the goals (issue 17) -----------------------------------------------------------

GOAL_CLIENT_FLOOR = 1.5  # load-generator CPU per message, as a multiple of its crypto floor
GOAL_CONNECT = 0.8  # new connections per second, as a multiple of the peer's


def server_goals(
    phases: Sequence[Phase], connects: Sequence[Phase], floor: float, client_floor: float
) -> list[tuple[str, bool]]:
    """One line and verdict per server-side goal of issue 17, at the largest C."""
    top = max(p.conns for p in phases)
    peer = next(p for p in phases if p.side == "peer" and p.conns == top)
    rune = next(p for p in phases if p.side == "rune" and p.conns == top)
    cpu_rune, cpu_peer = rune.per_item(rune.server_cpu), peer.per_item(peer.server_cpu)
    p99_rune, p99_peer = rune.percentile(99), peer.percentile(99)
    client = rune.per_item(rune.client_cpu)
    goals = [
        (
            f"rune server CPU per message at C = {top} <= peer's: {cpu_rune:.0f} µs vs "
            f"{cpu_peer:.0f} µs = {cpu_rune / cpu_peer:.2f}x",
            cpu_rune <= cpu_peer,
        ),
        (
            f"rune p99 at C = {top} <= peer's: {p99_rune:.1f} ms vs {p99_peer:.1f} ms "
            f"= {p99_rune / p99_peer:.2f}x",
            p99_rune <= p99_peer,
        ),
    ]
    peer_c = next((p for p in connects if p.side == "peer"), None)
    rune_c = next((p for p in connects if p.side == "rune"), None)
    if peer_c is not None and rune_c is not None and peer_c.rate:
        ratio = rune_c.rate / peer_c.rate
        goals.append(
            (
                f"rune new connections at C = {rune_c.conns} >= {GOAL_CONNECT}x peer's: "
                f"{rune_c.rate:.0f}/s vs {peer_c.rate:.0f}/s = {ratio:.2f}x",
                ratio >= GOAL_CONNECT,
            )
        )
    goals.append(
        (
            f"rune load-generator CPU per message at C = {top} <= {GOAL_CLIENT_FLOOR}x its "
            f"crypto floor: {client:.0f} µs vs {client_floor:.0f} µs = "
            f"{client / client_floor:.2f}x",
            client / client_floor <= GOAL_CLIENT_FLOOR,
        )
    )
    return goals


def server_info(phases: Sequence[Phase], floor: float) -> list[str]:
    """The first round's goals (issue 9), now for information: msg/s and the floor ratio."""
    top = max(p.conns for p in phases)
    peer = next(p for p in phases if p.side == "peer" and p.conns == top)
    rune = next(p for p in phases if p.side == "rune" and p.conns == top)
    rate = rune.rate / peer.rate if peer.rate else float("nan")
    cpu = rune.per_item(rune.server_cpu)
    return [
        f"rune msg/s at C = {top}: {rune.rate:.0f} vs peer's {peer.rate:.0f} = {rate:.2f}x",
        f"rune server CPU per message at C = {top}: {cpu:.0f} µs = {cpu / floor:.2f}x "
        f"its crypto floor ({floor:.0f} µs)",
    ]
