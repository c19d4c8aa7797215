"""Deciding how lost copies of replicated datasets are re-created, and the catalogue's record of them (no Ray)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from datashare.catalogue import Catalogue, Describe, HeldData, dataset_key
from datashare.dataset_info import DatasetInfo
from datashare.replica_repair import LiveNode, VersionCopies, plan_repairs, wanted_replicas, with_copy

SCHEMA = pa.schema([("x", pa.int64())])


def node_of(holder: str) -> str:
    return holder.split("-", 1)[1]


def live(**pools: str) -> tuple[dict[str, LiveNode], set[str]]:
    """Live nodes named by keyword, each in the pool given, each with a live holder."""
    return {n: LiveNode(p) for n, p in pools.items()}, {f"holder-{n}" for n in pools}


def version(wanted, *chunks, name: str = "t") -> VersionCopies:
    """Chunks given as holder names per chunk; refs are made up from chunk index and holder."""
    return VersionCopies(name, 1, wanted, tuple(tuple((f"r{i}@{h}", f"holder-{h}") for h in holders)
                                                for i, holders in enumerate(chunks)))


# --- replicas=N -------------------------------------------------------------------------------


def test_nothing_to_do_while_every_copy_is_live():
    nodes, holders = live(a="p", b="q", c="r")
    plan = plan_repairs([version(2, ["a", "b"], ["b", "a"])], nodes, holders, node_of)
    assert plan.survivors == plan.copies == plan.short == plan.lost == ()


def test_a_lost_node_is_dropped_and_each_of_its_chunks_gets_a_new_home_from_a_survivor():
    nodes, holders = live(b="q", c="r", d="s")          # node a left
    plan = plan_repairs([version(2, ["a", "b"], ["b", "a"])], nodes, holders, node_of)
    (survivor,) = plan.survivors
    assert survivor.chunks == ((("r0@b", "holder-b"),), (("r1@b", "holder-b"),))   # b's replica is now primary
    assert [(c.index, c.source) for c in plan.copies] == [(0, "r0@b"), (1, "r1@b")]
    assert {c.node for c in plan.copies} == {"c", "d"}    # spread over the free nodes, one chunk each
    assert plan.short == plan.lost == ()


def test_a_dead_holder_on_a_live_node_counts_as_lost():
    nodes, holders = live(a="p", b="q", c="r")
    holders.discard("holder-a")                          # the holder actor died; its node lives on
    plan = plan_repairs([version(2, ["a", "b"])], nodes, holders, node_of)
    assert plan.survivors[0].chunks == ((("r0@b", "holder-b"),),)
    assert [c.node for c in plan.copies] == ["a"]         # its node may take a copy again (a new holder)


def test_a_new_copy_is_pulled_from_a_copy_in_its_own_pool():
    # The primary is in the cloud; the new home's pool (edge) already has a copy to pull from.
    nodes, holders = live(c="cloud", e1="edge", e2="edge")
    plan = plan_repairs([version(3, ["c", "e1", "gone"])], nodes, holders, node_of)
    assert [(c.node, c.source) for c in plan.copies] == [("e2", "r0@e1")]
    # Without one there, the first live copy.
    nodes, holders = live(c="cloud", e1="edge", f="fog")
    plan = plan_repairs([version(3, ["c", "e1", "gone"])], nodes, holders, node_of)
    assert [(c.node, c.source) for c in plan.copies] == [("f", "r0@c")]


def test_new_homes_prefer_pools_without_a_copy():
    nodes, holders = live(b="q", b2="q", c="r")
    plan = plan_repairs([version(3, ["a", "b", "b2"])], nodes, holders, node_of)
    assert [c.node for c in plan.copies] == ["c"]


def test_copies_under_way_count_and_failed_ones_are_not_retried_on_the_same_node():
    nodes, holders = live(b="q", c="r", d="s")
    v = version(3, ["a", "b", "c"])
    assert plan_repairs([v], nodes, holders, node_of, pending=[("t", 1, 0, "d")]).copies == ()
    avoided = plan_repairs([v], nodes, holders, node_of, avoid=[("t", 1, 0, "d")])
    assert avoided.copies == () and avoided.short == (("t", 1),)
    node_gone = plan_repairs([v], nodes, holders, node_of, pending=[("t", 1, 0, "x")])   # x left meanwhile
    assert [c.node for c in node_gone.copies] == ["d"]


def test_without_a_free_node_the_version_keeps_its_copies_and_is_reported_short():
    nodes, holders = live(b="q", c="r")
    plan = plan_repairs([version(4, ["a", "b", "c"])], nodes, holders, node_of)
    assert plan.copies == () and plan.short == (("t", 1),)
    assert plan.survivors[0].chunks == ((("r0@b", "holder-b"), ("r0@c", "holder-c")),)


def test_a_chunk_without_any_live_copy_is_lost_and_keeps_its_record():
    nodes, holders = live(c="r")
    plan = plan_repairs([version(2, ["a", "b"], ["c", "a"])], nodes, holders, node_of)
    assert plan.lost == (("t", 1, 0),)
    assert plan.survivors[0].chunks[0] == (("r0@a", "holder-a"), ("r0@b", "holder-b"))   # reads name it lost
    assert [(c.index, c.node) for c in plan.copies] == []   # chunk 1 wants a 2nd node; none is free
    assert plan.short == (("t", 1),)


# --- pools ------------------------------------------------------------------------------------


def test_each_wanted_pool_that_lost_its_copy_gets_one_on_its_largest_store():
    nodes = {"b": LiveNode("edge-1"), "c1": LiveNode("edge-2", 100), "c2": LiveNode("edge-2", 300),
             "d": LiveNode("cloud")}
    holders = {f"holder-{n}" for n in nodes}
    plan = plan_repairs([version(("cloud", "edge-1", "edge-2"), ["a", "b", "d"])], nodes, holders, node_of)
    assert [c.node for c in plan.copies] == ["c2"]       # a (edge-2) left; cloud and edge-1 still hold one


def test_a_wanted_pool_without_live_nodes_is_reported_short_and_others_are_repaired():
    nodes, holders = live(b="edge-1", d="cloud")
    plan = plan_repairs([version(("edge-1", "edge-2"), ["a", "b", "x"])], nodes, holders, node_of)
    assert plan.copies == () and plan.short == (("t", 1),)


def test_pools_not_wanted_are_not_filled():
    nodes, holders = live(b="edge-1", c="edge-2")
    plan = plan_repairs([version(("edge-1",), ["a", "b"])], nodes, holders, node_of)
    assert plan.copies == () and plan.short == ()


def test_wanted_replicas_records_pools_as_the_pools_that_got_a_copy():
    assert wanted_replicas(3, ["x"]) == 3
    assert wanted_replicas("pools", ["edge-1", "cloud", "edge-1"]) == ("cloud", "edge-1")
    assert wanted_replicas(["edge-2", "edge-1", "edge-2"], []) == ("edge-2", "edge-1")


def test_with_copy_adds_a_copy_and_replaces_one_of_the_same_holder():
    chunks = ((("r0", "holder-a"),), (("r1", "holder-a"), ("s1", "holder-b")))
    assert with_copy(chunks, 0, "n0", "holder-c")[0] == (("r0", "holder-a"), ("n0", "holder-c"))
    assert with_copy(chunks, 1, "n1", "holder-b")[1] == (("r1", "holder-a"), ("n1", "holder-b"))


# --- the catalogue's record -------------------------------------------------------------------


def _info(replicas, chunks: int = 2) -> DatasetInfo:
    return DatasetInfo("t", 1, SCHEMA, 10, 80, chunks, ("a",), 0.0, replicas=replicas)


@pytest.fixture
def cat() -> Catalogue:
    cat = Catalogue(clock=lambda: 0.0)
    cat.reserve_version("t")
    cat.commit(_info(2), ["r0", "r1"], ["holder-a", "holder-a"], 1,
               spares=[[("s0", "holder-b")], [("s1", "holder-b")]])
    cat.take_instructions()
    return cat


def test_the_catalogue_lists_replicated_versions_with_their_copies(cat):
    cat.reserve_version("one")
    cat.commit(DatasetInfo("one", 1, SCHEMA, 1, 8, 1, ("a",), 0.0), ["o"], ["holder-a"], 1)
    (v,) = cat.replicated()                              # "one" has a single copy: nothing to keep up
    assert (v.name, v.version, v.wanted) == ("t", 1, 2)
    assert v.chunks == ((("r0", "holder-a"), ("s0", "holder-b")), (("r1", "holder-a"), ("s1", "holder-b")))


def test_set_copies_promotes_a_replica_tells_new_holders_and_bumps_the_generation(cat):
    before = cat.generation
    assert cat.set_copies("t", 1, [[("s0", "holder-b")], [("s1", "holder-b")]])       # a left
    found = cat.lookup("t", 1)
    assert (found.refs, found.holders, found.spares) == (("s0", "s1"), ("holder-b", "holder-b"), ())
    assert cat.generation == before + 1 and cat.take_instructions() == []
    assert cat.set_copies("t", 1, [[("s0", "holder-b"), ("n0", "holder-c")], [("s1", "holder-b")]])
    assert cat.lookup("t", 1).spares == ((("n0", "holder-c"),), ())
    assert cat.take_instructions() == [Describe("holder-c", dataset_key("t", 1), _info(2))]
    assert cat.generation == before + 2
    assert cat.set_copies("t", 1, cat.replicated()[0].chunks) and cat.generation == before + 2   # no change


def test_set_copies_refuses_a_gone_version_or_a_layout_that_does_not_fit(cat):
    assert not cat.set_copies("t", 2, [[("x", "holder-c")]])
    assert not cat.set_copies("t", 1, [[("x", "holder-c")]])            # one chunk of two
    assert not cat.set_copies("t", 1, [[("x", "holder-c")], []])        # a chunk without copies
    cat.delete("t", None)
    assert not cat.set_copies("t", 1, [[("x", "holder-c")], [("y", "holder-c")]])


def test_the_wanted_count_survives_a_catalogue_restart(cat):
    key = dataset_key("t", 1)
    fresh = Catalogue(clock=lambda: 0.0)
    fresh.restore({"holder-b": {key: HeldData(_info(2), {0: "s0", 1: "s1"})}})     # a's holder is gone
    (v,) = fresh.replicated()
    assert v.wanted == 2 and v.chunks == ((("s0", "holder-b"),), (("s1", "holder-b"),))
