"""Abuse limits: registrations per source network, messages per sender and per receiver.

Seen before these existed: 300 accounts registered in 0.9 s on one connection, and
2,000 messages sent to one user in 7.7 s. Each limit is a count per fixed window
(``register_limit`` per ``register_window`` seconds, and so on; 0 turns one off),
answered with its own status code (452, 453, 454: docs/protocol.md) that a client
shows as "try later".

Why in the database and not in memory: a limit per connection or per process is no
limit (a script opens more connections, a second node has its own memory). The
counters live in the ``limits`` table and are charged inside the very transaction
that stores the message or creates the account, so concurrent sessions, and later
several nodes on one database, share them exactly.

What a copy of the file shows: a row per key that was charged in a window that has
not ended yet, with the window's end (rounded to the window) and a count. The key is
a keyed BLAKE2b digest of the kind and the subject (a sender or receiver address, or
a source IP / IPv6 /64), under a secret derived from the server's identity key: the
database alone does not tell which addresses or networks were active, not even by
trying every IPv4 address. Rows are deleted once their window has ended (by the
order pass, which the charge itself makes due), and the order pass rewrites the
table in key order like the other small tables.
"""

from __future__ import annotations

import enum
import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import status
from ..keys import Identity

SECRET_LABEL = b"rune-server: keys of the abuse-limit counters, v1"


class Kind(enum.Enum):
    """What is counted; the value is what logs and metrics call it."""

    REGISTER = "registrations per source"
    SEND = "messages per sender"
    INFLOW = "messages per receiver"

    @property
    def code(self) -> int:
        return _CODES[self]


_CODES = {
    Kind.REGISTER: status.REGISTRATION_LIMIT,
    Kind.SEND: status.SEND_LIMIT,
    Kind.INFLOW: status.INFLOW_LIMIT,
}


class LimitReached(Exception):
    """A charge would take a counter past its limit: nothing was stored."""

    def __init__(self, kind: Kind) -> None:
        super().__init__(kind.value)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Charge:
    """One count against one counter, in the window that ends at ``ends``."""

    kind: Kind
    key: bytes
    limit: int
    ends: int


def secret_of(identity: Identity) -> bytes:
    """The digest key: the same on every node that holds the identity, never stored.

    Ed25519 signatures are deterministic, so signing a fixed label yields a stable
    secret that only the holder of the (passphrase-sealed) identity can compute.
    """
    return hashlib.blake2b(identity.sign(SECRET_LABEL), digest_size=32).digest()


@dataclass(frozen=True, slots=True)
class Rule:
    limit: int  # 0: no limit
    window: float  # seconds


class Limiter:
    """Makes the charges of a registration or a message; the store applies them."""

    def __init__(self, secret: bytes, rules: dict[Kind, Rule], clock: Callable[[], float]) -> None:
        self._secret = secret
        self._rules = rules
        self._clock = clock

    def key(self, kind: Kind, subject: str) -> bytes:
        """The counter's key (``rune-server limits clear`` computes the same)."""
        text = f"{kind.name}\0{subject}".encode()
        return hashlib.blake2b(text, key=self._secret, digest_size=16).digest()

    def charge(self, kind: Kind, subject: str) -> tuple[Charge, ...]:
        rule = self._rules.get(kind)
        if rule is None or rule.limit <= 0:
            return ()
        window = max(1, int(rule.window))
        ends = (int(self._clock()) // window + 1) * window
        return (Charge(kind, self.key(kind, subject), rule.limit, ends),)

    def registration(self, source: str) -> tuple[Charge, ...]:
        return self.charge(Kind.REGISTER, source)

    def message(self, sender: str, receiver: str) -> tuple[Charge, ...]:
        return self.charge(Kind.SEND, sender) + self.charge(Kind.INFLOW, receiver)


# Counts as they will be after the transaction: key -> (window end, count).
Tally = dict[bytes, tuple[int, int]]


def check(db: sqlite3.Connection, charges: Sequence[Charge], tally: Tally) -> Kind | None:
    """Inside a write transaction: the first limit these charges would pass, or None
    (then they are added to ``tally``, which :func:`write` stores)."""
    after: Tally = {}
    for charge in charges:
        ends, count = after.get(charge.key) or tally.get(charge.key) or _row(db, charge.key)
        if ends != charge.ends:  # the counter's window has ended: a new one starts
            ends, count = charge.ends, 0
        if count >= charge.limit:
            return charge.kind
        after[charge.key] = (ends, count + 1)
    tally.update(after)
    return None


def _row(db: sqlite3.Connection, key: bytes) -> tuple[int, int]:
    row = db.execute("SELECT ends, count FROM limits WHERE key = ?", (key,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def write(db: sqlite3.Connection, tally: Tally) -> None:
    db.executemany(
        """INSERT INTO limits (key, ends, count) VALUES (?, ?, ?)
           ON CONFLICT (key) DO UPDATE SET ends = excluded.ends, count = excluded.count""",
        [(key, ends, count) for key, (ends, count) in tally.items()],
    )


def sweep(db: sqlite3.Connection, now: float) -> int:
    """Delete the counters whose window has ended; how many."""
    return db.execute("DELETE FROM limits WHERE ends <= ?", (int(now),)).rowcount


def clear(db: sqlite3.Connection, keys: Sequence[bytes]) -> int:
    """Forget these counters (an operator lifting a limit); how many existed."""
    return sum(db.execute("DELETE FROM limits WHERE key = ?", (key,)).rowcount for key in keys)
