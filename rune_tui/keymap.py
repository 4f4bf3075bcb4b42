"""Every binding id of the app, found in the code, so a user's [keymap] can be checked.

The ids are collected from the ``BINDINGS`` of every screen and widget class defined in
``rune_tui`` (importing its modules), so a new binding is known here the moment it is
written. docs/settings.md lists them; a test keeps the two in step.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

from textual.binding import Binding
from textual.dom import DOMNode

# Modules that do something when imported, rather than define things.
_SKIP = frozenset({"rune_tui.__main__"})


@dataclass(frozen=True, slots=True)
class BindingInfo:
    id: str
    keys: str
    description: str
    owner: str  # the class that declares it


def _subclasses(cls: type[DOMNode]) -> list[type[DOMNode]]:
    found: list[type[DOMNode]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def binding_ids() -> dict[str, BindingInfo]:
    """binding id → where it is declared and its default keys, for every rune_tui class."""
    import rune_tui

    for module in pkgutil.walk_packages(rune_tui.__path__, "rune_tui."):
        if module.name not in _SKIP:
            importlib.import_module(module.name)
    found: dict[str, BindingInfo] = {}
    for cls in _subclasses(DOMNode):
        if not cls.__module__.startswith("rune_tui"):
            continue
        for binding in cls.__dict__.get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id:
                found.setdefault(
                    binding.id,
                    BindingInfo(binding.id, binding.key, binding.description, cls.__name__),
                )
    return found


def unknown_ids(keymap: dict[str, str]) -> list[str]:
    """The ids in a user's keymap that no binding has (typos, or renamed bindings)."""
    known = binding_ids()
    return sorted(binding_id for binding_id in keymap if binding_id not in known)
