"""The catalogue actor: a detached, restartable actor around the pure :class:`Catalogue`.

An actor, not Ray's internal KV, because:

* it holds real ``ObjectRef``s and so takes part in Ray's distributed reference counting, while a
  ref serialised into internal KV is invisible to it (the object could be freed under it);
* its calls run one at a time, which makes version numbers, ``ExistenceOpt.NX`` and appends atomic
  without a compare-and-swap protocol;
* internal KV is private Ray API that may change without notice.

If the catalogue process dies, Ray restarts it and it rebuilds the dataset table from the holders,
which keep every chunk together with its metadata. Small KV values kept inline in the catalogue are
lost in that case (larger KV values live in holders and are recovered); ``docs/datashare.md`` says so.

It also repairs replicated datasets in the background: every :data:`REPAIR_INTERVAL_S` it compares
the holders of their copies with Ray's live nodes and named actors, drops the copies that are gone
and has holders on other live nodes pull new ones (:mod:`datashare.replica_repair` decides which).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import ray

from datashare._ray.holder import start_holder
from datashare._ray.naming import HOLDER_PREFIX, NAMESPACE, holder_name, node_of
from datashare.catalogue import Catalogue, Describe, Found, KVValue, Missing, Release, chunk_copies, dataset_key
from datashare.copy_drops import DroppedCopies
from datashare.dataset_info import DatasetInfo
from datashare.kv_cache import LEASE_S
from datashare.pool_cache import CACHE_SPACE, CachedCopy, pool_of
from datashare.replica_repair import LiveNode, NewCopy, RepairPlan, plan_repairs, with_copy

logger = logging.getLogger(__name__)

REPAIR_INTERVAL_S = 2.0
"""How often the catalogue looks for lost copies of replicated datasets."""
REPAIR_COPY_TIMEOUT_S = 600.0
"""Longest wait for a holder's copy of lost chunks; a copy that failed is tried again after
:data:`REPAIR_RETRY_S` (on another node if there is one)."""
REPAIR_RETRY_S = 30.0
REPAIR_AUDIT_S = 30.0
"""How often the catalogue asks the holders of replicated copies which they still own: a holder
that died and was started again under its name between two rounds looks alive by name."""


@ray.remote(num_cpus=0, max_restarts=-1)
class CatalogueActor:
    """Runs the catalogue's steps one at a time and carries out its instructions to holders.

    An async actor: every method runs on one event loop and none awaits once it has started
    changing state, so each call is atomic; only :meth:`wait_change` parks, which lets every
    reader process keep one watch open without tying up a thread.
    """

    def __init__(self) -> None:
        self._state = Catalogue()
        self._drops = DroppedCopies()       # cached copies let go of, for the readers that cached them
        self._changed: asyncio.Event | None = None
        self._kv_changed: asyncio.Event | None = None
        self._ready: asyncio.Future | None = None
        # KV clocks count from 0 in every incarnation: readers compare this to tell them apart.
        self._epoch = uuid.uuid4().hex
        # Processes with a KV cache: id -> (KV clock acknowledged, when heard from last).
        self._readers: dict[str, tuple[int, float]] = {}
        self._acked: asyncio.Event | None = None
        # After a restart, caches filled from the previous incarnation may be trusted for up to a
        # lease: changes are confirmed only once those leases have run out.
        ctx = ray.get_runtime_context()
        restarted = bool(getattr(ctx, "was_current_actor_reconstructed", False))
        self._confirm_after = time.monotonic() + LEASE_S if restarted else 0.0
        self._repairs = _Repairs()

    async def _step(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # Awaiting a finished future does not yield, so calls stay atomic after the first.
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._rebuild())
            self._repairs.loop = asyncio.ensure_future(self._repair_loop())
        await self._ready
        return self._apply(method, *args, **kwargs)

    def _apply(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one step of the state machine: then holders are told, and parked watchers woken."""
        before, kv_before = self._state.generation, self._state.kv_clock
        try:
            return method(*args, **kwargs)
        finally:
            dropped = self._carry_out()
            if dropped:
                self._drops.record(self._state.generation, dropped)
            if self._state.generation != before or dropped:
                self._notify("_changed")
            if self._state.kv_clock != kv_before:
                self._notify("_kv_changed")

    def _notify(self, name: str) -> None:
        """Wake every call parked in :meth:`_until` on the event ``self.<name>``."""
        event = getattr(self, name)
        if event is not None:
            event.set()
            setattr(self, name, None)

    async def _until(self, name: str, timeout_s: float) -> None:
        """Park until :meth:`_notify` of ``name``, or ``timeout_s``."""
        if getattr(self, name) is None:
            setattr(self, name, asyncio.Event())
        try:
            await asyncio.wait_for(getattr(self, name).wait(), timeout_s)
        except asyncio.TimeoutError:
            pass

    def _carry_out(self) -> list:
        """Send the catalogue's instructions to holders; returns the keys of the cached copies
        released (readers that cached one are told through :meth:`wait_change`)."""
        dropped = []
        for step in self._state.take_instructions():
            if isinstance(step, Release):
                dropped += [key for key in step.keys if key[0] == CACHE_SPACE]
            holder = _holder(step.holder)
            if holder is None:
                continue
            if isinstance(step, Describe):
                sent = holder.describe.remote(step.key, step.info)
            elif isinstance(step, Release):
                sent = holder.release.remote(list(step.keys))
            else:
                continue
            # A holder that died (and may come back under its name) is looked up again next time.
            sent.future().add_done_callback(
                lambda fut, h=step.holder: _holders.pop(h, None) if fut.exception() else None)
        return dropped

    async def _rebuild(self) -> None:
        """After a restart, recover the dataset table from the holders' inventories."""
        try:
            actors = ray.util.list_named_actors(all_namespaces=True)
        except Exception:  # noqa: BLE001 - a fresh cluster without GCS support just starts empty
            return
        names = [a["name"] for a in actors
                 if a.get("namespace") == NAMESPACE and a["name"].startswith(HOLDER_PREFIX)]
        inventories = {}
        for hname in names:
            try:
                handle = ray.get_actor(hname, namespace=NAMESPACE)
                inventories[hname] = await asyncio.wait_for(handle.inventory.remote(), 10)
            except Exception:  # noqa: BLE001 - a dead holder's data is gone; skip it
                continue
        self._state.restore(inventories)

    # --- replica repair -----------------------------------------------------------------------

    async def _repair_loop(self) -> None:
        await self._ready
        audited = time.monotonic()
        while True:
            await asyncio.sleep(REPAIR_INTERVAL_S)
            try:
                if time.monotonic() - audited >= REPAIR_AUDIT_S:
                    audited = time.monotonic()
                    await self._audit()
                self._repair_once()
            except Exception:  # noqa: BLE001 - one bad round must not end repairs for good
                logger.exception("datashare: looking for lost replicas failed; trying again in %s s",
                                 REPAIR_INTERVAL_S)

    async def _audit(self) -> None:
        """Drop recorded copies of replicated versions that their holder no longer owns."""
        recorded: dict[str, set[str]] = {}
        for v in self._state.replicated():
            for chunk in v.chunks:
                for ref, hname in chunk:
                    recorded.setdefault(hname, set()).add(ref.hex())
        gone: set[tuple[str, str]] = set()
        for hname, hexes in recorded.items():
            try:    # by name, not a cached handle: the one that matters is the holder alive now
                handle = ray.get_actor(hname, namespace=NAMESPACE)
                held = await asyncio.wait_for(asyncio.wrap_future(handle.held.remote().future()), 10)
            except Exception:  # noqa: BLE001 - a dead or busy holder: the rounds handle the dead ones
                continue
            gone |= {(h, hname) for h in hexes - held}
        if gone:    # applied to the record as it is now (it may have changed while the holders answered)
            self._apply(lambda: [self._state.set_copies(v.name, v.version, [
                tuple(c for c in chunk if (c[0].hex(), c[1]) not in gone) or chunk for chunk in v.chunks])
                for v in self._state.replicated()])

    def _repair_once(self) -> None:
        """Drop lost copies and start new ones; synchronous, so the snapshot and the change it
        leads to are one step of the catalogue (the copies themselves run in the background)."""
        work = self._repairs
        if work.seen == (self._state.generation,):
            return                      # no replicated version, and the table has not changed since
        versions = self._state.replicated()
        if not versions:
            work.seen = (self._state.generation,)
            return
        live_nodes, live_holders = _cluster_view()
        avoid = work.avoid(time.monotonic())
        # A round changes nothing unless the table, the cluster or the copies that failed changed.
        seen = (self._state.generation, live_nodes, frozenset(live_holders), frozenset(avoid))
        if work.seen == seen:
            return
        plan = plan_repairs(versions, live_nodes, live_holders, node_of, pending=work.copying, avoid=avoid)
        if plan.survivors:
            self._apply(lambda: [self._state.set_copies(v.name, v.version, v.chunks) for v in plan.survivors])
        work.seen = (self._state.generation, *seen[1:])
        work.warn(plan)
        by_call: dict[tuple[str, str, int], list[NewCopy]] = {}      # one holder call per node and version
        for copy in plan.copies:
            by_call.setdefault((copy.node, copy.name, copy.version), []).append(copy)
            work.copying.add((copy.name, copy.version, copy.index, copy.node))
        for (node, name, version), copies in by_call.items():
            task = asyncio.ensure_future(self._copy(node, name, version, copies))
            work.tasks.add(task)                 # the loop keeps only a weak reference to a task
            task.add_done_callback(work.tasks.discard)

    async def _copy(self, node: str, name: str, version: int, copies: list[NewCopy]) -> None:
        """Have ``node``'s holder pull ``copies`` and own them, then record them."""
        key, indices = dataset_key(name, version), [c.index for c in copies]
        started = time.monotonic()
        try:
            holder = _holders[holder_name(node)] = start_holder(node)
            adopted = await asyncio.wait_for(
                asyncio.wrap_future(holder.adopt.remote(key, indices, [c.source for c in copies]).future()),
                REPAIR_COPY_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a source lost, the node gone or full: try again later
            logger.warning("datashare: copying chunks %s of %r version %d to node %s failed (%s); trying "
                           "again in %s s", indices, name, version, node, type(exc).__name__, REPAIR_RETRY_S)
            self._repairs.failed(name, version, indices, node, time.monotonic() + REPAIR_RETRY_S)
            return
        finally:
            self._repairs.copying.difference_update((name, version, i, node) for i in indices)
        self._apply(lambda: self._record(name, version, indices, adopted, holder_name(node), holder))
        logger.info("datashare: re-created %d chunk(s) of %r version %d on node %s in %.1f s",
                    len(indices), name, version, node, time.monotonic() - started)

    def _record(self, name: str, version: int, indices: list[int], adopted: list, hname: str, holder) -> None:
        found = self._state.lookup(name, version)
        if not isinstance(found, Found):
            holder.release.remote([dataset_key(name, version)])   # deleted meanwhile
            return
        chunks = chunk_copies(found)
        for index, owned in zip(indices, adopted):
            chunks = with_copy(chunks, index, owned.ref, hname)
        self._state.set_copies(name, version, chunks)

    async def ready(self) -> None:
        """Returns once the catalogue has rebuilt its state and can answer."""
        await self._step(lambda: None)

    async def wait_change(self, since: int, timeout_s: float,
                          drops_since: int | None = None) -> tuple[int, int, tuple | None]:
        """Answer once the dataset-table generation differs from ``since``, or cached copies were
        dropped after drop number ``drops_since`` (``None``: during generation ``since``), or on
        timeout: ``(generation, drop number, keys of the copies dropped since, or None when the log
        no longer reaches back)``. A reader empties its whole read cache only on a new generation."""
        generation = await self._step(lambda: self._state.generation)
        if generation == since and self._drops.since(since, drops_since) == ():
            await self._until("_changed", timeout_s)
        return self._state.generation, self._drops.clock, self._drops.since(since, drops_since)

    async def reserve_version(self, name: str) -> int:
        return await self._step(self._state.reserve_version, name)

    async def commit(self, info: DatasetInfo, refs: list, holders: list[str], keep_previous: int,
                     allow_schema_change: bool = False, spares: tuple = ()) -> None:
        await self._step(self._state.commit, info, refs, holders, keep_previous, allow_schema_change, spares)

    async def set_quota(self, tenant: str, quota: str, limit: float | None) -> None:
        await self._step(self._state.set_quota, tenant, quota, limit)

    async def quotas(self, tenant: str) -> dict[str, float]:
        return await self._step(self._state.quotas, tenant)

    async def report_usage(self, tenant: str, reporter: str, amounts: dict[str, float]) -> None:
        await self._step(self._state.report_usage, tenant, reporter, amounts)

    async def tenant_usage(self, tenant: str, without: str | None) -> dict[str, float]:
        return await self._step(self._state.tenant_usage, tenant, without=without)

    async def lookup(self, name: str, version: int | None, pool: str | None = None) -> Found | Missing:
        return await self._step(self._state.lookup, name, version, pool)

    async def set_pool_cache(self, pool: str, nbytes: int | None) -> None:
        await self._step(self._state.set_pool_cache, pool, nbytes)

    async def cache_add(self, copy: CachedCopy) -> Found | None:
        return await self._step(self._state.cache_add, copy)

    async def cache_forget(self, pool: str, name: str, version: int, key: Any) -> None:
        await self._step(self._state.cache_forget, pool, name, version, key)

    async def cache_reads(self, reads: list[tuple[tuple[str, str, int], int]]) -> None:
        """A process's batch of reads its own read cache served (counted in the pools' LRU order);
        no generation bump: it changes no dataset and no copy."""
        await self._step(self._state.cache_reads, reads)

    async def pool_caches(self) -> dict[str, dict[str, Any]]:
        return await self._step(self._state.pool_caches)

    async def list(self) -> list[DatasetInfo]:
        return await self._step(self._state.list)

    async def versions(self, name: str) -> list[int]:
        return await self._step(self._state.versions, name)

    async def delete(self, name: str, version: int | None) -> bool:
        return await self._step(self._state.delete, name, version)

    async def kv_write_many(self, entries: dict[str, KVValue], nx: bool, ttl_s: int,
                            writer: str | None = None) -> list[str]:
        """All-or-nothing write; returns the keys that already exist (nothing written then)."""
        clash = await self._step(self._state.kv_write_many, entries, nx=nx, ttl_s=ttl_s, writer=writer)
        await self._settle(writer)
        return clash

    async def kv_apply(self, writer: str, ops: list[tuple]) -> None:
        """A process's pipelined KV changes, applied in the order given: ``("w", {key: KVValue},
        ttl_s)`` writes (not NX), ``("d", [keys])`` deletes.

        One writer process sends one batch at a time, so its changes land in the order it made them.
        """
        def apply() -> None:
            for op in ops:
                if op[0] == "w":
                    self._state.kv_write_many(op[1], nx=False, ttl_s=op[2], writer=writer)
                else:
                    self._state.kv_delete(op[1], writer)
        await self._step(apply)
        await self._settle(writer)

    async def kv_read(self, keys: list[str]) -> tuple[str, int, dict[str, tuple[KVValue, float | None]]]:
        """``(epoch, KV clock, {key: (value, seconds left or None)})`` for the keys that are set."""
        clock, found = await self._step(self._state.kv_read_clocked, keys)
        return self._epoch, clock, found

    async def kv_wait_changes(self, reader: str, epoch: str | None, since: int,
                              timeout_s: float) -> tuple[str, int, list | None]:
        """``(epoch, KV clock, [(writer, key)...] changed after ``since``)`` once something changed
        (or on timeout); the list is ``None`` when the log no longer reaches back to ``since``.

        The call is also ``reader``'s acknowledgement of every change up to ``since`` (see
        :mod:`datashare.kv_cache`); ``epoch`` ``None`` is a reader's first call.
        """
        clock = await self._step(lambda: self._state.kv_clock)
        if epoch is not None and epoch != self._epoch:
            return self._epoch, clock, None        # a clock of an earlier incarnation: start again
        self._readers[reader] = (since, time.monotonic())
        self._notify("_acked")
        if clock == since and epoch is not None:
            await self._until("_kv_changed", timeout_s)
        return self._epoch, self._state.kv_clock, self._state.kv_changes(since)

    async def kv_delete(self, keys: list[str], writer: str | None = None) -> int:
        found = await self._step(self._state.kv_delete, keys, writer)
        await self._settle(writer)
        return found

    async def kv_leave(self, reader: str) -> None:
        """``reader`` drops its cache (its process ends): changes stop waiting for it."""
        self._readers.pop(reader, None)
        self._notify("_acked")

    async def _settle(self, writer: str | None) -> None:
        """Return once every other process with a KV cache has acknowledged the KV clock as it is
        now, or its lease has run out, so none of them can serve a value older than this change."""
        clock = self._state.kv_clock
        while True:
            now = time.monotonic()
            for reader in [r for r, (_, seen) in self._readers.items() if seen + LEASE_S <= now]:
                del self._readers[reader]
            waits = [seen + LEASE_S - now for r, (acked, seen) in self._readers.items()
                     if r != writer and acked < clock]
            if now < self._confirm_after:
                waits.append(self._confirm_after - now)
            if not waits:
                return
            await self._until("_acked", min(waits))

    async def kv_keys(self) -> list[str]:
        return await self._step(self._state.kv_keys)


class _Repairs:
    """The repair's own bookkeeping: copies under way, copies that failed lately, warnings given."""

    def __init__(self) -> None:
        self.loop: asyncio.Future | None = None
        self.copying: set[tuple[str, int, int, str]] = set()
        self.tasks: set[asyncio.Future] = set()
        self.seen: tuple = ()           # what the last round looked at (see _repair_once)
        self._failed: dict[tuple[str, int, int, str], float] = {}
        self._warned: set[tuple] = set()

    def failed(self, name: str, version: int, indices: list[int], node: str, until: float) -> None:
        for index in indices:
            self._failed[name, version, index, node] = until

    def avoid(self, now: float) -> set[tuple[str, int, int, str]]:
        for key in [k for k, until in self._failed.items() if until <= now]:
            del self._failed[key]
        return set(self._failed)

    def warn(self, plan: RepairPlan) -> None:
        """Log each version left short of copies, and each chunk with none left, once (again only
        after it was repaired in between)."""
        now = {("short", *s) for s in plan.short} | {("lost", n, v) for n, v, _ in plan.lost}
        for entry in sorted(now - self._warned, key=str):
            kind, name, version = entry
            if kind == "short":
                logger.warning("datashare: %r version %d has fewer copies than it was published with and no "
                               "live node can take another (add nodes, or pools it names); it keeps the copies "
                               "it has", name, version)
            else:
                logger.warning("datashare: %r version %d lost every copy of chunk(s) %s; nothing is left to "
                               "copy them from (publish it again)", name, version,
                               sorted(i for n, v, i in plan.lost if (n, v) == (name, version)))
        self._warned = now


def _cluster_view() -> tuple[dict[str, LiveNode], set[str]]:
    """Live nodes (pool, store size) and live holder names, from the GCS (a few ms)."""
    live_nodes = {n["NodeID"]: LiveNode(pool_of(n.get("Labels")),
                                        int((n.get("Resources") or {}).get("object_store_memory", 0)))
                  for n in ray.nodes() if n.get("Alive")}
    live_holders = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                    if a.get("namespace") == NAMESPACE and a["name"].startswith(HOLDER_PREFIX)}
    return live_nodes, live_holders


_holders: dict[str, Any] = {}


def _holder(hname: str):
    if not hname.startswith(HOLDER_PREFIX):
        return None      # chunks of lifetime="job" data belong to their publisher, not a holder
    # A name lookup is a GCS call (~1 ms) that every commit paid per holder before answering; a
    # dead holder's cached handle fails its calls without blocking the catalogue (fire-and-forget).
    handle = _holders.get(hname)
    if handle is None:
        try:
            handle = _holders[hname] = ray.get_actor(hname, namespace=NAMESPACE)
        except ValueError:  # the holder died with its node, and its data with it
            return None
    return handle
