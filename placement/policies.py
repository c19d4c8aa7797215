"""Placement policies: pure functions from (request, snapshot) to a :class:`Decision`.

Every policy shares one engine. Hard constraints (pools, tiers, RESOURCE and INSTANCE affinity,
latency budget, required data locality, resource shape, free capacity, strategy) filter nodes as
boolean arrays; the survivors are ranked by a weighted sum of score terms, lower is better:

============  ==========================================================  =====================
term          raw value on a node                                         scaled by
============  ==========================================================  =====================
latency       client-region → pool latency (ms)                           max over candidates
cost          Σ demand × pool price ($/h)                                 max over candidates
carbon        pool intensity × watts/CPU × CPUs (gCO2/h)                  max over candidates
load          utilisation of the busiest requested resource after placing  (already 0..1)
locality      0 on a node holding the data, 0.5 in its pool, 1 elsewhere   (already 0..1)
preference    missed preferred pools/tiers/PREFERRED rules, hit ANTI ones  (already 0..1)
tier          rank of the tier in edge < fog < cloud < others              (already 0..1)
group         PACK: 0 on a node of this group; SPREAD: 1 on one            (already 0..1)
hybrid        Ray's default: pack below 50 % utilisation, then spread      (baselines only)
============  ==========================================================  =====================

Policies differ only in weights (:data:`POLICIES`). The weights of :data:`default` are
latency 0.35, cost 0.2, carbon 0.15, load 0.2, locality 0.1 — so latency leads, cost and load
follow, and carbon breaks near-ties — with preference 2 and group 1 so that what the user asked for
explicitly dominates the trade-offs. Bundles are placed greedily, most constrained first, each
reserving its resources before the next is placed; a group fails as a whole.

Example:
    >>> from placement.snapshot import ClusterSnapshot, Node
    >>> from placement.requests import PlacementRequest
    >>> snap = ClusterSnapshot([Node("n1", labels={"yr.io/pool": "cloud", "yr.io/tier": "cloud"},
    ...                              total={"CPU": 4})])
    >>> default(PlacementRequest.single({"CPU": 1}), snap).node_ids
    ('n1',)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Protocol

from placement.decision import Decision
from placement.engine import _Engine
from placement.requests import PlacementRequest
from placement.snapshot import ClusterSnapshot

TERMS = ("latency", "cost", "carbon", "load", "locality", "preference", "tier", "group", "hybrid")


class Policy(Protocol):
    """What every policy is: a name and a pure function of (request, snapshot)."""

    name: str

    def __call__(self, request: PlacementRequest, snapshot: ClusterSnapshot) -> Decision: ...


@dataclasses.dataclass(frozen=True)
class Weights:
    """Weights of the score terms (see the module docstring)."""

    latency: float = 0.0
    cost: float = 0.0
    carbon: float = 0.0
    load: float = 0.0
    locality: float = 0.0
    preference: float = 2.0
    tier: float = 0.0
    group: float = 1.0
    hybrid: float = 0.0

    def __post_init__(self) -> None:
        for name in TERMS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or math.isnan(v):
                raise ValueError(f"Weights.{name}={v!r} is not a non-negative number; give e.g. 0.5.")


@dataclasses.dataclass(frozen=True)
class WeightedPolicy:
    """A policy defined by its weights and which constraints it honours.

    Args:
        name: Policy name.
        weights: Score weights.
        latency_budget: Whether the latency budget is a hard constraint (Ray's baselines cannot see it).
        instance_affinity: Whether INSTANCE affinity is honoured (Ray has none).
        offload_tiers: Tiers treated as preferred when a bundle names no preference; leaving them
            for lack of room is reported as an offload (edge-first uses ``("edge",)``).
        runners_up: How many runner-up nodes to explain per bundle.
    """

    name: str
    weights: Weights
    latency_budget: bool = True
    instance_affinity: bool = True
    offload_tiers: tuple[str, ...] = ()
    runners_up: int = 3

    def __call__(self, request: PlacementRequest, snapshot: ClusterSnapshot) -> Decision:
        return _Engine(self, request, snapshot).decide()


# ------------------------------------------------------------------------------------------------
# The policies.

latency_first = WeightedPolicy("latency_first", Weights(latency=1.0, load=0.05, locality=0.05))
"""Lowest client latency first; load and data locality break ties."""

cost_first = WeightedPolicy("cost_first", Weights(cost=1.0, load=0.05, latency=0.02))
"""Cheapest pool for the bundle's resources; load breaks ties."""

carbon_aware = WeightedPolicy("carbon_aware", Weights(carbon=1.0, latency=0.1, load=0.05))
"""Lowest grid carbon at the snapshot's hour (time-series aware); latency breaks near-ties."""

load_balancing = WeightedPolicy("load_balancing", Weights(load=1.0, latency=0.05))
"""Least utilised node after placement."""

default = WeightedPolicy("default", Weights(latency=0.35, cost=0.2, carbon=0.15, load=0.2, locality=0.1))
"""Weighs latency 0.35, cost 0.2, carbon 0.15, load 0.2, locality 0.1 (preference 2, group 1)."""

edge_first = WeightedPolicy("edge_first", Weights(tier=3.0, latency=0.3, load=0.1, locality=0.05),
                            offload_tiers=("edge",))
"""Edge tier first; when the edge lacks room, offload to the next tier's pool still inside the budget."""

ray_label_pinning = WeightedPolicy(
    "ray_label_pinning", Weights(hybrid=1.0, preference=10.0, group=0.5),
    latency_budget=False, instance_affinity=False, runners_up=0)
"""Baseline: what Ray does with label selectors (required pools/labels, preferred ones as ordered
fallbacks) and its default hybrid node choice; no latency budget, cost, carbon or instance affinity."""

ray_pack_spread = WeightedPolicy(
    "ray_pack_spread", Weights(hybrid=1.0, preference=0.0, group=0.5),
    latency_budget=False, instance_affinity=False, runners_up=0)
"""Baseline: Ray's default scheduling — pack a node to 50 %, then spread — honouring only hard labels."""

POLICIES: Mapping[str, WeightedPolicy] = {
    p.name: p for p in (default, latency_first, cost_first, carbon_aware, load_balancing, edge_first,
                        ray_label_pinning, ray_pack_spread)
}
"""Every built-in policy by name; the last two are baselines that mimic Ray."""


def get_policy(name: str | Policy) -> Policy:
    """Look a policy up by name (or pass a policy object through).

    Raises:
        ValueError: The name is unknown; the message lists the known ones.
    """
    if not isinstance(name, str):
        if callable(name) and hasattr(name, "name"):
            return name
        raise TypeError(f"policy={name!r} is neither a policy name nor a policy; give e.g. 'default'.")
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(
            f"policy={name!r} does not exist; known policies: {', '.join(POLICIES)}. Pick one of those."
        ) from None


def decide(request: PlacementRequest, snapshot: ClusterSnapshot, *, policy: str | Policy = "default") -> Decision:
    """Decide a placement with the named policy (a pure function; nothing is reserved anywhere).

    Args:
        request: What to place.
        snapshot: The cluster as it is now.
        policy: A policy name from :data:`POLICIES` or a policy object.

    Returns:
        The decision; check ``decision.feasible`` or call ``decision.raise_if_infeasible()``.
    """
    return get_policy(policy)(request, snapshot)
