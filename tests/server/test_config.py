"""config.toml: init writes it whole and atomically, load checks each value's real type and
names the key and its line when something is wrong."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from rune_proto.server.config import DataDir, OperatorError, ServerConfig, load_config, write_config
from rune_proto.server.datadir import create_data_dir


def test_init_then_load_gives_the_same_config(tmp_path: Path) -> None:
    config = ServerConfig(
        domain="example",
        welcome='Say "hi" \\ then go',
        registration="both",
        port=7200,
        max_payload_mib=0.5,
        throttle_delay=0.25,
        memory_budget_mib=32,
        login_reserved_connections=0,
    )
    prints = create_data_dir(DataDir(tmp_path / "data"), config, "a passphrase")
    path = tmp_path / "data" / "config.toml"
    assert load_config(path) == config
    assert prints.domain == "example"
    text = path.read_text()
    assert text.startswith("# rune-server configuration")
    assert "handshake_timeout = 10" in text and "max_anonymous_per_source = 64" in text
    assert path.stat().st_mode & 0o777 == 0o644  # as docs/server.md says: no secrets in it


def test_every_key_is_written(tmp_path: Path) -> None:
    """Every key but ``database``, which is absent for the SQLite file (its default)."""
    path = tmp_path / "config.toml"
    write_config(path, ServerConfig(domain="example"))
    text = path.read_text()
    for field in fields(ServerConfig):
        assert (f"\n{field.name} = " in text) == (field.name != "database")


def test_a_database_url_is_written_owner_only_and_read_back(tmp_path: Path) -> None:
    """A URL may hold a password: the file is 0600 then, and the key round-trips."""
    path = tmp_path / "config.toml"
    url = "postgresql://rune:s3cret@db.example:5432/rune"
    write_config(path, ServerConfig(domain="example", database=url))
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_config(path).database == url


def _config_with(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'# my server\ndomain = "example"\n\n{lines}\n')
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('port = "7117"', "port must be a whole number, not text"),
        ("max_line = true", "max_line must be a whole number, not a boolean"),
        ("max_connections = 2.5", "max_connections must be a whole number, not a decimal"),
        ("idle_timeout = false", "idle_timeout must be a number, not a boolean"),
        ("welcome = 3", "welcome must be text in quotes, not a whole number"),
        ("registration = ['free']", "registration must be text in quotes, not an array"),
        ("portt = 7117", "unknown key 'portt'"),
        ("'max lines' = 1", "unknown key 'max lines'"),
        ("[limits]\nx = 1", "unknown key 'limits'"),
    ],
)
def test_a_wrong_type_or_an_unknown_key_names_the_key_and_its_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = _config_with(tmp_path, line)
    with pytest.raises(OperatorError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}, line 4: {message}")


def test_numbers_may_be_whole_where_a_float_is_expected(tmp_path: Path) -> None:
    path = _config_with(tmp_path, "idle_timeout = 30\nthrottle_delay = 0.25")
    config = load_config(path)
    assert config.idle_timeout == 30 and config.throttle_delay == 0.25


def test_a_missing_domain_and_bad_toml_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("port = 7117\n")
    with pytest.raises(OperatorError, match="the domain key is missing"):
        load_config(path)
    path.write_text("port = = 7117\n")
    with pytest.raises(OperatorError, match=r"not valid TOML.*line 1"):
        load_config(path)


# A real failed write: the file size limit stops it part-way (EFBIG), in a child process
# so the limit touches nothing else.
_WRITE_UNDER_A_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from rune_proto.server.config import DataDir, ServerConfig, write_config
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))
try:
    write_config(Path(sys.argv[1]), ServerConfig(domain="changed"))
except OSError as exc:
    print(exc.errno)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_failed_write_leaves_the_old_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_config(path, ServerConfig(domain="example", port=7200))
    before = path.read_bytes()
    assert len(before) > 100
    result = subprocess.run(
        [sys.executable, "-c", _WRITE_UNDER_A_SIZE_LIMIT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == str(errno.EFBIG)
    assert path.read_bytes() == before
    assert load_config(path) == ServerConfig(domain="example", port=7200)
    assert os.listdir(tmp_path) == ["config.toml"]  # no temporary file left behind
