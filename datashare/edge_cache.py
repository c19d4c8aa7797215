"""Per-pool edge caches: set a pool's capacity, see what every pool's cache holds.

How the caches work is in :mod:`datashare.pool_cache` (the rules) and :mod:`datashare.chunk_reads`
(a reader filling its pool's cache).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from datashare import tenancy
from datashare._ray import handles
from datashare._ray.handles import CONTROL_TIMEOUT_S, require_connected
from datashare.arguments import check_timeout
from datashare.errors import InvalidArgumentError, PermissionDeniedError

__all__ = ["pool_caches", "set_pool_cache", "set_pool_caches"]


def _check_pool(pool: object) -> str:
    if not isinstance(pool, str) or not pool or len(pool) > 63:
        raise InvalidArgumentError("pool", pool, "it must be a pool name (the yr.io/pool label value of its "
                                   "nodes), a non-empty str of at most 63 characters.")
    return pool


def _check_capacity(pool: str, capacity: object) -> int | None:
    if capacity is None:
        return None
    if (isinstance(capacity, bool) or not isinstance(capacity, (int, float)) or capacity < 0
            or (isinstance(capacity, float) and not math.isfinite(capacity))):
        raise InvalidArgumentError("capacity_bytes", capacity, f"the cache of pool {pool!r} needs a number of "
                                   "bytes >= 0 (0 or None: no cache).")
    return int(capacity)


def set_pool_caches(capacities: Mapping[str, int | None], *, timeout: float = CONTROL_TIMEOUT_S) -> None:
    """Bound the edge cache of each pool to ``capacities[pool]`` bytes (0 or ``None``: no cache).

    A reader on a node of a pool with a cache that opens a dataset version with no copy in its pool
    has its node's holder pull the version once into the cache; later readers in the pool map
    that copy. Copies least recently read are evicted to stay within the capacity (now, too, if it
    shrinks). Cluster-wide and kept in memory by the catalogue: set again after it restarts
    (yuanrong does at an admin's ``yr.init`` from the pools file's ``datashare_cache_mb``). Admin only.

    Args:
        capacities: Pool name -> bytes.
        timeout: Seconds to wait for the catalogue.

    Raises:
        InvalidArgumentError: A pool name or capacity is not valid.
        PermissionDeniedError: The caller is not the admin role.
    """
    require_connected()
    check_timeout(timeout)
    if not isinstance(capacities, Mapping):
        raise InvalidArgumentError("capacities", capacities, "give a mapping of pool name -> bytes.")
    checked = {_check_pool(pool): _check_capacity(pool, cap) for pool, cap in capacities.items()}
    me = tenancy.current()
    if not me.admin:
        raise PermissionDeniedError(f"tenant {me.name!r} may not size pool caches; only the admin role may.",
                                    tenant=me.name, owner="cluster", resource="pool cache")
    for pool, capacity in checked.items():
        handles.ask_catalogue("set_pool_cache", pool, capacity, timeout=timeout)


def set_pool_cache(pool: str, capacity_bytes: int | None, *, timeout: float = CONTROL_TIMEOUT_S) -> None:
    """Bound ``pool``'s edge cache to ``capacity_bytes`` (0 or ``None``: no cache); see
    :func:`set_pool_caches`.

    Example:
        >>> set_pool_cache("edge-1", 512 * 2**20)   # doctest: +SKIP
    """
    set_pool_caches({pool: capacity_bytes}, timeout=timeout)


def pool_caches(*, timeout: float = CONTROL_TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """Every pool cache: ``capacity`` and ``used`` bytes, ``entries`` as ``(name, version, nbytes,
    holder names)`` least recently read first (the caller's tenant's datasets only, unless admin),
    and counters: ``hits`` (reads served by the pool's copy, a process's repeated opens included once
    its read cache reports them, within seconds), ``fills``, ``evictions``,
    ``invalidated`` (dropped by a newer version or a delete), ``lost`` (found gone with their
    node) and ``too_large``."""
    require_connected()
    check_timeout(timeout)
    stats = handles.ask_catalogue("pool_caches", timeout=timeout)
    for pool in stats.values():
        pool["entries"] = [e for e in pool["entries"] if tenancy.visible(e[0])]
    return stats
