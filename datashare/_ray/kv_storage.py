"""Where KV values are kept (semantics in :mod:`datashare.kv`).

Byte values up to :data:`KV_INLINE_LIMIT` live inside the catalogue; larger ones and Arrow/numpy
values are put into the object store and adopted by this node's holder, so they outlive the
writer and survive a catalogue restart.

Writes of small byte values without ``NX`` are pipelined: ``kv_write`` sends the write to the
catalogue and returns without waiting for the answer (an actor round trip, ~1-2 ms, was the whole
cost of a write). The catalogue applies one process's writes in the order they were made; any other
KV call of the same process (a read, a delete, an NX or large write, listing keys) first waits until
its earlier writes are applied, so a process always reads its own writes. Other processes see a
write once it is applied, milliseconds later. A pipelined write that failed (the catalogue could not
be reached) raises on the process's next KV call.
"""

from __future__ import annotations

import atexit
import collections
import threading
import uuid
from typing import Any

import numpy as np
import ray

from datashare._ray import handles
from datashare._ray.naming import holder_name
from datashare._ray.store import get_chunks, put_value
from datashare.catalogue import HolderKey, KVValue, kv_holder_key

KV_INLINE_LIMIT = 64 * 1024
"""KV byte values up to this size live inside the catalogue; larger ones in the object store."""


_WINDOW = 256
"""Most pipelined writes in flight; beyond it a write waits for the oldest half to be applied."""


class _WritePipe:
    """This process's pipelined writes: numbered, sent without waiting, settled on demand."""

    def __init__(self) -> None:
        self._lock = threading.RLock()   # forget() runs inside send() when the connection changed
        self._reset()

    def _reset(self) -> None:
        self.writer = uuid.uuid4().hex
        self._seq = 0
        self._pending: collections.deque[tuple[int, Any]] = collections.deque()

    def send(self, entries: dict[str, KVValue], ttl_s: int, *, timeout: float) -> None:
        with self._lock:
            catalogue = handles.catalogue()     # may forget this pipe's writes after a reconnect
            self._seq += 1
            acked_below = self._pending[0][0] if self._pending else self._seq
            ref = catalogue.kv_write_ordered.remote(self.writer, self._seq, acked_below, entries, ttl_s)
            self._pending.append((self._seq, ref))
            if len(self._pending) > _WINDOW:
                self._settle(len(self._pending) // 2, timeout)

    def drain(self, *, timeout: float) -> None:
        """Wait until every write sent so far is applied; raise the first that failed."""
        if self._pending:
            with self._lock:
                self._settle(len(self._pending), timeout)

    def _settle(self, count: int, timeout: float) -> None:
        batch = [self._pending.popleft() for _ in range(count)]
        # A failure (the catalogue died or restarted: small values kept in its memory are gone with
        # it, as docs/datashare.md says) reaches the caller here, on its next KV call.
        handles.call([ref for _, ref in batch], what="the catalogue (pipelined KV writes)", timeout=timeout)

    def forget(self) -> None:
        """The connection changed: writes in flight belong to the old one."""
        with self._lock:
            self._reset()


_pipe = _WritePipe()
handles.on_forget(_pipe.forget)


def drain(*, timeout: float = handles.CONTROL_TIMEOUT_S) -> None:
    """Wait until this process's pipelined writes are applied (read-your-writes, and at exit)."""
    _pipe.drain(timeout=timeout)


@atexit.register
def _drain_at_exit() -> None:
    # Registered after Ray's own exit hook (Ray is imported first), so it runs while still connected.
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
        _pipe.send({k: KVValue("bytes", bytes(v)) for k, v in entries.items()}, ttl_s, timeout=timeout)
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
