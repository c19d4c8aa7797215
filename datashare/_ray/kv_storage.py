"""Where KV values are kept (semantics in :mod:`datashare.kv`).

Byte values up to :data:`KV_INLINE_LIMIT` live inside the catalogue; larger ones and Arrow/numpy
values are put into the object store and adopted by this node's holder, so they outlive the
writer and survive a catalogue restart.

Writes of small byte values without ``NX`` are pipelined: ``kv_write`` queues the write for a
thread that sends queued writes to the catalogue in batches, and returns without waiting for the
answer (an actor round trip, ~1-2 ms, was the whole cost of a write). The catalogue applies one
process's writes in the order they were made; any other KV call of the same process (a read, a
delete, an NX or large write, listing keys) first waits until its earlier writes are applied, so a
process always reads its own writes. Other processes see a write once it is applied, milliseconds
later; writes still queued when the process exits are sent first. A pipelined write that failed
(the catalogue could not be reached) raises on the process's next KV call.
"""

from __future__ import annotations

import atexit
import threading
import uuid
from typing import Any

import numpy as np
import ray

from datashare._ray import handles
from datashare._ray.naming import holder_name
from datashare._ray.store import get_chunks, put_value
from datashare.catalogue import HolderKey, KVValue, kv_holder_key
from datashare.errors import DataTimeoutError

KV_INLINE_LIMIT = 64 * 1024
"""KV byte values up to this size live inside the catalogue; larger ones in the object store."""


class _WritePipe:
    """This process's pipelined writes: queued by the caller, sent in batches by one thread.

    One batch is in flight at a time, so the catalogue applies the writes in the order they were
    made; writes made meanwhile join the next batch (the batch grows when the catalogue is busy).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[dict[str, bytes], int]] = []
        self._busy = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._generation = 0

    def send(self, entries: dict[str, bytes], ttl_s: int) -> None:
        with self._cond:
            self._raise_error()
            self._queue.append((entries, ttl_s))
            if self._thread is None or not self._thread.is_alive():
                if self._thread is None:
                    # Registered at the first write, so after ray.init's own exit hook, whenever this
                    # module was imported: exit hooks run last-registered first, so the queued writes
                    # are applied while still connected.
                    atexit.register(_drain_at_exit)
                self._thread = threading.Thread(target=self._run, name="datashare-kv-writes", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def drain(self, *, timeout: float) -> None:
        """Wait until every write queued so far is applied; raise the first that failed."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._queue and not self._busy, timeout):
                raise DataTimeoutError("the catalogue (pipelined KV writes)", timeout)
            self._raise_error()

    def forget(self) -> None:
        """The connection changed: queued writes belong to the old one."""
        with self._cond:
            self._queue.clear()
            self._error = None
            self._generation += 1

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                batch, self._queue = self._queue, []
                self._busy, generation = True, self._generation
            try:
                handles.ask_catalogue("kv_write_batch", batch, timeout=handles.CONTROL_TIMEOUT_S)
            except BaseException as exc:  # noqa: BLE001 - reported on the writer's next KV call
                with self._cond:
                    if generation == self._generation and self._error is None:
                        self._error = exc
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


_pipe = _WritePipe()
handles.on_forget(_pipe.forget)


def drain(*, timeout: float = handles.CONTROL_TIMEOUT_S) -> None:
    """Wait until this process's pipelined writes are applied (read-your-writes, and at exit)."""
    _pipe.drain(timeout=timeout)


def _drain_at_exit() -> None:
    if ray.is_initialized():
        try:
            drain(timeout=10.0)
        except Exception:  # noqa: BLE001 - nothing left to report the failure to
            pass


def store(entries: dict[str, Any], *, nx: bool, ttl_s: int, timeout: float) -> list[str]:
    """Write ``entries`` atomically; returns keys that blocked an NX write (then nothing is written)."""
    handles.require_connected()
    if not nx and all(isinstance(v, (bytes, bytearray, memoryview)) and len(v) <= KV_INLINE_LIMIT
                      for v in entries.values()):
        _pipe.send({k: bytes(v) for k, v in entries.items()}, ttl_s)
        return []
    drain(timeout=timeout)
    prepared: dict[str, KVValue] = {}
    adopted: list[tuple[str, HolderKey]] = []
    try:
        for key, value in entries.items():
            if isinstance(value, (bytes, bytearray, memoryview)) and len(value) <= KV_INLINE_LIMIT:
                prepared[key] = KVValue("bytes", bytes(value))
                continue
            if isinstance(value, (bytes, bytearray, memoryview)):
                kind, stored = "bytes", np.frombuffer(bytes(value) if isinstance(value, memoryview)
                                                      else value, dtype=np.uint8)
            else:
                kind, stored = "arrow", value
            node = handles.current_node_id()
            hkey = kv_holder_key(key, uuid.uuid4().hex)
            temp = put_value(stored, int(stored.nbytes))
            owned = handles.call(handles.holder(node).adopt.remote(hkey, [0], [temp]), what="the holder",
                                 timeout=timeout)
            hname = holder_name(node)
            adopted.append((hname, hkey))
            handles.holder(node).describe.remote(hkey, kind)
            prepared[key] = KVValue(kind, owned[0].ref, hname, hkey)
        clash = handles.ask_catalogue("kv_write_many", prepared, nx, ttl_s, timeout=timeout)
    except BaseException:
        _release(adopted)
        raise
    if clash:
        _release(adopted)
    return clash


def _release(adopted: list[tuple[str, HolderKey]]) -> None:
    for hname, hkey in adopted:
        try:
            handles.holder_by_name(hname).release.remote([hkey])
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass


def fetch(keys: list[str], *, timeout: float) -> dict[str, Any]:
    """Values of the keys that exist now (bytes, memoryview or Arrow data)."""
    handles.require_connected()
    drain(timeout=max(timeout, 10.0))
    found: dict[str, KVValue] = handles.ask_catalogue("kv_read", keys, timeout=max(timeout, 10.0))
    out: dict[str, Any] = {}
    for key, value in found.items():
        if value.payload is None or isinstance(value.payload, bytes):
            out[key] = value.payload
            continue
        (stored,) = get_chunks([value.payload], name=None, version=None, node_ids=(),
                               timeout=handles.CONTROL_TIMEOUT_S)
        out[key] = memoryview(stored) if value.kind == "bytes" else stored
    return out


def remove(keys: list[str], *, timeout: float) -> int:
    """Delete keys; returns how many existed."""
    handles.require_connected()
    drain(timeout=timeout)
    return handles.ask_catalogue("kv_delete", keys, timeout=timeout)


def keys(*, timeout: float) -> list[str]:
    """Live keys, sorted."""
    handles.require_connected()
    drain(timeout=timeout)
    return handles.ask_catalogue("kv_keys", timeout=timeout)
