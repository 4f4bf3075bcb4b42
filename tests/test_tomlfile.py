"""tomlfile: files Rune owns are written whole; a file a person edits keeps their comments."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from rune_proto.local import tomlfile

AWKWARD = 'quote " backslash \\ tab \t newline \n del \x7f é'


def test_write_then_read_gives_the_same_data(tmp_path: Path) -> None:
    data = {
        "top": 1,
        "contacts": {"alice@example": {"name": AWKWARD, "n": 2.5, "ok": True, "l": [1, 2]}},
    }
    path = tmp_path / "sub" / "contacts.toml"
    tomlfile.write(path, data)
    assert tomlfile.read(path) == data
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_value_toml_cannot_hold_is_a_toml_error(tmp_path: Path) -> None:
    with pytest.raises(tomlfile.TomlError):
        tomlfile.write(tmp_path / "x.toml", {"bad": object()})
    assert not (tmp_path / "x.toml").exists()


EDITED = """\
# my own notes, top of the file
default_account = "a@example"  # the one I use

[settings]
# slower: my server is small
poll_seconds = 120   # two minutes
theme = "nord"  # dark, for the evenings

[accounts."a@example"]
host = "127.0.0.1"  # at home
port = 7117
"""


def test_update_keeps_comments_and_layout_around_the_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EDITED)
    doc = tomllib.loads(EDITED)
    doc["settings"]["theme"] = "gruvbox"
    doc["accounts"]["b@example"] = {"host": "h", "port": 1}
    tomlfile.update(path, doc)
    text = path.read_text()
    assert tomllib.loads(text) == doc
    for kept in (
        "# my own notes, top of the file",
        'default_account = "a@example"  # the one I use',
        "# slower: my server is small",
        "poll_seconds = 120   # two minutes",
        'theme = "gruvbox"  # dark, for the evenings',  # a changed value keeps its comment
        'host = "127.0.0.1"  # at home',
    ):
        assert kept in text


def test_update_removes_what_the_data_no_longer_has(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EDITED + "\n[settings.old]\nx = 1\n")
    doc = tomllib.loads(EDITED)
    del doc["accounts"]["a@example"]
    del doc["default_account"]
    tomlfile.update(path, doc)
    assert tomlfile.read(path) == doc
    assert "# my own notes, top of the file" in path.read_text()


def test_update_writes_a_missing_file_and_refuses_one_that_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.toml"
    tomlfile.update(path, {"settings": {"theme": "nord"}})
    assert tomlfile.read(path) == {"settings": {"theme": "nord"}}
    path.write_text("this is = = not toml\n")
    with pytest.raises(tomlfile.TomlError, match="not valid TOML"):
        tomlfile.update(path, {})
    assert path.read_text() == "this is = = not toml\n"  # left for the user to fix
