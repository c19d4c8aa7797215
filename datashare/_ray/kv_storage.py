"""Where KV values are kept (semantics in :mod:`datashare.kv`).

Byte values up to :data:`KV_INLINE_LIMIT` live inside the catalogue; larger ones and Arrow/numpy
values are put into the object store and adopted by this node's holder, so they outlive the
writer and survive a catalogue restart.

Writes (without ``NX``) and deletes are pipelined: the caller copies the value (into the object
store if it is large), queues the change for a thread that sends queued changes to the catalogue
in batches, and returns without waiting for the answer (an actor round trip, ~1-2 ms, was the
whole cost of a write). The catalogue applies one process's changes in the order they were made.
A process reads its own writes: they go into its read cache (:mod:`datashare.kv_cache`) as they
are made, and a read the cache cannot answer first waits until earlier changes are applied.
Other processes see a change once it is applied, milliseconds later; :func:`drain` (``flush``)
returns once every other process's cache has dropped the old value too. Changes still queued when
the process exits are sent first. A pipelined change that failed (the catalogue could not be
reached) raises on the process's next KV call.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import uuid
from typing import Any

import numpy as np
import ray

from datashare._ray import handles
from datashare._ray.naming import holder_name
from datashare._ray.store import get_chunks, put_value
from datashare.catalogue import HolderKey, KVValue, kv_holder_key
from datashare.errors import DataTimeoutError, NotConnectedError
from datashare.kv_cache import MISS, KVCache

KV_INLINE_LIMIT = 64 * 1024
"""KV byte values up to this size live inside the catalogue; larger ones in the object store."""


CACHE_AFTER_CALLS = 8
"""A process starts its read cache (a watch call parked in the catalogue, renewed twice a second)
at this many KV calls: one that reads a key or two never holds up other processes' writes."""


PENDING_BYTES = 2 * 1024 * 1024 * 1024
"""Large values queued but not yet in the object store; a writer beyond it waits."""


class Big:
    """A large value: held as the caller gave it (immutable ``bytes`` or Arrow data) until the
    write is sent, then as a ref (the writer's copy until the holder adopts it), and, once read
    here, as the value in the store itself (zero-copy)."""

    __slots__ = ("ref", "kind", "nbytes", "value")

    def __init__(self, ref: ray.ObjectRef | None, kind: str, nbytes: int, value: Any = None) -> None:
        self.ref, self.kind, self.nbytes, self.value = ref, kind, nbytes, value

    def read(self) -> Any:
        if self.value is None:
            (stored,) = get_chunks([self.ref], name=None, version=None, node_ids=(),
                                   timeout=handles.CONTROL_TIMEOUT_S)
            self.value = stored
        return memoryview(self.value) if self.kind == "bytes" else self.value

    def stored(self) -> ray.ObjectRef:
        """The value's ref, putting it into the object store first if it is not there yet."""
        if self.ref is None:
            value = np.frombuffer(self.value, dtype=np.uint8) if self.kind == "bytes" else self.value
            self.ref = put_value(value, self.nbytes)
        return self.ref


