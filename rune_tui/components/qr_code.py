"""A QR code drawn with half-block characters: two modules to a terminal cell.

A terminal cell is about twice as tall as it is wide, so one character holds two modules
stacked (``▀`` top dark, ``▄`` bottom dark, ``█`` both, space neither): the code comes
out square and half as tall as one character a module would make it. Dark modules are
drawn black on white whatever the theme, because phone cameras read dark-on-light best.
The glyphs alone carry the matrix, so it still reads (inverted) on a terminal without
colour, and a test can take the matrix back from the widget's text.
"""

from __future__ import annotations

from collections.abc import Sequence

import segno
from rich.text import Text
from textual.widgets import Static

# QR's specification asks for 4 light modules around the code; 2 keep it on an 80×24
# screen and every phone reader tried reads it (the terminal's own margin adds more).
QUIET_ZONE = 2
GLYPHS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
DARK_ON_LIGHT = "#000000 on #ffffff"


def qr_matrix(payload: str, *, border: int = QUIET_ZONE) -> list[list[bool]]:
    """The modules of the smallest QR code (not Micro QR) for ``payload``, quiet zone included."""
    code = segno.make_qr(payload)
    return [[bool(module) for module in row] for row in code.matrix_iter(border=border)]


def half_block_lines(matrix: Sequence[Sequence[bool]]) -> list[str]:
    """Two rows of modules per line; an odd last row is paired with a light one."""
    width = len(matrix[0]) if matrix else 0
    rows = [list(row) for row in matrix]
    if len(rows) % 2:
        rows.append([False] * width)
    return [
        "".join(GLYPHS[top, bottom] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[0::2], rows[1::2], strict=True)
    ]


def matrix_from_lines(lines: Sequence[str]) -> list[list[bool]]:
    """The inverse of :func:`half_block_lines` (with the padding row, if one was added)."""
    decode = {glyph: pair for pair, glyph in GLYPHS.items()}
    matrix: list[list[bool]] = []
    for line in lines:
        pairs = [decode[glyph] for glyph in line]
        matrix.append([top for top, _ in pairs])
        matrix.append([bottom for _, bottom in pairs])
    return matrix


class QrCode(Static):
    """Shows ``payload`` as a QR code; its size follows the payload's length."""

    DEFAULT_CSS = """
    QrCode {
        width: auto;
        height: auto;
    }
    """

    def __init__(self, payload: str, *, id: str | None = None) -> None:
        self.payload = payload
        self.lines = half_block_lines(qr_matrix(payload))
        super().__init__(Text("\n".join(self.lines), style=DARK_ON_LIGHT), id=id)

    @property
    def columns(self) -> int:
        return len(self.lines[0]) if self.lines else 0
