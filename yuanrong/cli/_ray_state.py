"""A read-only snapshot of a running cluster, grouped by pool, for ``yr status`` and ``yr local up``.

This is the command line's only adapter to Ray's state. It reads the GCS tables (nodes, resources,
actors) through ``ray._private.state.GlobalState`` — the same accessor behind the public
``ray.nodes()`` — without connecting as a driver, so it is fast and leaves no job behind. That is a
private Ray API; a Ray upgrade may need this module changed, and nothing else.

Building the snapshot (:func:`build_snapshot`) is a pure function of the tables, tested without Ray.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from placement import labels as label_keys

UNLABELLED = "(no pool)"
"""Pool name shown for nodes without a ``yr.io/pool`` label."""

_SHOWN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
_HIDDEN_PREFIXES = ("node:", "accelerator_type:")
_SERVE_REPLICA_PREFIX = "ServeReplica:"
# Actor classes of yuanrong's warm workers (yuanrong/_private/core/warm_workers.py); the GCS table
# cannot tell an idle one from one that adopted an instance.
WARM_WORKER_CLASSES = ("WarmWorker", "AsyncWarmWorker")


def read_tables(address: str) -> dict[str, Any]:
    """Read the node, resource and actor tables of the cluster at ``address``.

    Raises:
        ConnectionError: The GCS did not answer.
    """
    state = _global_state(address)
    try:
        nodes = state.node_table()
        totals = state.total_resources_per_node()
        available = state.available_resources_per_node()
        actors = state.actor_table(None)
    except Exception as exc:  # the accessor raises RaySystemError and friends
        raise ConnectionError(f"the GCS at {address} did not answer ({exc})") from exc
    finally:
        state.disconnect()
    return {"nodes": nodes, "totals": totals, "available": available, "actors": actors}


def wait_for_nodes(address: str, *, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Wait until ``count`` nodes are alive; return the alive nodes' table rows.

    Raises:
        TimeoutError: Fewer nodes were alive when the time ran out.
    """
    deadline = time.monotonic() + timeout_s
    alive: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            alive = [n for n in read_tables(address)["nodes"] if n.get("Alive")]
        except ConnectionError:
            alive = []
        if len(alive) >= count:
            return alive
        time.sleep(0.5)
    raise TimeoutError(f"only {len(alive)} of {count} nodes registered with {address} within {timeout_s:.0f} s")


def _global_state(address: str) -> Any:
    from ray._private.state import GlobalState
    from ray._raylet import GcsClientOptions

    state = GlobalState()
    state._initialize_global_state(
        GcsClientOptions.create(address, None, allow_cluster_id_nil=True, fetch_cluster_id_if_nil=False)
    )
    return state


def build_snapshot(tables: Mapping[str, Any], *, address: str,
                   declared_pools: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Group nodes, resources, instances, warm workers and Serve endpoints by pool.

    Args:
        tables: What :func:`read_tables` returns.
        address: The cluster's address, echoed in the snapshot.
        declared_pools: Pools from the pools file (name -> object with ``tier``), listed even
            when no node of theirs is alive.

    Returns:
        A JSON-serialisable dict: ``address``, ``pools`` (list, sorted by name), ``dead_nodes``.
    """
    declared_pools = declared_pools or {}
    node_pool: dict[str, str] = {}
    pools: dict[str, dict[str, Any]] = {}

    def pool_entry(name: str, tier: str | None) -> dict[str, Any]:
        return pools.setdefault(name, {
            "name": name, "tier": tier, "declared": name in declared_pools,
            "nodes": [], "resources": {}, "instances": [], "endpoints": [], "warm_workers": 0,
        })

    for name, pool in declared_pools.items():
        pool_entry(name, getattr(pool, "tier", None))
    dead = 0
    for node in tables.get("nodes", []):
        if not node.get("Alive"):
            dead += 1
            continue
        labels = dict(node.get("Labels") or {})
        node_id = node.get("NodeID", "")
        name = labels.get(label_keys.POOL, UNLABELLED)
        entry = pool_entry(name, labels.get(label_keys.TIER))
        if entry["tier"] is None:
            entry["tier"] = labels.get(label_keys.TIER)
        node_pool[node_id] = name
        total = _resource_view(tables.get("totals", {}).get(node_id) or node.get("Resources") or {})
        free = _resource_view(tables.get("available", {}).get(node_id, total))
        resources = {
            key: {"total": total[key], "free": free.get(key, 0.0), "used": round(total[key] - free.get(key, 0.0), 6)}
            for key in total
        }
        entry["nodes"].append({
            "node_id": node_id,
            "address": node.get("NodeManagerAddress"),
            "is_head": bool(node.get("IsHeadNode") or "node:__internal_head__" in (node.get("Resources") or {})),
            "labels": labels,
            "resources": resources,
        })
        for key, value in resources.items():
            agg = entry["resources"].setdefault(key, {"total": 0.0, "used": 0.0, "free": 0.0})
            for part in ("total", "used", "free"):
                agg[part] = round(agg[part] + value[part], 6)

    endpoints: dict[tuple[str, str, str], int] = {}
    for actor_id, actor in (tables.get("actors") or {}).items():
        if actor.get("State") != "ALIVE":
            continue
        node_id = (actor.get("Address") or {}).get("NodeID", "")
        name = node_pool.get(node_id)
        if name is None:
            continue
        class_name = actor.get("ActorClassName", "")
        if class_name in WARM_WORKER_CLASSES:
            pools[name]["warm_workers"] += 1
            continue
        pools[name]["instances"].append({
            "actor_id": actor_id, "class_name": class_name, "name": actor.get("Name") or None,
            "node_id": node_id, "detached": bool(actor.get("IsDetached")),
        })
        if class_name.startswith(_SERVE_REPLICA_PREFIX):
            _, _, rest = class_name.partition(":")
            app, _, deployment = rest.partition(":")
            endpoints[(name, app, deployment)] = endpoints.get((name, app, deployment), 0) + 1
    for (name, app, deployment), replicas in sorted(endpoints.items()):
        pools[name]["endpoints"].append({"application": app, "deployment": deployment, "replicas": replicas})
    for entry in pools.values():
        entry["nodes"].sort(key=lambda n: (not n["is_head"], n["node_id"]))
        entry["instances"].sort(key=lambda a: (a["class_name"], a["actor_id"]))
    return {
        "address": address,
        "pools": [pools[name] for name in sorted(pools)],
        "dead_nodes": dead,
    }


def _resource_view(resources: Mapping[str, float]) -> dict[str, float]:
    return {
        key: float(value) for key, value in sorted(resources.items())
        if key in _SHOWN_RESOURCES or not key.startswith(_HIDDEN_PREFIXES)
    }
