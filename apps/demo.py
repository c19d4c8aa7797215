"""The side-by-side demo: big-data ETL, microservices and AI inference sharing one cluster.

On an embedded multi-pool cluster (a ``cloud`` head and two ``edge`` nodes) it

1. generates click events as Parquet and runs the Ray Data ETL in the **cloud** pool, publishing
   per-user features as a named dataset;
2. deploys the latency-sensitive services at the **edge** (the feature service over HTTP and
   gRPC, reading the dataset zero-copy, on ``edge-1``, its per-user lookup counts kept in the
   cloud; the digits classifier on ``edge-2``) and the token generator, the gateway and its
   functions in the cloud;
3. sends real HTTP and gRPC traffic to each, every request traced into span log files, and
4. prints, and saves as a PNG, where every replica and task ran, requests served and latency,
   and the trace of one feature request, which crossed edge and cloud, as ``yr trace`` draws it;
   then stops every process it started.

Run: ``python -m apps.demo [--rows N] [--requests N] [--png PATH] [--trace-dir DIR]``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import logging
import pathlib
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any


def _say(line: str) -> None:
    print(line, flush=True)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def replica_placement() -> dict[str, list[str]]:
    """Serve replicas by pool: ``{pool: ["app/deployment", ...]}``, read from the GCS actor table."""
    import ray
    from ray._private import state  # the actor table without the dashboard; a developer API

    pools = {n["NodeID"]: (n.get("Labels") or {}).get("yr.io/pool", "?") for n in ray.nodes() if n.get("Alive")}
    out: dict[str, list[str]] = collections.defaultdict(list)
    for info in state.actors(actor_state_name="ALIVE").values():
        cls = info.get("ActorClassName", "")
        if cls.startswith("ServeReplica:"):
            _, app, deployment = cls.split(":", 2)
            out[pools.get(info["Address"]["NodeID"], "?")].append(f"{app}/{deployment}")
    return {p: sorted(v) for p, v in sorted(out.items())}


def traced_lookup(base: str, user_id: int) -> str:
    """One feature request sent inside a client span of its own, its ``traceparent`` in the headers;
    returns the trace's id (hex).

    The request is served at the edge (the feature service on edge-1), which counts the lookup in
    the cloud (``UserState``): its trace crosses edge and cloud.
    """
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    import yuanrong as yr
    from apps.client import request

    path = f"/features/users/{user_id}"
    with yr.trace.get_tracer("apps.demo").start_as_current_span(
            f"client GET {path}", kind=SpanKind.CLIENT,
            attributes={"http.request.method": "GET", "url.path": path}) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        status, body = request("GET", base + path, extra_headers=carrier)
    if status != 200:
        raise RuntimeError(f"features answered {status}: {str(body)[:300]!r}")
    return format(span.get_span_context().trace_id, "032x")


def print_trace(trace_id: str, trace_dir: pathlib.Path, png: pathlib.Path) -> None:
    """Print one trace's waterfall with ``yr trace`` (its own command, run in this process) and save its PNG."""
    import click

    from yuanrong.cli import cli

    _say(f"$ yr trace {trace_id[:16]} --dir {trace_dir} --png {png}")
    try:
        cli.main(["trace", trace_id, "--dir", str(trace_dir), "--png", str(png)], prog_name="yr",
                 standalone_mode=False)
    except click.ClickException as e:
        _say(f"  (no waterfall: {e.format_message()})")


