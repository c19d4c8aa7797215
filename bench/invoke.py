"""Invoke overhead: yuanrong's call path against raw ``ray.remote``, in one run on one cluster.

Measures stateless calls (sync round-trip latency p50/p99, async throughput) and instance method
calls (the same two) through ``yr.invoke`` / ``@yr.instance`` and through ``ray.remote`` with the
same resources (0.5 CPU, 500 MB: yuanrong's defaults). Stateless calls are measured twice: on the
Ray task path (``function_instances=False``, against a raw Ray task: the overhead of yuanrong's
call path) and pooled in function instances (the default), against a raw Ray task and against the
strongest plain-Ray path for repeated calls, a raw actor per function with the same concurrency. Each measurement alternates between the two
paths over several rounds and keeps the median round, so drift on a busy machine hits both alike.

Tracing rows compare, on the pooled function path: ``tracing off`` - the call path as it is
(which checks whether the job traces) against the dispatch it runs without that check (today's path
before tracing existed); ``tracing on`` - a job with ``enable_trace=True`` (spans to a log file)
against the same job's calls made with tracing switched off in the driver (same pools, same
workers), so the difference is the spans, the context each call carries and their export.

Run: ``python bench/invoke.py`` (``--quick`` for a short smoke run, ``--only-tracing`` for the
tracing rows alone, written to bench/results/invoke_tracing.json). Writes bench/results/invoke.json.
``--fixed-pool N`` runs the tracing rows on a pool of exactly N instances (``min_instances =
max_instances = N``): the default pool grows, and releases idle instances while others wait for
resources, during the rounds, and each instance start (a process start, about a second of one of
two cores here) lands in whichever side is being measured; a fixed pool leaves only the call path
and its spans to compare (written to bench/results/invoke_tracing_fixed_pool.json).
``--sampling-ratio R`` gives the traced job that ``samplingRatio``: with 0 no span is recorded or
exported, so the tracing rows measure the rest, the context made and carried on every call (written
to a file named after the ratio, e.g. bench/results/invoke_tracing_fixed_pool_sampling_0.json).
``--rounds N`` and ``--async-calls N`` set the rounds and the calls per async round: on a busy 2-core
host one round of 2,000 calls varies by ±20 %, so a tight ratio needs more of both. The JSON keeps
each round's figures and each round's ratio of the two sides (``round_ratios``), for the spread.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

# Run as a script, bench/ would come first on sys.path, where placement.py and datashare.py shadow
# the packages of the same names: put the project root there instead.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import ray  # noqa: E402

import yuanrong as yr  # noqa: E402
from yuanrong._private import tracing  # noqa: E402
from bench._report import median, percentile, print_table, write_json  # noqa: E402
from bench._timing import latency_ms, throughput  # noqa: E402

RAW_OPTS = {"num_cpus": 0.5, "memory": 500 * 1024 * 1024, "max_retries": 0}


def echo(x):
    return x


class Echo:
    def echo(self, x):
        return x


def _with_tracing(flag: bool, call):
    """``call`` with the driver's tracing switched to ``flag`` (same pools and workers either way)."""
    def run(i):
        tracing.enabled = flag
        return call(i)
    return run


