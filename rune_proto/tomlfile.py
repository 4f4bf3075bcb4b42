"""Read and write the small TOML files Rune keeps (configs, contacts).

Reading is :mod:`tomllib`. Writing covers what we store — tables of strings,
integers, floats, booleans and lists of those — so we need no extra dependency.
Writes are atomic (temporary file, then rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomicfile import write_atomically

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class TomlError(ValueError):
    """A TOML file could not be read or a value cannot be written."""


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML; TOML also forbids a raw DEL.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TomlError(f"cannot write a {type(value).__name__} to TOML")


def dumps(data: Mapping[str, Any]) -> str:
    """Top-level scalars first, then one ``[table]`` per nested mapping (any depth)."""
    lines: list[str] = []

    def emit(table: Mapping[str, Any], path: list[str]) -> None:
        scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            if lines:
                lines.append("")
            lines.append("[" + ".".join(_key(p) for p in path) + "]")
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars)
        for k, v in tables:
            emit(v, [*path, k])

    emit(data, [])
    return "\n".join(lines) + "\n"


def write(path: Path, data: Mapping[str, Any], *, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, dumps(data).encode("utf-8"), prefix=f".{path.name}.", mode=mode)


def read(path: Path) -> dict[str, Any]:
    """The parsed file, or an empty dict if it does not exist."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TomlError(f"{path} is not valid TOML: {exc}") from exc
