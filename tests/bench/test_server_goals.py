"""The server benchmark's issue-17 goals: one PASS/SHORT line each, judged from the
phases of a run, and the client library's crypto floor they compare against."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # the bench modules import each other as top-level modules

from bench_report import client_crypto_floor, server_goals  # noqa: E402
from server_load import Phase  # noqa: E402


def phase(
    side: str, mode: str, conns: int, server_us: float, client_us: float, p99_ms: float
) -> Phase:
    """A finished phase of 100 items over one second with these per-item figures."""
    return Phase(
        side=side,
        mode=mode,
        conns=conns,
        total=100,
        acked=100,
        seconds=1.0 if side == "peer" else 1.25,
        server_cpu=server_us * 100 / 1e6,
        client_cpu=client_us * 100 / 1e6,
        latencies_us=[int(p99_ms * 1000)] * 100,
    )


def test_one_verdict_per_goal_with_its_ratio() -> None:
    phases = [
        phase("peer", "steady", 1, 900, 500, 3.0),
        phase("rune", "steady", 1, 700, 500, 2.0),
        phase("peer", "steady", 64, 500, 350, 45.0),
        phase("rune", "steady", 64, 480, 600, 50.0),
    ]
    connects = [phase("peer", "connect", 8, 1500, 1500, 20), phase("rune", "connect", 8, 0, 0, 1)]
    goals = server_goals(phases, connects, floor=300.0, client_floor=380.0)
    verdicts = {text.split(":")[0]: ok for text, ok in goals}
    assert verdicts == {
        "rune server CPU per message at C = 64 <= peer's": True,  # 480 vs 500, at C = 64
        "rune p99 at C = 64 <= peer's": False,
        "rune new connections at C = 8 >= 0.8x peer's": True,  # 80/s vs 100/s: 0.80x
        "rune load-generator CPU per message at C = 64 <= 1.5x its crypto floor": False,
    }
    texts = [text for text, _ in goals]
    assert "480 µs vs 500 µs = 0.96x" in texts[0]
    assert "= 0.80x" in texts[2]
    assert "600 µs vs 380 µs = 1.58x" in texts[3]


def test_no_connection_rows_no_connection_goal() -> None:
    phases = [phase("peer", "steady", 8, 500, 350, 9.0), phase("rune", "steady", 8, 400, 400, 8.0)]
    goals = server_goals(phases, [], floor=300.0, client_floor=300.0)
    assert [ok for _, ok in goals] == [True, True, True]


@pytest.mark.slow
def test_the_client_floor_is_the_sends_own_primitives() -> None:
    """Two HPKE seals (to the receiver, to the server) and two signatures, nothing else."""
    total, parts = client_crypto_floor(repeats=3)
    kinds = sorted(name.split(" ")[0] + " " + name.split(" ")[1] for name, _ in parts)
    assert kinds == ["Ed25519 sign", "Ed25519 sign", "HPKE seal", "HPKE seal"]
    assert total > 0 and all(us > 0 for _, us in parts)
