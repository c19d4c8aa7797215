"""Tables this process opened, and the catalogue entries it looked up, kept until the catalogue's
dataset table changes or the cached copies they use are dropped (no Ray here).

A watch call stays parked in the catalogue; when any dataset is published, appended or deleted
(a new generation) it returns and the cache is emptied. So a repeated ``open`` costs no round trip,
an ``open`` that maps the chunks again (``fresh=True``) finds the version's entry here instead of
asking the catalogue, and this process sees another process's publish as soon as the notification
arrives (milliseconds). Cached tables and entries pin their buffers in the store, exactly as a
caller holding the table would; they are let go on the next change.

When a pool cache's copy is evicted or found lost, the watch answers with the copy's key instead
(:mod:`datashare.copy_drops`): only the tables and entries kept with that key among their
``copies`` are dropped (their buffers would otherwise stay pinned outside the pool's capacity);
the rest stay. A put of a table or entry that uses a copy dropped meanwhile is not kept.

A table or entry kept with a ``counted`` key (the pool cache copy it was read from; see
:mod:`datashare.read_reports`) passes that key to ``on_read`` on every hit, so the pool cache's
LRU order sees reads this cache serves.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from datashare.dataset_info import DatasetInfo

Watch = Callable[[int, "int | None", float, Callable[[Any], None]], object]
"""``watch(since, drops_since, timeout_s, on_done)``: ask the catalogue to answer once its generation
differs from ``since`` or cached copies were dropped after drop number ``drops_since`` (``None``:
during generation ``since``), or after ``timeout_s``; ``on_done`` gets a future of ``(generation,
drop number, dropped copy keys or None)``. Returns a token to keep while waiting."""

_RECENT_DROPS = 1024
"""Dropped copy keys remembered to refuse puts that raced with the drop (a lookup answered just before)."""


class _WatchThread:
    """The one daemon thread of this process that makes the read caches' watch calls again after
    an answer, in the order the answers came.

    Started at the first call, and again if it is gone (a job raised ``SystemExit``, or this is a
    forked child, where the parent's threads do not run).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def submit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the thread soon; never waits for it."""
        if self._pid != os.getpid():
            self._forked()
        self._jobs.put(fn)
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, args=(self._jobs,),
                                                name="datashare-read-cache-watch", daemon=True)
                self._thread.start()

    def _forked(self) -> None:
        # The parent's queued jobs watch for the parent; its lock may have been held at the fork.
        self._lock = threading.Lock()
        self._jobs = queue.SimpleQueue()
        self._thread, self._pid = None, os.getpid()

    @staticmethod
    def _run(jobs: queue.SimpleQueue) -> None:
        while True:
            fn = jobs.get()
            try:
                fn()
            except Exception:  # noqa: BLE001 - one failed job must not stop the watches of the rest
                logging.getLogger("datashare").exception("watching the catalogue again failed")


_WATCH_THREAD = _WatchThread()


class _Kept:
    __slots__ = ("value", "generation", "counted", "copies")

    def __init__(self, value: Any, generation: int, counted: Any, copies: frozenset) -> None:
        self.value, self.generation, self.counted, self.copies = value, generation, counted, copies


