"""The node-label convention every part of yuanrong agrees on.

A node belongs to a pool by carrying these Ray node labels. Cluster configs, ``yr start``,
the embedded local cluster, the placement engine and the tests all read and write these
keys and no others, so a pool seen on a laptop is the same pool seen on a 500-node fleet.

Example:
    >>> pool_labels("edge-1", tier="edge", region="eu-west")
    {'yr.io/pool': 'edge-1', 'yr.io/tier': 'edge', 'yr.io/region': 'eu-west'}
"""

from __future__ import annotations

POOL = "yr.io/pool"
"""Name of the node pool the node belongs to (``cloud``, ``edge-1``, ...)."""

TIER = "yr.io/tier"
"""Tier of the pool: ``edge``, ``fog`` or ``cloud`` (free text; these three are conventional)."""

REGION = "yr.io/region"
"""Network region of the node, used for client-latency estimates."""

NODE_ID = "ray.io/node-id"
"""Ray's own label carrying the node id; pins a bundle to exactly one node."""

KNOWN_TIERS = ("edge", "fog", "cloud")


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
