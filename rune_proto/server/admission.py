"""Who gets a connection slot: counted from accept, TLS handshake included.

Connection slots are the server's scarcest resource (each holds a file descriptor),
and before login anyone may take one. The rules, in the order they are applied to a
newcomer (see docs/security.md, "Connection floods", for the design and its limits):

1. Every open socket counts, closing ones too; at the descriptor bound a newcomer is
   closed at once, before TLS (:attr:`Limits.sockets`).
2. A source address (an IPv6 /64) holds at most :attr:`Limits.per_source` pre-login
   connections.
3. Pre-login connections hold at most :attr:`Limits.anonymous` of the
   :attr:`Limits.slots`; the rest only logged-in clients can hold. When the share (or
   the whole) is full, the newcomer takes the slot of the *oldest* pre-login connection
   of the source holding the *most*, unless its own source is such a biggest holder.
   So a flood from one source only ever refuses itself, a flood from many rotates
   through itself, and a real user from an address of its own still gets in.

A refused newcomer is told ``421`` after the handshake while few refusals are under
way (:attr:`Limits.refusing`), and otherwise closed before TLS: under a flood, telling
every refused connection would cost a handshake and a descriptor each.
"""

from __future__ import annotations

import collections
import enum
import ipaddress
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("rune_proto.server")

# Descriptors kept for everything but client sockets: stdio, the listening sockets, the
# event loop's selector and self-pipe, SQLite's database, WAL and shared-memory files.
RESERVED_DESCRIPTORS = 64
# The listen backlog: connections the kernel queues while the server is busy. They take
# no descriptor until accepted, and each is judged as it is (see acceptor.py).
ACCEPT_BACKLOG = 100
REFUSING_AT_MOST = 16  # connections being told 421 at once; the next ones are just closed


class Verdict(enum.Enum):
    ADMIT = "admit"
    REFUSE = "refuse"  # handshake, then 421
    DROP = "drop"  # closed at once, before TLS


@dataclass(frozen=True, slots=True)
class Limits:
    """The numbers :class:`Admission` enforces (see :func:`fit_limits`)."""

    slots: int  # live connections: pre-login and logged in
    anonymous: int  # of the slots, how many pre-login connections may hold
    per_source: int  # pre-login connections from one source address
    sockets: int  # every open client socket, refused and closing ones included
    refusing: int = REFUSING_AT_MOST


@dataclass(eq=False, slots=True)
class Ticket:
    """One admitted connection's slot; ``evict`` closes the connection (set by its owner)."""

    source: str
    accepted: float
    logged_in: bool = False
    evicted: bool = False  # its slot was given to a newcomer
    gone: bool = False  # counted out of the slots
    evict: Callable[[], None] = field(default=lambda: None)


def source_of(peer: object) -> str:
    """The source a peer counts against: its IP, or its /64 for IPv6 (one host's usual)."""
    host = peer[0] if isinstance(peer, tuple) and peer else peer
    try:
        ip = ipaddress.ip_address(str(host))
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Admission:
    """The slot bookkeeping. Pure: the caller closes connections via ``Ticket.evict``."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        # Pre-login tickets per source, oldest first.
        self._anonymous: dict[str, collections.OrderedDict[int, Ticket]] = {}
        self.anonymous = 0
        self.logged_in = 0
        self.sockets = 0
        self.refusing = 0
        self.counts: collections.Counter[str] = collections.Counter()

    @property
    def live(self) -> int:
        return self.anonymous + self.logged_in

    def arrive(self, peer: object) -> tuple[Verdict, Ticket | None]:
        """A socket was accepted: admit it (with a ticket), refuse it, or drop it."""
        limits = self.limits
        full = self.sockets >= limits.sockets
        self.sockets += 1  # the caller calls socket_closed() whatever the verdict
        if full:
            self.counts["dropped"] += 1
            return Verdict.DROP, None
        source = source_of(peer)
        mine = len(self._anonymous.get(source, ()))
        if mine >= limits.per_source:
            return self._refuse(), None
        if self.anonymous >= limits.anonymous or self.live >= limits.slots:
            biggest = self._biggest_holder()
            if biggest is None or len(self._anonymous[biggest]) <= mine:
                return self._refuse(), None
            victim = next(iter(self._anonymous[biggest].values()))
            self._forget(victim)
            victim.evicted = victim.gone = True
            self.counts["evicted"] += 1
            victim.evict()
        ticket = Ticket(source, self._clock())
        self._anonymous.setdefault(source, collections.OrderedDict())[id(ticket)] = ticket
        self.anonymous += 1
        self.counts["admitted"] += 1
        return Verdict.ADMIT, ticket

    def _refuse(self) -> Verdict:
        if self.refusing < self.limits.refusing:
            self.refusing += 1
            self.counts["refused"] += 1
            return Verdict.REFUSE
        self.counts["dropped"] += 1
        return Verdict.DROP

    def _biggest_holder(self) -> str | None:
        """The source with the most pre-login connections; of equals, the one waiting longest."""
        best: str | None = None
        best_key = (0, 0.0)
        for source, tickets in self._anonymous.items():
            oldest = next(iter(tickets.values()))
            key = (len(tickets), -oldest.accepted)
            if best is None or key > best_key:
                best, best_key = source, key
        return best

    def log_in(self, ticket: Ticket) -> None:
        """The connection logged in: its slot leaves the anonymous share."""
        if ticket.logged_in or ticket.gone:
            return
        self._forget(ticket)
        ticket.logged_in = True
        self.logged_in += 1

    def leave(self, ticket: Ticket) -> None:
        """The connection is over (its socket may still be closing)."""
        if ticket.gone:
            return
        ticket.gone = True
        if ticket.logged_in:
            self.logged_in -= 1
        else:
            self._forget(ticket)

    def refused(self) -> None:
        """A refused connection has been told (or has failed its handshake)."""
        self.refusing -= 1

    def socket_closed(self) -> None:
        self.sockets -= 1

    def _forget(self, ticket: Ticket) -> None:
        tickets = self._anonymous.get(ticket.source)
        if tickets is None or tickets.pop(id(ticket), None) is None:
            return
        self.anonymous -= 1
        if not tickets:
            del self._anonymous[ticket.source]


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def fit_limits(
    max_connections: int, reserved_for_login: int, per_source: int, descriptors: int
) -> Limits:
    """The limits that fit in ``descriptors``: a quarter of the budget for closing sockets.

    ``RESERVED_DESCRIPTORS`` are kept for the process itself.

    The share only logged-in clients can hold is at most a quarter of the slots, so a
    small server (a test's ``max_connections=2``) is not all reserve.
    """
    budget = max(4, descriptors - RESERVED_DESCRIPTORS)
    slots = max(1, min(max_connections, budget * 3 // 4))
    reserve = min(reserved_for_login, slots // 4)
    return Limits(
        slots=slots,
        anonymous=max(1, slots - reserve),
        per_source=per_source,
        sockets=budget,
        refusing=max(1, min(REFUSING_AT_MOST, budget - slots)),
    )


class RateLimitedLog:
    """At most one warning per ``interval`` seconds for each kind, with a suppressed count.

    A flood (accept() out of descriptors, handshakes failing by the thousand) would
    otherwise write a line per event: ~15,000 lines in 15 s were seen.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: collections.Counter[str] = collections.Counter()

    def warning(self, kind: str) -> None:
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] += 1
            return
        self._last[kind] = now
        more = self._suppressed.pop(kind, 0)
        suffix = (
            f" ({more} more like it in the last {now - last:.0f} s)"
            if more and last is not None
            else ""
        )
        log.warning("%s%s", kind, suffix)
