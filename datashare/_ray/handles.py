"""This process's link to datashare's actors: connecting, finding and caching their handles,
control calls with clear timeouts, and shutting everything down."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import ray
import ray.exceptions as rex

from datashare._ray.catalogue_actor import CatalogueActor
from datashare._ray.holder import start_holder
from datashare._ray.naming import CATALOGUE_NAME, HOLDER_PREFIX, NAMESPACE
from datashare._ray.store import STORE_FULL_ERRORS
from datashare.errors import DatashareError, DataTimeoutError, NotConnectedError, StoreFullError

CONTROL_TIMEOUT_S = 60.0
"""Longest wait for a catalogue or holder call before a clear timeout error."""

_handles_lock = threading.Lock()
_holder_handles: dict[str, Any] = {}
_catalogue_handle: list[Any] = []
_on_forget: list[Callable[[], None]] = []
_connection: list[str] = []   # node/job the cached handles were made in (one per Ray connection)


def require_connected() -> None:
    """Raise :class:`NotConnectedError` unless this process is a Ray driver or worker; forget what
    belonged to an earlier connection of this process (before anything is queued on this one)."""
    if not ray.is_initialized():
        raise NotConnectedError()
    _same_connection()


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


_store_bytes: dict[str, int] = {}


def store_capacity(node_id: str) -> int | None:
    """Bytes of ``node_id``'s object store (cached: a node's store does not change size)."""
    if node_id not in _store_bytes:
        for nid, node in alive_nodes().items():
            size = (node.get("Resources") or {}).get("object_store_memory")
            if size:
                _store_bytes[nid] = int(size)
    return _store_bytes.get(node_id)


def catalogue_exists() -> bool:
    """Whether the catalogue actor runs in the cluster, without starting it."""
    try:
        ray.get_actor(CATALOGUE_NAME, namespace=NAMESPACE)
    except ValueError:
        return False
    return True


def _same_connection() -> None:
    """Drop the cached handles when this process reconnected (``finalize`` then ``init``, maybe to
    another cluster): a handle made on the old connection names an actor the new one cannot reach."""
    # A new cluster's first job has the same id as the old one's: the node tells them apart.
    ctx = ray.get_runtime_context()
    job = f"{ctx.get_node_id()}/{ctx.get_job_id()}"
    if _connection and _connection[0] == job:
        return
    if _connection:     # the first connection of this process has nothing to forget
        _forget_handles()
    with _handles_lock:
        _connection[:] = [job]


def connection_id() -> str:
    """This process's connection: its node and job (a new ``init`` makes a new one)."""
    _same_connection()
    return _connection[0]


def catalogue():
    """The catalogue actor's handle, creating the actor on the head node if it does not exist."""
    _same_connection()
    with _handles_lock:
        if _catalogue_handle:
            return _catalogue_handle[0]
        handle = CatalogueActor.options(
            name=CATALOGUE_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            # The head node lives as long as the cluster; edge nodes may come and go.
            resources={"node:__internal_head__": 0.001},
        ).remote()
        _catalogue_handle.append(handle)
        return handle


def holder(node_id: str):
    """The handle of ``node_id``'s holder, creating the holder (pinned to that node) if needed."""
    _same_connection()
    with _handles_lock:
        handle = _holder_handles.get(node_id)
        if handle is None:
            handle = start_holder(node_id)
            _holder_handles[node_id] = handle
        return handle


def start_services(*, wait: bool = False) -> None:
    """Start the catalogue now, so the first publish or KV call does not pay for starting it; with
    ``wait``, return once it answers. (Holders start with the first data put on their node: the
    catalogue, when it starts, waits for the inventory of every holder there is.)"""
    require_connected()
    ready = catalogue().ready.remote()
    if wait:
        call(ready, what="the catalogue")


def holder_by_name(hname: str):
    return holder(hname[len(HOLDER_PREFIX):])


def on_forget(callback: Callable[[], None]) -> None:
    """Run ``callback`` whenever the cached handles are dropped (the actors were killed)."""
    _on_forget.append(callback)


def _forget_handles() -> None:
    for callback in _on_forget:
        callback()
    with _handles_lock:
        _holder_handles.clear()
        _catalogue_handle.clear()


def call(ref, *, what: str, timeout: float = CONTROL_TIMEOUT_S):
    """``ray.get`` for control calls: a clear timeout, and the remote error's own type."""
    try:
        return ray.get(ref, timeout=timeout)
    except rex.GetTimeoutError:
        raise DataTimeoutError(what, timeout) from None
    except rex.RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        if isinstance(cause, STORE_FULL_ERRORS):
            raise StoreFullError(nbytes=None, node_id=None, cause=type(cause).__name__) from exc
        if isinstance(cause, DatashareError):
            # The catalogue refused the call for a reason the caller must see as it is (Ray cannot
            # make its dual error class from an exception whose constructor takes other arguments).
            raise cause from None
        raise


def ask_catalogue(method: str, *args: Any, timeout: float) -> Any:
    """Call the catalogue, riding out a restart (Ray restarts it; calls fail meanwhile).

    Every catalogue method is safe to repeat: lookups read, commits and deletes converge, and a
    repeated ``reserve_version`` only skips a number.
    """
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        remaining = max(0.001, deadline - time.monotonic())
        try:
            return call(getattr(catalogue(), method).remote(*args), what="the catalogue", timeout=remaining)
        except (rex.ActorUnavailableError, rex.ActorDiedError) as exc:
            if isinstance(exc, rex.ActorDiedError):
                _forget_handles()   # killed for good: the next call creates (and rebuilds) a new one
            if time.monotonic() + pause >= deadline:
                raise DataTimeoutError("an answer from the restarting catalogue", timeout) from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def tell_catalogue(method: str, *args: Any) -> None:
    """Call the catalogue without waiting for the answer (best effort: a hint, never a change a
    caller relies on)."""
    try:
        getattr(catalogue(), method).remote(*args)
    except Exception:  # noqa: BLE001 - a hint that does not arrive changes nothing the caller needs
        pass


_node_pools: dict[str, Any] = {"connection": None, "pools": {}, "at": 0.0}


def node_labels(node_id: str, *, max_age_s: float = 5.0) -> dict[str, str] | None:
    """Ray labels of live node ``node_id`` (cached; looked up again, at most every ``max_age_s``,
    for a node not seen yet). ``None`` for a node that is not alive."""
    cache = _node_pools
    if cache["connection"] != connection_id():
        cache.update(connection=connection_id(), pools={}, at=0.0)
    if node_id not in cache["pools"] and time.monotonic() - cache["at"] > max_age_s:
        cache["pools"] = {nid: dict(n.get("Labels") or {}) for nid, n in alive_nodes().items()}
        cache["at"] = time.monotonic()
    return cache["pools"].get(node_id)


def watch_catalogue(since: int, drops_since: int | None, timeout_s: float,
                    on_done: Callable[[Any], None]) -> object:
    """Ask the catalogue to answer once its generation differs from ``since`` or cached copies were
    dropped after ``drops_since`` (see ``CatalogueActor.wait_change``).

    ``on_done`` gets a ``concurrent.futures.Future`` of ``(generation, drop number, dropped keys or
    None)``. Returns a token the caller keeps while it wants the answer (the pending call's ref).
    """
    watch = catalogue().wait_change.remote(since, timeout_s, drops_since)
    watch.future().add_done_callback(on_done)
    return watch


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
