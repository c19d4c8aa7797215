"""Per-pool edge caches on the shared cluster (cloud head, edge-1, edge-2): a reader at the edge of a
dataset held in the cloud pulls it once into its pool's cache, later readers there map that copy."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pyarrow as pa
import pytest

from tests.integration.datashare.conftest import node_of

pytestmark = pytest.mark.cluster

_MB = 2**20


@contextlib.contextmanager
def _admin():
    from datashare import tenancy

    with tenancy.acting_as(tenancy.Tenant(tenancy.DEFAULT_TENANT, admin=True)):
        yield


def _read_on(node: str, name: str, **kwargs) -> dict:
    """Open ``name`` in a new worker process on ``node``: rows, seconds and where it ran."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0, max_calls=1)      # a fresh process each time: no read cache of its own
    def read(name: str, kwargs: dict) -> dict:
        import datashare

        t0 = time.perf_counter()
        table = datashare.open(name, timeout=60, **kwargs)
        return {"rows": table.num_rows, "seconds": time.perf_counter() - t0, "node": datashare.current_node_id()}

    out = ray.get(read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                  .remote(name, kwargs), timeout=120)
    assert out["node"] == node
    return out


def _table(rows: int = 1_000_000) -> pa.Table:      # 8 MB
    return pa.table({"v": np.arange(rows, dtype=np.int64)})


def _stats(ds, pool: str) -> dict:
    return ds.pool_caches().get(pool, {"entries": [], "fills": 0, "hits": 0, "evictions": 0, "invalidated": 0})


def test_miss_fills_the_pool_cache_then_hits_and_a_new_version_invalidates(ds, ray_cluster):
    head, edge = node_of(ray_cluster, "cloud"), node_of(ray_cluster, "edge-1")
    table = _table()
    with _admin():
        ds.set_pool_cache("edge-1", 64 * _MB)
    try:
        ds.publish("pc-a", table, nodes=[head])
        before = _stats(ds, "edge-1")
        first = _read_on(edge, "pc-a")                                  # miss: pulled once into edge-1
        assert first["rows"] == table.num_rows
        after = _stats(ds, "edge-1")
        assert after["fills"] == before["fills"] + 1
        assert ("pc-a", 1, table.nbytes, (f"holder-{edge}",)) in after["entries"]
        assert {head, edge} <= set(ds.where("pc-a"))                    # every copy is reported
        second = _read_on(edge, "pc-a")                                 # hit: maps edge-1's copy
        hit = _stats(ds, "edge-1")
        assert (hit["fills"], hit["hits"]) == (after["fills"], after["hits"] + 1)
        print(f"edge reader: first {first['seconds'] * 1e3:.1f} ms, second {second['seconds'] * 1e3:.1f} ms")
        _read_on(head, "pc-a")                                          # cloud has a copy: no cache fill
        assert "cloud" not in ds.pool_caches() or not _stats(ds, "cloud")["entries"]

        ds.publish("pc-a", pa.table({"v": np.arange(10, dtype=np.int64)}), nodes=[head])   # version 2
        stale = _stats(ds, "edge-1")
        assert not [e for e in stale["entries"] if e[0] == "pc-a"]
        assert stale["invalidated"] == hit["invalidated"] + 1
        assert _read_on(edge, "pc-a")["rows"] == 10
        assert ("pc-a", 2) in [e[:2] for e in _stats(ds, "edge-1")["entries"]]
        assert _read_on(edge, "pc-a", version=1)["rows"] == table.num_rows   # kept versions stay readable
    finally:
        with _admin():
            ds.set_pool_cache("edge-1", None)
        ds.delete("pc-a")
    assert _stats(ds, "edge-1")["entries"] == []


def test_least_recently_read_copy_is_evicted(ds, ray_cluster):
    head, edge = node_of(ray_cluster, "cloud"), node_of(ray_cluster, "edge-2")
    table = _table()
    with _admin():
        ds.set_pool_cache("edge-2", int(2.5 * table.nbytes))           # room for two copies
    try:
        for name in ("pc-x", "pc-y", "pc-z"):
            ds.publish(name, table, nodes=[head])
        before = _stats(ds, "edge-2")
        _read_on(edge, "pc-x")
        _read_on(edge, "pc-y")
        _read_on(edge, "pc-x")                                          # x is now the most recently read
        _read_on(edge, "pc-z")                                          # evicts y
        stats = _stats(ds, "edge-2")
        assert [e[0] for e in stats["entries"]] == ["pc-x", "pc-z"]
        assert stats["evictions"] == before["evictions"] + 1 and stats["used"] <= stats["capacity"]
        assert _read_on(edge, "pc-y")["rows"] == table.num_rows          # a miss again, evicting x
        assert [e[0] for e in _stats(ds, "edge-2")["entries"]] == ["pc-z", "pc-y"]
        with pytest.raises(ds.InvalidArgumentError, match="capacity_bytes"):
            with _admin():
                ds.set_pool_cache("edge-2", -1)
        with pytest.raises(ds.PermissionDeniedError):
            ds.set_pool_cache("edge-2", 1)
    finally:
        with _admin():
            ds.set_pool_cache("edge-2", None)
        for name in ("pc-x", "pc-y", "pc-z"):
            ds.delete(name)


