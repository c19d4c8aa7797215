"""The catalogue as a pure state machine: names, versions, generations and the KV table.

No Ray here. Refs and holder names are opaque values the catalogue stores and hands back; what
must happen to holders as a consequence of a call (describe a new version, release dropped chunks)
comes out as instructions, collected by :meth:`Catalogue.take_instructions`, which the catalogue
actor (:mod:`datashare._ray.catalogue_actor`) carries out. Time comes from a clock given to the
constructor, so KV expiry is deterministic under test.

Example:
    >>> cat = Catalogue(clock=lambda: 0.0)
    >>> cat.reserve_version("t")
    1
    >>> isinstance(cat.lookup("t", None), Missing)
    True
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Union

from datashare import tenancy
from datashare.dataset_info import DatasetInfo
from datashare.errors import QuotaExceededError, SchemaMismatchError
from datashare.pool_cache import CACHE_SPACE, CachedCopy, PoolCaches
from datashare.replica_repair import VersionCopies
from datashare.usage_reports import USAGE_LEASE_S, UsageReports  # noqa: F401 - USAGE_LEASE_S re-exported

__all__ = ["Catalogue", "Describe", "Found", "HeldData", "HolderKey", "Instruction", "KVValue", "Missing",
           "Release", "dataset_key", "kv_holder_key"]


class HolderKey(NamedTuple):
    """What a holder files its chunks under: one dataset version, or one KV value."""

    space: str          # "ds" for a dataset version, "kv" for a KV value
    name: str           # dataset name or KV key
    tag: Any            # dataset version (int), or a unique token per KV write (str)


def dataset_key(name: str, version: int) -> HolderKey:
    return HolderKey("ds", name, version)


def kv_holder_key(key: str, token: str) -> HolderKey:
    return HolderKey("kv", key, token)


class HeldData(NamedTuple):
    """One key of a holder's inventory, used to rebuild the catalogue after a restart."""

    description: Any                 # DatasetInfo for a dataset, the value kind (str) for KV
    chunks: Mapping[int, Any]        # chunk index -> ref


@dataclasses.dataclass(frozen=True)
class Found:
    """A lookup that found the version: its metadata, chunk refs and the holder of each chunk."""

    info: DatasetInfo
    refs: tuple
    holders: tuple[str, ...]
    generation: int
    spares: tuple = ()          # per chunk: ((ref, holder), ...) of its replicas on other nodes
    cached: tuple = ()          # CachedCopy of every pool's edge cache that holds the version
    cache_capacity: int = 0     # bytes the asking pool's cache may hold (0: no cache there)


@dataclasses.dataclass(frozen=True)
class Missing:
    """A lookup that found nothing: the names that exist, and the versions of the asked name."""

    known: tuple[str, ...]
    versions: tuple[int, ...]
    generation: int


@dataclasses.dataclass(frozen=True)
class KVValue:
    """A KV value: inline ``bytes`` (no holder), or a ref kept by ``holder`` under ``holder_key``."""

    kind: str                        # "bytes" or "arrow": how a reader turns it back into a value
    payload: Any                     # bytes, or the ref of the stored object
    holder: str | None = None
    holder_key: HolderKey | None = None


@dataclasses.dataclass(frozen=True)
class Describe:
    """Instruction: ``holder`` should keep ``info`` with ``key``, to rebuild from after a restart."""

    holder: str
    key: HolderKey
    info: DatasetInfo


@dataclasses.dataclass(frozen=True)
class Release:
    """Instruction: ``holder`` may let go of the chunks it keeps under ``keys``."""

    holder: str
    keys: tuple[HolderKey, ...]


Instruction = Union[Describe, Release]


def chunk_copies(version: Any) -> tuple[tuple[tuple[Any, str], ...], ...]:
    """Per chunk of ``version`` (a kept version, or a :class:`Found`), its ``(ref, holder)`` copies, primary first."""
    spares = version.spares or ((),) * len(version.refs)
    return tuple(((r, h), *s) for r, h, s in zip(version.refs, version.holders, spares))


@dataclasses.dataclass(frozen=True)
class _Version:
    info: DatasetInfo
    refs: tuple
    holders: tuple[str, ...]
    spares: tuple = ()

    def all_holders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.holders, *(h for copies in self.spares for _, h in copies))))


