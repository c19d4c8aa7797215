"""InvokeOptions that go through the placement engine, on the shared cloud + edge cluster."""

from __future__ import annotations

import time

import numpy as np
import pytest

import yuanrong as yr

pytestmark = pytest.mark.cluster

K, T, O = yr.AffinityKind, yr.AffinityType, yr.OperatorType


@yr.invoke
def pool_of():
    import ray

    return ray.get_runtime_context().get_node_labels()["yr.io/pool"]


@yr.invoke
def make_block(n):
    return np.ones(n, dtype=np.uint8)


@yr.invoke
def size_of(block):
    import ray

    return len(block), ray.get_runtime_context().get_node_labels()["yr.io/pool"]


@yr.instance
class Service:
    def pool(self):
        import ray

        return ray.get_runtime_context().get_node_labels()["yr.io/pool"]

    def node(self):
        import ray

        return ray.get_runtime_context().get_node_id()


def test_required_resource_affinity_picks_the_labelled_node(yr_session):
    rule = yr.Affinity(K.RESOURCE, T.REQUIRED, [yr.LabelOperator(O.LABEL_IN, "yr.io/site", ["store"])])
    opts = yr.InvokeOptions(cpu=100, memory=32, schedule_affinities=[rule])
    assert {yr.get(pool_of.options(opts).invoke()) for _ in range(3)} == {"edge-2"}


def test_anti_affinity_keeps_instances_apart_and_affinity_brings_them_together(yr_session):
    db = Service.options(cpu=100, memory=32, labels=["role:db"], pool="edge-1").invoke()
    db_node = yr.get(db.node.invoke())
    away = yr.Affinity(K.INSTANCE, T.REQUIRED_ANTI, [yr.LabelOperator(O.LABEL_EXISTS, "role")])
    near = yr.Affinity(K.INSTANCE, T.REQUIRED, [yr.LabelOperator(O.LABEL_EXISTS, "role")])
    apart = [Service.options(cpu=100, memory=32, schedule_affinities=[away]).invoke() for _ in range(2)]
    together = Service.options(cpu=100, memory=32, schedule_affinities=[near]).invoke()
    assert all(yr.get(s.node.invoke()) != db_node for s in apart)
    assert yr.get(together.node.invoke()) == db_node
    for s in [db, together, *apart]:
        s.terminate()


def test_latency_budget_from_a_client_region(yr_session):
    near_site2 = yr.InvokeOptions(cpu=100, memory=32, client_region="site-2", latency_budget_ms=5)
    assert yr.get(pool_of.options(near_site2).invoke()) == "edge-2"
    near_site1 = yr.InvokeOptions(cpu=100, memory=32, client_region="site-1", latency_budget_ms=5)
    assert yr.get(pool_of.options(near_site1).invoke()) == "edge-1"


def test_unsatisfiable_constraints_fail_fast_with_an_explanation(yr_session):
    t0 = time.monotonic()
    impossible = yr.InvokeOptions(cpu=100, memory=32, client_region="site-1", latency_budget_ms=0.5)
    with pytest.raises(yr.PlacementError) as info:
        pool_of.options(impossible).invoke()
    assert "latency" in str(info.value).lower()
    mars = yr.Affinity(K.RESOURCE, T.REQUIRED, [yr.LabelOperator(O.LABEL_IN, "yr.io/site", ["mars"])])
    with pytest.raises(yr.PlacementError, match="cannot be placed") as info:
        pool_of.options(cpu=100, memory=32, schedule_affinities=[mars]).invoke()
    assert info.value.explanation
    assert time.monotonic() - t0 < 10


def test_unknown_policy_names_the_valid_ones(yr_session):
    with pytest.raises(yr.InvalidOptionError, match="placement_policy='fastest' is unknown; use one of"):
        pool_of.options(cpu=100, placement_policy="fastest").invoke()


def test_policies_choose_between_pools(yr_session):
    cheapest = yr.get(pool_of.options(cpu=100, memory=32, placement_policy="cost_first").invoke())
    assert cheapest in ("edge-1", "edge-2")   # edge CPU-hours cost a fifth of the cloud's
    greenest = yr.get(pool_of.options(cpu=100, memory=32, placement_policy="carbon_aware").invoke())
    assert greenest == "cloud"                # 120 g/kWh against 250 and 350 at the edge


def test_data_locality_runs_work_where_the_data_is(yr_session):
    block = make_block.options(pool="edge-2", cpu=100, memory=32).invoke(2_000_000)
    yr.wait([block], timeout=60)
    n, pool = yr.get(size_of.options(cpu=100, memory=32, data_locality=[block]).invoke(block))
    assert n == 2_000_000 and pool == "edge-2"


def test_resource_group_bundles_are_placed_by_the_policy(yr_session):
    rg = yr.create_resource_group([{"CPU": 250, "camera": 1}, {"CPU": 250}], strategy="SPREAD",
                                  placement_policy="carbon_aware")
    rg.wait(30)
    pools = []
    for i, extra in enumerate(({"camera": 1}, {})):
        opts = yr.InvokeOptions(cpu=250, memory=0, custom_resources=extra,
                                resource_group_options=yr.ResourceGroupOptions(rg.resource_group_name, i))
        pools.append(yr.get(pool_of.options(opts).invoke()))
    # The camera is only on edge-1; the other bundle goes where the grid is cleanest (cloud).
    assert pools == ["edge-1", "cloud"]
    too_big = yr.InvokeOptions(cpu=1000, memory=0,
                               resource_group_options=yr.ResourceGroupOptions(rg.resource_group_name, 1))
    with pytest.raises(yr.InvalidOptionError, match="bundle 1 .* is smaller"):
        pool_of.options(too_big).invoke()
    yr.remove_resource_group(rg)
    with pytest.raises(yr.InvalidOptionError, match="placement_policy='greenest' is unknown"):
        yr.create_resource_group([{"CPU": 250}], placement_policy="greenest")
