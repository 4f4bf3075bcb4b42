"""Saving an attachment never writes outside the chosen folder, follows no link, overwrites nothing.

The protocol now refuses hostile names at the door, but a message cached before that, or a
lying cache, can still hand the reader any name: the save path makes every name safe on
its own. Each case checks the whole tree under ``tmp_path`` afterwards, so a file written
anywhere else is caught, not only the one the test expects.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rune_proto.content import filename_problem
from rune_proto.envelope import Attachment
from rune_tui.filenames import safe_filename, save_new_file
from rune_tui.screens import save_dialog
from rune_tui.screens.reader import ReaderScreen
from rune_tui.screens.save_dialog import SaveDialog
from tests.tui.test_daily_inbox import mailbox_of
from tests.tui.test_mail_screens import SIZE, MailApp, make_message, wait_until

HOSTILE_NAMES = {
    "traversal": ("../../x", "x"),
    "absolute": ("/etc/passwd", "passwd"),
    "backslash": ("a\\b", "b"),
    "dotdot": ("..", "attachment"),
    "dot": (".", "attachment"),
    "empty": ("", "attachment"),
    "nul": ("evil\x00.txt", "evil.txt"),
    "newline": ("a\nb.txt", "ab.txt"),
    "c1": ("a\x9bb.txt", "ab.txt"),
    "bidi": ("invoice\u202egnp.exe", "invoicegnp.exe"),
    "hidden": (".bashrc", "bashrc"),
    "blanks": ("  notes.txt  ", "notes.txt"),
    "surrogate": ("a\udc80b", "ab"),
    "windows-path": ("C:\\Users\\x\\evil.exe", "evil.exe"),
}


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file() or path.is_symlink()}


@pytest.mark.parametrize(("name", "expected"), HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_hostile_name_lands_inside_the_folder_under_a_safe_name(
    tmp_path: Path, name: str, expected: str
) -> None:
    folder = tmp_path / "deep" / "Downloads"
    folder.mkdir(parents=True)
    before = files_under(tmp_path)
    path = save_new_file(folder, name, b"payload")
    assert path == folder / expected and path.read_bytes() == b"payload"
    assert files_under(tmp_path) - before == {path}
    assert filename_problem(path.name) is None
    assert (path.stat().st_mode & 0o777) == 0o600


def test_very_long_names_fit_every_file_system_even_when_numbered(tmp_path: Path) -> None:
    for name in ("x" * 5000 + ".pdf", "é" * 300, "名" * 200 + ".tar.gz"):
        paths = [save_new_file(tmp_path, name, b"%d" % n) for n in range(3)]
        assert len({p.name for p in paths}) == 3
        for path in paths:
            assert path.parent == tmp_path and len(path.name.encode()) <= 255
    assert save_new_file(tmp_path, "x" * 5000 + ".pdf", b"").suffix == ".pdf"


def test_a_symlink_at_the_target_is_never_followed(tmp_path: Path) -> None:
    folder = tmp_path / "Downloads"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (folder / "report.pdf").symlink_to(victim)
    (folder / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    saved = save_new_file(folder, "report.pdf", b"attacker")
    dangling = save_new_file(folder, "dangling.txt", b"attacker")
    assert saved == folder / "report (1).pdf" and saved.read_bytes() == b"attacker"
    assert dangling == folder / "dangling (1).txt"
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "nowhere.txt").exists()  # a dangling link is not created through


def test_an_existing_file_or_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"mine")
    (tmp_path / "b.txt").mkdir()
    assert save_new_file(tmp_path, "a.txt", b"theirs") == tmp_path / "a (1).txt"
    assert save_new_file(tmp_path, "b.txt", b"theirs") == tmp_path / "b (1).txt"
    assert (tmp_path / "a.txt").read_bytes() == b"mine"


def test_safe_names_are_what_the_reader_lists(tmp_path: Path) -> None:
    for name, expected in HOSTILE_NAMES.values():
        assert safe_filename(name) == expected


async def test_the_reader_saves_a_lying_caches_names_inside_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message whose attachments never went through the parser (a lying cache)."""
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    monkeypatch.setattr(save_dialog, "download_dir", lambda: downloads)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (downloads / "victim").symlink_to(victim)
    names = ["../../escape", "/etc/passwd", "..", "", "a\x00b", "../victim"]
    files = tuple(Attachment(name, b"n%d" % i) for i, name in enumerate(names))
    message = make_message(1, attachments=files)
    before = files_under(tmp_path)
    app = MailApp(lambda: ReaderScreen(mailbox_of(tmp_path / "box", [message]), message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SaveDialog))
        await pilot.press("enter")  # the download folder, as offered
        await wait_until(pilot, lambda: len(os.listdir(downloads)) == 1 + len(names))
    created = files_under(tmp_path) - before - files_under(tmp_path / "box")
    assert {path.parent for path in created} == {downloads}
    assert sorted(p.name for p in created) == sorted(
        ["escape", "passwd", "attachment", "attachment (1)", "ab", "victim (1)"]
    )
    assert victim.read_bytes() == b"precious"
