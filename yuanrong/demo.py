"""The main demo: functions and instances fanned out across edge and cloud pools.

Starts an embedded multi-pool cluster on this machine (one ``cloud`` node and two ``edge``
nodes), runs a small sensor-analytics job on it through the yuanrong API, prints where every call
ran, and stops every process it started. Run it with ``yr demo`` or ``python -m yuanrong.demo``.
"""

from __future__ import annotations

import sys
import time

import yuanrong as yr
from yuanrong.local_cluster import LocalCluster


@yr.invoke
def read_sensor(site: str, n: int) -> dict:
    """Edge stage: read and filter a batch of sensor samples next to where they are produced."""
    import random

    import ray

    rng = random.Random(f"{site}-{n}")
    samples = [rng.gauss(20.0, 5.0) for _ in range(n)]
    kept = [s for s in samples if s > 15.0]
    return {"site": site, "count": len(kept), "mean": sum(kept) / len(kept),
            "ran_on": ray.get_runtime_context().get_node_labels().get("yr.io/pool")}


@yr.invoke
def stream_alerts(threshold: float, values: list[float]):
    """Edge stage as a generator: yield an alert per value over the threshold."""
    for v in values:
        if v > threshold:
            yield f"alert: {v:.1f} > {threshold}"


@yr.instance
class Aggregator:
    """Cloud stage: a stateful instance that keeps running totals across calls."""

    def __init__(self) -> None:
        self.total = 0
        self.weighted = 0.0

    def add(self, batch: dict) -> int:
        self.total += batch["count"]
        self.weighted += batch["mean"] * batch["count"]
        return self.total

    def report(self) -> dict:
        import ray

        return {"samples": self.total, "mean": self.weighted / max(self.total, 1),
                "ran_on": ray.get_runtime_context().get_node_labels().get("yr.io/pool")}


def _step(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def main() -> int:
    """Run the demo; returns the process exit code."""
    t0 = time.monotonic()
    _step("starting an embedded cluster: pool cloud (4 CPU), pools edge-1 and edge-2 (2 CPU each)")
    with LocalCluster() as cluster:
        yr.init(yr.Config(server_address=cluster.address))
        try:
            _step(f"cluster up in {time.monotonic() - t0:.1f}s; fanning out 6 edge reads, 3 per edge pool")
            reads = [read_sensor.options(pool=pool, cpu=250, memory=64).invoke(pool, 1000 + i)
                     for i in range(3) for pool in ("edge-1", "edge-2")]
            agg = Aggregator.options(yr.InvokeOptions(tier="cloud", name="aggregator", cpu=250, memory=64)).invoke()
            batches = yr.get(reads, timeout=120)
            yr.get([agg.add.invoke(b) for b in batches], timeout=60)

            print(f"\n{'call':<28}{'pool':<10}{'samples kept':>14}{'mean':>10}")
            for b in batches:
                print(f"{'read_sensor(' + b['site'] + ')':<28}{b['ran_on']:<10}{b['count']:>14}{b['mean']:>10.2f}")
            report = yr.get(yr.get_instance("aggregator").report.invoke(), timeout=60)
            print(f"{'Aggregator.report()':<28}{report['ran_on']:<10}{report['samples']:>14}{report['mean']:>10.2f}")

            print()
            _step("streaming alerts from a generator on edge-1")
            for ref in stream_alerts.options(pool="edge-1", cpu=250, memory=64).invoke(24.0, [21.5, 25.2, 30.1]):
                print("   ", yr.get(ref))

            _step("asking for a pool that does not exist (fails at once, no hang)")
            try:
                read_sensor.options(pool="edge-9").invoke("edge-9", 10)
            except yr.PlacementError as e:
                print("   ", str(e).splitlines()[0])

            agg.terminate()
            _step(f"done in {time.monotonic() - t0:.1f}s; shutting the cluster down")
        finally:
            yr.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
