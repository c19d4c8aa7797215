"""The Ray adapter on the shared real cluster: a cloud head node and two edge nodes.

Topology (``yuanrong.local_cluster.DEFAULT_TOPOLOGY``): ``cloud`` 4 CPUs (region-a), ``edge-1`` 2 CPUs
+ ``camera:1`` with ``yr.io/site=factory`` (site-1), ``edge-2`` 2 CPUs + ``sensor:2`` with
``yr.io/arch=arm64`` (site-2).
"""

from __future__ import annotations

import time

import pytest

from placement import (
    Affinity,
    Bundle,
    LabelOperator,
    PlacementInfeasible,
    PlacementRequest,
    parse_pools,
)

pytestmark = pytest.mark.cluster

POOLS = parse_pools("""
version: 1
pools:
  cloud:  {tier: cloud, cost_per_hour: {CPU: 0.04}, carbon_intensity: 120,
           latency_ms: {regions: {region-a: 2, site-1: 40, site-2: 45}}}
  edge-1: {tier: edge, cost_per_hour: {CPU: 0.09}, carbon_intensity: 350,
           latency_ms: {regions: {region-a: 40, site-1: 2, site-2: 15}}}
  edge-2: {tier: edge, cost_per_hour: {CPU: 0.09}, carbon_intensity: 250,
           latency_ms: {regions: {region-a: 45, site-1: 15, site-2: 2}}}
""")


@pytest.fixture(scope="module")
def placer(ray_session):
    from placement.ray_adapter import RayPlacer

    return RayPlacer(pools=POOLS, cache_ttl_s=0.0)


@pytest.fixture(scope="module")
def where():
    import ray

    @ray.remote(num_cpus=0)
    def node_id():
        return ray.get_runtime_context().get_node_id()

    return node_id


def _free(placer, pool, resource="CPU"):
    snap = placer.snapshot(fresh=True)
    return sum(snap.free(n.node_id, resource) for n in snap.nodes if n.pool == pool)


