"""Benchmark of datashare's object plane: same-node open, publish, cross-node read, Flight.

Starts its own :class:`yuanrong.local_cluster.LocalCluster` (a head with a large object store and
one edge node), measures, prints a table with ratios, writes ``bench/results/datashare.json`` and
shuts the cluster down.

    python bench/datashare.py            # full run: 1 MB, 100 MB and 1 GB tables
    python bench/datashare.py --quick    # 1 MB and 100 MB only, smaller transfers

Figures:
    * memcpy: single-thread numpy copy into warm memory, best of 5 (the yardstick).
    * open: ``datashare.open(name)`` latency on the publishing node (median): repeated (served
      by the read cache), ``fresh=True`` (catalogue round trip + mapping the chunks), and the
      mapping alone (``ray.get`` of the chunk refs); next to ``ray.get`` of a pickled pandas
      DataFrame holding the same data, put with plain ``ray.put``.
    * publish: ``datashare.publish`` throughput (GB/s) once store memory is warm, and its ratio
      to memcpy; ``lifetime="job"`` (no holder copy) and a plain ``ray.put`` for reference.
    * cross-node: a task on the edge node opens a dataset held on the head node (pull + map).
    * flight: a pyarrow.flight client reads a dataset over loopback.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

# This script is named like the package it measures; keep its own directory off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

_MB = 1024 * 1024
_GB = 1024 * _MB


def _table(nbytes: int) -> pa.Table:
    """int64 + float64 + an 8-character string column: ~28 bytes a row."""
    rows = max(1, nbytes // 28)
    rng = np.random.default_rng(7)
    ids = np.arange(rows, dtype=np.int64)
    tags = np.char.mod("t%07d", ids % 10_000_000).astype(object)
    return pa.table({"id": ids, "x": rng.random(rows), "tag": pa.array(tags, type=pa.string())})


def _memcpy_gbps(nbytes: int = 512 * _MB) -> float:
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # warm both
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(5))
    return nbytes / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _median_s(fn, repeat: int) -> float:
    return statistics.median(_timed(fn) for _ in range(repeat))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1 GB size")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "datashare.json"))
    args = parser.parse_args(argv)

    import ray

    import datashare
    from yuanrong.local_cluster import LocalCluster, NodeSpec

    sizes = [("1MB", _MB), ("100MB", 100 * _MB)] + ([] if args.quick else [("1GB", _GB)])
    transfer = 128 * _MB if args.quick else 512 * _MB
    os.environ.pop("RAY_ADDRESS", None)
    nodes = (
        NodeSpec(pool="cloud", tier="cloud", num_cpus=2, object_store_mb=4096),
        NodeSpec(pool="edge-1", tier="edge", num_cpus=1, object_store_mb=1024),
    )
    # Fault the stores' shared memory in at start-up: "once store memory is warm", measured
    # without first-touch page faults (which cost ~1 GB/s on tmpfs) in every publish.
    system_config = {"preallocate_plasma_memory": True}
    results: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9),
                    "python": platform.python_version(), "ray": ray.__version__, "pyarrow": pa.__version__},
        "command": "python bench/datashare.py" + (" --quick" if args.quick else ""),
    }
    memcpy = _memcpy_gbps()
    results["memcpy_gbps"] = memcpy
    print(f"memcpy (single thread, warm): {memcpy:.2f} GB/s", flush=True)

    with LocalCluster(nodes, system_config=system_config) as cluster:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        try:
            results["open"] = []
            results["publish"] = []
            for label, size in sizes:
                table = _table(size)
                name = f"bench-{label}"
                datashare.publish(name, table)                    # cold: fresh store pages
                t_pub = min(_timed(lambda: datashare.publish(name, table, keep_previous=0)) for _ in range(2))
                t_put = min(_timed(lambda: ray.put(table)) for _ in range(2))
                t_job = min(_timed(lambda: datashare.publish(name + "-job", table, keep_previous=0, lifetime="job"))
                            for _ in range(2))
                datashare.delete(name + "-job")
                datashare.open(name)
                repeat = 50 if size <= 100 * _MB else 20
                t_open = _median_s(lambda: datashare.open(name), repeat)
                t_fresh = _median_s(lambda: datashare.open(name, fresh=True), repeat)
                _, chunk_refs = datashare.refs(name)
                t_get = _median_s(lambda: ray.get(chunk_refs), repeat)
                # pandas 3 keeps strings in Arrow (zero-copy through Ray too); the classic pickled
                # DataFrame has Python-object strings. Both are measured.
                df = table.to_pandas()
                df_ref = ray.put(df)
                df["tag"] = df["tag"].astype(object)
                obj_ref = ray.put(df)
                del df
                t_pandas_arrow = _median_s(lambda: ray.get(df_ref), 3 if size >= _GB else 5)
                t_pandas = _median_s(lambda: ray.get(obj_ref), 3 if size >= _GB else 5)
                del df_ref, obj_ref
                row = {"size": label, "nbytes": table.nbytes, "open_ms": t_open * 1e3,
                       "open_fresh_ms": t_fresh * 1e3, "get_chunks_ms": t_get * 1e3,
                       "pandas_object_str_get_ms": t_pandas * 1e3, "pandas_arrow_str_get_ms": t_pandas_arrow * 1e3,
                       "fresh_open_speedup_vs_pandas": t_pandas / t_fresh}
                results["open"].append(row)
                pub = {"size": label, "nbytes": table.nbytes, "publish_gbps": table.nbytes / t_pub / 1e9,
                       "ray_put_gbps": table.nbytes / t_put / 1e9, "publish_job_gbps": table.nbytes / t_job / 1e9}
                pub["publish_vs_memcpy"] = pub["publish_gbps"] / memcpy
                results["publish"].append(pub)
                print(f"{label:>6}: open {t_open * 1e3:8.3f} ms (fresh {t_fresh * 1e3:.3f} ms, chunk get {t_get * 1e3:.3f} ms) | pandas ray.get "
                      f"{t_pandas * 1e3:10.1f} ms (arrow-str {t_pandas_arrow * 1e3:.1f} ms) | fresh open x{t_pandas / t_fresh:,.0f} faster | publish {pub['publish_gbps']:.2f} GB/s "
                      f"= {pub['publish_vs_memcpy']:.2f} x memcpy (lifetime=job {pub['publish_job_gbps']:.2f}, "
                      f"ray.put {pub['ray_put_gbps']:.2f} GB/s)", flush=True)
                datashare.delete(name)
                del table

            # Cross-node: the dataset lives on the head; a task on the edge node opens it.
            table = _table(transfer)
            edge = cluster.node_ids("edge-1")[0]
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            @ray.remote(num_cpus=0)
            def remote_open(name: str) -> tuple[float, int]:
                import datashare as ds

                t0 = time.perf_counter()
                t = ds.open(name)
                return time.perf_counter() - t0, t.num_rows

            best = float("inf")
            for attempt in range(2):
                name = f"bench-xnode-{attempt}"
                datashare.publish(name, table)
                seconds, rows = ray.get(remote_open.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(edge, soft=False)).remote(name))
                assert rows == table.num_rows
                best = min(best, seconds)
                datashare.delete(name)
            results["cross_node"] = {"nbytes": table.nbytes, "gbps": table.nbytes / best / 1e9,
                                     "vs_memcpy": table.nbytes / best / 1e9 / memcpy}
            print(f"cross-node open of {table.nbytes / _MB:.0f} MB: {results['cross_node']['gbps']:.2f} GB/s "
                  f"= {results['cross_node']['vs_memcpy']:.2f} x memcpy", flush=True)

            # Flight over loopback.
            import pyarrow.flight as flight

            datashare.publish("bench-flight", table)
            endpoint = datashare.serve_flight(port=0)
            client = flight.connect(endpoint.location)
            try:
                client.do_get(flight.Ticket(b"bench-flight")).read_all()
                t_fl = min(_timed(lambda: client.do_get(flight.Ticket(b"bench-flight")).read_all()) for _ in range(3))
            finally:
                client.close()
                endpoint.shutdown()
            results["flight"] = {"nbytes": table.nbytes, "gbps": table.nbytes / t_fl / 1e9,
                                 "vs_memcpy": table.nbytes / t_fl / 1e9 / memcpy}
            print(f"flight do_get of {table.nbytes / _MB:.0f} MB over loopback: {results['flight']['gbps']:.2f} GB/s "
                  f"= {results['flight']['vs_memcpy']:.2f} x memcpy", flush=True)
            datashare.delete("bench-flight")
            datashare.shutdown_actors()
        finally:
            ray.shutdown()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
