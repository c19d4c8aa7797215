"""Putting into and reading from Ray's object store, and asking where objects are.

Ray's errors become datashare's: a full store :class:`StoreFullError`, a lost object
:class:`ObjectLostError` naming the chunks that are gone, a slow read :class:`DataTimeoutError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray
import ray.exceptions as rex

from datashare.errors import DataTimeoutError, ObjectLostError, StoreFullError

# Ray errors meaning "the object is gone", as opposed to "not there yet".
LOST_ERRORS = (
    rex.ObjectLostError,           # includes OwnerDiedError, ObjectFetchTimedOutError, ...
    rex.ReferenceCountingAssertionError,
)
STORE_FULL_ERRORS = (rex.ObjectStoreFullError, rex.OutOfDiskError)


def as_ray_ref(value: object) -> ray.ObjectRef | None:
    """``value`` as a Ray ``ObjectRef``, or ``None`` when it is not one.

    Besides Ray's own refs this takes any object whose ``ray_ref`` attribute is one, such as
    yuanrong's ``ObjectRef``, without datashare having to import yuanrong.
    """
    if isinstance(value, ray.ObjectRef):
        return value
    inner = getattr(value, "ray_ref", None)
    return inner if isinstance(inner, ray.ObjectRef) else None


def put_value(value: Any, nbytes: int | None) -> ray.ObjectRef:
    """``ray.put``, with a full store reported as :class:`StoreFullError`."""
    try:
        return ray.put(value)
    except STORE_FULL_ERRORS as exc:
        raise StoreFullError(nbytes=nbytes, node_id=ray.get_runtime_context().get_node_id(),
                             cause=type(exc).__name__) from exc


def get_chunks(refs: list, *, name: str | None, version: int | None, node_ids: Sequence[str],
               timeout: float | None) -> list:
    """``ray.get`` of ``refs``; on a loss, finds out which of them are gone."""
    try:
        return ray.get(refs, timeout=timeout)
    except rex.GetTimeoutError:
        what = f"dataset {name!r} version {version}" if name is not None else f"{len(refs)} object(s)"
        raise DataTimeoutError(what, timeout or 0.0) from None
    except LOST_ERRORS as exc:
        lost = []
        for i, ref in enumerate(refs):
            try:
                ray.get(ref, timeout=5)
            except (*LOST_ERRORS, rex.GetTimeoutError):
                lost.append(i)
        raise ObjectLostError(name=name, version=version, lost_chunks=lost or list(range(len(refs))),
                              total_chunks=len(refs), node_ids=node_ids,
                              cause=type(exc).__name__) from None


def prefetch(ref: ray.ObjectRef) -> None:
    """Start pulling ``ref`` to this node without waiting for it."""
    ray.wait([ref], timeout=0, fetch_local=True)


# One request per call: Ray 2.60's lookup counts its outstanding requests while already sending
# them, so a reply that arrives before the next owner's request is counted fulfils the same
# promise twice and aborts the whole process ("Promise already satisfied"). Asking about one owner
# at a time, in batches below Ray's request size, never sends two requests in one call.
_LOOKUP_BATCH = 1000


def object_locations(refs: list, *, what: str, timeout: float) -> dict[Any, dict[str, Any]]:
    """Ray's object directory entries for ``refs`` (node ids and size of each).

    ``timeout`` bounds each owner's answer. Ray 2.60 waits ``timeout_ms`` *microseconds*, so the
    value handed to it is scaled to give the wait asked for.
    """
    by_owner: dict[Any, list] = {}
    for ref in refs:
        by_owner.setdefault(ref.owner_address(), []).append(ref)
    found: dict[Any, dict[str, Any]] = {}
    for owned in by_owner.values():
        for start in range(0, len(owned), _LOOKUP_BATCH):
            batch = owned[start:start + _LOOKUP_BATCH]
            try:
                found.update(ray.experimental.get_object_locations(batch, timeout_ms=int(timeout * 1e6)))
            except rex.GetTimeoutError:
                raise DataTimeoutError(what, timeout) from None
    return found


def bytes_by_node(refs: list, *, timeout: float) -> dict[str, int]:
    """Bytes of ``refs`` held on each node (copies included), largest first."""
    locations = object_locations(refs, what="object locations", timeout=timeout)
    held: dict[str, int] = {}
    for ref in refs:
        loc = locations.get(ref) or {}
        for node in loc.get("node_ids") or ():
            held[node] = held.get(node, 0) + int(loc.get("object_size") or 0)
    return dict(sorted(held.items(), key=lambda kv: (-kv[1], kv[0])))
