"""The wheel, installed in a fresh venv (not the source tree), runs both commands.

It builds the wheel from a clean copy of the sources (a stale build/ folder cannot leak
into it), installs it with requirements/runtime.lock into a new venv, and from a folder
outside the source tree runs ``--version`` of both commands, ``rune-server init``,
``fingerprint`` and ``serve`` until it listens. It needs the package index for the new
venv, so ``make test`` skips it and ``make wheel-check`` (called by .ci/run) runs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest

import rune_proto

pytestmark = pytest.mark.skipif(
    os.environ.get("RUNE_WHEEL_CHECK") != "1",
    reason="builds and installs the wheel: run by make wheel-check (RUNE_WHEEL_CHECK=1)",
)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "rune_proto", "rune_tui", "docs")
INSTALL_TIMEOUT = 600.0
COMMAND_TIMEOUT = 60.0
READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    work: Path  # a folder outside the source tree, the commands' working directory


def _run(*args: str | Path, cwd: Path, timeout: float = COMMAND_TIMEOUT) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel-check")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(path, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    dist = work / "dist"
    # The build backend is the locked one in this venv: no index needed for the build.
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    _run(*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, source,
         cwd=work, timeout=INSTALL_TIMEOUT)  # fmt: skip
    (wheel,) = dist.glob("rune-*.whl")
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=work)
    new_pip = (venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check")
    lock = ROOT / "requirements" / "runtime.lock"
    _run(*new_pip, "install", "--quiet", "--require-hashes", "-r", lock,
         cwd=work, timeout=INSTALL_TIMEOUT)  # fmt: skip
    _run(*new_pip, "install", "--quiet", "--no-deps", wheel, cwd=work, timeout=INSTALL_TIMEOUT)
    return Installed(wheel=wheel, bin=venv / "bin", work=work)


def test_the_wheel_metadata(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    assert metadata["Version"] == rune_proto.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("Provides-Extra") is None  # dev tools are not a published extra
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    for shipped in ("rune_proto/py.typed", "rune_tui/py.typed", "rune_tui/help.md"):
        assert shipped in names
    assert not [n for n in names if n.startswith("tests/")]


def test_both_commands_answer_version_from_the_wheel(installed: Installed) -> None:
    for command in ("rune-server", "rune-tui"):
        out = _run(installed.bin / command, "--version", cwd=installed.work)
        assert out == f"{command} {rune_proto.__version__}\n"


def test_the_installed_packages_are_not_the_source_tree(installed: Installed) -> None:
    code = (
        "import rune_proto, rune_tui.app as app; "
        "print(rune_proto.__file__); print(app.SETTINGS_DOC); print(app.SETTINGS_DOC.read_text())"
    )
    out = _run(installed.bin / "python", "-c", code, cwd=installed.work)
    module, settings, text = out.split("\n", 2)
    venv = installed.bin.parent
    assert Path(module).is_relative_to(venv)
    assert Path(settings).is_relative_to(venv) and not Path(settings).is_symlink()
    assert text.rstrip("\n") == (ROOT / "docs" / "settings.md").read_text().rstrip("\n")


def test_rune_server_init_and_serve_from_the_wheel(installed: Installed) -> None:
    server = installed.bin / "rune-server"
    passphrase = installed.work / "passphrase"
    passphrase.write_text("a wheel-check passphrase\n")
    passphrase.chmod(0o600)
    data = installed.work / "data"
    created = _run(server, "init", "--data-dir", data, "--domain", "wheel",
                   "--passphrase-file", passphrase, cwd=installed.work)  # fmt: skip
    assert created.startswith(f"created {data}")
    prints = _run(server, "fingerprint", "--data-dir", data, cwd=installed.work)
    assert "sha256:" in prints

    log = installed.work / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [server, "serve", "--data-dir", data, "--port", "0", "--passphrase-file", passphrase],
            cwd=installed.work,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "listening on" not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, f"not ready:\n{log.read_text()}"
            time.sleep(0.02)  # polling the log for the ready line, bounded by the deadline
        assert "rune-server listening on 127.0.0.1:" in log.read_text(), log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=COMMAND_TIMEOUT) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=COMMAND_TIMEOUT)
    assert "Traceback" not in log.read_text()
