"""Per-pool edge caches of datasets, as a pure state machine the catalogue runs (no Ray here).

A reader on a node of pool P that opens a dataset version with no copy in P has the holder of its
own node pull the whole version once and keep it as a *cached copy* of P. Later readers in P map
that copy instead of pulling across pools. Each pool's cache is bounded by a capacity in bytes
(``datashare.set_pool_cache``; yuanrong sets it from the pools file's ``datashare_cache_mb``);
the least recently read copies are evicted to make room. Reads count when a reader asks the
catalogue for the version and when a process's own read cache serves it again (reported in
batches, :meth:`PoolCaches.note_reads`). A new version of a dataset drops the
cached copies of its older versions; deleting a version drops its copies.

Pools are read from Ray node labels with the convention of ``placement.labels`` (``yr.io/pool``,
else the pool named after ``yr.io/tier``, else ``default``); datashare does not import
``placement``, so the keys are repeated here and a unit test keeps them equal.

Example:
    >>> caches = PoolCaches()
    >>> caches.set_capacity("edge-1", 100)
    []
    >>> copy = CachedCopy("edge-1", "t", 1, ("r",), ("holder-n1",), ("cache", "t", (1, "a")), 60)
    >>> caches.add(copy)
    (CachedCopy(pool='edge-1', name='t', version=1, refs=('r',), holders=('holder-n1',), key=('cache', 't', (1, 'a')), nbytes=60), [])
    >>> [c.name for c in caches.add(copy._replace(name="u", key=("cache", "u", (1, "b"))))[1]]
    ['t']
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = ["CACHE_SPACE", "CachedCopy", "POOL_LABEL", "PoolCaches", "TIER_LABEL", "pool_of"]

POOL_LABEL = "yr.io/pool"
TIER_LABEL = "yr.io/tier"
CACHE_SPACE = "cache"
"""The ``HolderKey.space`` of a cached copy: ``HolderKey("cache", name, (version, token))``."""


def pool_of(labels: Mapping[str, str] | None) -> str:
    """The pool a node with these Ray labels belongs to (``placement.labels``' convention)."""
    labels = labels or {}
    return labels.get(POOL_LABEL) or labels.get(TIER_LABEL) or "default"


class CachedCopy(NamedTuple):
    """One pool's copy of one dataset version, kept by ``holders`` under ``key``."""

    pool: str
    name: str
    version: int
    refs: tuple
    holders: tuple[str, ...]
    key: Any                      # a HolderKey in the cache space
    nbytes: int


class PoolCaches:
    """Capacity, LRU order and counters of every pool's cache.

    Methods that drop copies return them: the caller tells their holders to release ``key``.
    """

    def __init__(self) -> None:
        self._capacity: dict[str, int] = {}
        self._copies: dict[str, collections.OrderedDict[tuple[str, int], CachedCopy]] = {}
        self._counts: dict[str, collections.Counter] = {}

    def capacity(self, pool: str) -> int:
        """Bytes ``pool``'s cache may hold (0: no cache)."""
        return self._capacity.get(pool, 0)

    def set_capacity(self, pool: str, nbytes: int | None) -> list[CachedCopy]:
        """Set ``pool``'s capacity (``None`` or 0: no cache); returns the copies evicted to fit."""
        if nbytes:
            self._capacity[pool] = int(nbytes)
        else:
            self._capacity.pop(pool, None)
        return self._evict(pool, 0)

    def get(self, pool: str, name: str, version: int, *, touch: bool = False) -> CachedCopy | None:
        """``pool``'s copy of the version; ``touch`` counts a read (most recently used, a hit)."""
        copies = self._copies.get(pool)
        copy = copies.get((name, version)) if copies else None
        if copy is not None and touch:
            copies.move_to_end((name, version))
            self._count(pool, "hits")
        return copy

    def note_reads(self, reads: Iterable[tuple[tuple[str, str, int], int]]) -> None:
        """Count reads that did not reach the catalogue (a process's repeated opens, reported in a
        batch): each ``((pool, name, version), count)`` makes that copy the most recently used, in the
        order given (least recent read first), and adds ``count`` hits. Copies no longer kept
        (evicted, dropped meanwhile) are skipped: a late report never brings one back."""
        for (pool, name, version), count in reads:
            copies = self._copies.get(pool)
            if copies and (name, version) in copies and count > 0:
                copies.move_to_end((name, version))
                self._count(pool, "hits", int(count))

    def copies_of(self, name: str, version: int) -> tuple[CachedCopy, ...]:
        """Every pool's copy of the version."""
        return tuple(c[(name, version)] for c in self._copies.values() if (name, version) in c)

    def add(self, copy: CachedCopy) -> tuple[CachedCopy | None, list[CachedCopy]]:
        """Keep ``copy``, evicting least recently read copies of its pool to make room.

        Returns the copy readers should use (``None`` when it cannot be kept: larger than the
        pool's capacity) and the copies to release (evicted ones, or ``copy`` itself when the pool
        already has the version, filled by another reader meanwhile, or it does not fit).
        """
        existing = self.get(copy.pool, copy.name, copy.version)
        if existing is not None:
            return existing, [copy]
        if copy.nbytes > self.capacity(copy.pool):
            self._count(copy.pool, "too_large")
            return None, [copy]
        dropped = self._evict(copy.pool, copy.nbytes)
        self._copies.setdefault(copy.pool, collections.OrderedDict())[(copy.name, copy.version)] = copy
        self._count(copy.pool, "fills")
        return copy, dropped

    def forget(self, pool: str, name: str, version: int, key: Any) -> list[CachedCopy]:
        """Drop ``pool``'s copy of the version if it is the one kept under ``key`` (found lost)."""
        copy = self.get(pool, name, version)
        if copy is None or tuple(copy.key) != tuple(key):
            return []
        del self._copies[pool][(name, version)]
        self._count(pool, "lost")
        return [copy]

    def drop(self, name: str, versions: list[int] | None = None, *, before: int | None = None) -> list[CachedCopy]:
        """Drop every pool's copies of ``versions`` of ``name``, or of its versions older than ``before``."""
        out = []
        for pool, copies in self._copies.items():
            for key in [k for k in copies if k[0] == name and (
                    (versions is not None and k[1] in versions) or (before is not None and k[1] < before))]:
                out.append(copies.pop(key))
                self._count(pool, "invalidated")
        return out

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per pool: capacity, bytes used, the cached versions (least recently read first) and counters."""
        out = {}
        for pool in sorted(set(self._capacity) | set(self._copies)):
            copies = list(self._copies.get(pool, {}).values())
            out[pool] = {"capacity": self.capacity(pool), "used": sum(c.nbytes for c in copies),
                         "entries": [(c.name, c.version, c.nbytes, tuple(dict.fromkeys(c.holders))) for c in copies],
                         **{k: self._counts.get(pool, {}).get(k, 0)
                            for k in ("hits", "fills", "evictions", "invalidated", "lost", "too_large")}}
        return out

    def _evict(self, pool: str, room: int) -> list[CachedCopy]:
        copies = self._copies.get(pool)
        out: list[CachedCopy] = []
        while copies and sum(c.nbytes for c in copies.values()) + room > self.capacity(pool):
            out.append(copies.popitem(last=False)[1])
            self._count(pool, "evictions")
        return out

    def _count(self, pool: str, what: str, n: int = 1) -> None:
        self._counts.setdefault(pool, collections.Counter())[what] += n
