"""The documented deployment files (docs/deploy/): tests run what operators copy.

``settings(name)`` reads one of the ``*.toml`` files: the keys docs/deploy.md tells an
operator to set in ``config.toml``. Tests replace only what must differ on a test
machine (the database URL, the port: each test gets its own).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


def settings(name: str, **replaced: Any) -> dict[str, Any]:
    """``docs/deploy/<name>``'s keys, ``port`` left out (tests serve on a free one) and
    ``replaced`` (say, ``database=``) put in; each replaced key must be in the file."""
    values = tomllib.loads((DEPLOY / name).read_text())
    missing = set(replaced) - set(values)
    if missing:
        raise KeyError(f"{DEPLOY / name} has no {sorted(missing)}")
    values.pop("port", None)
    return {**values, **replaced}
