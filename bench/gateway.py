"""The FaaS gateway against a plain Serve no-op, over HTTP with keep-alive clients (loopback only).

Three paths answer the same no-op, in alternating order each round, after a warm-up:

* ``gateway``: ``POST /serverless/v1/functions/noop/invocations`` → the gateway replica → the
  function's pooled instance (yuanrong's default path) → back;
* ``gateway, Ray task per call``: the same with ``function_instances=False`` (each request a Ray
  task, as the gateway worked before function instances);
* ``raw``: a plain Serve deployment whose handler returns the same JSON, the strongest plain path.
* ``forward``: a plain Serve deployment that awaits a no-op method of a plain Ray actor (same
  resources and concurrency as the function's instance) and returns the same JSON: the strongest
  plain path that, like a FaaS gateway, runs the function in another process than the HTTP handler.

Each round sends 1-client requests (latency p50) and 8-client requests (latency p99). Rows compare
the gateway with the plain Serve no-op: targets ``gateway p50 (1 client)`` ≤ 1.5× and ``gateway p99
(8 clients)`` ≤ 3×; and with the plain forward (≤ 1.1×), which tells the gateway's own cost apart
from the cost of the extra process hop (on a 2-core host, one more process on the request's path
costs about as much as the whole no-op request).

Run: ``python bench/gateway.py`` (``--quick`` for a short run). Writes ``bench/results/gateway.json``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

# Run as a script, bench/ would come first on sys.path, where placement.py and datashare.py shadow
# the packages of the same names: put the project root there instead.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

from bench._http import http_load  # noqa: E402
from bench._report import percentile, print_table, write_json  # noqa: E402

ROUTE = "/serverless/v1/functions/{}/invocations"


async def plain_noop(request):
    """What the plain Serve deployment answers: the gateway's JSON for a ``None`` result."""
    return {"result": None}


class NoopActor:
    def noop(self):
        return None


class PlainForward:
    """A plain Serve handler that runs the no-op in a plain Ray actor and answers its result."""

    def __init__(self, actor) -> None:
        self.actor = actor

    async def __call__(self, request):
        await request.body()
        return {"result": await self.actor.noop.remote()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests, for a smoke run")
    args = parser.parse_args(argv)
    from ray import serve

    import yuanrong as yr
    from yuanrong.endpoint import serve_functions, shutdown, start

    rounds, single, multi = (2, 100, 400) if args.quick else (5, 300, 1600)
    yr.init(yr.Config(num_cpus=4))
    try:
        address = start()
        base = address.http_url

        @yr.invoke(invoke_options=yr.InvokeOptions(cpu=250, memory=0, concurrency=8, min_instances=1))
        def noop():
            return None

        tasks = noop.options(function_instances=False)
        serve_functions({"noop": noop, "noop_task": tasks}, max_ongoing_requests=64)
        plain = serve.deployment(plain_noop, name="plain_noop", max_ongoing_requests=64,
                                 ray_actor_options={"num_cpus": 0.25})
        serve.run(plain.bind(), name="plain_noop", route_prefix="/plain-noop")
        import ray

        actor = ray.remote(NoopActor).options(num_cpus=0.25, max_concurrency=8).remote()
        forward = serve.deployment(PlainForward, name="plain_forward", max_ongoing_requests=64,
                                   ray_actor_options={"num_cpus": 0.25})
        serve.run(forward.bind(actor), name="plain_forward", route_prefix="/plain-forward")
        paths = {"gateway": ROUTE.format("noop"), "gateway_task": ROUTE.format("noop_task"),
                 "raw": "/plain-noop", "forward": "/plain-forward"}
        body = {"args": [], "kwargs": {}}
        for path in paths.values():       # warm-up: connections, workers, the function's instance
            http_load(base, path, requests=200, clients=8, body=body)
        lat1 = {side: [] for side in paths}
        lat8 = {side: [] for side in paths}
        for r in range(rounds):
            order = list(paths.items())
            order = order[r % len(order):] + order[:r % len(order)]
            for side, path in order:
                lat1[side].extend(http_load(base, path, requests=single, clients=1, body=body)["latencies"])
                lat8[side].extend(http_load(base, path, requests=multi, clients=8, body=body)["latencies"])
            print(f"  round {r + 1}/{rounds} done", flush=True)
    finally:
        shutdown()
        yr.finalize()
    figures = {side: {"p50_1_ms": percentile(lat1[side], 0.5) * 1e3, "p99_1_ms": percentile(lat1[side], 0.99) * 1e3,
                      "p50_8_ms": percentile(lat8[side], 0.5) * 1e3, "p99_8_ms": percentile(lat8[side], 0.99) * 1e3,
                      "max_8_ms": max(lat8[side]) * 1e3, "requests": len(lat1[side]) + len(lat8[side])}
               for side in paths}
    raw = figures["raw"]
    rows = []
    for side, label in (("gateway", "gateway"), ("gateway_task", "gateway, Ray task per call")):
        f = figures[side]
        rows += [
            {"metric": f"{label} p50 (1 client)", "unit": "ms", "yuanrong": f["p50_1_ms"], "raw": raw["p50_1_ms"],
             "ratio": f["p50_1_ms"] / raw["p50_1_ms"], "target": 1.5, "better": "lower"},
            {"metric": f"{label} p99 (8 clients)", "unit": "ms", "yuanrong": f["p99_8_ms"], "raw": raw["p99_8_ms"],
             "ratio": f["p99_8_ms"] / raw["p99_8_ms"], "target": 3.0, "better": "lower"},
        ]
    fwd, gw = figures["forward"], figures["gateway"]
    rows += [
        {"metric": "gateway vs plain forward p50 (1 client)", "unit": "ms", "yuanrong": gw["p50_1_ms"],
         "raw": fwd["p50_1_ms"], "ratio": gw["p50_1_ms"] / fwd["p50_1_ms"], "target": 1.1, "better": "lower"},
        {"metric": "gateway vs plain forward p99 (8 clients)", "unit": "ms", "yuanrong": gw["p99_8_ms"],
         "raw": fwd["p99_8_ms"], "ratio": gw["p99_8_ms"] / fwd["p99_8_ms"], "target": 1.1, "better": "lower"},
    ]
    print_table(rows, title="FaaS gateway no-op vs plain Serve no-op, keep-alive HTTP clients (raw = plain Serve, "
                            "or the plain forward to an actor where the metric says so)")
    path = write_json("gateway", {"command": "python bench/gateway.py" + (" --quick" if args.quick else ""),
                                  "rounds": rounds, "single_client_requests": single,
                                  "eight_client_requests": multi, "figures": figures, "rows": rows})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
