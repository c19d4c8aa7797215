"""Driver run in its own process by ``test_replacement.py``: its own small cluster, a node removed.

Prints one JSON line with what happened. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import os
import sys
import time

import ray

from placement import PlacementRequest, parse_pools
from placement.ray_adapter import RayPlacer
from yuanrong.local_cluster import LocalCluster, NodeSpec

POOLS = parse_pools("""
version: 1
pools:
  cloud:  {tier: cloud, latency_ms: {regions: {site-1: 40}}}
  edge-1: {tier: edge, latency_ms: {regions: {site-1: 2}}}
  edge-2: {tier: edge, latency_ms: {regions: {site-1: 15}}}
""")


def main() -> None:
    os.environ.pop("RAY_ADDRESS", None)
    cluster = LocalCluster(
        [NodeSpec(pool="cloud", tier="cloud", num_cpus=1, object_store_mb=128),
         NodeSpec(pool="edge-1", tier="edge", num_cpus=1, object_store_mb=96),
         NodeSpec(pool="edge-2", tier="edge", num_cpus=1, object_store_mb=96)],
    ).start()
    out: dict[str, object] = {}
    try:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        placer = RayPlacer(pools=POOLS, cache_ttl_s=0, use_instance_registry=False)

        @ray.remote(num_cpus=1, max_restarts=2)
        class Detector:
            def node(self) -> str:
                return ray.get_runtime_context().get_node_id()

        req = PlacementRequest.single({"CPU": 1}, client_region="site-1", latency_budget_ms=20)
        opts = placer.options_for(req, policy="latency_first", pin="pool")
        out["options"] = opts
        actor = Detector.options(**opts).remote()
        out["first_node"] = ray.get(actor.node.remote(), timeout=60)
        out["edge1"] = cluster.node_ids("edge-1")[0]
        out["edge2"] = cluster.node_ids("edge-2")[0]
        cluster.remove_node("edge-1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                out["after_node"] = ray.get(actor.node.remote(), timeout=10)
                break
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                out["retry_error"] = type(exc).__name__
                time.sleep(0.5)
        again = placer.decide(req, policy="latency_first", fresh=True)
        out["redecision"] = again.node_ids
        out["redecision_explain"] = again.explain()
        out["edge1_alive_in_snapshot"] = [n.alive for n in placer.snapshot(fresh=True).nodes if n.pool == "edge-1"]
    finally:
        cluster.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
