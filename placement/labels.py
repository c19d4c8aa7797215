"""The node-label convention every part of yuanrong agrees on.

A node belongs to a pool by carrying these Ray node labels. Cluster configs, ``yr start``,
the embedded local cluster, the placement engine and the tests all read and write these
keys and no others, so a pool seen on a laptop is the same pool seen on a 500-node fleet.

Example:
    >>> pool_labels("edge-1", tier="edge", region="eu-west")
    {'yr.io/pool': 'edge-1', 'yr.io/tier': 'edge', 'yr.io/region': 'eu-west'}
"""

from __future__ import annotations

import re

POOL = "yr.io/pool"
"""Name of the node pool the node belongs to (``cloud``, ``edge-1``, ...)."""

TIER = "yr.io/tier"
"""Tier of the pool: ``edge``, ``fog`` or ``cloud`` (free text; these three are conventional)."""

REGION = "yr.io/region"
"""Network region of the node, used for client-latency estimates."""

NODE_ID = "ray.io/node-id"
"""Ray's own label carrying the node id; pins a bundle to exactly one node."""

KNOWN_TIERS = ("edge", "fog", "cloud")

VALUE_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
"""A pool, tier or region name: a Ray label value (letters, digits, ``-``, ``_``, ``.``; at most 63
characters, starting and ending with a letter or digit). Ray reads ``!``, ``in(...)`` and ``,`` in
a label selector as operators, so a name can never contain them."""

_VALUE = re.compile(VALUE_PATTERN)


def is_value(value: object) -> bool:
    """Whether ``value`` is a valid pool, tier or region name (see :data:`VALUE_PATTERN`).

    Example:
        >>> is_value("edge-1"), is_value("!edge"), is_value("in(a,b)")
        (True, False, False)
    """
    return isinstance(value, str) and _VALUE.fullmatch(value) is not None


def pool_labels(pool: str, *, tier: str, region: str | None = None, **extra: str) -> dict[str, str]:
    """Return the Ray node labels that put a node in ``pool``.

    Args:
        pool: Pool name; must be a valid Ray label value.
        tier: Pool tier (``edge``, ``fog``, ``cloud``, ...).
        region: Optional network region.
        **extra: Further labels, passed through unchanged (keys as given).

    Returns:
        A new dict suitable for ``ray start --labels`` or ``Cluster.add_node(labels=...)``.
    """
    labels = {POOL: pool, TIER: tier}
    if region is not None:
        labels[REGION] = region
    labels.update(extra)
    return labels
