"""Words and short texts the mail screens show, kept apart from widgets so they are tested alone.

Everything here is pure: no Textual, no network. Screens call these so that an error, a
date or a reply reads the same wherever it appears.
"""

from __future__ import annotations

import re
from datetime import datetime

from rune_proto.client import (
    ReceivedMessage,
)

from ..filenames import safe_filename
from ..sent import SentMessage

UNKNOWN_SENDER = "unknown sender"
UNREAD_MARK = "●"
VERIFIED_BADGE = "✓"
UNVERIFIED_BADGE = "!"
KEY_CHANGED_BADGE = "⚠"  # the sender's key is not the one pinned: louder than "!"
OWN_BADGE = "➤"  # a message you sent (Sent, and your replies in the conversations view)
FILES_MARK = "+"  # the message has attachments (ASCII: one cell in every terminal and font)
FORWARD_SEPARATOR = "---------- Forwarded message ----------"
_REPLY_PREFIX = re.compile(r"^\s*(re\s*:\s*)+", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(fwd?\s*:\s*)+", re.IGNORECASE)


def sentence(text: str) -> str:
    """Capitalise the first letter: library messages are lower-case clauses."""
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


def sender_text(message: ReceivedMessage) -> str:
    """Who it is from; for a message you sent, who it went to ("To …"), as mutt shows it."""
    if isinstance(message, SentMessage):
        return f"To {message.to}"
    return str(message.sender) if message.sender is not None else UNKNOWN_SENDER


def unreadable_text(message: ReceivedMessage) -> str | None:
    """``unreadable: <reason>`` for a message that could not be opened, else None.

    Such a message has no subject or body of its own; its row and reader show this
    instead, so it is seen, understood, and can be deleted like any other.
    """
    if not message.unreadable:
        return None
    return f"unreadable: {message.verification.summary()}"


def subject_text(message: ReceivedMessage) -> str:
    """What stands where the subject goes: the subject, or why there is none."""
    return unreadable_text(message) or message.subject or "(no subject)"


def file_names(message: ReceivedMessage) -> tuple[str, ...]:
    """The attachments' names, made safe to show, without decrypting a cached message.

    A cached summary knows its files from the index (``files``); a message fresh from
    the server carries them.
    """
    listed = getattr(message, "files", None)
    if listed is not None:
        return tuple(safe_filename(name) for name, _ in listed)
    return tuple(safe_filename(a.filename) for a in message.attachments)


def files_text(message: ReceivedMessage) -> str:
    """``+ 2 files: report.csv, photo.jpg`` for the preview, or "" without attachments."""
    names = file_names(message)
    if not names:
        return ""
    noun = "file" if len(names) == 1 else "files"
    return f"{FILES_MARK} {len(names)} {noun}: {', '.join(names)}"


def badge(message: ReceivedMessage) -> str:
    if isinstance(message, SentMessage):
        return OWN_BADGE
    if message.verification.key_change is not None:
        return KEY_CHANGED_BADGE
    return VERIFIED_BADGE if message.verified else UNVERIFIED_BADGE


def key_change_text(message: ReceivedMessage) -> str | None:
    """The reader's banner for a sender whose key is not the pinned one, else None."""
    change = message.verification.key_change
    if change is None:
        return None
    return (
        f"{KEY_CHANGED_BADGE} The key of {change.address} changed.\n"
        f"pinned  {change.pinned}\n"
        f"now     {change.offered}\n"
        "Press K to review it. Until you do, treat this message as from someone unknown."
    )


def verification_text(message: ReceivedMessage) -> str:
    """One line for headers: what a person must know about who wrote this."""
    if message.verified:
        return f"{VERIFIED_BADGE} signature verified"
    return f"{UNVERIFIED_BADGE} NOT VERIFIED: {message.verification.summary()}"


def format_when(when: datetime | None, date_format: str, now: datetime | None = None) -> str:
    """Local time in the user's format; today's messages show only the time, as mutt does."""
    if when is None:
        return "—"
    local = when.astimezone() if when.tzinfo is not None else when
    today = (now or datetime.now(local.tzinfo)).date()
    if local.date() == today:
        return local.strftime("%H:%M")
    return local.strftime(date_format)


def date_width(date_format: str) -> int:
    """Room for the date column: the widest of a long date in this format and a time."""
    sample = datetime(2000, 12, 28, 23, 59, 59)
    return max(5, len(sample.strftime(date_format)))


def fingerprint_block(text: str, per_line: int = 4) -> str:
    """Groups of four digits, four to a line: a column that is easy to compare by eye."""
    groups = text.split()
    return "\n".join(" ".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line))


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def reply_subject(subject: str) -> str:
    """``Re: subject`` without piling up ``Re: Re:``."""
    rest = _REPLY_PREFIX.sub("", subject).strip()
    return f"Re: {rest}" if rest else "Re:"


def forward_subject(subject: str) -> str:
    """``Fwd: subject`` without piling up ``Fwd: Fw:``."""
    rest = _FORWARD_PREFIX.sub("", subject).strip()
    return f"Fwd: {rest}" if rest else "Fwd:"


def forward_body(message: ReceivedMessage, date_format: str) -> str:
    """Room to write on top, then the original under a header block, unquoted."""
    when = message.received_at or message.sent_at
    stamp = when.astimezone().strftime(date_format) if when is not None else "an unknown date"
    lines = [
        "",
        "",
        FORWARD_SEPARATOR,
        f"From: {sender_text(message)}",
        f"Date: {stamp}",
        f"Subject: {message.subject or '(no subject)'}",
    ]
    lines.append("")
    return "\n".join(lines) + "\n" + message.body.strip("\n") + "\n"


def quote_body(message: ReceivedMessage, date_format: str) -> str:
    """The neomutt-style attribution line, the original quoted with ``> ``, room below."""
    when = message.received_at or message.sent_at
    stamp = when.astimezone().strftime(date_format) if when is not None else "an unknown date"
    lines = [f"On {stamp}, {sender_text(message)} wrote:"]
    for line in message.body.splitlines() or [""]:
        lines.append(f"> {line}" if line else ">")
    return "\n".join(lines) + "\n\n"


def preview_text(body: str, max_lines: int) -> str:
    """The first lines of a body, for the inbox's preview pane."""
    lines = body.strip("\n").splitlines()
    if len(lines) > max_lines:
        return "\n".join([*lines[:max_lines], "…"])
    return "\n".join(lines)
