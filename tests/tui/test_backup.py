"""Backup and a second device: export, wipe, import, against a real server and real files.

The command line (``rune-tui export`` / ``import``) is driven through ``rune_tui.cli.main``
with the passphrases answered by the test, then the imported profile is opened in the app
(no trust prompt: the pins came along) and through the service layer.
"""

from __future__ import annotations

import base64
import shutil
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rune_proto.address import random_part
from rune_proto.client.contact_book import COMPARED_IN_PERSON
from rune_tui import backup_cli
from rune_tui.app import RuneApp
from rune_tui.backup import BackupError, import_account, read_backup
from rune_tui.cli import main
from rune_tui.components.message_list import MessageList
from rune_tui.config import Config, Paths, load_config, save_config
from rune_tui.service import Mailbox, unlock
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_app import registered_profile
from tests.tui.test_mail_screens import wait_until
from tests.tui.test_sent import person, signed_in
from tests.tui.wizard_pilot import PASSPHRASE, SIZE

BACKUP_PASSPHRASE = "a long backup passphrase"


@pytest.fixture(scope="module")
def server(rune_server_session: ServerFactory) -> RuneServerProcess:
    return rune_server_session("free")


def answers(*texts: str) -> Iterator[str]:
    yield from texts


def run_cli(
    monkeypatch: pytest.MonkeyPatch, profile: Path, command: str, file: Path, *texts: str
) -> int:
    """``rune-tui --profile PROFILE COMMAND FILE``, the prompts answered with ``texts``."""
    replies = answers(*texts)

    def ask(prompt: str = "") -> str:
        for reply in replies:
            return reply
        raise EOFError  # as getpass does when stdin ends

    monkeypatch.setattr(backup_cli.getpass, "getpass", ask)
    return main(["--profile", str(profile), command, str(file)])


def server_id(mailbox: Mailbox, subject: str) -> str:
    return next(sid for sid, m in mailbox.messages.items() if m.subject == subject)


def open_mailbox(profile: Path) -> Mailbox:
    paths = Paths.from_profile(profile)
    account = load_config(paths).accounts[0]
    unlocked = unlock(paths, account, PASSPHRASE)
    return Mailbox(paths, unlocked.account, unlocked.identity)


