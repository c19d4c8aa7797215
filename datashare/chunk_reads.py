"""Which copy of each chunk a reader reads, and filling the reader's pool cache.

A chunk may have several copies: the primary (its holder's), replicas (``publish(replicas=...)``)
and pool caches' copies (:mod:`datashare.pool_cache`). A reader tries them nearest first: a copy
on its own node (mapped, no transfer), then one in its own pool, then the primary, the replicas
and other pools' caches in that order; a copy whose node is gone is skipped for the next one.
When no copy of some chunk is in the reader's pool and that pool has a cache large enough, the
holder of the reader's node first pulls the whole version once and keeps it for the pool.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from datashare._ray import handles
from datashare._ray.naming import HOLDER_PREFIX, holder_name, node_of
from datashare._ray.pipeline import copy_to_holder
from datashare._ray.store import get_chunks
from datashare.catalogue import Found, HolderKey
from datashare.errors import ObjectLostError
from datashare.pool_cache import CACHE_SPACE, CachedCopy, pool_of

__all__ = ["Copy", "candidates", "counted_as", "fill_pool_cache", "my_pool", "read"]


class Copy(NamedTuple):
    ref: Any
    holder: str
    cached: CachedCopy | None       # the pool cache copy this chunk copy belongs to, if any


def my_pool() -> str:
    """The pool of this process's node (``yr.io/pool`` label; see :func:`pool_cache.pool_of`)."""
    return pool_of(handles.node_labels(handles.current_node_id()))


def _pool_of_holder(holder: str) -> str | None:
    labels = handles.node_labels(node_of(holder))
    return None if labels is None else pool_of(labels)


def candidates(found: Found, here: str | None = None, pool: str | None = None) -> list[list[Copy]]:
    """Per chunk, its copies nearest first: this node, this pool, then primary, replicas, caches.

    ``here``/``pool`` default to this process's node and pool; a version with one copy of each
    chunk needs neither (the common case costs no label lookup).
    """
    if not found.spares and not found.cached:
        return [[Copy(ref, holder, None)] for ref, holder in zip(found.refs, found.holders)]
    here = handles.current_node_id() if here is None else here
    pool = my_pool() if pool is None else pool
    pools: dict[str, str | None] = {}

    def distance(copy: Copy) -> int:
        if node_of(copy.holder) == here:
            return 0
        if copy.holder not in pools:
            pools[copy.holder] = _pool_of_holder(copy.holder)
        return 1 if pools[copy.holder] == pool else 2

    out = []
    for i, (ref, holder) in enumerate(zip(found.refs, found.holders)):
        copies = [Copy(ref, holder, None),
                  *(Copy(r, h, None) for r, h in (found.spares[i] if found.spares else ())),
                  *(Copy(c.refs[i], c.holders[i], c) for c in found.cached)]
        out.append(sorted(copies, key=distance))
    return out


def counted_as(found: Found, pool: str | None = None) -> tuple[str, str, int] | None:
    """The pool cache copy a read of ``found`` in ``pool`` (default: this process's) counts toward
    in the pool's LRU order, as ``(pool, name, version)``; ``None`` when the pool has no copy listed.
    Costs no label lookup for a version no pool caches."""
    if not found.cached:
        return None
    pool = my_pool() if pool is None else pool
    return (pool, found.info.name, found.info.version) if any(c.pool == pool for c in found.cached) else None


def fill_pool_cache(found: Found, here: str, pool: str, timeout: float) -> Found | None:
    """Copy the version into this pool's cache when it has no copy in the pool and fits; returns
    the catalogue's new answer (with the copy), or ``None`` when nothing was cached."""
    info = found.info
    if not found.cache_capacity or info.nbytes > found.cache_capacity or not found.refs:
        return None
    if not all(h.startswith(HOLDER_PREFIX) for h in found.holders):
        return None         # lifetime="job" data dies with its job: no copy outlives it
    for copy in found.cached:
        if copy.pool == pool and any(handles.node_labels(node_of(h), max_age_s=0) is None for h in copy.holders):
            # The pool's copy went with its node: forget it, so this reader's copy replaces it.
            handles.ask_catalogue("cache_forget", pool, copy.name, copy.version, copy.key, timeout=timeout)
    plan = candidates(found, here, pool)
    if all(_pool_of_holder(copies[0].holder) == pool for copies in plan):
        return None         # every chunk already has a copy in this pool
    key = HolderKey(CACHE_SPACE, info.name, (info.version, uuid.uuid4().hex))
    refs = copy_to_holder(here, key, [copies[0].ref for copies in plan], timeout=timeout)
    if refs is None:
        return None         # e.g. no room on this node: read across pools as without a cache
    copy = CachedCopy(pool, info.name, info.version, tuple(refs), (holder_name(here),) * len(refs), key, info.nbytes)
    return handles.ask_catalogue("cache_add", copy, timeout=timeout)


def read(found: Found, name: str, timeout: float | None) -> list:
    """The chunks of ``found``, each from its nearest readable copy.

    Raises:
        ObjectLostError: Some chunk has no readable copy left.
    """
    plan = candidates(found)
    level = [0] * len(plan)
    forgotten: set = set()
    while True:
        refs = [copies[level[i]].ref for i, copies in enumerate(plan)]
        try:
            return get_chunks(refs, name=name, version=found.info.version, node_ids=found.info.node_ids,
                              timeout=timeout)
        except ObjectLostError as err:
            for i in err.lost_chunks:
                lost = plan[i][level[i]]
                if lost.cached is not None and lost.cached.key not in forgotten:
                    forgotten.add(lost.cached.key)      # other readers of that pool should not try it
                    handles.tell_catalogue("cache_forget", lost.cached.pool, lost.cached.name,
                                           lost.cached.version, lost.cached.key)
                level[i] += 1
                if level[i] >= len(plan[i]):
                    raise
