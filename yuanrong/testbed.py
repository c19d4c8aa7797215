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
runs without the variable. What this does not model: loss, jitter, bandwidth, the delay of
Ray's control plane (leases, object transfers, GCS calls), and asymmetric routes; calls *into*
the cloud node from the cloud node itself pay the delay too.

Example:
    >>> with Testbed(TestbedSpec(cloud_ms=38, edge2_ms=15)) as bed:   # doctest: +SKIP
    ...     for row in bed.measure_rtts(pings=20):
    ...         print(row)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from placement.telemetry import Telemetry
from yuanrong.local_cluster import LocalCluster, NodeSpec

CLIENT_REGION = "site-1"
"""Where the testbed's clients are: the ``edge-1`` node's region."""

_DELAY_VAR = "RAY_testing_asio_delay_us"
_DELAYED_HANDLER = "CoreWorkerService.grpc_server.PushTask"


@dataclasses.dataclass(frozen=True)
class TestbedSpec:
    """The emulated continuum (defaults: the ``site-1`` row of ``cluster_configs/pools.yaml``).

    Attributes:
        cloud_ms: Round trip added to every call from ``site-1`` into the cloud pool.
        edge2_ms: Round trip added to every call from ``site-1`` into ``edge-2``.
        cloud_cpus: Logical CPUs of the cloud head.
        edge_cpus: Logical CPUs of each edge node.
    """

    __test__ = False  # a spec, not a pytest test class

    cloud_ms: float = 38.0
    edge2_ms: float = 15.0
    cloud_cpus: float = 4
    edge_cpus: float = 2

    def __post_init__(self) -> None:
        for name in ("cloud_ms", "edge2_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 10_000:
                raise ValueError(f"{name}={v!r} is not a delay between 0 and 10000 ms; give e.g. 38.")

    @property
    def configured(self) -> dict[str, float]:
        """Pool → round trip added to calls from ``site-1`` (ms)."""
        return {"edge-1": 0.0, "edge-2": float(self.edge2_ms), "cloud": float(self.cloud_ms)}

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

    def shutdown(self) -> None:
        """Disconnect and stop every node's processes."""
        self.cluster.shutdown()

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def format_rtts(rows: Sequence[dict[str, Any]]) -> str:
    """The measured-vs-configured table."""
    out = [f"{'from':<8}{'to':<8}{'configured ms':>14}{'measured p50':>14}{'p90':>8}{'base':>7}"
           f"{'emulated':>10}{'error':>8}"]
    for r in rows:
        err = r["emulated_ms"] - r["configured_ms"]
        out.append(f"{r['from']:<8}{r['pool']:<8}{r['configured_ms']:>14.1f}{r['p50_ms']:>14.2f}{r['p90_ms']:>8.2f}"
                   f"{r['base_ms']:>7.2f}{r['emulated_ms']:>10.2f}{err:>+8.2f}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m yuanrong.testbed``: start, measure, print, stop."""
    parser = argparse.ArgumentParser(prog="python -m yuanrong.testbed",
                                     description="Start the emulated edge-cloud testbed and measure its RTTs.")
    parser.add_argument("--cloud-ms", type=float, default=38.0, help="RTT added from site-1 to the cloud (38)")
    parser.add_argument("--edge2-ms", type=float, default=15.0, help="RTT added from site-1 to edge-2 (15)")
    parser.add_argument("--pings", type=int, default=20, help="timed calls per pool (20)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    try:
        spec = TestbedSpec(cloud_ms=args.cloud_ms, edge2_ms=args.edge2_ms)
    except ValueError as e:
        parser.error(str(e))
    print(f"testbed: starting cloud (+{spec.cloud_ms:g} ms), edge-1 (clients, {CLIENT_REGION}), "
          f"edge-2 (+{spec.edge2_ms:g} ms)", flush=True)
    with Testbed(spec) as bed:
        rows = bed.measure_rtts(pings=args.pings)
    print(format_rtts(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    print("testbed: every node stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
