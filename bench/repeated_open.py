"""What a repeated ``datashare.open`` costs, before and after counting it toward the pool caches' LRU.

A repeated open returns the table the process already mapped (its read cache); since reads the
read cache serves are counted for the pool cache's LRU order (``datashare/read_reports.py``), such
an open of a version read from its pool's cached copy also counts one read in memory. This
measures that path where it costs most: a long-lived reader on an edge node whose pool cache holds
the dataset, opening it over and over, in microseconds per open.

The *before* side is the same measurement with another checkout of the project (``--before DIR``,
e.g. ``git archive <commit> | tar -x -C DIR``) as the code of the whole cluster: a checkout's
reader must talk to its own catalogue. So each side runs in a cluster of its own, started by a
child process (``--code DIR``); the sides alternate, ``--pairs`` times each, each run making
``--rounds`` batches of ``--opens`` opens; the figure is the median of the per-batch means. It
shows the cost of the in-process path only: the batch the *after* reader sends every 2 s is one
fire-and-forget call on a background thread, not part of any open.

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

from bench._report import median, write_json  # noqa: E402


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
            ray.get(reader.opens.remote("bench-repeated-open", 1000))       # warm-up; fills edge-1's cache
            assert datashare.pool_caches()["edge-1"]["entries"], "the pool cache was not filled"
            hits = datashare.pool_caches()["edge-1"]["hits"]
            per_open = [ray.get(reader.opens.remote("bench-repeated-open", opens)) for _ in range(rounds)]
            time.sleep(5)                       # the reader's last report (every 2 s), if it sends any
            counted = datashare.pool_caches()["edge-1"]["hits"] - hits
            datashare.shutdown_actors()
        finally:
            ray.shutdown()
    return {"us_per_open": per_open, "hits_counted": counted, "opens": rounds * (opens + 1)}


def main(argv: list[str] | None = None) -> int:
    import json
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=pathlib.Path, help="checkout of the code to compare with")
    parser.add_argument("--code", type=pathlib.Path, help="(child process) measure this checkout only")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--opens", type=int, default=20_000)
    args = parser.parse_args(argv)
    if args.code is not None:
        print(json.dumps(_measure(args.code.resolve(), args.rounds, args.opens)))
        return 0
    if args.before is None:
        parser.error("give --before DIR (a checkout to compare this one with)")
    here = pathlib.Path(__file__).resolve().parents[1]
    sides = {"before": args.before.resolve(), "after": here}
    out: dict[str, list[dict]] = {"before": [], "after": []}
    load = [os.getloadavg()[0]]
    for pair in range(args.pairs):
        for side in (("before", "after") if pair % 2 == 0 else ("after", "before")):
            env = {**os.environ, "PYTHONPATH": str(sides[side])}
            proc = subprocess.run([sys.executable, __file__, "--code", str(sides[side]), "--rounds", str(args.rounds),
                                   "--opens", str(args.opens)], capture_output=True, text=True, env=env, timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"the {side} run failed:\n{proc.stderr[-3000:]}")
            out[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(side, out[side][-1], flush=True)
    load.append(os.getloadavg()[0])
    per_open = {side: [v for run in runs for v in run["us_per_open"]] for side, runs in out.items()}
    for side, values in per_open.items():
        print(f"{side:>6}: {median(values):.2f} us per repeated open (batches {min(values):.2f}-{max(values):.2f}); "
              f"hits counted {sum(r['hits_counted'] for r in out[side])} of {sum(r['opens'] for r in out[side])} opens")
    ratio = median(per_open["after"]) / median(per_open["before"])
    print(f"after/before: {ratio:.3f}; load average {load[0]:.1f} -> {load[1]:.1f}")
    path = write_json("repeated_open", {
        "command": f"python bench/repeated_open.py --before DIR --pairs {args.pairs} --rounds {args.rounds} "
                   f"--opens {args.opens}", "load": load, "runs": out,
        "us_per_open": {side: {"median": median(v), "min": min(v), "max": max(v)} for side, v in per_open.items()},
        "after_over_before": ratio})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
