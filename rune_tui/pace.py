"""A gate for lines that change faster than anyone can read them.

rune-tui asks Textual for up to 1,000 frames a second (so a key is drawn without
waiting for a frame slot; see cli.py). A line updated per item of a long job (the
"Fetching new messages: n of m" of a big refresh) would then be redrawn hundreds of
times a second; this lets it through a few times a second, and always at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PROGRESS_SECONDS = 0.1  # ten updates a second read as smooth counting


class Pace:
    """``due()`` is true at most once per ``interval`` seconds, and always when ``last``."""

    def __init__(
        self, interval: float = PROGRESS_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._shown: float | None = None  # when the last update was let through

    def due(self, *, last: bool = False) -> bool:
        now = self._clock()
        if last or self._shown is None or now - self._shown >= self.interval:
            self._shown = now
            return True
        return False