@pytest.mark.slow
def test_losing_the_cache_node_reads_from_the_origin_and_fills_again(ds, ray_cluster):
    from yuanrong.local_cluster import NodeSpec

    head = node_of(ray_cluster, "cloud")
    table = _table()
    stay = ray_cluster.add_node(NodeSpec(pool="ds-pc", tier="edge", num_cpus=1, object_store_mb=128))
    gone = ray_cluster.add_node(NodeSpec(pool="ds-pc", tier="edge", num_cpus=1, object_store_mb=128))
    with _admin():
        ds.set_pool_cache("ds-pc", 64 * _MB)
    try:
        ds.publish("pc-lost", table, nodes=[head])
        _read_on(gone, "pc-lost")
        assert [e[3] for e in _stats(ds, "ds-pc")["entries"]] == [(f"holder-{gone}",)]
        ray_cluster.remove_node("ds-pc")                               # the most recent: the cache's node
        # The pool's copy is gone: the reader drops it and fills the cache again from the origin.
        assert _read_on(stay, "pc-lost")["rows"] == table.num_rows
        stats = _stats(ds, "ds-pc")
        assert stats["lost"] == 1 and [e[3] for e in stats["entries"]] == [(f"holder-{stay}",)]
        with _admin():
            ds.set_pool_cache("ds-pc", None)                           # no cache: read across pools
        assert _read_on(stay, "pc-lost")["rows"] == table.num_rows
    finally:
        with _admin():
            ds.set_pool_cache("ds-pc", None)
        while ray_cluster.node_ids("ds-pc"):
            ray_cluster.remove_node("ds-pc")
        ds.delete("pc-lost")


@pytest.mark.subprocess
def test_an_admins_yr_init_applies_the_pools_files_cache_sizes(ds, ray_cluster, tmp_path):
    import os
    import subprocess
    import sys

    import yuanrong as yr

    pools = tmp_path / "pools.yaml"
    pools.write_text("version: 1\npools:\n  ds-pc-init: {tier: edge, datashare_cache_mb: 3}\n")
    code = (f"import yuanrong as yr, datashare\n"
            f"yr.init(yr.Config(server_address={ray_cluster.address!r}, pools_file={str(pools)!r}, "
            f"auth_token={yr.auth.token('ops', admin=True)!r}))\n"
            "print(datashare.pool_caches()['ds-pc-init']['capacity'])\n"
            "yr.finalize()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "YR_ADDRESS")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == str(3 * _MB)
    with _admin():
        ds.set_pool_cache("ds-pc-init", None)


def test_replicas_pools_keeps_a_copy_in_every_pool_and_readers_there_need_no_cache(ds, ray_cluster):
    import ray

    from datashare.pool_cache import pool_of

    head, edge1, edge2 = (node_of(ray_cluster, p) for p in ("cloud", "edge-1", "edge-2"))
    live = {n["NodeID"]: pool_of(n["Labels"]) for n in ray.nodes() if n["Alive"]}
    table = _table(100_000)
    with _admin():
        ds.set_pool_cache("edge-1", 64 * _MB)
    try:
        info = ds.publish("pc-everywhere", table, nodes=[head], replicas="pools")
        assert info.node_ids[0] == head and len(info.node_ids) == len(set(live.values()))
        assert {live[n] for n in info.node_ids} == set(live.values())       # one copy per pool
        assert {head, edge1, edge2} <= set(ds.where("pc-everywhere"))
        fills = _stats(ds, "edge-1")["fills"]
        assert _read_on(edge1, "pc-everywhere")["rows"] == table.num_rows
        assert _stats(ds, "edge-1")["fills"] == fills                       # its pool had a copy already

        info = ds.publish("pc-named", table, nodes=[head], replicas=["edge-2", "cloud"])
        assert info.node_ids == (head, edge2)                               # cloud holds the primary
        for bad in ("everywhere", ["nowhere"], [], 0, True):
            with pytest.raises(ds.InvalidArgumentError, match="replicas"):
                ds.publish("pc-named", table, replicas=bad)
    finally:
        with _admin():
            ds.set_pool_cache("edge-1", None)
        ds.delete("pc-everywhere")
        ds.delete("pc-named")


@pytest.mark.slow
def test_replicas_pools_survive_losing_the_publishing_pool(ds, ray_cluster):
    from yuanrong.local_cluster import NodeSpec

    edge1 = node_of(ray_cluster, "edge-1")
    table = _table(200_000)
    node = ray_cluster.add_node(NodeSpec(pool="ds-rp", tier="edge", num_cpus=1, object_store_mb=128))
    try:
        info = ds.publish("pc-survive", table, nodes=[node], replicas="pools")
        assert info.node_ids[0] == node and edge1 in info.node_ids
    finally:
        ray_cluster.remove_node("ds-rp")
    assert _read_on(edge1, "pc-survive")["rows"] == table.num_rows          # edge-1's own copy
    assert ds.open("pc-survive", timeout=60, fresh=True).equals(table)      # the cloud's copy
    ds.delete("pc-survive")
