"""help.md, the text under the key list of ``?``: every daily-use feature has its words
there, and the keys it names are the keys the bindings really have (by default)."""

from __future__ import annotations

import re

import pytest

from rune_tui.keymap import binding_ids
from rune_tui.screens.help import HELP_TEXT

SECTIONS = (
    "Reading your mail", "Writing", "Drafts", "Searching", "Conversations",
    "Sent", "Deleting, and undoing it", "Read and unread", "Attachments",
    "When a sender's key changes", "Contacts", "Your own key", "Accounts", "Settings and keys",
    "What the server can and cannot see",
)  # fmt: skip

# binding id → how help.md writes its key
KEYS_NAMED = {
    "inbox.reply": "`r`",
    "inbox.forward": "`f`",
    "inbox.compose": "`c` (or `m`)",
    "inbox.search": "`/`",
    "inbox.next_hit": "`n`",
    "inbox.previous_hit": "`N`",
    "inbox.threads": "`t`",
    "inbox.delete": "`d`",
    "inbox.undo": "`u`",
    "inbox.toggle_read": "`U`",
    "inbox.refresh": "`R`",
    "inbox.key_change": "`K`",
    "reader.save": "`s`",
    "compose.send": "`Ctrl+S`",
    "compose.editor": "`Ctrl+E`",
    "compose.attach": "`Ctrl+T`",
    "compose.drafts": "`Ctrl+O`",
    "compose.review_key": "`Ctrl+K`",
    "app.contacts": "`C`",
    "app.sent": "`S`",
    "contacts.compare": "`v`",
    "contacts.write": "`m`",
    "app.my_key": "`M`",
    "my_key.compare": "`v`",
    "drafts.delete": "`d`",
}


def help_text() -> str:
    return HELP_TEXT.read_text("utf-8")


def test_every_feature_has_a_section() -> None:
    headings = re.findall(r"^## (.+)$", help_text(), flags=re.MULTILINE)
    assert [h for h in SECTIONS if h not in headings] == []


@pytest.mark.parametrize(("binding_id", "written"), KEYS_NAMED.items())
def test_the_keys_named_are_the_real_ones(binding_id: str, written: str) -> None:
    assert written in help_text(), f"help.md should name {binding_id} as {written}"
    real = binding_ids()[binding_id].keys.split(",")
    for key in re.findall(r"`([^`]+)`", written):
        as_bound = {"/": "slash"}.get(key, key.replace("Ctrl+", "ctrl+").lower())
        if len(key) == 1 and key.isalpha():
            as_bound = key  # case matters: u is undo, U is read/unread
        assert as_bound in real, f"help.md names {key} for {binding_id}, bound to {real}"
