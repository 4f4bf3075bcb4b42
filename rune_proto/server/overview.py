"""``rune-server status``: the store and the disk at a glance, safe while the server runs.

Reads the database (aggregates only: the same counts the metrics give, never an
address) and the file system; if ``metrics_port`` is set, also asks the running
server's metrics listener for its live counts.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

from . import schema
from .config import DataDir, OperatorError, ServerConfig
from .diskspace import RESERVE_NAME

MIB = 1024 * 1024
LIVE = ("rune_connections_open", "rune_connections_total", "rune_limit_hits_total")


def status_lines(data: DataDir, config: ServerConfig) -> list[str]:
    database = data.database
    if not database.is_file():
        raise OperatorError(f"no database at {database}")
    try:
        db = sqlite3.connect(database, isolation_level=None, timeout=5)
        try:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            (accounts,) = db.execute("SELECT COUNT(*) FROM accounts").fetchone()
            messages, size = db.execute(
                "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM usage"
            ).fetchone()
            counters = _count(db, "limits")
            throttled = _count(db, "failures")
            invitations = _count(db, "invitations")
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise OperatorError(f"cannot read the database: {exc}") from exc
    disk = os.statvfs(data.root)
    wal = Path(f"{database}-wal")
    lines = [
        f"schema version {version} (this rune-server: {schema.SCHEMA_VERSION})",
        f"accounts {accounts}, unused invitations {invitations}",
        f"messages stored {messages} ({size / MIB:.1f} MiB)",
        f"database file {database.stat().st_size / MIB:.1f} MiB,"
        f" WAL {(wal.stat().st_size if wal.exists() else 0) / MIB:.1f} MiB",
        f"disk free {disk.f_bavail * disk.f_frsize / MIB:.0f} MiB,"
        f" reserve {'present' if (data.root / RESERVE_NAME).exists() else 'MISSING'}"
        f" ({config.disk_reserve_mib:g} MiB configured)",
        f"abuse-limit counters active {counters}, throttled keys {throttled}",
    ]
    return lines + live_lines(config)


def _count(db: sqlite3.Connection, table: str) -> int:
    try:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # an older schema without the table
        return 0


def live_lines(config: ServerConfig) -> list[str]:
    """The live counts from the metrics listener, summed over every worker's
    (``workers`` N: ports ``metrics_port`` to ``metrics_port + N - 1``)."""
    if not config.metrics_port:
        return ["live counts: metrics_port is off"]
    totals: dict[str, float] = {}
    silent: list[str] = []
    for port in range(config.metrics_port, config.metrics_port + config.workers):
        url = f"http://{config.metrics_bind}:{port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError):
            silent.append(url)
            continue
        for line in text.splitlines():
            if line.startswith(LIVE):
                name, _, value = line.rpartition(" ")
                totals[name] = totals.get(name, 0.0) + float(value)
    if len(silent) == config.workers:
        return [f"live counts: no answer from {silent[0]} (is the server running?)"]
    lines = [f"live {name} {value:g}" for name, value in totals.items()]
    return lines + [f"live counts: no answer from {url}" for url in silent]
