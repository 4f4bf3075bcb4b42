"""New-mail notices: the words (no sender unless asked), the escape sequences (and that
nothing in a message can forge one), notify-send run for real, the settings, and the
app turning a refresh into the notices its settings ask for."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rune_tui import notify
from rune_tui.app_notices import NewMailNotices
from rune_tui.config import Config, Paths, Settings, load_config, save_config
from rune_tui.messages import MailboxRefreshed


def test_notices_name_no_sender_unless_asked() -> None:
    senders = ["bob@example.org", "bob@example.org", "carol@example.org"]
    assert notify.notice_words(3, senders, Settings()) == ("Rune: new mail", "3 new messages")
    _, body = notify.notice_words(3, senders, Settings(notify_sender=True))
    assert body == "3 new messages from bob@example.org, carol@example.org"
    assert notify.notice_words(1, [], Settings())[1] == "1 new message"


def test_escape_sequences_cannot_be_forged_from_inside() -> None:
    hostile = "hi\x07\x1b]2;pwned\x1b\\"
    assert notify.clean(hostile) == "hi]2;pwned\\"
    assert notify.terminal_notice("osc9", "T", hostile) == "\x1b]9;T: hi]2;pwned\\\x07"
    assert notify.terminal_notice("osc777", "T;x", "a;b") == "\x1b]777;notify;T,x;a,b\x07"
    assert notify.terminal_notice("off", "T", "b") == ""
    assert notify.title_sequence(3) == "\x1b]2;Rune (3 unread)\x07"
    assert notify.title_sequence(0) == "\x1b]2;Rune\x07"


def _fake_notify_send(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real notify-send on PATH that writes its arguments to a file."""
    bin_dir, record = tmp_path / "bin", tmp_path / "args"
    bin_dir.mkdir()
    script = bin_dir / "notify-send"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


async def test_desktop_notice_runs_notify_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _fake_notify_send(tmp_path, monkeypatch)
    assert await notify.desktop_notice("Rune: new mail", "2 new messages") is True
    assert record.read_text().splitlines() == [
        "--app-name=Rune",
        "Rune: new mail",
        "2 new messages",
    ]


def test_desktop_notices_need_a_display(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_notify_send(tmp_path, monkeypatch)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not notify.desktop_available()  # over ssh, say: nowhere to show it
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert notify.desktop_available()


def test_notice_settings_are_read_checked_and_saved(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "config", tmp_path / "data")
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text(
        '[settings]\nnotify_bell = true\nnotify_terminal = "osc777"\nnotify_desktop = "yes"\n'
    )
    config = load_config(paths)
    settings = config.settings
    assert (settings.notify_bell, settings.notify_terminal) == (True, "osc777")
    assert settings.notify_desktop is True and settings.notify_sender is False
    assert any("notify_desktop must be true or false" in p for p in config.problems)
    paths.config_file.write_text('[settings]\nnotify_terminal = "loud"\n')
    config = load_config(paths)
    assert config.settings.notify_terminal == "off"
    assert any("notify_terminal is one of off, osc9, osc777" in p for p in config.problems)
    save_config(paths, Config(settings=Settings(notify_sender=True)))
    assert load_config(paths).settings.notify_sender is True


class NoticeApp(NewMailNotices):
    """The mixin on a bare app; what it would write to the terminal is recorded."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.config = Config(settings=settings)
        self.mailbox = None
        self.written: list[str] = []

    def terminal_write(self, sequence: str) -> None:
        if sequence:
            self.written.append(sequence)


async def test_a_refresh_with_new_mail_becomes_the_notices_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _fake_notify_send(tmp_path, monkeypatch)
    monkeypatch.setenv("DISPLAY", ":0")
    app = NoticeApp(Settings(notify_terminal="osc9", notify_desktop=True))
    async with app.run_test() as pilot:
        app.post_message(MailboxRefreshed("a@example.org", ["m1", "m2"], 5))
        await pilot.pause()
        deadline = 100
        while not record.exists() and deadline:  # bounded: the notify-send process runs
            await pilot.pause(0.05)
            deadline -= 1
    assert app.written == [
        "\x1b]2;Rune (5 unread)\x07",
        "\x1b]9;Rune: new mail: 2 new messages\x07",
    ]
    assert record.read_text().splitlines()[-1] == "2 new messages"


async def test_nothing_new_only_updates_the_title() -> None:
    app = NoticeApp(Settings(notify_terminal="osc777", notify_desktop=False))
    async with app.run_test() as pilot:
        app.post_message(MailboxRefreshed("a@example.org", [], 0))
        await pilot.pause()
    assert app.written == ["\x1b]2;Rune\x07"]
