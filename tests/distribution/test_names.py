"""One name, one thing: a protocol constant is written once, and the server and the client
library do not give one class name to two different things (``ServerError`` was both the
operator's mistake and a server's error reply; ``Session`` both sides of a connection)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import rune_proto.client
import rune_proto.server.config
import rune_tui.cli
import rune_tui.screens.wizard
from rune_proto.transport import DEFAULT_PORT

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = sorted(
    p for package in ("rune_proto", "rune_tui") for p in (ROOT / package).rglob("*.py")
)
# Duplicates that predate this test, each a name for one idea in two modules; new ones fail.
KNOWN_CLASS_TWINS = {
    "Registered": {"rune_proto/events.py", "rune_tui/screens/wizard.py"},
    "WrongPassphrase": {"rune_proto/local/keystore.py", "rune_proto/secretbox.py"},
}


def _top_level(kind: type[ast.stmt]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in PRODUCT:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and kind is ast.ClassDef:
                found[node.name].add(str(path.relative_to(ROOT)))
            if isinstance(node, ast.Assign) and kind is ast.Assign:
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id].add(str(path.relative_to(ROOT)))
    return found


def test_the_default_port_is_written_once() -> None:
    assert _top_level(ast.Assign)["DEFAULT_PORT"] == {"rune_proto/transport.py"}
    assert DEFAULT_PORT == 7117  # docs/protocol.md §3
    for module in (rune_proto.client, rune_proto.server.config, rune_tui.cli):
        assert module.DEFAULT_PORT is DEFAULT_PORT
    assert rune_tui.screens.wizard.DEFAULT_PORT is DEFAULT_PORT


def test_no_class_name_names_two_things() -> None:
    twins = {name: paths for name, paths in _top_level(ast.ClassDef).items() if len(paths) > 1}
    assert twins == KNOWN_CLASS_TWINS
