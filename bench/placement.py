"""Benchmark of the placement engine and its Ray adapter.

1. Decision latency (p50/p99) of a 4-bundle request at 100, 1,000 and 10,000 nodes — pure, no Ray —
   both the decision alone and the decision with its explanation read (every bundle's runners-up
   computed, as ``RayPlacer.options_for(pin="pool")`` needs them for its fallback pools).
2. Placement-group creation through :class:`placement.ray_adapter.RayPlacer` (snapshot + decision +
   pinned group + wait) against raw ``ray.util.placement_group`` with pool label selectors, on a
   LocalCluster this script starts (a new cluster, never an existing one) and shuts down.

Writes ``bench/results/placement.json``.

Usage:
    python bench/placement.py                 # everything (~1 minute)
    python bench/placement.py --no-ray        # decision latency only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script, this file's directory comes first on sys.path and its name would shadow the
# placement package; drop it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from placement import Affinity, Bundle, LabelOperator, PlacementRequest, decide  # noqa: E402
from placement.sim.continuum import build_continuum  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "placement.json"


def four_bundle_request(region: str) -> PlacementRequest:
    """Edge pre-processing near the client, a model stage, a fog/cloud aggregator, an x86-only sidecar."""
    x86 = Affinity("RESOURCE", "REQUIRED", (LabelOperator("LABEL_IN", "yr.io/arch", ("x86_64",)),))
    return PlacementRequest(
        (
            Bundle({"CPU": 1}, preferred_tiers=("edge",)),
            Bundle({"CPU": 2, "memory": float(2 << 30)}),
            Bundle({"CPU": 4}, tiers=("fog", "cloud")),
            Bundle({"CPU": 1}, affinities=(x86,)),
        ),
        strategy="SPREAD", client_region=region, latency_budget_ms=60,
    )


def bench_decisions(sizes: list[int], *, iterations: int) -> list[dict[str, object]]:
    out = []
    for n in sizes:
        c = build_continuum(nodes=n, seed=0)
        req = four_bundle_request(c.regions[3])
        for policy, explained in (("default", False), ("edge_first", False), ("default", True), ("edge_first", True)):
            for _ in range(20):  # warm the snapshot's lazy indexes
                decide(req, c.snapshot, policy=policy).explain()
            wall, cpu = [], []
            for _ in range(iterations):
                t0, c0 = time.perf_counter(), time.process_time()
                d = decide(req, c.snapshot, policy=policy)
                if explained:
                    d.explain()  # reads every bundle's runners-up
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - t0)
            ms, cpu_ms = np.array(wall) * 1e3, np.array(cpu) * 1e3
            # Wall time includes waiting for a core on a shared machine; CPU time is the work itself.
            row = {"nodes": len(c.snapshot), "pools": len(c.pools), "policy": policy, "explained": explained,
                   "iterations": iterations,
                   "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
                   "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 3),
                   "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 3),
                   "load_average_1m": round(os.getloadavg()[0], 2), "feasible": d.feasible}
            what = "decide+explain" if explained else "decide"
            print(f"{what:<15} {row['nodes']:>6} nodes  {policy:<11} wall p50 {row['p50_ms']:.3f} p99 {row['p99_ms']:.3f} ms"
                  f"  cpu p50 {row['cpu_p50_ms']:.3f} p99 {row['cpu_p99_ms']:.3f} ms  (load {row['load_average_1m']})")
            out.append(row)
    return out


def bench_groups(*, rounds: int) -> dict[str, object]:
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from placement.ray_adapter import RayPlacer
    from yuanrong.local_cluster import LocalCluster

    os.environ.pop("RAY_ADDRESS", None)
    cluster = LocalCluster().start()
    try:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        placer = RayPlacer(cache_ttl_s=1.0, use_instance_registry=False)
        req = PlacementRequest((Bundle({"CPU": 1}, pools=("edge-1",)), Bundle({"CPU": 2}, pools=("cloud",))),
                               strategy="SPREAD")
        bundles = [dict(b.resources) for b in req.bundles]
        selectors = [{"yr.io/pool": "edge-1"}, {"yr.io/pool": "cloud"}]

        def raw() -> float:
            t0 = time.perf_counter()
            pg = placement_group(bundles, strategy="SPREAD", bundle_label_selector=selectors)
            ray.get(pg.ready(), timeout=30)
            dt = time.perf_counter() - t0
            remove_placement_group(pg)
            return dt

        def adapter() -> float:
            t0 = time.perf_counter()
            group = placer.create_group(req, timeout_s=30)
            dt = time.perf_counter() - t0
            group.remove()
            return dt

        for _ in range(5):
            raw()
            time.sleep(0.25)
            adapter()
            time.sleep(0.25)
        raw_t, ad_t = [], []
        # Interleaved so both see the same cluster conditions; the pause lets the raylets actually
        # free the removed group, otherwise both paths measure Ray's retry back-off instead.
        for _ in range(rounds):
            raw_t.append(raw())
            time.sleep(0.25)
            ad_t.append(adapter())
            time.sleep(0.25)
        r50, a50 = statistics.median(raw_t) * 1e3, statistics.median(ad_t) * 1e3
        result = {
            "rounds": rounds,
            "raw_p50_ms": round(r50, 2), "raw_p90_ms": round(float(np.percentile(raw_t, 90)) * 1e3, 2),
            "adapter_p50_ms": round(a50, 2), "adapter_p90_ms": round(float(np.percentile(ad_t, 90)) * 1e3, 2),
            "ratio_p50": round(a50 / r50, 3),
            "snapshot_fresh_ms": round(_time_fresh_snapshot(placer), 2),
        }
        print(f"group   raw placement_group p50 {r50:.2f} ms | adapter p50 {a50:.2f} ms | "
              f"ratio {result['ratio_p50']:.2f}x | fresh snapshot {result['snapshot_fresh_ms']:.2f} ms")
        return result
    finally:
        cluster.shutdown()


def _time_fresh_snapshot(placer) -> float:
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        placer.snapshot(fresh=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ray", action="store_true", help="skip the placement-group part")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "python": platform.python_version(), "platform": platform.platform()},
        "command": "python bench/placement.py" + (" --no-ray" if args.no_ray else ""),
        "decision": bench_decisions([100, 1000, 10000], iterations=args.iterations),
    }
    if not args.no_ray:
        doc["placement_group"] = bench_groups(rounds=args.rounds)
    elif RESULTS.exists() and "placement_group" in (old := json.loads(RESULTS.read_text())):
        # Keep the last measured group creation, saying when it was measured.
        doc["placement_group"] = {**old["placement_group"], "measured": old.get("date")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
