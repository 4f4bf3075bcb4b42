"""Operating rune-server on PostgreSQL: ``--database``, the config key, and its mistakes.

Real processes (``rune-server`` as a subprocess) against the tests' private cluster.
Every mistake with a database (a bad URL, nobody listening, a wrong password, a
missing database) is one line on stderr and exit 2, with the password masked.
"""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from rune_proto.server.config import DataDir
from rune_proto.server.dburl import masked
from tests.postgres import PostgresServer, free_port
from tests.server.conftest import register_user
from tests.server_process import RuneServerProcess, ServerFactory, run_cli


def _passphrase(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase"
    path.write_text(secrets.token_urlsafe(12) + "\n")
    return path


def _init(tmp_path: Path, url: str) -> tuple[DataDir, Path, object]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = DataDir(tmp_path / "data")
    passphrase = _passphrase(tmp_path)
    result = run_cli(
        "init",
        "--data-dir",
        str(data.root),
        "--domain",
        "example",
        "--passphrase-file",
        str(passphrase),
        "--database",
        url,
    )
    return data, passphrase, result


def test_init_prepares_the_schema_and_records_the_url_owner_only(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.new_database()
    data, _, result = _init(tmp_path, url)
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert postgres.password not in out and masked(url) in out
    assert stat.S_IMODE(data.config.stat().st_mode) == 0o600
    assert f'database = "{url}"' in data.config.read_text()
    assert not data.database.exists()  # no SQLite file beside it
    name = url.rsplit("/", 1)[1]
    assert postgres.psql("SELECT version FROM rune_schema", name).strip() == "1"
    status = run_cli("status", "--data-dir", str(data.root))
    assert status.returncode == 0, status.stderr
    assert "accounts 0" in status.stdout and postgres.password not in status.stdout


def _bad_urls(postgres: PostgresServer) -> dict[str, tuple[str, str]]:
    """name -> (URL, a word of the expected one-line message)."""
    good = postgres.dsn("postgres")
    return {
        "scheme": ("mysql://rune:pw@127.0.0.1/db", "postgresql://"),
        "port": (f"postgresql://rune:{postgres.password}@127.0.0.1:99999/x", "port"),
        "refused": (
            f"postgresql://rune:{postgres.password}@127.0.0.1:{free_port()}/x",
            "refused",
        ),
        "password": (good.replace(postgres.password, "wrong-" + postgres.password), "password"),
        "missing": (postgres.dsn(f"nowhere_{secrets.token_hex(3)}"), "does not exist"),
    }


@pytest.mark.parametrize("mistake", ["scheme", "port", "refused", "password", "missing"])
def test_a_database_mistake_is_one_line_exit_2_password_masked(
    postgres: PostgresServer, rune_server: ServerFactory, tmp_path: Path, mistake: str
) -> None:
    url, word = _bad_urls(postgres)[mistake]
    server: RuneServerProcess = rune_server()  # a SQLite data dir; --database overrides it
    data = str(server.data_dir)
    passphrase = str(server.passphrase_file)
    attempts = [
        ("serve", "--data-dir", data, "--port", "0", "--passphrase-file", passphrase),
        ("invite", "--data-dir", data, "someone@" + server.domain),
        ("accounts", "list", "--data-dir", data),
        ("status", "--data-dir", data),
    ]
    for args in attempts:
        result = run_cli(*args, "--database", url)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result)
        assert len(lines) == 1 and "Traceback" not in result.stderr, (args, result.stderr)
        assert word in lines[0], (args, lines)
        assert "wrong-" not in lines[0] and postgres.password not in lines[0], lines
    _, _, init = _init(tmp_path / "fresh", url)
    assert init.returncode == 2, init  # type: ignore[attr-defined]
    assert not (tmp_path / "fresh" / "data").exists()  # nothing half-made is left
    assert postgres.password not in init.stderr  # type: ignore[attr-defined]


def test_backup_on_postgresql_names_its_tools(
    postgres: PostgresServer, rune_server: ServerFactory, tmp_path: Path
) -> None:
    server = rune_server(database=postgres.new_database())
    result = run_cli("backup", "--data-dir", str(server.data_dir), str(tmp_path / "copy.db"))
    assert result.returncode == 2
    assert "pg_dump" in result.stderr and "pg_basebackup" in result.stderr
    assert postgres.password not in result.stderr
    assert not (tmp_path / "copy.db").exists()


def test_init_refuses_a_database_that_already_serves_accounts(
    postgres: PostgresServer, rune_server: ServerFactory, tmp_path: Path
) -> None:
    """A second server's keys on the first one's data: clients would pin other keys."""
    url = postgres.new_database()
    server = rune_server(database=url)
    register_user(server)
    _, _, result = _init(tmp_path / "other", url)
    assert result.returncode == 2  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and "already holds a Rune store with 1 account" in lines[0]
    assert postgres.password not in lines[0]
    assert not (tmp_path / "other" / "data").exists()
