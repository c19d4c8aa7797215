"""Shared by the benchmarks: machine facts, percentiles, the ratio table and the JSON record."""

from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

RESULTS = pathlib.Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    if k == lo or ordered[lo] == ordered[hi]:  # keeps inf (a lost request) from giving inf * 0 = nan
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def print_table(rows: list[dict[str, Any]], *, title: str) -> None:
    """Rows of {metric, unit, yuanrong, raw, ratio, target, better}."""
    print(f"\n{title}")
    print(f"{'metric':<44}{'unit':<8}{'yuanrong':>12}{'raw':>12}{'ratio':>9}  target")
    for r in rows:
        ok = r["ratio"] >= r["target"] if r["better"] == "higher" else r["ratio"] <= r["target"]
        sign = ">=" if r["better"] == "higher" else "<="
        print(f"{r['metric']:<44}{r['unit']:<8}{r['yuanrong']:>12.3f}{r['raw']:>12.3f}{r['ratio']:>9.3f}  "
              f"{sign} {r['target']:g} {'ok' if ok else 'MISSED'}")


def write_json(name: str, payload: dict[str, Any]) -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, sort_keys=True) + "\n")
    return path


def alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each side's measurement once per round, the sides taking turns to go first; values per side."""
    out: dict[str, list[float]] = {side: [] for side in sides}
    for r in range(rounds):
        for side in (list(sides) if r % 2 == 0 else list(reversed(list(sides)))):
            out[side].append(sides[side]())
    return out


def row(metric: str, unit: str, y: float, raw: float, target: float, better: str) -> dict[str, Any]:
    """A result row: yuanrong's figure, plain Ray's, their ratio and the target for it."""
    return {"metric": metric, "unit": unit, "yuanrong": y, "raw": raw, "ratio": y / raw, "target": target,
            "better": better}


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` took."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# Two-sided 95 % quantiles of Student's t by degrees of freedom (rounds - 1).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042}


def mean_ci95(values: Sequence[float]) -> dict[str, Any]:
    """Mean of per-round values with its 95 % Student-t interval across the rounds.

    ``ci95`` is ``[low, high]``; ``None`` with one round (no spread to measure) or when a value is
    not finite (a round that lost requests has an infinite p99).
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_ci95 needs at least one value; run at least one round.")
    mean = statistics.fmean(vals) if all(math.isfinite(v) for v in vals) else math.inf
    if len(vals) < 2 or not math.isfinite(mean):
        return {"mean": mean, "ci95": None, "rounds": len(vals)}
    df = len(vals) - 1
    t = _T95[max(k for k in _T95 if k <= df)] if df <= 30 else 1.96
    half = t * statistics.stdev(vals) / math.sqrt(len(vals))
    return {"mean": mean, "ci95": [mean - half, mean + half], "rounds": len(vals)}
