"""Scale from zero: the first response of an endpoint with no replica, activator against plain Serve.

Two applications of the same handler (``POST`` → ``{"pid": ...}``), the same replica resources
(250m CPU, no memory reservation) and ``min_replicas=0, max_replicas=1``, on one embedded cluster:

* yuanrong: ``@endpoint(..., activator=Activator(warm_workers=1))`` — the activator adopts a warm
  worker for the first request after zero;
* raw: a plain ``serve.deployment`` with ``autoscaling_config`` given Serve's best settings for a
  fast scale from zero, as a skilled user would: ``upscale_delay_s=0``, ``look_back_period_s=1``,
  ``target_ongoing_requests=1``, and ``metrics_interval_s=0.1`` (how often handles push queue
  lengths to the autoscaler; Ray 2.60's router still reads this deprecated field, default 10 s;
  ``--serve-defaults`` keeps it).

Each round waits (untimed) until both endpoints are at zero replicas — and the activator's warm
worker is back — then opens a keep-alive HTTP connection to Serve's proxy and times from sending
the request to the first full response. Rounds alternate which side goes first; the first rounds
are warm-up. What it shows: the latency a request sees when it arrives at an endpoint at zero.
What it does not: the activator's warm workers hold the replica's resources while idle, and a
burst larger than the warm pool pays a process start (see docs/serve.md).

Run: ``python bench/scale_from_zero.py`` (``--quick`` for a smoke run); ~3 minutes on 2 cores.
Writes bench/results/scale_from_zero.json.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

# Run as a script, bench/ would come first on sys.path, where placement.py and datashare.py shadow
# the packages of the same names: put the project root there instead.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

TARGET_MS = 250.0
DOWNSCALE_S = 1.0


def handler(request):
    return {"pid": os.getpid()}


def _serve_replicas(serve, app: str) -> int:
    status = serve.status().applications.get(app)
    if status is None or app not in status.deployments:
        return -1
    states = status.deployments[app].replica_states
    return sum(n for state, n in states.items() if str(state).endswith("RUNNING"))


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _first_response_ms(base_url: str, path: str) -> float:
    from apps.client import KeepAlive

    client = KeepAlive(base_url, timeout=120)
    try:
        client._conn.connect()          # the connection exists before the clock starts
        t = time.perf_counter()
        status, body = client.post(path, {})
        ms = (time.perf_counter() - t) * 1000
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"POST {path} answered {status}: {body[:300]!r}")
    return ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 12, quick 3)")
    parser.add_argument("--serve-defaults", action="store_true",
                        help="leave Serve's metrics_interval_s at its 10 s default")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 12)
    warmup = 1 if args.quick else 2

    from ray import serve

    import yuanrong as yr
    from apps.client import request as http
    from bench._report import median, percentile, print_table, write_json
    from yuanrong.endpoint import Activator, Autoscaling, endpoint, run, shutdown, start

    yr.init(yr.Config(num_cpus=4))
    try:
        address = start()
        ep = endpoint(handler, name="yr-zero", route="/yr-zero", invoke_options=yr.InvokeOptions(cpu=250, memory=0),
                      autoscaling=Autoscaling(min_replicas=0, max_replicas=1, target_ongoing_requests=1,
                                              upscale_delay_s=0, downscale_delay_s=DOWNSCALE_S,
                                              look_back_period_s=1),
                      activator=Activator(warm_workers=1))
        run(ep)
        raw = serve.deployment(
            name="serve-zero", ray_actor_options={"num_cpus": 0.25},
            autoscaling_config={"min_replicas": 0, "max_replicas": 1, "initial_replicas": 0,
                                "target_ongoing_requests": 1, "upscale_delay_s": 0,
                                "downscale_delay_s": DOWNSCALE_S, "downscale_to_zero_delay_s": DOWNSCALE_S,
                                "look_back_period_s": 1,
                                # How often Serve's handles push queue lengths to the autoscaler
                                # (deprecated field, still read by Ray 2.60's router; default 10 s).
                                **({} if args.serve_defaults else {"metrics_interval_s": 0.1})})(handler)
        serve.run(raw.bind(), name="serve-zero", route_prefix="/serve-zero")
        activator = serve.get_app_handle("yr-zero")

        def yr_at_zero() -> bool:
            stats = activator.stats.remote().result(timeout_s=30)
            return not stats["replicas"] and len(stats["warm_idle"]) >= 1

        sides = {"yuanrong": ("/yr-zero", yr_at_zero),
                 "raw": ("/serve-zero", lambda: _serve_replicas(serve, "serve-zero") == 0)}
        for path, _ in sides.values():
            # The proxies learn new routes a moment after the deploy: untimed, until both answer.
            _wait(lambda: http("POST", address.http_url + path, {}, timeout=60)[0] == 200, 60, f"{path} to answer")
        samples: dict[str, list[float]] = {side: [] for side in sides}
        started = time.monotonic()
        for r in range(warmup + rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(list(sides)))
            for side in order:
                path, at_zero = sides[side]
                _wait(at_zero, 120, f"{side} to be at zero replicas")
                ms = _first_response_ms(address.http_url, path)
                if r >= warmup:
                    samples[side].append(ms)
                print(f"round {r}{' (warm-up)' if r < warmup else ''}: {side:<9} {ms:9.1f} ms", flush=True)
        elapsed = time.monotonic() - started

        summary = {side: {"p50_ms": median(v), "p90_ms": percentile(v, 0.9), "min_ms": min(v), "max_ms": max(v),
                          "samples_ms": v} for side, v in samples.items()}
        y, x = summary["yuanrong"], summary["raw"]
        rows = [
            {"metric": "scale from zero p50", "unit": "ms", "yuanrong": y["p50_ms"], "raw": x["p50_ms"],
             "ratio": y["p50_ms"] / x["p50_ms"], "target": TARGET_MS / x["p50_ms"], "better": "lower",
             "target_ms": TARGET_MS},
            {"metric": "scale from zero p90", "unit": "ms", "yuanrong": y["p90_ms"], "raw": x["p90_ms"],
             "ratio": y["p90_ms"] / x["p90_ms"], "target": TARGET_MS / x["p90_ms"], "better": "lower",
             "target_ms": TARGET_MS},
        ]
        print_table(rows, title=f"scale from zero: {rounds} alternating rounds after {warmup} warm-up, request -> "
                                f"first response at zero replicas (target p50 <= {TARGET_MS:g} ms; ratio target "
                                f"= {TARGET_MS:g} ms / raw)")
        command = "python bench/scale_from_zero.py" + (" --quick" if args.quick else "") + \
            (" --serve-defaults" if args.serve_defaults else "")
        path = write_json("scale_from_zero", {
            "command": command, "rounds": rounds, "warmup": warmup, "warm_workers": 1,
            "downscale_delay_s": DOWNSCALE_S, "serve_metrics_interval_s": 10.0 if args.serve_defaults else 0.1,
            "elapsed_s": elapsed, "results": summary, "rows": rows})
        print(f"\nJSON: {path}")
        shutdown()
    finally:
        yr.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
