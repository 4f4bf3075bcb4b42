"""The doors between the packages, checked from the source with `ast`.

Every `import` counts as an edge, including the lazy ones inside functions and the ones
under `if TYPE_CHECKING:`: a lazy import hides a circle from the interpreter but not from
a reader, and a type-only one still ties the two modules together in the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rune_proto", "rune_tui")
# What the sans-I/O core may not touch: bytes in, events out.
CORE_FORBIDDEN = {"asyncio", "socket", "ssl", "sqlite3", "keyring", "textual"}
# The old names of the local-storage modules (now rune_proto/local/): re-exports kept so
# that existing imports work; the only core modules that may name rune_proto.local.
LOCAL_STORAGE_SHIMS = {"rune_proto.keystore", "rune_proto.atomicfile", "rune_proto.tomlfile"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every module named by an import anywhere in the file (absolute, dotted)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                keep = len(base) - node.level + (1 if is_package else 0)
                stem = ".".join(base[:keep])
                prefix = f"{stem}.{node.module}" if node.module else stem
            else:
                prefix = node.module or ""
            yield prefix
            for alias in node.names:
                yield f"{prefix}.{alias.name}"


def project_edges() -> dict[str, set[str]]:
    """module -> the project modules it imports (a package's __init__ counts as itself)."""
    modules = all_modules()
    edges: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {name for name in imported_names(module, path) if name in modules}
        targets.discard(module)
        edges[module] = targets
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def is_core(module: str) -> bool:
    return module.count(".") == 1 and module.startswith("rune_proto.")


def test_no_import_circles() -> None:
    edges = project_edges()
    # A package's __init__ that re-exports its modules is a door, not a room: leave
    # the edge from a module up to its own package out, or every re-export is a circle.
    for module, targets in edges.items():
        edges[module] = {t for t in targets if not module.startswith(t + ".")}
    assert circles(edges) == []


def test_the_core_does_no_network_database_keyring_or_terminal_io() -> None:
    """rune_proto/*.py is bytes in, events out; local storage lives in rune_proto/local/."""
    modules = all_modules()
    offenders: list[str] = []
    for module, path in modules.items():
        if not is_core(module):
            continue
        for name in imported_names(module, path):
            top = name.split(".")[0]
            if top in CORE_FORBIDDEN:
                offenders.append(f"{module} imports {name}")
            local = name.startswith("rune_proto.local")
            if local and module not in LOCAL_STORAGE_SHIMS:
                offenders.append(f"{module} imports {name} (local storage)")
    assert offenders == []


def test_rune_proto_never_imports_rune_tui() -> None:
    modules = all_modules()
    offenders = [
        f"{module} imports {name}"
        for module, path in modules.items()
        if module.startswith("rune_proto")
        for name in imported_names(module, path)
        if name.split(".")[0] == "rune_tui"
    ]
    assert offenders == []


def test_components_import_neither_screens_nor_the_service_layer() -> None:
    """Widgets talk to their screen with Textual messages; the screen holds the service."""
    edges = project_edges()
    offenders = [
        f"{module} imports {target}"
        for module, targets in edges.items()
        if module.startswith("rune_tui.components.")
        for target in targets
        if target.startswith(("rune_tui.screens", "rune_tui.service", "rune_tui.app"))
    ]
    assert offenders == []


def test_the_checker_sees_a_circle() -> None:
    """The circle finder itself: a made-up graph with one circle and one chain."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(edges) == [["a", "b", "c"]]


# Textual's private attributes the TUI once reached into; Textual 8 has public ways for
# these (active_bindings, BindingsMap, return_code), so a new use is a mistake.
TEXTUAL_PRIVATE = {"_bindings", "_keymap", "_exit", "_binding_chain", "_modal_binding_chain"}
# Where Textual 8 has no public equivalent: a screen renaming its own binding for one
# instance (Back, not Quit), and help reading a node's merged bindings (inherited and
# per-instance ones) with the app's keymap applied (App has set_keymap, no getter).
PRIVATE_ALLOWED = {
    ("rune_tui.screens.passphrase", "_bindings"),
    ("rune_tui.screens.help", "_bindings"),
    ("rune_tui.screens.help", "_keymap"),
}


def test_the_tui_uses_no_private_textual_attributes() -> None:
    offenders = [
        f"{module}:{node.lineno} uses .{node.attr}"
        for module, path in all_modules().items()
        if module.startswith("rune_tui")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and node.attr in TEXTUAL_PRIVATE
        and (module, node.attr) not in PRIVATE_ALLOWED
    ]
    assert offenders == []


def test_the_tui_uses_the_client_library_through_its_front_door() -> None:
    """rune_tui imports rune_proto.client (its __all__), never one of its modules."""
    edges = project_edges()
    offenders = [
        f"{module} imports {target}"
        for module, targets in edges.items()
        if module.startswith("rune_tui")
        for target in targets
        if target.startswith("rune_proto.client.")
    ]
    assert offenders == []
