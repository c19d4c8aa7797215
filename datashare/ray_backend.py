"""Datashare's object-store backend on Ray: holders, the catalogue, and every Ray call.

This module (with :mod:`datashare.ray_data_interop`) is the only part of datashare that imports
Ray. Everything else speaks in Arrow tables, names and node ids.

Ownership. Ray frees an object when its owner (the process that put it) dies, and ``ray.put``
can no longer name another owner. Data that must outlive the job that published it is therefore
re-put by a *holder*: one detached actor per node (``holder-<node id>`` in the
``yuanrong-datashare`` namespace), pinned to its node. Publishing puts each chunk locally (owned
by the publisher, briefly), hands the ref to the holder of the chosen node, and the holder gets it
(zero-copy from the same node's store, or a pull across nodes) and puts it again as its own. That
costs one extra in-store copy per chunk; chunks are pipelined so the publisher's put of chunk
*i+1* overlaps the holder's copy of chunk *i*. Readers borrow the holder's refs, so a reader that
still holds a table keeps its buffers valid after the dataset is deleted or replaced.

The catalogue. A detached, restartable actor (``catalogue``) maps names to versions, metadata and
chunk refs, and also holds the KV table. An actor, not Ray's internal KV, because:

* it holds real ``ObjectRef``s and so takes part in Ray's distributed reference counting, while a
  ref serialised into internal KV is invisible to it (the object could be freed under it);
* its calls run one at a time, which makes version numbers, ``ExistenceOpt.NX`` and appends atomic
  without a compare-and-swap protocol;
* internal KV is private Ray API that may change without notice.

If the catalogue process dies, Ray restarts it and it rebuilds the dataset table from the holders,
which keep every chunk together with its metadata. Small KV values kept inline in the catalogue are
lost in that case (KV values above :data:`KV_INLINE_LIMIT` live in holders and are recovered);
this is documented in ``docs/datashare.md``.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import ray.exceptions as rex
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from datashare.chunking import DEFAULT_CHUNK_BYTES, as_table_stream
from datashare.dataset_info import DatasetInfo
from datashare.errors import (
    DatasetNotFoundError,
    DataTimeoutError,
    InvalidArgumentError,
    NotConnectedError,
    ObjectLostError,
    SchemaMismatchError,
    StoreFullError,
)

NAMESPACE = "yuanrong-datashare"
"""Ray namespace of datashare's detached actors."""

CATALOGUE_NAME = "catalogue"
HOLDER_PREFIX = "holder-"
JOB_PREFIX = "job-"   # marks chunks owned by the publishing process (lifetime="job"), not a holder

KV_INLINE_LIMIT = 64 * 1024
"""KV byte values up to this size live inside the catalogue; larger ones in the object store."""

CONTROL_TIMEOUT_S = 60.0
"""Longest wait for a catalogue or holder call before a clear timeout error."""

_MAX_IN_FLIGHT = 2
_NAME_MAX = 255

# Ray errors meaning "the object is gone", as opposed to "not there yet".
_LOST_ERRORS = (
    rex.ObjectLostError,           # includes OwnerDiedError, ObjectFetchTimedOutError, ...
    rex.ReferenceCountingAssertionError,
)
_STORE_FULL_ERRORS = (rex.ObjectStoreFullError, rex.OutOfDiskError)


# --------------------------------------------------------------------------------------------
# Actors
# --------------------------------------------------------------------------------------------


@ray.remote(num_cpus=0)
class _Holder:
    """Owns the chunks published to its node; lives until the node leaves or it is killed."""

    def __init__(self) -> None:
        self._chunks: dict[str, ray.ObjectRef] = {}          # object hex -> owned ref
        self._keys: dict[tuple, dict[int, str]] = {}          # key -> chunk index -> object hex
        self._info: dict[tuple, Any] = {}                     # key -> DatasetInfo (for rebuild)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def adopt(self, key: tuple, indices: list[int], refs: list[ray.ObjectRef]) -> list[tuple]:
        """Copy the objects behind ``refs`` into refs this holder owns.

        Returns one ``(ref, schema, num_rows, nbytes)`` per object (schema ``None`` for non-tables).
        """
        values = ray.get(refs)
        out = []
        slots = self._keys.setdefault(key, {})
        for index, value in zip(indices, values):
            if isinstance(value, pa.RecordBatch):
                value = pa.Table.from_batches([value])
            ref = ray.put(value)
            self._chunks[ref.hex()] = ref
            slots[index] = ref.hex()
            if isinstance(value, pa.Table):
                out.append((ref, value.schema, value.num_rows, value.nbytes))
            else:
                out.append((ref, None, 0, int(getattr(value, "nbytes", 0))))
        return out

    def link(self, key: tuple, chunks: dict[int, str]) -> None:
        missing = [h for h in chunks.values() if h not in self._chunks]
        if missing:
            raise KeyError(f"holder does not own chunk(s) {missing[:3]}")
        self._keys.setdefault(key, {}).update(chunks)

    def describe(self, key: tuple, info: Any) -> None:
        if key in self._keys:
            self._info[key] = info

    def release(self, keys: list[tuple]) -> None:
        for key in keys:
            self._keys.pop(key, None)
            self._info.pop(key, None)
        live = {h for slots in self._keys.values() for h in slots.values()}
        for h in [h for h in self._chunks if h not in live]:
            del self._chunks[h]

    def inventory(self) -> dict[tuple, tuple[Any, dict[int, ray.ObjectRef]]]:
        return {
            key: (self._info.get(key), {i: self._chunks[h] for i, h in slots.items()})
            for key, slots in self._keys.items()
        }

    def stats(self) -> dict[str, int]:
        return {"keys": len(self._keys), "chunks": len(self._chunks)}


