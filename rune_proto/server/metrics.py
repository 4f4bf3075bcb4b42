"""Metrics for Prometheus: the text exposition format on a listener of their own.

Off by default (``metrics_port = 0``); when on, it listens on ``metrics_host``
(127.0.0.1 by default), apart from the protocol's port, so a firewall or a scraper's
network can reach it without reaching the mail service, and it speaks plain HTTP
GET only. Aggregates only: counts of connections, replies by status code, limit
hits, order passes, stored messages and bytes, the memory budget, and a histogram of
group-commit latency. Nothing per user, no addresses, no IPs.

Written by hand (some 80 lines) rather than with ``prometheus-client``: the format is
a few lines of text, and the server then needs no dependency or thread for it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger("rune_proto.server")

REQUEST_TIMEOUT = 5.0  # a scraper that does not finish its request in this long is cut off
MAX_REQUEST = 8192  # bytes of request line and headers read at most
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass
class Histogram:
    """Counts of observations at or below each bucket's bound (cumulated when shown)."""

    bounds: Sequence[float] = COMMIT_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    observed: int = 0

    def observe(self, seconds: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.observed += 1


@dataclass(frozen=True)
class Family:
    """One metric: its name, type, help, and samples as (labels, value)."""

    name: str
    kind: str  # counter, gauge, histogram
    help: str
    samples: Sequence[tuple[dict[str, str], float]] = ()
    histogram: Histogram | None = None


def exposition(families: Iterable[Family]) -> str:
    """The Prometheus text format (version 0.0.4)."""
    lines: list[str] = []
    for family in families:
        lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
        for labels, value in family.samples:
            lines.append(f"{family.name}{_labels(labels)} {value:g}")
        if family.histogram is not None:
            lines += _histogram_lines(family.name, family.histogram)
    return "\n".join(lines) + "\n"


def _histogram_lines(name: str, histogram: Histogram) -> list[str]:
    counts = histogram.counts or [0] * (len(histogram.bounds) + 1)
    lines, running = [], 0
    for bound, count in zip((*histogram.bounds, float("inf")), counts, strict=True):
        running += count
        le = "+Inf" if bound == float("inf") else f"{bound:g}"
        lines.append(f'{name}_bucket{{le="{le}"}} {running}')
    lines += [f"{name}_sum {histogram.total:.6f}", f"{name}_count {histogram.observed}"]
    return lines


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return "{" + inner + "}"


async def start_metrics(
    host: str, port: int, render: Callable[[], Awaitable[str]]
) -> asyncio.Server:
    """Listen for scrapes: ``GET /metrics`` gets the text, anything else a 404."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].split(b" ")
            if len(target) >= 2 and target[0] == b"GET" and target[1] == b"/metrics":
                body = (await render()).encode()
                ctype = b"text/plain; version=0.0.4; charset=utf-8"
                writer.write(_response(b"200 OK", ctype, body))
            else:
                writer.write(_response(b"404 Not Found", b"text/plain", b"not found\n"))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a scraper that hung up or dawdled: nothing to say to it
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port, limit=MAX_REQUEST)


def _response(status_line: bytes, ctype: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status_line
        + b"\r\nContent-Type: "
        + ctype
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
