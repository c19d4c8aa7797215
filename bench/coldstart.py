"""Function instances: a never-called function's first call, and pooled calls once warm.

Three rows, each against the strongest plain-Ray path for the same job, in one run on one
embedded cluster, alternating which side goes first every round:

* ``function cold start p50``: the first ``get(f.invoke())`` of a function defined that round
  (so Ray exports it anew) against the first ``ray.get(g.remote())`` of a new ``ray.remote``
  function. Both sides lease an already-started Ray worker; yuanrong's pool starts its instance in
  the background meanwhile, and the round waits for that start to end before the next round.
* ``pooled function: sync latency p50``: sequential round trips to a warm pooled function against
  a raw Ray task.
* ``pooled function: async throughput``: a burst of calls submitted without waiting, then fetched,
  against the same burst of raw Ray tasks (both with 0.5 CPU per call or instance: the same
  concurrency on the same CPUs), each after an uncounted burst of its own, so that both are
  measured with their processes started.

Run: ``python bench/coldstart.py`` (``--quick`` for a short smoke run). Writes
bench/results/coldstart.json.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import types

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import ray  # noqa: E402

import yuanrong as yr  # noqa: E402
from bench._report import median, percentile, print_table, write_json  # noqa: E402
from bench._timing import latency_ms, throughput  # noqa: E402

RAW_OPTS = {"num_cpus": 0.5, "memory": 500 * 1024 * 1024, "max_retries": 0}
COLD_IDLE_TIMEOUT_S = 1  # so each round's cold instance is gone before the next round


def echo(x):
    return x


def fresh_function(tag: str):
    """A function Ray has never seen (a new name and code object), for a real first call."""
    code = echo.__code__.replace(co_name=f"echo_{tag}")
    return types.FunctionType(code, echo.__globals__, f"echo_{tag}")


def first_call_ms(side: str, tag: str) -> float:
    fn = fresh_function(tag)
    if side == "yuanrong":
        f = yr.invoke(fn).options(idle_timeout=COLD_IDLE_TIMEOUT_S)
        t = time.perf_counter()
        yr.get(f.invoke(1))
    else:
        g = ray.remote(**RAW_OPTS)(fn)
        t = time.perf_counter()
        ray.get(g.remote(1))
    return (time.perf_counter() - t) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few calls, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    n_lat, n_tput, rounds = (50, 200, 2) if args.quick else (300, 1000, 7)
    rounds = args.rounds or rounds

    yr.init(yr.Config(num_cpus=4))
    try:
        # Warm-up: Ray's worker pool, both call paths, and the pooled function's instances.
        warm_yr = yr.invoke(echo)
        warm_raw = ray.remote(**RAW_OPTS)(echo)
        for _ in range(3):
            throughput(warm_yr.invoke, yr.get, n_tput)
            throughput(warm_raw.remote, ray.get, n_tput)
            time.sleep(1)
        for i in range(2):
            first_call_ms("yuanrong", f"warm{i}")
            first_call_ms("raw", f"warm{i}")
        time.sleep(COLD_IDLE_TIMEOUT_S + 1.5)

        cold = {"yuanrong": [], "raw": []}
        lat = {"yuanrong": [], "raw": []}
        tput = {"yuanrong": [], "raw": []}
        warm = {
            "yuanrong": (lambda i: yr.get(warm_yr.invoke(i)), warm_yr.invoke, yr.get),
            "raw": (lambda i: ray.get(warm_raw.remote(i)), warm_raw.remote, ray.get),
        }
        for r in range(rounds):
            order = ["yuanrong", "raw"] if r % 2 == 0 else ["raw", "yuanrong"]
            for side in order:
                cold[side].append(first_call_ms(side, f"r{r}"))
            # Let the cold instance start, serve nothing and be released: no background work in
            # the warm measurements.
            time.sleep(COLD_IDLE_TIMEOUT_S + 1.5)
            for side in order:
                sync, submit, get_all = warm[side]
                lat[side].append(percentile(latency_ms(sync, n_lat), 0.5))
                # Uncounted first: after the pause Ray has stopped idle workers (its idle-worker
                # timeout is 1 s), and a burst that restarts them measures process starts.
                throughput(submit, get_all, n_tput)
                tput[side].append(throughput(submit, get_all, n_tput))

        def row(metric, unit, values, target, better):
            y, w = median(values["yuanrong"]), median(values["raw"])
            return {"metric": metric, "unit": unit, "yuanrong": y, "raw": w, "ratio": y / w, "target": target,
                    "better": better, "rounds_yuanrong": values["yuanrong"], "rounds_raw": values["raw"]}

        cold_row = row("function cold start p50", "ms", cold, 10.0, "lower")
        # The cold-start target is absolute (<= 10 ms for yuanrong's first call), not a ratio.
        cold_row["target_applies_to"] = "yuanrong"
        rows = [
            cold_row,
            row("pooled function: sync latency p50", "ms", lat, 0.6, "lower"),
            row("pooled function: async throughput", "call/s", tput, 1.5, "higher"),
        ]
        printable = [dict(r, ratio=r["yuanrong"]) if r.get("target_applies_to") else r for r in rows]
        print_table(printable, title=f"function instances: {rounds} alternating rounds, {n_lat} sync calls and "
                                     f"{n_tput} async calls per round and path (median round); the cold-start "
                                     f"row's ratio column shows yuanrong's ms against the absolute target")
        path = write_json("coldstart", {"rounds": rounds, "sync_calls": n_lat, "async_calls": n_tput, "rows": rows})
        print(f"\nJSON: {path}")
    finally:
        yr.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