class ReadCache:
    """Opened tables by ``(name, version)``, valid for one catalogue generation.

    Args:
        watch: How to watch the catalogue for changes (see :data:`Watch`).
        on_read: Called, outside the cache's lock, with the ``counted`` key of each hit that has one.
        rearm: Runs the call that watches again after an answer; by default on this process's one
            watch thread (:class:`_WatchThread`), because the answer's callback runs on Ray's
            callback thread, which must not wait for locks a blocking Ray call in another thread of
            this process may hold (e.g. starting a holder).
    """

    _WATCH_S = 30.0

    def __init__(self, watch: Watch, on_read: Callable[[Any], None] | None = None,
                 rearm: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._watch_fn = watch
        self._on_read = on_read
        self._rearm = rearm or _WATCH_THREAD.submit
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._drops: int | None = None          # the catalogue's drop number this cache has seen
        self._dropped: collections.OrderedDict[Any, None] = collections.OrderedDict()
        self._armed = False                     # a watch call is out: the cache may be trusted
        self._arm_id = 0                        # the watch call whose answer counts
        self._token: Any = None
        self._tables: dict[tuple[str, int | None], _Kept] = {}      # value: (info, table)
        self._entries: dict[tuple[str, int | None], _Kept] = {}

    def get(self, name: str, version: int | None) -> tuple[DatasetInfo, pa.Table] | None:
        # Every repeated open runs this: no helper call (see _hit, which get_entry uses).
        with self._lock:
            hit = self._tables.get((name, version))
            if hit is None or not self._armed or hit.generation != self._generation:
                return None
        if hit.counted is not None and self._on_read is not None:
            self._on_read(hit.counted)
        return hit.value

    def put(self, name: str, version: int | None, info: DatasetInfo, table: pa.Table, generation: int,
            counted: Any = None, copies: Iterable = ()) -> None:
        """Keep ``table`` for this generation. ``counted``: the key a hit on it reports (or ``None``);
        ``copies``: keys of the cached copies it was read from (it is dropped with any of them)."""
        self._keep(self._tables, name, version, (info, table), generation, counted, copies)

    def get_entry(self, name: str, version: int | None) -> Any | None:
        """The catalogue's answer for ``(name, version)`` while it is current, else ``None``."""
        hit = self._hit(self._entries, name, version)
        return None if hit is None else hit.value

    def put_entry(self, name: str, version: int | None, entry: Any, generation: int, counted: Any = None,
                  copies: Iterable = ()) -> None:
        self._keep(self._entries, name, version, entry, generation, counted, copies)

    def saw_generation(self, generation: int) -> None:
        """Called with the generation each catalogue lookup reports."""
        with self._lock:
            if generation == self._generation and self._armed:
                return
            self._tables.clear()
            self._entries.clear()
            self._generation, self._drops = generation, None
            arm = self._next_arm()
        self._arm(generation, None, arm)

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()
            self._entries.clear()
            self._generation = None

    def _hit(self, kept: dict, name: str, version: int | None) -> _Kept | None:
        with self._lock:
            hit = kept.get((name, version))
            if hit is None or not self._armed or hit.generation != self._generation:
                return None
        if hit.counted is not None and self._on_read is not None:
            self._on_read(hit.counted)
        return hit

    def _keep(self, kept: dict, name: str, version: int | None, value: Any, generation: int, counted: Any,
              copies: Iterable) -> None:
        copies = frozenset(copies)
        with self._lock:
            if generation == self._generation and self._armed and not any(c in self._dropped for c in copies):
                kept[(name, version)] = _Kept(value, generation, counted, copies)

    def _next_arm(self) -> int:
        """Under the lock: the next watch call is the one whose answer counts."""
        self._arm_id += 1
        self._armed = True
        return self._arm_id

    def _stop(self) -> None:
        """Under the lock: forget everything and stop trusting the cache until the next lookup."""
        self._tables.clear()
        self._entries.clear()
        self._generation, self._armed, self._token = None, False, None
        self._arm_id += 1

    def _arm(self, generation: int, drops: int | None, arm: int) -> None:
        # Outside the lock: an answer that is already there runs its callback in this thread.
        try:
            token = self._watch_fn(generation, drops, self._WATCH_S,
                                   lambda fut: self._on_change(generation, arm, fut))
        except Exception:  # noqa: BLE001 - no watch just means no caching
            token = None
        with self._lock:
            if arm != self._arm_id:
                return                          # answered already, and watching again (or stopped)
            if token is None:
                self._stop()
            else:
                self._token = token

    def _on_change(self, generation: int, arm: int, fut: Any) -> None:
        try:
            new, drops, dropped = fut.result()
        except Exception:  # noqa: BLE001 - catalogue restarted or died: stop trusting the cache
            new = drops = dropped = None
        with self._lock:
            if arm != self._arm_id or self._generation != generation:
                return
            if new != generation:               # a dataset changed (or no answer): empty the cache
                self._stop()
                return
            if dropped is None:                 # the catalogue's log does not reach back: drop all
                self._tables.clear()
                self._entries.clear()
            elif dropped:
                for key in dropped:
                    self._dropped[key] = None
                while len(self._dropped) > _RECENT_DROPS:
                    self._dropped.popitem(last=False)
                gone = set(dropped)
                for kept in (self._tables, self._entries):
                    for k in [k for k, v in kept.items() if v.copies & gone]:
                        del kept[k]
            self._drops = drops
            arm = self._next_arm()              # same generation: keep the rest, watch again
        self._rearm(lambda: self._arm(generation, drops, arm))
