"""What carrying a trace context costs Ray itself: plain actor calls against the same calls with one
more argument, and against the context carried in the task's name.

A traced yuanrong call sends its W3C ``traceparent`` and the job's trace configuration as one more
keyword argument. Ray serializes every argument of a call separately (a keyword is two: its name and
its value) and the worker deserializes each, so the context costs calls even where no span is made.
This measures that share alone, on plain Ray: four actors (0.5 CPU each, as yuanrong's function
instances), calls spread over them, three sides in alternating rounds (the order turns each round):

- ``plain``: ``actor.call.remote(i)``;
- ``kwarg``: ``actor.call.remote(i, _ctx={...})`` with the carrier a traced call sends;
- ``positional``: ``actor.call.remote(i, {...})``, the same carrier as one positional argument (how a
  traced call reaches a pooled function instance: ``FunctionInstance.call_traced``);
- ``task name``: ``actor.call.options(name=...).remote(i)``, the context (a new span id per call,
  as a real one has) in the task's name, which Ray sends in the task's spec whatever it is, read in
  the worker with ``ray.get_runtime_context().get_task_name()``.

The task name is cheaper, and yuanrong does not use it: Ray labels its ``ray_tasks`` metric with
each task's name, so a name per call makes metrics series per call. The script counts them on the
node's metrics endpoint after the rounds (``ray_tasks`` series whose name holds a traceparent).

``bench/tracing_spans.py`` measures the spans' own cost without Ray; ``bench/invoke.py
--only-tracing`` the whole traced call through a cluster.

Run: ``python bench/carried_context.py [--rounds N] [--calls N]``. Writes bench/results/carried_context.json.
"""

from __future__ import annotations

import argparse
import itertools
import pathlib
import sys
import time
import urllib.request

# Run as a script, bench/ would come first on sys.path, where placement.py and datashare.py shadow
# the packages of the same names: put the project root there instead.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import ray  # noqa: E402

from bench._report import median, print_table, write_json  # noqa: E402
from bench._timing import latency_ms, throughput  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
# What a traced call carries today (tracing.carrier()): the traceparent and the job's configuration.
CARRIER = {"traceparent": TRACEPARENT,
           "yr.trace_config": '{"metrics":null,"trace":{"log_dir":"/tmp/yr-trace","otlp_endpoint":"",'
                              '"sample_ratio":1.0}}'}


class Echo:
    def call(self, x, _ctx=None):
        return x

    def call_named(self, x):
        name = ray.get_runtime_context().get_task_name()
        assert TRACE_ID in name
        return x


def _named_series(port: int) -> int:
    """``ray_tasks`` series on the node's metrics endpoint whose task name holds a traceparent."""
    deadline = time.monotonic() + 15
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        count = sum(1 for line in text.splitlines() if line.startswith("ray_tasks{") and TRACE_ID in line)
        if count or time.monotonic() > deadline:
            return count
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2000, help="async calls per round and side")
    parser.add_argument("--quick", action="store_true", help="few calls, for a smoke run")
    args = parser.parse_args()
    rounds, n_tput, n_lat = (2, 200, 50) if args.quick else (args.rounds, args.calls, 400)

    ray.init(address="local", num_cpus=4, include_dashboard=False, logging_level="ERROR",
             _system_config={"metrics_report_interval_ms": 1000})
    try:
        actors = [ray.remote(Echo).options(num_cpus=0.5, max_concurrency=1).remote() for _ in range(4)]
        plain = [a.call.remote for a in actors]
        span_ids = itertools.count(1)
        sides = {
            "plain": lambda i: plain[i % 4](i),
            "kwarg": lambda i: plain[i % 4](i, _ctx=CARRIER),
            "positional": lambda i: plain[i % 4](i, CARRIER),
            "task name": lambda i: actors[i % 4].call_named.options(
                name=f"echo 00-{TRACE_ID}-{next(span_ids):016x}-01").remote(i),
        }
        tput: dict[str, list[float]] = {s: [] for s in sides}
        lat: dict[str, list[float]] = {s: [] for s in sides}
        for side in sides.values():  # warm up every path
            throughput(side, ray.get, n_tput)
        for r in range(rounds):
            order = list(sides)[r % len(sides):] + list(sides)[:r % len(sides)]
            for s in order:
                tput[s].append(throughput(sides[s], ray.get, n_tput))
                lat[s].append(median(latency_ms(lambda i, s=s: ray.get(sides[s](i)), n_lat)))
        series = _named_series(ray._private.worker.global_worker.node.metrics_export_port)
    finally:
        ray.shutdown()

    rows = []
    base_t, base_l = median(tput["plain"]), median(lat["plain"])
    for s in ("kwarg", "positional", "task name"):
        t, lt = median(tput[s]), median(lat[s])
        rows.append({"metric": f"context as {s}: async throughput", "unit": "call/s", "yuanrong": t,
                     "raw": base_t, "ratio": t / base_t, "target": 0.90, "better": "higher"})
        rows.append({"metric": f"context as {s}: sync latency p50", "unit": "ms", "yuanrong": lt,
                     "raw": base_l, "ratio": lt / base_l, "target": 1.10, "better": "lower"})
    print_table(rows, title=f"carrying a trace context on plain Ray: {rounds} rotating rounds, {n_tput} async "
                            f"and {n_lat} sync calls per round and side (median round); targets: tracing's whole budget")
    print(f"\nnamed calls: {next(span_ids) - 1}; ray_tasks series whose task name holds a traceparent: {series}")
    path = write_json("carried_context", {"rounds": rounds, "async_calls": n_tput, "sync_calls": n_lat, "rows": rows,
                                          "rounds_calls_per_s": tput, "rounds_p50_ms": lat,
                                          "named_calls": next(span_ids) - 1, "ray_tasks_series_named": series})
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