def _measure(kind, sides, targets, rounds, n_lat, n_tput, rows, record) -> None:
    """Alternate the two sides over ``rounds``; add the median round's rows for ``kind``."""
    lat = {side: [] for side in sides}
    tput = {side: [] for side in sides}
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(list(sides)))
        for side in order:
            sync, submit, get_all = sides[side]
            lat[side].append(latency_ms(sync, n_lat))
            tput[side].append(throughput(submit, get_all, n_tput))
    summary = {}
    for side in sides:
        p50 = median([percentile(x, 0.50) for x in lat[side]])
        p99 = median([percentile(x, 0.99) for x in lat[side]])
        # Each round's figures too: on a shared host the spread says how far one median can be trusted.
        summary[side] = {"p50_ms": p50, "p99_ms": p99, "calls_per_s": median(tput[side]),
                         "rounds_p50_ms": [percentile(x, 0.50) for x in lat[side]], "rounds_calls_per_s": tput[side]}
    # Each round's ratio of the two sides, measured next to each other: drift between rounds cancels.
    summary["round_ratios"] = {
        "sync_p50": [percentile(y, 0.50) / percentile(w, 0.50) for y, w in zip(lat["yuanrong"], lat["raw"])],
        "async_throughput": [y / w for y, w in zip(tput["yuanrong"], tput["raw"])]}
    record[kind] = summary
    y, w = summary["yuanrong"], summary["raw"]
    lat_target, tput_target = targets
    rows += [
        {"metric": f"{kind}: sync latency p50", "unit": "ms", "yuanrong": y["p50_ms"], "raw": w["p50_ms"],
         "ratio": y["p50_ms"] / w["p50_ms"], "target": lat_target, "better": "lower"},
        {"metric": f"{kind}: sync latency p99", "unit": "ms", "yuanrong": y["p99_ms"], "raw": w["p99_ms"],
         "ratio": y["p99_ms"] / w["p99_ms"], "target": 1.05 if lat_target < 1.05 else lat_target, "better": "lower"},
        {"metric": f"{kind}: async throughput", "unit": "call/s", "yuanrong": y["calls_per_s"],
         "raw": w["calls_per_s"], "ratio": y["calls_per_s"] / w["calls_per_s"], "target": tput_target,
         "better": "higher"},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few calls, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--async-calls", type=int, default=None, metavar="N",
                        help="calls per round of the async throughput rows (default 2000): more calls, less "
                             "noise per round")
    parser.add_argument("--only-tracing", action="store_true", help="measure the tracing rows only")
    parser.add_argument("--sampling-ratio", type=float, default=None, metavar="R",
                        help="the traced job's samplingRatio (default: every call sampled); 0 measures carrying "
                             "the context alone, no span recorded or exported")
    parser.add_argument("--fixed-pool", type=int, default=0, metavar="N",
                        help="tracing rows on a pool of exactly N function instances (default: the default pool)")
    args = parser.parse_args()
    if args.sampling_ratio is not None and not 0 <= args.sampling_ratio <= 1:
        parser.error(f"--sampling-ratio {args.sampling_ratio:g}: give a share of calls to trace, from 0 to 1")
    fixed = {"min_instances": args.fixed_pool, "max_instances": args.fixed_pool} if args.fixed_pool else {}
    n_lat, n_tput, rounds = (50, 200, 2) if args.quick else (400, 2000, 9)
    if args.async_calls is not None:
        if args.async_calls < 1:
            parser.error(f"--async-calls {args.async_calls}: give at least 1 call per round")
        n_tput = args.async_calls
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give at least 1 round")
    rounds = args.rounds or rounds

    yr.init(yr.Config(num_cpus=4))
    try:
        yr_task_fn = yr.invoke(echo).options(function_instances=False)
        yr_fn = yr.invoke(echo)
        raw_fn = ray.remote(**RAW_OPTS)(echo)
        raw_fn_actor = ray.remote(Echo).options(num_cpus=0.5, memory=500 * 1024 * 1024, max_concurrency=1).remote()
        yr_inst = yr.instance(Echo).invoke()
        raw_inst = ray.remote(Echo).options(num_cpus=0.5, memory=500 * 1024 * 1024, max_concurrency=1).remote()

        paths = {
            "function": {
                "yuanrong": (lambda i: yr.get(yr_task_fn.invoke(i)), yr_task_fn.invoke, yr.get),
                "raw": (lambda i: ray.get(raw_fn.remote(i)), raw_fn.remote, ray.get),
            },
            "pooled function": {
                "yuanrong": (lambda i: yr.get(yr_fn.invoke(i)), yr_fn.invoke, yr.get),
                "raw": (lambda i: ray.get(raw_fn.remote(i)), raw_fn.remote, ray.get),
            },
            "pooled function vs raw actor": {
                "yuanrong": (lambda i: yr.get(yr_fn.invoke(i)), yr_fn.invoke, yr.get),
                "raw": (lambda i: ray.get(raw_fn_actor.echo.remote(i)), raw_fn_actor.echo.remote, ray.get),
            },
            "instance method": {
                "yuanrong": (lambda i: yr.get(yr_inst.echo.invoke(i)), yr_inst.echo.invoke, yr.get),
                "raw": (lambda i: ray.get(raw_inst.echo.remote(i)), raw_inst.echo.remote, ray.get),
            },
        }
        # Warm up workers and code paths on both sides: the raylet keeps starting workers for a
        # while after the first burst of 0.5-CPU tasks, and a round measured during that is slow
        # whichever side it belongs to.
        if args.only_tracing:
            paths = {}
        for _ in range(2):
            for kind in paths.values():
                for sync, submit, get_all in kind.values():
                    latency_ms(sync, 30)
                    throughput(submit, get_all, n_tput)

        rows, record = [], {}
        for kind, sides in paths.items():
            # Pooled calls against a Ray task are expected to win; against an actor, to cost no more.
            targets = (0.6, 1.5) if kind == "pooled function" else (1.05, 0.95)
            _measure(kind, sides, targets, rounds, n_lat, n_tput, rows, record)

        # Tracing off: the call path as it is, against its dispatch without the tracing check.
        off_fn = yr_fn.options(**fixed) if fixed else yr_fn
        off = {"yuanrong": (lambda i: yr.get(off_fn.invoke(i)), off_fn.invoke, yr.get),
               "raw": (lambda i: yr.get(off_fn._dispatch((i,), {})), lambda i: off_fn._dispatch((i,), {}), yr.get)}
        for _ in range(2):
            for sync, submit, get_all in off.values():
                latency_ms(sync, 30)
                throughput(submit, get_all, n_tput)
        _measure("tracing off", off, (1.02, 0.98), rounds, n_lat, n_tput, rows, record)
        yr.finalize()

        # Tracing on: a traced job's calls, against the same job's calls with tracing switched off.
        with tempfile.TemporaryDirectory(prefix="yr-bench-trace-") as log_dir:
            sampling = {} if args.sampling_ratio is None else {"samplingRatio": args.sampling_ratio}
            yr.init(yr.Config(num_cpus=4, enable_trace=True,
                              runtime_trace_config={"logFileExporter": {"enable": True, "dir": log_dir}, **sampling}))
            traced_fn = yr.invoke(echo).options(**fixed) if fixed else yr.invoke(echo)
            switch = {"yuanrong": True, "raw": False}
            on = {side: (_with_tracing(flag, lambda i: yr.get(traced_fn.invoke(i))),
                         _with_tracing(flag, traced_fn.invoke), yr.get) for side, flag in switch.items()}
            for _ in range(2):
                for sync, submit, get_all in on.values():
                    latency_ms(sync, 30)
                    throughput(submit, get_all, n_tput)
            _measure("tracing on", on, (1.10, 0.90), rounds, n_lat, n_tput, rows, record)
            tracing.enabled = True  # as the job configured it, for finalize
        print_table(rows, title=f"invoke overhead: {rounds} alternating rounds, {n_lat} sync calls and "
                                f"{n_tput} async calls per round and path (median round)")
        # The tracing rows alone go to their own file, so they do not replace a full run's results.
        name = ("invoke_tracing" + ("_fixed_pool" if fixed else "")
                + (f"_sampling_{args.sampling_ratio:g}" if args.sampling_ratio is not None else "")) \
            if args.only_tracing else "invoke"
        path = write_json(name, {"fixed_pool": args.fixed_pool, "sampling_ratio": args.sampling_ratio,
                                 "rounds": rounds, "sync_calls": n_lat, "async_calls": n_tput, "results": record,
                                 "rows": rows})
        print(f"\nJSON: {path}")
    finally:
        yr.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
