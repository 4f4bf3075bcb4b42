"""What pyproject.toml promises a Python user: one version, bounded dependencies, dev tools
in a dependency group (not a published extra), typed packages, a lock that matches."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import rune_proto

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT: dict[str, Any] = PYPROJECT["project"]
LOCKS = ROOT / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", re.MULTILINE)
_HASHED = re.compile(r"^[A-Za-z0-9._-]+==.*\\\n\s+--hash=sha256:[0-9a-f]{64}", re.MULTILINE)


def _pins(lock: Path) -> dict[str, str]:
    return {_canonical(name): version for name, version in _PIN.findall(lock.read_text())}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("command", ["rune_proto.server", "rune_tui.cli"])
def test_both_commands_print_the_one_version(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", command, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    name = "rune-server" if "server" in command else "rune-tui"
    assert done.stdout == f"{name} {rune_proto.__version__}\n"


def test_the_version_is_written_only_in_rune_proto() -> None:
    assert "version" not in PROJECT
    assert PROJECT["dynamic"] == ["version"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "rune_proto.__version__"}


def test_licence_is_an_spdx_expression_with_its_file() -> None:
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_dev_tools_are_a_dependency_group_not_an_extra() -> None:
    assert "optional-dependencies" not in PROJECT
    dev = [Requirement(text).name for text in PYPROJECT["dependency-groups"]["dev"]]
    assert {"pytest", "mypy", "ruff", "pytest-textual-snapshot"} <= set(dev)


def test_every_dependency_has_an_upper_bound() -> None:
    for text in PROJECT["dependencies"] + PYPROJECT["dependency-groups"]["dev"]:
        operators = {spec.operator for spec in Requirement(text).specifier}
        assert operators & {"<", "<=", "~=", "=="}, f"{text} has no upper bound"


@pytest.mark.parametrize("package", ["rune_proto", "rune_tui"])
def test_packages_are_marked_typed_and_ship_the_marker(package: str) -> None:
    assert (ROOT / package / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"][package]


@pytest.mark.parametrize(
    ("lock", "groups"), [("runtime.lock", ()), ("dev.lock", ("dev",))], ids=["runtime", "dev"]
)
def test_each_lock_pins_every_direct_dependency_within_its_bounds(
    lock: str, groups: tuple[str, ...]
) -> None:
    """A stale lock (pyproject.toml changed, `make lock` not run) fails here."""
    pins = _pins(LOCKS / lock)
    wanted = PROJECT["dependencies"] + [
        text for group in groups for text in PYPROJECT["dependency-groups"][group]
    ]
    for text in wanted:
        requirement = Requirement(text)
        version = pins.get(_canonical(requirement.name))
        assert version is not None, f"{lock} does not pin {requirement.name}: run make lock"
        assert requirement.specifier.contains(version), f"{lock}: {requirement.name}=={version}"
    hashed = _HASHED.findall((LOCKS / lock).read_text())
    assert len(hashed) == len(pins), f"{lock}: every pin needs --hash (pip --require-hashes)"


def test_both_locks_agree_on_shared_versions() -> None:
    runtime, dev = _pins(LOCKS / "runtime.lock"), _pins(LOCKS / "dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