@dataclasses.dataclass(frozen=True)
class _KVEntry:
    value: KVValue
    expires_at: float | None
    seq: int


KV_LOG_LENGTH = 100_000
"""KV changes the catalogue remembers for readers' caches; one further behind forgets its cache."""


class Catalogue:
    """Names -> versions -> chunk refs, plus the KV table with NX writes and TTL expiry.

    Every method is a step of the state machine: it reads or changes state and queues the
    instructions for holders that follow from the change. ``generation`` grows whenever the
    dataset table changes, so readers can tell that what they cached is stale.

    Args:
        clock: Seconds since the epoch, as ``time.time`` gives them; KV TTLs count on it.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._datasets: dict[str, dict[int, _Version]] = {}
        self._next_version: dict[str, int] = {}
        self._kv: dict[str, _KVEntry] = {}
        self._expiry: list[tuple[float, int, str]] = []      # heap of (deadline, write seq, key)
        self._seq = 0
        self._generation = 0
        self._kv_clock = 0                                   # counts KV changes (write, delete, expiry)
        self._kv_log: collections.deque[tuple[int, str | None, str]] = collections.deque(maxlen=KV_LOG_LENGTH)
        self._outbox: list[Instruction] = []
        self._quotas: dict[str, dict[str, float]] = {}
        self._usage = UsageReports(clock=clock)
        self._caches = PoolCaches()

    @property
    def generation(self) -> int:
        """Counter of changes to the dataset table (KV writes do not count)."""
        return self._generation

    @property
    def kv_clock(self) -> int:
        """Counter of KV changes: every write, delete and expiry of a key adds one."""
        return self._kv_clock

    def kv_changes(self, since: int) -> list[tuple[str | None, str]] | None:
        """``(writer, key)`` of each KV change after clock ``since``, oldest first; ``None`` when the
        log no longer reaches back that far (a reader then forgets everything it cached)."""
        if since == self._kv_clock:
            return []
        if since > self._kv_clock or not self._kv_log or self._kv_log[0][0] > since + 1:
            return None
        return [(writer, key) for clock, writer, key in self._kv_log if clock > since]

    def take_instructions(self) -> list[Instruction]:
        """The instructions queued since the last call, oldest first."""
        out, self._outbox = self._outbox, []
        return out

    # --- datasets ---------------------------------------------------------------------------

    def reserve_version(self, name: str) -> int:
        """The next version number of ``name``; a reserved number is never handed out again."""
        version = self._next_version.get(name, 1)
        self._next_version[name] = version + 1
        return version

    def commit(self, info: DatasetInfo, refs: Iterable, holders: Iterable[str], keep_previous: int,
               allow_schema_change: bool = False, spares: Iterable = ()) -> None:
        """Make ``info.version`` of ``info.name`` readable; release versions beyond ``keep_previous``.

        A version whose schema differs from the dataset's newest other version is refused unless
        ``allow_schema_change``: readers that open the name by its latest version would otherwise get
        columns they do not expect, without warning. ``spares`` gives, per chunk, the
        ``(ref, holder)`` pairs of its replicas (empty: none).

        Raises:
            ValueError: ``refs`` and ``holders`` do not pair up, or ``keep_previous`` < 0.
            SchemaMismatchError: The schema changed and ``allow_schema_change`` is False.
        """
        refs, holders = tuple(refs), tuple(holders)
        spares = tuple(tuple(tuple(pair) for pair in copies) for copies in spares)
        if len(refs) != len(holders):
            raise ValueError(f"{len(refs)} refs but {len(holders)} holders; give one holder per chunk")
        if spares and len(spares) != len(refs):
            raise ValueError(f"{len(spares)} replica lists for {len(refs)} chunks; give one per chunk or none")
        if keep_previous < 0:
            raise ValueError(f"keep_previous={keep_previous}; it must be >= 0")
        others = [v for v in self._datasets.get(info.name, {}) if v != info.version]
        if others and not allow_schema_change:
            newest = self._datasets[info.name][max(others)].info
            if not newest.schema.equals(info.schema):
                raise SchemaMismatchError(info.name, newest.schema, info.schema, publishing=True)
        self._check_quota(info)
        versions = self._datasets.setdefault(info.name, {})
        entry = versions[info.version] = _Version(info, refs, holders, spares)
        key = dataset_key(info.name, info.version)
        for hname in entry.all_holders():
            self._outbox.append(Describe(hname, key, info))
        older = sorted(v for v in versions if v < info.version)
        self._drop(info.name, older[: max(0, len(older) - keep_previous)])
        self._release_copies(self._caches.drop(info.name, before=info.version))   # stale edge copies
        self._bump()

    def set_quota(self, tenant: str, quota: str, limit: float | None) -> None:
        """Set (``None``: lift) one of ``tenant``'s quotas. The catalogue enforces ``dataset_bytes``
        (latest versions of the tenant's datasets); other quotas are kept for the API to enforce."""
        limits = self._quotas.setdefault(tenant, {})
        if limit is None:
            limits.pop(quota, None)
        else:
            limits[quota] = limit

    def quotas(self, tenant: str) -> dict[str, float]:
        """``tenant``'s quotas by name."""
        return dict(self._quotas.get(tenant, {}))

    def report_usage(self, tenant: str, reporter: str, amounts: Mapping[str, float]) -> None:
        """What ``reporter`` (one job) of ``tenant`` uses now (see :class:`UsageReports`)."""
        self._usage.report(tenant, reporter, amounts)

    def tenant_usage(self, tenant: str, *, without: str | None = None) -> dict[str, float]:
        """The sum of the current reports of ``tenant``'s reporters, leaving out ``without``."""
        return self._usage.total(tenant, without=without)

    def tenant_bytes(self, tenant: str, *, without: str | None = None) -> int:
        """Bytes of the latest versions of ``tenant``'s datasets (leaving out the dataset ``without``)."""
        return sum(versions[max(versions)].info.nbytes for name, versions in self._datasets.items()
                   if versions and name != without and tenancy.owner_of(name) == tenant)

    def _check_quota(self, info: DatasetInfo) -> None:
        tenant = tenancy.owner_of(info.name)
        limit = self._quotas.get(tenant, {}).get("dataset_bytes")
        if limit is None:
            return
        used = self.tenant_bytes(tenant, without=info.name) + info.nbytes
        if used > limit:
            raise QuotaExceededError(
                f"tenant {tenant!r}'s dataset_bytes quota is {limit} bytes and publishing {info.name!r} "
                f"({info.nbytes} bytes) would bring its datasets to {used}; delete datasets or ask an admin to "
                f"raise the quota (datashare.set_quota).",
                tenant=tenant, quota="dataset_bytes", limit=limit, requested=used)

    def lookup(self, name: str, version: int | None, pool: str | None = None) -> Found | Missing:
        """The given version of ``name`` (``None``: the latest), or what exists instead. ``pool``: the
        reader's pool; its cached copy counts as read (LRU), and the answer carries its capacity."""
        versions = self._datasets.get(name)
        if not versions:
            return Missing(tuple(sorted(self._datasets)), (), self._generation)
        entry = versions.get(max(versions) if version is None else version)
        if entry is None:
            return Missing(tuple(sorted(self._datasets)), tuple(sorted(versions)), self._generation)
        self._caches.get(pool, name, entry.info.version, touch=True)     # no pool (None): no copy, no-op
        return Found(entry.info, entry.refs, entry.holders, self._generation, entry.spares,
                     self._caches.copies_of(name, entry.info.version),
                     self._caches.capacity(pool) if pool is not None else 0)

    # --- per-pool edge caches (datashare.pool_cache) -----------------------------------------

    def set_pool_cache(self, pool: str, nbytes: int | None) -> None:
        """Bound ``pool``'s cache to ``nbytes`` (``None`` or 0: no cache); evicts what no longer fits."""
        self._release_copies(self._caches.set_capacity(pool, nbytes))

    def cache_add(self, copy: CachedCopy) -> Found | None:
        """Keep a copy a reader of ``copy.pool`` made; returns the version as readers of that pool
        should now see it, or ``None`` when the version is gone (the copy is released)."""
        versions = self._datasets.get(copy.name, {})
        if copy.version not in versions:
            self._release_copies([copy])
            return None
        self._release_copies(self._caches.add(copy)[1])
        return dataclasses.replace(self.lookup(copy.name, copy.version), cache_capacity=self._caches.capacity(copy.pool))

    def cache_forget(self, pool: str, name: str, version: int, key: Any) -> None:
        """A reader found ``pool``'s copy lost (its node left): stop handing it out."""
        self._release_copies(self._caches.forget(pool, name, version, key))

    def cache_reads(self, reads: Iterable[tuple[tuple[str, str, int], int]]) -> None:
        """Reads served by readers' own caches, reported in batches (:meth:`PoolCaches.note_reads`)."""
        self._caches.note_reads(reads)

    def pool_caches(self) -> dict[str, dict[str, Any]]:
        return self._caches.stats()

    def _release_copies(self, copies: Iterable[CachedCopy]) -> None:
        """Release dropped cached copies. No new generation: every version stays readable, and the
        catalogue actor tells only the readers that cached a released copy (datashare.copy_drops)."""
        for copy in copies:
            for hname in dict.fromkeys(copy.holders):
                self._outbox.append(Release(hname, (copy.key,)))

    def list(self) -> list[DatasetInfo]:
        """The latest version of every dataset, sorted by name."""
        return [v[max(v)].info for _, v in sorted(self._datasets.items()) if v]

    def versions(self, name: str) -> list[int]:
        """Retained versions of ``name``, oldest first (empty if unknown)."""
        return sorted(self._datasets.get(name, {}))

    def delete(self, name: str, version: int | None) -> bool:
        """Drop every version of ``name`` (or one); False when there was nothing to drop."""
        versions = self._datasets.get(name)
        if not versions:
            return False
        if version is None:
            self._drop(name, list(versions))
            return True
        if version not in versions:
            return False
        self._drop(name, [version])
        return True

    def _drop(self, name: str, versions: list[int]) -> None:
        table = self._datasets.get(name, {})
        by_holder: dict[str, list[HolderKey]] = {}
        for version in versions:
            entry = table.pop(version, None)
            if entry is None:
                continue
            for hname in entry.all_holders():
                by_holder.setdefault(hname, []).append(dataset_key(name, version))
        if not table:
            self._datasets.pop(name, None)
        self._release_copies(self._caches.drop(name, versions))
        if versions:
            self._bump()
        for hname, keys in by_holder.items():
            self._outbox.append(Release(hname, tuple(keys)))

    def _bump(self) -> None:
        self._generation += 1

    # --- replica repair (datashare.replica_repair) -------------------------------------------

    def replicated(self) -> list[VersionCopies]:
        """Every retained version published with more than one copy, and its chunks' copies."""
        return [VersionCopies(name, v, e.info.replicas, chunk_copies(e)) for name, versions in self._datasets.items()
                for v, e in versions.items() if e.info.replicas != 1]

    def set_copies(self, name: str, version: int, chunks: Iterable[Iterable[tuple]]) -> bool:
        """Make ``chunks`` (per chunk, its ``(ref, holder)`` copies, the primary first) the version's
        copies, lost ones dropped or re-created ones added; holders new to it are told to describe it.
        False when the version is gone (or ``chunks`` does not fit it)."""
        entry = self._datasets.get(name, {}).get(version)
        chunks = tuple(tuple(tuple(c) for c in copies) for copies in chunks)
        if entry is None or len(chunks) != len(entry.refs) or not all(chunks):
            return False
        if chunks != chunk_copies(entry):
            spares = tuple(copies[1:] for copies in chunks) if any(len(c) > 1 for c in chunks) else ()
            new = self._datasets[name][version] = _Version(entry.info, tuple(c[0][0] for c in chunks),
                                                           tuple(c[0][1] for c in chunks), spares)
            for hname in set(new.all_holders()) - set(entry.all_holders()):
                self._outbox.append(Describe(hname, dataset_key(name, version), entry.info))
            self._bump()
        return True

    # --- KV ---------------------------------------------------------------------------------

    def kv_write_many(self, entries: Mapping[str, KVValue], *, nx: bool, ttl_s: float,
                      writer: str | None = None) -> list[str]:
        """Write every entry, or none: with ``nx``, returns the keys already set (nothing written).

        ``ttl_s`` > 0 makes the entries expire that many seconds from now; 0 keeps them. ``writer``
        names the process that wrote, in the change log (its own read cache already has the value).

        Raises:
            ValueError: ``ttl_s`` < 0.
        """
        if ttl_s < 0:
            raise ValueError(f"ttl_s={ttl_s}; it must be >= 0 (0: never expires)")
        self._expire()
        if nx:
            clash = [k for k in entries if k in self._kv]
            if clash:
                return clash
        expires = self._clock() + ttl_s if ttl_s > 0 else None
        for key, value in entries.items():
            self._kv_remove(key, writer, log=False)
            self._seq += 1
            self._kv[key] = _KVEntry(value, expires, self._seq)
            self._log_kv(writer, key)
            if expires is not None:
                heapq.heappush(self._expiry, (expires, self._seq, key))
        return []

    def kv_read(self, keys: Iterable[str]) -> dict[str, KVValue]:
        """The values of those ``keys`` that are set and not expired."""
        self._expire()
        return {k: self._kv[k].value for k in keys if k in self._kv}

    def kv_read_clocked(self, keys: Iterable[str]) -> tuple[int, dict[str, tuple[KVValue, float | None]]]:
        """The KV clock, and ``(value, seconds left or None)`` of those ``keys`` that are set."""
        self._expire()
        now = self._clock()
        out = {}
        for k in keys:
            entry = self._kv.get(k)
            if entry is not None:
                out[k] = (entry.value, None if entry.expires_at is None else max(0.0, entry.expires_at - now))
        return self._kv_clock, out

    def kv_delete(self, keys: Iterable[str], writer: str | None = None) -> int:
        """Delete ``keys``; returns how many were set."""
        self._expire()
        return sum(self._kv_remove(k, writer) for k in keys)

    def kv_keys(self) -> list[str]:
        """Every live key, sorted."""
        self._expire()
        return sorted(self._kv)

    def _expire(self) -> None:
        now = self._clock()
        while self._expiry and self._expiry[0][0] <= now:
            _, seq, key = heapq.heappop(self._expiry)
            entry = self._kv.get(key)
            if entry is not None and entry.seq == seq:     # not rewritten since
                self._kv_remove(key, None)

    def _log_kv(self, writer: str | None, key: str) -> None:
        self._kv_clock += 1
        self._kv_log.append((self._kv_clock, writer, key))

    def _kv_remove(self, key: str, writer: str | None, *, log: bool = True) -> bool:
        entry = self._kv.pop(key, None)
        if entry is None:
            return False
        if log:
            self._log_kv(writer, key)
        if entry.value.holder is not None:
            self._outbox.append(Release(entry.value.holder, (entry.value.holder_key,)))
        return True

    # --- recovery ---------------------------------------------------------------------------

    def restore(self, inventories: Mapping[str, Mapping[tuple, HeldData]]) -> None:
        """Rebuild from the holders' inventories (holder name -> key -> held data) after a restart.

        A dataset version comes back only when its metadata and every chunk were found; KV values
        kept by holders come back without their TTL. State already present wins.
        """
        found: dict[tuple, tuple[Any, dict[int, list[tuple[Any, str]]]]] = {}
        for hname, inventory in inventories.items():
            for key, (description, chunks) in inventory.items():
                key = HolderKey(*key)
                if key.space == CACHE_SPACE:     # caches start empty after a restart
                    self._outbox.append(Release(hname, (key,)))
                    continue
                if key.space != "ds":
                    ref = chunks.get(0)
                    if description is not None and ref is not None and key.name not in self._kv:
                        self._seq += 1
                        self._kv[key.name] = _KVEntry(KVValue(description, ref, hname, key), None, self._seq)
                        self._log_kv(None, key.name)
                    continue
                info, held = found.setdefault(key, (description, {}))
                if info is None and description is not None:
                    found[key] = (description, held)
                for index, ref in chunks.items():
                    held.setdefault(index, []).append((ref, hname))     # the first is the primary
        for key, (info, held) in found.items():
            if info is None or sorted(held) != list(range(info.num_chunks)):
                continue
            name, version = key.name, key.tag
            refs = tuple(held[i][0][0] for i in range(info.num_chunks))
            holders = tuple(held[i][0][1] for i in range(info.num_chunks))
            spares = tuple(tuple(held[i][1:]) for i in range(info.num_chunks))
            spares = spares if any(spares) else ()
            self._datasets.setdefault(name, {}).setdefault(version, _Version(info, refs, holders, spares))
            self._next_version[name] = max(self._next_version.get(name, 1), version + 1)
