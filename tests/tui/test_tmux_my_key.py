"""My key in a real terminal (tmux): M opens it, and the QR code a person would scan is,
glyph for glyph on the terminal's own screen, segno's matrix of the account's key card.

Skipped without tmux, unless RUNE_REQUIRE_TMUX=1 (then a missing tmux fails).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rune_proto.address import parse_address
from rune_proto.keycard import KeyCard
from rune_tui import service
from rune_tui.components.qr_code import half_block_lines, qr_matrix
from rune_tui.config import Paths, load_config
from rune_tui.screens.contacts import fingerprint_block
from tests.server_process import ServerFactory
from tests.tui.test_tmux_e2e import PASSPHRASE, Terminal, alice_profile, command, unlock

pytestmark = pytest.mark.slow

WIDTH = 120  # the Terminal's pane


@pytest.fixture
def terminal() -> Iterator[list[Terminal]]:
    """As test_tmux_e2e's: skipped without tmux (failed if RUNE_REQUIRE_TMUX=1), closed after."""
    if shutil.which("tmux") is None:
        if os.environ.get("RUNE_REQUIRE_TMUX") == "1":
            pytest.fail("tmux is required (RUNE_REQUIRE_TMUX=1) but not installed")
        pytest.skip("tmux is not installed")
    opened: list[Terminal] = []
    try:
        yield opened
    finally:
        for term in opened:
            term.close()


def find_block(screen: list[str], block: list[str]) -> tuple[int, int] | None:
    """Row and column where ``block``'s lines stand one under the other, or None."""
    anchor = next(i for i, line in enumerate(block) if line.strip())  # not the quiet zone
    for row, line in enumerate(screen):
        column = line.find(block[anchor])
        top = row - anchor
        if column < 0 or top < 0 or top + len(block) > len(screen):
            continue
        if all(screen[top + i][column : column + len(b)] == b for i, b in enumerate(block)):
            return top, column
    return None


async def test_capital_m_shows_a_qr_code_a_phone_can_read(
    terminal: list[Terminal], rune_server: ServerFactory, tmp_path: Path
) -> None:
    server = rune_server("free")
    alice = await alice_profile(server, tmp_path / "alice")
    paths = Paths.from_profile(tmp_path / "alice")
    [account] = load_config(paths).accounts
    key = service.load_identity(paths, account, PASSPHRASE).public
    card = KeyCard.of(parse_address(alice), key)

    term = Terminal(command("--profile", str(tmp_path / "alice")), tmp_path)
    terminal.append(term)
    unlock(term)
    term.wait_for(rf"{re.escape(alice)} — \d+ unread")
    term.keys("M")
    shown = term.wait_for(rf"My key — {re.escape(alice)}")
    for line in fingerprint_block(key.fingerprint_text(), per_line=8).splitlines():
        assert line in shown  # the groups, as the contacts screen shows a contact's

    screen = [line.ljust(WIDTH) for line in shown.splitlines()]
    block = half_block_lines(qr_matrix(card.payload()))
    assert find_block(screen, block) is not None, f"no QR code of {card.payload()}:\n{shown}"

    term.keys("q")
    term.wait_for(rf"{re.escape(alice)} — \d+ unread")
