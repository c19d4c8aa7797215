"""A live edge–cloud testbed on one machine: real raylets whose Ray calls see emulated WAN latency.

``python -m yuanrong.testbed`` starts three labelled nodes on loopback — a ``cloud`` head, the
``edge-1`` site where the clients are (region ``site-1``), and a neighbouring ``edge-2`` site —
measures the round trip a Ray actor call from ``site-1`` sees to each pool, prints it against the
configured figure, and stops every process it started.

How the WAN is emulated. ``tc netem`` is not available on these kernels, so the delay is Ray's
own injection: a node's processes (its raylet and every worker the raylet starts) get
``RAY_testing_asio_delay_us=CoreWorkerService.grpc_server.PushTask=<d>:<d>``, which holds each
task or actor call the node's workers *serve* for ``d`` before running it. So a call from
``site-1`` to an actor in the cloud pays ``d_cloud`` once per round trip, a call to ``edge-2`` pays
``d_edge2``, and a call inside ``edge-1`` pays nothing: the pools file's ``site-1`` row. The driver
runs without the variable.

How loss is emulated. Ray's failure injection (``RAY_testing_rpc_failure``, read by
``src/ray/rpc/rpc_chaos.cc``) acts in the *calling* process: its gRPC client fails a chosen method's
call with ``UNAVAILABLE``, with a whole-percent probability per call, either before the request
leaves (``req_failure_prob``: the server never sees it) or after the reply came back
(``resp_failure_prob``: the server ran it, the caller never hears). It knows methods, not
destinations. So a link's loss lives in the callers that use that link: :meth:`Testbed.link_caller_options`
gives a caller actor on ``edge-1`` whose process fails ``loss_pct`` % of its
``CoreWorkerService.grpc_client.PushTask`` calls (half before the request, half after the reply;
the odd percent before), and :meth:`Testbed.measure_loss` sends calls through such a caller to each
far pool. That is a lost *call*, as a dropped connection gives, not a lost packet: over TCP a lost
packet is retransmitted and costs delay, which is not modelled. What else is not modelled: jitter,
bandwidth, the delay of Ray's control plane (leases, object transfers, GCS calls), and asymmetric
routes; calls *into* the cloud node from the cloud node itself pay the delay too.

Example:
    >>> with Testbed(TestbedSpec(cloud_ms=38, edge2_ms=15)) as bed:   # doctest: +SKIP
    ...     for row in bed.measure_rtts(pings=20):
    ...         print(row)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from placement.telemetry import Telemetry
from yuanrong.local_cluster import LocalCluster, NodeSpec

CLIENT_REGION = "site-1"
"""Where the testbed's clients are: the ``edge-1`` node's region."""

_DELAY_VAR = "RAY_testing_asio_delay_us"
_DELAYED_HANDLER = "CoreWorkerService.grpc_server.PushTask"
_FAILURE_VAR = "RAY_testing_rpc_failure"
_FAILED_CALL = "CoreWorkerService.grpc_client.PushTask"
LOSS_SPLITS = ("both", "request", "reply")
"""Which leg of a call a link's losses hit (see :func:`loss_env`)."""


