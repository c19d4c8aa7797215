"""Driver run in its own process by ``test_replacement.py``: its own small cluster, a node removed.

Prints one JSON line with what happened. Argument: where to write the pools file yuanrong reads. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import os
import sys
import time

import ray

import yuanrong as yr
from placement import PlacementRequest, parse_pools
from placement.ray_adapter import RayPlacer
from yuanrong.local_cluster import LocalCluster, NodeSpec

POOLS_YAML = """
version: 1
pools:
  cloud:  {tier: cloud, latency_ms: {regions: {site-1: 40}}}
  edge-1: {tier: edge, latency_ms: {regions: {site-1: 2}}}
  edge-2: {tier: edge, latency_ms: {regions: {site-1: 15}}}
"""
POOLS = parse_pools(POOLS_YAML)


@yr.instance
class Tracker:
    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


def _until_answered(call) -> str:
    deadline = time.monotonic() + 60
    while True:
        try:
            return call()
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, yr.InstanceDiedError,
                yr.GetTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main(pools_file: str) -> None:
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

        yr.init(yr.Config(server_address=cluster.address, pools_file=pools_file))

        @ray.remote(num_cpus=0.5, max_restarts=2)
        class Detector:
            def node(self) -> str:
                return ray.get_runtime_context().get_node_id()

        req = PlacementRequest.single({"CPU": 0.5}, client_region="site-1", latency_budget_ms=20)
        opts = placer.options_for(req, policy="latency_first", pin="pool")
        out["options"] = opts
        actor = Detector.options(**opts).remote()
        out["first_node"] = ray.get(actor.node.remote(), timeout=60)
        # The same through yuanrong's API: a named instance that may be restarted is placed by the
        # policy and pinned to its pool, so Ray restarts it in the runner-up pool.
        tracker = Tracker.options(yr.InvokeOptions(
            cpu=500, memory=0, name="tracker", recover_retry_times=2, client_region="site-1",
            latency_budget_ms=20, placement_policy="latency_first")).invoke()
        out["yr_first_node"] = yr.get(tracker.node.invoke(), timeout=60)
        out["edge1"] = cluster.node_ids("edge-1")[0]
        out["edge2"] = cluster.node_ids("edge-2")[0]
        cluster.remove_node("edge-1")
        out["after_node"] = _until_answered(lambda: ray.get(actor.node.remote(), timeout=10))
        out["yr_after_node"] = _until_answered(
            lambda: yr.get(yr.get_instance("tracker").node.invoke(), timeout=10))
        again = placer.decide(PlacementRequest.single({"CPU": 1}, client_region="site-1", latency_budget_ms=20),
                              policy="latency_first", fresh=True)
        out["redecision"] = again.node_ids
        out["redecision_explain"] = again.explain()
        out["edge1_alive_in_snapshot"] = [n.alive for n in placer.snapshot(fresh=True).nodes if n.pool == "edge-1"]
    finally:
        yr.finalize()
        cluster.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    path = sys.argv[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(POOLS_YAML)
    sys.exit(main(path))
