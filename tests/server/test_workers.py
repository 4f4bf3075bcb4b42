"""``serve --workers`` (issue 14): what holds without PostgreSQL. The worker processes
themselves are tested on PostgreSQL in tests/pg/test_workers.py."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from pathlib import Path

import pytest

from rune_proto.server.config import DataDir, ServerConfig, load_config, write_config
from rune_proto.server.workers import share_limits, worker_metrics_port
from tests.server_process import run_cli


def _data_dir(tmp_path: Path) -> tuple[DataDir, Path]:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(secrets.token_urlsafe(12) + "\n")
    data = DataDir(tmp_path / "data")
    result = run_cli(
        "init", "--data-dir", str(data.root), "--domain", "example",
        "--passphrase-file", str(passphrase),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return data, passphrase


def _serve(data: DataDir, passphrase: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli(
        "serve", "--data-dir", str(data.root), "--port", "0",
        "--passphrase-file", str(passphrase), *extra,
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("where", ["option", "config"])
def test_sqlite_refuses_more_than_one_worker_with_the_reason(tmp_path: Path, where: str) -> None:
    data, passphrase = _data_dir(tmp_path)
    if where == "config":
        write_config(data.config, ServerConfig(**{**_fields(data), "workers": 2}))
        code, out, err = _serve(data, passphrase)
    else:
        code, out, err = _serve(data, passphrase, "--workers", "2")
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "--workers 2 needs PostgreSQL" in lines[0]
    assert "WAL" in lines[0] and "WAIT" in lines[0]
    assert "Traceback" not in err


def test_a_worker_count_out_of_range_is_refused(tmp_path: Path) -> None:
    data, passphrase = _data_dir(tmp_path)
    code, _, err = _serve(data, passphrase, "--workers", "0")
    assert code == 2 and err.strip() == "rune-server: --workers is 1 to 64"
    text = data.config.read_text()
    data.config.write_text(text.replace("workers = 1", "workers = 0"))
    code, _, err = _serve(data, passphrase)
    assert code == 2 and err.strip() == "rune-server: config: workers is 1 to 64"


def test_the_limits_are_the_whole_servers_split_across_the_workers() -> None:
    whole = ServerConfig(
        domain="example",
        max_connections=300,
        login_reserved_connections=64,
        memory_budget_mib=64,
        metrics_port=9100,
        database_pool=9,
    )
    share = share_limits(whole, 2)
    assert share.max_connections * 2 == 300
    assert share.login_reserved_connections * 2 == 64
    assert share.memory_budget * 2 == whole.memory_budget
    assert share.database_pool == 4  # 2 x 4 <= 9
    assert share_limits(whole, 8).database_pool == 2  # the least a worker works with
    assert share.max_anonymous_per_source == whole.max_anonymous_per_source
    three = share_limits(whole, 3)
    assert three.max_connections * 3 <= 300 and three.login_reserved_connections * 3 <= 64
    assert share_limits(whole, 1) == whole
    assert share_limits(ServerConfig(domain="example", max_connections=1), 4).max_connections == 1
    assert [worker_metrics_port(whole, slot) for slot in range(2)] == [9100, 9101]
    assert worker_metrics_port(ServerConfig(domain="example"), 1) == 0


def _fields(data: DataDir) -> dict[str, object]:
    return asdict(load_config(data.config))
