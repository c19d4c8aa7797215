"""The holdings replay (``python -m placement.sim.holdings``) runs the real policies end to end at a
tiny size and writes its outputs. What requests experience, against the fair Ray baselines, is
tested in test_outcomes.py."""

from __future__ import annotations

import json

import pytest

from placement.sim.holdings import main
from placement.sim.continuum import build_continuum
from placement.sim.runner import simulate
from placement.sim.workload import build_trace


def test_tiny_simulation_writes_table_json_and_plots(tmp_path, capsys):
    assert main(["--nodes", "120", "--sites", "4", "--requests", "60", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| ray_label_pinning |" in out and "| edge_first |" in out
    doc = json.loads((tmp_path / "placement_sim.json").read_text())
    assert doc["config"]["requests"] == 60
    by = {r["policy"]: r for r in doc["results"]}
    assert set(by) >= {"default", "latency_first", "cost_first", "carbon_aware", "load_balancing", "edge_first",
                       "ray_label_pinning", "ray_pack_spread"}
    for r in by.values():
        assert r["placed"] + r["rejected"] == 60
        assert 0 <= r["slo_attainment"] <= 1
    for png in ("placement_sim.png", "placement_sim_pools.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_holdings_count_budget_compliance_and_carbon():
    c = build_continuum(nodes=300, sites=6, fogs=2, clouds=1, seed=2)
    trace = build_trace(regions=c.regions, requests=200, seed=2)
    ours = simulate("edge_first", c, trace)
    ray_like = simulate("ray_pack_spread", c, trace)
    # Budget compliance only: the engine filters on the budget, the old constraint-blind model does
    # not, so this cannot fail for the engine; outcomes are judged in test_outcomes.py.
    assert ours.slo_attainment == 1.0 and ray_like.slo_attainment < 1.0
    assert simulate("carbon_aware", c, trace).carbon_kg < simulate("latency_first", c, trace).carbon_kg


def test_unknown_policy_is_rejected_with_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        main(["--policies", "fastest"])
    assert "known policies" in capsys.readouterr().err
