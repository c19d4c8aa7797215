"""The testbed benchmark's parts that need no cluster: the interval across rounds, percentiles over
lost requests, and the per-variant summary its JSON and docs table are made from."""

from __future__ import annotations

import math

import pytest

from bench._report import mean_ci95, percentile
from bench.continuum import APPS, ENGINE_VARIANTS, VARIANTS, markdown, summarise


def test_the_interval_across_rounds_is_student_t_and_absent_without_spread_to_measure():
    got = mean_ci95([1.0, 2.0, 3.0])
    # mean 2, sample sd 1, t(2 df) = 4.303: half-width 4.303 / sqrt(3) = 2.484
    assert got["mean"] == 2.0 and got["rounds"] == 3
    assert got["ci95"] == pytest.approx([2.0 - 2.4844, 2.0 + 2.4844], abs=1e-3)
    assert mean_ci95([5.0])["ci95"] is None
    assert mean_ci95([1.0, math.inf, 2.0]) == {"mean": math.inf, "ci95": None, "rounds": 3}
    with pytest.raises(ValueError, match="at least one"):
        mean_ci95([])


def test_a_percentile_that_falls_on_lost_requests_is_infinite_not_nan():
    assert percentile([1.0, math.inf, math.inf, math.inf], 0.99) == math.inf
    assert percentile([1.0, 2.0, math.inf], 0.5) == 2.0


def _round(ms: float, *, lost: str | None = None) -> dict:
    lat = {name: [ms] * 4 for name, *_ in APPS}
    pools = {name: ["edge-1"] for name, *_ in APPS}
    if lost:
        lat[lost] = [ms, ms, math.inf, math.inf]
        pools[lost] = ["edge-1", None]
    return {"latency_ms": lat, "pools": pools, "app_cost_per_hour": {n: 0.01 for n, *_ in APPS},
            "app_carbon_g_per_hour": {n: 3.0 for n, *_ in APPS}, "cost_per_hour": 0.04, "carbon_g_per_hour": 12.0}


def test_the_summary_holds_attainment_p99_cost_and_carbon_with_intervals_and_the_etl_outside_the_slo():
    # 40 ms breaks the features' 30 ms SLO only; the ETL's 40 ms jobs have no SLO. The third round
    # lost half the classifier's requests too: 6 of 12 inside.
    s = summarise([_round(40.0), _round(40.0), _round(40.0, lost="classifier")])
    assert s["slo_attainment_per_round"] == pytest.approx([2 / 3, 2 / 3, 1 / 2])
    assert s["slo_attainment_rounds"]["ci95"] is not None
    assert s["p99_ms"] == math.inf and s["p99_ms_rounds"]["ci95"] is None
    assert s["cost_per_hour"] == pytest.approx(0.04) and s["carbon_g_per_hour"] == pytest.approx(12.0)
    assert "slo_attainment" not in s["apps"]["etl"] and s["apps"]["etl"]["p50_ms"] == 40.0
    assert s["apps"]["classifier"]["pools"] == {"edge-1": 3, "unplaced": 1}
    table = markdown({"drift": {"loads": {"1": {"cost_first": s}}}})
    assert "| drift | 1 | cost_first | 61.1 [" in table and "| lost |" in table


def test_every_engine_variant_names_policies_that_exist():
    from placement import POLICIES

    assert set(VARIANTS) - set(ENGINE_VARIANTS) == {"ray_per_kind"}
    for budgeted, batch, _ in ENGINE_VARIANTS.values():
        assert budgeted in POLICIES and batch in POLICIES


def test_rows_set_the_engines_best_variant_against_rays():
    from bench.continuum import rows

    cell = lambda slo, cost: {"slo_attainment": slo, "cost_per_hour": cost}  # noqa: E731
    results = {"drift": {"loads": {"2": {"per_kind": cell(1.0, 0.2), "cost_first": cell(1.0, 0.1),
                                         "latency_first": cell(0.5, 0.05), "ray_per_kind": cell(2 / 3, 0.1)}}}}
    got = {r["metric"]: r for r in rows(results)}
    slo = got["SLO attainment, drift load 2: cost_first vs ray_per_kind"]
    assert (slo["yuanrong"], slo["raw"], slo["better"]) == (100.0, pytest.approx(200 / 3), "higher")
    assert slo["ratio"] == pytest.approx(1.5)
    cost = got["cost, drift load 2: cost_first vs ray_per_kind"]
    assert (cost["ratio"], cost["better"], cost["target"]) == (1.0, "lower", 1.0)
    # No Ray side (a run of engine variants only): no row.
    assert rows({"declared": {"loads": {"1": {"per_kind": cell(1.0, 0.1)}}}}) == []
