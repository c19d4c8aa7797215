"""Cached copies the catalogue let go of, logged so that only the processes that cached them drop
them (no Ray here).

Evicting a pool cache's copy (or forgetting one found lost) changes no dataset: every version
stays readable, and a reader that holds the copy's refs keeps valid data (Ray frees an object only
once no process holds it). What the reader must not do is keep the evicted copy pinned in its read
cache indefinitely, outside the pool's capacity, and keep counting reads toward a copy the pool no
longer has. So instead of a new generation (which empties every process's read cache), the
catalogue logs the copy's key here; the change watch each reader keeps parked in the catalogue
answers with the keys dropped since its last answer, and the reader drops the tables and entries
that use one of them (:mod:`datashare.read_cache`). Copy keys are unique per fill, so dropping by
key never touches another copy of the same version.

Example:
    >>> drops = DroppedCopies()
    >>> drops.record(generation=4, keys=[("cache", "t", (1, "a"))])
    >>> drops.since(4, None), drops.since(4, drops.clock)
    ((('cache', 't', (1, 'a')),), ())
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

__all__ = ["DROP_LOG_LENGTH", "DroppedCopies"]

DROP_LOG_LENGTH = 10_000
"""Dropped copies remembered; a reader further behind drops everything it cached instead."""


class DroppedCopies:
    """A numbered log of dropped cached copies' keys, each with the generation it happened in.

    Args:
        length: Entries kept (the oldest are forgotten first).
    """

    def __init__(self, length: int = DROP_LOG_LENGTH) -> None:
        self._clock = 0
        self._log: collections.deque[tuple[int, int, Any]] = collections.deque(maxlen=length)
        self._forgotten_generation = -1     # generation of the newest entry pushed out of the log

    @property
    def clock(self) -> int:
        """How many drops were recorded (the number of the last one)."""
        return self._clock

    def record(self, generation: int, keys: Iterable[Any]) -> None:
        """Log ``keys`` as dropped during ``generation``."""
        for key in keys:
            if len(self._log) == self._log.maxlen:
                self._forgotten_generation = self._log[0][1]
            self._clock += 1
            self._log.append((self._clock, generation, key))

    def since(self, generation: int, clock: int | None) -> tuple | None:
        """Keys dropped after ``clock`` or, with ``clock`` ``None`` (a reader's first watch after a
        lookup of ``generation``), during ``generation`` or later, oldest first; ``None`` when the log
        no longer reaches back that far (or ``clock`` is from another incarnation of the log)."""
        if clock is None:
            if self._forgotten_generation >= generation:
                return None
            return tuple(key for _, gen, key in self._log if gen >= generation)
        if clock > self._clock or (self._log and self._log[0][0] > clock + 1) or (not self._log and clock < self._clock):
            return None
        return tuple(key for n, _, key in self._log if n > clock)
