"""Can this ever be placed? A fail-fast check over the live nodes' labels and total resources.

Ray leaves work whose pool, tier or size no node can ever satisfy pending forever, silently. This
module answers, without Ray and before anything is submitted, whether a bundle — or a group of
bundles under a strategy — could run on the cluster if it were idle: every required pool and tier
exists on some live node, and some node of them is large enough. It looks only at *total*
resources; whether there is free room *now* is the policies' question.

Nodes are any records with ``node_id``, ``labels`` and ``total`` (and optionally ``alive``): a
:class:`NodeRecord`, or a :class:`placement.snapshot.Node`.

Example:
    >>> nodes = [NodeRecord("n1", {"yr.io/pool": "edge-1", "yr.io/tier": "edge"}, {"CPU": 2.0})]
    >>> check_bundle(nodes, what="function f", need={"CPU": 1.0}, pools=("edge-1",))
    >>> check_bundle(nodes, what="function f", need={"CPU": 1.0}, pools=("edge-9",))
    Traceback (most recent call last):
    ...
    placement.errors.PlacementInfeasible: function f: pool='edge-9' does not exist; known pools: edge-1. ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from placement import labels as label_keys
from placement.errors import PlacementInfeasible
from placement.requests import Strategy

DEFAULT_FIX = "Ask for less or add a larger node."
"""The last line of a too-large message; callers with their own option names pass ``fix=``."""


class NodeLike(Protocol):
    """What the checker reads of a node."""

    node_id: str
    labels: Mapping[str, str]
    total: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class NodeRecord:
    """A live node as the checker sees it.

    Args:
        node_id: Ray node id (hex).
        labels: Node labels (``yr.io/pool``, ``yr.io/tier``, ...).
        total: Total resources in Ray units (CPU, memory in bytes, custom resources).
    """

    node_id: str
    labels: Mapping[str, str]
    total: Mapping[str, float]


def _alive(nodes: Iterable[NodeLike]) -> list[NodeLike]:
    return [n for n in nodes if getattr(n, "alive", True)]


def unknown_pool(pool: str, known: Sequence[str]) -> str:
    """The one wording of a pool nobody has: ``pool='edge-9' does not exist; known pools: cloud, edge-1``."""
    return f"pool={pool!r} does not exist; known pools: {', '.join(known) or '(none)'}"


def check_bundle(nodes: Iterable[NodeLike], *, what: str, need: Mapping[str, float], pools: Sequence[str] = (),
                 tier: str | None = None, fix: str = DEFAULT_FIX) -> None:
    """Raise unless some live node could ever run ``need`` inside ``pools`` and ``tier``.

    Args:
        nodes: The cluster's nodes (dead ones, if marked ``alive=False``, are ignored).
        what: How the message names the work, e.g. ``"function f"`` or ``"resource group 'g' bundle 0"``.
        need: Resources in Ray units; amounts of 0 are ignored.
        pools: Required pools (any of them); empty means any pool.
        tier: Required tier, or ``None``.
        fix: The message's last line, saying how to ask for less.

    Raises:
        PlacementInfeasible: A pool or tier no live node carries, or no candidate node is that large;
            ``explanation`` is the per-node detail (a string).
    """
    nodes = _alive(nodes)
    known_pools = sorted({n.labels.get(label_keys.POOL, "") for n in nodes} - {""})
    missing = [p for p in pools if p not in known_pools]
    if missing:
        raise PlacementInfeasible(
            f"{what}: {unknown_pool(missing[0], known_pools)}. "
            f"Add nodes labelled {label_keys.POOL}={missing[0]} to the cluster or pick one of those.",
            explanation=f"no live node carries the label {label_keys.POOL}={missing[0]}")
    known_tiers = sorted({n.labels.get(label_keys.TIER, "") for n in nodes} - {""})
    if tier is not None and tier not in known_tiers:
        raise PlacementInfeasible(
            f"{what}: tier={tier!r} does not exist; known tiers: {', '.join(known_tiers) or '(none)'}.",
            explanation=f"no live node carries the label {label_keys.TIER}={tier}")
    candidates = [n for n in nodes
                  if (not pools or n.labels.get(label_keys.POOL) in pools)
                  and (tier is None or n.labels.get(label_keys.TIER) == tier)]
    short = []
    for n in candidates:
        lacking = {k: v for k, v in need.items() if v > 0 and n.total.get(k, 0.0) < v}
        if not lacking:
            return
        short.append((n, lacking))
    scope = f"pool(s) {', '.join(pools)}" if pools else (f"tier {tier}" if tier else "the cluster")
    lines = [
        f"  node {n.node_id[:12]} (pool {n.labels.get(label_keys.POOL, '-')}): "
        + ", ".join(f"needs {k}={format_amount(k, v)}, has {format_amount(k, n.total.get(k, 0.0))}"
                    for k, v in lacking.items())
        for n, lacking in short
    ]
    explanation = "\n".join(lines) or "  (no node)"
    raise PlacementInfeasible(
        f"{what} can never be placed: it needs {format_need(need)} but no node in {scope} has that much.\n"
        f"{explanation}\n{fix}",
        explanation=explanation)


def check_group(nodes: Iterable[NodeLike], bundles: Sequence[Mapping[str, float]], strategy: Strategy | str, *,
                what: str, pools: Sequence[str] = (), tier: str | None = None, fix: str = DEFAULT_FIX) -> None:
    """Raise unless ``bundles`` could ever be placed together under ``strategy``.

    STRICT_PACK needs one node holding the sum of the bundles; every other strategy needs each bundle
    to fit some node, and STRICT_SPREAD also needs as many live nodes as bundles.

    Args:
        nodes: The cluster's nodes.
        bundles: The bundles in Ray units.
        strategy: PACK, SPREAD, STRICT_PACK or STRICT_SPREAD.
        what: How the message names the group, e.g. ``"resource group 'g'"``.
        pools: Pools every bundle is restricted to (empty: any).
        tier: Tier every bundle is restricted to.
        fix: The last line of a too-large message.

    Raises:
        PlacementInfeasible: The group can never be placed; the message says which bundle or rule.
    """
    strategy = Strategy(strategy)
    nodes = _alive(nodes)
    if strategy is Strategy.STRICT_PACK:
        total: dict[str, float] = {}
        for b in bundles:
            for k, v in b.items():
                total[k] = total.get(k, 0.0) + v
        check_bundle(nodes, what=f"{what} (STRICT_PACK: all bundles on one node)", need=total, pools=pools,
                     tier=tier, fix=fix)
        return
    for i, b in enumerate(bundles):
        check_bundle(nodes, what=f"{what} bundle {i}", need=b, pools=pools, tier=tier, fix=fix)
    if strategy is Strategy.STRICT_SPREAD and len(bundles) > len(nodes):
        raise PlacementInfeasible(
            f"{what} can never be placed: STRICT_SPREAD needs {len(bundles)} different nodes but the cluster "
            f"has {len(nodes)}. Use SPREAD, or fewer bundles.",
            explanation=f"{len(bundles)} bundles > {len(nodes)} nodes")


def format_amount(key: str, value: float) -> str:
    """A resource amount as users give it: CPU also in millicores, memory in MB."""
    if key == "CPU":
        return f"{value:g} ({int(value * 1000)}m)"
    if key == "memory":
        return f"{value / 2**20:.0f}MB"
    return f"{value:g}"


def format_need(need: Mapping[str, float]) -> str:
    """The non-zero amounts of ``need``, e.g. ``CPU=2 (2000m), memory=256MB``."""
    return ", ".join(f"{k}={format_amount(k, v)}" for k, v in need.items() if v > 0) or "no resources"
