"""The reservation ledger keeps a cached snapshot honest between reads, without Ray."""

from __future__ import annotations

import pytest

from placement import Bundle, ClusterSnapshot, Instance, Node, PlacementRequest, decide
from placement.ledger import ReservationLedger, apply_placements


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _snap() -> ClusterSnapshot:
    return ClusterSnapshot([
        Node("a", labels={"yr.io/pool": "edge-1", "yr.io/tier": "edge"}, total={"CPU": 2, "camera": 1}),
        Node("b", labels={"yr.io/pool": "cloud", "yr.io/tier": "cloud"}, total={"CPU": 8}),
    ])


def test_a_reservation_comes_off_the_snapshot_and_a_release_gives_it_back():
    clock = Clock()
    ledger = ReservationLedger(ttl_s=1.0, clock=clock)
    ledger.record(_snap())
    req = PlacementRequest((Bundle({"CPU": 1.5}, pools=("edge-1",)), Bundle({"CPU": 4}, pools=("cloud",))),
                           strategy="SPREAD")
    decision = decide(req, ledger.fresh())
    ledger.reserve(decision, req)
    snap = ledger.fresh()
    assert snap.free("a", "CPU") == 0.5 and snap.free("b", "CPU") == 4.0
    # A second request sees what the first took: it no longer fits edge-1.
    assert not decide(PlacementRequest((Bundle({"CPU": 1}, pools=("edge-1",)),)), snap).feasible
    ledger.release(decision, req)
    assert ledger.fresh().free("a", "CPU") == 2.0 and ledger.fresh().free("b", "CPU") == 8.0


def test_free_amounts_never_go_below_zero_or_above_what_was_taken():
    snap = _snap()
    req = PlacementRequest((Bundle({"CPU": 2, "camera": 1}),))
    decision = decide(req, snap)
    taken = apply_placements(snap, decision, req)
    twice = apply_placements(taken, decision, req)
    assert twice.free("a", "CPU") == 0.0 and twice.free("a", "camera") == 0.0
    assert snap.free("a", "CPU") == 2.0  # snapshots are immutable: the original is untouched


def test_placements_on_nodes_or_resources_the_snapshot_lacks_are_skipped():
    full = ClusterSnapshot([*_snap().nodes, Node("c", total={"CPU": 4, "gpu": 1})])
    req = PlacementRequest((Bundle({"CPU": 1, "gpu": 1}),))
    decision = decide(req, full)
    assert decision.node_ids == ("c",)
    after = apply_placements(_snap(), decision, req)
    assert after.free("a", "CPU") == 2.0 and after.free("b", "CPU") == 8.0


def test_freshness_follows_the_read_time_not_the_bookings():
    clock = Clock()
    ledger = ReservationLedger(ttl_s=1.0, clock=clock)
    assert ledger.fresh() is None and ledger.snapshot is None
    ledger.record(_snap())
    clock.now += 0.9
    req = PlacementRequest.single({"CPU": 1})
    ledger.reserve(decide(req, ledger.fresh()), req)
    assert ledger.fresh() is not None
    clock.now += 0.2
    assert ledger.fresh() is None  # 1.1 s since the read, although booked 0.2 s ago
    assert ledger.snapshot is not None  # still there as the base of the next refresh
    ledger.invalidate()
    assert ledger.snapshot is None


def test_zero_ttl_never_reuses_and_bookings_without_a_snapshot_are_no_ops():
    ledger = ReservationLedger(ttl_s=0, clock=Clock())
    req = PlacementRequest.single({"CPU": 1})
    ledger.reserve(decide(req, _snap()), req)  # nothing recorded yet: nothing to adjust
    ledger.add_instance(Instance("x", "a", {"app": "db"}))
    assert ledger.snapshot is None
    ledger.record(_snap())
    assert ledger.fresh() is None
    with pytest.raises(ValueError, match="ttl_s=-1 is negative"):
        ReservationLedger(ttl_s=-1)


def test_instances_placed_since_the_read_are_counted_until_dropped():
    ledger = ReservationLedger(ttl_s=10.0, clock=Clock())
    ledger.record(_snap())
    ledger.add_instance(Instance("x", "a", {"app": "db"}))
    ledger.add_instance(Instance("y", "b", {"app": "web"}))
    assert [i.instance_id for i in ledger.fresh().instances] == ["x", "y"]
    ledger.drop_instances(["x"])
    assert [i.instance_id for i in ledger.fresh().instances] == ["y"]
