"""Bursty load: autoscaling of one handler, yuanrong's function pool against a static pool and Serve.

One handler, ``work(x)``, sleeps 20 ms and returns whether it ran inside an actor. The sleep stands
for 20 ms of work that occupies its process (as CPU-bound Python would, under the GIL), so every
side runs it one call at a time per process: ``concurrency=1`` for yuanrong, ``max_ongoing_requests=1``
for Serve. It is a sleep and not a CPU loop because this host has 2 cores: six CPU loops beside the
load generator and Ray's own processes would measure core contention, not scaling.

Four sides replay the same seeded arrival sequence, open loop, one after another, in an order that
rotates every seed:

* ``yuanrong``: ``@yr.invoke`` with ``min_instances=0, max_instances=N, idle_timeout=2, concurrency=1``
  (250 millicores, no memory reservation); called with ``yr.get(f.invoke(i))``;
* ``static``: the same function with ``min_instances = max_instances = N`` (always on);
* ``warm``: ``yuanrong`` with warm workers (``Config(warm_pool_size=2)``): the function has the
  default shape (500 millicores, 500 MB, which is what warm workers hold) so that a new instance
  is adopted by an idle warm worker instead of starting a process. It is charged for every warm
  worker alive in its window, idle or adopted (each holds twice the CPU of the other sides'
  instances: instance-seconds count processes, not CPU);
* ``serve``: a plain Ray Serve deployment of the same function with the same resources
  (``num_cpus=0.25``), ``max_ongoing_requests=1`` and ``autoscaling_config`` tuned as a skilled user
  would for bursts: ``min_replicas=0, max_replicas=N, target_ongoing_requests=1, upscale_delay_s=0``,
  ``downscale_delay_s = downscale_to_zero_delay_s = 2`` (yuanrong's idle timeout),
  ``look_back_period_s=1`` and ``metrics_interval_s=0.1`` (how often handles report queued requests;
  Ray 2.60 still reads this deprecated field, default 10 s). Called through one ``DeploymentHandle``
  (``handle.remote(i).result()``) from the driver: both yuanrong and Serve are then called in-cluster
  from the same process over Ray actor calls, with no HTTP proxy in one path and not the other.

Arrivals: :func:`placement.sim.arrivals.on_off` (bursts of Gamma arrivals, CV 2, 100 requests/s
while ON; ON and OFF lengths exponential with means 1 s and 2.5 s, so some silences are shorter
and some longer than the 2 s idle timeout). Each request is submitted at its arrival time to a pool
of 64 client threads (the same pool size on every side) and its latency runs from the *scheduled*
arrival time to the result, so a request that waited for a free client thread counts that wait.

Instance-seconds: a thread polls the GCS actor table (``ray._private.state.actors()``) every 100 ms
and counts ALIVE actors of class ``FunctionInstance`` (yuanrong's pooled instances; the static
pool's N are told apart by their ids, recorded when it started) or ``ServeReplica:burst:work``; the
count is integrated from the first arrival to 2 s after the trace's end or the last response,
whichever is later (a side that answers late is charged for the instances it kept meanwhile). A yuanrong
call that finds every instance busy while one is starting runs as a plain Ray task; those calls'
own run time is added to yuanrong's instance-seconds (the CPU they leased while running), so the
figure is conservative for yuanrong. Cold starts: actors that became ALIVE during the window.

A request that gets no answer within 15 s (or waits that long for a client thread) counts as an error, with the latency it had when it gave up.

Run: ``python bench/burst.py`` (~5 minutes on 2 cores; ``--quick`` ~1.5 minutes). Writes
bench/results/burst.json.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

# Run as a script, bench/ would come first on sys.path, where placement.py and datashare.py shadow
# the packages of the same names: put the project root there instead.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

WORK_S = 0.020
IDLE_TIMEOUT_S = 2
POLL_S = 0.1
CLIENT_THREADS = 64
REQUEST_TIMEOUT_S = 15
TAIL_S = 2.0          # the window runs this long past the trace, so late responses are inside it
APP = "burst"
SIDES = ("yuanrong", "static", "serve", "warm")
WARM_WORKERS = 2


def work(i: int) -> bool:
    """The handler: 20 ms of occupied time. True when it ran in an actor (not as a Ray task)."""
    import ray

    time.sleep(WORK_S)
    return ray.get_runtime_context().get_actor_id() is not None


class ActorCounter:
    """Polls the GCS actor table and keeps, per sample, the ALIVE actors of the classes watched."""

    def __init__(self, classes: dict[str, str], static_ids: set[str]) -> None:
        self.classes = classes                 # class name -> side ("FunctionInstance" -> "yuanrong")
        self.static_ids = static_ids
        self.samples: list[tuple[float, dict[str, set[str]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="burst-actor-counter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def snapshot(self) -> dict[str, set[str]]:
        from ray._private import state

        alive: dict[str, set[str]] = {side: set() for side in SIDES}
        for actor_id, info in state.actors(actor_state_name="ALIVE").items():
            side = self.classes.get(info["ActorClassName"])
            if side is None:
                continue
            if side == "yuanrong" and actor_id in self.static_ids:
                side = "static"
            alive[side].add(actor_id)
        return alive

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            try:
                self.samples.append((t, self.snapshot()))
            except Exception:  # a GCS hiccup loses one sample, not the run
                pass
            self._stop.wait(max(0.0, POLL_S - (time.perf_counter() - t)))

    def window(self, side: str, t0: float, t1: float) -> tuple[float, int, int]:
        """(instance-seconds, actors started inside the window, most alive at once) for ``side``."""
        samples = [(t, s[side]) for t, s in self.samples]
        before = [ids for t, ids in samples if t < t0]
        known = set(before[-1]) if before else set()
        seconds, started, peak = 0.0, 0, 0
        for (t, ids), (t_next, _) in zip(samples, samples[1:]):
            if t_next <= t0 or t >= t1:
                continue
            seconds += len(ids) * (min(t_next, t1) - max(t, t0))
            started += len(ids - known)
            known |= ids
            peak = max(peak, len(ids))
        return seconds, started, peak


def replay(call, times: list[float], threads: ThreadPoolExecutor) -> tuple[float, float, list[float], int, int]:
    """Submit ``call(i)`` at each arrival time.

    Returns:
        ``(t0, t_last, latencies in ms, calls that ran in actors, errors)``: the clock at arrival time 0
        and at the last response.
    """
    n = len(times)
    latencies = [0.0] * n
    in_actor = [False] * n
    errors = [0]
    t0 = time.perf_counter() + 0.1

    def one(i: int) -> None:
        try:
            if time.perf_counter() - (t0 + times[i]) > REQUEST_TIMEOUT_S:
                raise TimeoutError(f"waited over {REQUEST_TIMEOUT_S} s for a free client thread")
            in_actor[i] = bool(call(i))
        except Exception as e:  # counted and shown, not fatal: a failed request is a result too
            errors[0] += 1
            if errors[0] <= 3:
                print(f"  request {i} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
        latencies[i] = (time.perf_counter() - (t0 + times[i])) * 1000

    futures = []
    for i, at in enumerate(times):
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        futures.append(threads.submit(one, i))
    wait(futures)
    return t0, time.perf_counter(), latencies, sum(in_actor), errors[0]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed of a 12 s trace, for a smoke run")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="arrival seeds (default 1 2 3; quick 1)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of trace per seed (default 16; quick 12)")
    parser.add_argument("--instances", type=int, default=6,
                        help="N: the static pool's size and the autoscalers' maximum (default 6)")
    parser.add_argument("--rate", type=float, default=100.0, help="arrivals per second while ON (default 100)")
    args = parser.parse_args(argv)
    seeds = args.seeds or ([1] if args.quick else [1, 2, 3])
    duration = args.duration or (12.0 if args.quick else 16.0)
    n_max = args.instances
    arrival_model = {"rate_per_s": args.rate, "cv": 2.0, "mean_on_s": 1.0, "mean_off_s": 2.5}

    import numpy as np
    from ray import serve

    import yuanrong as yr
    from bench._report import percentile, print_table, write_json
    from placement.sim.arrivals import burstiness, on_off
    from yuanrong._private.core.function_instances import CLASS_NAMES
    from yuanrong._private.core.warm_workers import WORKER_CLASS_NAMES

    traces = {seed: on_off(duration_s=duration, seed=seed, **arrival_model).tolist() for seed in seeds}
    warm_trace = on_off(duration_s=4.0, seed=1000, **arrival_model).tolist()

    # 8 logical CPUs: the static pool's N instances stay up the whole run (N x 0.25 CPU) beside the
    # side running (up to N x 0.5 CPU and the warm workers for "warm"), and nothing should wait for a
    # logical CPU.
    yr.init(yr.Config(num_cpus=8, warm_pool_size=WARM_WORKERS))
    counter = None
    threads = ThreadPoolExecutor(CLIENT_THREADS, thread_name_prefix="burst-client")
    try:
        base = dict(cpu=250, memory=0, concurrency=1, idle_timeout=IDLE_TIMEOUT_S)
        pooled = yr.invoke(work).options(min_instances=0, max_instances=n_max, **base)
        static = yr.invoke(work).options(min_instances=n_max, max_instances=n_max, **base)
        warm = yr.invoke(work).options(min_instances=0, max_instances=n_max, concurrency=1,
                                       idle_timeout=IDLE_TIMEOUT_S)

        # The static pool starts first, so its N instances are the only ones alive when recorded.
        probe = ActorCounter({name: "yuanrong" for name in CLASS_NAMES}, set())
        yr.get(static.invoke(0))
        wait_until(lambda: len(probe.snapshot()["yuanrong"]) == n_max, 60, f"the static pool's {n_max} instances")
        static_ids = set(probe.snapshot()["yuanrong"])

        serve.start(proxy_location="Disabled")
        deployment = serve.deployment(
            name="work", ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=1,
            autoscaling_config={"min_replicas": 0, "max_replicas": n_max, "initial_replicas": 0,
                                "target_ongoing_requests": 1, "upscale_delay_s": 0,
                                "downscale_delay_s": IDLE_TIMEOUT_S, "downscale_to_zero_delay_s": IDLE_TIMEOUT_S,
                                "look_back_period_s": 1, "metrics_interval_s": 0.1})(work)

        # One handle for the whole run, as a service would keep one. Ray 2.60's Serve flaps after that
        # handle sat idle for more than ~10 s (here, while the other sides ran): each scale-up from
        # zero is followed 3 s later by "Downscaling from 1 to 0 replicas. Current ongoing requests:
        # 0.00" while the handle holds dozens of requests. Reproduced without yuanrong in the process;
        # a fresh application and handle per phase did not avoid it. Requests time out after
        # REQUEST_TIMEOUT_S (counted as errors, with that latency) so the run stays bounded.
        handle = serve.run(deployment.bind(), name=APP, route_prefix=None)

        classes = {name: "yuanrong" for name in CLASS_NAMES}
        classes[f"ServeReplica:{APP}:work"] = "serve"
        classes.update({name: "warm" for name in WORKER_CLASS_NAMES.values()})
        counter = ActorCounter(classes, static_ids)
        counter.start()
        calls = {
            "yuanrong": lambda i: yr.get(pooled.invoke(i), timeout=REQUEST_TIMEOUT_S),
            "static": lambda i: yr.get(static.invoke(i), timeout=REQUEST_TIMEOUT_S),
            "serve": lambda i: handle.remote(i).result(timeout_s=REQUEST_TIMEOUT_S),
            "warm": lambda i: yr.get(warm.invoke(i), timeout=REQUEST_TIMEOUT_S),
        }
        at_zero = {
            "yuanrong": lambda: not counter.snapshot()["yuanrong"],
            "static": lambda: len(counter.snapshot()["static"]) == n_max,
            "serve": lambda: not counter.snapshot()["serve"],
            # Only the idle warm workers left: every adopted instance was released.
            "warm": lambda: len(counter.snapshot()["warm"]) == WARM_WORKERS,
        }

        # Warm-up, untimed: Ray's worker processes, both call paths, Serve's handle and router.
        for side in SIDES:
            replay(calls[side], warm_trace, threads)
        results: dict[str, dict[int, dict[str, Any]]] = {side: {} for side in SIDES}
        started = time.monotonic()
        for k, seed in enumerate(seeds):
            order = SIDES[k % len(SIDES):] + SIDES[:k % len(SIDES)]
            for side in order:
                wait_until(at_zero[side], 120, f"{side} to be back at its idle size")
                times = traces[seed]
                t0, t_last, lat, in_actor, errors = replay(calls[side], times, threads)
                t1 = max(t0 + duration, t_last) + TAIL_S
                time.sleep(max(0.0, t1 + 2 * POLL_S - time.perf_counter()))
                inst_s, starts, peak = counter.window(side, t0, t1)
                as_tasks = len(times) - in_actor - errors
                task_s = as_tasks * WORK_S
                results[side][seed] = {
                    "requests": len(times), "errors": errors, "latencies_ms": lat,
                    "p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99),
                    "instance_seconds": inst_s, "task_seconds": task_s, "cold_starts": starts,
                    "peak_instances": peak, "calls_as_ray_tasks": as_tasks,
                }
                print(f"seed {seed} {side:<9} {len(times):4d} req  p50 {percentile(lat, 0.5):7.1f} ms  "
                      f"p99 {percentile(lat, 0.99):8.1f} ms  instance-s {inst_s:6.1f} (+{task_s:.1f} as tasks)  "
                      f"starts {starts:3d}  peak {peak}  errors {errors}", flush=True)
        elapsed = time.monotonic() - started

        def total(side: str, key: str) -> float:
            return sum(r[key] for r in results[side].values())

        def all_latencies(side: str) -> list[float]:
            return [x for r in results[side].values() for x in r["latencies_ms"]]

        summary = {}
        for side in SIDES:
            lat = all_latencies(side)
            summary[side] = {
                "instance_seconds": total(side, "instance_seconds") + total(side, "task_seconds"),
                "actor_instance_seconds": total(side, "instance_seconds"),
                "task_seconds": total(side, "task_seconds"),
                "p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99),
                "cold_starts": total(side, "cold_starts"), "calls_as_ray_tasks": total(side, "calls_as_ray_tasks"),
                "errors": total(side, "errors"), "requests": len(lat),
                "per_seed": {seed: {k: v for k, v in r.items() if k != "latencies_ms"}
                             for seed, r in results[side].items()},
            }

        def row(metric: str, unit: str, key: str, base: str, target: float, ours: str = "yuanrong") -> dict[str, Any]:
            y, x = summary[ours][key], summary[base][key]
            return {"metric": metric, "unit": unit, "yuanrong": y, "raw": x, "ratio": y / x if x else float("inf"),
                    "target": target, "better": "lower", "baseline": base, "side": ours,
                    "per_seed_yuanrong": [summary[ours]["per_seed"][s][key] if key in
                                          summary[ours]["per_seed"][s] else None for s in seeds],
                    "per_seed_raw": [summary[base]["per_seed"][s][key] if key in summary[base]["per_seed"][s]
                                     else None for s in seeds]}

        rows = [
            row("burst: instance-seconds (vs static)", "inst*s", "instance_seconds", "static", 1.0),
            row("burst: p50 (vs static)", "ms", "p50_ms", "static", 2.0),
            row("burst: p99 (vs static)", "ms", "p99_ms", "static", 2.0),
            row("burst: instance-seconds (vs Serve)", "inst*s", "instance_seconds", "serve", 1.0),
            row("burst: p50 (vs Serve)", "ms", "p50_ms", "serve", 1.0),
            row("burst: p99 (vs Serve)", "ms", "p99_ms", "serve", 1.0),
            row("burst: cold starts (vs Serve)", "starts", "cold_starts", "serve", 1.0),
            row("burst, warm workers: instance-seconds (vs static)", "inst*s", "instance_seconds", "static", 1.0,
                ours="warm"),
            row("burst, warm workers: p50 (vs static)", "ms", "p50_ms", "static", 2.0, ours="warm"),
            row("burst, warm workers: p99 (vs static)", "ms", "p99_ms", "static", 2.0, ours="warm"),
            row("burst, warm workers: p99 (vs Serve)", "ms", "p99_ms", "serve", 1.0, ours="warm"),
        ]
        print_table(rows, title=f"burst: {len(seeds)} seed(s) x {duration:g} s of on/off arrivals, "
                                f"{sum(len(t) for t in traces.values())} requests per side, N={n_max}, "
                                f"idle timeout {IDLE_TIMEOUT_S} s ('raw' = the baseline named in the metric)")
        for side in SIDES:
            s = summary[side]
            print(f"{side:<9} instance-s {s['instance_seconds']:7.1f} (actors {s['actor_instance_seconds']:.1f}, "
                  f"tasks {s['task_seconds']:.1f})  p50 {s['p50_ms']:7.1f}  p99 {s['p99_ms']:8.1f} ms  "
                  f"cold starts {s['cold_starts']}  calls as Ray tasks {s['calls_as_ray_tasks']}  "
                  f"errors {s['errors']}")
        command = "python bench/burst.py" + (" --quick" if args.quick else "")
        if args.seeds or args.duration or args.instances != 6 or args.rate != 100.0:
            command = "python bench/burst.py " + " ".join(argv if argv is not None else sys.argv[1:])
        path = write_json("burst", {
            "command": command, "seeds": seeds, "duration_s": duration, "arrival_model": arrival_model,
            "arrival_cv": {seed: burstiness(np.asarray(traces[seed])) for seed in seeds},
            "work_s": WORK_S, "idle_timeout_s": IDLE_TIMEOUT_S, "instances": n_max, "client_threads": CLIENT_THREADS,
            "window_tail_s": TAIL_S, "poll_s": POLL_S, "elapsed_s": elapsed,
            "results": summary, "rows": rows})
        print(f"\nJSON: {path}")
    finally:
        threads.shutdown(wait=False, cancel_futures=True)
        if counter is not None:
            counter.stop()
        try:
            serve.shutdown()
        except Exception:
            pass
        yr.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
