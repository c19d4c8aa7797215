"""The request routers compared fairly, as a simulation: no Ray, the routers' own decision code.

Replicas decode with continuous batching: up to ``--batch`` streams at once, one token per stream
per step, a step taking ``step_ms + per_stream_ms × active streams`` (a fuller batch makes every
stream slower). A request joins a replica's batch at the next step if there is room, else waits in
that replica's FIFO queue. Output lengths are heavy-tailed (Pareto α 1.3, 4..600 tokens, as in
``bench/serve.py``); the router is *not* told them: it gets a prediction, the true length times a
log-normal error (σ ``--error``, e.g. a length predicted from the prompt).

Routers:

* ``serve_pow2``: Serve's default (power of two choices): two replicas at random, the one with fewer
  requests in flight.
* ``least_work``: yuanrong's ``OutstandingWorkRouter`` bookkeeping, replayed with its own functions
  (``remaining_work``, ``pick_least_work``): predicted work per replica, the oldest request's
  progress discounted at a learnt rate, as if a replica served one request at a time.
* ``batch_aware``: the router with ``concurrency=batch`` (``pick_batch_aware``): replicas with a
  free batch slot first, fewest streams first; full ones by the predicted time until a slot frees.
  With ``batch`` 1 the router falls back to ``least_work``, and so does this row.

Each seed draws one arrival sequence (Poisson at ``--load`` of the replicas' full-batch token
rate) and every router replays it (paired by seed; the order is irrelevant in a simulation);
p50/p99 are per seed, then mean ± 95 % CI over seeds.

Run: ``python bench/router_sim.py`` (about 10 s: batch 1 and 8, load 70 % and 90 %, 10 seeds).
Writes ``bench/results/router_sim.json``.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import heapq
import json
import pathlib
import random
import sys

_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402

from placement.sim.sweep import mean_ci  # noqa: E402
from yuanrong._private.serve.router import pick_batch_aware, pick_least_work, remaining_work  # noqa: E402

ROUTERS = ("serve_pow2", "least_work", "batch_aware")
RESULTS = _HERE / "results" / "router_sim.json"


class Replica:
    def __init__(self) -> None:
        self.active: dict[int, int] = {}  # request -> tokens still to generate
        self.queue: collections.deque[int] = collections.deque()
        self.stepping = False


def simulate(router: str, *, seed: int, requests: int, replicas: int, batch: int, step_ms: float,
             per_stream_ms: float, load: float, error: float) -> list[float]:
    """Latency (ms) of every request under ``router``."""
    rng = random.Random(seed)
    tokens = [min(600, int(4 * rng.paretovariate(1.3))) for _ in range(requests)]
    predicted = [max(1.0, t * rng.lognormvariate(0.0, error)) for t in tokens]
    # Capacity: tokens/s of all replicas with full batches.
    capacity = replicas * batch / ((step_ms + per_stream_ms * batch) / 1e3)
    rate = load * capacity / (sum(tokens) / len(tokens))
    arrivals, t = [], 0.0
    for _ in tokens:
        t += rng.expovariate(rate)
        arrivals.append(t)
    pick_rng = random.Random(seed + 1)
    reps = [Replica() for _ in range(replicas)]
    inflight: list[dict[int, tuple[float, float]]] = [{} for _ in range(replicas)]  # router's view
    last_done = [0.0] * replicas
    learnt_rate: float | None = None
    done_at = [0.0] * requests
    events: list[tuple[float, int, int, int]] = []  # (time, kind 0 step-end / 1 arrival, replica, request)
    for i, a in enumerate(arrivals):
        heapq.heappush(events, (a, 1, -1, i))

    def start_step(r: int, now: float) -> None:
        rep = reps[r]
        while rep.queue and len(rep.active) < batch:
            j = rep.queue.popleft()
            rep.active[j] = tokens[j]
        if rep.active and not rep.stepping:
            rep.stepping = True
            heapq.heappush(events, (now + (step_ms + per_stream_ms * len(rep.active)) / 1e3, 0, r, -1))

    def choose(now: float) -> int:
        if router == "serve_pow2":
            a, b = pick_rng.sample(range(replicas), 2)
            return a if len(inflight[a]) <= len(inflight[b]) else b
        order = list(range(replicas))
        pick_rng.shuffle(order)  # Serve hands the router its candidates in random order
        if router == "batch_aware" and batch > 1:  # OutstandingWorkRouter(concurrency=batch)
            return pick_batch_aware(order, {r: list(inflight[r].values()) for r in order}, now=now,
                                    rate=learnt_rate, batch=batch)[0][0]
        work = {r: remaining_work(list(inflight[r].values()), now=now, rate=learnt_rate,
                                  idle_since=last_done[r]) for r in range(replicas)}
        return pick_least_work(order, work)[0][0]

    while events:
        now, kind, r, i = heapq.heappop(events)
        if kind == 1:
            r = choose(now)
            inflight[r][i] = (predicted[i], now)
            reps[r].queue.append(i)
            start_step(r, now)
            continue
        rep = reps[r]
        rep.stepping = False
        for j in list(rep.active):
            rep.active[j] -= 1
            if rep.active[j] <= 0:
                del rep.active[j]
                done_at[j] = now
                cost, sent = inflight[r].pop(j)
                served = now - (sent if router == "batch_aware" and batch > 1 else max(sent, last_done[r]))
                last_done[r] = now
                if served > 0:  # the router learns a rate from completions, as OutstandingWorkRouter does
                    sample = cost / served
                    learnt_rate = sample if learnt_rate is None else 0.8 * learnt_rate + 0.2 * sample
        start_step(r, now)
    return [(d - a) * 1e3 for d, a in zip(done_at, arrivals)]


def run(*, seeds: int, batch: int, load: float, **cfg: float) -> dict:
    """One configuration over ``seeds`` seeds: per router, p50/p99 and their ratios to Serve's default."""
    per_seed: dict[str, dict[str, list[float]]] = {r: {"p50": [], "p99": []} for r in ROUTERS}
    for seed in range(1, seeds + 1):
        for router in ROUTERS:
            lat = np.array(simulate(router, seed=seed, batch=batch, load=load, **cfg))
            per_seed[router]["p50"].append(float(np.percentile(lat, 50)))
            per_seed[router]["p99"].append(float(np.percentile(lat, 99)))
    base = per_seed["serve_pow2"]
    out = {}
    print(f"\nbatch {batch}, load {load:.0%}: {cfg['replicas']} replicas, prediction error σ {cfg['error']}, "
          f"{seeds} seeds x {cfg['requests']} requests (mean ± 95 % CI over seeds)")
    print(f"{'router':<20}{'p50 ms':>16}{'p99 ms':>18}{'p50 vs pow2':>16}{'p99 vs pow2':>16}")
    for router in ROUTERS:
        d = per_seed[router]
        p50, p50_ci = mean_ci(d["p50"])
        p99, p99_ci = mean_ci(d["p99"])
        r50, r50_ci = mean_ci([a / b for a, b in zip(d["p50"], base["p50"])])
        r99, r99_ci = mean_ci([a / b for a, b in zip(d["p99"], base["p99"])])
        out[router] = {"p50_ms": p50, "p50_ci95": p50_ci, "p99_ms": p99, "p99_ci95": p99_ci,
                       "p50_ratio": r50, "p50_ratio_ci95": r50_ci, "p99_ratio": r99, "p99_ratio_ci95": r99_ci,
                       "per_seed": d}
        print(f"{router:<20}{p50:>9.1f} ± {p50_ci:<5.1f}{p99:>10.1f} ± {p99_ci:<6.1f}"
              f"{r50:>9.3f} ± {r50_ci:<5.3f}{r99:>9.3f} ± {r99_ci:<5.3f}")
    return {"batch": batch, "load": load, "results": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds (default 10)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per seed (default 3000)")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--batch", default="1,8", help="streams a replica decodes at once, comma-separated (1,8)")
    parser.add_argument("--load", default="0.7,0.9",
                        help="offered tokens / full-batch capacity, comma-separated (default 0.7,0.9)")
    parser.add_argument("--error", type=float, default=0.5, help="σ of the log-normal length-prediction error")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    cfg = dict(requests=args.requests, replicas=args.replicas, step_ms=8.0, per_stream_ms=1.0, error=args.error)
    runs = [run(seeds=args.seeds, batch=int(b), load=float(x), **cfg)
            for b in args.batch.split(",") for x in args.load.split(",")]
    doc = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": "python bench/router_sim.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "config": {**cfg, "seeds": args.seeds}, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
