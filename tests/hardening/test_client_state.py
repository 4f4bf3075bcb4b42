"""connect() does not silently forget: without a contact book and a replay log, a
state directory, or an explicit ``ephemeral=True``, it refuses (issue 11, part D).

Before, it made in-memory ones, so a library user got no key pinning and no replay
detection beyond one session, and never knew it.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from rune_proto.client import ClientError, ReplayLog, connect
from rune_proto.client.state import CONTACTS_FILE, account_folder_name
from rune_proto.client.vault import Vault
from rune_proto.local import tomlfile
from tests.server.conftest import register_user
from tests.server_process import RuneServerProcess, ServerFactory
from tests.store_tools import put_back

DELETED = "deleted before, delivered again (a replay)"


def pinned(server: RuneServerProcess) -> dict[str, object]:
    return {"tls_fingerprint": server.tls_pin, "server_key": server.server_key, "timeout": 10}


async def test_connect_without_anywhere_to_remember_is_refused(rune_server: ServerFactory) -> None:
    server = rune_server()
    with pytest.raises(ClientError, match=r"state_dir=.*ephemeral=True"):
        async with connect(server.host, server.port, **pinned(server)):
            pass
    with pytest.raises(ClientError, match="contacts= and replays="):  # half is not enough
        async with connect(server.host, server.port, contacts=None, **pinned(server)):
            pass
    with pytest.raises(ClientError, match="ephemeral=True keeps nothing"):
        async with connect(
            server.host, server.port, ephemeral=True, state_dir=Path("x"), **pinned(server)
        ):
            pass


async def test_a_state_dir_keeps_pins_and_deletions_across_sessions(
    rune_server: ServerFactory, tmp_path: Path
) -> None:
    server = rune_server()
    alice, bob = register_user(server), register_user(server)
    state = tmp_path / "state"
    async with connect(server.host, server.port, ephemeral=True, **pinned(server)) as session:
        await session.login(*alice)
        await session.send(bob[0], "hello", "kept, then deleted")
    async with connect(server.host, server.port, state_dir=state, **pinned(server)) as session:
        await session.login(*bob)
        (info,) = await session.list()
        first = await session.retrieve(info.id)
        assert first.verified
        with sqlite3.connect(server.database) as db:  # what a server could keep
            (kept,) = db.execute("SELECT blob FROM messages WHERE id = ?", (info.id,)).fetchone()
        db.close()
        await session.delete(info.id)
    folder = state / account_folder_name(Vault(bob[1]), bob[0])
    assert [p.name for p in state.iterdir()] == [folder.name]  # no folder named by address
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert str(alice[0]).encode() not in (folder / CONTACTS_FILE).read_bytes()  # sealed
    assert info.id.encode() not in (folder / "seen").read_bytes()  # sealed
    put_back(server.database, str(bob[0]), info.id, kept)  # and it comes back, same id
    async with connect(server.host, server.port, state_dir=state, **pinned(server)) as session:
        await session.login(*bob)
        contact = session.contacts.get(alice[0])
        assert contact is not None and contact.key == alice[1].public  # the pin persisted
        again = await session.retrieve(info.id)
    assert not again.verified and DELETED in again.verification.problems


async def test_ephemeral_sessions_write_nothing(
    rune_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = rune_server()
    bob = register_user(server)
    monkeypatch.chdir(tmp_path)
    async with connect(server.host, server.port, ephemeral=True, **pinned(server)) as session:
        await session.login(*bob)
        assert await session.list() == []
        assert session.contacts.path is None and session.replays.path is None
    assert list(tmp_path.iterdir()) == []


async def test_a_state_dir_of_an_older_version_is_moved_under_opaque_names(
    rune_server: ServerFactory, tmp_path: Path
) -> None:
    """``<state>/<address>/contacts.toml`` (clear) and ``seen`` become sealed, hashed names."""
    server = rune_server()
    alice, bob = register_user(server), register_user(server)
    state = tmp_path / "state"
    old = state / str(bob[0])
    old.mkdir(parents=True)
    pin = {"key": alice[1].public.token(), "first_seen": "2025-03-14T09:30:00+00:00"}
    pin |= {"how": "compared in person", "name": "Alice from work"}
    tomlfile.write(old / "contacts.toml", {"contacts": {str(alice[0]): pin}})
    ReplayLog(old / "seen", Vault(bob[1])).record_deleted("an-old-server-id")
    async with connect(server.host, server.port, state_dir=state, **pinned(server)) as session:
        await session.login(*bob)
        contact = session.contacts.get(alice[0])
        assert contact is not None and contact.name == "Alice from work"
        assert contact.how == "compared in person" and contact.key == alice[1].public
        assert session.replays.was_deleted("", "an-old-server-id")
    assert not old.exists()
    (folder,) = state.iterdir()
    assert folder.name == account_folder_name(Vault(bob[1]), bob[0])
    assert sorted(p.name for p in folder.iterdir()) == [CONTACTS_FILE, "seen"]
    book = (folder / CONTACTS_FILE).read_bytes()
    assert str(alice[0]).encode() not in book and b"Alice from work" not in book
