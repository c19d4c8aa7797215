"""A pool cache's LRU order on the shared cluster counts the opens a process's own read cache
serves: a dataset read over and over by one long-lived process is not evicted before one read once."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pyarrow as pa
import pytest

from tests.integration.datashare.conftest import node_of

pytestmark = pytest.mark.cluster

_POOL = "edge-2"


@contextlib.contextmanager
def _admin():
    from datashare import tenancy

    with tenancy.acting_as(tenancy.Tenant(tenancy.DEFAULT_TENANT, admin=True)):
        yield


def _entries(ds) -> list[str]:
    return [e[0] for e in ds.pool_caches().get(_POOL, {"entries": []})["entries"]]


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.2)


def _reader(node: str):
    """A long-lived worker process on ``node`` (keeps its read cache between calls)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class Reader:
        def __init__(self) -> None:
            self.tables: dict[str, object] = {}

        def open(self, name: str, times: int = 1) -> dict:
            """Open ``name`` ``times`` times: how many returned the table this process already held."""
            import datashare

            same = 0
            for _ in range(times):
                table = datashare.open(name, timeout=60)
                same += table is self.tables.get(name)
                self.tables[name] = table
            return {"rows": table.num_rows, "cached": same, "node": datashare.current_node_id()}

        def holds(self, name: str) -> bool:
            """Whether this process's read cache still keeps ``name``'s latest version (no open)."""
            from datashare import datasets

            return datasets._read_cache.get(datasets.check_name(name), None) is not None

    return Reader.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()


def test_a_dataset_read_from_a_processs_own_cache_stays_cached(ds, ray_cluster):
    import ray

    head, edge = node_of(ray_cluster, "cloud"), node_of(ray_cluster, _POOL)
    table = pa.table({"v": np.arange(500_000, dtype=np.int64)})        # 4 MB
    names = ("rc-hot", "rc-cold", "rc-third")
    with _admin():
        ds.set_pool_cache(_POOL, int(2.5 * table.nbytes))              # room for two copies
    hot_reader, cold_reader, other = _reader(edge), _reader(edge), _reader(edge)
    try:
        for name in names:
            ds.publish(name, table, nodes=[head])
        assert ray.get(cold_reader.open.remote("rc-cold"))["node"] == edge   # fills: [cold]
        ray.get(hot_reader.open.remote("rc-hot"))                              # fills: [cold, hot]
        ray.get(other.open.remote("rc-cold"))                                  # one read: [hot, cold]
        assert _entries(ds) == ["rc-hot", "rc-cold"]
        hits = ds.pool_caches()[_POOL]["hits"]

        # The feature service's pattern: the same process opens the same dataset on every request.
        # None of these opens reaches the catalogue; the process reports them within seconds.
        assert ray.get(hot_reader.open.remote("rc-hot", 200))["cached"] == 200
        _wait_for(lambda: _entries(ds) == ["rc-cold", "rc-hot"], 20, "the hot reader's opens counted")
        assert ds.pool_caches()[_POOL]["hits"] >= hits + 200

        assert ray.get(other.open.remote("rc-third"))["rows"] == table.num_rows   # fills, evicting cold
        assert _entries(ds) == ["rc-hot", "rc-third"]

        # Evicting cold changed no dataset: the processes that cached cold drop it (its copy is let go
        # of instead of staying pinned by their caches), the hot reader keeps its table.
        for reader in (cold_reader, other):
            _wait_for(lambda r=reader: not ray.get(r.holds.remote("rc-cold")), 10, "cold dropped by its readers")
        assert ray.get(other.holds.remote("rc-third"))
        assert ray.get(hot_reader.open.remote("rc-hot"))["cached"] == 1
        assert _entries(ds) == ["rc-third", "rc-hot"] or _entries(ds) == ["rc-hot", "rc-third"]
    finally:
        for actor in (hot_reader, cold_reader, other):
            ray.kill(actor)
        with _admin():
            ds.set_pool_cache(_POOL, None)
        for name in names:
            ds.delete(name)
