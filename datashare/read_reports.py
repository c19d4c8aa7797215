"""Reads a process's own read cache served, counted per pool copy and sent to the catalogue in
batches (no Ray here: sending is injected).

A repeated ``open`` returns the table this process already mapped and never reaches the catalogue,
so the pool cache's LRU order (:mod:`datashare.pool_cache`) would not see it: a dataset read on every
request by one long-lived process would look idle. :class:`ReadReports` counts those reads in memory
(a dict increment on the read path, no lock) and one background thread sends what was counted,
at most every :data:`REPORT_EVERY_S` seconds, as one fire-and-forget call; the thread ends after an
interval with nothing to send and starts again with the next read.

Example:
    >>> sent = []
    >>> reports = ReadReports(sent.append)
    >>> reports.note(("edge-1", "features", 3)); reports.note(("edge-1", "features", 3))
    >>> reports.flush(); sent
    [[(('edge-1', 'features', 3), 2)]]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["REPORT_EVERY_S", "ReadKey", "ReadReports"]

REPORT_EVERY_S = 2.0
"""How often a process sends the reads its read cache served (seconds): the LRU order lags reads by
at most this much, and a busy process makes one catalogue call per interval, not one per read."""

ReadKey = tuple[str, str, int]
"""``(pool, name, version)``: the pool cache copy a read counts toward."""


class ReadReports:
    """Counts reads per :data:`ReadKey` and sends them in batches, least recently read first.

    Args:
        send: Called with ``[(key, count), ...]`` from the background thread (or :meth:`flush`);
            must not block for long and may fail (the batch is then lost: these are hints).
        every_s: Seconds between batches.
    """

    def __init__(self, send: Callable[[list[tuple[ReadKey, int]]], None], *,
                 every_s: float = REPORT_EVERY_S) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s={every_s!r}; it must be > 0 seconds")
        self._send = send
        self._every_s = every_s
        self._lock = threading.Lock()
        self._counts: dict[ReadKey, int] = {}
        self._sender: threading.Thread | None = None

    def note(self, key: ReadKey) -> None:
        """Count one read of ``key``; cheap (called on every cached open, so no lock: two threads
        counting the same key at once, or a count racing :meth:`take`, may lose one read, which
        only makes the LRU order a little older)."""
        counts = self._counts
        # Re-inserting keeps the dict in order of last read, the order the catalogue applies.
        counts[key] = counts.pop(key, 0) + 1
        if self._sender is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._sender is None:
                self._sender = threading.Thread(target=self._run, name="datashare-read-reports", daemon=True)
                self._sender.start()

    def take(self) -> list[tuple[ReadKey, int]]:
        """What was counted since the last take, least recently read first; counting starts again."""
        with self._lock:
            batch, self._counts = list(self._counts.items()), {}
        return batch

    def flush(self) -> None:
        """Send what was counted now (e.g. before the process exits)."""
        batch = self.take()
        if batch:
            self._send_quietly(batch)

    def clear(self) -> None:
        """Forget what was counted (this process reconnected: the counts named the old cluster's copies)."""
        self.take()

    def _run(self) -> None:
        while True:
            time.sleep(self._every_s)
            with self._lock:
                if not self._counts:
                    self._sender = None       # idle: the next read starts a new thread
                    break
            self.flush()
        if self._counts:                      # counted by a read that saw this thread still running
            self._start()

    def _send_quietly(self, batch: list[tuple[ReadKey, int]]) -> None:
        try:
            self._send(batch)
        except Exception:  # noqa: BLE001 - a lost report only makes the LRU order a little older
            pass
