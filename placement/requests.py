"""Placement requests: a group of bundles placed all-or-nothing, with constraints per bundle.

Affinity follows openYuanrong's model, and is the one model of it (``yuanrong.Affinity`` is a strict
front door to it): a rule (:class:`Affinity`) has a kind (``RESOURCE`` matches node labels,
``INSTANCE`` matches labels of instances already placed on a node), a type
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


class _Coded(int, enum.Enum):
    """An enum whose value is its name (what explanations print and requests accept as text) and
    which is also openYuanrong's integer code, so ``AffinityType.REQUIRED == 2`` and
    ``AffinityType(2) is AffinityType.REQUIRED`` hold as they do in openYuanrong."""

    def __new__(cls, name: str, code: int) -> _Coded:
        member = int.__new__(cls, code)
        member._value_ = name
        return member

    def __repr__(self) -> str:
        # Enum's repr would format the (str) value with int's repr.
        return f"<{type(self).__name__}.{self.name}: {int(self)}>"

    @classmethod
    def _missing_(cls, value: object) -> _Coded | None:
        if isinstance(value, int) and not isinstance(value, bool):
            return next((m for m in cls if int(m) == value), None)
        return None


class AffinityKind(_Coded):
    """What a rule's labels are matched against."""

    RESOURCE = ("RESOURCE", 10)
    """Node labels."""
    INSTANCE = ("INSTANCE", 20)
    """Labels of instances already placed on the node."""


class AffinityType(_Coded):
    """How strongly a rule binds."""

    PREFERRED = ("PREFERRED", 0)
    PREFERRED_ANTI = ("PREFERRED_ANTI", 1)
    REQUIRED = ("REQUIRED", 2)
    REQUIRED_ANTI = ("REQUIRED_ANTI", 3)


class AffinityScope(_Coded):
    """The granularity an INSTANCE rule is evaluated at (openYuanrong); on Ray every rule is per node."""

    POD = ("POD", 1)
    NODE = ("NODE", 2)


class OperatorType(_Coded):
    """How a label is matched."""

    LABEL_IN = ("LABEL_IN", 0)
    LABEL_NOT_IN = ("LABEL_NOT_IN", 1)
    LABEL_EXISTS = ("LABEL_EXISTS", 2)
    LABEL_NOT_EXISTS = ("LABEL_NOT_EXISTS", 3)


_UNSET: object = object()


def _one_of(field: str, value: object, alias: str, alias_value: object, default: object = _UNSET) -> object:
    """The value given under a field's engine name or its openYuanrong name (not both)."""
    if value is not _UNSET and alias_value is not _UNSET:
        raise TypeError(f"{field} and {alias} name the same argument; give one of them.")
    out = value if value is not _UNSET else alias_value
    if out is _UNSET:
        if default is _UNSET:
            raise TypeError(f"missing argument {field} (openYuanrong: {alias}).")
        return default
    return out


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


@dataclasses.dataclass(frozen=True, init=False)
class LabelOperator:
    """One label test: ``LABEL_IN``/``LABEL_NOT_IN`` take values; the ``EXISTS`` forms take none.

    Takes the engine's names (``op``) or openYuanrong's (``operator_type``); positionally both are
    ``(operator, key, values)``. Operators are :class:`OperatorType` members or their names.

    Args:
        op: The operator (openYuanrong: ``operator_type``).
        key: Label key, e.g. ``yr.io/site``.
        values: Values for ``LABEL_IN`` / ``LABEL_NOT_IN``.

    Example:
        >>> LabelOperator("LABEL_IN", "yr.io/site", ["factory"]) == LabelOperator(
        ...     operator_type=OperatorType.LABEL_IN, key="yr.io/site", values=("factory",))
        True
    """

    op: OperatorType
    key: str
    values: tuple[str, ...] = ()

    def __init__(self, op: OperatorType | str = _UNSET, key: str = _UNSET,  # type: ignore[assignment]
                 values: Iterable[str] | None = (), *,
                 operator_type: OperatorType | str = _UNSET) -> None:  # type: ignore[assignment]
        op = _enum(OperatorType, _one_of("op", op, "operator_type", operator_type), "op")
        if key is _UNSET:
            raise TypeError("missing argument key: the label key, e.g. 'yr.io/site'.")
        if not isinstance(key, str) or not key:
            raise ValueError(f"LabelOperator key={key!r} is not a non-empty string; give a label key.")
        values = _names(values or (), "LabelOperator values")
        if op in (OperatorType.LABEL_IN, OperatorType.LABEL_NOT_IN) and not values:
            raise ValueError(f"LabelOperator {op.value} on {key!r} has no values; give at least one value.")
        if op in (OperatorType.LABEL_EXISTS, OperatorType.LABEL_NOT_EXISTS) and values:
            raise ValueError(
                f"LabelOperator {op.value} on {key!r} was given values {values}; "
                "EXISTS operators take none. Drop the values or use LABEL_IN."
            )
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "values", values)

    def __eq__(self, other: object) -> bool:
        # By value across subclasses: yuanrong's stricter front door builds the same operator.
        if not isinstance(other, LabelOperator):
            return NotImplemented
        return (self.op, self.key, self.values) == (other.op, other.key, other.values)

    def __hash__(self) -> int:
        return hash((self.op, self.key, self.values))

    @property
    def operator_type(self) -> OperatorType:
        """openYuanrong's name for :attr:`op`."""
        return self.op

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


