"""What a thief with a copy of a file can measure: where things sit, and whether that
follows the order in which they were written (Kendall's τ, with a p-value)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.001  # a correlation this unlikely under a random order counts as a leak


@dataclass(frozen=True)
class Order:
    """How well file positions recover the order things were written in."""

    what: str
    n: int
    tau: float
    p: float

    @property
    def leaks(self) -> bool:
        return self.p < ALPHA

    def __str__(self) -> str:
        return f"{self.what}: n={self.n} tau={self.tau:+.3f} p={self.p:.3g}"


def kendall_tau(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Kendall's τ-b (ties allowed), by counting pairs: n is small here."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            dx = (xs[i] > xs[j]) - (xs[i] < xs[j])
            dy = (ys[i] > ys[j]) - (ys[i] < ys[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    scale = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / scale if scale else 0.0


def order_of(what: str, positions: Sequence[int]) -> Order:
    """τ between the write order (the index) and the file position, and its two-sided
    p-value under a random order (normal approximation, fine from n ≈ 10)."""
    n = len(positions)
    tau = kendall_tau(list(range(n)), list(positions))
    sd = math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))
    return Order(what, n, tau, math.erfc(abs(tau / sd) / math.sqrt(2)))


def find_all(data: bytes, needles: Sequence[bytes]) -> list[int]:
    """Where each needle first sits in ``data`` (each must be there)."""
    found = [data.find(needle) for needle in needles]
    missing = sum(position < 0 for position in found)
    assert not missing, f"{missing} of {len(needles)} pieces are not in the file"
    return found
