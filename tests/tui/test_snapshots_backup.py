"""Snapshots of "Export / back up this account" at 80×24 and 60×15 (the dialog scrolls).

Deterministic: a fixed key, a fixed folder, no network. The import dialog's snapshot is
with the wizard's (test_snapshots_wizard.py). Update with ``--snapshot-update`` and look.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rune_tui.config import Config
from rune_tui.screens.backup import ExportBackupScreen
from tests.tui.test_mail_screens import MailApp
from tests.tui.test_snapshots_mail import steady
from tests.tui.test_snapshots_my_key import fixed_mailbox

SnapCompare = Callable[..., bool]


@pytest.mark.parametrize("size", [(80, 24), (60, 15)])
def test_export_dialog(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    mailbox = fixed_mailbox(tmp_path)
    app = MailApp(lambda: ExportBackupScreen(mailbox, Config(), Path("/home/you")))
    assert snap_compare(app, terminal_size=size, run_before=steady())
