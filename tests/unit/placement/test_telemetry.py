"""The engine decides on live RTT and load while they are fresh, and on the pools file otherwise."""

from __future__ import annotations

import logging

import pytest

from placement import ClusterSnapshot, Node, PlacementRequest, Pool, PoolSet, decide
from placement.labels import pool_labels
from placement.telemetry import Telemetry


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _snapshot() -> ClusterSnapshot:
    pools = PoolSet([Pool("edge-1", "edge", latency_to_regions_ms={"site-1": 3}),
                     Pool("fog", "fog", latency_to_regions_ms={"site-1": 12})])
    return ClusterSnapshot([Node("e1", labels=pool_labels("edge-1", tier="edge"), total={"CPU": 4}),
                            Node("e2", labels=pool_labels("edge-1", tier="edge"), total={"CPU": 4}),
                            Node("f1", labels=pool_labels("fog", tier="fog"), total={"CPU": 4})], pools=pools)


REQ = PlacementRequest.single({"CPU": 1}, client_region="site-1", latency_budget_ms=10)


def test_a_fresh_measurement_overrides_the_pools_file_and_a_stale_one_does_not(caplog):
    clock = Clock()
    t = Telemetry(max_age_s=5, clock=clock)
    snap = _snapshot().replace(telemetry=t)
    # The edge link measures 40 ms and the fog 6 ms: the budget now admits only the fog.
    t.record_rtt("site-1", "edge-1", 40.0, at=0.0)
    t.record_rtt("site-1", "fog", 6.0, at=0.0)
    d = decide(REQ, snap, policy="latency_first")
    assert d.placements[0].pool == "fog" and d.placements[0].terms["latency"] == 6.0
    clock.now = 6.0  # both figures are now older than 5 s
    with caplog.at_level(logging.WARNING, logger="placement.telemetry"):
        d = decide(REQ, snap, policy="latency_first")
        decide(REQ, snap, policy="latency_first")
    assert d.placements[0].pool == "edge-1" and d.placements[0].terms["latency"] == 3.0
    warnings = [r for r in caplog.records if r.name == "placement.telemetry"]
    assert len(warnings) == 1, "stale telemetry warns once, not per decision"
    assert "RTT from site-1" in warnings[0].getMessage() and "6.0 s old" in warnings[0].getMessage()


def test_missing_figures_fall_back_with_a_warning_and_fresh_ones_rearm_it(caplog):
    clock = Clock()
    t = Telemetry(max_age_s=5, clock=clock)
    snap = _snapshot().replace(telemetry=t)
    with caplog.at_level(logging.WARNING, logger="placement.telemetry"):
        assert decide(REQ, snap, policy="latency_first").placements[0].pool == "edge-1"
        assert "never measured" in caplog.records[-1].getMessage()
        t.record_rtt("site-1", "edge-1", 3.0)
        t.record_rtt("site-1", "fog", 12.0)
        decide(REQ, snap, policy="latency_first")
        clock.now = 10.0
        decide(REQ, snap, policy="latency_first")
    assert len(caplog.records) == 2, "a second stale episode warns again"


def test_measured_load_steers_the_load_term_without_lowering_it():
    clock = Clock()
    t = Telemetry(max_age_s=5, clock=clock)
    snap = _snapshot()
    req = PlacementRequest.single({"CPU": 1}, pools=("edge-1",))
    assert decide(req, snap, policy="load_balancing").node_ids == ("e1",)  # tie: snapshot order
    t.record_load("e1", 0.9)
    t.record_load("e2", 0.0)
    d = decide(req, snap.replace(telemetry=t), policy="load_balancing")
    assert d.node_ids == ("e2",)
    assert d.placements[0].terms["load"] == pytest.approx(0.25)  # reservations say 25 %, above 0
    clock.now = 30.0
    assert decide(req, snap.replace(telemetry=t), policy="load_balancing").node_ids == ("e1",)


def test_measured_load_below_the_demand_still_sends_the_call_to_the_idler_node():
    # e1 burns one of its 4 CPUs with nothing booked (work that reserved no CPU); e2 is idle. After
    # placing one CPU, e1 is half busy and e2 a quarter: the default policy, whose other terms are
    # equal on the two nodes, picks e2. (Comparing the measured 25 % with the 25 % that e1's
    # reservations reach after the placement would call the two nodes equal and pick e1.)
    t = Telemetry(max_age_s=5, clock=Clock())
    t.record_load("e1", 0.25)
    t.record_load("e2", 0.0)
    req = PlacementRequest.single({"CPU": 1}, pools=("edge-1",))
    d = decide(req, _snapshot().replace(telemetry=t), policy="default")
    assert d.node_ids == ("e2",) and d.placements[0].terms["load"] == pytest.approx(0.25)
    assert [(r.node_id, r.lost_on) for r in d.placements[0].runners_up][:1] == [("e1", "load")]
    # Booked work that the measurement also sees is not counted twice: e1 with its 1 CPU booked
    # (and e2 full) is half busy after the placement, not three quarters.
    snap = _snapshot().replace(telemetry=t)
    booked = snap.replace(available=snap.available * [[0.75], [0.0], [1.0]])
    d = decide(req, booked, policy="default")
    assert d.node_ids == ("e1",) and d.placements[0].terms["load"] == pytest.approx(0.5)


def test_bad_figures_are_refused():
    with pytest.raises(ValueError, match="max_age_s=0"):
        Telemetry(max_age_s=0)
    with pytest.raises(ValueError, match="rtt_ms=-1"):
        Telemetry().record_rtt("site-1", "fog", -1)


def test_snapshots_keep_their_telemetry_when_derived_unless_told_otherwise():
    t = Telemetry()
    snap = _snapshot().replace(telemetry=t)
    assert snap.replace(hour=3.0).telemetry is t
    assert snap.replace(telemetry=None).telemetry is None
    assert _snapshot().telemetry is None
