"""The table and the PASS/SHORT lines of bench/tui_bench.py, from what it measured."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

GOAL_FIRST_ROWS = 1.2  # × neomutt
GOAL_J_MS = 5.0  # + neomutt's median
GOAL_COLD = 1.4  # × the bare Textual app
GOAL_RSS = 1.5  # × neomutt's VmRSS after the first rows


@dataclass(slots=True)
class Program:
    """One side: how to launch it, what it shows, and what was measured."""

    name: str
    command: list[str]
    first_rows_ms: list[float] = field(default_factory=list)
    to_prompt_ms: list[float] = field(default_factory=list)
    after_enter_ms: list[float] = field(default_factory=list)
    press_ms: list[float] = field(default_factory=list)
    memory: list[dict[str, int]] = field(default_factory=list)  # after rows, after presses


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else float("nan")


def _mib(program: Program, key: str) -> float:
    return _median([m[key] / 1024 for m in program.memory if key in m])


def goal(ok: bool, text: str) -> str:
    return f"{'PASS ' if ok else 'SHORT'}  {text}"


def report(
    neomutt: Program,
    rune: Program,
    bare: Program,
    bare_list: Program,
    kdf: float,
    runs: int,
    count: int,
    base: Program | None = None,
) -> None:
    print()
    print(f"Medians of {runs} runs; j: {len(rune.press_ms)} presses per program in all.")
    print()
    print("| program | first rows ms | j median ms | j p90 ms | VmRSS MiB | VmHWM MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in (neomutt, rune) if base is None else (neomutt, rune, base):
        print(
            f"| {p.name} | {_median(p.first_rows_ms):.0f} | {_median(p.press_ms):.1f} "
            f"| {_p90(p.press_ms):.1f} | {_mib(p, 'VmRSS'):.1f} | {_mib(p, 'VmHWM_after'):.1f} |"
        )
    print()
    to_prompt, after = _median(rune.to_prompt_ms), _median(rune.after_enter_ms)
    print(
        f"rune-tui first rows = launch to passphrase prompt {to_prompt:.0f} ms + Enter to rows "
        f"{after:.0f} ms (of which scrypt, measured apart: {kdf:.0f} ms)."
    )
    cold_bare = _median(bare.to_prompt_ms)
    print(
        f"cold start to first paint: rune-tui {to_prompt:.0f} ms, bare Textual {cold_bare:.0f} ms "
        f"(VmRSS {_mib(bare, 'VmRSS'):.1f} MiB)."
    )
    print(
        f"j on a bare Textual app (the same rows in one Static, reverse-video cursor): "
        f"median {_median(bare_list.press_ms):.1f} ms, p90 {_p90(bare_list.press_ms):.1f} ms."
    )
    print()
    rows_ratio = _median(rune.first_rows_ms) / _median(neomutt.first_rows_ms)
    print(
        goal(
            rows_ratio <= GOAL_FIRST_ROWS,
            f"rune-tui first rows on {count:,} <= {GOAL_FIRST_ROWS}x neomutt's: "
            f"{_median(rune.first_rows_ms):.0f} ms vs {_median(neomutt.first_rows_ms):.0f} ms "
            f"= {rows_ratio:.2f}x",
        )
    )
    gap = _median(rune.press_ms) - _median(neomutt.press_ms)
    print(
        goal(
            gap <= GOAL_J_MS,
            f"rune-tui j median within {GOAL_J_MS:.0f} ms of neomutt's: "
            f"{_median(rune.press_ms):.1f} ms vs {_median(neomutt.press_ms):.1f} ms "
            f"= {gap:+.1f} ms",
        )
    )
    cold_ratio = to_prompt / cold_bare
    print(
        goal(
            cold_ratio <= GOAL_COLD,
            f"rune-tui cold start <= {GOAL_COLD}x a bare Textual app's: "
            f"{to_prompt:.0f} ms vs {cold_bare:.0f} ms = {cold_ratio:.2f}x",
        )
    )
    rss, peak = _mib(rune, "VmRSS"), _mib(rune, "VmHWM_after")
    mutt_rss, mutt_peak = _mib(neomutt, "VmRSS"), _mib(neomutt, "VmHWM_after")
    print(
        goal(
            rss / mutt_rss <= GOAL_RSS,
            f"rune-tui RSS after first rows <= {GOAL_RSS}x neomutt's: {rss:.1f} MiB "
            f"(peak {peak:.1f}) vs {mutt_rss:.1f} MiB (peak {mutt_peak:.1f}) "
            f"= {rss / mutt_rss:.2f}x",
        )
    )
    if base is not None:
        compare(rune, base)


def compare(rune: Program, base: Program) -> None:
    """This checkout against the baseline tree, launched in turn in the same runs."""
    print()
    print("this checkout vs --baseline-code (same runs, interleaved):")
    pairs = (
        ("first rows ms", rune.first_rows_ms, base.first_rows_ms),
        ("launch to prompt ms", rune.to_prompt_ms, base.to_prompt_ms),
        ("Enter to rows ms", rune.after_enter_ms, base.after_enter_ms),
        ("j median ms", rune.press_ms, base.press_ms),
    )
    for name, mine, theirs in pairs:
        now, before = _median(mine), _median(theirs)
        print(f"  {name}: {before:.1f} -> {now:.1f} ({now / before:.2f}x)")
    now, before = _mib(rune, "VmRSS"), _mib(base, "VmRSS")
    print(f"  VmRSS after first rows MiB: {before:.1f} -> {now:.1f} ({now / before:.2f}x)")
