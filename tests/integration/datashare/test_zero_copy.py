"""Same-node reads return buffers inside the shared-memory object store: no copy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from datashare.zero_copy import buffer_addresses, store_mappings

pytestmark = pytest.mark.cluster


def _in_store(address: int) -> bool:
    return any(lo <= address < hi for lo, hi in store_mappings())


@pytest.mark.parametrize("kind", ["table", "batch", "chunked", "numpy"])
def test_same_node_get_points_into_the_store(ds, kind):
    n = 2_000_000
    values = np.arange(n, dtype=np.int64)
    value = {
        "table": pa.table({"a": values, "b": values.astype(np.float64)}),
        "batch": pa.RecordBatch.from_arrays([pa.array(values)], names=["a"]),
        "chunked": pa.chunked_array([pa.array(values[: n // 2]), pa.array(values[n // 2:])]),
        "numpy": values,
    }[kind]
    got = ds.get(ds.put(value))
    addresses = buffer_addresses(got)
    assert addresses and all(_in_store(a) for a in addresses), "a buffer was copied out of the store"
    if kind == "numpy":
        assert np.array_equal(got, values)
    else:
        assert got.equals(value)


def test_open_of_a_published_dataset_points_into_the_store(ds):
    table = pa.table({"x": np.arange(3_000_000, dtype=np.int64)})
    ds.publish("zc-open", table, chunk_bytes=8 * 2**20)
    opened = ds.open("zc-open")
    assert opened.equals(table)
    assert all(_in_store(a) for a in buffer_addresses(opened))
    ds.delete("zc-open")


def test_a_second_process_reads_without_a_private_copy(ds, run_driver):
    """256 MB read and summed in another process: its private memory barely grows."""
    rows = 32 * 2**20  # 32 Mi int64 = 256 MiB
    table = pa.table({"v": np.ones(rows, dtype=np.int64)})
    ds.publish("zc-rss", table)
    del table
    out = run_driver("""
        import pyarrow.compute as pc

        def private_kb():
            fields = {}
            with open("/proc/self/smaps_rollup") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[1].isdigit():
                        fields[parts[0].rstrip(":")] = int(parts[1])
            return fields["Private_Clean"] + fields["Private_Dirty"], fields["Rss"]

        datashare.open("zc-open-missing-is-fine") if False else None
        before, rss0 = private_kb()
        t = datashare.open("zc-rss")
        total = pc.sum(t["v"]).as_py()      # touches every page of the column
        after, rss1 = private_kb()
        print(total, after - before, rss1 - rss0)
    """)
    total, private_growth_kb, rss_growth_kb = map(int, out.split())
    assert total == rows
    assert rss_growth_kb > 200 * 1024, "the reader did not touch the data"
    assert private_growth_kb < 32 * 1024, f"reader copied data: private memory grew {private_growth_kb} KiB"
    ds.delete("zc-rss")
