"""``yr status``: collect the cluster snapshot (plus named datasets) and render it as a table."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from yuanrong.cli import _ray_state
from yuanrong.cli._errors import CommandFailed

_GIB = 1024 ** 3


def collect(address: str, *, declared_pools: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The status snapshot of the cluster at ``address``, with a ``datasets`` section.

    Raises:
        CommandFailed: The cluster's GCS did not answer.
    """
    try:
        tables = _ray_state.read_tables(address)
    except ConnectionError as exc:
        raise CommandFailed(f"cannot read the state of the cluster at {address}: {exc}; check the address, that "
                            "this host has the cluster's token (~/.ray/auth_token) and, if the cluster uses TLS, "
                            "RAY_USE_TLS=1 and the RAY_TLS_* files.") from None
    snapshot = _ray_state.build_snapshot(tables, address=address, declared_pools=declared_pools)
    snapshot["datasets"] = _datasets(address)
    return snapshot


def _datasets(address: str) -> dict[str, Any]:
    """Named datasets from the datashare catalogue, if the installed datashare offers ``list()``."""
    try:
        datashare = importlib.import_module("datashare")
    except ImportError:
        datashare = None
    lister = getattr(datashare, "list", None)
    if not callable(lister):
        return {"available": False, "message": "datashare catalogue not available", "items": []}
    try:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
        items = [_dataset_entry(item) for item in lister()]
    except Exception as exc:  # the catalogue is optional; status must still work without it
        return {"available": False, "message": f"datashare catalogue unavailable ({type(exc).__name__}: {exc})",
                "items": []}
    return {"available": True, "message": None, "items": items}


def _dataset_entry(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"name": item}
    if isinstance(item, Mapping):
        return {str(k): v for k, v in item.items()}
    fields = ("name", "pool", "num_rows", "nbytes", "node_id", "version")
    entry = {f: getattr(item, f) for f in fields if hasattr(item, f)}
    return entry or {"name": str(item)}


def render_table(snapshot: Mapping[str, Any]) -> str:
    """A human-readable table of the snapshot, one block per pool."""
    lines = [f"cluster {snapshot['address']}"]
    if snapshot.get("dead_nodes"):
        lines[0] += f"  ({snapshot['dead_nodes']} dead node(s) not shown)"
    header = f"{'POOL':<12} {'TIER':<6} {'NODES':>5} {'CPU used/total':>15} {'MEM free':>9} {'STORE free':>10} {'INSTANCES':>9}"
    lines += ["", header]
    for pool in snapshot["pools"]:
        res = pool["resources"]
        cpu = res.get("CPU", {"used": 0.0, "total": 0.0})
        lines.append(
            f"{pool['name']:<12} {pool['tier'] or '-':<6} {len(pool['nodes']):>5} "
            f"{_num(cpu['used']) + '/' + _num(cpu['total']):>15} {_gib(res.get('memory', {}).get('free')):>9} "
            f"{_gib(res.get('object_store_memory', {}).get('free')):>10} {len(pool['instances']):>9}"
        )
    for pool in snapshot["pools"]:
        if not pool["nodes"]:
            continue
        lines += ["", f"pool {pool['name']}" + ("" if pool["declared"] else "  (not in the pools file)")]
        for node in pool["nodes"]:
            custom = {k: v for k, v in node["resources"].items() if k not in ("CPU", "GPU", "memory", "object_store_memory")}
            extra = " ".join(f"{k}={_num(v['free'])}/{_num(v['total'])}" for k, v in custom.items())
            region = node["labels"].get("yr.io/region", "-")
            cpu = node["resources"].get("CPU", {"free": 0.0, "total": 0.0})
            lines.append(f"  node {node['node_id'][:12]} {node['address'] or '-':<15} region={region:<10} "
                         f"CPU free {_num(cpu['free'])}/{_num(cpu['total'])}"
                         f"{' ' + extra if extra else ''}{'  (head)' if node['is_head'] else ''}")
        named = [i for i in pool["instances"] if i["name"]]
        if pool["instances"]:
            lines.append(f"  instances: {len(pool['instances'])}"
                         + (f" (named: {', '.join(_short(n) for n in sorted(i['name'] for i in named)[:8])})" if named else ""))
        if pool.get("warm_workers"):
            lines.append(f"  warm workers: {pool['warm_workers']} (idle, or running an instance they adopted)")
        for ep in pool["endpoints"]:
            lines.append(f"  endpoint {ep['application']}/{ep['deployment']}: {ep['replicas']} replica(s)")
    datasets = snapshot.get("datasets") or {}
    lines.append("")
    if datasets.get("available"):
        names = [str(d.get("name", "?")) for d in datasets["items"]]
        lines.append(f"datasets: {', '.join(names) if names else '(none)'}")
    else:
        lines.append(f"datasets: {datasets.get('message') or 'datashare catalogue not available'}")
    return "\n".join(lines)


def _short(name: str, width: int = 32) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _num(value: float) -> str:
    return f"{value:g}"


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value / _GIB:.1f}G"
