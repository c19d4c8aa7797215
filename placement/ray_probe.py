"""Live telemetry on a Ray cluster: round trips from client regions to pools, and node load.

The engine reads :class:`~placement.telemetry.Telemetry`; this module fills it on a running cluster.

* **RTT.** One echo actor (0 CPUs) per pool, on a node carrying that pool's ``yr.io/pool`` label,
  and one prober actor per client region, on a node carrying that ``yr.io/region`` label. A probe
  round asks every prober to time ``pings`` sequential calls to every echo actor and records the
  median as ``record_rtt(region, pool, ms)``. What is measured is what a Ray call from that region
  sees: the actor-call round trip, RPC delays and all, not an ICMP ping.
* **Load.** Two figures per node, the larger recorded as ``record_load(node_id, utilisation)``:
  what Ray has *booked* (its resource reports: the busy fraction of the node's busiest resource, one
  GCS read — the same figure the snapshot's free resources give), and what the node's Ray processes
  *burn*: one meter actor (0 CPUs) per node adds up the CPU time of every process under the node's
  raylet (its workers, their children, its agents) between two rounds, over the node's CPU count.
  Work that reserved fewer CPUs than it uses (``num_cpus=0`` tasks, threads, subprocesses) shows in
  the second figure only, and that is the figure that changes decisions: the engine lets measured
  load raise the load term, never lower it. Processes outside Ray are not counted. A probe of other
  utilisation plugs in through :meth:`TelemetryProbe.record_load`.

Run :meth:`TelemetryProbe.probe` when a fresh figure is wanted, or :meth:`TelemetryProbe.start` for a
background thread probing every ``period_s``; figures older than the telemetry's ``max_age_s`` are
stale and the engine falls back to the pools file, with a warning.

Example:
    >>> t = Telemetry(max_age_s=10)                                        # doctest: +SKIP
    >>> probe = TelemetryProbe(t, regions=["site-1"]).probe()              # doctest: +SKIP
    >>> placer = RayPlacer(pools="cluster_configs/pools.yaml", telemetry=t)  # doctest: +SKIP
    >>> probe.close()                                                      # doctest: +SKIP
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ray

from placement import labels as label_keys
from placement.errors import PlacementError
from placement.telemetry import Telemetry


CALL_TIMEOUT_S = 60.0
"""Longest wait for one probe call (an actor whose node left may never answer): the round fails, its
figures age out, and the engine falls back to the pools file."""


@ray.remote(num_cpus=0)
class _Echo:
    """Answers at once: the far end of a probe."""

    def ping(self) -> None:
        return None


@ray.remote(num_cpus=0)
class _Prober:
    """Times calls from its own node (a client region) to echo actors."""

    def rtts(self, targets: Mapping[str, Any], pings: int, warmup: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for pool, echo in targets.items():
            for _ in range(warmup):
                ray.get(echo.ping.remote())
            samples = []
            for _ in range(pings):
                t0 = time.perf_counter()
                ray.get(echo.ping.remote())
                samples.append((time.perf_counter() - t0) * 1e3)
            out[pool] = samples
        return out


@ray.remote(num_cpus=0)
class _CpuMeter:
    """CPU seconds burnt under its node's raylet (the meter's parent) since the last reading."""

    def __init__(self) -> None:
        self._last: tuple[float, dict[int, float]] | None = None

    def burnt(self) -> tuple[float, float] | None:
        """``(CPU seconds, wall seconds)`` since the previous call; ``None`` the first time."""
        import psutil  # Ray ships it (ray/thirdparty_files) and puts it on the path when imported

        now, cpu = time.monotonic(), {}
        raylet = psutil.Process(os.getppid())
        for proc in (raylet, *raylet.children(recursive=True)):
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue  # ended meanwhile
            cpu[proc.pid] = t.user + t.system
        last, self._last = self._last, (now, cpu)
        if last is None:
            return None
        # A process that started since the last reading counts in full; one that ended is lost.
        return sum(v - last[1].get(pid, 0.0) for pid, v in cpu.items()), now - last[0]


class TelemetryProbe:
    """Measures region → pool RTT and node load on the connected cluster into ``telemetry``.

    Args:
        telemetry: Where measurements are recorded (the one a :class:`~placement.ray_adapter.RayPlacer`
            attaches to its snapshots).
        regions: Client regions to probe from (each needs a live node labelled ``yr.io/region``);
            defaults to every region some live node carries.
        pools: Pools to probe (each needs a live node labelled ``yr.io/pool``); defaults to all.
        pings: Timed calls per (region, pool) per round; the median is recorded.
        warmup: Untimed calls before them (the first call to a new actor pays for connecting).
    """

    def __init__(self, telemetry: Telemetry, *, regions: Sequence[str] | None = None,
                 pools: Sequence[str] | None = None, pings: int = 5, warmup: int = 2) -> None:
        if not ray.is_initialized():
            raise PlacementError("Ray is not initialised in this process; call ray.init(address=...) before "
                                 "starting a TelemetryProbe.")
        if pings < 1:
            raise ValueError(f"pings={pings!r} is not a positive count of calls; give e.g. 5.")
        self.telemetry = telemetry
        self.pings, self.warmup = int(pings), int(warmup)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        by_pool = {(n.get("Labels") or {}).get(label_keys.POOL) for n in nodes} - {None}
        by_region = {(n.get("Labels") or {}).get(label_keys.REGION) for n in nodes} - {None}
        self.pools = tuple(sorted(by_pool)) if pools is None else tuple(pools)
        self.regions = tuple(sorted(by_region)) if regions is None else tuple(regions)
        for what, names, known in (("pool", self.pools, by_pool), ("region", self.regions, by_region)):
            missing = [x for x in names if x not in known]
            if missing:
                raise PlacementError(f"{what}={missing[0]!r} has no live node to probe; live {what}s: "
                                     f"{', '.join(sorted(known)) or 'none'}. Start a node labelled with it or "
                                     f"leave it out.")
        self.last: dict[tuple[str, str], list[float]] = {}
        self.burnt: dict[str, float] = {}  # node id → CPU its Ray processes burnt per CPU, last round
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._echo = {p: _Echo.options(label_selector={label_keys.POOL: p}).remote() for p in self.pools}
        self._probers = {r: _Prober.options(label_selector={label_keys.REGION: r}).remote() for r in self.regions}
        self._cpus = {n["NodeID"]: float((n.get("Resources") or {}).get("CPU", 0.0)) for n in nodes}
        self._meters = {nid: _CpuMeter.options(label_selector={label_keys.NODE_ID: nid}).remote()
                        for nid, cpus in self._cpus.items() if cpus > 0}
        try:
            ray.get([m.burnt.remote() for m in self._meters.values()], timeout=CALL_TIMEOUT_S)  # first baseline
        except ray.exceptions.RayError:
            self.close()
            raise

    def probe(self) -> TelemetryProbe:
        """One round: every region's RTT to every pool, and every node's load; returns ``self``."""
        rounds = {r: p.rtts.remote(self._echo, self.pings, self.warmup) for r, p in self._probers.items()}
        meters = {nid: m.burnt.remote() for nid, m in self._meters.items()}
        for region, ref in rounds.items():
            for pool, samples in ray.get(ref, timeout=CALL_TIMEOUT_S).items():
                self.last[(region, pool)] = samples
                self.telemetry.record_rtt(region, pool, statistics.median(samples))
        load = ray_reported_load()
        for nid, ref in meters.items():
            got = ray.get(ref, timeout=CALL_TIMEOUT_S)
            if got is not None and got[1] > 0 and nid in load:
                self.burnt[nid] = got[0] / got[1] / self._cpus[nid]
                load[nid] = max(load[nid], self.burnt[nid])
        self.record_load(load)
        return self

    def record_load(self, load: Mapping[str, float]) -> None:
        """Record node id → utilisation (0..1) measured now."""
        for node_id, value in load.items():
            self.telemetry.record_load(node_id, min(1.0, max(0.0, value)))

    def start(self, period_s: float = 2.0) -> TelemetryProbe:
        """Probe in a background thread every ``period_s`` until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, args=(period_s,), daemon=True,
                                            name="yr-telemetry-probe")
            self._thread.start()
        return self

    def _loop(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            try:
                self.probe()
            except ray.exceptions.RayError:
                # A pool's node left: its figures age out and the engine falls back (and warns).
                continue

    def close(self) -> None:
        """Stop the background thread and the probe's actors."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for actor in (*self._echo.values(), *self._probers.values(), *self._meters.values()):
            ray.kill(actor)
        self._echo, self._probers, self._meters = {}, {}, {}

    def __enter__(self) -> TelemetryProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ray_reported_load() -> dict[str, float]:
    """Node id → busy fraction of its busiest resource, from Ray's resource reports (one GCS read)."""
    from ray._private import state

    free = state.available_resources_per_node()
    out = {}
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        total = {r: float(v) for r, v in (n.get("Resources") or {}).items()
                 if r in ("CPU", "GPU", "memory") and v > 0}
        avail = free.get(n["NodeID"], {})
        out[n["NodeID"]] = max((1 - float(avail.get(r, 0.0)) / v for r, v in total.items()), default=0.0)
    return out
