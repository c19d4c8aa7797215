"""KV values this process wrote or read, served without a round trip while they are known current
(no Ray here).

The catalogue numbers every KV change (write, delete, expiry) with a clock and keeps a log of
them. A process with a cache keeps one watch call parked in the catalogue, from a thread of its own; it answers as soon as
the clock moves, with the keys other processes changed, and the cache drops those keys. The next
watch call tells the catalogue which clock this process has seen: that is its acknowledgement.

Reads stay current across processes, not just eventually: the catalogue does not confirm a
change to its writer (the writer's ``flush``, or a synchronous write or delete) until every
process with a cache has acknowledged it, or that process's lease ran out. The lease is
:data:`LEASE_S` from the moment this process *sent* its latest watch call, and this process stops
trusting its cache when its own lease runs out, which is never later than the catalogue's view of
it (the catalogue starts counting when the call arrives). So once a writer's ``flush`` returns,
no process serves the old value, and a value read after a call that followed the write (a Ray
call's result, say) is the new one.

A process's own writes go into its cache when it makes them; the catalogue applies them in the
order it made them, after any change it had already seen, so they are current too.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

LEASE_S = 2.0
"""How long an acknowledgement keeps this process's cache trusted (and the catalogue waiting)."""

WATCH_S = 0.5
"""A watch call answers after this long even without a change, which renews the lease."""

MAX_BYTES = 256 * 1024 * 1024
"""Bytes of inline values kept; the oldest entries go first beyond it."""

MAX_ENTRIES = 100_000

MISS = object()
"""What :meth:`KVCache.get` returns for a key it cannot answer for."""

Watch = Callable[[str, "str | None", int, float], tuple]
"""``watch(me, epoch, since, timeout_s)``: a catalogue call that returns ``(epoch, clock, changes)``
once the KV clock differs from ``since`` (or after ``timeout_s``); ``changes`` is a list of
``(writer, key)``, or ``None`` when the catalogue cannot list them. Raises when the catalogue
cannot be reached."""


class KVCache:
    """Values by key, trusted while this process's lease holds.

    Args:
        me: This process's writer id (its own changes in the log are not dropped).
        watch: How to watch the catalogue (see :data:`Watch`).
        clock: Monotonic seconds.
    """

    def __init__(self, me: str, watch: Watch, *, clock: Callable[[], float] = time.monotonic,
                 max_bytes: int = MAX_BYTES) -> None:
        self.me = me
        self._watch_fn = watch
        self._clock = clock
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[str, tuple[Any, int, float | None]] = collections.OrderedDict()
        self._bytes = 0
        self._epoch: str | None = None       # catalogue incarnation the cache belongs to
        self._seen = 0                       # KV clock every change up to which has been applied here
        self._sent = float("-inf")           # when the latest watch call was sent (the lease's start)
        self._thread: threading.Thread | None = None
        self._run = 0                        # bumped to end the watch thread

    # --- reading and filling ------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The cached value of ``key``, or :data:`MISS`."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or not self._trusted():
                return MISS
            value, _, expires = hit
            if expires is not None and self._clock() >= expires:
                self._pop(key)
                return MISS
            return value

    def put_own(self, key: str, value: Any, nbytes: int, ttl_s: float) -> None:
        """This process just wrote ``value`` (``ttl_s`` 0: no expiry).

        Kept even before the first answer of the watch: that answer lists every change since the
        catalogue started (or says it cannot, and the cache is emptied), so an own write that
        another process overwrote meanwhile is dropped before it is ever served.
        """
        with self._lock:
            self._put(key, value, nbytes, ttl_s or None)

    def put_read(self, key: str, value: Any, nbytes: int, epoch: str, clock: int, ttl_left: float | None) -> None:
        """The catalogue answered ``value`` at KV clock ``clock``; cached only if no change after
        that clock has been applied here already (else it may be one this value predates)."""
        with self._lock:
            if self._trusted() and epoch == self._epoch and self._seen <= clock:
                self._put(key, value, nbytes, ttl_left)

    def replace(self, key: str, old: Any, new: Any) -> None:
        """Swap ``key``'s value for an equal one, if it is still ``old``."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] is old:
                self._entries[key] = (new, hit[1], hit[2])

    def drop(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._pop(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    # --- the watch ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching the catalogue in a thread of its own, unless already watching."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, args=(self._run,), daemon=True,
                                            name="datashare-kv-cache")
            self._thread.start()

    def stop(self) -> None:
        """Forget everything and stop trusting the cache (the connection changed)."""
        with self._lock:
            self._stop_locked()

    @property
    def watching(self) -> bool:
        return self._thread is not None

    def step(self) -> bool:
        """One watch call and what follows from its answer; ``False`` once the watch failed.

        The watch thread repeats this; a test can call it directly.
        """
        with self._lock:
            run, epoch, seen = self._run, self._epoch, self._seen
            self._sent = self._clock()
        try:
            new_epoch, clock, changes = self._watch_fn(self.me, epoch, seen, WATCH_S)
        except BaseException:  # noqa: BLE001 - catalogue gone, restarting, or Ray shut down: stop trusting the cache
            with self._lock:
                if run == self._run:
                    self._stop_locked()
            return False
        with self._lock:
            if run != self._run:
                return False                   # stopped meanwhile
            # The first answer (epoch None) lists the changes since the catalogue started.
            if (epoch is not None and new_epoch != epoch) or changes is None:
                self._entries.clear()
                self._bytes = 0
            else:
                for writer, key in changes:
                    if writer != self.me:
                        self._pop(key)
            self._epoch, self._seen = new_epoch, clock
        return True

    def _trusted(self) -> bool:
        return self._epoch is not None and self._clock() - self._sent < LEASE_S

    def _loop(self, run: int) -> None:
        while run == self._run and self.step():
            pass

    def _stop_locked(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self._epoch, self._seen, self._sent = None, 0, float("-inf")
        self._run += 1
        self._thread = None

    # --- bookkeeping --------------------------------------------------------------------------

    def _put(self, key: str, value: Any, nbytes: int, ttl_s: float | None) -> None:
        self._pop(key)
        expires = None if ttl_s is None else self._clock() + ttl_s
        self._entries[key] = (value, nbytes, expires)
        self._bytes += nbytes
        while self._entries and (self._bytes > self._max_bytes or len(self._entries) > MAX_ENTRIES):
            _, (_, size, _) = self._entries.popitem(last=False)
            self._bytes -= size

    def _pop(self, key: str) -> None:
        hit = self._entries.pop(key, None)
        if hit is not None:
            self._bytes -= hit[1]
