"""Snapshots of contacts, the key-changed warnings, compose with attachments, and drafts.

Deterministic by construction: fixed keys and dates, UTC, fixed file paths, no network
(the size limit is given, not asked), cursor blink off. Update the baselines with
``pytest --snapshot-update`` and look at them before committing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.app import App

from rune_proto.address import parse_address
from rune_proto.client import KeyChange
from rune_tui.config import Account
from rune_tui.drafts import Draft, DraftStore
from rune_tui.screens.compose import ComposeScreen
from rune_tui.screens.contacts import ContactsScreen
from rune_tui.screens.drafts import DraftsScreen
from rune_tui.screens.key_change import KeyChangeScreen, ServerKeyScreen
from rune_tui.trust import ServerChange
from tests.tui.test_contacts import SAMPLE, fixed_key, write_contacts
from tests.tui.test_mail_screens import VERIFIED, MailApp, build_mailbox, make_message
from tests.tui.test_snapshots_mail import steady

SIZE = (120, 36)
SnapCompare = Callable[..., bool]
FILES = Path("/tmp/rune-snapshot-files")  # a fixed folder: its path is on screen


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_contacts(snap_compare: SnapCompare, tmp_path: Path) -> None:
    write_contacts(tmp_path, SAMPLE)
    mailbox = build_mailbox(tmp_path, [])
    app = MailApp(lambda: ContactsScreen(mailbox))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady("j"))


class Over(App[None]):
    """A modal over the contacts screen, as it is met in use."""

    def __init__(self, below: Callable[[], Any], modal: Callable[[], Any]) -> None:
        super().__init__()
        self._below, self._modal = below, modal

    def on_mount(self) -> None:
        self.push_screen(self._below())
        self.push_screen(self._modal())


def test_contact_key_changed(snap_compare: SnapCompare, tmp_path: Path) -> None:
    write_contacts(tmp_path, SAMPLE)
    mailbox = build_mailbox(tmp_path, [])
    pinned = fixed_key(1).fingerprint_text()
    app = Over(
        lambda: ContactsScreen(mailbox),
        lambda: KeyChangeScreen(mailbox, "bob@xyz", pinned, fixed_key(9)),
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=steady(*"acc"))


def test_server_key_changed(snap_compare: SnapCompare, tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    account = Account(
        parse_address("alice@xyz"),
        "rune.example.org",
        7117,
        "sha256:" + bytes(range(100, 132)).hex(),
        fixed_key(20).token(),
        "keyring",
    )
    change = ServerChange(account, "sha256:" + bytes(range(1, 33)).hex(), fixed_key(21).token())
    app = Over(lambda: ContactsScreen(mailbox), lambda: ServerKeyScreen(change))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady())


def test_compose_with_attachments(snap_compare: SnapCompare, tmp_path: Path) -> None:
    FILES.mkdir(exist_ok=True)
    (FILES / "minutes.txt").write_bytes(b"m" * 2300)
    (FILES / "budget-2025.ods").write_bytes(b"b" * 48_000)
    write_contacts(tmp_path, SAMPLE)
    mailbox = build_mailbox(tmp_path, [])
    app = MailApp(
        lambda: ComposeScreen(
            mailbox,
            to="carol@xyz",
            subject="Minutes and budget",
            body="Hi Carol,\n\nBoth files are attached.\n\n— Alice",
            attachments=[FILES / "minutes.txt", FILES / "budget-2025.ods"],
            max_payload=16 * 1024 * 1024,
        )
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=steady())


def test_compose_to_a_changed_key(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """The red banner over compose: bob's newest message came with a key not pinned."""
    write_contacts(tmp_path, SAMPLE)  # bob@xyz pinned to fixed_key(1)
    change = KeyChange(
        parse_address("bob@xyz"), fixed_key(1).fingerprint_text(), fixed_key(9).fingerprint_text()
    )
    message = make_message(1, verification=replace(VERIFIED, key_change=change))
    mailbox = build_mailbox(tmp_path, [message])
    app = MailApp(
        lambda: ComposeScreen(
            mailbox,
            to="bob@xyz",
            subject="Lunch on Thursday?",
            body="Hi Bob,\n\nNoon at the usual place?\n\n— Alice",
            max_payload=16 * 1024 * 1024,
        )
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=steady())


def test_drafts(snap_compare: SnapCompare, tmp_path: Path) -> None:
    mailbox = build_mailbox(tmp_path, [])
    store = DraftStore.for_mailbox(mailbox)
    saved = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    drafts = [
        Draft("a" * 32, to="bob@xyz", subject="Lunch on Thursday?", body="Noon?"),
        Draft("b" * 32, to="", subject="", body="Ideas for the garden rota"),
        Draft("c" * 32, to="carol@xyz", subject="Budget", body="See attached", attachments=("x",)),
    ]
    for index, draft in enumerate(drafts):  # written directly, to fix the saved time
        stamped = Draft(**{**_fields(draft), "saved_at": saved - timedelta(hours=index)})
        store.vault.write(store._path(draft.id), stamped.to_json(), store._context(draft.id))
    app = Over(lambda: ComposeScreen(mailbox), lambda: DraftsScreen(store))
    assert snap_compare(app, terminal_size=SIZE, run_before=steady())


def _fields(draft: Draft) -> dict[str, Any]:
    return {name: getattr(draft, name) for name in Draft.__dataclass_fields__}
