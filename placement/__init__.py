"""placement: pool-aware scheduling of bundle groups across edge, fog and cloud node pools.

The core is pure (no Ray): describe pools (:func:`load_pools`), take a :class:`ClusterSnapshot`,
build a :class:`PlacementRequest` and call :func:`decide` with a policy name from :data:`POLICIES`.
The result is a :class:`Decision` that explains itself. :mod:`placement.ray_adapter` (the only
module that imports Ray) builds snapshots from a live cluster and turns decisions into Ray
placement groups or task/actor options.

Example:
    >>> from placement import Bundle, ClusterSnapshot, Node, PlacementRequest, decide
    >>> snap = ClusterSnapshot([Node("n1", labels={"yr.io/pool": "cloud", "yr.io/tier": "cloud"},
    ...                              total={"CPU": 4})])
    >>> decide(PlacementRequest((Bundle({"CPU": 2}),)), snap).node_ids
    ('n1',)
"""

from __future__ import annotations

from placement.decision import BundlePlacement, Decision, Exclusion, Infeasibility, RunnerUp
from placement.errors import PlacementError, PlacementInfeasible, PoolConfigError
from placement.policies import POLICIES, Policy, Weights, WeightedPolicy, decide, get_policy
from placement.pools import POOLS_SCHEMA, CarbonIntensity, Pool, PoolSet, load_pools, parse_pools
from placement.requests import (
    Affinity,
    AffinityKind,
    AffinityScope,
    AffinityType,
    Bundle,
    LabelOperator,
    OperatorType,
    PlacementRequest,
    Strategy,
)
from placement.snapshot import ClusterSnapshot, Instance, Node

__all__ = [
    "Affinity",
    "AffinityKind",
    "AffinityScope",
    "AffinityType",
    "Bundle",
    "BundlePlacement",
    "CarbonIntensity",
    "ClusterSnapshot",
    "Decision",
    "Exclusion",
    "Infeasibility",
    "Instance",
    "LabelOperator",
    "Node",
    "OperatorType",
    "POLICIES",
    "POOLS_SCHEMA",
    "PlacementError",
    "PlacementInfeasible",
    "PlacementRequest",
    "Policy",
    "Pool",
    "PoolConfigError",
    "PoolSet",
    "RunnerUp",
    "Strategy",
    "WeightedPolicy",
    "Weights",
    "decide",
    "get_policy",
    "load_pools",
    "parse_pools",
]
