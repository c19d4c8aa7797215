"""The fair Ray baselines behave as Ray's hybrid and SPREAD policies do, with the user's selectors."""

from __future__ import annotations

import collections

import numpy as np

from placement import ClusterSnapshot, Node, PlacementRequest, Pool, PoolSet
from placement.labels import pool_labels
from placement.sim.baselines import RAY_BASELINES, RayModel


def _cluster(per_pool: int = 5, *, busy: dict[str, float] | None = None, gpu_in: str | None = None) -> ClusterSnapshot:
    pools = PoolSet([Pool("a-cloud", "cloud", region="dc", cost_per_hour={"CPU": 0.03},
                          latency_to_regions_ms={"site-1": 60}),
                     Pool("m-fog", "fog", region="metro", cost_per_hour={"CPU": 0.06},
                          latency_to_regions_ms={"site-1": 10}),
                     Pool("z-edge", "edge", region="site-1", cost_per_hour={"CPU": 0.09},
                          latency_to_regions_ms={"site-1": 3})])
    nodes = []
    for p in pools.values():
        for k in range(per_pool):
            total = {"CPU": 4.0, **({"GPU": 1.0} if p.name == gpu_in and k == 0 else {})}
            used = (busy or {}).get(f"{p.name}-{k}", 0.0)
            nodes.append(Node(f"{p.name}-{k}", labels=pool_labels(p.name, tier=p.tier, region=p.region),
                              total=total, available={**total, "CPU": 4.0 - used}))
    return ClusterSnapshot(nodes, pools=pools)


def _pick(model: RayModel, req: PlacementRequest, snap: ClusterSnapshot) -> str:
    return model(req, snap).placements[0].node_id


def test_hybrid_picks_the_local_node_while_it_scores_no_worse_than_the_best():
    snap = _cluster()
    model = RAY_BASELINES["ray_hybrid_budget"](seed=3)
    req = PlacementRequest.single({"CPU": 1}, client_region="site-1", latency_budget_ms=20)
    local = model._idx(snap).local["site-1"]
    assert {_pick(model, req, snap) for _ in range(20)} == {snap.node_ids[local]}


def test_hybrid_spreads_at_random_over_the_top_k_once_the_local_node_is_past_the_threshold():
    snap = _cluster(per_pool=10)
    model = RAY_BASELINES["ray_hybrid_budget"](seed=3)
    local = model._idx(snap).local["site-1"]
    local_id = snap.node_ids[local]
    avail = snap.available.copy()
    avail[local, snap.resources.index("CPU")] = 1.0
    snap = snap.replace(available=avail)  # the local node 75 % busy: scores 0.75, the rest 0
    req = PlacementRequest.single({"CPU": 1}, client_region="site-1", latency_budget_ms=20)
    picks = collections.Counter(_pick(model, req, snap) for _ in range(400))
    assert local_id not in picks
    # k = max(1, 0.2 x 30 nodes) = 6 of the 19 score-0 nodes inside the budget (fog and edge), uniformly.
    assert len(picks) == 6 and min(picks.values()) > 40
    assert {n.split("-")[1] for n in picks} <= {"fog", "edge"}


def test_node_order_is_random_not_pool_name_order():
    # Without a client region there is no local node and no budget: the top-k are drawn from a
    # random id order, so the cloud (first by name) gets no more than its share across seeds.
    req = PlacementRequest.single({"CPU": 1})
    snap = _cluster(per_pool=10)
    pools = collections.Counter(_pick(RAY_BASELINES["ray_hybrid_budget"](seed=s), req, snap).split("-")[1]
                                for s in range(300))
    assert all(60 < pools[p] < 140 for p in ("cloud", "fog", "edge")), pools


def test_fallback_selectors_follow_latency_or_price_inside_the_budget():
    snap = _cluster()
    req = PlacementRequest.single({"CPU": 1}, client_region="site-1", latency_budget_ms=20)
    b = req.bundles[0]
    names = snap.pools.names
    by_latency = RAY_BASELINES["ray_fallback_latency"](seed=0).selector_pools(req, b, snap)
    assert [names[int(np.flatnonzero(m)[0])] for m in by_latency] == ["z-edge", "m-fog"]  # cloud: over budget
    by_price = RAY_BASELINES["ray_fallback_price"](seed=0).selector_pools(req, b, snap)
    assert [names[int(np.flatnonzero(m)[0])] for m in by_price] == ["m-fog", "z-edge"]
    # A full primary falls back to the next selector.
    full = _cluster(busy={f"z-edge-{k}": 4.0 for k in range(5)})
    assert _pick(RAY_BASELINES["ray_fallback_latency"](seed=0), req, full).startswith("m-fog")
    assert not RAY_BASELINES["ray_fallback_latency"](seed=0)(
        req, _cluster(busy={f"{p}-{k}": 4.0 for p in ("z-edge", "m-fog") for k in range(5)})).feasible


def test_spread_goes_round_robin_over_available_nodes():
    snap = _cluster(per_pool=2)
    model = RAY_BASELINES["ray_spread_budget"](seed=1)
    req = PlacementRequest.single({"CPU": 1})
    picks = [_pick(model, req, snap) for _ in range(12)]
    assert picks[:6] == picks[6:] and len(set(picks[:6])) == 6


def test_requests_without_gpu_avoid_gpu_nodes_while_others_are_available():
    snap = _cluster(per_pool=1, gpu_in="z-edge")
    req = PlacementRequest.single({"CPU": 1}, client_region="site-1", latency_budget_ms=20)
    # One selector holds edge and fog; the only edge node (the local one) has a GPU, so the fog wins.
    model = RAY_BASELINES["ray_hybrid_budget"](seed=0)
    assert _pick(model, req, snap).startswith("m-fog")
    gpu_req = PlacementRequest.single({"CPU": 1, "GPU": 1}, client_region="site-1", latency_budget_ms=20)
    assert _pick(model, gpu_req, snap) == "z-edge-0"


def test_per_kind_uses_nearest_fallbacks_with_a_budget_and_cheapest_without():
    snap = _cluster()
    model = RAY_BASELINES["ray_per_kind"](seed=2)
    near = PlacementRequest.single({"CPU": 1}, client_region="site-1", latency_budget_ms=20)
    batch = PlacementRequest.single({"CPU": 1}, client_region="site-1")
    d = model(near, snap)
    assert d.policy == "ray_per_kind" and d.placements[0].pool == "z-edge"
    assert model(batch, snap).placements[0].pool == "a-cloud"
