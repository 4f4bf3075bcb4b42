"""``rune-server backup`` while the server runs, and the documented restore (docs/server.md).

The restore is done exactly as the docs say: stop the server, replace ``rune.db`` with
the backup (removing ``rune.db-wal`` and ``rune.db-shm``), start it; the old mail is
read back over TLS, and what came after the backup is gone.
"""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path

from rune_proto import status
from rune_proto.envelope import Content, open_message, open_stored_message
from rune_proto.events import Delete, Deleted, Listing, ListMessages, Retrieve, Retrieved, Roger
from rune_proto.server.config import DataDir
from rune_proto.server.store import SCHEMA_VERSION
from tests.server_process import RuneServerProcess, ServerFactory, run_cli

from .conftest import User, register_user
from .wire_client import WireClient


def _logged_in(server: RuneServerProcess, user: User) -> WireClient:
    client = WireClient.to(server)
    assert client.login(*user, server.server_public_key).code == status.AUTHENTICATED
    return client


def _subjects(server: RuneServerProcess, user: User) -> list[str]:
    with _logged_in(server, user) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing)
        subjects = []
        for message_id, _ in listing.entries:
            retrieved = client.request(Retrieve(message_id))
            assert isinstance(retrieved, Retrieved)
            stored = open_stored_message(user[1], user[0], server.server_public_key, retrieved.blob)
            opened = open_message(user[1], user[0], stored.sealed_message)
            subjects.append(opened.content.subject)
    return sorted(subjects)


def restore(server: RuneServerProcess, backup: Path) -> None:
    """docs/server.md, "Backups and restore", steps 2-4 (the server is stopped)."""
    database = DataDir(server.data_dir).database
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(backup, database)
    database.chmod(0o600)


def test_backup_while_serving_then_restore_and_read_the_old_mail(
    rune_server: ServerFactory, tmp_path: Path
) -> None:
    server = rune_server()
    alice, bob = register_user(server), register_user(server)
    with _logged_in(server, alice) as client:
        for subject in ("one", "two", "three"):
            assert client.send_message(*alice, bob[0], Content(subject, "body")) == Roger()
        dest = tmp_path / "backups" / "rune-backup.db"
        dest.parent.mkdir()
        result = run_cli("backup", "--data-dir", str(server.data_dir), str(dest))
        assert result.returncode == 0, result.stderr
        assert "backed up" in result.stdout and result.stderr == ""
        # the server went on serving during and after the backup
        assert client.send_message(*alice, bob[0], Content("after", "body")) == Roger()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    with sqlite3.connect(dest) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    again = run_cli("backup", "--data-dir", str(server.data_dir), str(dest))
    assert again.returncode == 2 and "will not overwrite" in again.stderr
    with _logged_in(server, bob) as client:  # bob deletes one after the backup
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 4
        first, _ = listing.entries[0]
        assert client.request(Delete(first)) == Deleted(first)
    server.stop()
    restore(server, dest)
    server.start()
    assert _subjects(server, bob) == ["one", "three", "two"]
    with _logged_in(server, alice) as client:  # accounts came back too
        assert client.send_message(*alice, bob[0], Content("four", "body")) == Roger()


def _set_schema(database: Path, version: int, *, drop_limits: bool = False) -> None:
    with sqlite3.connect(database) as db:
        if drop_limits:
            db.execute("DROP TABLE limits")
            db.execute("DROP TABLE failures")
            db.execute("ALTER TABLE mailbox DROP COLUMN epoch")
            db.execute("DELETE FROM layout WHERE name = 'epoch'")
        db.execute(f"PRAGMA user_version={version}")


def test_an_upgrade_at_start_backs_up_the_old_database_first(rune_server: ServerFactory) -> None:
    server = rune_server()
    alice = register_user(server)
    server.stop()
    database = DataDir(server.data_dir).database
    _set_schema(database, 3, drop_limits=True)  # what schema 3 looked like
    server.start()
    saved = database.with_name("rune.db.schema-3.backup")
    assert saved.is_file() and stat.S_IMODE(saved.stat().st_mode) == 0o600
    with sqlite3.connect(saved) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
    assert "backed up the database to rune.db.schema-3.backup first" in server.stderr_text()
    with _logged_in(server, alice) as client:  # upgraded and serving
        assert client.send_message(*alice, alice[0], Content("s", "b")) == Roger()
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_newer_schema_is_refused_with_a_clear_message(rune_server: ServerFactory) -> None:
    server = rune_server()
    server.stop()
    _set_schema(DataDir(server.data_dir).database, 99)
    result = run_cli(
        "serve", "--data-dir", str(server.data_dir), "--port", "0",
        "--passphrase-file", str(server.passphrase_file),
    )  # fmt: skip
    assert result.returncode == 2
    assert "schema version 99 is newer than this rune-server" in result.stderr
    assert "Traceback" not in result.stderr