class _Version:
    __slots__ = ("info", "refs", "holders")

    def __init__(self, info: DatasetInfo, refs: list, holders: list[str]) -> None:
        self.info = info
        self.refs = refs
        self.holders = holders


@ray.remote(num_cpus=0, max_restarts=-1)
class _Catalogue:
    """Names -> versions -> chunk refs, plus the KV table.

    An async actor: every method runs on one event loop and none awaits once it has started
    changing state, so each call is atomic; only :meth:`wait_change` parks, which lets every
    reader process keep one watch open without tying up a thread.
    """

    def __init__(self) -> None:
        self._datasets: dict[str, dict[int, _Version]] = {}
        self._next_version: dict[str, int] = {}
        self._kv: dict[str, tuple] = {}              # key -> (kind, payload, expires_at, holder, hkey)
        self._expiry: list[tuple[float, str, int]] = []   # heap of (deadline, key, write seq)
        self._kv_seq: dict[str, int] = {}
        self._seq = 0
        self._generation = 0
        self._changed: asyncio.Event | None = None
        self._ready: asyncio.Future | None = None

    async def _ensure_ready(self) -> None:
        # Awaiting a finished future does not yield, so calls stay atomic after the first.
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._rebuild())
        await self._ready

    def _bump(self) -> None:
        self._generation += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_change(self, since: int, timeout_s: float) -> int:
        """Return the dataset-table generation once it differs from ``since`` (or on timeout)."""
        await self._ensure_ready()
        if self._generation == since:
            if self._changed is None:
                self._changed = asyncio.Event()
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
        return self._generation

    # --- datasets ---------------------------------------------------------------------------

    async def _rebuild(self) -> None:
        """After a restart, recover the dataset table from the holders' inventories."""
        try:
            actors = ray.util.list_named_actors(all_namespaces=True)
        except Exception:  # noqa: BLE001 - a fresh cluster without GCS support just starts empty
            return
        holders = [a["name"] for a in actors
                   if a.get("namespace") == NAMESPACE and a["name"].startswith(HOLDER_PREFIX)]
        found: dict[tuple, tuple[Any, dict[int, tuple]]] = {}
        for hname in holders:
            try:
                handle = ray.get_actor(hname, namespace=NAMESPACE)
                inv = await asyncio.wait_for(handle.inventory.remote(), 10)
            except Exception:  # noqa: BLE001 - a dead holder's data is gone; skip it
                continue
            for key, (info, chunks) in inv.items():
                if key[0] != "ds":
                    kv_key = key[1]
                    if info is not None and kv_key not in self._kv:
                        ref = chunks.get(0)
                        if ref is not None:
                            self._kv[kv_key] = (info, [ref], None, hname, key)
                    continue
                entry = found.setdefault(key, (info, {}))
                if entry[0] is None and info is not None:
                    entry = found[key] = (info, entry[1])
                for index, ref in chunks.items():
                    entry[1][index] = (ref, hname)
        for (_, name, version), (info, chunks) in found.items():
            if info is None or sorted(chunks) != list(range(info.num_chunks)):
                continue
            refs = [chunks[i][0] for i in range(info.num_chunks)]
            holders_ = [chunks[i][1] for i in range(info.num_chunks)]
            self._datasets.setdefault(name, {})[version] = _Version(info, refs, holders_)
            self._next_version[name] = max(self._next_version.get(name, 1), version + 1)

    async def reserve_version(self, name: str) -> int:
        await self._ensure_ready()
        version = self._next_version.get(name, 1)
        self._next_version[name] = version + 1
        return version

    async def commit(self, info: DatasetInfo, refs: list, holders: list[str], keep_previous: int) -> None:
        await self._ensure_ready()
        versions = self._datasets.setdefault(info.name, {})
        versions[info.version] = _Version(info, refs, holders)
        for hname in set(holders):
            holder = self._holder(hname)
            if holder is not None:
                holder.describe.remote(("ds", info.name, info.version), info)
        older = sorted(v for v in versions if v < info.version)
        drop = older[: max(0, len(older) - keep_previous)]
        self._drop(info.name, drop)
        self._bump()

    async def lookup(self, name: str, version: int | None) -> tuple:
        await self._ensure_ready()
        versions = self._datasets.get(name)
        if not versions:
            return ("missing", sorted(self._datasets), [], self._generation)
        if version is None:
            version = max(versions)
        entry = versions.get(version)
        if entry is None:
            return ("missing", sorted(self._datasets), sorted(versions), self._generation)
        return ("ok", entry.info, entry.refs, entry.holders, self._generation)

    async def list(self) -> list[DatasetInfo]:
        await self._ensure_ready()
        return [v[max(v)].info for _, v in sorted(self._datasets.items()) if v]

    async def versions(self, name: str) -> list[int]:
        await self._ensure_ready()
        return sorted(self._datasets.get(name, {}))

    async def delete(self, name: str, version: int | None) -> bool:
        await self._ensure_ready()
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
        by_holder: dict[str, list[tuple]] = {}
        for version in versions:
            entry = table.pop(version, None)
            if entry is None:
                continue
            for hname in set(entry.holders):
                by_holder.setdefault(hname, []).append(("ds", name, version))
        if not table:
            self._datasets.pop(name, None)
        if versions:
            self._bump()
        for hname, keys in by_holder.items():
            holder = self._holder(hname)
            if holder is not None:
                holder.release.remote(keys)

    @staticmethod
    def _holder(hname: str):
        try:
            return ray.get_actor(hname, namespace=NAMESPACE)
        except ValueError:  # the holder died with its node, and its data with it
            return None

    # --- KV ---------------------------------------------------------------------------------

    def _expire(self) -> None:
        now = time.time()
        while self._expiry and self._expiry[0][0] <= now:
            _, key, seq = heapq.heappop(self._expiry)
            if self._kv_seq.get(key) == seq:
                self._kv_remove(key)

    def _kv_remove(self, key: str) -> bool:
        entry = self._kv.pop(key, None)
        self._kv_seq.pop(key, None)
        if entry is None:
            return False
        _, _, _, hname, hkey = entry
        holder = self._holder(hname) if hname is not None else None
        if holder is not None:
            holder.release.remote([hkey])
        return True

    def kv_write(self, key: str, entry: tuple, nx: bool, ttl_s: int) -> bool:
        """Store ``entry`` (kind, payload, holder, hkey); False when NX finds the key set."""
        self._expire()
        if nx and key in self._kv:
            return False
        if key in self._kv:
            self._kv_remove(key)
        kind, payload, hname, hkey = entry
        self._seq += 1
        expires = time.time() + ttl_s if ttl_s > 0 else None
        self._kv[key] = (kind, payload, expires, hname, hkey)
        self._kv_seq[key] = self._seq
        if expires is not None:
            heapq.heappush(self._expiry, (expires, key, self._seq))
        return True

    async def kv_write_many(self, entries: dict[str, tuple], nx: bool, ttl_s: int) -> list[str]:
        """All-or-nothing write; returns the keys that already exist (nothing written then)."""
        await self._ensure_ready()
        self._expire()
        if nx:
            clash = [k for k in entries if k in self._kv]
            if clash:
                return clash
        for key, entry in entries.items():
            self.kv_write(key, entry, False, ttl_s)
        return []

    async def kv_read(self, keys: list[str]) -> dict[str, tuple[str, Any]]:
        await self._ensure_ready()
        self._expire()
        return {k: (self._kv[k][0], self._kv[k][1]) for k in keys if k in self._kv}

    async def kv_delete(self, keys: list[str]) -> int:
        await self._ensure_ready()
        self._expire()
        return sum(self._kv_remove(k) for k in keys)

    async def kv_keys(self) -> list[str]:
        await self._ensure_ready()
        self._expire()
        return sorted(self._kv)


