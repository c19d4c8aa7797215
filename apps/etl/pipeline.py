"""Click events in Parquet -> per-user features, computed by Ray Data in the cloud pool.

The events are generated (seeded, so any run can be checked against a direct computation):
``user_id``, ``category`` (0..9), ``amount`` and ``ts``. The pipeline is a Ray Data dataset
with one block per Parquet file; ``map_batches`` tasks pinned to the pool by a label selector
read each file and aggregate it to partial sums in Arrow, then the driver combines the partials into one row per
user, and publishes the result as the named dataset :data:`DATASET` for other services to open
zero-copy.

Run alone: ``python -m apps.etl --rows 2000000`` (starts its own local multi-pool cluster).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DATASET = "user-features"
"""Name of the published dataset: one row per user, sorted by ``user_id``."""

FEATURE_SCHEMA = pa.schema([
    ("user_id", pa.int64()), ("events", pa.int64()), ("total", pa.float64()),
    ("mean", pa.float64()), ("max", pa.float64()), ("top_category", pa.int64()),
])


@dataclasses.dataclass(frozen=True)
class EtlResult:
    """What one run did.

    Attributes:
        rows_in: Events read.
        users: Rows published.
        seconds: Wall time of the pipeline (reading to publishing).
        pools: Pools the Ray Data aggregation tasks ran in, with the number of blocks each produced.
        table: The published feature table.
    """

    rows_in: int
    users: int
    seconds: float
    pools: dict[str, int]
    table: pa.Table


def generate_events(directory: str | pathlib.Path, *, rows: int, users: int = 10_000, files: int = 8,
                    seed: int = 7) -> list[pathlib.Path]:
    """Write ``rows`` seeded click events as ``files`` Parquet files; returns their paths."""
    if rows < files or users < 1:
        raise ValueError(f"rows={rows} must be at least files={files}, and users={users} at least 1.")
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    per_file = [rows // files + (1 if i < rows % files else 0) for i in range(files)]
    start = 0
    for i, n in enumerate(per_file):
        # Heavy users: a Zipf-like spread so groups differ in size, as real click data does.
        user = np.minimum(rng.zipf(1.3, n) - 1, users - 1).astype(np.int64)
        table = pa.table({
            "user_id": user,
            "category": rng.integers(0, 10, n, dtype=np.int64),
            "amount": np.round(rng.gamma(2.0, 15.0, n), 2),
            "ts": np.arange(start, start + n, dtype=np.int64),
        })
        path = out / f"events-{i:03d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
        start += n
    return paths


def _partial(batch: pa.Table) -> pa.Table:
    """Per-block partial aggregates: sums, counts, max and per-category counts."""
    import ray

    by_user = batch.group_by("user_id").aggregate([("amount", "sum"), ("amount", "count"), ("amount", "max")])
    by_cat = batch.group_by(["user_id", "category"]).aggregate([("amount", "count")])
    pool = ray.get_runtime_context().get_node_labels().get("yr.io/pool", "?")
    cats = by_cat.rename_columns(["user_id", "category", "cat_count"])
    # One table carrying both shapes keeps it to one Ray Data output; `kind` tells them apart.
    users = pa.table({
        "kind": pa.array(["user"] * by_user.num_rows), "user_id": by_user["user_id"],
        "category": pa.nulls(by_user.num_rows, pa.int64()), "sum": by_user["amount_sum"],
        "count": by_user["amount_count"], "max": by_user["amount_max"],
        "pool": pa.array([pool] * by_user.num_rows),
    })
    cat_rows = pa.table({
        "kind": pa.array(["cat"] * cats.num_rows), "user_id": cats["user_id"], "category": cats["category"],
        "sum": pa.nulls(cats.num_rows, pa.float64()), "count": cats["cat_count"],
        "max": pa.nulls(cats.num_rows, pa.float64()), "pool": pa.array([pool] * cats.num_rows),
    })
    return pa.concat_tables([users, cat_rows])


def _read_partial(files: pa.Table) -> pa.Table:
    """Read this block's Parquet files (memory-mapped) and aggregate them to partials."""
    tables = [pq.read_table(path, memory_map=True) for path in files["path"].to_pylist()]
    return _partial(pa.concat_tables(tables))


