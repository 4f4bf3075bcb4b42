"""The systemd unit of docs/operations.md: valid for systemd, and sized for the server."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rune_proto.server.config import ServerConfig
from rune_proto.server.service import SHUTDOWN_GRACE

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "rune-server.service"


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_the_unit_fits_the_server() -> None:
    service = _service()
    assert int(service["TimeoutStopSec"]) > SHUTDOWN_GRACE
    assert int(service["LimitNOFILE"]) >= 4 * ServerConfig(domain="example").max_connections
    assert "%d/passphrase" in service["ExecStart"] and "LoadCredential" in service
    assert service["UMask"] == "0077" and service["NoNewPrivileges"] == "yes"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    rune_server = Path(sys.executable).with_name("rune-server")
    unit = tmp_path / "rune-server.service"  # the same unit, with this venv's binary
    unit.write_text(UNIT.read_text().replace("/opt/rune/.venv/bin/rune-server", str(rune_server)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "rune-server.service" not in result.stderr, result.stderr
