"""Named, versioned datasets: publish, append, open, stream, inspect, delete and locate them.

A dataset version is a list of chunk tables in Ray's object store, owned by per-node holders
(or, with ``lifetime="job"``, by the publishing process) and named in the catalogue. The Ray
mechanics live in :mod:`datashare._ray`; this module is the API and its checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
from opentelemetry import trace as otel_trace

from datashare import chunk_homes, chunk_reads, tenancy
from datashare._ray import handles
from datashare._ray.handles import CONTROL_TIMEOUT_S, current_node_id, require_connected
from datashare._ray.naming import node_of
from datashare._ray.pipeline import ChunkWriter
from datashare._ray.store import as_ray_ref, bytes_by_node, get_chunks, prefetch
from datashare.arguments import check_timeout, check_version
from datashare.catalogue import Found, dataset_key
from datashare.chunking import DEFAULT_CHUNK_BYTES, as_table_stream
from datashare.dataset_info import DatasetInfo
from datashare.errors import (
    DatasetNotFoundError,
    InvalidArgumentError,
    ObjectLostError,
    SchemaMismatchError,
)
from datashare.read_cache import ReadCache
from datashare.read_reports import ReadReports
from datashare.telemetry import report

# OpenTelemetry's global tracer: spans are recorded when the application installed a provider (yuanrong
# does when its job traces), and cost a no-op otherwise.
_tracer = otel_trace.get_tracer("datashare")

__all__ = [
    "append",
    "check_name",
    "delete",
    "info",
    "list_datasets",
    "locality",
    "open_table",
    "publish",
    "publish_refs",
    "refs",
    "stream",
    "versions",
    "where",
]

_NAME_MAX = 255

# Opens the read cache serves are counted toward the pool caches' LRU order, reported in batches.
_read_reports = ReadReports(lambda reads: handles.tell_catalogue("cache_reads", reads))
_read_cache = ReadCache(handles.watch_catalogue, on_read=_read_reports.note)
handles.on_forget(_read_cache.clear)
handles.on_forget(_read_reports.clear)


def check_name(name: object, *, argument: str = "name") -> str:
    """Validate a dataset name: a non-empty str of at most 255 bytes, no NUL.

    Returns the full name it means for the calling tenant (``tenancy.full_name``); refuses another
    tenant's full name with :class:`PermissionDeniedError`.
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(argument, name, "it must be a non-empty str.")
    if len(name.encode()) > _NAME_MAX or "\x00" in name:
        raise InvalidArgumentError(argument, name, f"it must be at most {_NAME_MAX} bytes, without NUL.")
    return tenancy.full_name(name, argument=argument)


def _check_keep(keep_previous: object) -> None:
    if not isinstance(keep_previous, int) or isinstance(keep_previous, bool) or keep_previous < 0:
        raise InvalidArgumentError("keep_previous", keep_previous, "it must be an int >= 0.")


def _check_flag(allow_schema_change: object) -> None:
    if not isinstance(allow_schema_change, bool):
        raise InvalidArgumentError("allow_schema_change", allow_schema_change, "it must be True or False.")


# --------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------


