"""The outcome simulator measures what requests experienced, and the docs' claims about it hold.

docs/placement.md ("Outcomes against fair Ray baselines") states: the best fair Ray baseline is
per-kind selectors (nearest-first fallbacks for calls with a budget, cheapest-first for batch); with
the network as the pools file declares it, the engine's best policy is within a point of it and
does not reach the goal (+10 points, or 15 % cheaper at equal SLO); when links drift from the file,
the engine (with telemetry) stays ahead of it, by 0.3–1.6 points; at light load the engine is a
few per cent cheaper at equal attainment. These tests assert each at a smaller size, so any can fail.
"""

from __future__ import annotations

import json
import math

from placement.sim.__main__ import main
from placement.sim.outcomes import KINDS, build_invocations, outcome_continuum, replay
from placement.sim.sweep import mean_ci, sweep

FEW = ("default", "default@file", "cost_first", "per_kind", "ray_fallback_price", "ray_per_kind")


def test_slo_is_judged_on_end_to_end_latency_not_on_the_constraint():
    c = outcome_continuum(seed=0)
    trace = build_invocations(c, load=0.2, requests=600, seed=4)
    r = replay("latency_first", c, trace)
    slo_kinds = sum(1 for inv in trace.invocations if inv.kind.slo_ms is not None)
    assert r.slo_requests == slo_kinds == len(r.latencies_ms)
    # Every request the engine placed met its network budget, yet some still missed their
    # deadline: service time and waiting count, so attainment below 100 % at light load is possible.
    placed_misses = sum(1 for v in r.latencies_ms if math.isfinite(v)) - r.slo_met
    assert placed_misses > 0 and r.slo_attainment < 1.0
    assert r.retried > 0, "edge nodes left during the run and their work was retried"


def test_engine_is_not_ahead_of_the_best_fair_baseline_when_the_network_is_as_declared():
    doc = sweep(loads=(0.6,), seeds=(1, 2, 3), requests=1000, policies=FEW)
    c = doc["comparison"][0]
    assert c["baseline_best"] == "ray_per_kind" and c["engine_best"] == "per_kind"
    assert abs(c["slo_points"]) < 3.0, c        # the goal (+10 points) is not met
    assert c["cost_saving"] < 0.15, c           # nor 15 % cheaper at equal SLO


def test_with_drifting_links_the_engine_stays_ahead_of_the_best_baseline_but_short_of_the_goal():
    doc = sweep(loads=(0.6,), seeds=(1, 2, 3), requests=1000, scenarios=("drift",), policies=FEW)
    c = doc["comparison"][0]
    assert c["engine_best"] == "per_kind" and c["baseline_best"] == "ray_per_kind"
    assert 0.0 < c["slo_points"] < 10.0, c
    rows = {r["policy"]: r["slo_attainment"]["mean"] for r in doc["results"]}
    # Price-first fallbacks built from the file suffer most from drift; the engine's do not.
    assert rows["cost_first"] > rows["ray_fallback_price"] + 0.01, rows


def test_mean_ci_uses_student_t_over_seeds():
    m, ci = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert m == 3.0 and abs(ci - 2.776 * math.sqrt(2.5) / math.sqrt(5)) < 1e-9


def test_cli_writes_json_per_policy_per_load(tmp_path, capsys):
    out = tmp_path / "sim.json"
    assert main(["--loads", "0.3", "--seeds", "1,2", "--requests", "150", "--policies",
                 "cost_first,ray_hybrid_budget", "--workers", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    rows = {r["policy"]: r for r in doc["results"]}
    assert set(rows) == {"cost_first", "ray_hybrid_budget"}
    for r in rows.values():
        assert r["load"] == 0.3 and len(r["slo_attainment"]["per_seed"]) == 2
        assert {"p99_ms", "cost_usd", "carbon_g", "rejected", "timed_out"} <= set(r)
    assert "| cost_first |" in capsys.readouterr().out
    assert sum(k.share for k in KINDS) == 1.0


def test_at_light_load_the_engine_is_a_few_per_cent_cheaper_at_equal_attainment():
    doc = sweep(loads=(0.2,), seeds=(1, 2, 3), requests=1000, policies=("per_kind", "ray_per_kind",
                                                                         "ray_fallback_price"))
    c = doc["comparison"][0]
    assert (c["cost_engine"], c["cost_baseline"]) == ("per_kind", "ray_per_kind")
    assert abs(c["cost_engine_slo"] - c["cost_baseline_slo"]) < 0.01
    assert 0.03 < c["cost_saving"] < 0.15, c   # docs: 7.3 ± 0.7 % at full size; not the 15 % goal
