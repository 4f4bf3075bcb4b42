"""Database URLs: which store a setting names, and how to print one safely.

No asyncpg here: the CLI and the config read this to decide, and only a
``postgresql://`` URL brings the driver in.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")


def is_postgres(database: str) -> bool:
    """Whether ``database`` names a PostgreSQL database (else it is a SQLite file)."""
    return urlsplit(database).scheme.lower() in SCHEMES


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and error messages)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable database URL>"
    if password is None and "password=" not in parts.query.lower():
        return url
    if password is not None:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    # libpq also takes the password as a query parameter
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(query=query))
