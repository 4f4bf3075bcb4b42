"""Two rune-tui instances in tmux write to each other, and each message appears on the
other side without a key being pressed there (WAIT), well before the one-minute poll."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rune_proto.address import random_part
from rune_tui import service
from rune_tui.config import Config, Paths
from tests.server_process import RuneServerProcess, ServerFactory
from tests.tui.test_tmux_e2e import PASSPHRASE, Terminal, command, terminal, unlock

pytestmark = pytest.mark.slow
__all__ = ["terminal"]  # the fixture, imported for the tests here

LIVE = 30.0  # seconds: generous, and still half the 60 s poll, so only WAIT can be in time


async def profile(server: RuneServerProcess, root: Path, name: str) -> str:
    probe = await service.probe_server(server.host, server.port)
    username = f"{name}-{random_part(6)}"
    await service.register_account(
        Paths.from_profile(root), Config(), probe, username, keystore="file", passphrase=PASSPHRASE
    )
    return f"{username}@{server.domain}"


def write(term: Terminal, to: str, subject: str, body: str, inbox: str) -> None:
    term.keys("c")
    term.wait_for(r"To\s+username@domain")
    term.fill(to, rf"To\s+{re.escape(to)}")
    term.next_field()
    term.fill(subject, rf"Subject\s+{re.escape(subject)}")
    term.next_field()
    term.fill(body, re.escape(body))
    term.keys("C-s")
    term.wait_for(inbox)


async def test_two_instances_see_each_others_mail_without_a_key(
    terminal: list[Terminal], rune_server: ServerFactory, tmp_path: Path
) -> None:
    server = rune_server("free")
    alice = await profile(server, tmp_path / "alice", "alice")
    bob = await profile(server, tmp_path / "bob", "bob")
    terms = {}
    for name in ("alice", "bob"):
        term = Terminal(command("--profile", str(tmp_path / name)), tmp_path)
        terminal.append(term)
        unlock(term)
        terms[name] = term
    alice_inbox = rf"{re.escape(alice)} — \d+ unread"
    bob_inbox = rf"{re.escape(bob)} — \d+ unread"
    terms["alice"].wait_for(alice_inbox)
    terms["bob"].wait_for(bob_inbox)

    write(terms["alice"], bob, "Are you there", "Ping from alice.", alice_inbox)
    terms["bob"].wait_for(rf"{re.escape(alice)}\s+Are you there", timeout=LIVE)
    terms["bob"].wait_for(rf"{re.escape(bob)} — 1 unread")

    write(terms["bob"], alice, "Right here", "Pong from bob.", bob_inbox)
    terms["alice"].wait_for(rf"{re.escape(bob)}\s+Right here", timeout=LIVE)

    write(terms["alice"], bob, "And again", "Still live.", alice_inbox)
    terms["bob"].wait_for(rf"{re.escape(alice)}\s+And again", timeout=LIVE)
    for term in terms.values():
        term.keys("q")
        term.wait_for("Quit rune-tui?")  # q asks first (settings.confirm_quit)
        term.keys("y")
        term.wait_until_gone()
