"""Live measurements the engine decides on: round trips from client regions to pools, and node load.

The pools file declares a latency per (client region, pool) once; a network changes under it. A
:class:`Telemetry` keeps what was measured, each figure with the time it was measured. A snapshot
carrying one (``ClusterSnapshot.replace(telemetry=t)``) makes the engine use a figure while it is
fresh (younger than ``max_age_s``) and the pools file's figure otherwise; the first time it has to
fall back it logs one warning on the ``placement.telemetry`` logger (one per client region, and
one for node load), and warns again only after that figure was fresh in between. Measured node
load (busy fraction of the busiest resource, from whatever probe the caller runs) raises the
engine's ``load`` term when it is above what the snapshot's free resources say — reservations are
what Ray books, load is what the node does — and the demand being placed adds to it.

Pure: no I/O, and the clock is injectable (the simulator passes its own time).

Example:
    >>> t = Telemetry(max_age_s=5.0, clock=lambda: 100.0)
    >>> t.record_rtt("site-1", "fog-0", 31.0, at=98.0)
    >>> t.rtt_ms("site-1", "fog-0")
    31.0
    >>> t.rtt_ms("site-1", "cloud") is None      # never measured: the pools file's figure is used
    True
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

log = logging.getLogger("placement.telemetry")


class Telemetry:
    """Timestamped RTT and node-load measurements, read by the engine when fresh.

    Args:
        max_age_s: A measurement older than this is stale and the pools file's figure is used.
        clock: Seconds, the same clock the ``at=`` timestamps use (monotonic by default).
    """

    def __init__(self, *, max_age_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(max_age_s, bool) or not isinstance(max_age_s, (int, float)) or not max_age_s > 0:
            raise ValueError(f"max_age_s={max_age_s!r} is not a positive number of seconds; give e.g. 10.")
        self.max_age_s = float(max_age_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._rtt: dict[tuple[str, str], tuple[float, float]] = {}
        self._load: dict[str, tuple[float, float]] = {}
        # Per node-id tuple (by identity): (ids, values, times), kept in step with record_load.
        self._aligned: dict[int, tuple[tuple[str, ...], dict[str, int], np.ndarray, np.ndarray]] = {}
        self._warned: set[str] = set()  # what was warned about ("rtt <region>", "load") since it was last fresh

    # -- recording ----------------------------------------------------------------------------
    def record_rtt(self, region: str, pool: str, rtt_ms: float, *, at: float | None = None) -> None:
        """Record a round trip from client ``region`` to ``pool`` measured at ``at`` (default now)."""
        _check_number("rtt_ms", rtt_ms)
        with self._lock:
            self._rtt[(region, pool)] = (float(rtt_ms), self._clock() if at is None else float(at))

    def record_load(self, node_id: str, utilisation: float, *, at: float | None = None) -> None:
        """Record a node's measured load (0 idle .. 1 saturated) at ``at`` (default now)."""
        _check_number("utilisation", utilisation)
        when = self._clock() if at is None else float(at)
        with self._lock:
            self._load[node_id] = (float(utilisation), when)
            for ids, pos, values, times in self._aligned.values():
                i = pos.get(node_id)
                if i is not None:
                    values[i], times[i] = utilisation, when

    # -- reading ------------------------------------------------------------------------------
    def rtt_ms(self, region: str, pool: str) -> float | None:
        """The fresh RTT from ``region`` to ``pool``, or ``None`` when stale or never measured."""
        hit = self._rtt.get((region, pool))
        if hit is None or self._clock() - hit[1] > self.max_age_s:
            return None
        return hit[0]

    def region_rtt(self, region: str, pools: Sequence[str], declared: np.ndarray) -> np.ndarray:
        """RTT from ``region`` to each of ``pools``: the fresh measurement, else ``declared``.

        Falling back for a pool the pools file has a figure for logs the one warning.
        """
        now = self._clock()
        out = declared.copy()
        stale: list[str] = []
        for i, pool in enumerate(pools):
            hit = self._rtt.get((region, pool))
            if hit is not None and now - hit[1] <= self.max_age_s:
                out[i] = hit[0]
            elif not math.isnan(declared[i]):
                stale.append(f"{pool} ({'never measured' if hit is None else f'{now - hit[1]:.1f} s old'})")
        self._note(f"rtt {region}", stale, f"RTT from {region}")
        return out

    def node_load(self, node_ids: tuple[str, ...]) -> np.ndarray | None:
        """Fresh measured load per node of ``node_ids`` (NaN where stale or missing), or ``None``
        when no node has a fresh figure."""
        if not self._load:
            return None
        with self._lock:
            hit = self._aligned.get(id(node_ids))
            if hit is None or hit[0] is not node_ids:
                pos = {nid: i for i, nid in enumerate(node_ids)}
                values = np.full(len(node_ids), np.nan)
                times = np.full(len(node_ids), -np.inf)
                for nid, (v, at) in self._load.items():
                    i = pos.get(nid)
                    if i is not None:
                        values[i], times[i] = v, at
                if len(self._aligned) > 8:
                    self._aligned.clear()
                hit = self._aligned[id(node_ids)] = (node_ids, pos, values, times)
            _, _, values, times = hit
            fresh = self._clock() - times <= self.max_age_s
        if not fresh.any():
            self._note("load", ["every node"], "node load")
            return None
        self._note("load", [], "")
        return np.where(fresh, values, np.nan)

    def _note(self, kind: str, stale: list[str], what: str) -> None:
        if not stale:
            self._warned.discard(kind)
            return
        if kind not in self._warned:
            self._warned.add(kind)
            more = f" and {len(stale) - 3} more" if len(stale) > 3 else ""
            log.warning("placement telemetry: %s to %s%s is stale or missing (max age %g s); using the pools "
                        "file's figures until fresh measurements arrive", what, ", ".join(stale[:3]), more,
                        self.max_age_s)


def _check_number(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r} is not a finite non-negative number.")
