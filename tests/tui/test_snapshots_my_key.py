"""Snapshots of My key: at 80×24 (the QR code beside the text), at 60×15 (stacked,
scrolled to the top), and its contact picker.

Deterministic by construction: a fixed key (so a fixed fingerprint and QR code), fixed
contacts and dates, no network. Update the baselines with ``pytest --snapshot-update``
and look at them before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rune_proto.address import parse_address
from rune_proto.keys import Identity
from rune_tui.config import Account, Paths
from rune_tui.screens.my_key import MyKeyScreen
from tests.tui.test_contacts import SAMPLE, write_contacts
from tests.tui.test_mail_screens import MailApp, OfflineMailbox
from tests.tui.test_snapshots_mail import steady

SnapCompare = Callable[..., bool]


def fixed_mailbox(tmp_path: Path) -> OfflineMailbox:
    """alice@xyz (the contacts file's account) with a key that never changes."""
    write_contacts(tmp_path, SAMPLE)
    identity = Identity(bytes(range(128)))
    pins = ("sha256:" + "00" * 32, identity.public.token())
    account = Account(parse_address("alice@xyz"), "127.0.0.1", 7117, *pins)
    return OfflineMailbox(Paths(tmp_path / "config", tmp_path / "data"), account, identity)


def test_my_key_80x24(snap_compare: SnapCompare, tmp_path: Path) -> None:
    mailbox = fixed_mailbox(tmp_path)
    app = MailApp(lambda: MyKeyScreen(mailbox))
    assert snap_compare(app, terminal_size=(80, 24), run_before=steady())


def test_my_key_60x15(snap_compare: SnapCompare, tmp_path: Path) -> None:
    mailbox = fixed_mailbox(tmp_path)
    app = MailApp(lambda: MyKeyScreen(mailbox))
    assert snap_compare(app, terminal_size=(60, 15), run_before=steady())


def test_my_key_pick_a_contact(snap_compare: SnapCompare, tmp_path: Path) -> None:
    mailbox = fixed_mailbox(tmp_path)
    app = MailApp(lambda: MyKeyScreen(mailbox))
    assert snap_compare(app, terminal_size=(80, 24), run_before=steady("v"))
