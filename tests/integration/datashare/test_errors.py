"""Failure cases end in a clear error, never a hang or partial data: spill, lost node, full store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.integration.datashare.conftest import node_of

pytestmark = pytest.mark.cluster


@pytest.mark.slow
def test_data_larger_than_a_node_store_spills_and_reads_back(ds, ray_cluster):
    """384 MiB published to an edge node whose store holds 256 MiB."""
    import ray

    edge = node_of(ray_cluster, "edge-1")
    rows = 48 * 2**20                                   # 48 Mi int64 = 384 MiB
    table = pa.table({"v": np.arange(rows, dtype=np.int64)})
    expected = pc.sum(table["v"]).as_py()
    info = ds.publish("err-spill", table, nodes=[edge], chunk_bytes=32 * 2**20)
    del table
    assert info.nbytes > 256 * 2**20 and info.num_chunks == 12
    _, chunk_refs = ds.refs("err-spill")
    locations = ray.experimental.get_object_locations(chunk_refs)
    assert any(loc.get("did_spill") for loc in locations.values()), "nothing was spilled"
    total = rows_seen = 0
    for batch in ds.stream("err-spill"):               # chunk by chunk: restored from disk
        total += pc.sum(batch.column(0)).as_py()
        rows_seen += batch.num_rows
    assert (rows_seen, total) == (rows, expected)
    ds.delete("err-spill")


@pytest.mark.slow
def test_objects_lost_with_their_node_raise_object_lost(ds, ray_cluster):
    from yuanrong.local_cluster import NodeSpec

    node = ray_cluster.add_node(NodeSpec(pool="ds-temp", tier="edge", num_cpus=1, object_store_mb=128))
    try:
        ds.publish("err-lost", pa.table({"v": np.arange(1_000_000)}), nodes=[node],
                   chunk_bytes=2 * 2**20)
    finally:
        ray_cluster.remove_node("ds-temp")
    with pytest.raises(ds.ObjectLostError) as err:
        ds.open("err-lost", timeout=60)
    assert err.value.name == "err-lost" and err.value.node_ids == (node,)
    assert err.value.lost_chunks and "Publish the data again" in str(err.value)
    with pytest.raises(ds.ObjectLostError):
        list(ds.stream("err-lost", timeout=60))
    ds.delete("err-lost")


def test_unknown_name_lists_known_ones(ds):
    ds.publish("err-known", pa.table({"a": [1]}))
    with pytest.raises(ds.DatasetNotFoundError) as err:
        ds.open("err-knwon")
    assert isinstance(err.value, KeyError) and "err-known" in err.value.known
    assert "err-known" in str(err.value)
    ds.delete("err-known")


def _run_alone(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=240, env=env)


@pytest.mark.subprocess
def test_without_a_connection_the_error_says_to_init():
    proc = _run_alone("""
        import pyarrow as pa, datashare
        try:
            datashare.publish("x", pa.table({"a": [1]}))
        except datashare.NotConnectedError as exc:
            print("OK", exc)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("OK") and "yr.init()" in proc.stdout


@pytest.mark.subprocess
@pytest.mark.slow
def test_full_store_raises_store_full(ray_cluster):
    """A one-node cluster whose store is 80 MiB and whose spill disk counts as full."""
    proc = _run_alone("""
        import numpy as np, pyarrow as pa, ray, datashare
        from yuanrong.local_cluster import LocalCluster, NodeSpec
        spec = NodeSpec(pool="tiny", tier="edge", num_cpus=1, object_store_mb=80)
        with LocalCluster([spec], system_config={"local_fs_capacity_threshold": 0.0}) as c:
            ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
            try:
                datashare.publish("big", pa.table({"v": np.ones(12 * 2**20)}), chunk_bytes=32 * 2**20)
                print("NO ERROR")
            except datashare.StoreFullError as exc:
                print("OK", exc.nbytes, exc)
            finally:
                datashare.shutdown_actors()
    """)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.startswith("OK"), proc.stdout
    assert "object store is full" in proc.stdout


@pytest.mark.slow
def test_a_replica_survives_its_holder_node_and_losing_every_copy_is_clear(ds, ray_cluster):
    import time

    from yuanrong.local_cluster import NodeSpec

    head = node_of(ray_cluster, "cloud")
    table = pa.table({"v": np.arange(1_000_000)})
    a = ray_cluster.add_node(NodeSpec(pool="ds-rep-a", tier="edge", num_cpus=1, object_store_mb=128))
    b = ray_cluster.add_node(NodeSpec(pool="ds-rep-b", tier="edge", num_cpus=1, object_store_mb=128))
    try:
        info = ds.publish("err-rep", table, nodes=[a], replicas=2, chunk_bytes=2 * 2**20)
        assert info.node_ids == (a, head)           # the copy went to another pool and tier
        assert {a, head} <= set(ds.where("err-rep"))
        # Its only copy on b. (Copies of a replicated dataset on a and b would not all be lost: the
        # catalogue re-creates the copy lost with a from the one on b before b goes.)
        ds.publish("err-rep-gone", table, nodes=[b], chunk_bytes=2 * 2**20)
    finally:
        ray_cluster.remove_node("ds-rep-a")
        ray_cluster.remove_node("ds-rep-b")
    t0 = time.perf_counter()
    assert ds.open("err-rep", timeout=60, fresh=True).equals(table)
    print(f"read after losing the first holder's node: {time.perf_counter() - t0:.3f} s")
    assert sum(batch.num_rows for batch in ds.stream("err-rep", timeout=60)) == table.num_rows
    with pytest.raises(ds.ObjectLostError) as err:
        ds.open("err-rep-gone", timeout=60, fresh=True)
    assert err.value.name == "err-rep-gone"
    ds.delete("err-rep")
    ds.delete("err-rep-gone")
    with pytest.raises(ds.InvalidArgumentError, match="replicas"):
        ds.publish("err-rep", table, replicas=2, lifetime="job")