async def test_export_wipe_import_keeps_mail_contacts_and_pins(
    server: RuneServerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    profile = tmp_path / "profile"
    await registered_profile(server, profile)
    alice = open_mailbox(profile)
    bob = await person(server, "bob", tmp_path)
    await bob.send(str(alice.address), "Before the backup", "Old mail.")
    await bob.send(str(alice.address), "Deleted before", "Gone.")
    assert len(await alice.refresh()) == 2
    gone_id = server_id(alice, "Deleted before")
    gone_message_id = alice.messages[gone_id].message_id
    await alice.delete(gone_id)
    bob_key = alice.contacts.get(bob.address)
    assert bob_key is not None
    alice.contacts.rename(bob.address, "Bob the Baker")
    alice.contacts.mark_compared(bob.address, bob_key.key)
    identity, address = alice.identity, alice.address
    alice.stop()

    paths = Paths.from_profile(profile)
    config = load_config(paths)
    settings = replace(config.settings, poll_seconds=30, keymap={"inbox.compose": "w"})
    save_config(paths, replace(config, settings=settings))
    backup = tmp_path / "elsewhere" / "alice.runebackup"
    assert run_cli(monkeypatch, profile, "export", backup, PASSPHRASE, *["short"] * 6) == 1
    assert "at least 12 characters" in capsys.readouterr().err
    assert not backup.exists()
    code = run_cli(
        monkeypatch, profile, "export", backup, PASSPHRASE, BACKUP_PASSPHRASE, BACKUP_PASSPHRASE
    )
    assert code == 0, capsys.readouterr().err
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    again = (PASSPHRASE, BACKUP_PASSPHRASE, BACKUP_PASSPHRASE)
    assert run_cli(monkeypatch, profile, "export", backup, *again) == 1
    assert "already exists" in capsys.readouterr().err  # an older backup is never replaced

    # Nothing in the clear: no address, contact, name, fingerprint or key.
    raw = backup.read_bytes()
    key = identity.private_bytes()
    secrets = [
        str(address),
        address.username,
        str(bob.address),
        "Bob the Baker",
        "Baker",
        bob_key.fingerprint,
        bob_key.key.token(),
        server.tls_pin,
        server.server_key,
    ]
    for text in secrets:
        assert text.lower().encode() not in raw.lower(), text
        assert text.encode("utf-16-le") not in raw, text
    for form in (key, key.hex().encode(), base64.b64encode(key), key[:16]):
        assert form not in raw

    shutil.rmtree(profile)  # the disk is lost
    await bob.send(str(address), "After the backup", "New mail.")
    assert (
        run_cli(monkeypatch, profile, "import", backup, BACKUP_PASSPHRASE, PASSPHRASE, PASSPHRASE)
        == 0
    )
    assert "gone for both" in capsys.readouterr().err

    # The app opens it with no trust prompt (the pins came along) and lists both mails.
    app = RuneApp(Paths.from_profile(profile))
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        listing = app.screen.query_one(MessageList)
        await wait_until(pilot, lambda: listing.row_count == 2)

    assert load_config(paths).settings == settings  # a fresh profile takes them
    restored = open_mailbox(profile)
    assert restored.address == address
    assert restored.account.tls_pin == server.tls_pin
    assert restored.account.server_key == server.server_key
    subjects = {m.subject for m in restored.ordered()}
    assert subjects == {"Before the backup", "After the backup"}
    assert restored.message(server_id(restored, "Before the backup")).body == "Old mail."
    contact = restored.contacts.get(bob.address)
    assert contact is not None
    assert contact.name == "Bob the Baker" and contact.how == COMPARED_IN_PERSON
    assert contact.key == bob_key.key
    assert restored.replays.was_deleted(gone_message_id, gone_id)  # not new on this device
    restored.stop()

    # Importing it again into the same profile is refused, and changes nothing.
    assert (
        run_cli(monkeypatch, profile, "import", backup, BACKUP_PASSPHRASE, PASSPHRASE, PASSPHRASE)
        == 1
    )
    assert "already on this computer" in capsys.readouterr().err


async def test_a_wrong_passphrase_or_a_damaged_backup_is_refused_in_words(
    server: RuneServerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    profile = tmp_path / "profile"
    await registered_profile(server, profile)
    backup = tmp_path / "alice.runebackup"
    assert (
        run_cli(
            monkeypatch, profile, "export", backup, PASSPHRASE, BACKUP_PASSPHRASE, BACKUP_PASSPHRASE
        )
        == 0
    )
    other = tmp_path / "other"
    assert run_cli(monkeypatch, other, "import", backup, "not the passphrase") == 1
    assert "Wrong passphrase for this backup" in capsys.readouterr().err
    with pytest.raises(BackupError, match="Wrong passphrase"):
        read_backup(backup, "not the passphrase either")

    damaged = tmp_path / "damaged.runebackup"
    raw = bytearray(backup.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    damaged.write_bytes(bytes(raw))
    assert run_cli(monkeypatch, other, "import", damaged, BACKUP_PASSPHRASE) == 1
    assert "altered" in capsys.readouterr().err
    damaged.write_bytes(bytes(raw[:20]))
    assert run_cli(monkeypatch, other, "import", damaged, BACKUP_PASSPHRASE) == 1
    assert "damaged or is not a Rune backup" in capsys.readouterr().err
    damaged.write_bytes(b"hello, not a backup at all, but long enough to look at" * 3)
    assert run_cli(monkeypatch, other, "import", damaged, BACKUP_PASSPHRASE) == 1
    assert "is not a Rune backup" in capsys.readouterr().err
    assert run_cli(monkeypatch, other, "import", tmp_path / "missing", BACKUP_PASSPHRASE) == 1
    assert "There is no file" in capsys.readouterr().err
    assert not (other / "config" / "config.toml").exists()  # nothing was added


async def test_a_second_device_reads_the_same_mailbox_and_a_delete_is_gone_for_both(
    server: RuneServerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    laptop = tmp_path / "laptop"
    await registered_profile(server, laptop)
    backup = tmp_path / "move.runebackup"
    assert (
        run_cli(
            monkeypatch, laptop, "export", backup, PASSPHRASE, BACKUP_PASSPHRASE, BACKUP_PASSPHRASE
        )
        == 0
    )
    phone = tmp_path / "phone"
    assert (
        run_cli(monkeypatch, phone, "import", backup, BACKUP_PASSPHRASE, PASSPHRASE, PASSPHRASE)
        == 0
    )
    first, second = open_mailbox(laptop), open_mailbox(phone)
    assert first.address == second.address
    carol = await person(server, f"carol{random_part(4)}", tmp_path)
    await carol.send(str(first.address), "Keep", "Stays.")
    await carol.send(str(first.address), "Drop", "Deleted on the laptop.")
    assert len(await first.refresh()) == 2
    assert len(await second.refresh()) == 2
    await first.delete(server_id(first, "Drop"))
    await second.refresh()
    assert [m.subject for m in second.ordered()] == ["Keep"]
    first.stop()
    second.stop()


async def test_a_profile_that_cannot_be_written_is_said_in_words(
    server: RuneServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "profile"
    await registered_profile(server, profile)
    backup = tmp_path / "b.runebackup"
    again = (PASSPHRASE, BACKUP_PASSPHRASE, BACKUP_PASSPHRASE)
    assert run_cli(monkeypatch, profile, "export", backup, *again) == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "data").write_text("a file where the data folder should be")
    opened = read_backup(backup, BACKUP_PASSPHRASE)
    with pytest.raises(BackupError, match=r"Cannot write to this profile|could not be stored"):
        import_account(
            Paths.from_profile(broken), Config(), opened, keystore="file", passphrase=PASSPHRASE
        )
    assert not (broken / "config" / "config.toml").exists()
