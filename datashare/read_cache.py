"""Tables this process opened, and the catalogue entries it looked up, kept until the catalogue's
dataset table changes (no Ray here).

A watch call stays parked in the catalogue; when any dataset is published, appended or deleted
it returns and the cache is emptied. So a repeated ``open`` costs no round trip, an ``open`` that
maps the chunks again (``fresh=True``) finds the version's entry here instead of asking the
catalogue, and this process sees another process's publish as soon as the notification arrives
(milliseconds). Cached tables and entries pin their buffers in the store, exactly as a caller
holding the table would; they are let go on the next change.

A table or entry kept with a ``counted`` key (the pool cache copy it was read from; see
:mod:`datashare.read_reports`) passes that key to ``on_read`` on every hit, so the pool cache's
LRU order sees reads this cache serves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from datashare.dataset_info import DatasetInfo

Watch = Callable[[int, float, Callable[[Any], None]], object]
"""``watch(since, timeout_s, on_done)``: ask the catalogue to answer once its generation differs
from ``since`` (or after ``timeout_s``); ``on_done`` gets a future of the generation then. Returns
a token to keep while waiting."""


class ReadCache:
    """Opened tables by ``(name, version)``, valid for one catalogue generation.

    Args:
        watch: How to watch the catalogue for changes (see :data:`Watch`).
        on_read: Called, outside the cache's lock, with the ``counted`` key of each hit that has one.
    """

    _WATCH_S = 30.0

    def __init__(self, watch: Watch, on_read: Callable[[Any], None] | None = None) -> None:
        self._watch_fn = watch
        self._on_read = on_read
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._watch: Any = None
        self._tables: dict[tuple[str, int | None], tuple[DatasetInfo, pa.Table, int, Any]] = {}
        self._entries: dict[tuple[str, int | None], tuple[Any, int, Any]] = {}

    def get(self, name: str, version: int | None) -> tuple[DatasetInfo, pa.Table] | None:
        with self._lock:
            hit = self._tables.get((name, version))
            if hit is None or self._watch is None or hit[2] != self._generation:
                return None
        if hit[3] is not None and self._on_read is not None:
            self._on_read(hit[3])
        return hit[0], hit[1]

    def put(self, name: str, version: int | None, info: DatasetInfo, table: pa.Table, generation: int,
            counted: Any = None) -> None:
        """Keep ``table`` for this generation; ``counted``: the key a hit on it reports (or ``None``)."""
        with self._lock:
            if generation == self._generation and self._watch is not None:
                self._tables[(name, version)] = (info, table, generation, counted)

    def get_entry(self, name: str, version: int | None) -> Any | None:
        """The catalogue's answer for ``(name, version)`` while it is current, else ``None``."""
        with self._lock:
            hit = self._entries.get((name, version))
            if hit is None or self._watch is None or hit[1] != self._generation:
                return None
        if hit[2] is not None and self._on_read is not None:
            self._on_read(hit[2])
        return hit[0]

    def put_entry(self, name: str, version: int | None, entry: Any, generation: int, counted: Any = None) -> None:
        with self._lock:
            if generation == self._generation and self._watch is not None:
                self._entries[(name, version)] = (entry, generation, counted)

    def saw_generation(self, generation: int) -> None:
        """Called with the generation each catalogue lookup reports."""
        with self._lock:
            if generation == self._generation and self._watch is not None:
                return
            self._tables.clear()
            self._entries.clear()
            self._generation = generation
            self._arm(generation)

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()
            self._entries.clear()
            self._generation = None

    def _arm(self, generation: int) -> None:
        try:
            self._watch = self._watch_fn(generation, self._WATCH_S,
                                         lambda fut, g=generation: self._on_change(g, fut))
        except Exception:  # noqa: BLE001 - no watch just means no caching
            self._watch = None

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
            self._entries.clear()
            self._generation = None
            self._watch = None