@dataclasses.dataclass(frozen=True, init=False)
class Affinity:
    """An affinity rule: ``kind`` and ``type`` with ANDed label operators.

    One model for the engine and for openYuanrong's API: positionally both read
    ``(kind, type, operators, scope)``, and openYuanrong's keyword and attribute names
    (``affinity_kind``, ``affinity_type``, ``label_operators``, ``affinity_scope``) work too. Kinds
    and types are enum members or their names.

    Args:
        kind: ``RESOURCE`` (node labels) or ``INSTANCE`` (labels of instances on the node).
        type: ``REQUIRED``, ``REQUIRED_ANTI``, ``PREFERRED`` or ``PREFERRED_ANTI``.
        operators: Label tests, all of which must pass for the rule to match.
        scope: openYuanrong's scope; kept, but on Ray every rule is evaluated per node.
        priority: Among preferred rules, a higher priority weighs more; ties go to the earlier
            rule, which is openYuanrong's order of preference (its rules carry no priority).

    Example:
        >>> a = Affinity(AffinityKind.RESOURCE, AffinityType.REQUIRED,
        ...              [LabelOperator(OperatorType.LABEL_IN, "yr.io/tier", ["edge"])])
        >>> a == Affinity("RESOURCE", "REQUIRED", (LabelOperator("LABEL_IN", "yr.io/tier", ("edge",)),))
        True
        >>> a.affinity_kind is a.kind, a.label_operators is a.operators
        (True, True)
    """

    kind: AffinityKind
    type: AffinityType
    operators: tuple[LabelOperator, ...]
    scope: AffinityScope = AffinityScope.NODE
    priority: int = 0

    def __init__(self, kind: AffinityKind | str = _UNSET, type: AffinityType | str = _UNSET,  # type: ignore[assignment]
                 operators: Iterable[LabelOperator] = _UNSET,  # type: ignore[assignment]
                 scope: AffinityScope | str = _UNSET, *, priority: int = 0,  # type: ignore[assignment]
                 affinity_kind: AffinityKind | str = _UNSET, affinity_type: AffinityType | str = _UNSET,  # type: ignore[assignment]
                 label_operators: Iterable[LabelOperator] = _UNSET,  # type: ignore[assignment]
                 affinity_scope: AffinityScope | str = _UNSET) -> None:  # type: ignore[assignment]
        kind = _enum(AffinityKind, _one_of("kind", kind, "affinity_kind", affinity_kind), "kind")
        type = _enum(AffinityType, _one_of("type", type, "affinity_type", affinity_type), "type")
        given = _one_of("operators", operators, "label_operators", label_operators)
        scope = _enum(AffinityScope, _one_of("scope", scope, "affinity_scope", affinity_scope, AffinityScope.NODE),
                      "scope")
        ops = tuple(given)  # type: ignore[call-overload]
        if not ops or not all(isinstance(o, LabelOperator) for o in ops):
            raise ValueError(f"Affinity operators={given!r} must be a non-empty list of LabelOperator.")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"Affinity priority={priority!r} is not an int; give e.g. 5 (higher weighs more).")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "operators", ops)
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "priority", priority)

    def __eq__(self, other: object) -> bool:
        # By value across subclasses: yuanrong's stricter front door builds the same rule.
        if not isinstance(other, Affinity):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        return self.kind, self.type, self.operators, self.scope, self.priority

    @property
    def affinity_kind(self) -> AffinityKind:
        """openYuanrong's name for :attr:`kind`."""
        return self.kind

    @property
    def affinity_type(self) -> AffinityType:
        """openYuanrong's name for :attr:`type`."""
        return self.type

    @property
    def label_operators(self) -> tuple[LabelOperator, ...]:
        """openYuanrong's name for :attr:`operators`."""
        return self.operators

    @property
    def affinity_scope(self) -> AffinityScope:
        """openYuanrong's name for :attr:`scope`."""
        return self.scope

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
