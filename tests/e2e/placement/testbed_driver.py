"""Driver for test_testbed.py: starts the testbed (edge-2's link 70 ms where the pools file says 15,
and losing 25 % of its calls), measures its RTTs, decides with and without live telemetry, measures
the loss, runs a tiny end-to-end round, stops; prints one JSON line."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from placement import Bundle, PlacementRequest, load_pools  # noqa: E402
from placement.ray_adapter import RayPlacer  # noqa: E402
from placement.ray_probe import TelemetryProbe  # noqa: E402
from placement.telemetry import Telemetry  # noqa: E402
from yuanrong.testbed import Testbed, TestbedSpec  # noqa: E402


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - t0


def main() -> None:
    from bench.continuum import ENGINE_VARIANTS, run_scenario

    policies = tuple(v for v in ENGINE_VARIANTS if not v.startswith("per_kind"))

    warnings = _Records()
    logging.getLogger("placement.telemetry").addHandler(warnings)
    pools = load_pools(ROOT / "cluster_configs" / "pools.yaml")
    out: dict = {}
    started = time.perf_counter()
    with Testbed(TestbedSpec(cloud_ms=38, edge2_ms=70, edge2_loss_pct=25)) as bed:
        out["start_s"] = time.perf_counter() - started
        out["rtts"] = bed.measure_rtts(pings=10)
        # Either edge-2 or the cloud, within 50 ms of site-1: the file says edge-2 is 15 ms away.
        req = PlacementRequest((Bundle({"CPU": 1}, pools=("edge-2", "cloud")),), client_region="site-1",
                               latency_budget_ms=50)
        fresh = Telemetry(max_age_s=60)
        with TelemetryProbe(fresh, regions=["site-1"], pings=5) as probe:
            probe.probe()
            out["probed"] = {p: fresh.rtt_ms("site-1", p) for p in ("edge-1", "edge-2", "cloud")}
            live = RayPlacer(pools=pools, telemetry=fresh, use_instance_registry=False)
            out["with_telemetry"] = live.decide(req, policy="latency_first").placements[0].pool
            out["file_only"] = RayPlacer(pools=pools, use_instance_registry=False).decide(
                req, policy="latency_first").placements[0].pool
            stale = Telemetry(max_age_s=0.05)
            stale.record_rtt("site-1", "edge-2", out["probed"]["edge-2"])
            time.sleep(0.2)
            aged = RayPlacer(pools=pools, telemetry=stale, use_instance_registry=False)
            out["stale"] = aged.decide(req, policy="latency_first").placements[0].pool
            out["warnings"] = list(warnings.lines)
        # The loss measurement mostly waits for Ray to report lost calls (its caller and echo hold no
        # CPU), so it runs in a thread alongside the end-to-end rounds to keep the test short.
        lossy = concurrent.futures.ThreadPoolExecutor(1).submit(_timed, bed.measure_loss, calls=24, retries=2,
                                                                pools=["edge-2"])
        e2e = time.perf_counter()
        result = run_scenario(bed, loads=[2], rounds=1, requests=5, etl_jobs=1,
                              variants=("per_kind", "per_kind@file", "ray_per_kind"))
        # The other engine policies at the smallest size: one replica each, three requests, one ETL job.
        result["loads"]["1"] = run_scenario(bed, loads=[1], rounds=1, requests=3, etl_jobs=1,
                                            variants=policies)["loads"]["1"]
        out["e2e_s"] = time.perf_counter() - e2e
        out["e2e"] = {load: {v: {"classifier": s["apps"]["classifier"]["slo_attainment"],
                                 "classifier_pools": dict(s["apps"]["classifier"]["pools"]),
                                 "classifier_p50_ms": s["apps"]["classifier"]["p50_ms"],
                                 "etl_p50_ms": s["apps"]["etl"]["p50_ms"], "etl_pools": dict(s["etl_pools"]),
                                 **{k: s[k] for k in ("slo_attainment", "p99_ms", "cost_per_hour",
                                                      "carbon_g_per_hour")}}
                             for v, s in by_variant.items()}
                      for load, by_variant in result["loads"].items()}
        rows, out["loss_s"] = lossy.result()
        out["loss"] = rows[0]
    out["total_s"] = time.perf_counter() - started
    print(json.dumps(out))


if __name__ == "__main__":
    main()
