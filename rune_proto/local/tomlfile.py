"""Read and write the small TOML files Rune keeps (configs, contacts).

Reading is :mod:`tomllib`. A file Rune owns whole (contacts) is written by ``tomli-w``;
a file a user may edit by hand (rune-tui's config) is updated with ``tomlkit``, which
keeps the user's comments and layout around the values it changes. Writes are atomic
(temporary file, then rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import tomli_w

from .atomicfile import write_atomically


class TomlError(ValueError):
    """A TOML file could not be read or a value cannot be written."""


def dumps(data: Mapping[str, Any]) -> str:
    """The whole document as TOML: top-level values first, then one table per mapping."""
    try:
        return tomli_w.dumps(data)
    except TypeError as exc:
        raise TomlError(f"cannot write this to TOML: {exc}") from exc


def write(path: Path, data: Mapping[str, Any], *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (a file Rune owns: nothing in it is kept)."""
    _write_text(path, dumps(data), mode)


def update(path: Path, data: Mapping[str, Any], *, mode: int = 0o600) -> None:
    """Make ``path`` hold exactly ``data`` while keeping the comments and layout around it.

    For a file a person edits: values that did not change keep their formatting, changed
    ones keep their comments, keys absent from ``data`` are removed. A missing file is
    written as :func:`write` would; a file that is not TOML is a :class:`TomlError`.
    """
    # Imported here: tomlkit takes ~40 ms to import, and rune-tui's start-up only reads.
    import tomlkit
    import tomlkit.exceptions

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        write(path, data, mode=mode)
        return
    except UnicodeDecodeError as exc:
        raise TomlError(f"{path} is not valid TOML: {exc}") from exc
    try:
        doc = tomlkit.parse(text)
        _merge(doc, data)
        new_text = tomlkit.dumps(doc)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise TomlError(f"{path} is not valid TOML: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise TomlError(f"cannot write this to TOML: {exc}") from exc
    if new_text != text:
        _write_text(path, new_text, mode)


def _merge(target: MutableMapping[str, Any], data: Mapping[str, Any]) -> None:
    """Change ``target`` (a tomlkit container) in place until it equals ``data``."""
    for key in [k for k in target if k not in data]:
        del target[key]
    for key, value in data.items():
        existing = target.get(key)
        if value and isinstance(value, Mapping) and isinstance(existing, MutableMapping):
            _merge(existing, value)
        elif key not in target or _plain(existing) != _plain(value):
            # tomlkit keeps the old item's comment; an emptied table is replaced, since
            # tomlkit would drop a [table] whose sub-tables were all removed
            target[key] = value


def _plain(value: object) -> object:
    """A tomlkit item as the Python value it stands for, for comparing."""
    unwrap = getattr(value, "unwrap", None)
    if callable(unwrap):
        return unwrap()
    if isinstance(value, tuple):
        return list(value)
    return value


def _write_text(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text.encode("utf-8"), prefix=f".{path.name}.", mode=mode)


def read(path: Path) -> dict[str, Any]:
    """The parsed file, or an empty dict if it does not exist."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TomlError(f"{path} is not valid TOML: {exc}") from exc
