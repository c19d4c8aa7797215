"""The request routers compared live, on real Ray Serve replicas that decode several streams at once.

Two Serve deployments of the same replica class run side by side on a local cluster; they differ
only in the router: Serve's default (power of two choices on requests in flight) and yuanrong's
``OutstandingWorkRouter`` with ``concurrency=<batch>`` (the batch-aware ranking,
``pick_batch_aware``). Requests go through a ``DeploymentHandle`` in this process, so both routers
run here with the same view.

Replicas (``Decoder``) imitate continuous batching: up to ``--batch`` streams decode together, one
token per stream per step, a step taking ``step_ms + per_stream_ms × active streams`` (a fuller
batch makes every stream slower); a replica accepts up to ``2 × batch`` requests
(``max_ongoing_requests``) and queues those beyond its batch in arrival order, as a serving engine
does. Steps are timed sleeps, so the machine's two cores are not the bottleneck.

Each seed draws one open-loop arrival sequence (Poisson at ``--load`` of the replicas' full-batch
token rate), output lengths Pareto(α 1.3, 4..600 tokens) as in ``bench/router_sim.py``, and a
*predicted* length per request (true length × log-normal error, σ ``--error``): the router sees
``predicted_tokens``, the replica decodes ``tokens``. Both routers replay the same sequence per
seed, the order alternating by seed, after an untimed warm-up. A request's latency runs from its
scheduled arrival to its response (so a late send counts against the router that caused it).
p50 and p99 per seed; mean ± 95 % CI (t) over seeds, and the same for the per-seed ratio
yuanrong ÷ Serve default, paired by seed.

Run: ``python bench/router_live.py`` (5 seeds × 400 requests at 90 % load, about 4 minutes on 2
cores); ``--seeds 1 --requests 100`` for a quick look. Writes ``bench/results/router_live.json``
(``--name`` picks another file).
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import random
import sys
from typing import Any

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

from bench._report import percentile, print_table, row, write_json  # noqa: E402
from placement.sim.sweep import mean_ci  # noqa: E402

ROUTERS = ("serve_default", "yuanrong")


class Decoder:
    """A replica that decodes up to ``batch`` streams per step (the Serve deployment's class)."""

    def __init__(self, batch: int, step_ms: float, per_stream_ms: float) -> None:
        import collections

        self._batch, self._step_s, self._per_stream_s = batch, step_ms / 1e3, per_stream_ms / 1e3
        self._active: list[list[Any]] = []  # [tokens left, future, enqueued at]
        self._waiting: collections.deque[list[Any]] = collections.deque()
        self._loop: asyncio.Task | None = None

    async def generate(self, *, tokens: int, predicted_tokens: float) -> float:
        """Decode ``tokens`` tokens; ``predicted_tokens`` is for the router only. Returns the ms the
        request waited in this replica for a batch slot."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiting.append([max(1, int(tokens)), fut, loop.time()])
        if self._loop is None or self._loop.done():
            self._loop = asyncio.ensure_future(self._decode())
        return await fut

    async def _decode(self) -> None:
        while self._active or self._waiting:
            while self._waiting and len(self._active) < self._batch:
                stream = self._waiting.popleft()
                stream[2] = (asyncio.get_running_loop().time() - stream[2]) * 1e3  # now: ms waited
                self._active.append(stream)
            await asyncio.sleep(self._step_s + self._per_stream_s * len(self._active))
            for stream in self._active:
                stream[0] -= 1
                if stream[0] <= 0 and not stream[1].done():
                    stream[1].set_result(stream[2])
            self._active = [s for s in self._active if s[0] > 0]


def workload(seed: int, *, requests: int, rate: float, error: float) -> list[tuple[float, int, float]]:
    """(arrival s, true tokens, predicted tokens) per request; the same for every router of a seed."""
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(requests):
        t += rng.expovariate(rate)
        n = min(600, int(4 * rng.paretovariate(1.3)))
        out.append((t, n, n * rng.lognormvariate(0.0, error)))
    return out


async def replay(handle: Any, trace: list[tuple[float, int, float]]) -> list[tuple[float, float]]:
    """Send the trace open-loop; per request, the latency (ms) from its scheduled arrival and the ms it
    waited inside a replica for a batch slot."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one(at: float, n: int, predicted: float) -> tuple[float, float]:
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        waited = await handle.generate.remote(tokens=n, predicted_tokens=predicted)
        return (loop.time() - start - at) * 1e3, waited

    return list(await asyncio.gather(*(one(*r) for r in trace)))


def deploy(*, replicas: int, batch: int, step_ms: float, per_stream_ms: float) -> dict[str, Any]:
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    from yuanrong._private.serve.router import OutstandingWorkRouter

    handles = {}
    for name in ROUTERS:
        opts: dict[str, Any] = {"name": f"decoder-{name}", "num_replicas": replicas,
                                "max_ongoing_requests": 2 * batch, "ray_actor_options": {"num_cpus": 0}}
        if name == "yuanrong":
            opts["request_router_config"] = RequestRouterConfig(
                request_router_class=OutstandingWorkRouter,
                request_router_kwargs={"cost_key": "predicted_tokens", "concurrency": batch})
        app = serve.deployment(Decoder, **opts).bind(batch, step_ms, per_stream_ms)
        handles[name] = serve.run(app, name=f"decoder-{name}", route_prefix=None)
    return handles


def router_in_use(handle: Any) -> str:
    """The router class a handle routes with (read from Serve's internals, for the record only)."""
    try:
        router = handle._router._asyncio_router._request_router
    except AttributeError:
        return "unknown (Serve's internals changed)"
    rate = getattr(router, "_rate", None)
    return type(router).__name__ + (f" (learnt rate {rate:.1f} tokens/s per stream)" if rate else "")


def summarise(per_seed: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in ("p50", "p99", "slot_wait"):
        base = per_seed["serve_default"][q]
        for name in ROUTERS:
            vals = per_seed[name][q]
            m, ci = mean_ci(vals)
            rm, rci = mean_ci([v / b if b else float("nan") for v, b in zip(vals, base)])
            out.setdefault(name, {}).update({f"{q}_ms": m, f"{q}_ci95": ci, f"{q}_ratio": rm,
                                             f"{q}_ratio_ci95": rci, f"{q}_per_seed": vals})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds, each one paired round (5)")
    parser.add_argument("--requests", type=int, default=400, help="requests per seed and router (400)")
    parser.add_argument("--replicas", type=int, default=3, help="replicas per deployment (3)")
    parser.add_argument("--batch", type=int, default=8, help="streams one replica decodes at once (8)")
    parser.add_argument("--step-ms", type=float, default=20.0, help="decode step with no stream (20)")
    parser.add_argument("--per-stream-ms", type=float, default=2.5, help="step time added per stream (2.5)")
    parser.add_argument("--load", type=float, default=0.9, help="offered tokens ÷ full-batch token rate (0.9)")
    parser.add_argument("--error", type=float, default=0.5, help="σ of the log-normal length prediction (0.5)")
    parser.add_argument("--name", default="router_live",
                        help="results file: bench/results/NAME.json (router_live)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if not args.name.replace("_", "").isalnum():
        parser.error(f"--name={args.name!r} must be letters, digits and underscores "
                     "(it names bench/results/NAME.json).")
    for name in ("seeds", "requests", "replicas", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)} must be at least 1.")
    if not 0 < args.load <= 1.5 or args.error < 0 or args.step_ms <= 0 or args.per_stream_ms < 0:
        parser.error("--load must be in (0, 1.5], --error and --per-stream-ms at least 0, --step-ms above 0.")

    import ray
    from ray import serve

    mean_tokens = sum(n for _, n, _ in workload(10_000, requests=20_000, rate=1.0, error=0.0)) / 20_000
    full_step_s = (args.step_ms + args.per_stream_ms * args.batch) / 1e3
    capacity_tok_s = args.replicas * args.batch / full_step_s
    rate = args.load * capacity_tok_s / mean_tokens
    print(f"router_live: {args.replicas} replicas × {args.batch} streams, {capacity_tok_s:.0f} tokens/s at full "
          f"batch; {rate:.1f} req/s ({args.load:.0%}); {args.seeds} seeds × {args.requests} requests", flush=True)
    ray.init(address="local", num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        serve.start(http_options={"location": "NoServer"})
        handles = deploy(replicas=args.replicas, batch=args.batch, step_ms=args.step_ms,
                         per_stream_ms=args.per_stream_ms)
        warm = workload(999, requests=min(100, args.requests), rate=rate, error=args.error)
        for name in ROUTERS:
            asyncio.run(replay(handles[name], warm))
        routers = {name: router_in_use(handles[name]) for name in ROUTERS}
        print("  routers: " + "; ".join(f"{n}: {r}" for n, r in routers.items()), flush=True)
        per_seed: dict[str, dict[str, list[float]]] = {n: {"p50": [], "p99": [], "slot_wait": []} for n in ROUTERS}
        for seed in range(1, args.seeds + 1):
            trace = workload(seed, requests=args.requests, rate=rate, error=args.error)
            for name in (ROUTERS if seed % 2 else ROUTERS[::-1]):
                got = asyncio.run(replay(handles[name], trace))
                lat = [ms for ms, _ in got]
                per_seed[name]["p50"].append(percentile(lat, 0.5))
                per_seed[name]["p99"].append(percentile(lat, 0.99))
                per_seed[name]["slot_wait"].append(sum(w for _, w in got) / len(got))
            print(f"  seed {seed}: " + "; ".join(
                f"{n} p50 {per_seed[n]['p50'][-1]:.0f} p99 {per_seed[n]['p99'][-1]:.0f} ms, waited for a slot "
                f"{per_seed[n]['slot_wait'][-1]:.1f} ms" for n in ROUTERS), flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    summary = summarise(per_seed)
    y, d = summary["yuanrong"], summary["serve_default"]
    rows = []
    for q in ("p50", "p99"):
        r = row(f"{q} latency, batch {args.batch}, load {args.load:g}", "ms", y[f"{q}_ms"], d[f"{q}_ms"], 1.0,
                "lower")
        r.update({"ratio": y[f"{q}_ratio"], "ratio_ci95": y[f"{q}_ratio_ci95"], "yuanrong_ci95": y[f"{q}_ci95"],
                  "raw_ci95": d[f"{q}_ci95"]})
        rows.append(r)
    print_table(rows, title="yuanrong's batch-aware router vs Serve's default (raw), live; ratio = mean of "
                            "per-seed ratios")
    print(f"  mean wait for a batch slot inside a replica: yuanrong {y['slot_wait_ms']:.1f} ± "
          f"{y['slot_wait_ci95']:.1f} ms, Serve default {d['slot_wait_ms']:.1f} ± {d['slot_wait_ci95']:.1f} ms")
    for r in rows:
        print(f"  {r['metric']}: yuanrong {r['yuanrong']:.0f} ± {r['yuanrong_ci95']:.0f} ms, Serve default "
              f"{r['raw']:.0f} ± {r['raw_ci95']:.0f} ms, ratio {r['ratio']:.3f} ± {r['ratio_ci95']:.3f}")
    if not args.no_write:
        config = {k: getattr(args, k) for k in ("seeds", "requests", "replicas", "batch", "step_ms",
                                                 "per_stream_ms", "load", "error")}
        path = write_json(args.name, {"command": "python bench/router_live.py " + " ".join(argv or sys.argv[1:]),
                                          "config": config, "arrival_rate_rps": rate, "rows": rows, "routers": routers,
                                          "results": summary})
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