class _WritePipe:
    """This process's pipelined changes: queued by the caller, sent in batches by one thread.

    One batch is in flight at a time, so the catalogue applies the changes in the order they were
    made; changes made meanwhile join the next batch (the batch grows when the catalogue is busy).
    A queued change is ``("w", {key: bytes | Big}, ttl_s)`` or ``("d", [keys])``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[tuple, int]] = []     # (change, bytes it holds outside the store)
        self._busy = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._pending = 0         # bytes of large values queued and not yet in the object store
        self._keys: collections.Counter[str] = collections.Counter()   # keys with changes not yet applied
        self._waiting: collections.Counter[str] = collections.Counter()  # ... and not yet taken for sending

    def send(self, op: tuple) -> None:
        size = _unstored_bytes(op)
        with self._cond:
            self._raise_error()
            if size and not self._cond.wait_for(lambda: self._pending <= PENDING_BYTES, handles.CONTROL_TIMEOUT_S):
                raise DataTimeoutError("the object store (queued large KV writes)", handles.CONTROL_TIMEOUT_S)
            self._pending += size
            self._keys.update(list(op[1]))
            self._waiting.update(list(op[1]))
            self._queue.append((op, size))
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
        """Wait until every change queued so far is applied; raise the first that failed."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._queue and not self._busy, timeout):
                raise DataTimeoutError("the catalogue (pipelined KV writes)", timeout)
            self._raise_error()

    def queued(self, keys: list[str]) -> bool:
        """Whether some of ``keys`` have changes of this process not applied yet."""
        with self._cond:
            return any(key in self._keys for key in keys)

    def superseded(self, key: str) -> bool:
        """Whether a change queued after the batch being sent overwrites or deletes ``key``."""
        with self._cond:
            return key in self._waiting

    def forget(self) -> None:
        """The connection changed: queued changes belong to the old one."""
        with self._cond:
            self._queue.clear()
            self._error = None
            self._generation += 1
            self._pending = 0
            self._keys.clear()
            self._waiting.clear()
            self._cond.notify_all()

    def check(self) -> None:
        """Raise the first queued change that failed, if any."""
        with self._cond:
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                batch, self._queue = self._queue, []
                self._waiting.clear()
                self._busy, generation = True, self._generation
            try:
                _apply([op for op, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - reported on the writer's next KV call
                _cache.clear()       # it may hold values that were never stored
                with self._cond:
                    if generation == self._generation and self._error is None:
                        self._error = exc
            finally:
                with self._cond:
                    self._busy = False
                    if generation == self._generation:
                        self._pending -= sum(size for _, size in batch)
                        self._keys.subtract(key for op, _ in batch for key in op[1])
                        self._keys = +self._keys
                    self._cond.notify_all()


def _unstored_bytes(op: tuple) -> int:
    if op[0] != "w":
        return 0
    return sum(v.nbytes for v in op[1].values() if isinstance(v, Big) and v.ref is None)


def _apply(batch: list[tuple]) -> None:
    """Send one batch: large values go to the object store and the holder adopts them, then the
    catalogue applies the batch. A value that a later change of the batch overwrites or deletes is
    never stored (the catalogue ends in the same state)."""
    last = {key: i for i, op in enumerate(batch) for key in (op[1] if op[0] == "w" else op[1])}
    batch = [op if op[0] == "d" else ("w", {k: v for k, v in op[1].items() if last[k] == i}, op[2])
             for i, op in enumerate(batch)]
    # Neither is one that a change queued meanwhile overwrites or deletes (checked just before
    # each is put into the store): it would be gone at once.
    gone = set()
    for op in batch:
        for key, value in op[1].items() if op[0] == "w" else ():
            if isinstance(value, Big) and value.ref is None:
                if _pipe.superseded(key):
                    gone.add(id(value))
                else:
                    value.stored()
    batch = [op if op[0] == "d" else ("w", {k: v for k, v in op[1].items() if id(v) not in gone}, op[2])
             for op in batch]
    bigs = [(key, value) for op in batch if op[0] == "w" for key, value in op[1].items() if isinstance(value, Big)]
    node = handles.current_node_id() if bigs else None
    hkeys = [kv_holder_key(key, uuid.uuid4().hex) for key, _ in bigs]
    owned: dict[int, tuple[ray.ObjectRef, HolderKey]] = {}
    if bigs:
        items = [(hkey, big.ref, big.kind) for hkey, (_, big) in zip(hkeys, bigs)]
        refs = handles.call(handles.holder(node).adopt_kv.remote(items), what="the holder")
        owned = {id(big): (ref, hkey) for (_, big), ref, hkey in zip(bigs, refs, hkeys)}
    hname = holder_name(node) if bigs else None

    def stored(value: bytes | Big) -> KVValue:
        if isinstance(value, Big):
            ref, hkey = owned[id(value)]
            return KVValue(value.kind, ref, hname, hkey)
        return KVValue("bytes", value)

    ops = [op if op[0] == "d" else ("w", {key: stored(value) for key, value in op[1].items()}, op[2])
           for op in batch if op[0] == "d" or op[1]]
    try:
        handles.ask_catalogue("kv_apply", _cache.me, ops, timeout=handles.CONTROL_TIMEOUT_S)
    except BaseException:
        _release([(hname, hkey) for hkey in hkeys])
        raise
    for key, big in bigs:
        # Read from the holder's copy from now on, so the writer's copy can be freed.
        _cache.replace(key, big, Big(owned[id(big)][0], big.kind, big.nbytes))


def _watch(me: str, epoch: str | None, since: int, timeout_s: float) -> tuple:
    """One watch call. The answer is awaited on a Python event, not inside Ray: a thread blocked in
    ``ray.get`` while another thread shuts Ray down crashes the process."""
    handles.require_connected()
    answered = threading.Event()
    answer: list = []
    ref = handles.catalogue().kv_wait_changes.remote(me, epoch, since, timeout_s)
    ref.future().add_done_callback(lambda fut: (answer.append(fut), answered.set()))
    deadline = time.monotonic() + timeout_s + handles.CONTROL_TIMEOUT_S
    while not answered.wait(1.0):
        if not ray.is_initialized():
            raise NotConnectedError()
        if time.monotonic() > deadline:
            raise DataTimeoutError("the catalogue (KV changes)", timeout_s + handles.CONTROL_TIMEOUT_S)
    return answer[0].result()


_pipe = _WritePipe()
_cache = KVCache(uuid.uuid4().hex, _watch)
_calls = [0]


def _forget() -> None:
    _pipe.forget()
    _cache.stop()
    _cache.me = uuid.uuid4().hex
    _calls[0] = 0


handles.on_forget(_forget)


def _count_call() -> None:
    _calls[0] += 1
    if _calls[0] >= CACHE_AFTER_CALLS and not _cache.watching:
        _cache.start()


def drain(*, timeout: float = handles.CONTROL_TIMEOUT_S) -> None:
    """Wait until this process's pipelined changes are applied, and every other process's cache
    has let go of the values they replaced (read-your-writes, ``flush``, and at exit)."""
    _pipe.drain(timeout=timeout)


def close() -> None:
    """Before this process disconnects: apply its queued changes, and stop its cache (and the
    catalogue's waiting for it). A change that cannot be applied is logged, not raised."""
    try:
        drain(timeout=30.0)
    except Exception as exc:  # noqa: BLE001 - the connection is going away either way
        logging.getLogger("datashare").warning("KV changes queued by this process were lost: %s", exc)
    if _cache.watching:
        try:
            handles.catalogue().kv_leave.remote(_cache.me)
        except Exception:  # noqa: BLE001 - the catalogue is gone already
            pass
    _cache.stop()


def _drain_at_exit() -> None:
    if ray.is_initialized():
        try:
            drain(timeout=10.0)
            if _cache.watching:
                handles.catalogue().kv_leave.remote(_cache.me)
        except Exception:  # noqa: BLE001 - nothing left to report the failure to
            pass


def store(entries: dict[str, Any], *, nx: bool, ttl_s: int, timeout: float) -> list[str]:
    """Write ``entries`` atomically; returns keys that blocked an NX write (then nothing is written)."""
    handles.require_connected()
    _count_call()
    if not nx:
        prepared = {key: _prepare(value) for key, value in entries.items()}
        # Cached first: a failure of the pipe empties the cache after this, never before it.
        for key, value in prepared.items():
            _cache.put_own(key, value, len(value) if isinstance(value, bytes) else 0, ttl_s)
        try:
            _pipe.send(("w", prepared, ttl_s))
        except BaseException:
            _cache.drop(prepared)
            raise
        return []
    drain(timeout=timeout)
    _cache.drop(entries)
    prepared: dict[str, KVValue] = {}
    adopted: list[tuple[str, HolderKey]] = []
    try:
        for key, value in entries.items():
            big = _prepare(value)
            if isinstance(big, bytes):
                prepared[key] = KVValue("bytes", big)
                continue
            node = handles.current_node_id()
            hkey = kv_holder_key(key, uuid.uuid4().hex)
            (owned,) = handles.call(handles.holder(node).adopt_kv.remote([(hkey, big.stored(), big.kind)]),
                                    what="the holder", timeout=timeout)
            adopted.append((holder_name(node), hkey))
            prepared[key] = KVValue(big.kind, owned, holder_name(node), hkey)
        clash = handles.ask_catalogue("kv_write_many", prepared, nx, ttl_s, _cache.me, timeout=timeout)
    except BaseException:
        _release(adopted)
        raise
    if clash:
        _release(adopted)
    return clash


def _prepare(value: Any) -> bytes | Big:
    """``value`` as the caller can no longer change it: inline bytes, or a :class:`Big` holding an
    immutable value (``bytes``, Arrow data) or a copy in the object store (a numpy array)."""
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) <= KV_INLINE_LIMIT:
        return bytes(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        held = value if isinstance(value, bytes) else bytes(value)
        return Big(None, "bytes", len(held), held)
    if isinstance(value, np.ndarray):
        return Big(put_value(value, int(value.nbytes)), "arrow", int(value.nbytes))
    return Big(None, "arrow", int(value.nbytes), value)


def _release(adopted: list[tuple[str, HolderKey]]) -> None:
    for hname, hkey in adopted:
        try:
            handles.holder_by_name(hname).release.remote([hkey])
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass


def fetch(keys: list[str], *, timeout: float) -> dict[str, Any]:
    """Values of the keys that exist now (bytes, memoryview or Arrow data)."""
    handles.require_connected()
    _count_call()
    _pipe.check()
    out: dict[str, Any] = {}
    for key in keys:
        hit = _cache.get(key)
        if hit is not MISS:
            out[key] = hit.read() if isinstance(hit, Big) else hit
    missing = [k for k in keys if k not in out]
    if not missing:
        return out
    if _pipe.queued(missing):
        drain(timeout=max(timeout, 10.0))     # read-your-writes
    epoch, clock, found = handles.ask_catalogue("kv_read", missing, timeout=max(timeout, 10.0))
    for key, (value, ttl_left) in found.items():
        if value.payload is None or isinstance(value.payload, bytes):
            out[key] = value.payload
            _cache.put_read(key, value.payload, len(value.payload or b""), epoch, clock, ttl_left)
            continue
        big = Big(value.payload, value.kind, 0)
        out[key] = big.read()
        _cache.put_read(key, big, 0, epoch, clock, ttl_left)
    return out


def remove(keys: list[str], *, timeout: float) -> None:
    """Delete keys (pipelined, like writes)."""
    handles.require_connected()
    _count_call()
    _cache.drop(keys)
    _pipe.send(("d", list(keys)))


def keys(*, timeout: float) -> list[str]:
    """Live keys, sorted."""
    handles.require_connected()
    _count_call()
    drain(timeout=timeout)
    return handles.ask_catalogue("kv_keys", timeout=timeout)
