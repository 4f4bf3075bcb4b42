"""Shared fixtures: a private Secret Service, and isolation from the developer's own setup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres import PostgresServer, postgres_cluster
from tests.secret_service import SecretServiceDaemons, secret_service_session, start_secret_service

# Fixtures that bring their own keyring; every other test gets keyring's fail backend.
_KEYRING_FIXTURES = {"secret_service", "locked_secret_service"}


@pytest.fixture(autouse=True)
def _colour_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR in a developer's shell would change Textual's output and break snapshots."""
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture(autouse=True)
def _no_real_keyring(request: pytest.FixtureRequest) -> Iterator[None]:
    """Keep tests away from the developer's login keyring: no test may write a key there."""
    if _KEYRING_FIXTURES.intersection(request.fixturenames):
        yield
        return
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
        try:
            yield
        finally:
            keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def secret_service() -> Iterator[SecretServiceDaemons]:
    """A private D-Bus session bus with an unlocked gnome-keyring, for the whole run.

    Sets DBUS_SESSION_BUS_ADDRESS and PYTHON_KEYRING_BACKEND, and makes ``keyring`` use its
    SecretService backend. Skips if the programs are missing (fails if RUNE_REQUIRE_KEYRING=1).
    """
    with secret_service_session() as daemons:
        yield daemons


@pytest.fixture
def locked_secret_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretServiceDaemons]:
    """A separate Secret Service whose login keyring is locked (so the shared one stays open)."""
    import keyring
    from keyring.backends import SecretService

    try:
        daemons = start_secret_service()
    except RuntimeError as e:
        pytest.fail(str(e))
    previous = keyring.get_keyring()
    try:
        daemons.lock_login_collection()
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", daemons.bus_address)
        keyring.set_keyring(SecretService.Keyring())
        yield daemons
    finally:
        keyring.set_keyring(previous)
        daemons.stop()


# A real rune-server process (the rune_server factory fixture), for server and client tests.
pytest_plugins = ["tests.server_process"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL on 127.0.0.1 for the whole run (tests/postgres.py).

    Skips if PostgreSQL is not installed (fails if RUNE_REQUIRE_POSTGRES=1). Ask it for a
    fresh database per test with ``postgres.new_database()``.
    """
    with postgres_cluster() as server:
        yield server
