"""The load sweep: every engine policy and every fair Ray baseline, at each load, over several seeds.

Each (scenario, load, seed) draws one trace (:func:`placement.sim.outcomes.build_invocations`) and
replays it with every policy, so policies are compared on the same invocations (paired by seed).
Per (scenario, load, policy) the summary gives the mean over seeds and a 95 % confidence interval
(Student t over the seeds) of SLO attainment, p50/p99 end-to-end latency, cost, carbon, timeouts
and rejections; and per (scenario, load) the engine's best policy against the best baseline,
with the per-seed paired difference and its interval, and the engine's largest saving against the
cheapest baseline attaining at least as much (less one point).

Example:
    >>> doc = sweep(loads=(0.4,), seeds=(1, 2), requests=150, policies=("cost_first", "ray_fallback_price"))
    >>> row = doc["comparison"][0]
    >>> row["engine_best"], row["baseline_best"]
    ('cost_first', 'ray_fallback_price')
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from placement.sim.baselines import RAY_BASELINES
from placement.sim.outcomes import Outcome, build_invocations, outcome_continuum, replay

ENGINE = ("default", "latency_first", "cost_first", "carbon_aware", "load_balancing", "edge_first", "per_kind",
          "default@file")
BASELINES = tuple(RAY_BASELINES)
LOADS = (0.2, 0.4, 0.6, 0.8, 1.0)
SEEDS = (1, 2, 3, 4, 5)

# Two-sided 95 % Student t quantiles by degrees of freedom (seeds - 1).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042}


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (0 for a single value)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or not np.isfinite(x).all():
        return float(x.mean()) if len(x) else math.nan, 0.0 if len(x) < 2 else math.nan
    df = len(x) - 1
    t = _T95.get(df) or _T95[max(k for k in _T95 if k <= df)]
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def _run(args: tuple[str, float, int, int, tuple[str, ...]]) -> list[Outcome]:
    scenario, load, seed, requests, policies = args
    c = outcome_continuum(seed=0)
    trace = build_invocations(c, load=load, requests=requests, seed=seed, drift=scenario == "drift")
    return [replay(p, c, trace) for p in policies]


def _finite(v: float) -> float | None:
    return None if not math.isfinite(v) else float(f"{v:.5g}")


def _summary(runs: list[Outcome]) -> dict[str, Any]:
    cpu_h = [r.cpu_seconds / 3600 for r in runs]
    out: dict[str, Any] = {"seeds": [r.seed for r in runs]}
    metrics = {
        "slo_attainment": [r.slo_attainment for r in runs],
        "p50_ms": [r.latency_ms(0.5) for r in runs],
        "p99_ms": [r.latency_ms(0.99) for r in runs],
        "p99_served_ms": [r.latency_ms(0.99, served_only=True) for r in runs],
        "cost_usd": [r.cost_usd for r in runs],
        "cost_per_cpu_hour": [r.cost_usd / h if h else 0.0 for r, h in zip(runs, cpu_h)],
        "carbon_g": [r.carbon_g for r in runs],
        "timed_out": [float(r.timed_out) for r in runs],
        "rejected": [float(r.rejected) for r in runs],
        "decision_ms_p99": [r.decision_ms_p99 for r in runs],
    }
    for name, vals in metrics.items():
        m, ci = mean_ci(vals)
        out[name] = {"mean": _finite(m) if name != "slo_attainment" else round(m, 4),
                     "ci95": _finite(ci) if name != "slo_attainment" else round(ci, 4),
                     "per_seed": [_finite(v) for v in vals]}
    return out


def sweep(*, loads: Iterable[float] = LOADS, seeds: Iterable[int] = SEEDS, requests: int = 600,
          scenarios: Iterable[str] = ("declared",), policies: Sequence[str] = (*ENGINE, *BASELINES),
          workers: int = 1) -> dict[str, Any]:
    """Run the sweep and return the JSON-ready document (config, results, comparison)."""
    loads, seeds, scenarios = tuple(loads), tuple(seeds), tuple(scenarios)
    unknown = [p for p in policies if p not in ENGINE and p not in BASELINES]
    if unknown:
        raise ValueError(f"policy {unknown[0]!r} does not exist; known: {', '.join((*ENGINE, *BASELINES))}.")
    jobs = [(sc, load, seed, requests, tuple(policies)) for sc in scenarios for load in loads for seed in seeds]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(_run, jobs))
    else:
        done = [_run(j) for j in jobs]
    by: dict[tuple[str, float, str], list[Outcome]] = {}
    for (sc, load, _, _, _), outs in zip(jobs, done):
        for o in outs:
            by.setdefault((sc, load, o.policy), []).append(o)
    results = [{"scenario": sc, "load": load, "policy": p, "kind": "baseline" if p in BASELINES else "engine",
                **_summary(runs)} for (sc, load, p), runs in by.items()]
    comparison = []
    for sc in scenarios:
        for load in loads:
            comparison.append(_compare(sc, load, {p: by[(sc, load, p)] for p in policies}))
    return {"config": {"loads": list(loads), "seeds": list(seeds), "requests_per_run": requests,
                       "scenarios": list(scenarios), "policies": list(policies),
                       "continuum": "outcome_continuum(seed=0): 6 edge sites, 2 fog pools, 1 cloud, 40 nodes"},
            "results": results, "comparison": comparison}


def _compare(scenario: str, load: float, runs: dict[str, list[Outcome]]) -> dict[str, Any]:
    """The engine's best policy (highest mean SLO attainment) against the best baseline, paired by
    seed; and cost at equal SLO: for each engine policy, the cheapest baseline that attains at least
    as much (less one point), keeping the engine policy with the largest saving. A baseline that is
    cheaper *and* better makes the saving negative: Ray reaches that SLO for less."""
    def slo(p: str) -> float:
        return float(np.mean([r.slo_attainment for r in runs[p]]))

    def cost(p: str) -> float:
        return float(np.mean([r.cost_usd for r in runs[p]]))

    engine = [p for p in runs if p in ENGINE]
    base = [p for p in runs if p in BASELINES]
    row: dict[str, Any] = {"scenario": scenario, "load": load}
    if not engine or not base:
        return row
    e, b = max(engine, key=slo), max(base, key=slo)
    diff = [x.slo_attainment - y.slo_attainment for x, y in zip(runs[e], runs[b])]
    m, ci = mean_ci(diff)
    row.update(engine_best=e, baseline_best=b, engine_slo=round(slo(e), 4), baseline_slo=round(slo(b), 4),
               slo_points=round(100 * m, 2), slo_points_ci95=round(100 * ci, 2),
               engine_ahead=bool(m - ci > 0))  # the paired interval lies above zero
    best: tuple[float, str, str] | None = None
    for ce in engine:
        peers = [p for p in base if slo(p) >= slo(ce) - 0.01]
        if peers:
            cb = min(peers, key=cost)
            saving = 1 - cost(ce) / cost(cb) if cost(cb) else 0.0
            if best is None or saving > best[0]:
                best = (saving, ce, cb)
    if best is not None:
        _, ce, cb = best
        saving = [1 - x.cost_usd / y.cost_usd for x, y in zip(runs[ce], runs[cb]) if y.cost_usd]
        sm, sci = mean_ci(saving)
        row.update(cost_engine=ce, cost_baseline=cb, cost_engine_slo=round(slo(ce), 4),
                   cost_baseline_slo=round(slo(cb), 4), cost_saving=round(sm, 4), cost_saving_ci95=round(sci, 4))
    return row


def markdown(doc: dict[str, Any]) -> str:
    """One table per scenario (SLO and p99 per policy per load), then the comparison."""
    lines = []
    for sc in doc["config"]["scenarios"]:
        loads = doc["config"]["loads"]
        rows = [r for r in doc["results"] if r["scenario"] == sc]
        lines += [f"scenario `{sc}`: SLO attainment % (± 95 % CI) / p99 ms (a timed-out request counts at its "
                  f"deadline; in brackets the p99 of those served), {len(doc['config']['seeds'])} seeds", "",
                  "| policy | " + " | ".join(f"load {x:.0%}" for x in loads) + " |",
                  "|---|" + "---|" * len(loads)]
        for p in doc["config"]["policies"]:
            cells = []
            for load in loads:
                r = next(x for x in rows if x["policy"] == p and x["load"] == load)
                p99, served = r["p99_ms"]["mean"], r["p99_served_ms"]["mean"]
                cells.append(f"{100 * r['slo_attainment']['mean']:.1f} ± {100 * r['slo_attainment']['ci95']:.1f} / "
                             f"{p99:.0f} ({served:.0f})")
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
        lines += ["", f"scenario `{sc}`: p99 ms / cost $ per CPU-hour / carbon g of a run (means over seeds)", "",
                  "| policy | " + " | ".join(f"load {x:.0%}" for x in loads) + " |", "|---|" + "---|" * len(loads)]
        for p in doc["config"]["policies"]:
            cells = []
            for load in loads:
                r = next(x for x in rows if x["policy"] == p and x["load"] == load)
                cells.append(f"{r['p99_ms']['mean']:.0f} / {r['cost_per_cpu_hour']['mean']:.4f} / "
                             f"{r['carbon_g']['mean']:.3g}")
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["| scenario | load | engine best | baseline best | SLO points (± CI) | engine vs cheapest baseline at "
              "its SLO (less a point) | saving (± CI) |", "|---|---|---|---|---|---|---|"]
    for c in doc["comparison"]:
        cost = (f"{c['cost_engine']} vs {c['cost_baseline']} | {100 * c['cost_saving']:.1f} % ± "
                f"{100 * c['cost_saving_ci95']:.1f}") if "cost_engine" in c else "– | –"
        lines.append(f"| {c['scenario']} | {c['load']:.0%} | {c['engine_best']} {100 * c['engine_slo']:.1f} % | "
                     f"{c['baseline_best']} {100 * c['baseline_slo']:.1f} % | {c['slo_points']:+.1f} ± "
                     f"{c['slo_points_ci95']:.1f} | {cost} |")
    return "\n".join(lines)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