# --------------------------------------------------------------------------------------------
# Connection and actor handles
# --------------------------------------------------------------------------------------------

_handles_lock = threading.Lock()
_holder_handles: dict[str, Any] = {}
_catalogue_handle: list[Any] = []


def require_connected() -> None:
    """Raise :class:`NotConnectedError` unless this process is a Ray driver or worker."""
    if not ray.is_initialized():
        raise NotConnectedError()


def connect(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` (for the Flight CLI)."""
    if not ray.is_initialized():
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)


def current_node_id() -> str:
    """Ray node id of the node this process runs on."""
    require_connected()
    return ray.get_runtime_context().get_node_id()


def alive_nodes() -> dict[str, dict[str, Any]]:
    """Node id -> Ray's node record, for live nodes."""
    return {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}


def _catalogue():
    with _handles_lock:
        if _catalogue_handle:
            return _catalogue_handle[0]
        handle = _Catalogue.options(
            name=CATALOGUE_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            # The head node lives as long as the cluster; edge nodes may come and go.
            resources={"node:__internal_head__": 0.001},
        ).remote()
        _catalogue_handle.append(handle)
        return handle


def _holder(node_id: str):
    with _handles_lock:
        handle = _holder_handles.get(node_id)
        if handle is None:
            handle = _Holder.options(
                name=HOLDER_PREFIX + node_id, namespace=NAMESPACE, lifetime="detached",
                get_if_exists=True,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote()
            _holder_handles[node_id] = handle
        return handle


def _node_of(owner: str) -> str:
    return owner.split("-", 1)[1]


def _holder_by_name(hname: str):
    return _holder(hname[len(HOLDER_PREFIX):])


def _forget_handles() -> None:
    _read_cache.clear()
    with _handles_lock:
        _holder_handles.clear()
        _catalogue_handle.clear()


def _call(ref, *, what: str, timeout: float = CONTROL_TIMEOUT_S):
    """``ray.get`` for control calls: a clear timeout, and the remote error's own type."""
    try:
        return ray.get(ref, timeout=timeout)
    except rex.GetTimeoutError:
        raise DataTimeoutError(what, timeout) from None
    except rex.RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        if isinstance(cause, _STORE_FULL_ERRORS):
            raise StoreFullError(nbytes=None, node_id=None, cause=type(cause).__name__) from exc
        raise


def _ask_catalogue(method: str, *args: Any, timeout: float) -> Any:
    """Call the catalogue, riding out a restart (Ray restarts it; calls fail meanwhile).

    Every catalogue method is safe to repeat: lookups read, commits and deletes converge, and a
    repeated ``reserve_version`` only skips a number.
    """
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        remaining = max(0.001, deadline - time.monotonic())
        try:
            return _call(getattr(_catalogue(), method).remote(*args), what="the catalogue", timeout=remaining)
        except (rex.ActorUnavailableError, rex.ActorDiedError) as exc:
            if isinstance(exc, rex.ActorDiedError):
                _forget_handles()   # killed for good: the next call creates (and rebuilds) a new one
            if time.monotonic() + pause >= deadline:
                raise DataTimeoutError("an answer from the restarting catalogue", timeout) from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def shutdown_actors() -> None:
    """Kill the catalogue and every holder: all published data and KV entries are dropped.

    For tests and for tearing a cluster down; published data is gone afterwards.
    """
    require_connected()
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor.get("namespace") != NAMESPACE:
            continue
        try:
            ray.kill(ray.get_actor(actor["name"], namespace=NAMESPACE), no_restart=True)
        except ValueError:
            pass
    _forget_handles()


# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------

_SUPPORTED = (pa.Table, pa.RecordBatch, pa.ChunkedArray, pa.Array, np.ndarray)


def put(value: Any) -> ray.ObjectRef:
    """Put an Arrow table, record batch, chunked array, array or numpy array into the store.

    The ref is owned by this process (the object dies with it); use :func:`publish` for data
    that must outlive the process. A same-node :func:`get` returns buffers in shared memory.
    """
    require_connected()
    if not isinstance(value, _SUPPORTED):
        raise InvalidArgumentError(
            "value", value, "datashare.put takes a pyarrow Table, RecordBatch, ChunkedArray, Array "
            "or a numpy ndarray; use ray.put for other Python objects.")
    return _put(value, _nbytes(value))


def _nbytes(value: Any) -> int:
    return int(value.nbytes)


def _put(value: Any, nbytes: int | None) -> ray.ObjectRef:
    try:
        return ray.put(value)
    except _STORE_FULL_ERRORS as exc:
        raise StoreFullError(nbytes=nbytes, node_id=current_node_id(), cause=type(exc).__name__) from exc


def get(refs: ray.ObjectRef | Sequence[ray.ObjectRef], *, timeout: float | None = CONTROL_TIMEOUT_S) -> Any:
    """Get one object (or a list): same-node Arrow/numpy data comes back without a copy."""
    require_connected()
    single = isinstance(refs, ray.ObjectRef)
    ref_list = [refs] if single else list(refs)
    values = _get_chunks(ref_list, name=None, version=None, node_ids=(), timeout=timeout)
    return values[0] if single else values


def _get_chunks(refs: list, *, name: str | None, version: int | None, node_ids: Sequence[str],
                timeout: float | None) -> list:
    try:
        return ray.get(refs, timeout=timeout)
    except rex.GetTimeoutError:
        what = f"dataset {name!r} version {version}" if name is not None else f"{len(refs)} object(s)"
        raise DataTimeoutError(what, timeout or 0.0) from None
    except _LOST_ERRORS as exc:
        lost = []
        for i, ref in enumerate(refs):
            try:
                ray.get(ref, timeout=5)
            except (*_LOST_ERRORS, rex.GetTimeoutError):
                lost.append(i)
        raise ObjectLostError(name=name, version=version, lost_chunks=lost or list(range(len(refs))),
                              total_chunks=len(refs), node_ids=node_ids,
                              cause=type(exc).__name__) from None


# --------------------------------------------------------------------------------------------
# Named datasets
# --------------------------------------------------------------------------------------------


def check_name(name: object, *, argument: str = "name") -> str:
    """Validate a dataset name or KV key: a non-empty str of at most 255 bytes, no NUL."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(argument, name, "it must be a non-empty str.")
    if len(name.encode()) > _NAME_MAX or "\x00" in name:
        raise InvalidArgumentError(argument, name, f"it must be at most {_NAME_MAX} bytes, without NUL.")
    return name


def _target_nodes(nodes: Sequence[str] | None) -> list[str]:
    if nodes is None:
        return [current_node_id()]
    if isinstance(nodes, str) or not nodes:
        raise InvalidArgumentError("nodes", nodes, "it must be a non-empty sequence of Ray node ids.")
    live = alive_nodes()
    unknown = [n for n in nodes if n not in live]
    if unknown:
        raise InvalidArgumentError(
            "nodes", list(nodes), f"node(s) {', '.join(unknown)} are not alive in this cluster; live "
            f"nodes: {', '.join(sorted(live))}.")
    return list(dict.fromkeys(nodes))


def publish(name: str, data: Any, *, nodes: Sequence[str] | None = None,
            chunk_bytes: int = DEFAULT_CHUNK_BYTES, keep_previous: int = 1, lifetime: str = "detached",
            timeout: float = CONTROL_TIMEOUT_S) -> DatasetInfo:
    """Publish ``data`` under ``name`` as a new version.

    Args:
        name: Dataset name (1-255 bytes).
        data: A pyarrow Table, RecordBatch, RecordBatchReader, or an iterable of tables/batches
            with one schema.
        nodes: Node ids whose holders keep the chunks, round-robin; default: this node.
        chunk_bytes: Target size of one chunk object.
        keep_previous: How many older versions stay readable; older ones are released.
        lifetime: ``"detached"`` (default): the data lives until deleted, owned by per-node
            holders (one extra in-store copy). ``"job"``: this process owns the chunks (no extra
            copy); they are lost after it exits, once Ray has freed a dead owner's objects
            (asynchronously, at times after many seconds); readers then get :class:`ObjectLostError`.
        timeout: Seconds to wait for the catalogue and holders.

    Returns:
        The new version's :class:`DatasetInfo`.

    Raises:
        SchemaMismatchError: Pieces of ``data`` disagree on the schema.
        StoreFullError: The store is full and cannot spill.
        InvalidArgumentError: A bad name, option or data type.

    Example:
        >>> publish("features", pa.table({"x": [1, 2]}))   # doctest: +SKIP
    """
    return _publish(name, data, nodes=nodes, chunk_bytes=chunk_bytes, keep_previous=keep_previous,
                    lifetime=lifetime, timeout=timeout, base=None)


def append(name: str, data: Any, *, nodes: Sequence[str] | None = None,
           chunk_bytes: int = DEFAULT_CHUNK_BYTES, keep_previous: int = 1, lifetime: str = "detached",
           timeout: float = CONTROL_TIMEOUT_S) -> DatasetInfo:
    """Publish a new version of ``name`` made of its latest version plus ``data``.

    The existing chunks are reused (no copy); only ``data`` is stored. Arguments as for
    :func:`publish`.

    Raises:
        DatasetNotFoundError: ``name`` is not published.
        SchemaMismatchError: ``data`` does not have the dataset's schema.
    """
    check_name(name)
    base = _lookup(name, None, timeout)
    return _publish(name, data, nodes=nodes, chunk_bytes=chunk_bytes, keep_previous=keep_previous,
                    lifetime=lifetime, timeout=timeout, base=base)


def _check_keep(keep_previous: object) -> None:
    if not isinstance(keep_previous, int) or isinstance(keep_previous, bool) or keep_previous < 0:
        raise InvalidArgumentError("keep_previous", keep_previous, "it must be an int >= 0.")


def _publish(name: str, data: Any, *, nodes, chunk_bytes: int, keep_previous: int, lifetime: str,
             timeout: float, base: tuple | None) -> DatasetInfo:
    require_connected()
    check_name(name)
    _check_keep(keep_previous)
    if lifetime not in ("detached", "job"):
        raise InvalidArgumentError("lifetime", lifetime, "use 'detached' (lives until deleted) or 'job' "
                                   "(owned by this process, no extra copy).")
    targets = _target_nodes(nodes)
    if lifetime == "job" and targets != [current_node_id()]:
        raise InvalidArgumentError("nodes", nodes, "lifetime='job' data stays on this process's node; "
                                   "leave nodes unset, or use lifetime='detached' to place it elsewhere.")
    version = _ask_catalogue("reserve_version", name, timeout=timeout)
    key = ("ds", name, version)

    schema: pa.Schema | None = None
    refs: list = []
    holders: list[str] = []
    num_rows = nbytes = 0
    if base is not None:
        info0, refs0, holders0 = base
        schema = info0.schema
        refs.extend(refs0)
        holders.extend(holders0)
        num_rows, nbytes = info0.num_rows, info0.nbytes
        # The holders of the previous version also keep these chunks for the new one.
        by_holder: dict[str, dict[int, str]] = {}
        for i, (ref, hname) in enumerate(zip(refs0, holders0)):
            by_holder.setdefault(hname, {})[i] = ref.hex()
        for hname, chunks in by_holder.items():
            if hname.startswith(HOLDER_PREFIX):
                _call(_holder_by_name(hname).link.remote(key, chunks), what=f"holder {hname}", timeout=timeout)

    pending: list[tuple[int, Any, int]] = []
    used: set[str] = set(holders)
    try:
        for chunk in as_table_stream(data, chunk_bytes=chunk_bytes):
            if schema is None:
                schema = chunk.schema
            elif not chunk.schema.equals(schema):
                raise SchemaMismatchError(name, schema, chunk.schema)
            index = len(refs)
            node = targets[(index - (len(base[1]) if base else 0)) % len(targets)]
            temp = _put(chunk, chunk.nbytes)
            if lifetime == "job":
                refs.append(temp)
                holders.append(JOB_PREFIX + node)
            else:
                hname = HOLDER_PREFIX + node
                used.add(hname)
                pending.append((index, _holder(node).adopt.remote(key, [index], [temp]), chunk.nbytes))
                refs.append(None)
                holders.append(hname)
            num_rows += chunk.num_rows
            nbytes += chunk.nbytes
            del temp
            while len(pending) > _MAX_IN_FLIGHT:
                _settle(pending.pop(0), refs, holders, timeout)
        while pending:
            _settle(pending.pop(0), refs, holders, timeout)
        if schema is None:
            raise InvalidArgumentError("data", data, "it holds no table or record batch, so there is no "
                                       "schema to publish; publish an empty table to publish no rows.")
        info = DatasetInfo(
            name=name, version=version, schema=schema, num_rows=num_rows, nbytes=nbytes,
            num_chunks=len(refs),
            node_ids=tuple(dict.fromkeys(_node_of(h) for h in holders)),
            created_at=time.time(),
        )
        _ask_catalogue("commit", info, refs, holders, keep_previous, timeout=timeout)
        _read_cache.clear()  # read-your-writes, before the change notification arrives
        return info
    except BaseException:
        for hname in used & {h for h in used if h.startswith(HOLDER_PREFIX)}:
            try:
                _holder_by_name(hname).release.remote([key])
            except Exception:  # noqa: BLE001 - best effort cleanup; the original error matters
                pass
        raise


def publish_refs(name: str, block_refs: Sequence[ray.ObjectRef], *, keep_previous: int = 1,
                 timeout: float = CONTROL_TIMEOUT_S) -> DatasetInfo:
    """Publish Arrow tables already in the object store (e.g. Ray Data blocks) under ``name``.

    Each block is adopted by the holder of a node that already has it, so nothing crosses the
    network; the holder's copy is the only one made.
    """
    require_connected()
    check_name(name)
    _check_keep(keep_previous)
    block_refs = list(block_refs)
    if not block_refs:
        raise InvalidArgumentError("block_refs", block_refs, "there is nothing to publish; give at least one block.")
    version = _ask_catalogue("reserve_version", name, timeout=timeout)
    key = ("ds", name, version)
    try:
        located = ray.experimental.get_object_locations(block_refs, timeout_ms=int(timeout * 1000))
    except rex.GetTimeoutError:
        raise DataTimeoutError("block locations", timeout) from None
    here = current_node_id()
    live = alive_nodes()
    futures, holders = [], []
    for index, ref in enumerate(block_refs):
        nodes = [n for n in (located.get(ref) or {}).get("node_ids") or () if n in live]
        node = here if (here in nodes or not nodes) else nodes[0]
        holders.append(HOLDER_PREFIX + node)
        futures.append(_holder(node).adopt.remote(key, [index], [ref]))
    try:
        adopted = []
        for index, future in enumerate(futures):
            try:
                adopted.append(_call(future, what=f"block {index} copy", timeout=timeout)[0])
            except _LOST_ERRORS as exc:
                raise ObjectLostError(name=name, version=version, lost_chunks=[index], total_chunks=len(block_refs),
                                      node_ids=(), cause=type(exc).__name__) from None
        schema = adopted[0][1]
        if schema is None:
            raise InvalidArgumentError("block_refs", block_refs[0], "blocks must be pyarrow Tables "
                                       "(ray.data.Dataset.to_arrow_refs() gives those).")
        for _, block_schema, _, _ in adopted[1:]:
            if block_schema is None or not block_schema.equals(schema):
                raise SchemaMismatchError(name, schema, block_schema)
        info_ = DatasetInfo(
            name=name, version=version, schema=schema, num_rows=sum(a[2] for a in adopted),
            nbytes=sum(a[3] for a in adopted), num_chunks=len(adopted),
            node_ids=tuple(dict.fromkeys(_node_of(h) for h in holders)), created_at=time.time(),
        )
        _ask_catalogue("commit", info_, [a[0] for a in adopted], holders, keep_previous, timeout=timeout)
        _read_cache.clear()
        return info_
    except BaseException:
        for hname in set(holders):
            try:
                _holder_by_name(hname).release.remote([key])
            except Exception:  # noqa: BLE001 - best effort cleanup; the original error matters
                pass
        raise


def _settle(item: tuple[int, Any, int], refs: list, holders: list[str], timeout: float) -> None:
    index, future, nbytes = item
    hname = holders[index]
    try:
        owned = ray.get(future, timeout=timeout)
    except rex.GetTimeoutError:
        raise DataTimeoutError(f"chunk {index} copy by {hname}", timeout) from None
    except rex.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, _STORE_FULL_ERRORS):
            raise StoreFullError(nbytes=nbytes, node_id=hname[len(HOLDER_PREFIX):],
                                 cause=type(cause).__name__) from exc
        raise
    refs[index] = owned[0][0]


def _lookup(name: str, version: int | None, timeout: float) -> tuple[DatasetInfo, list, list[str]]:
    return _lookup_with_generation(name, version, timeout)[:3]


def _lookup_with_generation(name: str, version: int | None, timeout: float) -> tuple[DatasetInfo, list, list[str], int]:
    require_connected()
    check_name(name)
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise InvalidArgumentError("version", version, "it must be an int >= 1, or None for the latest.")
    reply = _ask_catalogue("lookup", name, version, timeout=timeout)
    _read_cache.saw_generation(reply[-1])
    if reply[0] == "missing":
        raise DatasetNotFoundError(name, version=version, known=reply[1], versions=reply[2])
    _, info, refs, holders, generation = reply
    return info, refs, holders, generation


def info(name: str, *, version: int | None = None, timeout: float = CONTROL_TIMEOUT_S) -> DatasetInfo:
    """Metadata of the latest (or the given) version of ``name``."""
    return _lookup(name, version, timeout)[0]


def refs(name: str, *, version: int | None = None,
         timeout: float = CONTROL_TIMEOUT_S) -> tuple[DatasetInfo, list[ray.ObjectRef]]:
    """Metadata and chunk refs of ``name`` (borrowed; they keep the chunks alive while held)."""
    info_, refs_, _ = _lookup(name, version, timeout)
    return info_, list(refs_)


class _ReadCache:
    """Tables this process opened, valid until the catalogue's dataset table changes.

    A watch call (``wait_change``) stays parked in the catalogue; when any dataset is published,
    appended or deleted it returns and the cache is emptied. So a repeated ``open`` costs no round
    trip, and this process sees another process's publish as soon as the notification arrives
    (milliseconds). Cached tables pin their buffers in the store, exactly as a caller holding
    the table would; they are let go on the next change.
    """

    _WATCH_S = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._watch: Any = None
        self._tables: dict[tuple[str, int | None], tuple[DatasetInfo, pa.Table, int]] = {}

    def get(self, name: str, version: int | None) -> tuple[DatasetInfo, pa.Table] | None:
        with self._lock:
            hit = self._tables.get((name, version))
            if hit is None or self._watch is None or hit[2] != self._generation:
                return None
            return hit[0], hit[1]

    def put(self, name: str, version: int | None, info: DatasetInfo, table: pa.Table, generation: int) -> None:
        with self._lock:
            if generation == self._generation and self._watch is not None:
                self._tables[(name, version)] = (info, table, generation)

    def saw_generation(self, generation: int) -> None:
        """Called with the generation each catalogue lookup reports."""
        with self._lock:
            if generation == self._generation and self._watch is not None:
                return
            self._tables.clear()
            self._generation = generation
            self._arm(generation)

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()
            self._generation = None

    def _arm(self, generation: int) -> None:
        try:
            watch = _catalogue().wait_change.remote(generation, self._WATCH_S)
        except Exception:  # noqa: BLE001 - no watch just means no caching
            self._watch = None
            return
        self._watch = watch
        watch.future().add_done_callback(lambda fut, g=generation: self._on_change(g, fut))

    def _on_change(self, generation: int, fut: Any) -> None:
        try:
            new = fut.result()
        except Exception:  # noqa: BLE001 - catalogue restarted or died: stop trusting the cache
            new = None
        with self._lock:
            if self._generation != generation:
                return
            if new == generation:
                self._arm(generation)           # quiet period: keep the cache, watch again
                return
            self._tables.clear()
            self._generation = None
            self._watch = None


_read_cache = _ReadCache()


def open_table(name: str, *, version: int | None = None, timeout: float | None = CONTROL_TIMEOUT_S,
               fresh: bool = False) -> pa.Table:
    """The whole dataset as one table whose buffers live in the object store (no copy on this node).

    Args:
        name: Dataset name.
        version: A retained version; ``None`` for the latest.
        timeout: Seconds to wait for the chunks (pulled from other nodes if needed).
        fresh: Ask the catalogue even if this process has the table cached.

    Returns:
        A table made of the published chunks (read-only buffers in shared memory).

    Raises:
        DatasetNotFoundError: No such name or version.
        ObjectLostError: Some chunks are gone; nothing partial is returned.
        DataTimeoutError: The chunks did not arrive in time.

    Example:
        >>> open_table("features").num_rows   # doctest: +SKIP
        3
    """
    if not fresh:
        require_connected()
        check_name(name)
        hit = _read_cache.get(name, version)
        if hit is not None:
            return hit[1]
    info_, refs_, _, generation = _lookup_with_generation(name, version, timeout or CONTROL_TIMEOUT_S)
    chunks = _get_chunks(refs_, name=name, version=info_.version, node_ids=info_.node_ids, timeout=timeout)
    table = chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks)
    _read_cache.put(name, version, info_, table, generation)
    return table


def stream(name: str, *, version: int | None = None,
           timeout: float | None = CONTROL_TIMEOUT_S) -> Iterator[pa.RecordBatch]:
    """Yield the dataset's record batches chunk by chunk, fetching the next chunk ahead.

    Only one or two chunks need to be local at a time, so this reads datasets larger than the
    reader's store. Raises :class:`ObjectLostError` at the first unreadable chunk.

    Example:
        >>> rows = sum(b.num_rows for b in stream("big"))   # doctest: +SKIP
    """
    info_, refs_, _ = _lookup(name, version, timeout or CONTROL_TIMEOUT_S)
    for i, ref in enumerate(refs_):
        if i + 1 < len(refs_):
            # Start pulling the next chunk while the caller works on this one.
            ray.wait([refs_[i + 1]], timeout=0, fetch_local=True)
        try:
            (chunk,) = _get_chunks([ref], name=name, version=info_.version, node_ids=info_.node_ids,
                                   timeout=timeout)
        except ObjectLostError as exc:
            raise ObjectLostError(name=name, version=info_.version, lost_chunks=[i],
                                  total_chunks=len(refs_), node_ids=info_.node_ids,
                                  cause="chunk unreadable during streaming") from exc
        yield from chunk.to_batches()


def list_datasets(*, timeout: float = CONTROL_TIMEOUT_S) -> list[DatasetInfo]:
    """Latest version of every published dataset, sorted by name."""
    require_connected()
    return _ask_catalogue("list", timeout=timeout)


def versions(name: str, *, timeout: float = CONTROL_TIMEOUT_S) -> list[int]:
    """Retained versions of ``name`` (empty if unknown)."""
    require_connected()
    check_name(name)
    return _ask_catalogue("versions", name, timeout=timeout)


def delete(name: str, *, version: int | None = None, timeout: float = CONTROL_TIMEOUT_S) -> bool:
    """Drop ``name`` (or one version); False when there was nothing to drop."""
    require_connected()
    check_name(name)
    deleted = _ask_catalogue("delete", name, version, timeout=timeout)
    _read_cache.clear()
    return deleted


# --------------------------------------------------------------------------------------------
# Locality
# --------------------------------------------------------------------------------------------


def locality(name_or_ref: str | ray.ObjectRef, *, timeout: float = CONTROL_TIMEOUT_S) -> dict[str, int]:
    """Bytes of the data held on each node (copies included), largest first."""
    require_connected()
    if isinstance(name_or_ref, ray.ObjectRef):
        ref_list = [name_or_ref]
    elif isinstance(name_or_ref, str):
        ref_list = _lookup(name_or_ref, None, timeout)[1]
    else:
        raise InvalidArgumentError("name_or_ref", name_or_ref, "pass a dataset name or an ObjectRef.")
    try:
        locations = ray.experimental.get_object_locations(ref_list, timeout_ms=int(timeout * 1000))
    except rex.GetTimeoutError:
        raise DataTimeoutError("object locations", timeout) from None
    held: dict[str, int] = {}
    for ref in ref_list:
        loc = locations.get(ref) or {}
        for node in loc.get("node_ids") or ():
            held[node] = held.get(node, 0) + int(loc.get("object_size") or 0)
    return dict(sorted(held.items(), key=lambda kv: (-kv[1], kv[0])))


def where(name_or_ref: str | ray.ObjectRef, *, timeout: float = CONTROL_TIMEOUT_S) -> tuple[str, ...]:
    """Node ids holding the data, most bytes first (for placing work next to it).

    Args:
        name_or_ref: A dataset name (its latest version) or an ``ObjectRef``.
        timeout: Seconds to wait for Ray's object directory.

    Example:
        >>> where("features")   # doctest: +SKIP
        ('5f1c...', '9a0e...')
    """
    return tuple(locality(name_or_ref, timeout=timeout))


# --------------------------------------------------------------------------------------------
# KV storage (semantics in datashare.kv)
# --------------------------------------------------------------------------------------------


def kv_store(entries: dict[str, Any], *, nx: bool, ttl_s: int, timeout: float) -> list[str]:
    """Write ``entries`` atomically; returns keys that blocked an NX write (then nothing is written)."""
    require_connected()
    prepared: dict[str, tuple] = {}
    adopted: list[tuple[str, tuple]] = []
    try:
        for key, value in entries.items():
            if isinstance(value, (bytes, bytearray, memoryview)) and len(value) <= KV_INLINE_LIMIT:
                prepared[key] = ("bytes", bytes(value), None, None)
                continue
            if isinstance(value, (bytes, bytearray, memoryview)):
                kind, stored = "bytes", np.frombuffer(bytes(value) if isinstance(value, memoryview)
                                                      else value, dtype=np.uint8)
            else:
                kind, stored = "arrow", value
            node = current_node_id()
            hkey = ("kv", key, uuid.uuid4().hex)
            temp = _put(stored, _nbytes(stored))
            owned = _call(_holder(node).adopt.remote(hkey, [0], [temp]), what="the holder", timeout=timeout)
            hname = HOLDER_PREFIX + node
            adopted.append((hname, hkey))
            _holder(node).describe.remote(hkey, kind)
            prepared[key] = (kind, [owned[0][0]], hname, hkey)
        clash = _ask_catalogue("kv_write_many", prepared, nx, ttl_s, timeout=timeout)
    except BaseException:
        _release(adopted)
        raise
    if clash:
        _release(adopted)
    return clash


def _release(adopted: list[tuple[str, tuple]]) -> None:
    for hname, hkey in adopted:
        try:
            _holder_by_name(hname).release.remote([hkey])
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass


def kv_fetch(keys: list[str], *, timeout: float) -> dict[str, Any]:
    """Values of the keys that exist now (bytes, memoryview or Arrow data)."""
    require_connected()
    found = _ask_catalogue("kv_read", keys, timeout=max(timeout, 10.0))
    out: dict[str, Any] = {}
    for key, (kind, payload) in found.items():
        if payload is None or isinstance(payload, bytes):
            out[key] = payload
            continue
        (value,) = _get_chunks(payload, name=None, version=None, node_ids=(), timeout=CONTROL_TIMEOUT_S)
        out[key] = memoryview(value) if kind == "bytes" else value
    return out


def kv_remove(keys: list[str], *, timeout: float) -> int:
    """Delete keys; returns how many existed."""
    require_connected()
    return _ask_catalogue("kv_delete", keys, timeout=timeout)


def kv_list(*, timeout: float) -> list[str]:
    """Live keys, sorted."""
    require_connected()
    return _ask_catalogue("kv_keys", timeout=timeout)
