"""Named datasets: publish, open, list, versions, delete, append, locality, two drivers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tests.integration.datashare.conftest import node_of

pytestmark = pytest.mark.cluster


def _table(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": np.arange(start, start + n, dtype=np.int64), "name": [f"r{i}" for i in range(n)]})


def test_publish_open_list_delete(ds):
    t = _table(1000)
    info = ds.publish("cat-basic", t)
    assert (info.name, info.version, info.num_rows) == ("cat-basic", 1, 1000)
    assert info.schema.equals(t.schema) and info.nbytes == t.nbytes and info.num_chunks == 1
    assert ds.open("cat-basic").equals(t)
    assert "cat-basic" in [i.name for i in ds.list()]
    assert ds.delete("cat-basic") is True
    assert ds.delete("cat-basic") is False
    with pytest.raises(ds.DatasetNotFoundError) as err:
        ds.open("cat-basic")
    assert err.value.name == "cat-basic" and "publish it first" in str(err.value)


def test_versions_and_old_readers(ds):
    v1 = _table(10)
    ds.publish("cat-ver", v1)
    held = ds.open("cat-ver")                      # a reader of version 1
    ds.publish("cat-ver", _table(20, start=100))   # version 2; version 1 kept (keep_previous=1)
    assert ds.info("cat-ver").version == 2
    assert ds.versions("cat-ver") == [1, 2]
    assert ds.open("cat-ver", version=1).equals(v1)
    ds.publish("cat-ver", _table(30, start=200))   # version 3; version 1 dropped
    assert ds.versions("cat-ver") == [2, 3]
    with pytest.raises(ds.DatasetNotFoundError) as err:
        ds.open("cat-ver", version=1)
    assert err.value.versions == (2, 3)
    assert held.equals(v1), "a reader of a dropped version saw its data change"
    assert ds.open("cat-ver").num_rows == 30
    ds.delete("cat-ver")


def test_append_and_schema_mismatch(ds):
    ds.publish("cat-app", _table(5))
    info = ds.append("cat-app", _table(7, start=5))
    assert (info.version, info.num_rows, info.num_chunks) == (2, 12, 2)
    assert ds.open("cat-app")["id"].to_pylist() == list(range(12))
    with pytest.raises(ds.SchemaMismatchError) as err:
        ds.append("cat-app", pa.table({"id": pa.array([1.5])}))
    assert err.value.name == "cat-app" and "id: int64" in str(err.value)
    assert ds.info("cat-app").version == 2, "a failed append must not create a version"
    ds.delete("cat-app")


def test_data_outlives_the_publishing_driver(ds, run_driver):
    run_driver("""
        import pyarrow as pa
        info = datashare.publish("cat-cross", pa.table({"k": list(range(50_000))}))
        print(info.version)
    """)
    # The publishing process has exited; its data is still readable here.
    t = ds.open("cat-cross")
    assert t["k"].to_pylist() == list(range(50_000))
    out = run_driver("""
        print(datashare.open("cat-cross").num_rows)
        datashare.delete("cat-cross")
    """)
    assert out.strip() == "50000"
    assert "cat-cross" not in [i.name for i in ds.list()]


def test_where_reports_the_holding_nodes(ds, ray_cluster):
    edge = node_of(ray_cluster, "edge-1")
    ref_local = ds.put(pa.table({"a": np.zeros(100_000)}))
    assert ds.where(ref_local) == (ds.current_node_id(),)
    info = ds.publish("cat-where", _table(200_000), nodes=[edge])
    assert info.node_ids == (edge,)
    assert ds.where("cat-where") == (edge,)
    assert ds.locality("cat-where")[edge] >= info.nbytes
    ds.delete("cat-where")


def test_where_locality_and_get_take_a_yuanrong_object_ref(ds, yr_session):
    yr = yr_session
    here = ds.current_node_id()
    t = pa.table({"a": np.zeros(100_000)})
    ref = yr.put(t)
    assert ds.where(ref) == (here,)
    assert ds.locality(ref)[here] >= t.nbytes
    assert ds.get(ref).equals(t)
    assert [v.num_rows for v in ds.get([ref, ds.put(t)])] == [100_000, 100_000]

    class NotARef:
        ray_ref = "not a Ray ObjectRef"

    with pytest.raises(ds.InvalidArgumentError, match="pass a dataset name or an ObjectRef"):
        ds.where(NotARef())


def test_spread_over_nodes_and_stream(ds, ray_cluster):
    nodes = [node_of(ray_cluster, p) for p in ("cloud", "edge-1", "edge-2")]
    t = pa.table({"v": np.arange(3_000_000, dtype=np.int64)})   # 24 MB
    info = ds.publish("cat-spread", t, nodes=nodes, chunk_bytes=2 * 2**20)
    assert info.num_chunks == 12 and set(info.node_ids) == set(nodes)
    assert set(ds.where("cat-spread")) >= set(nodes)
    total = 0
    seen = 0
    for batch in ds.stream("cat-spread"):
        assert isinstance(batch, pa.RecordBatch)
        total += int(np.asarray(batch.column(0)).sum())
        seen += batch.num_rows
    assert seen == t.num_rows and total == int(np.arange(3_000_000).sum())
    assert ds.open("cat-spread").equals(t)
    ds.delete("cat-spread")


def test_invalid_arguments(ds):
    with pytest.raises(ds.InvalidArgumentError):
        ds.publish("", _table(1))
    with pytest.raises(ds.InvalidArgumentError) as err:
        ds.publish("x", {"a": [1]})
    assert "pa.Table.from_pandas" in str(err.value)
    with pytest.raises(ds.InvalidArgumentError) as err:
        ds.publish("x", _table(1), nodes=["nope"])
    assert "not alive" in str(err.value)
    with pytest.raises(ds.InvalidArgumentError):
        ds.put({"not": "arrow"})
    with pytest.raises(ds.InvalidArgumentError):
        ds.open("x", version=0)


def test_repeat_open_is_served_from_cache_until_another_process_publishes(ds, run_driver):
    import time

    ds.publish("cat-cache", _table(10))
    first = ds.open("cat-cache")
    assert ds.open("cat-cache") is first             # no round trip, same zero-copy table
    run_driver("""
        import pyarrow as pa
        datashare.publish("cat-cache", pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}))
    """)
    deadline = time.monotonic() + 10
    while ds.open("cat-cache").num_rows != 3:        # the change notification empties the cache
        assert time.monotonic() < deadline, "a publish by another process was never seen"
        time.sleep(0.01)
    assert ds.open("cat-cache", fresh=True).num_rows == 3
    assert first.num_rows == 10                      # the old reader is unaffected
    ds.delete("cat-cache")
    with pytest.raises(ds.DatasetNotFoundError):
        ds.open("cat-cache")


def test_catalogue_restart_rebuilds_from_the_holders(ds, ray_cluster):
    import ray

    from datashare._ray import naming

    t = _table(5000)
    ds.publish("cat-restart", t, nodes=[node_of(ray_cluster, "edge-2")])
    ds.append("cat-restart", _table(10, start=5000))
    catalogue = ray.get_actor(naming.CATALOGUE_NAME, namespace=naming.NAMESPACE)
    ray.kill(catalogue, no_restart=False)            # crash it; Ray restarts it
    assert ds.versions("cat-restart") == [1, 2]
    assert ds.open("cat-restart", fresh=True).num_rows == 5010
    assert ds.info("cat-restart").version == 2
    assert ds.publish("cat-restart", t).version == 3   # numbering continues after the rebuild
    ds.delete("cat-restart")


def test_job_lifetime_data_is_whole_or_lost_after_its_publisher_exits(ds, run_driver):
    info = ds.publish("cat-job-here", _table(100), lifetime="job")
    assert ds.open("cat-job-here").num_rows == 100 and info.node_ids == (ds.current_node_id(),)
    ds.delete("cat-job-here")
    run_driver("""
        import pyarrow as pa
        datashare.publish("cat-job", pa.table({"k": list(range(300_000))}), lifetime="job")
    """)
    # Ray frees a dead owner's objects asynchronously, and on this machine sometimes not within
    # 30 s, so when the loss shows is not something to assert. What holds: a read after the
    # publisher exited fails with ObjectLostError naming lifetime='job', or returns the whole table.
    try:
        table = ds.open("cat-job", timeout=60, fresh=True)
    except ds.ObjectLostError as err:
        assert "lifetime='job'" in str(err)
    else:
        assert table.num_rows == 300_000 and table.column("k")[-1].as_py() == 299_999
    ds.delete("cat-job")
    with pytest.raises(ds.InvalidArgumentError):
        ds.publish("cat-job", _table(1), lifetime="forever")


def test_a_new_version_with_another_schema_is_refused_unless_allowed(ds):
    ds.publish("cat-schema", _table(3))
    other = pa.table({"id": ["a", "b"]})
    with pytest.raises(ds.SchemaMismatchError, match="allow_schema_change=True") as err:
        ds.publish("cat-schema", other)
    assert err.value.expected.equals(_table(1).schema) and err.value.actual.equals(other.schema)
    assert ds.versions("cat-schema") == [1] and ds.open("cat-schema", fresh=True).equals(_table(3))
    info = ds.publish("cat-schema", other, allow_schema_change=True)
    assert ds.open("cat-schema", fresh=True).equals(other) and info.schema.equals(other.schema)
    ds.delete("cat-schema")


@pytest.mark.parametrize("call, argument", [
    (lambda ds: ds.delete("cat-args", version="x"), "version"),
    (lambda ds: ds.delete("cat-args", version=0), "version"),
    (lambda ds: ds.open("cat-args", timeout=-3), "timeout"),
    (lambda ds: ds.open("cat-args", timeout=float("nan")), "timeout"),
    (lambda ds: ds.publish("cat-args", _table(1), timeout="5"), "timeout"),
    (lambda ds: ds.publish("cat-args", _table(1), timeout=float("inf")), "timeout"),
    (lambda ds: ds.publish("cat-args", _table(1), allow_schema_change="yes"), "allow_schema_change"),
    (lambda ds: ds.versions("cat-args", timeout=0), "timeout"),
    (lambda ds: ds.get(ds.put(_table(1)), timeout=-1), "timeout"),
])
def test_bad_arguments_name_the_argument(ds, call, argument):
    with pytest.raises(ds.InvalidArgumentError) as err:
        call(ds)
    assert err.value.argument == argument and f"{argument}=" in str(err.value)
    assert "cat-args" not in [i.name for i in ds.list()]


def test_default_chunks_fit_a_small_edge_store(ds, ray_cluster):
    edge = node_of(ray_cluster, "edge-1")                # a 256 MiB store: chunks of at most 64 MiB
    t = pa.table({"v": np.arange(12_500_000, dtype=np.int64)})   # 100 MB
    info = ds.publish("cat-edge-chunks", t, nodes=[edge])
    assert info.num_chunks == 2 and info.node_ids == (edge,)
    here = ds.publish("cat-head-chunks", t)              # the head's store is large: one chunk
    assert here.num_chunks == 1
    assert ds.open("cat-edge-chunks").equals(t)
    ds.delete("cat-edge-chunks")
    ds.delete("cat-head-chunks")