def combine(partials: pa.Table) -> pa.Table:
    """Merge partial aggregates into the final feature table (sorted by ``user_id``)."""
    users = partials.filter(pc.equal(partials["kind"], "user"))
    cats = partials.filter(pc.equal(partials["kind"], "cat"))
    agg = users.group_by("user_id").aggregate([("sum", "sum"), ("count", "sum"), ("max", "max")])
    cat_totals = cats.group_by(["user_id", "category"]).aggregate([("count", "sum")])
    # Top category per user: highest count, lowest category id on ties.
    order = pc.sort_indices(cat_totals, sort_keys=[("user_id", "ascending"), ("count_sum", "descending"),
                                                   ("category", "ascending")])
    cat_sorted = cat_totals.take(order)
    uid = cat_sorted["user_id"].to_numpy()
    first = np.ones(len(uid), dtype=bool)
    first[1:] = uid[1:] != uid[:-1]
    top = cat_sorted.filter(pa.array(first)).select(["user_id", "category"])
    agg = agg.sort_by("user_id")
    top = top.sort_by("user_id")
    total = agg["sum_sum"]
    count = agg["count_sum"]
    return pa.table({
        "user_id": agg["user_id"], "events": count, "total": total,
        "mean": pc.divide(pc.cast(total, pa.float64()), pc.cast(count, pa.float64())),
        "max": agg["max_max"], "top_category": top["category"],
    }, schema=FEATURE_SCHEMA)


def expected_features(paths: list[pathlib.Path]) -> pa.Table:
    """The same features computed directly with Arrow on this process, to check a run against."""
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    batch = _direct_partial(table)
    return combine(batch)


def _direct_partial(table: pa.Table) -> pa.Table:
    by_user = table.group_by("user_id").aggregate([("amount", "sum"), ("amount", "count"), ("amount", "max")])
    by_cat = table.group_by(["user_id", "category"]).aggregate([("amount", "count")])
    return pa.concat_tables([
        pa.table({"kind": pa.array(["user"] * by_user.num_rows), "user_id": by_user["user_id"],
                  "category": pa.nulls(by_user.num_rows, pa.int64()), "sum": by_user["amount_sum"],
                  "count": by_user["amount_count"], "max": by_user["amount_max"],
                  "pool": pa.array(["driver"] * by_user.num_rows)}),
        pa.table({"kind": pa.array(["cat"] * by_cat.num_rows), "user_id": by_cat["user_id"],
                  "category": by_cat["category"], "sum": pa.nulls(by_cat.num_rows, pa.float64()),
                  "count": by_cat["amount_count"], "max": pa.nulls(by_cat.num_rows, pa.float64()),
                  "pool": pa.array(["driver"] * by_cat.num_rows)}),
    ])


def run_etl(paths: list[pathlib.Path], *, pool: str = "cloud", dataset: str = DATASET, concurrency: int = 2,
            progress: Callable[[str], None] | None = None) -> EtlResult:
    """Aggregate the events with Ray Data in ``pool`` and publish the features as ``dataset``.

    Args:
        paths: Parquet files from :func:`generate_events`.
        pool: Pool whose nodes run the read and aggregate tasks.
        dataset: Name to publish the result under (replaces an older version).
        concurrency: Aggregation tasks at once.
        progress: Called with a line of text at each step.

    Returns:
        An :class:`EtlResult`.
    """
    import ray
    import ray.data

    import datashare

    say = progress or (lambda _line: None)
    started = time.perf_counter()
    selector = {"label_selector": {"yr.io/pool": pool}}
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    say(f"etl: reading {len(paths)} Parquet file(s) in pool {pool}")
    # One block per file, read inside the pinned tasks: Ray Data's read_parquet merges small files
    # into one read task (no parallelism), and a repartition would run outside the pool.
    files = ray.data.from_items([{"path": str(p)} for p in paths], override_num_blocks=len(paths))
    partial = files.map_batches(_read_partial, batch_format="pyarrow", batch_size=None,
                                compute=ray.data.TaskPoolStrategy(size=concurrency), **selector)
    say("etl: aggregating blocks")
    blocks = [pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
              for b in partial.iter_batches(batch_format="pyarrow", batch_size=None)]
    pools: dict[str, int] = {}
    for block in blocks:
        if block.num_rows:
            name = str(block["pool"][0].as_py())
            pools[name] = pools.get(name, 0) + 1
    parts = pa.concat_tables(blocks)
    rows_in = int(pc.sum(parts.filter(pc.equal(parts["kind"], "user"))["count"]).as_py())
    features = combine(parts)
    say(f"etl: publishing {features.num_rows} users as dataset {dataset!r}")
    datashare.publish(dataset, features)
    return EtlResult(rows_in=rows_in, users=features.num_rows, seconds=time.perf_counter() - started,
                     pools=pools, table=features)
