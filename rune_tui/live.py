"""Mail the moment it is sent: one connection kept waiting while the app is open.

:func:`watch_mailbox` holds a session of its own on ``WAIT`` (the library's
``wait_for_mail``, which polls with ``LIST`` against a server without it) and calls
``on_mail`` whenever new mail may be there. When the connection drops it says so
through ``on_status`` and tries again after 1, 2, 4 … seconds (at most a minute),
then says when it is back. A link that never came up is not reported: the inbox's
own refresh has already said why the server cannot be reached, and when it can be
again the first notice refreshes the list. Nothing here touches Textual: the inbox
runs it in a worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rune_proto.client import ClientError

from .service import describe_error
from .service_mailbox import Mailbox

RECONNECT_FIRST = 1.0
RECONNECT_MAX = 60.0


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The waiting connection dropped; ``retry_in`` seconds until the next try."""

    reason: str
    retry_in: float


@dataclass(frozen=True, slots=True)
class LinkUp:
    """Connected and waiting; ``again`` is true when it had been down."""

    again: bool
    live: bool  # the server offers WAIT (else the library polls every poll_seconds)


LinkStatus = LinkDown | LinkUp


async def watch_mailbox(
    mailbox: Mailbox,
    on_mail: Callable[[], None],
    on_status: Callable[[LinkStatus], None],
    *,
    poll_seconds: float,
    first_delay: float = RECONNECT_FIRST,
    max_delay: float = RECONNECT_MAX,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run until cancelled: wait for mail, reconnecting with backoff when the link drops."""
    delay = first_delay
    down = ever_up = False
    while True:
        try:
            async with mailbox.session() as session:
                on_status(LinkUp(again=down, live=session.can_wait))
                down, ever_up, delay = False, True, first_delay
                async for _ in session.wait_for_mail(poll_seconds=poll_seconds):
                    on_mail()
        except (ClientError, OSError) as exc:
            reason = describe_error(exc)
        else:  # pragma: no cover - wait_for_mail only ends by raising
            reason = "The connection ended."
        if ever_up:
            down = True
            on_status(LinkDown(reason, delay))
        await sleep(delay)
        delay = min(delay * 2, max_delay)
