"""Progress lines are paced: at a 1,000-frame cap, a line per item would redraw per item."""

from __future__ import annotations

from rune_tui import cli
from rune_tui.pace import PROGRESS_SECONDS, Pace


class Clock:
    """A clock the test moves by hand: no sleeping through intervals."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_fast_count_is_shown_a_few_times_a_second_and_at_its_end() -> None:
    clock = Clock()
    pace = Pace(clock=clock)
    shown = []
    total = 2_000
    for done in range(1, total + 1):  # one item a millisecond: two seconds of work
        clock.now += 0.001
        if pace.due(last=done == total):
            shown.append(done)
    assert shown[0] == 1  # the first item at once
    assert shown[-1] == total  # and the end, whenever it comes
    assert len(shown) <= 2 / PROGRESS_SECONDS + 2


def test_a_slow_count_is_shown_item_by_item() -> None:
    clock = Clock()
    pace = Pace(0.125, clock=clock)  # steps exact in binary: no rounding at the edge
    shown = []
    for done in range(1, 6):
        clock.now += 0.125
        if pace.due(last=done == 5):
            shown.append(done)
    assert shown == [1, 2, 3, 4, 5]


def test_keys_are_drawn_without_waiting_for_a_60_hz_frame_slot() -> None:
    assert cli.FRAME_RATE >= 1000  # j: 13 ms at 240, 11.6 ms at 1000 (docs/performance.md)
