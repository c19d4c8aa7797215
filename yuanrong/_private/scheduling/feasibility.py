"""Fail fast on work that can never be placed: a cached view of the live nodes, checked before a
first call, an instance, an endpoint or a resource group is handed to Ray (which would leave it
pending forever)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping

import ray

from placement import labels as pool_labels
from yuanrong.exception import PlacementError


@dataclasses.dataclass(frozen=True)
class NodeView:
    node_id: str
    labels: Mapping[str, str]
    total: Mapping[str, float]


class ClusterView:
    """Alive nodes with their labels and total resources, refreshed at most every ``ttl_s``."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self._ttl_s = ttl_s
        self._nodes: tuple[NodeView, ...] = ()
        self._at = 0.0

    def invalidate(self) -> None:
        self._at = 0.0

    def nodes(self) -> tuple[NodeView, ...]:
        now = time.monotonic()
        if now - self._at > self._ttl_s or not self._nodes:
            self._nodes = tuple(
                NodeView(n["NodeID"], dict(n.get("Labels") or {}), dict(n.get("Resources") or {}))
                for n in ray.nodes() if n.get("Alive"))
            self._at = now
        return self._nodes

    def check(self, *, what: str, pools: tuple[str, ...], tier: str | None, need: Mapping[str, float]) -> None:
        """Raise :class:`PlacementError` if no live node can ever run ``what``.

        A required pool or tier that no node carries, or resources larger than every candidate node,
        can never be satisfied: Ray would leave such work pending forever.
        """
        if os.environ.get("YR_FAIL_FAST_INFEASIBLE", "1") == "0":
            return
        nodes = self.nodes()
        known_pools = sorted({n.labels.get(pool_labels.POOL, "") for n in nodes} - {""})
        unknown = [p for p in pools if p not in known_pools]
        if unknown:
            raise PlacementError(
                f"{what}: pool={unknown[0]!r} does not exist; known pools: {', '.join(known_pools) or '(none)'}. "
                f"Add nodes labelled {pool_labels.POOL}={unknown[0]} to the cluster or pick one of those.",
                explanation=f"no live node carries the label {pool_labels.POOL}={unknown[0]}")
        known_tiers = sorted({n.labels.get(pool_labels.TIER, "") for n in nodes} - {""})
        if tier is not None and tier not in known_tiers:
            raise PlacementError(
                f"{what}: tier={tier!r} does not exist; known tiers: {', '.join(known_tiers) or '(none)'}.",
                explanation=f"no live node carries the label {pool_labels.TIER}={tier}")
        candidates = [n for n in nodes
                      if (not pools or n.labels.get(pool_labels.POOL) in pools)
                      and (tier is None or n.labels.get(pool_labels.TIER) == tier)]
        short = []
        for n in candidates:
            lacking = {k: v for k, v in need.items() if v > 0 and n.total.get(k, 0.0) < v}
            if not lacking:
                return
            short.append((n, lacking))
        scope = f"pool(s) {', '.join(pools)}" if pools else (f"tier {tier}" if tier else "the cluster")
        lines = [
            f"  node {n.node_id[:12]} (pool {n.labels.get(pool_labels.POOL, '-')}): "
            + ", ".join(f"needs {k}={_fmt(k, v)}, has {_fmt(k, n.total.get(k, 0.0))}" for k, v in lacking.items())
            for n, lacking in short
        ]
        explanation = "\n".join(lines) or "  (no node)"
        raise PlacementError(
            f"{what} can never be placed: it needs {_fmt_need(need)} but no node in {scope} has that much.\n"
            f"{explanation}\nLower InvokeOptions.cpu/memory/custom_resources or add a larger node.",
            explanation=explanation)


def _fmt(key: str, value: float) -> str:
    if key == "CPU":
        return f"{value:g} ({int(value * 1000)}m)"
    if key == "memory":
        return f"{value / 2**20:.0f}MB"
    return f"{value:g}"


def _fmt_need(need: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={_fmt(k, v)}" for k, v in need.items() if v > 0) or "no resources"

