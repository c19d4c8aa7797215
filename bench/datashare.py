"""datashare against the strongest plain-Ray path, in one run on one cluster.

Starts its own :class:`yuanrong.local_cluster.LocalCluster` (a cloud head with a 4 GiB object
store and one edge node with 1.5 GiB), measures, prints a table of ratios, writes
``bench/results/datashare.json`` (rows as in ``bench/results/invoke.json``) and shuts the cluster
down. Every comparison alternates the two sides round by round and keeps the median, so load from
other jobs on the machine hits both alike.

    python bench/datashare.py              # 1 MB, 100 MB and 1 GB; 512 MiB transfers
    python bench/datashare.py --quick      # 1 MB and 100 MB; 128 MiB transfers

Rows (``yuanrong`` against ``raw``):
    * open: ``datashare.open(name, fresh=True)`` (no table cached in the process: find the
      version, map its chunks) against ``ray.get`` of the same ``pyarrow.Table`` put with
      ``ray.put`` (zero-copy too; the strongest plain-Ray read). Median of each round's p50.
    * publish: ``datashare.publish`` (detached, outlives the job) against ``ray.put`` of the same
      table (owned by the driver, dies with it), GB/s once store memory is warm; and publish
      against single-thread memcpy of the same run.
    * cross-node: a task on the edge node opens a dataset held on the head, against the same task
      doing ``ray.get`` of the table put with ``ray.put`` on the head (Ray's own transfer).
    * flight: ``do_get`` over loopback of every endpoint the server offers (parallel streams),
      against a plain ``pyarrow.flight`` server handing out the same in-memory table; and against
      the 2 GB/s goal.
    * edge cache: a dataset held on the cloud node, opened by a reader on the edge node (a new
      process) whose pool has a cache: the first reader pulls it into the pool's cache, the second
      (another new process) maps that copy; time of ``datashare.open`` inside each reader. The
      target is the second reader at least 10x faster than the first.
    * replicas: a dataset published with ``replicas=2`` to a node that then leaves is read from the
      replica; the time of that read is recorded (plain Ray has no copy to fall back to).
    * kv: 1,000 sequential ``kv_write`` calls of 1 KB until all are applied (read back), against
      a plain Ray actor holding a dict, called the fastest correct way (fire-and-forget calls, in
      order because the actor is synchronous, then one ``ray.get``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Run as a script, bench/ would come first on sys.path, where datashare.py shadows the package.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import ray  # noqa: E402

from bench._report import median, percentile, print_table, write_json  # noqa: E402
from bench._report import alternate as _alternate, row as _row, timed as _timed  # noqa: E402

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
    return nbytes / min(_timed(lambda: np.copyto(dst, src)) for _ in range(5)) / 1e9


def _spread(values: list[float]) -> dict:
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


def _open_and_publish(ds, sizes, rounds, memcpy, rows, record) -> None:
    for label, size in sizes:
        table = _table(size)
        name = f"bench-{label}"
        ds.publish(name, table)                     # cold: first pages of fresh store memory
        ray.put(table)
        gbps = _alternate({
            "yuanrong": lambda: table.nbytes / _timed(lambda: ds.publish(name, table, keep_previous=0)) / 1e9,
            "raw": lambda: table.nbytes / _timed(lambda: ray.put(table)) / 1e9,
        }, rounds)
        ref = ray.put(table)
        ray.get(ref)
        ds.open(name, fresh=True)
        n = 40 if size <= 100 * _MB else 20

        def p50_ms(fn):
            return percentile([_timed(fn) * 1e3 for _ in range(n)], 0.5)

        lat = _alternate({"yuanrong": lambda: p50_ms(lambda: ds.open(name, fresh=True)),
                          "raw": lambda: p50_ms(lambda: ray.get(ref))}, rounds)
        cached = p50_ms(lambda: ds.open(name))
        del ref
        record[f"publish {label}"] = {side: _spread(v) for side, v in gbps.items()}
        record[f"open {label}"] = {side: _spread(v) for side, v in lat.items()}
        record[f"open {label}"]["cached_in_process_ms"] = cached
        y, w = median(gbps["yuanrong"]), median(gbps["raw"])
        rows.append(_row(f"publish {label} vs ray.put", "GB/s", y, w, 1.0, "higher"))
        rows.append(_row(f"publish {label} vs memcpy", "GB/s", y, memcpy, 0.5, "higher"))
        rows.append(_row(f"open {label} (fresh) vs ray.get", "ms", median(lat["yuanrong"]), median(lat["raw"]),
                         1.2, "lower"))
        print(f"{label}: publish {y:.2f} GB/s (ray.put {w:.2f}); open {median(lat['yuanrong']):.3f} ms "
              f"(ray.get {median(lat['raw']):.3f} ms, cached {cached:.4f} ms)", flush=True)
        ds.delete(name)
        del table


def _cross_node(ds, cluster, nbytes, rounds, rows, record) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    table = _table(nbytes)
    edge = NodeAffinitySchedulingStrategy(cluster.node_ids("edge-1")[0], soft=False)

    @ray.remote(num_cpus=0)
    def remote_open(name: str) -> float:
        import datashare

        t0 = time.perf_counter()
        t = datashare.open(name)
        return time.perf_counter() - t0 if t.num_rows else 0.0

    @ray.remote(num_cpus=0)
    def remote_get(refs: list) -> float:
        t0 = time.perf_counter()
        t = ray.get(refs[0])
        return time.perf_counter() - t0 if t.num_rows else 0.0

    counter = iter(range(1000))

    def ours() -> float:
        name = f"bench-xnode-{next(counter)}"
        ds.publish(name, table)
        seconds = ray.get(remote_open.options(scheduling_strategy=edge).remote(name))
        ds.delete(name)
        return table.nbytes / seconds / 1e9

    def raw() -> float:
        ref = ray.put(table)
        return table.nbytes / ray.get(remote_get.options(scheduling_strategy=edge).remote([ref])) / 1e9

    gbps = _alternate({"yuanrong": ours, "raw": raw}, rounds)
    record["cross-node read"] = {side: _spread(v) for side, v in gbps.items()}
    rows.append(_row(f"cross-node read {nbytes // _MB} MB vs ray.get", "GB/s", median(gbps["yuanrong"]),
                     median(gbps["raw"]), 0.9, "higher"))


def _bearer():
    """Call options carrying the cluster token, which a datashare Flight server without yuanrong accepts."""
    import pyarrow.flight as flight

    path = pathlib.Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or pathlib.Path.home() / ".ray" / "auth_token")
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {path.read_text().strip()}".encode())])


def _read_endpoints(client, info, options) -> pa.Table:
    import pyarrow.flight as flight

    with ThreadPoolExecutor(max(1, len(info.endpoints))) as pool:
        parts = list(pool.map(lambda e: client.do_get(flight.Ticket(e.ticket.ticket), options=options).read_all(),
                              info.endpoints))
    return pa.concat_tables(parts)


def _flight(ds, nbytes, rounds, rows, record) -> None:
    import pyarrow.flight as flight

    table = _table(nbytes)
    ds.publish("bench-flight", table)
    ours = ds.serve_flight(port=0)

    class Plain(flight.FlightServerBase):
        def do_get(self, context, ticket):
            return flight.RecordBatchStream(table)

    plain = Plain("grpc://127.0.0.1:0")
    threading.Thread(target=plain.serve, daemon=True).start()
    c_ours, c_plain = flight.connect(ours.location), flight.connect(f"grpc://127.0.0.1:{plain.port}")
    auth = _bearer()        # sent to both servers (the plain one ignores it)
    try:
        info = c_ours.get_flight_info(flight.FlightDescriptor.for_path("bench-flight"), options=auth)
        assert _read_endpoints(c_ours, info, auth).num_rows == table.num_rows
        gbps = _alternate({
            "yuanrong": lambda: table.nbytes / _timed(lambda: _read_endpoints(c_ours, info, auth)) / 1e9,
            "raw": lambda: table.nbytes / _timed(lambda: c_plain.do_get(flight.Ticket(b"t"),
                                                                        options=auth).read_all()) / 1e9,
        }, rounds)
    finally:
        c_ours.close()
        c_plain.close()
        ours.shutdown()
        plain.shutdown()
        ds.delete("bench-flight")
    record["flight do_get"] = {side: _spread(v) for side, v in gbps.items()}
    record["flight do_get"]["streams"] = len(info.endpoints)
    y = median(gbps["yuanrong"])
    rows.append(_row(f"flight do_get {nbytes // _MB} MB vs plain Flight", "GB/s", y, median(gbps["raw"]),
                     1.0, "higher"))
    rows.append(_row(f"flight do_get {nbytes // _MB} MB vs 2 GB/s goal", "GB/s", y, 2.0, 1.0, "higher"))


def _kv(rounds, rows, record) -> None:
    from bench.kv import DictKV
    from datashare import kv

    actor = DictKV.remote()
    ray.get(actor.put.remote("warm", b"x"))
    value = b"v" * 1024
    kv.kv_write("bench/warm", value)
    kv.kv_read("bench/warm", timeout=5)

    def ours() -> float:
        t0 = time.perf_counter()
        for i in range(1000):
            kv.kv_write(f"bench/k{i}", value)
        kv.kv_read("bench/k999", timeout=5)
        return time.perf_counter() - t0

    def raw() -> float:
        t0 = time.perf_counter()
        for i in range(1000):
            actor.put.remote(f"k{i}", value)
        ray.get(actor.get.remote("k999"))
        return time.perf_counter() - t0

    seconds = _alternate({"yuanrong": ours, "raw": raw}, rounds)
    kv.kv_del([f"bench/k{i}" for i in range(1000)] + ["bench/warm"])
    ray.kill(actor)
    record["kv 1000 writes of 1 KB"] = {side: _spread(v) for side, v in seconds.items()}
    y = median(seconds["yuanrong"])
    rows.append(_row("kv 1,000 writes of 1 KB vs dict actor", "s", y, median(seconds["raw"]), 1.5, "lower"))
    rows.append(_row("kv 1,000 writes of 1 KB vs 1 s limit", "s", y, 1.0, 1.0, "lower"))


def _edge_cache(ds, cluster, nbytes, rounds, rows, record) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from datashare import tenancy

    edge = NodeAffinitySchedulingStrategy(cluster.node_ids("edge-1")[0], soft=False)

    @ray.remote(num_cpus=0, max_calls=1)        # a new process per reader: no read cache of its own
    def reader(name: str) -> float:
        import datashare

        t0 = time.perf_counter()
        t = datashare.open(name, timeout=300)
        return time.perf_counter() - t0 if t.num_rows else 0.0

    table = _table(nbytes)
    with tenancy.acting_as(tenancy.Tenant(tenancy.DEFAULT_TENANT, admin=True)):
        ds.set_pool_cache("edge-1", 2 * table.nbytes)
    ds.publish("bench-edge-warm", _table(_MB))
    ray.get(reader.options(scheduling_strategy=edge).remote("bench-edge-warm"))   # starts edge-1's holder
    ds.delete("bench-edge-warm")
    first, second = [], []
    for r in range(rounds):
        name = f"bench-edge-{r}"
        ds.publish(name, table)
        first.append(ray.get(reader.options(scheduling_strategy=edge).remote(name)) * 1e3)
        second.append(ray.get(reader.options(scheduling_strategy=edge).remote(name)) * 1e3)
        ds.delete(name)
    stats = ds.pool_caches()["edge-1"]
    with tenancy.acting_as(tenancy.Tenant(tenancy.DEFAULT_TENANT, admin=True)):
        ds.set_pool_cache("edge-1", None)
    record["edge cache"] = {"nbytes": table.nbytes, "first_reader_ms": _spread(first),
                            "second_reader_ms": _spread(second), "fills": stats["fills"], "hits": stats["hits"]}
    rows.append(_row(f"edge cache {nbytes // _MB} MB: 2nd reader vs 1st", "ms", median(second), median(first),
                     0.1, "lower"))
    print(f"edge cache {table.nbytes // _MB} MB: first reader {median(first):.1f} ms, second {median(second):.2f} ms "
          f"(fills {stats['fills']}, hits {stats['hits']})", flush=True)


def _replica_read(ds, cluster, nbytes, record) -> None:
    """A dataset published with ``replicas=2`` to a node that then leaves: the read and its time."""
    from yuanrong.local_cluster import NodeSpec

    table = _table(nbytes)
    node = cluster.add_node(NodeSpec(pool="edge-2", tier="edge", num_cpus=1, object_store_mb=1536))
    try:
        info = ds.publish("bench-replica", table, nodes=[node], replicas=2)
    finally:
        cluster.remove_node("edge-2")
    seconds = _timed(lambda: ds.open("bench-replica", timeout=120))
    again = _timed(lambda: ds.open("bench-replica", fresh=True, timeout=120))
    record["read after holder node loss, replicas=2"] = {
        "nbytes": table.nbytes, "holder_nodes": list(info.node_ids), "first_read_s": seconds,
        "second_read_s": again}
    print(f"read of {table.nbytes // _MB} MB after its first holder's node left (replicas=2): "
          f"{seconds:.3f} s, again {again:.3f} s", flush=True)
    ds.delete("bench-replica")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1 GB size; 128 MiB transfers")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per comparison")
    args = parser.parse_args(argv)

    import datashare
    from yuanrong.local_cluster import LocalCluster, NodeSpec

    sizes = [("1MB", _MB), ("100MB", 100 * _MB)] + ([] if args.quick else [("1GB", _GB)])
    transfer = 128 * _MB if args.quick else 512 * _MB
    os.environ.pop("RAY_ADDRESS", None)
    nodes = (NodeSpec(pool="cloud", tier="cloud", num_cpus=2, object_store_mb=4096),
             NodeSpec(pool="edge-1", tier="edge", num_cpus=1, object_store_mb=1536))
    # Fault the stores' shared memory in at start-up, so puts are measured once store memory is
    # warm rather than with first-touch page faults (which cost ~1 GB/s on tmpfs).
    system_config = {"preallocate_plasma_memory": True}
    load = [os.getloadavg()[0]]
    memcpy = _memcpy_gbps()
    print(f"memcpy (single thread, warm): {memcpy:.2f} GB/s; load average {load[0]:.1f}", flush=True)
    rows: list[dict] = []
    record: dict = {}
    with LocalCluster(nodes, system_config=system_config) as cluster:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        try:
            _open_and_publish(datashare, sizes, args.rounds, memcpy, rows, record)
            _cross_node(datashare, cluster, transfer, max(3, args.rounds - 2), rows, record)
            _flight(datashare, transfer, args.rounds, rows, record)
            _kv(args.rounds, rows, record)
            _edge_cache(datashare, cluster, transfer, max(3, args.rounds - 2), rows, record)
            _replica_read(datashare, cluster, transfer, record)
            datashare.shutdown_actors()
        finally:
            ray.shutdown()
    load.append(os.getloadavg()[0])
    memcpy_end = _memcpy_gbps()
    print_table(rows, title=f"datashare vs plain Ray: {args.rounds} alternating rounds (median); memcpy "
                            f"{memcpy:.1f} GB/s at start, {memcpy_end:.1f} at end; load {load[0]:.1f} -> {load[1]:.1f}")
    path = write_json("datashare", {
        "command": "python bench/datashare.py" + (" --quick" if args.quick else ""), "rounds": args.rounds,
        "ray": ray.__version__, "pyarrow": pa.__version__, "memcpy_gbps": [memcpy, memcpy_end],
        "load_average_1min": load, "results": record, "rows": rows})
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
