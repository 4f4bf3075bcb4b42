"""Opening a PostgreSQL store: schema creation races, versions, durability, errors."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg
import pytest

from rune_proto.server.database import StoreError
from rune_proto.server.pg import schema
from rune_proto.server.pg.store import PgStore
from rune_proto.server.pg.url import is_postgres, masked
from tests.postgres import PostgresServer, free_port

from .stores import PgBackend


async def test_three_nodes_preparing_a_new_database_at_once_all_open(pg: PgBackend) -> None:
    stores = await asyncio.gather(*(PgStore.open(pg.url) for _ in range(3)))
    try:
        ids = await asyncio.gather(
            *(store.add_message("ann@x.example", b"x", 100) for store in stores)
        )
        assert all(ids)
    finally:
        for store in stores:
            await store.close()
    assert await pg.scalar("SELECT version FROM rune_schema") == schema.SCHEMA_VERSION
    assert await pg.scalar("SELECT COUNT(*) FROM rune_schema") == 1
    assert await pg.scalar("SELECT COUNT(*) FROM layout WHERE name = 'next_slot'") == 1


async def test_reopening_changes_nothing(pg: PgBackend) -> None:
    store = await PgStore.open(pg.url)
    message_id = await store.add_message("bo@x.example", b"kept", 100)
    await store.close()
    store = await PgStore.open(pg.url)
    try:
        assert message_id is not None
        assert await store.message("bo@x.example", message_id) == b"kept"
    finally:
        await store.close()


async def test_a_newer_schema_is_refused_and_left_alone(pg: PgBackend) -> None:
    await (await PgStore.open(pg.url)).close()
    await pg.execute("UPDATE rune_schema SET version = $1", schema.SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="newer than this rune-server"):
        await PgStore.open(pg.url)
    assert await pg.scalar("SELECT version FROM rune_schema") == schema.SCHEMA_VERSION + 1


async def test_commits_are_synchronous_even_when_the_database_says_off(
    pg: PgBackend, postgres: PostgresServer
) -> None:
    """A database default of ``off`` would acknowledge commits a crash can lose."""
    name = urlsplit(pg.url).path.lstrip("/")
    postgres.psql(f"ALTER DATABASE {name} SET synchronous_commit = off")
    plain = await asyncpg.connect(pg.url)
    try:
        assert await plain.fetchval("SHOW synchronous_commit") == "off"  # the default took
    finally:
        await plain.close()
    await (await PgStore.open(pg.url)).close()
    # What the group commit's own transaction runs with, seen from inside it.
    await pg.execute("CREATE TABLE seen (setting text)")
    await pg.execute(
        """CREATE FUNCTION note_setting() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO seen VALUES (current_setting('synchronous_commit'));
           RETURN NULL; END $$"""
    )
    await pg.execute(
        "CREATE TRIGGER note AFTER INSERT ON mailbox"
        " FOR EACH STATEMENT EXECUTE FUNCTION note_setting()"
    )
    store = await PgStore.open(pg.url)
    try:
        await asyncio.gather(*(store.add_message("cy@x.example", b"m", 10**6) for _ in range(20)))
        assert await store.delete_message(
            "cy@x.example", (await store.list_messages("cy@x.example"))[0][0]
        )
    finally:
        await store.close()
    assert await pg.scalar("SELECT COUNT(*) FROM seen") >= 1
    assert await pg.scalar("SELECT COUNT(*) FROM seen WHERE setting <> 'on'") == 0


async def test_unreachable_wrong_password_and_missing_database_are_clear_errors(
    postgres: PostgresServer,
) -> None:
    secret = "not-the-password-x9"
    url = postgres.dsn()
    parts = urlsplit(url)
    cases = {
        "refused": f"postgresql://rune:{secret}@127.0.0.1:{free_port()}/postgres",
        "password": url.replace(f":{postgres.password}@", f":{secret}@"),
        "database": parts._replace(path="/no_such_database").geturl(),
    }
    for case, bad in cases.items():
        with pytest.raises(StoreError) as failed:
            await PgStore.open(bad)
        message = str(failed.value)
        assert secret not in message and postgres.password not in message, case
        assert "***" in message, (case, message)
        assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_urls_are_recognised_and_masked() -> None:
    assert is_postgres("postgresql://u:p@h/d") and is_postgres("postgres://h/d")
    assert not is_postgres("/var/lib/rune/rune.db") and not is_postgres("rune.db")
    assert masked("postgresql://u:s3cret@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert masked("postgresql://h/d?password=s3cret&sslmode=require") == (
        "postgresql://h/d?password=***&sslmode=require"
    )
    assert masked("postgresql:///d") == "postgresql:///d"
