"""Affinity rules, with openYuanrong's names: where an instance or call may run.

``RESOURCE`` rules match node labels (for example ``yr.io/pool`` or ``yr.io/site``);
``INSTANCE`` rules match the ``labels`` of instances already placed on a node (co-locate with, or
keep away from, them). Operators inside one rule are ANDed; rules of the same kind and type are
ORed.

Example:
    >>> rule = Affinity(AffinityKind.RESOURCE, AffinityType.REQUIRED,
    ...                 [LabelOperator(OperatorType.LABEL_IN, "yr.io/tier", ["edge"])])
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

from yuanrong.exception import InvalidOptionError

__all__ = ["Affinity", "AffinityKind", "AffinityScope", "AffinityType", "LabelOperator", "OperatorType"]


class AffinityKind(enum.IntEnum):
    """What a rule's labels are matched against."""

    RESOURCE = 10
    """Node labels."""
    INSTANCE = 20
    """Labels of instances already placed on the node."""


class AffinityType(enum.IntEnum):
    """How strongly a rule binds."""

    PREFERRED = 0
    PREFERRED_ANTI = 1
    REQUIRED = 2
    REQUIRED_ANTI = 3


class AffinityScope(enum.IntEnum):
    """The granularity an INSTANCE rule is evaluated at; nodes are the only scope on Ray."""

    POD = 1
    NODE = 2


class OperatorType(enum.IntEnum):
    """How a label is matched."""

    LABEL_IN = 0
    LABEL_NOT_IN = 1
    LABEL_EXISTS = 2
    LABEL_NOT_EXISTS = 3


@dataclasses.dataclass(frozen=True)
class LabelOperator:
    """One label condition.

    Args:
        operator_type: How to match.
        key: The label key.
        values: The values for ``LABEL_IN`` / ``LABEL_NOT_IN``; empty for the existence operators.
    """

    operator_type: OperatorType
    key: str
    values: tuple[str, ...] = ()

    def __init__(self, operator_type: OperatorType, key: str, values: Sequence[str] | None = None) -> None:
        if not isinstance(operator_type, OperatorType):
            raise InvalidOptionError(
                f"LabelOperator operator_type={operator_type!r} is not an OperatorType; use one of "
                f"{', '.join('OperatorType.' + o.name for o in OperatorType)}.",
                option="operator_type", value=operator_type)
        if not isinstance(key, str) or not key:
            raise InvalidOptionError(f"LabelOperator key={key!r} must be a non-empty string.", option="key", value=key)
        vals = tuple(values or ())
        if any(not isinstance(v, str) for v in vals):
            raise InvalidOptionError(f"LabelOperator values={list(vals)!r} must all be strings.",
                                     option="values", value=values)
        if operator_type in (OperatorType.LABEL_IN, OperatorType.LABEL_NOT_IN) and not vals:
            raise InvalidOptionError(
                f"LabelOperator {operator_type.name} on key {key!r} needs at least one value; "
                f"use LABEL_EXISTS / LABEL_NOT_EXISTS to test for the key alone.", option="values", value=values)
        object.__setattr__(self, "operator_type", operator_type)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "values", vals)


@dataclasses.dataclass(frozen=True)
class Affinity:
    """One affinity rule: a kind, a type and the label conditions that must all hold.

    Args:
        affinity_kind: ``RESOURCE`` (node labels) or ``INSTANCE`` (labels of placed instances).
        affinity_type: ``REQUIRED``, ``REQUIRED_ANTI``, ``PREFERRED`` or ``PREFERRED_ANTI``.
        label_operators: Conditions, ANDed.
        affinity_scope: Kept for compatibility; on Ray every rule is evaluated per node.
    """

    affinity_kind: AffinityKind
    affinity_type: AffinityType
    label_operators: tuple[LabelOperator, ...]
    affinity_scope: AffinityScope = AffinityScope.NODE

    def __init__(self, affinity_kind: AffinityKind, affinity_type: AffinityType,
                 label_operators: Sequence[LabelOperator], affinity_scope: AffinityScope = AffinityScope.NODE) -> None:
        if not isinstance(affinity_kind, AffinityKind):
            raise InvalidOptionError(f"Affinity kind={affinity_kind!r} is not an AffinityKind; use "
                                     f"AffinityKind.RESOURCE or AffinityKind.INSTANCE.", option="affinity_kind",
                                     value=affinity_kind)
        if not isinstance(affinity_type, AffinityType):
            raise InvalidOptionError(f"Affinity type={affinity_type!r} is not an AffinityType; use one of "
                                     f"{', '.join('AffinityType.' + t.name for t in AffinityType)}.",
                                     option="affinity_type", value=affinity_type)
        ops = tuple(label_operators)
        if not ops or any(not isinstance(o, LabelOperator) for o in ops):
            raise InvalidOptionError(f"Affinity label_operators={list(ops)!r} must be a non-empty list of "
                                     f"LabelOperator.", option="label_operators", value=label_operators)
        object.__setattr__(self, "affinity_kind", affinity_kind)
        object.__setattr__(self, "affinity_type", affinity_type)
        object.__setattr__(self, "label_operators", ops)
        object.__setattr__(self, "affinity_scope", affinity_scope)
