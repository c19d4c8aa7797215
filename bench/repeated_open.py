"""What a repeated ``datashare.open`` costs a long-lived reader, against plain Ray's ``ray.get`` of
a ref it holds, and (with ``--before DIR``) against another checkout of the project.

A repeated open returns the table the process already mapped (its read cache, kept current by the
catalogue's change notification); reads the read cache serves are counted for the pool cache's
LRU order (``datashare/read_reports.py``). This measures that path where it costs most: a
long-lived reader on an edge node whose pool cache holds the dataset, opening it over and over, in
microseconds per open.

The plain-Ray side is the strongest path for the same job: the same reader process holds an
``ObjectRef`` of the same ``pyarrow.Table`` (``ray.put`` by the driver on the head; the first get
pulls it to the edge node's store) and calls ``ray.get(ref)`` over and over, each a zero-copy
mapping of the local copy. In each round the two sides take turns to go first, one batch of
``--opens`` calls each, after a warm-up of 1,000 calls each. What the ratio can show: the cost of
asking for a dataset by name and getting its current version, against getting an object the reader
already has a ref to. What it cannot: a held ref names one immutable object, so the plain-Ray
reader never sees a newer table (it would need a call to someone who knows the latest ref); and
the datashare figure is a cached table, not a mapping (the mapping is the "open, fresh" row of
``bench/datashare.py``). Keeping the table in a variable would cost nothing and show nothing.

``--before DIR`` (e.g. ``git archive <commit> | tar -x -C DIR``) measures that checkout too, as
the code of the whole cluster: a checkout's reader must talk to its own catalogue. So each
checkout runs in a cluster of its own, started by a child process (``--code DIR``); the checkouts
alternate, ``--pairs`` times each, each run making ``--rounds`` rounds. Figures are medians of the
per-batch means, with the range of the batches. The batch of read counts the reader sends every
2 s is one fire-and-forget call on a background thread, not part of any open.

    python bench/repeated_open.py --before /tmp/base     # writes bench/results/repeated_open.json
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

# bench/datashare.py must not shadow the package; the project root goes after PYTHONPATH (the checkout measured).
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]
sys.path.append(str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import ray  # noqa: E402

from bench._report import alternate, median, print_table, row, write_json  # noqa: E402


@ray.remote(num_cpus=0)
class Reader:
    def __init__(self, code: str) -> None:
        # Before anything imports datashare in this new worker process: the checkout to measure.
        sys.path.insert(0, code)

    def where(self) -> str:
        import datashare

        return datashare.__file__

    def opens(self, name: str, n: int) -> float:
        """Microseconds per open over ``n`` opens (every one served by this process's read cache)."""
        import time

        import datashare

        first = datashare.open(name, timeout=60)
        t0 = time.perf_counter()
        for _ in range(n):
            if datashare.open(name) is not first:
                raise RuntimeError("an open was not served by the read cache; the figure would mix paths")
        return (time.perf_counter() - t0) / n * 1e6

    def hold(self, refs: list) -> int:
        """Keep the ref (passed in a list so that Ray hands over the ref, not the table)."""
        self._ref = refs[0]
        return ray.get(self._ref).num_rows

    def gets(self, n: int) -> float:
        """Microseconds per ``ray.get`` of the held ref over ``n`` gets."""
        import time

        ref, rows = self._ref, ray.get(self._ref).num_rows
        t0 = time.perf_counter()
        for _ in range(n):
            if ray.get(ref).num_rows != rows:
                raise RuntimeError("ray.get returned another table")
        return (time.perf_counter() - t0) / n * 1e6


def _measure(code: pathlib.Path, rounds: int, opens: int) -> dict:
    """One side, in a cluster of its own whose every process imports datashare from ``code``."""
    import datashare
    from datashare import tenancy
    from yuanrong.local_cluster import LocalCluster, NodeSpec

    if not datashare.__file__.startswith(str(code)):
        raise SystemExit(f"datashare came from {datashare.__file__}, not {code}")
    os.environ.pop("RAY_ADDRESS", None)
    nodes = (NodeSpec(pool="cloud", tier="cloud", num_cpus=1, object_store_mb=256),
             NodeSpec(pool="edge-1", tier="edge", num_cpus=1, object_store_mb=256))
    with LocalCluster(nodes) as cluster:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            edge = NodeAffinitySchedulingStrategy(cluster.node_ids("edge-1")[0], soft=False)
            table = pa.table({"v": np.arange(500_000, dtype=np.int64)})
            with tenancy.acting_as(tenancy.Tenant(tenancy.DEFAULT_TENANT, admin=True)):
                datashare.set_pool_cache("edge-1", 4 * table.nbytes)
            datashare.publish("bench-repeated-open", table)
            reader = Reader.options(scheduling_strategy=edge).remote(str(code))
            where = ray.get(reader.where.remote())
            if not where.startswith(str(code)):
                raise SystemExit(f"the reader imported {where}, not the code measured")
            hits = datashare.pool_caches()["edge-1"]["hits"]
            ray.get(reader.opens.remote("bench-repeated-open", 1000))       # warm-up; fills edge-1's cache
            assert datashare.pool_caches()["edge-1"]["entries"], "the pool cache was not filled"
            ref = ray.put(table)
            if ray.get(reader.hold.remote([ref])) != table.num_rows:        # pulls the copy to the edge node
                raise SystemExit("the reader's ray.get returned another table")
            ray.get(reader.gets.remote(1000))                                # warm-up
            per_call = alternate({"datashare": lambda: ray.get(reader.opens.remote("bench-repeated-open", opens)),
                                  "ray.get": lambda: ray.get(reader.gets.remote(opens))}, rounds)
            time.sleep(5)                       # the reader's last report (every 2 s), if it sends any
            counted = datashare.pool_caches()["edge-1"]["hits"] - hits
            datashare.shutdown_actors()
        finally:
            ray.shutdown()
    return {"us_per_open": per_call["datashare"], "us_per_ray_get": per_call["ray.get"], "hits_counted": counted,
            "opens": 1001 + rounds * (opens + 1)}     # the warm-up's included


def main(argv: list[str] | None = None) -> int:
    import json
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=pathlib.Path, help="also measure this checkout of the code")
    parser.add_argument("--code", type=pathlib.Path, help="(child process) measure this checkout only")
    parser.add_argument("--pairs", type=int, default=2, help="cluster runs per checkout")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per run, one batch per side each")
    parser.add_argument("--opens", type=int, default=20_000, help="calls per batch")
    args = parser.parse_args(argv)
    if args.code is not None:
        print(json.dumps(_measure(args.code.resolve(), args.rounds, args.opens)))
        return 0
    here = pathlib.Path(__file__).resolve().parents[1]
    sides = {"after": here} if args.before is None else {"before": args.before.resolve(), "after": here}
    out: dict[str, list[dict]] = {side: [] for side in sides}
    load = [os.getloadavg()[0]]
    for pair in range(args.pairs):
        for side in (list(sides) if pair % 2 == 0 else list(reversed(list(sides)))):
            env = {**os.environ, "PYTHONPATH": str(sides[side])}
            proc = subprocess.run([sys.executable, __file__, "--code", str(sides[side]), "--rounds", str(args.rounds),
                                   "--opens", str(args.opens)], capture_output=True, text=True, env=env, timeout=900)
            if proc.returncode != 0:
                raise SystemExit(f"the {side} run failed:\n{proc.stderr[-3000:]}")
            out[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(side, out[side][-1], flush=True)
    load.append(os.getloadavg()[0])
    figures = {side: {kind: [v for run in runs for v in run[kind]] for kind in ("us_per_open", "us_per_ray_get")}
               for side, runs in out.items()}
    summary = {side: {kind: {"median": median(v), "min": min(v), "max": max(v)} for kind, v in kinds.items()}
               for side, kinds in figures.items()}
    rows = [row(f"repeated open ({side}) vs held-ref ray.get", "us", summary[side]["us_per_open"]["median"],
                summary[side]["us_per_ray_get"]["median"], 1.0, "lower") for side in sides]
    for side, kinds in summary.items():
        print(f"{side:>6}: open {kinds['us_per_open']['median']:.2f} us (batches {kinds['us_per_open']['min']:.2f}-"
              f"{kinds['us_per_open']['max']:.2f}), ray.get {kinds['us_per_ray_get']['median']:.2f} us (batches "
              f"{kinds['us_per_ray_get']['min']:.2f}-{kinds['us_per_ray_get']['max']:.2f}); hits counted "
              f"{sum(r['hits_counted'] for r in out[side])} of {sum(r['opens'] for r in out[side])} opens")
    print_table(rows, title=f"repeated open on an edge node vs ray.get: {args.pairs} runs x {args.rounds} alternating "
                            f"rounds of {args.opens} calls (median batch)")
    payload = {"command": "python bench/repeated_open.py" + (" --before DIR" if args.before else "")
                          + f" --pairs {args.pairs} --rounds {args.rounds} --opens {args.opens}",
               "load": load, "runs": out, "summary": summary, "rows": rows}
    if args.before is not None:
        opens = {side: summary[side]["us_per_open"]["median"] for side in sides}
        payload["after_over_before"] = opens["after"] / opens["before"]
        print(f"open, after/before: {payload['after_over_before']:.3f}")
    print(f"load average {load[0]:.1f} -> {load[1]:.1f}")
    print(f"wrote {write_json('repeated_open', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