@dataclasses.dataclass(frozen=True)
class TestbedSpec:
    """The emulated continuum (defaults: the ``site-1`` row of ``cluster_configs/pools.yaml``).

    Attributes:
        cloud_ms: Round trip added to every call from ``site-1`` into the cloud pool.
        edge2_ms: Round trip added to every call from ``site-1`` into ``edge-2``.
        cloud_cpus: Logical CPUs of the cloud head.
        edge_cpus: Logical CPUs of each edge node.
        cloud_loss_pct: Percent of calls from ``site-1`` into the cloud that are lost (whole
            percents: Ray's injection draws an integer from 1 to 100 per call).
        edge2_loss_pct: The same for calls into ``edge-2``.
        loss_split: Which leg loses: ``"both"`` (half the losses drop the request, half the reply),
            ``"request"`` (the callee never runs a lost call) or ``"reply"`` (it runs, the caller
            never hears).
    """

    __test__ = False  # a spec, not a pytest test class

    cloud_ms: float = 38.0
    edge2_ms: float = 15.0
    cloud_cpus: float = 4
    edge_cpus: float = 2
    cloud_loss_pct: int = 0
    edge2_loss_pct: int = 0
    loss_split: str = "both"

    def __post_init__(self) -> None:
        for name in ("cloud_ms", "edge2_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 10_000:
                raise ValueError(f"{name}={v!r} is not a delay between 0 and 10000 ms; give e.g. 38.")
        for name in ("cloud_loss_pct", "edge2_loss_pct"):
            v = getattr(self, name)
            whole = isinstance(v, int) or (isinstance(v, float) and v.is_integer())
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not whole or not 0 <= v <= 100:
                raise ValueError(f"{name}={v!r} is not a whole percent between 0 and 100; Ray's RPC failure "
                                 "injection draws whole percents, so give e.g. 5 (not 0.05 or 2.5).")
        if self.loss_split not in LOSS_SPLITS:
            raise ValueError(f"loss_split={self.loss_split!r} is not one of {', '.join(LOSS_SPLITS)}.")

    @property
    def configured(self) -> dict[str, float]:
        """Pool → round trip added to calls from ``site-1`` (ms)."""
        return {"edge-1": 0.0, "edge-2": float(self.edge2_ms), "cloud": float(self.cloud_ms)}

    @property
    def configured_loss(self) -> dict[str, int]:
        """Pool → percent of calls from ``site-1`` into it that are lost."""
        return {"edge-1": 0, "edge-2": int(self.edge2_loss_pct), "cloud": int(self.cloud_loss_pct)}

    def nodes(self) -> tuple[NodeSpec, ...]:
        """The node specs: cloud head first, then ``edge-1`` (the clients' site) and ``edge-2``."""
        return (
            NodeSpec(pool="cloud", tier="cloud", num_cpus=self.cloud_cpus, region="region-a", object_store_mb=256,
                     env=_delay_env(self.cloud_ms)),
            NodeSpec(pool="edge-1", tier="edge", num_cpus=self.edge_cpus, region=CLIENT_REGION, object_store_mb=128),
            NodeSpec(pool="edge-2", tier="edge", num_cpus=self.edge_cpus, region="site-2", object_store_mb=128,
                     env=_delay_env(self.edge2_ms)),
        )


def _delay_env(ms: float) -> MappingProxyType:
    if ms <= 0:
        return MappingProxyType({})
    us = int(round(ms * 1000))
    return MappingProxyType({_DELAY_VAR: f"{_DELAYED_HANDLER}={us}:{us}"})


def loss_env(loss_pct: int, split: str = "both") -> dict[str, str]:
    """Environment of a calling process that loses ``loss_pct`` % of its task and actor calls.

    With ``split="both"`` half of the failures drop the request before it leaves (the callee never
    runs it), half drop the reply (the callee ran it); the odd percent goes to the request.
    ``"request"`` or ``"reply"`` puts them all on that leg. Empty for 0.
    """
    if split not in LOSS_SPLITS:
        raise ValueError(f"split={split!r} is not one of {', '.join(LOSS_SPLITS)}.")
    if not loss_pct:
        return {}
    request = {"both": (int(loss_pct) + 1) // 2, "request": int(loss_pct), "reply": 0}[split]
    failures = {_FAILED_CALL: {"num_failures": -1, "req_failure_prob": request,
                               "resp_failure_prob": int(loss_pct) - request}}
    return {_FAILURE_VAR: json.dumps(failures)}


class Testbed:
    """The running testbed: a :class:`LocalCluster` with delayed nodes, this process connected to it.

    Args:
        spec: The emulated continuum.
    """

    __test__ = False

    def __init__(self, spec: TestbedSpec | None = None) -> None:
        self.spec = spec or TestbedSpec()
        self.cluster = LocalCluster(self.spec.nodes())

    def start(self) -> Testbed:
        import ray

        self.cluster.start()
        try:
            ray.init(address=self.cluster.address, logging_level="ERROR", log_to_driver=False)
        except BaseException:
            self.cluster.shutdown()
            raise
        return self

    def measure_rtts(self, *, pings: int = 20, telemetry: Telemetry | None = None) -> list[dict[str, Any]]:
        """Time ``pings`` actor calls from ``site-1`` to each pool; one row per pool.

        Each row has ``pool``, ``configured_ms`` (the added delay), ``p50_ms``/``p90_ms``/``min_ms``
        of the measured round trip, ``base_ms`` (the p50 inside ``edge-1``, the cost of a Ray call
        with no delay) and ``emulated_ms`` = ``p50_ms - base_ms``, the part the emulation added.
        """
        from placement.ray_probe import TelemetryProbe

        t = telemetry or Telemetry(max_age_s=60)
        with TelemetryProbe(t, regions=[CLIENT_REGION], pings=pings, warmup=3) as probe:
            probe.probe()
            samples = {pool: s for (_, pool), s in probe.last.items()}
        base = statistics.median(samples["edge-1"])
        rows = []
        for pool, configured in self.spec.configured.items():
            s = sorted(samples[pool])
            p50 = statistics.median(s)
            rows.append({"from": CLIENT_REGION, "pool": pool, "configured_ms": configured, "p50_ms": p50,
                         "p90_ms": s[min(len(s) - 1, int(0.9 * len(s)))], "min_ms": s[0], "base_ms": base,
                         "emulated_ms": p50 - base if pool != "edge-1" else 0.0, "pings": len(s)})
        return rows

    def link_caller_options(self, pool: str) -> dict[str, Any]:
        """``.options()`` of a caller actor in ``site-1`` whose calls cross the lossy link to ``pool``.

        Ray's failure injection acts per calling process and method, not per destination, so a
        link's loss is given to the process that calls across it: use one such caller per
        destination pool. Its calls into the other pools would lose as much.
        """
        if pool not in self.spec.configured_loss:
            raise ValueError(f"pool={pool!r} is not in the testbed; known pools: "
                             f"{', '.join(self.spec.configured_loss)}.")
        env = loss_env(self.spec.configured_loss[pool], self.spec.loss_split)
        return {"label_selector": {"yr.io/pool": "edge-1"}, "runtime_env": {"env_vars": env} if env else None}

    def measure_loss(self, *, calls: int = 100, retries: int = 2, pools: Sequence[str] | None = None,
                     ray_retries: int = 0, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Send ``calls`` requests from ``site-1`` to each pool across its link; one row per pool.

        Each request is an actor call (Ray's own retries off, ``max_task_retries=0``); when Ray
        reports it lost (``ActorUnavailableError``) the caller tries again, up to ``retries`` times,
        as an application would. With ``ray_retries`` above 0 the caller does not retry and Ray does
        (``max_task_retries=ray_retries``). An attempt not answered within ``timeout_s`` counts as
        lost and as ``timed_out``. Each row has ``configured_pct``, ``attempts``, ``lost``,
        ``measured_pct`` (lost ÷ attempts) with its 95 % Wilson interval (``ci_low_pct``,
        ``ci_high_pct``), ``lost_after_ms`` (p50 time until the caller learnt an attempt was lost),
        ``ok_p50_ms`` (a delivered attempt), ``request_p50_ms``/``request_p99_ms``/``request_mean_ms``
        (a request, retries included), ``failed`` (requests that ran out of retries) and
        ``timed_out``.
        """
        import ray

        Echo, Caller = _loss_actors()
        rows = []
        for pool in pools or list(self.spec.configured_loss):
            echo = Echo.options(label_selector={"yr.io/pool": pool}, max_task_retries=ray_retries).remote()
            caller = Caller.options(**{k: v for k, v in self.link_caller_options(pool).items() if v}).remote()
            try:
                ray.get(caller.warm.remote(echo))
                rows.append({"from": CLIENT_REGION, "pool": pool, "configured_pct": self.spec.configured_loss[pool],
                             "ray_retries": ray_retries,
                             **_loss_row(ray.get(caller.send.remote(echo, calls, 0 if ray_retries else retries,
                                                                    timeout_s)))})
            finally:
                ray.kill(caller)
                ray.kill(echo)
        return rows

    def shutdown(self) -> None:
        """Disconnect and stop every node's processes."""
        self.cluster.shutdown()

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _loss_actors() -> tuple[Any, Any]:
    import ray

    @ray.remote(num_cpus=0)
    class Echo:
        def ping(self) -> None:
            return None

    @ray.remote(num_cpus=0)
    class Caller:
        """Calls across one link; records every attempt (ok or lost) and every request's total."""

        def warm(self, echo: Any) -> None:
            for _ in range(20):  # the first call connects; warm-up calls may be lost too
                try:
                    ray.get(echo.ping.remote())
                    return
                except ray.exceptions.ActorUnavailableError:
                    continue

        def send(self, echo: Any, calls: int, retries: int, timeout_s: float) -> dict[str, list]:
            timed_out = 0
            attempts: list[tuple[bool, float]] = []
            requests: list[tuple[bool, float]] = []
            for _ in range(calls):
                t0 = time.perf_counter()
                ok = False
                for _ in range(retries + 1):
                    a0 = time.perf_counter()
                    try:
                        ray.get(echo.ping.remote(), timeout=timeout_s)
                        ok = True
                    except ray.exceptions.ActorUnavailableError:
                        pass
                    except ray.exceptions.GetTimeoutError:
                        timed_out += 1
                    attempts.append((ok, (time.perf_counter() - a0) * 1e3))
                    if ok:
                        break
                requests.append((ok, (time.perf_counter() - t0) * 1e3))
            return {"attempts": attempts, "requests": requests, "timed_out": timed_out}

    return Echo, Caller


def _loss_row(got: dict[str, list]) -> dict[str, Any]:
    attempts, requests = got["attempts"], got["requests"]
    n, lost = len(attempts), sum(1 for ok, _ in attempts if not ok)
    low, high = wilson_interval(lost, n)
    lost_ms = sorted(ms for ok, ms in attempts if not ok)
    ok_ms = sorted(ms for ok, ms in attempts if ok)
    req_ms = sorted(ms for _, ms in requests)
    return {"attempts": n, "lost": lost, "measured_pct": 100 * lost / n, "ci_low_pct": 100 * low,
            "ci_high_pct": 100 * high, "lost_after_ms": statistics.median(lost_ms) if lost_ms else None,
            "ok_p50_ms": statistics.median(ok_ms) if ok_ms else None, "requests": len(requests),
            "request_p50_ms": statistics.median(req_ms), "request_p99_ms": req_ms[min(len(req_ms) - 1,
                                                                                       int(0.99 * len(req_ms)))],
            "request_mean_ms": statistics.fmean(req_ms), "failed": sum(1 for ok, _ in requests if not ok),
            "timed_out": got.get("timed_out", 0)}


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion ``k / n``."""
    if n <= 0:
        raise ValueError(f"n={n!r}: a proportion needs at least one trial.")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def format_loss(rows: Sequence[dict[str, Any]]) -> str:
    """The configured-vs-measured loss table, with what a lost call cost the caller."""
    out = [f"{'from':<8}{'to':<8}{'configured %':>13}{'measured %':>11}{'95% CI':>13}{'lost/attempts':>15}"
           f"{'lost after ms':>14}{'ok ms':>8}{'request p50':>12}{'p99':>9}{'mean':>9}{'failed':>7}{'timed out':>10}"]
    for r in rows:
        lost_after = "-" if r["lost_after_ms"] is None else f"{r['lost_after_ms']:.0f}"
        ok = "-" if r["ok_p50_ms"] is None else f"{r['ok_p50_ms']:.1f}"
        ci = f"{r['ci_low_pct']:.1f}-{r['ci_high_pct']:.1f}"
        count = f"{r['lost']}/{r['attempts']}"
        out.append(f"{r['from']:<8}{r['pool']:<8}{r['configured_pct']:>13d}{r['measured_pct']:>11.1f}{ci:>13}"
                   f"{count:>15}{lost_after:>14}{ok:>8}{r['request_p50_ms']:>12.1f}{r['request_p99_ms']:>9.1f}"
                   f"{r['request_mean_ms']:>9.1f}{r['failed']:>7d}{r.get('timed_out', 0):>10d}")
    return "\n".join(out)


def format_rtts(rows: Sequence[dict[str, Any]]) -> str:
    """The measured-vs-configured table."""
    out = [f"{'from':<8}{'to':<8}{'configured ms':>14}{'measured p50':>14}{'p90':>8}{'base':>7}"
           f"{'emulated':>10}{'error':>8}"]
    for r in rows:
        err = r["emulated_ms"] - r["configured_ms"]
        out.append(f"{r['from']:<8}{r['pool']:<8}{r['configured_ms']:>14.1f}{r['p50_ms']:>14.2f}{r['p90_ms']:>8.2f}"
                   f"{r['base_ms']:>7.2f}{r['emulated_ms']:>10.2f}{err:>+8.2f}")
    return "\n".join(out)


def build_parser(prog: str = "python -m yuanrong.testbed") -> argparse.ArgumentParser:
    """The testbed's command-line options (``python -m yuanrong.testbed`` and ``yr testbed`` share them)."""
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Start the emulated edge-cloud testbed and measure its RTTs "
                                                 "(and its loss, when a link has some).")
    parser.add_argument("--cloud-ms", type=float, default=38.0, help="RTT added from site-1 to the cloud (38)")
    parser.add_argument("--edge2-ms", type=float, default=15.0, help="RTT added from site-1 to edge-2 (15)")
    parser.add_argument("--cloud-loss", type=float, default=0, metavar="PCT",
                        help="percent of calls from site-1 to the cloud lost, whole percents (0)")
    parser.add_argument("--edge2-loss", type=float, default=0, metavar="PCT",
                        help="percent of calls from site-1 to edge-2 lost, whole percents (0)")
    parser.add_argument("--pings", type=int, default=20, help="timed calls per pool (20)")
    parser.add_argument("--calls", type=int, default=100,
                        help="requests per pool for the loss measurement, each retried up to twice (100)")
    parser.add_argument("--loss-split", choices=LOSS_SPLITS, default="both",
                        help="which leg loses: half each (both), the request only, or the reply only (both)")
    parser.add_argument("--ray-retries", type=int, default=0, metavar="N",
                        help="let Ray retry lost calls (max_task_retries=N) instead of the caller (0: the caller)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the rows as JSON ({\"rtts\": [...], \"loss\": [...]} when loss is measured)")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m yuanrong.testbed") -> int:
    """Start, measure, print, stop; ``prog`` names the command in usage and error messages."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    for flag, value, least in (("--pings", args.pings, 1), ("--calls", args.calls, 1),
                               ("--ray-retries", args.ray_retries, 0)):
        if value < least:
            parser.error(f"{flag} {value} must be at least {least}.")
    try:
        spec = TestbedSpec(cloud_ms=args.cloud_ms, edge2_ms=args.edge2_ms, cloud_loss_pct=args.cloud_loss,
                           edge2_loss_pct=args.edge2_loss, loss_split=args.loss_split)
    except ValueError as e:
        parser.error(str(e).replace("cloud_loss_pct=", "--cloud-loss ").replace("edge2_loss_pct=", "--edge2-loss ")
                     .replace("cloud_ms=", "--cloud-ms ").replace("edge2_ms=", "--edge2-ms "))
    lossy = any(spec.configured_loss.values())
    print(f"testbed: starting cloud (+{spec.cloud_ms:g} ms, {spec.cloud_loss_pct:g} % lost), edge-1 (clients, "
          f"{CLIENT_REGION}), edge-2 (+{spec.edge2_ms:g} ms, {spec.edge2_loss_pct:g} % lost)", flush=True)
    loss: list[dict[str, Any]] = []
    with Testbed(spec) as bed:
        rows = bed.measure_rtts(pings=args.pings)
        print(format_rtts(rows), flush=True)
        if lossy:
            loss = bed.measure_loss(calls=args.calls, ray_retries=args.ray_retries)
            print(format_loss(loss))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rtts": rows, "loss": loss} if lossy else rows, f, indent=2)
    print("testbed: every node stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
