"""The simulator's published comparison holds: the docs claim a win exactly where the data shows one.

docs/placement.md and docs/benchmarks.md print, per scenario and load, the engine's best policy
against the best of *all five* fair Ray baselines, paired by seed with a 95 % interval, from
``bench/results/placement_sim.json`` (``python -m placement.sim --full``). These tests

* recompute that comparison from the per-seed figures in the JSON, over every engine policy and
  every baseline, and check the engine is ahead (interval above zero) exactly at :data:`WINS`;
* check both docs' tables carry the same figures and say "yes" exactly there;
* replay one seed of the full-size sweep at two loads and check the JSON is what the code gives
  today, so a change to a policy, a baseline or the simulator without a rerun fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from placement.sim.sweep import BASELINES, ENGINE, _run, mean_ci

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "bench" / "results" / "placement_sim.json"

WINS = {("declared", 0.6), ("declared", 0.8), ("declared", 1.0), ("drift", 0.6), ("drift", 0.8), ("drift", 1.0)}
"""Where the docs say the engine's best policy is ahead of the best fair baseline."""
RAY_AHEAD = {("declared", 0.2)}
"""Where the docs say the best fair baseline is ahead of the engine."""

ROW = re.compile(r"^\| (declared|drift) \| (\d+) % \| (\S+) ([\d.]+) % \| (\S+) ([\d.]+) % \| "
                 r"([-+−]?[\d.]+) ± ([\d.]+) \| (yes|no) \|")


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(RESULTS.read_text())


def _slo(doc: dict, scenario: str, load: float) -> dict[str, list[float]]:
    return {r["policy"]: r["slo_attainment"]["per_seed"] for r in doc["results"]
            if r["scenario"] == scenario and r["load"] == load}


def _comparison(doc: dict) -> dict[tuple[str, float], tuple[str, str, float, float]]:
    """(scenario, load) -> (engine best, baseline best, paired mean points, CI half-width)."""
    out = {}
    for sc in doc["config"]["scenarios"]:
        for load in doc["config"]["loads"]:
            slo = _slo(doc, sc, load)
            assert set(BASELINES) <= set(slo) and set(ENGINE) <= set(slo), sorted(slo)
            e = max(ENGINE, key=lambda p: np.mean(slo[p]))
            b = max(BASELINES, key=lambda p: np.mean(slo[p]))
            m, ci = mean_ci([100 * (x - y) for x, y in zip(slo[e], slo[b])])
            out[(sc, load)] = (e, b, m, ci)
    return out


def test_the_full_sweep_has_every_load_five_seeds_and_every_policy(doc):
    cfg = doc["config"]
    assert cfg["loads"] == [0.2, 0.4, 0.6, 0.8, 1.0] and len(cfg["seeds"]) >= 5
    assert cfg["scenarios"] == ["declared", "drift"] and cfg["requests_per_run"] == 4000
    assert set(cfg["policies"]) == set(ENGINE) | set(BASELINES)
    for r in doc["results"]:
        for metric in ("p99_ms", "p99_served_ms", "cost_usd", "carbon_g"):
            assert all(v is not None for v in r[metric]["per_seed"]), (r["policy"], r["load"], metric)


def test_engine_is_ahead_of_the_best_of_all_baselines_exactly_where_the_docs_say(doc):
    comparison = _comparison(doc)
    ahead = {k for k, (_, _, m, ci) in comparison.items() if m - ci > 0}
    behind = {k for k, (_, _, m, ci) in comparison.items() if m + ci < 0}
    assert ahead == WINS, comparison
    assert behind == RAY_AHEAD, comparison
    for key in WINS:  # ahead, but nowhere near the goal of +10 points
        assert comparison[key][2] < 3.0, comparison[key]


@pytest.mark.parametrize("path", ["docs/placement.md", "docs/benchmarks.md"])
def test_docs_print_the_comparison_the_json_holds(doc, path):
    comparison = _comparison(doc)
    rows = [ROW.match(line) for line in (ROOT / path).read_text().splitlines()]
    rows = [m for m in rows if m]  # figures printed to one decimal of values rounded once before
    assert {(m[1], int(m[2]) / 100) for m in rows} == set(comparison), f"{path}: one row per scenario and load"
    for m in rows:
        key = (m[1], int(m[2]) / 100)
        e, b, points, ci = comparison[key]
        slo = _slo(doc, *key)
        assert (m[3], m[5]) == (e, b), (path, m[0])
        assert float(m[4]) == pytest.approx(100 * np.mean(slo[e]), abs=0.06), (path, m[0])
        assert float(m[6]) == pytest.approx(100 * np.mean(slo[b]), abs=0.06), (path, m[0])
        assert float(m[7].replace("−", "-")) == pytest.approx(points, abs=0.06), (path, m[0])
        assert float(m[8]) == pytest.approx(ci, abs=0.06), (path, m[0])
        assert (m[9] == "yes") == (key in WINS), (path, m[0])


@pytest.mark.parametrize("scenario, load, seed", [("declared", 0.8, 1), ("drift", 0.8, 3)])
def test_the_json_is_what_the_simulator_gives_today(doc, scenario, load, seed):
    """One seed of the full-size run, every policy: the same attainment, cost and p99 as the JSON."""
    policies = tuple(doc["config"]["policies"])
    outcomes = {o.policy: o for o in _run((scenario, load, seed, doc["config"]["requests_per_run"], policies))}
    i = doc["config"]["seeds"].index(seed)
    for r in doc["results"]:
        if (r["scenario"], r["load"]) != (scenario, load):
            continue
        o = outcomes[r["policy"]]
        assert o.slo_attainment == pytest.approx(r["slo_attainment"]["per_seed"][i], abs=1e-4), r["policy"]
        assert o.cost_usd == pytest.approx(r["cost_usd"]["per_seed"][i], rel=1e-3), r["policy"]
        assert o.latency_ms(0.99) == pytest.approx(r["p99_ms"]["per_seed"][i], rel=1e-3), r["policy"]


def test_per_kind_is_cheaper_than_ray_per_kind_but_not_by_the_goal(doc):
    """Inside the budget the engine weighs price where latency-ordered fallbacks take the nearest
    pool: cheaper at 20–80 % load with the network as declared, by less as load rises, never 15 %;
    at 100 % load, where every CPU is busy whatever the choice, the interval holds zero."""
    savings = {}
    for load in doc["config"]["loads"]:
        cost = {r["policy"]: r["cost_usd"]["per_seed"] for r in doc["results"]
                if r["scenario"] == "declared" and r["load"] == load}
        savings[load] = mean_ci([1 - e / b for e, b in zip(cost["per_kind"], cost["ray_per_kind"])])
    assert all(m - ci > 0 and m < 0.15 for load, (m, ci) in savings.items() if load < 1.0), savings
    assert savings[0.2][0] > savings[0.4][0] > savings[0.6][0] > savings[0.8][0], savings
    assert abs(savings[1.0][0]) < savings[1.0][1], savings
