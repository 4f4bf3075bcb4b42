"""What the server tells its operator while it runs: the periodic counts line, and the
Prometheus scrape (metrics.py). Aggregates only: nothing per user, no address, no IP.
"""

from __future__ import annotations

import asyncio
import logging

from .host import ServerHost
from .metrics import Family, exposition

log = logging.getLogger("rune_proto.server")


async def log_counts(server: ServerHost) -> None:
    """The periodic line of aggregate counts (``stats_interval``): since start."""
    _, messages, size = await server.services.store.totals()
    codes = " ".join(f"{k}×{v}" for k, v in sorted(server.stats.items()) if k.isdigit())
    hits = " ".join(f"{k.name.lower()}×{n}" for k, n in server.services.limits_hit.items() if n)
    log.info(
        "counts: %d connections (%d open), replies %s, limits hit %s; %d messages stored"
        " (%.1f MiB)",
        server.stats["connections"],
        server.open_connections,
        codes or "none",
        hits or "none",
        messages,
        size / (1 << 20),
    )


async def report_counts(server: ServerHost, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await log_counts(server)


async def metrics_text(server: ServerHost) -> str:
    """What a Prometheus scrape gets (metrics.py): aggregates only."""
    store = server.services.store
    accounts, messages, size = await store.totals()
    replies = [({"code": k}, float(v)) for k, v in sorted(server.stats.items()) if k.isdigit()]
    hits = server.services.limits_hit
    return exposition(
        [
            Family(
                "rune_connections_total",
                "counter",
                "connections accepted",
                [({}, server.stats["connections"])],
            ),
            Family(
                "rune_connections_refused_total",
                "counter",
                "connections refused (421)",
                [({}, server.stats["refused"])],
            ),
            Family(
                "rune_connections_open",
                "gauge",
                "connections open",
                [({}, server.open_connections)],
            ),
            Family("rune_replies_total", "counter", "replies by status code", replies),
            Family(
                "rune_limit_hits_total",
                "counter",
                "abuse limits reached, by limit",
                [({"limit": kind.name.lower()}, n) for kind, n in hits.items()],
            ),
            Family(
                "rune_disk_full_total",
                "counter",
                "writes refused for a full disk",
                [({}, store.disk_full)],
            ),
            Family("rune_accounts", "gauge", "registered accounts", [({}, accounts)]),
            Family("rune_messages_stored", "gauge", "messages stored", [({}, messages)]),
            Family("rune_stored_bytes", "gauge", "bytes of stored messages", [({}, size)]),
            Family(
                "rune_order_passes_total",
                "counter",
                "order passes completed",
                [({}, store.passes)],
            ),
            Family(
                "rune_memory_budget_used_bytes",
                "gauge",
                "memory budget in use",
                [({}, server.budget.used)],
            ),
            Family(
                "rune_commit_seconds",
                "histogram",
                "group commit latency",
                histogram=store.commit_times,
            ),
        ]
    )
