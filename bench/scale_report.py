"""bench/scale.py's table and verdict: medians over rounds, with the spread (min-max) where there were several."""

from __future__ import annotations

import statistics
from typing import Any

CPU_RATIO_TARGET = 0.5
"""At N = 100, the product's worker CPU per step at most half the best peer's."""
P99_TARGET_MS = 250.0
"""At N = 1,000, p99 step overhead at most this."""
STARVATION_TARGET = 2.0
"""At N = 1,000, every run within this many times the median run time."""

COLUMNS = (
    ("steps_per_s", "steps/s", "{:.1f}"),
    ("overhead_p50_ms", "ovh p50 ms", "{:.0f}"),
    ("overhead_p99_ms", "ovh p99 ms", "{:.0f}"),
    ("worker_cpu_ms", "wrk CPU ms/step", "{:.1f}"),
    ("server_cpu_ms", "srv CPU ms/step", "{:.1f}"),
    ("rss_kib_per_run", "RSS KiB/run", "{:.0f}"),
    ("events_per_step", "events/step", "{:.1f}"),
    ("signals_per_step", "signals/step", "{:.2f}"),
    ("run_p50_s", "run p50 s", "{:.1f}"),
    ("run_max_over_p50", "max/p50", "{:.2f}"),
    ("retried_calls_per_run", "re-asked/run", "{:.2f}"),
)


def median_of(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def cell(rounds: list[dict[str, Any]], key: str, fmt: str) -> str:
    values = [r[key] for r in rounds]
    text = fmt.format(statistics.median(values))
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return text


def table(results: dict[tuple[str, int], list[dict[str, Any]]]) -> list[str]:
    """One row per (framework, N) measured, in the order measured."""
    rows = [["framework", "N", "rounds", *(title for _, title, _ in COLUMNS)]]
    for (framework, n), rounds in results.items():
        if rounds:
            rows.append([framework, str(n), str(len(rounds)), *(cell(rounds, k, f) for k, _, f in COLUMNS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(text.rjust(w) if i else text.ljust(w) for i, (text, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def verdict(results: dict[tuple[str, int], list[dict[str, Any]]], peers: tuple[str, ...]) -> tuple[list[str], bool]:
    """The issue's load targets, each PASS, FAIL or not measured; ok only when every measured one passes."""
    lines, ok = [], True
    product = results.get(("product", 100))
    measured = {p: median_of(results[(p, 100)], "worker_cpu_ms") for p in peers if results.get((p, 100))}
    if product and measured:
        best = min(measured, key=lambda p: measured[p])
        ratio = median_of(product, "worker_cpu_ms") / measured[best]
        passed = ratio <= CPU_RATIO_TARGET
        ok &= passed
        lines.append(
            f"N=100 worker CPU per step: product {median_of(product, 'worker_cpu_ms'):.1f} ms vs best peer {best} "
            f"{measured[best]:.1f} ms: ratio {ratio:.2f} (target <= {CPU_RATIO_TARGET}): {'PASS' if passed else 'FAIL'}"
        )
    else:
        lines.append("N=100 worker CPU per step: not measured (needs the product and a peer at N=100)")
    big = results.get(("product", 1000))
    if big:
        p99, spread = median_of(big, "overhead_p99_ms"), max(r["run_max_over_p50"] for r in big)
        for name, value, target, unit in (
            ("p99 step overhead", p99, P99_TARGET_MS, " ms"),
            ("slowest run / median run", spread, STARVATION_TARGET, "x"),
        ):
            passed = value <= target
            ok &= passed
            lines.append(
                f"N=1000 {name}: {value:.2f}{unit} (target <= {target:g}{unit}): {'PASS' if passed else 'FAIL'}"
            )
    else:
        lines.append("N=1000 targets: not measured (run without --quick, with 1000 in --n)")
    return lines, ok
