"""Serve benchmarks on a local multi-pool cluster (loopback traffic only, bounded counts).

(a) A yuanrong endpoint against a plain Serve deployment of the same handler, both in the cloud
    pool, over HTTP through Serve's proxy: requests/s and p50/p99 latency, in alternating rounds.
(b) A heavy-tailed mix of generation requests (Pareto token counts) replayed open-loop at ~80% of
    the replicas' capacity against Serve's default router and yuanrong's OutstandingWorkRouter:
    p50/p99 latency and throughput on the same seeded arrival sequence.

Run: ``python bench/serve.py`` (``--quick`` for a short run). Writes ``bench/results/serve.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import random
import sys
import time

# Run as a script, bench/ would come first on sys.path, where placement.py and datashare.py shadow
# the packages of the same names: put the project root there instead.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

from bench._http import http_load as _http_load  # noqa: E402
from bench._report import percentile, print_table, write_json  # noqa: E402


async def echo(request):
    """The handler both sides of (a) serve."""
    return {"ok": True}


def bench_endpoint_overhead(base: str, *, requests: int, clients: int, rounds: int) -> dict:
    from ray import serve

    import yuanrong as yr
    from yuanrong.endpoint import endpoint, run

    opts = yr.InvokeOptions(cpu=250, memory=0)
    run(endpoint(echo, name="yr_echo", route="/yr-echo", pool="cloud", invoke_options=opts,
                 max_ongoing_requests=64))
    plain = serve.deployment(echo, name="plain_echo", max_ongoing_requests=64,
                             ray_actor_options={"num_cpus": 0.25, "label_selector": {"yr.io/pool": "cloud"}})
    serve.run(plain.bind(), name="plain_echo", route_prefix="/plain-echo")
    _http_load(base, "/yr-echo", requests=200, clients=clients)      # warm-up
    _http_load(base, "/plain-echo", requests=200, clients=clients)
    sides = {"yuanrong": {"rps": [], "lat": []}, "raw": {"rps": [], "lat": []}}
    for r in range(rounds):
        order = [("yuanrong", "/yr-echo"), ("raw", "/plain-echo")]
        for side, path in (order if r % 2 == 0 else order[::-1]):
            got = _http_load(base, path, requests=requests, clients=clients)
            sides[side]["rps"].append(got["rps"])
            sides[side]["lat"].extend(got["latencies"])
        print(f"  (a) round {r + 1}/{rounds} done", flush=True)
    serve.delete("yr_echo")
    serve.delete("plain_echo")
    out = {}
    for side, d in sides.items():
        out[side] = {"rps": sum(d["rps"]) / len(d["rps"]), "p50_ms": percentile(d["lat"], 0.5) * 1e3,
                     "p99_ms": percentile(d["lat"], 0.99) * 1e3, "requests": len(d["lat"])}
    return out


def heavy_tailed_tokens(n: int, *, seed: int, alpha: float, minimum: int, cap: int) -> list[int]:
    rng = random.Random(seed)
    return [min(cap, int(minimum * rng.paretovariate(alpha))) for _ in range(n)]


async def _replay(handle, tokens: list[int], gaps: list[float]) -> dict:
    async def one(n: int) -> float:
        t0 = time.perf_counter()
        await handle.complete.remote(max_tokens=n)
        return time.perf_counter() - t0

    tasks = []
    started = time.perf_counter()
    next_at = started
    for n, gap in zip(tokens, gaps):
        next_at += gap
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(n)))
    latencies = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return {"p50_ms": percentile(latencies, 0.5) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3,
            "mean_ms": sum(latencies) / len(latencies) * 1e3, "throughput_rps": len(latencies) / elapsed,
            "requests": len(latencies)}


def bench_router(*, requests: int, token_time_s: float, load: float, replicas: int, seed: int) -> dict:
    from ray import serve

    from apps.inference.service import token_model_endpoint
    from yuanrong.endpoint import run

    tokens = heavy_tailed_tokens(requests, seed=seed, alpha=1.3, minimum=4, cap=600)
    mean_service = sum(tokens) / len(tokens) * token_time_s
    rate = load * replicas / mean_service
    rng = random.Random(seed + 1)
    gaps = [rng.expovariate(rate) for _ in tokens]
    results = {}
    for label, use_router in (("serve_default", False), ("outstanding_work", True)):
        name = f"bench-{label}"
        ep = token_model_endpoint(pool="cloud", num_replicas=replicas, router=use_router, name=name)
        handle = run(ep.bind(token_time_s), name=name, route=None)
        for _ in range(4 * replicas):  # warm-up: every replica answered once
            handle.complete.remote(max_tokens=1).result(timeout_s=120)
        print(f"  (b) replaying {requests} requests at {rate:.1f} req/s against {label}", flush=True)
        results[label] = asyncio.run(_replay(handle, tokens, gaps))
        serve.delete(name)
    return {"tokens": {"mean": sum(tokens) / len(tokens), "p50": percentile(tokens, 0.5),
                       "p99": percentile(tokens, 0.99), "max": max(tokens)},
            "arrival_rate_rps": rate, "load": load, "replicas": replicas, "token_time_s": token_time_s,
            **results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    args = parser.parse_args(argv)
    import ray

    import yuanrong as yr
    from yuanrong.endpoint import shutdown, start
    from yuanrong.local_cluster import LocalCluster

    a_requests, rounds, b_requests = (300, 2, 150) if args.quick else (1500, 3, 800)
    with LocalCluster() as cluster:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        yr.init(yr.Config(server_address=cluster.address))
        try:
            address = start()
            print(f"serve at {address.http_url}", flush=True)
            overhead = bench_endpoint_overhead(address.http_url, requests=a_requests, clients=8, rounds=rounds)
            router = bench_router(requests=b_requests, token_time_s=0.004, load=0.8, replicas=2, seed=11)
        finally:
            shutdown()
            yr.finalize()
    y, r = overhead["yuanrong"], overhead["raw"]
    print_table([
        {"metric": "HTTP requests/s", "unit": "req/s", "yuanrong": y["rps"], "raw": r["rps"],
         "ratio": y["rps"] / r["rps"], "target": 0.95, "better": "higher"},
        {"metric": "HTTP p50 latency", "unit": "ms", "yuanrong": y["p50_ms"], "raw": r["p50_ms"],
         "ratio": y["p50_ms"] / r["p50_ms"], "target": 1.05, "better": "lower"},
        {"metric": "HTTP p99 latency", "unit": "ms", "yuanrong": y["p99_ms"], "raw": r["p99_ms"],
         "ratio": y["p99_ms"] / r["p99_ms"], "target": 1.05, "better": "lower"},
    ], title="(a) yuanrong endpoint vs plain Serve deployment, same handler (raw = plain Serve)")
    d, w = router["serve_default"], router["outstanding_work"]
    print(f"\n(b) heavy-tailed generation mix at {router['load']:.0%} load, {router['replicas']} replicas, "
          f"tokens mean {router['tokens']['mean']:.1f} p99 {router['tokens']['p99']:.0f} max {router['tokens']['max']}")
    print(f"{'router':<22}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    for label, res in (("Serve default", d), ("OutstandingWorkRouter", w)):
        print(f"{label:<22}{res['p50_ms']:>10.1f}{res['p99_ms']:>10.1f}{res['throughput_rps']:>10.2f}")
    reduction = 1 - w["p99_ms"] / d["p99_ms"]
    print(f"p99 reduction: {reduction:.1%} (target >= 30%: {'ok' if reduction >= 0.30 else 'MISSED'})")
    path = write_json("serve", {"command": "python bench/serve.py" + (" --quick" if args.quick else ""),
                                "endpoint_vs_plain_serve": overhead, "router": router,
                                "p99_reduction": reduction})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
