"""How the server's log lines look: a level, and plain, timestamped or JSON lines.

The default stays ``plain`` (``rune-server: LEVEL: message``) without a timestamp: the
log holds counts and codes only, and the time of each event is itself something the
privacy audit keeps out of it (tests/hardening/test_privacy_audit.py); under systemd
the journal stamps every line anyway. ``timestamped`` adds an ISO 8601 UTC time to
each line, ``json`` writes one object a line (``time``, ``level``, ``message``) for
log shippers. Chosen in config.toml (``log_format``, ``log_level``).
"""

from __future__ import annotations

import json
import logging
import sys
import time

LOG_FORMATS = ("plain", "timestamped", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
PLAIN = "rune-server: %(levelname)s: %(message)s"


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


class _JSONFormatter(_UTCFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": self.formatTime(record),
                "level": record.levelname.lower(),
                "message": record.getMessage(),
            }
        )


class _Tagged(logging.Filter):
    """Puts ``tag`` before each message: which worker process wrote it (workers.py)."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = f"{self.tag}{record.getMessage()}"
        record.args = None
        return True


def configure(log_format: str = "plain", level: str = "info", tag: str = "") -> None:
    """(Re)configure the root handler on stderr; ``tag`` starts every message."""
    handler = logging.StreamHandler(sys.stderr)
    if tag:
        handler.addFilter(_Tagged(tag))
    if log_format == "json":
        handler.setFormatter(_JSONFormatter())
    elif log_format == "timestamped":
        handler.setFormatter(_UTCFormatter("%(asctime)s " + PLAIN))
    else:
        handler.setFormatter(logging.Formatter(PLAIN))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
