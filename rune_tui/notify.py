"""Telling the user that mail came: bell, the terminal's own notice, the desktop's.

Each is a setting (docs/settings.md). The words say how many, never from whom, unless
``notify_sender`` is on: a desktop notice may be read by whoever passes the screen.
The terminal title carries the unread count. Escape sequences are built here as text
and written by the app; ``notify-send`` runs only where it exists and a display does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence

from .config import Settings

TERMINAL_NOTICES = ("off", "osc9", "osc777")
DESKTOP_TIMEOUT = 5.0  # seconds a notify-send may take before it is left behind
_CONTROL = {i: None for i in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def clean(text: str, limit: int = 120) -> str:
    """No control characters (an ESC or BEL would end or forge the sequence), bounded."""
    return text.translate(_CONTROL)[:limit]


def notice_words(count: int, senders: Sequence[str], settings: Settings) -> tuple[str, str]:
    """The title and body of a new-mail notice."""
    noun = "message" if count == 1 else "messages"
    body = f"{count:,} new {noun}"
    if settings.notify_sender and senders:
        shown = ", ".join(dict.fromkeys(senders))
        body = f"{body} from {shown}"
    return "Rune: new mail", clean(body, 200)


def terminal_notice(kind: str, title: str, body: str) -> str:
    """OSC 9 (iTerm2, WezTerm, kitty, foot …) or OSC 777 (rxvt, foot, Ghostty …); '' if off."""
    if kind == "osc9":
        return f"\x1b]9;{clean(title)}: {clean(body)}\x07"
    if kind == "osc777":
        title, body = clean(title).replace(";", ","), clean(body).replace(";", ",")
        return f"\x1b]777;notify;{title};{body}\x07"
    return ""


def title_sequence(unread: int) -> str:
    """The terminal (window or tab) title: the unread count, no address."""
    return f"\x1b]2;Rune ({unread:,} unread)\x07" if unread else "\x1b]2;Rune\x07"


def desktop_available() -> bool:
    """notify-send is installed and there is a desktop to show it on (not over ssh)."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    return bool(display) and shutil.which("notify-send") is not None


async def desktop_notice(title: str, body: str) -> bool:
    """Run notify-send; False if it is missing, failed or hung (never raises)."""
    program = shutil.which("notify-send")
    if program is None:
        return False
    try:
        proc = await asyncio.create_subprocess_exec(
            program,
            "--app-name=Rune",
            clean(title),
            clean(body, 200),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return False
    try:
        async with asyncio.timeout(DESKTOP_TIMEOUT):
            return await proc.wait() == 0
    except TimeoutError:
        proc.kill()
        return False
