"""Replicated datasets repair themselves: copies lost with a node are re-created on live nodes."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest

pytestmark = pytest.mark.cluster

REPAIR_WAIT_S = 60.0


def _copies(name: str) -> list[set[str]]:
    """Per chunk, the nodes of the copies the catalogue hands out."""
    from datashare._ray import handles
    from datashare._ray.naming import node_of

    found = handles.ask_catalogue("lookup", name, None, timeout=30)
    spares = found.spares or ((),) * len(found.refs)
    return [{node_of(h) for h in (primary, *(h for _, h in extra))} for primary, extra in zip(found.holders, spares)]


def _wait_repaired(name: str, copies: int, gone: set[str]) -> float:
    """Seconds until every chunk has ``copies`` copies on distinct live nodes, none in ``gone``."""
    import ray

    t0 = time.perf_counter()
    while True:
        live = {n["NodeID"] for n in ray.nodes() if n.get("Alive")} - gone
        per_chunk = _copies(name)
        if all(len(nodes) == copies and nodes <= live for nodes in per_chunk):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > REPAIR_WAIT_S:
            raise AssertionError(f"{name!r} not repaired within {REPAIR_WAIT_S} s: copies per chunk {per_chunk}, "
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
        monkeypatch.setattr(chunk_homes, "spare_nodes", lambda targets, replicas, lifetime: [b])
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


def test_a_single_copy_dataset_is_left_alone(ds, ray_cluster):
    """replicas=1 (the default) asks for no repair: the record keeps its one copy per chunk."""
    table = pa.table({"v": np.arange(1000)})
    info = ds.publish("repair-one", table)
    assert info.replicas == 1
    time.sleep(3)                                      # more than one round of the repair
    assert _copies("repair-one") == [{info.node_ids[0]}]
    ds.delete("repair-one")
