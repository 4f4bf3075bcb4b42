"""New-mail notices between the store and the connections waiting on an address.

The seam for more than one process: the session calls :meth:`MailNotifier.publish`
once a message is committed for an address, and each logged-in connection
:meth:`~MailNotifier.subscribe`\\ s a wake-up callback for its own address. In one
process (SQLite) :class:`LocalNotifier` calls the callbacks directly. Several nodes
on PostgreSQL use :class:`~rune_proto.server.pg.notifier.PgNotifier`: the same two
methods on ``LISTEN``/``NOTIFY``, one listening connection per node fanning out to
the local callbacks, so no waiting client ever polls the database.

A notice carries only the address, never a sender, size or id, and nothing is logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Wake = Callable[[], None]
Unsubscribe = Callable[[], None]


class MailNotifier(Protocol):
    """Publish "a message was stored for this address"; subscribe to hear it."""

    def publish(self, address: str) -> None: ...

    def subscribe(self, address: str, wake: Wake) -> Unsubscribe: ...

    async def close(self) -> None:
        """Stop: send what is pending (briefly), let go of what it holds."""


class LocalNotifier:
    """In-process notices: a set of callbacks per address, called on the event loop.

    A subscriber costs one set entry (plus the set for its address): no task, no timer.
    """

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Wake]] = {}

    def publish(self, address: str) -> None:
        for wake in tuple(self._subscribers.get(address, ())):
            wake()

    def subscribe(self, address: str, wake: Wake) -> Unsubscribe:
        self._subscribers.setdefault(address, set()).add(wake)

        def unsubscribe() -> None:
            subscribers = self._subscribers.get(address)
            if subscribers is not None:
                subscribers.discard(wake)
                if not subscribers:
                    del self._subscribers[address]

        return unsubscribe

    async def close(self) -> None:
        self._subscribers.clear()

    def wake_all(self) -> int:
        """Wake every subscriber once (notices may have been missed); how many keys."""
        for subscribers in tuple(self._subscribers.values()):
            for wake in tuple(subscribers):
                wake()
        return len(self._subscribers)

    def __len__(self) -> int:
        """Addresses with at least one subscriber (for tests)."""
        return len(self._subscribers)
