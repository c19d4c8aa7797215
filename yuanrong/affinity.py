"""Affinity rules, with openYuanrong's names: where an instance or call may run.

``RESOURCE`` rules match node labels (for example ``yr.io/pool`` or ``yr.io/site``);
``INSTANCE`` rules match the ``labels`` of instances already placed on a node (co-locate with, or
keep away from, them). Operators inside one rule are ANDed; rules of the same kind and type are
ORed.

The model is the placement engine's (:mod:`placement.requests`): the enums are its enums, and
:class:`Affinity` and :class:`LabelOperator` are its classes with openYuanrong's stricter
constructor in front (enum members only, errors as :class:`~yuanrong.InvalidOptionError`). So a
rule built here is handed to the engine as it is.

Example:
    >>> rule = Affinity(AffinityKind.RESOURCE, AffinityType.REQUIRED,
    ...                 [LabelOperator(OperatorType.LABEL_IN, "yr.io/tier", ["edge"])])
"""

from __future__ import annotations

from collections.abc import Sequence

import placement.requests as _model
from placement.requests import AffinityKind, AffinityScope, AffinityType, OperatorType
from yuanrong.exception import InvalidOptionError

__all__ = ["Affinity", "AffinityKind", "AffinityScope", "AffinityType", "LabelOperator", "OperatorType"]


class LabelOperator(_model.LabelOperator):
    """One label condition.

    Args:
        operator_type: How to match.
        key: The label key.
        values: The values for ``LABEL_IN`` / ``LABEL_NOT_IN``; empty for the existence operators.
    """

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
        try:
            super().__init__(operator_type, key, vals)
        except (TypeError, ValueError) as e:  # the engine's remaining rules, e.g. EXISTS takes no values
            raise InvalidOptionError(str(e), option="values", value=values) from None


class Affinity(_model.Affinity):
    """One affinity rule: a kind, a type and the label conditions that must all hold.

    Args:
        affinity_kind: ``RESOURCE`` (node labels) or ``INSTANCE`` (labels of placed instances).
        affinity_type: ``REQUIRED``, ``REQUIRED_ANTI``, ``PREFERRED`` or ``PREFERRED_ANTI``.
        label_operators: Conditions, ANDed.
        affinity_scope: Kept for compatibility; on Ray every rule is evaluated per node.
    """

    def __init__(self, affinity_kind: AffinityKind, affinity_type: AffinityType,
                 label_operators: Sequence[_model.LabelOperator],
                 affinity_scope: AffinityScope = AffinityScope.NODE) -> None:
        if not isinstance(affinity_kind, AffinityKind):
            raise InvalidOptionError(f"Affinity kind={affinity_kind!r} is not an AffinityKind; use "
                                     f"AffinityKind.RESOURCE or AffinityKind.INSTANCE.", option="affinity_kind",
                                     value=affinity_kind)
        if not isinstance(affinity_type, AffinityType):
            raise InvalidOptionError(f"Affinity type={affinity_type!r} is not an AffinityType; use one of "
                                     f"{', '.join('AffinityType.' + t.name for t in AffinityType)}.",
                                     option="affinity_type", value=affinity_type)
        ops = tuple(label_operators)
        if not ops or any(not isinstance(o, _model.LabelOperator) for o in ops):
            raise InvalidOptionError(f"Affinity label_operators={list(ops)!r} must be a non-empty list of "
                                     f"LabelOperator.", option="label_operators", value=label_operators)
        try:
            super().__init__(affinity_kind, affinity_type, ops, affinity_scope)
        except (TypeError, ValueError) as e:  # the engine's remaining rules, e.g. an unknown scope
            raise InvalidOptionError(str(e), option="affinity_scope", value=affinity_scope) from None
