"""The private PostgreSQL the tests start: reachable, durable settings, isolated databases."""

from __future__ import annotations

from tests.postgres import PostgresServer


def test_cluster_is_durable_and_loopback_only(postgres: PostgresServer) -> None:
    settings = postgres.psql(
        "SELECT current_setting('fsync'), current_setting('synchronous_commit'),"
        " current_setting('listen_addresses')"
    ).strip()
    assert settings == "on|on|127.0.0.1"


def test_new_databases_are_separate(postgres: PostgresServer) -> None:
    first, second = postgres.new_database(), postgres.new_database()
    assert first != second
    name = first.rsplit("/", 1)[1]
    postgres.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", name)
    assert postgres.psql("SELECT count(*) FROM t", name).strip() == "1"
    other = second.rsplit("/", 1)[1]
    assert (
        postgres.psql("SELECT count(*) FROM pg_tables WHERE tablename = 't'", other).strip() == "0"
    )