def _wait_free(placer, pool, amount, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _free(placer, pool) >= amount:
            return
        time.sleep(0.1)
    raise AssertionError(f"{pool} never got {amount} CPU free again")


def test_snapshot_reads_pools_labels_and_resources(placer, ray_session):
    snap = placer.snapshot(fresh=True)
    # The shared cluster may also list nodes that earlier tests added and removed: dead, kept in the
    # snapshot so explanations can say a pool's nodes are gone.
    by_pool = {n.pool: n for n in snap.nodes if n.alive}
    assert set(by_pool) == {"cloud", "edge-1", "edge-2"}
    assert by_pool["edge-1"].total["CPU"] == 2 and by_pool["edge-1"].total["camera"] == 1
    assert by_pool["edge-1"].labels["yr.io/site"] == "factory"
    assert by_pool["edge-2"].labels["yr.io/arch"] == "arm64" and by_pool["edge-2"].total["sensor"] == 2
    assert by_pool["cloud"].total["CPU"] == 4
    assert by_pool["edge-1"].node_id == ray_session.node_ids("edge-1")[0]
    assert not any("_group_" in r for r in snap.resources)


def test_group_spanning_edge_and_cloud_lands_on_the_intended_nodes(placer, ray_session, where):
    import ray

    req = PlacementRequest((Bundle({"CPU": 1, "camera": 1}, tiers=("edge",)), Bundle({"CPU": 2}, pools=("cloud",))),
                           strategy="SPREAD", name="span")
    with placer.create_group(req, timeout_s=20) as group:
        assert group.node_ids == (ray_session.node_ids("edge-1")[0], ray_session.node_ids("cloud")[0])
        ran = ray.get([where.options(**group.bundle_options(i)).remote() for i in range(2)])
        assert tuple(ran) == group.node_ids
        assert _free(placer, "cloud") == 2
    _wait_free(placer, "cloud", 4)
    _wait_free(placer, "edge-1", 2)


def test_offload_when_the_preferred_edge_pool_is_full(placer, ray_session, where):
    import ray

    fill = PlacementRequest((Bundle({"CPU": 2}, pools=("edge-1",)),))
    req = PlacementRequest((Bundle({"CPU": 1}, preferred_pools=("edge-1",)),), client_region="site-1",
                           latency_budget_ms=20)
    with placer.create_group(fill, timeout_s=20):
        with placer.create_group(req, policy="edge_first", timeout_s=20) as group:
            p = group.decision.placements[0]
            # edge-2 is 15 ms from site-1 and inside the budget; the cloud (40 ms) is not.
            assert p.pool == "edge-2" and p.offloaded_from == ("edge-1",)
            assert "offloaded from edge-1" in p.reason
            assert ray.get(where.options(**group.bundle_options(0)).remote()) == ray_session.node_ids("edge-2")[0]
        # With both edge nodes full the request cannot stay inside 20 ms. It fits the cluster's totals,
        # so the placer waits for capacity until the timeout, then says why.
        with placer.create_group(PlacementRequest((Bundle({"CPU": 2}, pools=("edge-2",)),)), timeout_s=20):
            t0 = time.monotonic()
            with pytest.raises(PlacementInfeasible) as info:
                placer.create_group(req, policy="edge_first", timeout_s=1.5)
            assert 1.4 < time.monotonic() - t0 < 4
            assert info.value.timed_out
            # ("alive" also names pools of nodes removed earlier in the session, if any.)
            assert set(info.value.explanation.constraints) - {"alive"} == {"latency_budget", "capacity"}
    _wait_free(placer, "edge-1", 2)
    _wait_free(placer, "edge-2", 2)


def test_instance_anti_affinity_keeps_two_instances_apart(placer, ray_session):
    import ray

    @ray.remote(num_cpus=1)
    class Worker:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    role = LabelOperator("LABEL_IN", "role", ("detector",))
    created = []
    try:
        nodes = []
        for _ in range(2):
            req = PlacementRequest.single(
                {"CPU": 1}, tiers=("edge",),
                affinities=(Affinity("INSTANCE", "REQUIRED_ANTI", (role,)),))
            opts = placer.options_for(req, policy="load_balancing", pin="node")
            w = Worker.options(**opts).remote()
            created.append(w)
            node = opts["label_selector"]["ray.io/node-id"]
            placer.register_instance(w._actor_id.hex(), {"role": "detector"}, node_id=node)
            nodes.append(ray.get(w.node.remote()))
        assert nodes[0] != nodes[1]
        assert set(nodes) == {ray_session.node_ids("edge-1")[0], ray_session.node_ids("edge-2")[0]}
        # A third detector has nowhere to go on the edge, and the explanation names the rule.
        third = PlacementRequest.single({"CPU": 1}, tiers=("edge",),
                                        affinities=(Affinity("INSTANCE", "REQUIRED_ANTI", (role,)),))
        t0 = time.monotonic()
        with pytest.raises(PlacementInfeasible, match="instance_affinity"):
            placer.options_for(third)
        assert time.monotonic() - t0 < 1  # no free capacity would help: it fails at once
        # The registry is cluster-wide: a second placer (another driver would do the same) sees both.
        from placement.ray_adapter import RayPlacer

        seen = RayPlacer(pools=POOLS, cache_ttl_s=0).snapshot().instances
        assert {i.instance_id for i in seen} >= {w._actor_id.hex() for w in created}
        # Co-location: INSTANCE REQUIRED affinity lands next to a detector.
        near = PlacementRequest.single({"CPU": 0.5}, affinities=(Affinity("INSTANCE", "REQUIRED", (role,)),))
        assert placer.decide(near).node_ids[0] in nodes
    finally:
        for w in created:
            ray.kill(w)
    # Dead instances drop out of the snapshot and the registry.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and placer.snapshot(fresh=True).instances:
        time.sleep(0.2)
    gone = {w._actor_id.hex() for w in created}
    assert not gone & {i.instance_id for i in placer.snapshot(fresh=True).instances}
    _wait_free(placer, "edge-1", 2)
    _wait_free(placer, "edge-2", 2)


def test_infeasible_request_fails_fast_with_its_explanation(placer):
    import ray
    from ray.util.placement_group import placement_group_table

    before = {k for k, v in placement_group_table().items() if v["state"] != "REMOVED"}
    t0 = time.monotonic()
    with pytest.raises(PlacementInfeasible) as info:
        placer.create_group(PlacementRequest((Bundle({"CPU": 1}, pools=("edge-9",)), Bundle({"CPU": 1}))),
                            timeout_s=30)
    assert time.monotonic() - t0 < 1.0
    assert "pool='edge-9' does not exist; known pools: cloud, edge-1, edge-2" in str(info.value)
    assert info.value.explanation.exclusions[0].constraint == "pools" and not info.value.timed_out
    with pytest.raises(PlacementInfeasible, match="no node has resource 'gpu'"):
        placer.create_group(PlacementRequest((Bundle({"CPU": 1, "gpu": 1}),)), timeout_s=30)
    after = {k for k, v in placement_group_table().items() if v["state"] != "REMOVED"}
    assert after == before  # nothing was created
    assert ray.is_initialized()


def test_group_not_realised_in_time_is_removed_and_raises(ray_session):
    """Capacity taken behind the placer's back (a stale snapshot) ends in a timeout, not a hang."""
    import ray
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    from placement.ray_adapter import RayPlacer

    stale = RayPlacer(pools=POOLS, cache_ttl_s=60.0)
    stale.snapshot(fresh=True)
    other = placement_group([{"CPU": 2}], bundle_label_selector=[{"yr.io/pool": "edge-2"}])
    ray.get(other.ready(), timeout=20)
    try:
        req = PlacementRequest((Bundle({"CPU": 2}, pools=("edge-2",)),))
        t0 = time.monotonic()
        with pytest.raises(PlacementInfeasible) as info:
            stale.create_group(req, timeout_s=2)
        elapsed = time.monotonic() - t0
        assert 1.9 < elapsed < 5
        assert info.value.timed_out
        assert "capacity" in str(info.value)  # the fresh re-decision found edge-2 full
        # Waiting for capacity that then appears succeeds within the timeout.
        import threading

        threading.Timer(0.5, remove_placement_group, args=(other,)).start()
        t0 = time.monotonic()
        with stale.create_group(req, timeout_s=10) as group:
            assert group.node_ids == (ray_session.node_ids("edge-2")[0],)
        assert time.monotonic() - t0 < 10
        pending = [v for v in placement_group_table().values() if v["state"] == "PENDING"]
        assert pending == []
    finally:
        if placement_group_table(other)["state"] != "REMOVED":
            remove_placement_group(other)
    _wait_free(RayPlacer(pools=POOLS, cache_ttl_s=0), "edge-2", 2)


def test_fast_path_options_for_tasks(placer, ray_session, where):
    import ray

    _wait_free(placer, "edge-2", 2)
    _wait_free(placer, "edge-1", 2)
    opts = placer.options_for(PlacementRequest.single({"CPU": 1}, client_region="site-2"), policy="latency_first")
    assert opts == {"label_selector": {"ray.io/node-id": ray_session.node_ids("edge-2")[0]}}
    assert ray.get(where.options(**opts).remote()) == ray_session.node_ids("edge-2")[0]
    by_pool = placer.options_for(PlacementRequest.single({"CPU": 1}, client_region="site-1"), policy="latency_first",
                                 pin="pool")
    assert by_pool["label_selector"] == {"yr.io/pool": "edge-1"}
    assert by_pool["fallback_strategy"][0] == {"label_selector": {"yr.io/pool": "edge-2"}}
    assert ray.get(where.options(**by_pool).remote()) == ray_session.node_ids("edge-1")[0]
    strat = placer.options_for(PlacementRequest.single({"sensor": 1}), pin="node_affinity")
    assert ray.get(where.options(**strat).remote()) == ray_session.node_ids("edge-2")[0]


def test_create_and_wait_pin_bundles_by_label_and_time_out_with_a_reason(ray_session, where):
    """The one helper pair every caller uses to make a placement group and await it."""
    import ray
    from ray.util.placement_group import placement_group_table
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from placement.ray_adapter import create_placement_group, wait_placement_group

    pg = create_placement_group([{"CPU": 0.5}, {"CPU": 0.5}], strategy="SPREAD",
                                bundle_label_selector=[{"yr.io/pool": "edge-1"}, {}])
    try:
        wait_placement_group(pg, timeout_s=20)
        strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
        assert ray.get(where.options(scheduling_strategy=strategy).remote()) == ray_session.node_ids("edge-1")[0]
    finally:
        ray.util.remove_placement_group(pg)
    # A selector no node matches: Ray would keep the group PENDING forever; the wait says why and removes it.
    stuck = create_placement_group([{"CPU": 0.5}], name="yr-test-stuck", bundle_label_selector=[{"yr.io/pool": "mars"}])
    t0 = time.monotonic()
    with pytest.raises(PlacementInfeasible) as info:
        wait_placement_group(stuck, timeout_s=1.5)
    assert 1.4 < time.monotonic() - t0 < 5
    message = str(info.value)
    assert info.value.timed_out and "placement group 'yr-test-stuck' for 1 bundle(s) was not ready within 1.5 s" in message
    assert "PENDING" in message and "label selector matches no node" in message and "The group was removed" in message
    deadline = time.monotonic() + 5
    while placement_group_table(stuck)["state"] != "REMOVED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert placement_group_table(stuck)["state"] == "REMOVED"
    with pytest.raises(ValueError, match="strategy='CLOSE' is not a Strategy"):
        create_placement_group([{"CPU": 1}], strategy="CLOSE")
    with pytest.raises(ValueError, match="1 selector"):
        create_placement_group([{"CPU": 1}, {"CPU": 1}], bundle_label_selector=[{}])
