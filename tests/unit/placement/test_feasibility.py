"""The fail-fast feasibility check, without Ray: exact messages, single bundles and groups."""

from __future__ import annotations

import pytest

from placement import Node, PlacementInfeasible
from placement.feasibility import NodeRecord, check_bundle, check_group, unknown_pool

MB = 2**20
NODES = (
    NodeRecord("c" * 20, {"yr.io/pool": "cloud", "yr.io/tier": "cloud"}, {"CPU": 4.0, "memory": 4096.0 * MB}),
    NodeRecord("e1" * 10, {"yr.io/pool": "edge-1", "yr.io/tier": "edge"}, {"CPU": 2.0, "camera": 1.0}),
    NodeRecord("e2" * 10, {"yr.io/pool": "edge-2", "yr.io/tier": "edge"}, {"CPU": 2.0, "sensor": 2.0}),
)
FIX = "Lower InvokeOptions.cpu/memory/custom_resources or add a larger node."


def test_work_that_fits_some_node_passes():
    check_bundle(NODES, what="f", need={"CPU": 4.0})
    check_bundle(NODES, what="f", need={"CPU": 1.0, "camera": 1.0, "GPU": 0.0}, tier="edge")
    check_bundle(NODES, what="f", need={"sensor": 2.0}, pools=("edge-1", "edge-2"))


def test_unknown_pool_and_tier_name_the_known_ones():
    with pytest.raises(PlacementInfeasible) as info:
        check_bundle(NODES, what="function f", need={"CPU": 1.0}, pools=("edge-9",))
    assert str(info.value) == (
        "function f: pool='edge-9' does not exist; known pools: cloud, edge-1, edge-2. "
        "Add nodes labelled yr.io/pool=edge-9 to the cluster or pick one of those.")
    assert info.value.explanation == "no live node carries the label yr.io/pool=edge-9"
    assert not info.value.timed_out
    with pytest.raises(PlacementInfeasible) as info:
        check_bundle(NODES, what="function f", need={"CPU": 1.0}, tier="fog")
    assert str(info.value) == "function f: tier='fog' does not exist; known tiers: cloud, edge."
    assert info.value.explanation == "no live node carries the label yr.io/tier=fog"
    with pytest.raises(PlacementInfeasible, match=r"known pools: \(none\)"):
        check_bundle((), what="f", need={"CPU": 1.0}, pools=("cloud",))
    assert unknown_pool("x", ["a", "b"]) == "pool='x' does not exist; known pools: a, b"


def test_too_large_lists_every_candidate_node_and_what_it_lacks():
    with pytest.raises(PlacementInfeasible) as info:
        check_bundle(NODES, what="function f", need={"CPU": 64.0, "memory": 256.0 * MB}, fix=FIX)
    detail = ("  node cccccccccccc (pool cloud): needs CPU=64 (64000m), has 4 (4000m)\n"
              "  node e1e1e1e1e1e1 (pool edge-1): needs CPU=64 (64000m), has 2 (2000m), "
              "needs memory=256MB, has 0MB\n"
              "  node e2e2e2e2e2e2 (pool edge-2): needs CPU=64 (64000m), has 2 (2000m), "
              "needs memory=256MB, has 0MB")
    assert str(info.value) == (
        "function f can never be placed: it needs CPU=64 (64000m), memory=256MB but no node in the cluster "
        f"has that much.\n{detail}\n{FIX}")
    assert info.value.explanation == detail
    with pytest.raises(PlacementInfeasible, match=r"no node in pool\(s\) edge-2 has that much") as info:
        check_bundle(NODES, what="f", need={"camera": 1.0}, pools=("edge-2",))
    assert str(info.value).endswith("Ask for less or add a larger node.")
    with pytest.raises(PlacementInfeasible, match="no node in tier edge has that much"):
        check_bundle(NODES, what="f", need={"CPU": 3.0}, tier="edge")


def test_dead_nodes_do_not_count_and_snapshot_nodes_are_accepted():
    nodes = [Node("a", labels={"yr.io/pool": "cloud", "yr.io/tier": "cloud"}, total={"CPU": 8}, alive=False),
             Node("b", labels={"yr.io/pool": "edge-1", "yr.io/tier": "edge"}, total={"CPU": 2})]
    check_bundle(nodes, what="f", need={"CPU": 2.0})
    with pytest.raises(PlacementInfeasible, match="pool='cloud' does not exist; known pools: edge-1"):
        check_bundle(nodes, what="f", need={"CPU": 1.0}, pools=("cloud",))


def test_groups_by_strategy():
    check_group(NODES, [{"CPU": 2.0}] * 3, "STRICT_SPREAD", what="g")
    check_group(NODES, [{"CPU": 2.0}, {"CPU": 2.0}], "STRICT_PACK", what="g")
    with pytest.raises(PlacementInfeasible) as info:
        check_group(NODES, [{"CPU": 0.1}] * 4, "STRICT_SPREAD", what="resource group 'g'")
    assert str(info.value) == ("resource group 'g' can never be placed: STRICT_SPREAD needs 4 different nodes but "
                               "the cluster has 3. Use SPREAD, or fewer bundles.")
    assert info.value.explanation == "4 bundles > 3 nodes"
    with pytest.raises(PlacementInfeasible,
                       match=r"^resource group 'g' \(STRICT_PACK: all bundles on one node\) can never be placed: "
                             r"it needs CPU=6 \(6000m\)"):
        check_group(NODES, [{"CPU": 3.0}, {"CPU": 3.0}], "STRICT_PACK", what="resource group 'g'")
    with pytest.raises(PlacementInfeasible, match=r"^resource group 'g' bundle 1 can never be placed"):
        check_group(NODES, [{"CPU": 1.0}, {"CPU": 5.0}], "PACK", what="resource group 'g'")
    with pytest.raises(PlacementInfeasible, match=r"^g bundle 0: pool='fog' does not exist"):
        check_group(NODES, [{"CPU": 1.0}], "SPREAD", what="g", pools=("fog",))
    with pytest.raises(ValueError, match="'CLOSE' is not a valid Strategy"):
        check_group(NODES, [{"CPU": 1.0}], "CLOSE", what="g")