def _traffic(address: Any, expected: Any, requests: int) -> tuple[dict[str, list[float]], str]:
    """Drive every service like a client would: 8 keep-alive connections at a time on HTTP, 8
    concurrent calls on one gRPC channel, after a warm-up pass that is not counted; the gateway's
    very first call (its function has no instance yet) is shown apart as the cold start. Returns
    the latencies and the trace id of one feature request sent after the warm-up (:func:`traced_lookup`):
    the measured traffic that follows gives its spans time to reach the log files."""
    import grpc

    from apps.client import KeepAlive, grpc_metadata, stream
    from apps.features import grpc_api
    from apps.inference import train_digits
    from yuanrong.endpoint import GATEWAY_ROUTE

    clients = 8
    users = expected["user_id"].to_pylist()[: max(1, requests)]
    digits = train_digits()
    base = address.http_url
    lat: dict[str, list[float]] = collections.defaultdict(list)
    local = threading.local()
    opened: list[KeepAlive] = []

    def conn() -> KeepAlive:
        c = getattr(local, "conn", None)
        if c is None:
            c = local.conn = KeepAlive(base)
            opened.append(c)
        return c

    def check(status: int, body: Any, what: str) -> None:
        if status != 200:
            raise RuntimeError(f"{what} answered {status}: {body[:300]!r}")

    def features_http(uid: int) -> float:
        t, (status, body) = _timed(lambda: conn().get(f"/features/users/{uid}"))
        check(status, body, "features")
        return t

    def classify(i: int) -> float:
        pixels = [float(p) for p in digits.test_x[i % len(digits.test_x)]]
        t, (status, body) = _timed(lambda: conn().post("/digits", {"pixels": pixels}))
        check(status, body, "digits")
        return t

    def gateway(i: int) -> float:
        t, (status, body) = _timed(lambda: conn().post(f"{GATEWAY_ROUTE}/v1/functions/score/invocations",
                                                       {"args": [i, 2]}))
        check(status, body, "gateway")
        return t

    _say("demo: the gateway's first call (its function has no instance yet)")
    lat["gateway first call (cold)"] = [gateway(0)]
    with grpc.insecure_channel(address.grpc_target) as channel, \
            concurrent.futures.ThreadPoolExecutor(clients) as pool:
        stub = grpc_api.FeatureServiceStub(channel)
        grpc_meta = grpc_metadata(("application", "features"))

        def features_grpc(uid: int) -> float:
            t, _ = _timed(lambda: stub.GetFeatures(grpc_api.UserRequest(user_id=uid),
                                                   metadata=grpc_meta, timeout=60))
            return t

        services = (("features (HTTP)", features_http, list(users)), ("features (gRPC)", features_grpc, list(users)),
                    ("digits (HTTP, batched)", classify, list(range(requests))),
                    ("gateway (HTTP)", gateway, list(range(requests))))
        _say(f"demo: warm-up, {2 * clients} requests per service (not counted)")
        for _, call, items in services:
            list(pool.map(call, (items[i % len(items)] for i in range(2 * clients))))
        _say(f"demo: one feature request with a client span of its own (user {users[0]})")
        trace_id = traced_lookup(base, users[0])
        for name, call, items in services:
            _say(f"demo: {len(items)} requests to {name}, {clients} clients at a time")
            lat[name] = list(pool.map(call, items))
    for c in opened:
        c.close()
    n_streams = max(2, requests // 10)
    _say(f"demo: {n_streams} streamed generations")
    for i in range(n_streams):
        t, words = _timed(lambda: "".join(stream(f"{base}/generate?prompt=edge+cloud&max_tokens={8 + 8 * (i % 4)}")))
        lat["generate (HTTP stream)"].append(t)
    return dict(lat), trace_id


def save_png(path: pathlib.Path, placement: dict[str, list[str]], etl_pools: dict[str, int],
             latency: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    pools = sorted(set(placement) | set(etl_pools))
    apps = sorted({name for names in placement.values() for name in names})
    bottom = [0.0] * len(pools)
    for app in apps:
        counts = [placement.get(p, []).count(app) for p in pools]
        left.bar(pools, counts, bottom=bottom, label=app)
        bottom = [b + c for b, c in zip(bottom, counts)]
    etl = [etl_pools.get(p, 0) for p in pools]
    left.bar(pools, [1 if e else 0 for e in etl], bottom=bottom, label="ETL (Ray Data) blocks", hatch="//",
             color="lightgrey")
    for i, (e, b) in enumerate(zip(etl, bottom)):
        if e:
            left.text(i, b + 0.5, f"{e} ETL blocks", ha="center", va="center", fontsize=8)
    left.set_title("Where replicas and ETL tasks ran, by pool")
    left.set_ylabel("Serve replicas (hatched: ETL)")
    left.legend(fontsize=7)
    names = list(latency)
    p50 = [_pct(latency[n], 0.5) * 1e3 for n in names]
    p99 = [_pct(latency[n], 0.99) * 1e3 for n in names]
    xs = range(len(names))
    right.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    right.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    right.set_xticks(list(xs), [f"{n}\n{len(latency[n])} req" for n in names], fontsize=7)
    right.set_ylabel("latency (ms)")
    right.set_yscale("log")
    right.set_title("Requests served and latency")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code (0 on success)."""
    parser = argparse.ArgumentParser(description="yuanrong's side-by-side demo: ETL, microservices, inference.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="ETL events to generate (default 1,000,000)")
    parser.add_argument("--requests", type=int, default=100, help="requests per service (default 100)")
    parser.add_argument("--png", type=pathlib.Path, default=pathlib.Path("yuanrong-demo.png"),
                        help="where to save the placement and latency chart (the traced request's "
                             "waterfall goes beside it, as NAME-trace.png)")
    parser.add_argument("--trace-dir", type=pathlib.Path, default=pathlib.Path("yuanrong-demo-traces"),
                        help="where every process writes its span log file (read them with yr trace ID --dir DIR)")
    args = parser.parse_args(argv)
    # Absolute: each worker and replica opens its log file here, from its own working directory.
    trace_dir = args.trace_dir.resolve()

    import os

    import ray
    import datashare
    import yuanrong as yr
    from apps.etl import generate_events, run_etl
    from apps.features import deploy_features
    from apps.features.grpc_api import SERVICER_FUNCTION
    from apps.inference import deploy_inference
    from yuanrong.endpoint import serve_functions, shutdown, start
    from yuanrong.local_cluster import LocalCluster

    @yr.invoke(invoke_options=yr.InvokeOptions(pool="cloud", cpu=250, memory=0))
    def score(x: int, weight: int) -> int:
        return x * weight

    for var in ("RAY_ADDRESS", "YR_ADDRESS"):
        os.environ.pop(var, None)
    started = time.perf_counter()
    _say("demo: starting a local cluster (cloud head, edge-1, edge-2)")
    cluster = LocalCluster().start()
    try:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        # The demo prints its own progress; Serve's and Ray Data's per-step INFO lines would bury it.
        for name in ("ray.serve", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Every process the demo's requests reach writes its spans to a file in trace_dir.
        yr.init(yr.Config(server_address=cluster.address, enable_trace=True,
                          runtime_trace_config={"logFileExporter": {"enable": True, "dir": str(trace_dir)}}))
        address = start(grpc_servicer_functions=[SERVICER_FUNCTION])
        _say(f"demo: Serve at {address.http_url} (HTTP) and {address.grpc_target} (gRPC)")
        with tempfile.TemporaryDirectory() as tmp:
            _say(f"demo: generating {args.rows:,} click events as Parquet")
            paths = generate_events(tmp, rows=args.rows)
            etl = run_etl(paths, pool="cloud", progress=_say)
            _say(f"demo: ETL {etl.rows_in:,} events -> {etl.users:,} users in {etl.seconds:.1f}s")
        _say("demo: deploying the feature service at edge-1 (its lookup counts in the cloud), the classifier at "
             "edge-2, the generator in the cloud")
        # The per-user counts live in the cloud, where the replicas of every edge site can share
        # them: each lookup served at the edge makes one call to the cloud.
        deploy_features(pool="edge-1", state_pool="cloud")
        deploy_inference(classifier_pool="edge-2", generator_pool="cloud", generator_replicas=2)
        serve_functions([score], pool="cloud")
        from apps.client import request, wait_for

        wait_for(lambda: all(r in request("GET", f"{address.http_url}/-/routes")[1]
                             for r in ("/features", "/digits", "/generate", "/serverless")),
                 timeout=120, what="every route at the proxy")
        latency, trace_id = _traffic(address, etl.table, args.requests)
        placement = replica_placement()

        _say("\nWhere everything ran")
        _say(f"  ETL (Ray Data) blocks by pool: {etl.pools}")
        for pool, names in placement.items():
            counts = collections.Counter(names)
            _say(f"  {pool:<8} " + ", ".join(f"{n} x{c}" for n, c in sorted(counts.items())))
        _say("\nRequests served and latency")
        _say(f"  {'service':<26}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}")
        for name, values in latency.items():
            _say(f"  {name:<26}{len(values):>9}{_pct(values, 0.5) * 1e3:>9.1f}{_pct(values, 0.99) * 1e3:>9.1f}")
        save_png(args.png, placement, etl.pools, latency)
        _say(f"\nOne request across edge and cloud: its spans, from the log files in {trace_dir}")
        print_trace(trace_id, trace_dir, args.png.with_name(f"{args.png.stem}-trace.png"))
        total = sum(len(v) for v in latency.values())
        _say(f"\nsummary: {etl.rows_in:,} events aggregated in the cloud, {total} requests served by "
             f"{sum(len(v) for v in placement.values())} replicas across {len(placement)} pools; chart saved to "
             f"{args.png}, every request's spans to {trace_dir} ({time.perf_counter() - started:.0f}s in all)")
        return 0
    finally:
        _say("demo: stopping Serve, the dataset holders and the cluster")
        try:
            if ray.is_initialized():
                shutdown()
                datashare.shutdown_actors()
        finally:
            yr.finalize()
            cluster.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
