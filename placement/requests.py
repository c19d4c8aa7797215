"""Placement requests: a group of bundles placed all-or-nothing, with constraints per bundle.

Affinity follows openYuanrong's model: a rule (:class:`Affinity`) has a kind (``RESOURCE`` matches
node labels, ``INSTANCE`` matches labels of instances already placed on a node), a type
(``REQUIRED``, ``REQUIRED_ANTI``, ``PREFERRED``, ``PREFERRED_ANTI``) and label operators that are
ANDed. Rules of the same kind and type are ORed; among preferred rules, earlier ones (or a higher
``priority``) weigh more.

Example:
    >>> req = PlacementRequest(
    ...     bundles=(
    ...         Bundle({"CPU": 1}, tiers=("edge",)),
    ...         Bundle({"CPU": 2}, pools=("cloud",)),
    ...     ),
    ...     strategy=Strategy.SPREAD, client_region="site-1", latency_budget_ms=50,
    ... )
    >>> len(req.bundles)
    2
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType


class Strategy(str, enum.Enum):
    """How the bundles of one group relate to each other (same meaning as Ray's)."""

    PACK = "PACK"
    SPREAD = "SPREAD"
    STRICT_PACK = "STRICT_PACK"
    STRICT_SPREAD = "STRICT_SPREAD"


class AffinityKind(str, enum.Enum):
    RESOURCE = "RESOURCE"
    INSTANCE = "INSTANCE"


class AffinityType(str, enum.Enum):
    PREFERRED = "PREFERRED"
    PREFERRED_ANTI = "PREFERRED_ANTI"
    REQUIRED = "REQUIRED"
    REQUIRED_ANTI = "REQUIRED_ANTI"


class OperatorType(str, enum.Enum):
    LABEL_IN = "LABEL_IN"
    LABEL_NOT_IN = "LABEL_NOT_IN"
    LABEL_EXISTS = "LABEL_EXISTS"
    LABEL_NOT_EXISTS = "LABEL_NOT_EXISTS"


def _enum(cls: type[enum.Enum], value: object, field: str) -> enum.Enum:
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        valid = ", ".join(m.value for m in cls)  # type: ignore[attr-defined]
        raise ValueError(f"{field}={value!r} is not a {cls.__name__}; valid ones are {valid}.") from None


def _names(value: Iterable[str] | str, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    out = tuple(value)
    for item in out:
        if not isinstance(item, str) or not item:
            raise TypeError(f"{field} contains {item!r}; it must hold non-empty strings (pool, tier or node names).")
    return out


@dataclasses.dataclass(frozen=True)
class LabelOperator:
    """One label test: ``LABEL_IN``/``LABEL_NOT_IN`` take values; the ``EXISTS`` forms take none.

    Args:
        op: The operator.
        key: Label key, e.g. ``yr.io/site``.
        values: Values for ``LABEL_IN`` / ``LABEL_NOT_IN``.
    """

    op: OperatorType
    key: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", _enum(OperatorType, self.op, "op"))
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"LabelOperator key={self.key!r} is not a non-empty string; give a label key.")
        values = _names(self.values, "LabelOperator values")
        object.__setattr__(self, "values", values)
        if self.op in (OperatorType.LABEL_IN, OperatorType.LABEL_NOT_IN) and not values:
            raise ValueError(f"LabelOperator {self.op.value} on {self.key!r} has no values; give at least one value.")
        if self.op in (OperatorType.LABEL_EXISTS, OperatorType.LABEL_NOT_EXISTS) and values:
            raise ValueError(
                f"LabelOperator {self.op.value} on {self.key!r} was given values {values}; "
                "EXISTS operators take none. Drop the values or use LABEL_IN."
            )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether one label set passes this test (the scalar form of the vectorised engine)."""
        value = labels.get(self.key)
        if self.op is OperatorType.LABEL_IN:
            return value in self.values
        if self.op is OperatorType.LABEL_NOT_IN:
            return value not in self.values
        if self.op is OperatorType.LABEL_EXISTS:
            return value is not None
        return value is None

    def __str__(self) -> str:
        if self.values:
            return f"{self.key} {self.op.value.removeprefix('LABEL_').replace('_', ' ').lower()} ({', '.join(self.values)})"
        return f"{self.key} {self.op.value.removeprefix('LABEL_').replace('_', ' ').lower()}"


@dataclasses.dataclass(frozen=True)
class Affinity:
    """An affinity rule: ``kind`` and ``type`` with ANDed label operators.

    Args:
        kind: ``RESOURCE`` (node labels) or ``INSTANCE`` (labels of instances on the node).
        type: ``REQUIRED``, ``REQUIRED_ANTI``, ``PREFERRED`` or ``PREFERRED_ANTI``.
        operators: Label tests, all of which must pass for the rule to match.
        priority: Among preferred rules, a higher priority weighs more (ties: earlier first).
    """

    kind: AffinityKind
    type: AffinityType
    operators: tuple[LabelOperator, ...]
    priority: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(AffinityKind, self.kind, "kind"))
        object.__setattr__(self, "type", _enum(AffinityType, self.type, "type"))
        ops = tuple(self.operators)
        if not ops or not all(isinstance(o, LabelOperator) for o in ops):
            raise ValueError(f"Affinity operators={self.operators!r} must be a non-empty list of LabelOperator.")
        object.__setattr__(self, "operators", ops)

    @property
    def required(self) -> bool:
        return self.type in (AffinityType.REQUIRED, AffinityType.REQUIRED_ANTI)

    @property
    def anti(self) -> bool:
        return self.type in (AffinityType.REQUIRED_ANTI, AffinityType.PREFERRED_ANTI)

    def __str__(self) -> str:
        return f"{self.kind.value} {self.type.value} [{' and '.join(map(str, self.operators))}]"


@dataclasses.dataclass(frozen=True)
class Bundle:
    """Resources for one member of a group and the constraints on where it may go.

    Args:
        resources: Ray resource amounts, e.g. ``{"CPU": 1, "camera": 1}`` (memory in bytes).
        pools: If given, the bundle must land in one of these pools.
        tiers: If given, the bundle must land in one of these tiers.
        preferred_pools: Pools to try first; leaving them is reported as an offload.
        preferred_tiers: Tiers to try first; leaving them is reported as an offload.
        affinities: RESOURCE and INSTANCE affinity rules.
        data_nodes: Ids of nodes holding objects the bundle reads (data locality).
        data_required: If true, the bundle must land on one of ``data_nodes``.
    """

    resources: Mapping[str, float]
    pools: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    preferred_pools: tuple[str, ...] = ()
    preferred_tiers: tuple[str, ...] = ()
    affinities: tuple[Affinity, ...] = ()
    data_nodes: tuple[str, ...] = ()
    data_required: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.resources, Mapping):
            raise TypeError(f"Bundle resources={self.resources!r} is not a mapping; give e.g. {{'CPU': 1}}.")
        res = {}
        for key, value in self.resources.items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or value < 0 or math.isnan(value) or math.isinf(value):
                raise ValueError(
                    f"Bundle resources[{key!r}]={value!r} is not a finite non-negative number; "
                    "give amounts such as {'CPU': 1}."
                )
            if value > 0:
                res[key] = float(value)
        if not res:
            raise ValueError(f"Bundle resources={dict(self.resources)!r} asks for nothing; give at least one positive amount.")
        object.__setattr__(self, "resources", MappingProxyType(res))
        for field in ("pools", "tiers", "preferred_pools", "preferred_tiers", "data_nodes"):
            object.__setattr__(self, field, _names(getattr(self, field), f"Bundle {field}"))
        affinities = tuple(self.affinities)
        for a in affinities:
            if not isinstance(a, Affinity):
                raise TypeError(f"Bundle affinities contains {a!r}; give Affinity objects.")
        object.__setattr__(self, "affinities", affinities)
        if self.data_required and not self.data_nodes:
            raise ValueError("Bundle data_required=True but data_nodes is empty; give the nodes holding the data.")


@dataclasses.dataclass(frozen=True)
class PlacementRequest:
    """A group of bundles placed all-or-nothing.

    Args:
        bundles: The bundles, in the order Ray will index them.
        strategy: PACK, SPREAD, STRICT_PACK or STRICT_SPREAD.
        client_region: Region the group's clients call from; needed for a latency budget.
        latency_budget_ms: Maximum client-to-pool latency for every bundle.
        name: Optional name (becomes the Ray placement group name).
    """

    bundles: tuple[Bundle, ...]
    strategy: Strategy = Strategy.PACK
    client_region: str | None = None
    latency_budget_ms: float | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        bundles = tuple(self.bundles)
        if not bundles:
            raise ValueError("PlacementRequest has no bundles; give at least one Bundle.")
        for b in bundles:
            if not isinstance(b, Bundle):
                raise TypeError(f"PlacementRequest bundles contains {b!r}; give Bundle objects.")
        object.__setattr__(self, "bundles", bundles)
        object.__setattr__(self, "strategy", _enum(Strategy, self.strategy, "strategy"))
        if self.latency_budget_ms is not None:
            if isinstance(self.latency_budget_ms, bool) or not isinstance(self.latency_budget_ms, (int, float)) \
                    or self.latency_budget_ms <= 0:
                raise ValueError(
                    f"latency_budget_ms={self.latency_budget_ms!r} is not a positive number; give milliseconds, e.g. 50."
                )
            if self.client_region is None:
                raise ValueError(
                    f"latency_budget_ms={self.latency_budget_ms} was given without client_region; the budget is "
                    "measured from a client region, so name it (e.g. client_region='site-1')."
                )

    @classmethod
    def single(cls, resources: Mapping[str, float], **constraints: object) -> PlacementRequest:
        """A one-bundle request (a task or an actor); keyword arguments split between bundle and request."""
        req_keys = {"client_region", "latency_budget_ms", "name"}
        req_kw = {k: v for k, v in constraints.items() if k in req_keys}
        bundle_kw = {k: v for k, v in constraints.items() if k not in req_keys}
        return cls(bundles=(Bundle(resources, **bundle_kw),), **req_kw)  # type: ignore[arg-type]
