"""Fixtures of the PostgreSQL store tests: a fresh database each, and either store."""

from __future__ import annotations

from pathlib import Path

import pytest

from rune_proto.server.database import Database
from tests.postgres import PostgresServer

from .stores import Backend, PgBackend, SQLiteBackend


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database (no Rune tables until a store opens it)."""
    return postgres.new_database()


@pytest.fixture
def pg(pg_url: str) -> PgBackend:
    return PgBackend(pg_url)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The SQLite store on a new file, or the PostgreSQL store on a new database."""
    if request.param == "sqlite":
        path = tmp_path / "rune.db"
        Database.create(path)
        return SQLiteBackend(path)
    url: str = request.getfixturevalue("pg_url")
    return PgBackend(url)
