"""The pools file's ``datashare_cache_mb``, applied as each pool's datashare edge cache capacity."""

from __future__ import annotations

import datashare
from datashare import tenancy
from placement.pools import load_pools


def apply(pools_file: str, tenant: str) -> None:
    """Set every pool's edge cache to its ``datashare_cache_mb`` in ``pools_file`` (one catalogue call
    per such pool; nothing when no pool declares one).

    Called by a ``yr.init`` that started an embedded cluster or acts as the admin role: sizing a
    pool's cache is the cluster's business, not one tenant's.

    Raises:
        placement.PoolConfigError: The pools file cannot be read or is not valid.
    """
    capacities = {pool.name: int(pool.datashare_cache_mb * 2**20)
                  for pool in load_pools(pools_file).values() if pool.datashare_cache_mb is not None}
    if capacities:
        with tenancy.acting_as(tenancy.Tenant(tenant, admin=True)):
            datashare.set_pool_caches(capacities)
