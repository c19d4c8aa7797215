"""What carrying a trace context costs Ray itself: plain actor calls against the same calls with one
more argument, and against the context carried in the task's name.

A traced yuanrong call sends its W3C ``traceparent`` and the job's trace configuration as one more
keyword argument. Ray serializes every argument of a call separately (a keyword is two: its name and
its value) and the worker deserializes each, so the context costs calls even where no span is made.
This measures that share alone, on plain Ray: four actors (0.5 CPU each, as yuanrong's function
instances), calls spread over them, three sides in alternating rounds (the order turns each round):

- ``plain``: ``actor.call.remote(i)``;
- ``kwarg``: ``actor.call.remote(i, _ctx={...})`` with the carrier a traced call sends;
- ``task name``: ``actor.call.options(name=...).remote(i)``, the context in the task's name, which
  Ray sends in the task's spec whatever it is, read in the worker with
  ``ray.get_runtime_context().get_task_name()``.

``bench/tracing_spans.py`` measures the spans' own cost without Ray; ``bench/invoke.py
--only-tracing`` the whole traced call through a cluster.

Run: ``python bench/carried_context.py [--rounds N] [--calls N]``. Writes bench/results/carried_context.json.
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

from bench._report import median, print_table, write_json  # noqa: E402
from bench._timing import latency_ms, throughput  # noqa: E402

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# What a traced call carries today (tracing.carrier()): the traceparent and the job's configuration.
CARRIER = {"traceparent": TRACEPARENT,
           "yr.trace_config": '{"metrics":null,"trace":{"log_dir":"/tmp/yr-trace","otlp_endpoint":"",'
                              '"sample_ratio":1.0}}'}


class Echo:
    def call(self, x, _ctx=None):
        return x

    def call_named(self, x):
        name = ray.get_runtime_context().get_task_name()
        assert TRACEPARENT in name
        return x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2000, help="async calls per round and side")
    parser.add_argument("--quick", action="store_true", help="few calls, for a smoke run")
    args = parser.parse_args()
    rounds, n_tput, n_lat = (2, 200, 50) if args.quick else (args.rounds, args.calls, 400)

    ray.init(address="local", num_cpus=4, include_dashboard=False, logging_level="ERROR")
    try:
        actors = [ray.remote(Echo).options(num_cpus=0.5, max_concurrency=1).remote() for _ in range(4)]
        plain = [a.call.remote for a in actors]
        name = f"echo {TRACEPARENT}"
        sides = {
            "plain": lambda i: plain[i % 4](i),
            "kwarg": lambda i: plain[i % 4](i, _ctx=CARRIER),
            "task name": lambda i: actors[i % 4].call_named.options(name=name).remote(i),
        }
        tput: dict[str, list[float]] = {s: [] for s in sides}
        lat: dict[str, list[float]] = {s: [] for s in sides}
        for side in sides.values():  # warm up every path
            throughput(side, ray.get, n_tput)
        for r in range(rounds):
            order = list(sides)[r % 3:] + list(sides)[:r % 3]
            for s in order:
                tput[s].append(throughput(sides[s], ray.get, n_tput))
                lat[s].append(median(latency_ms(lambda i, s=s: ray.get(sides[s](i)), n_lat)))
    finally:
        ray.shutdown()

    rows = []
    base_t, base_l = median(tput["plain"]), median(lat["plain"])
    for s in ("kwarg", "task name"):
        t, lt = median(tput[s]), median(lat[s])
        rows.append({"metric": f"context as {s}: async throughput", "unit": "call/s", "yuanrong": t,
                     "raw": base_t, "ratio": t / base_t, "target": 0.90, "better": "higher"})
        rows.append({"metric": f"context as {s}: sync latency p50", "unit": "ms", "yuanrong": lt,
                     "raw": base_l, "ratio": lt / base_l, "target": 1.10, "better": "lower"})
    print_table(rows, title=f"carrying a trace context on plain Ray: {rounds} rotating rounds, {n_tput} async "
                            f"and {n_lat} sync calls per round and side (median round); targets: tracing's whole budget")
    path = write_json("carried_context", {"rounds": rounds, "async_calls": n_tput, "sync_calls": n_lat, "rows": rows,
                                          "rounds_calls_per_s": tput, "rounds_p50_ms": lat})
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
