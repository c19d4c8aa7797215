"""Instance cold start: a new ``@yr.instance`` adopted by a warm worker against a new raw Ray actor.

Each round creates one instance and times until its first method call has answered:

* yuanrong, warm: ``Cls.invoke()`` with ``Config(warm_pool_size=1)`` (the instance has the default
  shape, 500m CPU / 500 MB, so an idle warm worker adopts it);
* raw: ``ray.remote(Cls).options(num_cpus=0.5, memory=500 MB).remote()`` → first call, the same
  resources, which is what Ray offers for a new actor;
* yuanrong, cold: the same class with ``memory=499`` (a shape no warm worker has), to show the
  fallback costs what a raw actor costs.

The instance is terminated after each round. Before a warm round the pool is given time to refill
(untimed; its refill time, the new process start the adoption moved off the critical path, is
reported on its own row: from ``invoke`` until the replacement is adoptable). Rounds alternate the order of the paths; the first rounds are warm-up.

Run: ``python bench/coldstart_instances.py`` (``--quick`` for a smoke run).
Writes bench/results/coldstart_instances.json.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

# Run as a script, bench/ would come first on sys.path, where placement.py and datashare.py shadow
# the packages of the same names: put the project root there instead.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import ray  # noqa: E402

import yuanrong as yr  # noqa: E402
from bench._report import median, percentile, print_table, write_json  # noqa: E402
from yuanrong._private import session  # noqa: E402

MB = 1024 * 1024
TARGET_MS = 50.0


class Echo:
    def __init__(self, tag=0):
        self.tag = tag

    def ping(self):
        return self.tag


def _wait_refilled(pools, timeout=30.0) -> float:
    """Seconds until every warm pool is back to its size (the refill the adoption started)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        idle = pools.idle()
        if all(len(idle[key]) >= size for key, size in pools.sizes.items()):
            return time.perf_counter() - t0
        time.sleep(0.005)
    raise TimeoutError(f"the warm pool did not refill within {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (4 if args.quick else 20)
    warmup = 1 if args.quick else 3

    yr.init(yr.Config(num_cpus=4, warm_pool_size=1))
    try:
        pools = session.current().warm_pools
        warm_cls = yr.instance(Echo)
        cold_cls = warm_cls.options(memory=499)
        raw_cls = ray.remote(Echo).options(num_cpus=0.5, memory=500 * MB, max_concurrency=1)
        refills: list[float] = []

        def yr_warm(i):
            _wait_refilled(pools)
            t = time.perf_counter()
            inst = warm_cls.invoke(i)
            assert yr.get(inst.ping.invoke(), timeout=60) == i
            ms = (time.perf_counter() - t) * 1000
            # From the adoption until its replacement is adoptable: the process start moved off the path.
            refills.append(ms / 1000 + _wait_refilled(pools))
            inst.terminate()
            return ms

        def yr_cold(i):
            t = time.perf_counter()
            inst = cold_cls.invoke(i)
            assert yr.get(inst.ping.invoke(), timeout=60) == i
            ms = (time.perf_counter() - t) * 1000
            inst.terminate()
            return ms

        def raw(i):
            t = time.perf_counter()
            actor = raw_cls.remote(i)
            assert ray.get(actor.ping.remote(), timeout=60) == i
            ms = (time.perf_counter() - t) * 1000
            ray.kill(actor)
            return ms

        sides = {"yuanrong warm": yr_warm, "raw": raw, "yuanrong cold": yr_cold}
        samples: dict[str, list[float]] = {side: [] for side in sides}
        for r in range(warmup + rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(list(sides)))
            for side in order:
                ms = sides[side](r)
                if r >= warmup:
                    samples[side].append(ms)
        refills = refills[warmup:]

        summary = {side: {"p50_ms": median(v), "p90_ms": percentile(v, 0.9), "min_ms": min(v), "max_ms": max(v),
                          "samples_ms": v} for side, v in samples.items()}
        w, c, x = summary["yuanrong warm"], summary["yuanrong cold"], summary["raw"]
        refill_ms = median(refills) * 1000
        rows = [
            {"metric": "instance cold start p50", "unit": "ms", "yuanrong": w["p50_ms"], "raw": x["p50_ms"],
             "ratio": w["p50_ms"] / x["p50_ms"], "target": TARGET_MS / x["p50_ms"], "better": "lower",
             "target_ms": TARGET_MS},
            {"metric": "instance cold start p90", "unit": "ms", "yuanrong": w["p90_ms"], "raw": x["p90_ms"],
             "ratio": w["p90_ms"] / x["p90_ms"], "target": TARGET_MS / x["p90_ms"], "better": "lower",
             "target_ms": TARGET_MS},
            {"metric": "cold path (no warm shape) p50", "unit": "ms", "yuanrong": c["p50_ms"], "raw": x["p50_ms"],
             "ratio": c["p50_ms"] / x["p50_ms"], "target": 1.1, "better": "lower"},
            {"metric": "pool refill after adoption p50", "unit": "ms", "yuanrong": refill_ms, "raw": x["p50_ms"],
             "ratio": refill_ms / x["p50_ms"], "target": 1.5, "better": "lower"},
        ]
        print_table(rows, title=f"instance cold start: {rounds} alternating rounds after {warmup} warm-up, new "
                                f"instance -> first reply (target p50 <= {TARGET_MS:g} ms; ratio target = "
                                f"{TARGET_MS:g} ms / raw)")
        path = write_json("coldstart_instances", {"rounds": rounds, "warmup": warmup, "warm_pool_size": 1,
                                                  "results": summary, "refill_ms": [r * 1000 for r in refills],
                                                  "rows": rows})
        print(f"\nJSON: {path}")
    finally:
        yr.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
