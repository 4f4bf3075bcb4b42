"""Which store a data directory names, and how a database URL is shown (dburl.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rune_proto.server.config import DataDir, OperatorError, ServerConfig
from rune_proto.server.dburl import check_url, locate, masked


def test_the_config_key_or_the_option_names_postgresql_else_the_sqlite_file(
    tmp_path: Path,
) -> None:
    data = DataDir(tmp_path)
    plain = ServerConfig(domain="example")
    assert locate(data, plain, None).url is None
    assert locate(data, plain, None).path == data.database
    configured = ServerConfig(domain="example", database="postgresql://rune@db/rune")
    assert locate(data, configured, None).url == "postgresql://rune@db/rune"
    override = locate(data, configured, "postgres://other@db2:6543/x")
    assert override.url == "postgres://other@db2:6543/x" and override.is_postgres
    assert locate(data, plain, "postgresql:///rune").is_postgres  # the local socket


@pytest.mark.parametrize(
    ("url", "word"),
    [
        ("sqlite:///var/lib/rune/rune.db", "postgresql://"),
        ("/var/lib/rune/rune.db", "postgresql://"),
        ("postgresql://rune:pw@db:70000/rune", "port"),
        ("postgresql://rune:pw@db:port/rune", "port"),
    ],
)
def test_a_bad_url_is_a_clear_error_without_its_password(url: str, word: str) -> None:
    with pytest.raises(OperatorError, match=word) as caught:
        check_url(url)
    assert "pw" not in str(caught.value).replace("postgresql", "")


def test_a_password_is_masked_in_the_authority_and_the_query() -> None:
    assert masked("postgresql://rune:s3cret@db:5432/rune") == "postgresql://rune:***@db:5432/rune"
    assert "s3cret" not in masked("postgresql://rune@db/rune?password=s3cret&sslmode=require")
    assert masked("postgresql://rune@db/rune") == "postgresql://rune@db/rune"
