"""Which :class:`~.notifier.MailNotifier` a server uses: it follows the store.

Kept apart from notifier.py so that the PostgreSQL notifier (which builds on
notifier.py) is imported only here, and only for a ``postgresql://`` database.
"""

from __future__ import annotations

from ..keys import Identity
from .notifier import LocalNotifier, MailNotifier
from .pg.url import is_postgres


async def start_notifier(url: str | None, identity: Identity) -> MailNotifier:
    """In memory for SQLite (one process); ``LISTEN``/``NOTIFY`` for PostgreSQL (worker
    processes and nodes on one database: a WAIT on one wakes for mail stored on another)."""
    if url is None or not is_postgres(url):  # None: the SQLite file
        return LocalNotifier()
    from .pg.notifier import PgNotifier, notice_secret

    notifier = PgNotifier(url, notice_secret(identity))
    await notifier.start()
    return notifier
