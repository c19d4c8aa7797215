"""The activator's scaling decisions: pure functions over a snapshot of its replicas, no Ray.

The activator (:mod:`.activator`) calls these on every request and on a short timer, and does what
they return: start replicas, pick one for a request, release idle ones.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class ReplicaLoad:
    """What the decisions need to know of one replica: requests in flight, and since when it is idle."""

    inflight: int
    idle_since: float | None     # monotonic time of its last completion; None while it serves


def wanted_replicas(demand: int, *, target: float, max_replicas: int) -> int:
    """Replicas for ``demand`` requests (in flight plus waiting) at ``target`` per replica, capped."""
    if demand <= 0:
        return 0
    return min(max_replicas, max(1, math.ceil(demand / target)))


def replicas_to_add(demand: int, have: int, *, target: float, max_replicas: int, upscale_delay_s: float,
                    overloaded_since: float | None, now: float) -> tuple[int, float | None]:
    """How many replicas to start now, and the new ``overloaded_since``.

    ``have`` counts running replicas and those being started. From zero, replicas start at once:
    a request is waiting and nothing can serve it. Above zero, load must exceed the target for
    ``upscale_delay_s`` first, as Serve's autoscaler requires.
    """
    want = wanted_replicas(demand, target=target, max_replicas=max_replicas)
    if want <= have:
        return 0, None
    if have == 0:
        return want, None
    since = now if overloaded_since is None else overloaded_since
    if now - since >= upscale_delay_s:
        return want - have, None
    return 0, since


def least_loaded(loads: Sequence[ReplicaLoad], *, cap: int) -> int | None:
    """Index of the replica with the fewest requests in flight below ``cap``; None if all are full."""
    best, best_load = None, cap
    for i, load in enumerate(loads):
        if load.inflight < best_load:
            best, best_load = i, load.inflight
    return best


def idle_to_release(loads: Sequence[ReplicaLoad], *, now: float, downscale_delay_s: float,
                    min_replicas: int = 0) -> list[int]:
    """Indices of replicas idle for at least ``downscale_delay_s``, longest idle first, keeping ``min_replicas``."""
    idle = sorted((load.idle_since, i) for i, load in enumerate(loads)
                  if load.inflight == 0 and load.idle_since is not None
                  and now - load.idle_since >= downscale_delay_s)
    releasable = max(0, len(loads) - min_replicas)
    return [i for _, i in idle[:releasable]]


def replica_pool(selector: Mapping[str, str] | None, tier: str | None, pools: Mapping[str, str | None], *,
                 pool_label: str, tier_label: str) -> str | None:
    """The pool an activator keeps its warm workers and starts its replicas in.

    ``selector`` is the endpoint's resolved ``label_selector`` (a pool ``"edge-1"`` or
    ``"in(edge-1,edge-2)"``, and/or a tier); ``pools`` maps each live pool to its tier. The first
    allowed pool in the endpoint's own order wins (sorted when only a tier or nothing is given);
    None when no live pool is allowed.
    """
    selector = selector or {}
    wanted_tier = selector.get(tier_label, tier)
    value = selector.get(pool_label)
    if value is None:
        allowed = sorted(pools)
    elif value.startswith("in(") and value.endswith(")"):
        allowed = [p.strip() for p in value[3:-1].split(",") if p.strip()]
    else:
        allowed = [value]
    for pool in allowed:
        if pool in pools and (wanted_tier is None or pools[pool] == wanted_tier):
            return pool
    return None
