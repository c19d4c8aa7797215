"""Named datasets to Ray Data without copies, and Ray Data results published by name."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

pytestmark = pytest.mark.cluster


def test_named_dataset_to_ray_data_uses_the_chunks(ds):
    t = pa.table({"x": np.arange(400_000, dtype=np.int64)})
    ds.publish("rd-in", t, chunk_bytes=1 * 2**20)
    _, chunk_refs = ds.refs("rd-in")
    rds = ds.to_ray_dataset("rd-in")
    assert rds.count() == 400_000
    # The blocks are the published chunk objects themselves: nothing was copied.
    assert {r.hex() for r in rds.to_arrow_refs()} == {r.hex() for r in chunk_refs}
    assert rds.sum("x") == int(np.arange(400_000).sum())
    ds.delete("rd-in")


def test_ray_data_result_published_by_name(ds, run_driver):
    run_driver("""
        import ray.data
        out = ray.data.range(10_000, override_num_blocks=4).map_batches(
            lambda b: {"id": b["id"], "sq": b["id"] ** 2}, batch_format="numpy")
        info = datashare.publish_ray_dataset("rd-out", out)
        print(info.num_rows, info.num_chunks)
    """)
    t = ds.open("rd-out")                      # the producing job is gone
    assert t.num_rows == 10_000
    assert sorted(t["sq"].to_pylist()) == sorted(i * i for i in range(10_000))
    ds.delete("rd-out")