def publish(name: str, data: Any, *, nodes: Sequence[str] | None = None,
            chunk_bytes: int = DEFAULT_CHUNK_BYTES, keep_previous: int = 1, lifetime: str = "detached",
            timeout: float = CONTROL_TIMEOUT_S, allow_schema_change: bool = False,
            replicas: int | str | Sequence[str] = 1) -> DatasetInfo:
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
        allow_schema_change: Publish even when the schema differs from the latest version's;
            without it such a version is refused, so that readers of the name never meet other
            columns unannounced.
        replicas: Copies of every chunk, each on a different node (detached only). An int N:
            N copies, the extra ones on live nodes other than ``nodes``, preferring nodes whose
            labels (pool, tier) differ from the first holder's. ``"pools"``: a copy in every pool
            with a live node; a list of pool names: a copy in each of them (one node per pool,
            the one with the largest store; the holder nodes' pool needs none). A read takes the
            copy nearest to it and falls back to the others when a node is gone; ``where``
            reports them.

    Returns:
        The new version's :class:`DatasetInfo`.

    Raises:
        SchemaMismatchError: Pieces of ``data`` disagree on the schema, or the schema differs from
            the latest version's and ``allow_schema_change`` is False.
        StoreFullError: The store is full and cannot spill.
        InvalidArgumentError: A bad name, option or data type.

    Example:
        >>> publish("features", pa.table({"x": [1, 2]}))   # doctest: +SKIP
    """
    with _tracer.start_as_current_span("datashare.publish", attributes={"datashare.name": str(name)}) as span:
        info_ = _publish(name, data, nodes=nodes, chunk_bytes=chunk_bytes, keep_previous=keep_previous,
                         lifetime=lifetime, timeout=timeout, base=None, allow_schema_change=allow_schema_change,
                         replicas=replicas)
        _published(span, info_, lifetime)
        return info_


def _published(span: Any, info_: DatasetInfo, lifetime: str) -> None:
    report("published", info_.nbytes, {"datashare.name": info_.name, "datashare.zero_copy": lifetime == "job"})
    if span.is_recording():
        span.set_attributes({"datashare.version": info_.version, "datashare.bytes": info_.nbytes,
                             "datashare.rows": info_.num_rows, "datashare.chunks": info_.num_chunks,
                             "datashare.holder_nodes": list(info_.node_ids), "datashare.node_id": current_node_id(),
                             # lifetime="job" keeps the one copy this process put; detached holders copy it.
                             "datashare.zero_copy": lifetime == "job", "datashare.lifetime": lifetime})


def append(name: str, data: Any, *, nodes: Sequence[str] | None = None,
           chunk_bytes: int = DEFAULT_CHUNK_BYTES, keep_previous: int = 1, lifetime: str = "detached",
           timeout: float = CONTROL_TIMEOUT_S) -> DatasetInfo:
    """Publish a new version of ``name`` made of its latest version plus ``data``.

    The existing chunks are reused (no copy); only ``data`` is stored. The new version keeps the
    latest version's ``replicas``: reused chunks keep their copies, new ones get theirs as at
    publish (for pools, in those of its pools that still have a live node). Arguments as for
    :func:`publish`.

    Raises:
        DatasetNotFoundError: ``name`` is not published.
        SchemaMismatchError: ``data`` does not have the dataset's schema.
    """
    name = check_name(name)
    with _tracer.start_as_current_span("datashare.append", attributes={"datashare.name": name}) as span:
        base = _lookup(name, None, timeout, full=True)
        info_ = _publish(name, data, nodes=nodes, chunk_bytes=chunk_bytes, keep_previous=keep_previous,
                         lifetime=lifetime, timeout=timeout, base=base, full=True,
                         replicas=chunk_homes.inherited(base.info.replicas, lifetime))
        _published(span, info_, lifetime)
        return info_


def _publish(name: str, data: Any, *, nodes: Sequence[str] | None, chunk_bytes: int, keep_previous: int,
             lifetime: str, timeout: float, base: Found | None, allow_schema_change: bool = False,
             full: bool = False, replicas: int | str | Sequence[str] = 1) -> DatasetInfo:
    """``full``: ``name`` is already the full name (``check_name``'s), so it is not scoped twice."""
    require_connected()
    if not full:
        name = check_name(name)
    _check_keep(keep_previous)
    check_timeout(timeout)
    _check_flag(allow_schema_change)
    if lifetime not in ("detached", "job"):
        raise InvalidArgumentError("lifetime", lifetime, "use 'detached' (lives until deleted) or 'job' "
                                   "(owned by this process, no extra copy).")
    targets = chunk_homes.target_nodes(nodes)
    if lifetime == "job" and targets != [current_node_id()]:
        raise InvalidArgumentError("nodes", nodes, "lifetime='job' data stays on this process's node; "
                                   "leave nodes unset, or use lifetime='detached' to place it elsewhere.")
    chunk_bytes = chunk_homes.fit_chunk(chunk_bytes, targets)
    spare_nodes = chunk_homes.spare_nodes(targets, replicas, lifetime, strict=base is None)
    version = handles.ask_catalogue("reserve_version", name, timeout=timeout)
    writer = ChunkWriter(dataset_key(name, version), timeout=timeout)
    schema: pa.Schema | None = None
    num_rows = nbytes = 0
    try:
        if base is not None:
            # The holders of the previous version also keep these chunks for the new one.
            writer.reuse(base.refs, base.holders, base.spares)
            schema, num_rows, nbytes = base.info.schema, base.info.num_rows, base.info.nbytes
        for n, chunk in enumerate(as_table_stream(data, chunk_bytes=chunk_bytes)):
            if schema is None:
                schema = chunk.schema
            elif not chunk.schema.equals(schema):
                raise SchemaMismatchError(name, schema, chunk.schema)
            writer.add(chunk, targets[n % len(targets)], lifetime=lifetime, spare_nodes=spare_nodes)
            num_rows += chunk.num_rows
            nbytes += chunk.nbytes
        writer.finish()
        if schema is None:
            raise InvalidArgumentError("data", data, "it holds no table or record batch, so there is no "
                                       "schema to publish; publish an empty table to publish no rows.")
        info_ = DatasetInfo(
            name=name, version=version, schema=schema, num_rows=num_rows, nbytes=nbytes,
            num_chunks=len(writer.refs),
            node_ids=tuple(dict.fromkeys([*(node_of(h) for h in writer.holders), *spare_nodes])),
            created_at=time.time(), replicas=chunk_homes.wanted(replicas, targets, spare_nodes),
        )
        spares = tuple(tuple(copies) for copies in writer.spares) if any(writer.spares) else ()
        handles.ask_catalogue("commit", info_, writer.refs, writer.holders, keep_previous, allow_schema_change,
                              spares, timeout=timeout)
        _read_cache.clear()  # read-your-writes, before the change notification arrives
        return info_
    except BaseException:
        writer.abort()
        raise


def publish_refs(name: str, block_refs: Sequence[Any], *, keep_previous: int = 1,
                 timeout: float = CONTROL_TIMEOUT_S, allow_schema_change: bool = False) -> DatasetInfo:
    """Publish Arrow tables already in the object store (e.g. Ray Data blocks) under ``name``.

    Each block is adopted by the holder of a node that already has it, so nothing crosses the
    network; the holder's copy is the only one made. ``allow_schema_change`` as for :func:`publish`.
    """
    require_connected()
    name = check_name(name)
    _check_keep(keep_previous)
    check_timeout(timeout)
    _check_flag(allow_schema_change)
    block_refs = list(block_refs)
    if not block_refs:
        raise InvalidArgumentError("block_refs", block_refs, "there is nothing to publish; give at least one block.")
    version = handles.ask_catalogue("reserve_version", name, timeout=timeout)
    writer = ChunkWriter(dataset_key(name, version), timeout=timeout)
    try:
        adopted = writer.adopt_in_place(block_refs, name=name, version=version)
        schema = adopted[0].schema
        if schema is None:
            raise InvalidArgumentError("block_refs", block_refs[0], "blocks must be pyarrow Tables "
                                       "(ray.data.Dataset.to_arrow_refs() gives those).")
        for block in adopted[1:]:
            if block.schema is None or not block.schema.equals(schema):
                raise SchemaMismatchError(name, schema, block.schema)
        info_ = DatasetInfo(
            name=name, version=version, schema=schema, num_rows=sum(a.num_rows for a in adopted),
            nbytes=sum(a.nbytes for a in adopted), num_chunks=len(adopted),
            node_ids=tuple(dict.fromkeys(node_of(h) for h in writer.holders)), created_at=time.time(),
        )
        handles.ask_catalogue("commit", info_, writer.refs, writer.holders, keep_previous, allow_schema_change,
                              timeout=timeout)
        _read_cache.clear()
        return info_
    except BaseException:
        writer.abort()
        raise


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _lookup(name: str, version: int | None, timeout: float, *, full: bool = False,
            pool: str | None = None) -> Found:
    """``pool``: the reader's, for a read (its cached copy counts as used; its capacity comes back)."""
    require_connected()
    if not full:
        name = check_name(name)
    check_version(version)
    check_timeout(timeout)
    reply = handles.ask_catalogue("lookup", name, version, pool, timeout=timeout)
    _read_cache.saw_generation(reply.generation)
    if not isinstance(reply, Found):
        # Other tenants' names are not shown.
        known = tuple(n for n in reply.known if tenancy.visible(n))
        raise DatasetNotFoundError(name, version=version, known=known, versions=reply.versions)
    return reply


def info(name: str, *, version: int | None = None, timeout: float = CONTROL_TIMEOUT_S) -> DatasetInfo:
    """Metadata of the latest (or the given) version of ``name``."""
    return _lookup(name, version, timeout).info


def refs(name: str, *, version: int | None = None, timeout: float = CONTROL_TIMEOUT_S) -> tuple[DatasetInfo, list]:
    """Metadata and chunk refs of ``name`` (borrowed; they keep the chunks alive while held)."""
    found = _lookup(name, version, timeout)
    return found.info, list(found.refs)


def open_table(name: str, *, version: int | None = None, timeout: float | None = CONTROL_TIMEOUT_S,
               fresh: bool = False) -> pa.Table:
    """The whole dataset as one table whose buffers live in the object store (no copy on this node).

    Args:
        name: Dataset name.
        version: A retained version; ``None`` for the latest.
        timeout: Seconds to wait for the chunks (pulled from other nodes if needed).
        fresh: Map the chunks again instead of returning the table this process opened before.
            The version is still found in this process's copy of the catalogue entry, which the
            catalogue's change notification keeps current (milliseconds after a publish
            elsewhere); an entry this process has not looked up is asked for.

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
    with _tracer.start_as_current_span("datashare.open", attributes={"datashare.name": str(name)}) as span:
        table, info_, cached = _open_table(name, version, timeout, fresh)
        if not cached:  # a cached open reads nothing
            report("read", info_.nbytes, {"datashare.name": info_.name,
                                          "datashare.zero_copy": set(info_.node_ids) <= {current_node_id()}})
        if span.is_recording():
            here = current_node_id()
            span.set_attributes({"datashare.version": info_.version, "datashare.bytes": info_.nbytes,
                                 "datashare.cached": cached, "datashare.node_id": here,
                                 "datashare.holder_nodes": list(info_.node_ids),
                                 # Chunks held on this node are mapped from shared memory; others are pulled.
                                 "datashare.zero_copy": set(info_.node_ids) <= {here}})
        return table


def _open_table(name: str, version: int | None, timeout: float | None, fresh: bool
                ) -> tuple[pa.Table, DatasetInfo, bool]:
    check_timeout(timeout, allow_none=True)
    require_connected()
    name = check_name(name)
    if not fresh:
        hit = _read_cache.get(name, version)
        if hit is not None:
            return hit[1], hit[0], True
    found = _read_cache.get_entry(name, version)
    if found is None:
        pool = chunk_reads.my_pool()
        found = _lookup(name, version, timeout or CONTROL_TIMEOUT_S, full=True, pool=pool)
        filled = chunk_reads.fill_pool_cache(found, current_node_id(), pool, timeout or CONTROL_TIMEOUT_S)
        if filled is not None:
            _read_cache.saw_generation(filled.generation)
            found = filled
        counted = chunk_reads.counted_as(found, pool)
        _read_cache.put_entry(name, version, found, found.generation, counted, (c.key for c in found.cached))
    else:
        counted = chunk_reads.counted_as(found)
    info_ = found.info
    chunks = chunk_reads.read(found, name, timeout)
    table = chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks)
    _read_cache.put(name, version, info_, table, found.generation, counted, (c.key for c in found.cached))
    return table, info_, False


def stream(name: str, *, version: int | None = None,
           timeout: float | None = CONTROL_TIMEOUT_S) -> Iterator[pa.RecordBatch]:
    """Yield the dataset's record batches chunk by chunk, fetching the next chunk ahead.

    Only one or two chunks need to be local at a time, so this reads datasets larger than the
    reader's store. A chunk whose holder's node is gone is read from a replica, if it has one;
    raises :class:`ObjectLostError` at the first chunk with no readable copy.

    Example:
        >>> rows = sum(b.num_rows for b in stream("big"))   # doctest: +SKIP
    """
    check_timeout(timeout, allow_none=True)
    pool = chunk_reads.my_pool()
    found = _lookup(name, version, timeout or CONTROL_TIMEOUT_S, pool=pool)
    info_, refs_ = found.info, found.refs
    plan = chunk_reads.candidates(found, pool=pool)
    for i, copies in enumerate(plan):
        if i + 1 < len(plan):
            prefetch(plan[i + 1][0].ref)     # pull the next chunk while the caller works on this one
        for n, candidate in enumerate(c.ref for c in copies):   # the next copy when a node is gone
            try:
                (chunk,) = get_chunks([candidate], name=name, version=info_.version,
                                      node_ids=info_.node_ids, timeout=timeout)
                break
            except ObjectLostError as exc:
                if n + 1 == len(copies):
                    raise ObjectLostError(name=name, version=info_.version, lost_chunks=[i],
                                          total_chunks=len(refs_), node_ids=info_.node_ids,
                                          cause="chunk unreadable during streaming") from exc
        yield from chunk.to_batches()


def list_datasets(*, timeout: float = CONTROL_TIMEOUT_S) -> list[DatasetInfo]:
    """Latest version of every dataset of the calling tenant (every tenant's, for an admin), sorted by name.

    Another tenant's datasets appear under their full name ``"<tenant>$<name>"``.
    """
    require_connected()
    check_timeout(timeout)
    return [i for i in handles.ask_catalogue("list", timeout=timeout) if tenancy.visible(i.name)]


def versions(name: str, *, timeout: float = CONTROL_TIMEOUT_S) -> list[int]:
    """Retained versions of ``name`` (empty if unknown)."""
    require_connected()
    name = check_name(name)
    check_timeout(timeout)
    return handles.ask_catalogue("versions", name, timeout=timeout)


def delete(name: str, *, version: int | None = None, timeout: float = CONTROL_TIMEOUT_S) -> bool:
    """Drop ``name`` (or one version); False when there was nothing to drop."""
    require_connected()
    name = check_name(name)
    check_version(version)
    check_timeout(timeout)
    deleted = handles.ask_catalogue("delete", name, version, timeout=timeout)
    _read_cache.clear()
    return deleted


# --------------------------------------------------------------------------------------------
# Locality
# --------------------------------------------------------------------------------------------


def locality(name_or_ref: Any, *, timeout: float = CONTROL_TIMEOUT_S) -> dict[str, int]:
    """Bytes of the data held on each node (copies included), largest first.

    Args:
        name_or_ref: A dataset name (its latest version), a Ray ``ObjectRef``, an object whose
            ``ray_ref`` attribute is one (a yuanrong ``ObjectRef``), or a list of such refs.
        timeout: Seconds to wait for Ray's object directory.
    """
    require_connected()
    check_timeout(timeout)
    ref = as_ray_ref(name_or_ref)
    if ref is not None:
        ref_list = [ref]
    elif isinstance(name_or_ref, (list, tuple)):
        ref_list = [as_ray_ref(r) for r in name_or_ref]
        if any(r is None for r in ref_list):
            bad = next(r for r in name_or_ref if as_ray_ref(r) is None)
            raise InvalidArgumentError("name_or_ref", bad, "a list passed here must hold ObjectRefs only.")
    elif isinstance(name_or_ref, str):
        found = _lookup(name_or_ref, None, timeout)
        ref_list = [*found.refs, *(ref for copies in found.spares for ref, _ in copies),
                    *(ref for copy in found.cached for ref in copy.refs)]
    else:
        raise InvalidArgumentError("name_or_ref", name_or_ref, "pass a dataset name or an ObjectRef.")
    return bytes_by_node(ref_list, timeout=timeout)


def where(name_or_ref: Any, *, timeout: float = CONTROL_TIMEOUT_S) -> tuple[str, ...]:
    """Node ids holding the data, most bytes first (for placing work next to it).

    Args:
        name_or_ref: A dataset name (its latest version), a Ray ``ObjectRef``, or an object whose
            ``ray_ref`` attribute is one (a yuanrong ``ObjectRef``).
        timeout: Seconds to wait for Ray's object directory.

    Example:
        >>> where("features")   # doctest: +SKIP
        ('5f1c...', '9a0e...')
    """
    return tuple(locality(name_or_ref, timeout=timeout))
