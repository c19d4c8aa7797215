"""Replicated datasets repair themselves: copies lost with a node are re-created on live nodes."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest

pytestmark = pytest.mark.cluster

REPAIR_WAIT_S = 60.0


def _record(name: str) -> list[list[tuple[str, str]]]:
    """Per chunk, ``(node, object hex)`` of each copy the catalogue hands out, the primary first."""
    from datashare._ray import handles
    from datashare._ray.naming import node_of

    found = handles.ask_catalogue("lookup", name, None, timeout=30)
    spares = found.spares or ((),) * len(found.refs)
    return [[(node_of(h), r.hex()) for r, h in ((ref, holder), *extra)]
            for ref, holder, extra in zip(found.refs, found.holders, spares)]


def _copies(name: str) -> list[set[str]]:
    """Per chunk, the nodes of its copies."""
    return [{node for node, _ in chunk} for chunk in _record(name)]


def _wait_repaired(name: str, copies: int, *, gone: set[str] = frozenset(), lost: set[str] = frozenset()) -> float:
    """Seconds until every chunk has ``copies`` copies on distinct live nodes, none on a node in
    ``gone`` and none of the objects in ``lost``."""
    import ray

    t0 = time.perf_counter()
    while True:
        live = {n["NodeID"] for n in ray.nodes() if n.get("Alive")} - gone
        record = _record(name)
        if all(len({n for n, _ in chunk}) == len(chunk) == copies and {n for n, _ in chunk} <= live
               and not {h for _, h in chunk} & lost for chunk in record):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > REPAIR_WAIT_S:
            raise AssertionError(f"{name!r} not repaired within {REPAIR_WAIT_S} s: copies per chunk {record}, "
                                 f"live nodes {sorted(live)}")
        time.sleep(0.5)


@pytest.mark.slow
def test_replicas_lost_with_a_node_are_recreated_so_losing_a_second_node_keeps_the_data(ds, ray_cluster, monkeypatch):
    from datashare import chunk_homes
    from yuanrong.local_cluster import NodeSpec

    table = pa.table({"v": np.arange(1_000_000)})
    a = ray_cluster.add_node(NodeSpec(pool="ds-repair-a", tier="edge", num_cpus=1, object_store_mb=128))
    b = ray_cluster.add_node(NodeSpec(pool="ds-repair-b", tier="edge", num_cpus=1, object_store_mb=128))
    removed: list[str] = []
    try:
        # Both copies on the added nodes (left alone, the replica would go to another tier).
        monkeypatch.setattr(chunk_homes, "spare_nodes", lambda targets, replicas, lifetime, **_: [b])
        info = ds.publish("repair", table, nodes=[a], replicas=2, chunk_bytes=2 * 2**20)
        monkeypatch.undo()
        assert info.replicas == 2 and info.num_chunks == 4
        assert _copies("repair") == [{a, b}] * 4 and {a, b} <= set(ds.where("repair"))

        ray_cluster.remove_node("ds-repair-a")
        removed.append("ds-repair-a")
        first = _wait_repaired("repair", 2, gone={a})
        print(f"two copies again {first:.1f} s after node a left")
        homes = set().union(*_copies("repair"))
        assert b in homes and homes - {b} <= set(ds.where("repair"))      # where() reports the new copies

        ray_cluster.remove_node("ds-repair-b")                            # the last original copy goes too
        removed.append("ds-repair-b")
        assert ds.open("repair", timeout=60, fresh=True).equals(table)    # read from the re-created copies
        assert sum(batch.num_rows for batch in ds.stream("repair", timeout=60)) == table.num_rows
        second = _wait_repaired("repair", 2, gone={a, b})
        print(f"two copies again {second:.1f} s after node b left")
        assert ds.open("repair", timeout=60, fresh=True).equals(table)
    finally:
        for pool in ("ds-repair-a", "ds-repair-b"):
            if pool not in removed:
                ray_cluster.remove_node(pool)
        ds.delete("repair")


@pytest.mark.slow
def test_copies_of_a_holder_that_died_are_recreated_also_after_a_catalogue_restart(ds, ray_cluster):
    import ray

    from datashare._ray import naming
    from yuanrong.local_cluster import NodeSpec

    table = pa.table({"v": np.arange(500_000)})
    c = ray_cluster.add_node(NodeSpec(pool="ds-repair-c", tier="edge", num_cpus=1, object_store_mb=128))
    try:
        ds.publish("repair-holder", table, nodes=[c], replicas=2, chunk_bytes=2**20)
        catalogue = ray.get_actor(naming.CATALOGUE_NAME, namespace=naming.NAMESPACE)
        ray.kill(catalogue, no_restart=False)            # Ray restarts it; it rebuilds from the holders
        assert ds.info("repair-holder").replicas == 2     # the holders kept what it was published with
        on_c = {h for chunk in _record("repair-holder") for node, h in chunk if node == c}
        assert len(on_c) == ds.info("repair-holder").num_chunks > 1
        ray.kill(ray.get_actor(naming.holder_name(c), namespace=naming.NAMESPACE), no_restart=True)
        took = _wait_repaired("repair-holder", 2, lost=on_c)
        print(f"two copies again {took:.1f} s after the holder died")
        assert ds.open("repair-holder", timeout=60, fresh=True).equals(table)
    finally:
        ray_cluster.remove_node("ds-repair-c")
        ds.delete("repair-holder")


@pytest.mark.slow
def test_a_pool_that_lost_its_copy_gets_one_on_its_other_node(ds, ray_cluster):
    from tests.integration.datashare.conftest import node_of
    from yuanrong.local_cluster import NodeSpec

    head = node_of(ray_cluster, "cloud")
    table = pa.table({"v": np.arange(300_000)})
    # The pool's copy goes to its node with the largest store: the one added last, removed first.
    stay = ray_cluster.add_node(NodeSpec(pool="ds-repair-p", tier="edge", num_cpus=1, object_store_mb=128))
    leave = ray_cluster.add_node(NodeSpec(pool="ds-repair-p", tier="edge", num_cpus=1, object_store_mb=160))
    removed = False
    try:
        info = ds.publish("repair-pool", table, nodes=[head], replicas=["ds-repair-p"], chunk_bytes=2**20)
        assert info.replicas == ("ds-repair-p",)
        assert _copies("repair-pool") == [{head, leave}] * info.num_chunks
        assert ray_cluster.remove_node("ds-repair-p") == leave
        removed = True
        took = _wait_repaired("repair-pool", 2, gone={leave})
        print(f"a copy in the pool again {took:.1f} s after its node left")
        assert _copies("repair-pool") == [{head, stay}] * info.num_chunks     # in the pool, not elsewhere
        assert stay in ds.where("repair-pool")
        more = ds.append("repair-pool", table.slice(0, 10), nodes=[head])      # an append keeps the pools
        assert more.replicas == ("ds-repair-p",) and _copies("repair-pool") == [{head, stay}] * more.num_chunks
    finally:
        ray_cluster.remove_node("ds-repair-p")
        if not removed:
            ray_cluster.remove_node("ds-repair-p")
        ds.delete("repair-pool")


@pytest.mark.slow
def test_copies_a_live_holder_no_longer_owns_are_recreated(ds, ray_cluster):
    """As after a holder died and a new one started under its name between two rounds: the holder
    is alive by name but lacks the copies; the catalogue's periodic check of the holders finds it."""
    import ray

    from datashare._ray import naming
    from datashare.catalogue import dataset_key

    table = pa.table({"v": np.arange(300_000)})
    info = ds.publish("repair-audit", table, replicas=2, chunk_bytes=2**20)
    spare = {node for chunk in _record("repair-audit") for node, _ in chunk[1:]}
    assert len(spare) == 1
    (spare,) = spare
    dropped = {h for chunk in _record("repair-audit") for node, h in chunk if node == spare}
    holder = ray.get_actor(naming.holder_name(spare), namespace=naming.NAMESPACE)
    ray.get(holder.release.remote([dataset_key(info.name, info.version)]))
    took = _wait_repaired("repair-audit", 2, lost=dropped)
    print(f"two copies again {took:.1f} s after a holder let its copies go")
    assert ds.open("repair-audit", fresh=True).equals(table)
    ds.delete("repair-audit")


def test_an_append_keeps_the_replication_of_the_version_it_extends(ds, ray_cluster):
    table = pa.table({"v": np.arange(200_000)})
    info = ds.publish("repair-append", table, replicas=2, chunk_bytes=2**20)
    more = ds.append("repair-append", pa.table({"v": np.arange(10)}))
    assert more.replicas == 2 and more.num_chunks == info.num_chunks + 1
    assert all(len(nodes) == 2 for nodes in _copies("repair-append"))       # old chunks' copies kept, new one made
    ds.delete("repair-append", version=1)                                     # v1's copies are linked, not moved
    assert all(len(nodes) == 2 for nodes in _copies("repair-append"))
    assert ds.open("repair-append", fresh=True).num_rows == 200_010
    ds.delete("repair-append")


def test_a_single_copy_dataset_is_left_alone(ds, ray_cluster):
    """replicas=1 (the default) asks for no repair: the record keeps its one copy per chunk."""
    table = pa.table({"v": np.arange(1000)})
    info = ds.publish("repair-one", table)
    assert info.replicas == 1
    time.sleep(3)                                      # more than one round of the repair
    assert _copies("repair-one") == [{info.node_ids[0]}]
    ds.delete("repair-one")
