"""A synthetic edge–fog–cloud continuum: pools with realistic attributes and thousands of nodes.

Sizes, prices and latencies are plausible orders of magnitude, not measurements: edge sites are
small, close to their clients and dear per CPU; fog sites are regional; cloud regions are large,
cheap and far. Carbon intensity follows a daily curve that differs per pool (solar dip at noon in
some grids). Everything is drawn from a seeded generator, so a seed gives the same continuum.

Example:
    >>> c = build_continuum(nodes=200, seed=1)
    >>> len(c.snapshot) >= 200
    True
"""

from __future__ import annotations

import dataclasses

import numpy as np

from placement import labels as label_keys
from placement.pools import CarbonIntensity, Pool, PoolSet
from placement.snapshot import ClusterSnapshot, Node


@dataclasses.dataclass(frozen=True)
class Continuum:
    """A synthetic cluster: its pools, a snapshot with every node free, and the client regions."""

    pools: PoolSet
    snapshot: ClusterSnapshot
    regions: tuple[str, ...]


def _daily(rng: np.random.Generator, base: float, solar: bool) -> CarbonIntensity:
    hours = np.arange(0, 24, 3)
    curve = base * (1 + 0.25 * np.cos((hours - 19) / 24 * 2 * np.pi))
    if solar:
        curve = curve * (1 - 0.45 * np.exp(-((hours - 13) ** 2) / 8))
    curve = curve * rng.uniform(0.9, 1.1)
    return CarbonIntensity(tuple((float(h), float(v)) for h, v in zip(hours, curve)), 24.0)


_SHAPES = {"edge": (4, 8), "fog": (16, 64), "cloud": (32, 128)}


def build_continuum(*, nodes: int = 3000, sites: int = 24, fogs: int = 6, clouds: int = 3,
                    seed: int = 0, shapes: dict[str, tuple[int, int]] | None = None) -> Continuum:
    """Build pools and about ``nodes`` nodes: ~60 % edge, ~30 % fog, ~10 % cloud.

    Each edge site is its own pool and client region; each fog pool serves a group of sites; each
    cloud pool is a region reachable from all sites with higher latency.

    Args:
        nodes: Approximate total number of nodes.
        sites: Number of edge pools (one client region each).
        fogs: Number of fog pools.
        clouds: Number of cloud pools.
        seed: Random seed.
        shapes: ``tier -> (CPUs, GiB)`` of one node; default edge 4/8, fog 16/64, cloud 32/128.
    """
    rng = np.random.default_rng(seed)
    regions = tuple(f"site-{i}" for i in range(sites))
    pools: list[Pool] = []
    site_fog = {s: i % fogs for i, s in enumerate(regions)}
    grids = rng.uniform(80, 600, size=sites + fogs + clouds)
    for i, s in enumerate(regions):
        lat = {r: (2.0 + rng.uniform(0, 3) if r == s else
                   (15.0 + rng.uniform(0, 10) if site_fog[r] == site_fog[s] else 40 + rng.uniform(0, 40)))
               for r in regions}
        pools.append(Pool(name=f"edge-{i}", tier="edge", region=s,
                          cost_per_hour={"CPU": 0.09, "memory": 0.012, "GPU": 2.2},
                          carbon=_daily(rng, grids[i], solar=bool(i % 2)), watts_per_cpu=8.0,
                          bandwidth_mbps=200.0, latency_to_regions_ms=lat))
    for f in range(fogs):
        lat = {r: (8.0 + rng.uniform(0, 6) if site_fog[r] == f else 30.0 + rng.uniform(0, 20)) for r in regions}
        pools.append(Pool(name=f"fog-{f}", tier="fog", region=f"metro-{f}",
                          cost_per_hour={"CPU": 0.06, "memory": 0.008, "GPU": 1.8},
                          carbon=_daily(rng, grids[sites + f], solar=bool(f % 2)), watts_per_cpu=10.0,
                          bandwidth_mbps=2000.0, latency_to_regions_ms=lat))
    for c in range(clouds):
        lat = {r: 35.0 + rng.uniform(0, 45) for r in regions}
        pools.append(Pool(name=f"cloud-{c}", tier="cloud", region=f"dc-{c}",
                          cost_per_hour={"CPU": 0.035, "memory": 0.005, "GPU": 1.2},
                          carbon=_daily(rng, grids[sites + fogs + c] * 0.6, solar=c == 0), watts_per_cpu=12.0,
                          bandwidth_mbps=10000.0, latency_to_regions_ms=lat))
    poolset = PoolSet(pools)
    share = {"edge": 0.6 / sites, "fog": 0.3 / fogs, "cloud": 0.1 / clouds}
    shapes = {**_SHAPES, **(shapes or {})}
    out: list[Node] = []
    for p in pools:
        count = max(1, int(round(nodes * share[p.tier])))
        cpus, mem_gb = shapes[p.tier]
        for k in range(count):
            total = {"CPU": float(cpus), "memory": float(mem_gb) * (1 << 30)}
            extra = {}
            if p.tier == "edge" and k % 4 == 0:
                total["camera"] = 1.0
            if p.tier != "edge" and k % 8 == 0:
                total["GPU"] = 1.0 if p.tier == "fog" else 4.0
                extra["yr.io/accelerator"] = "gpu"
            labels = label_keys.pool_labels(p.name, tier=p.tier, region=p.region,
                                            **{"yr.io/arch": "arm64" if p.tier == "edge" and k % 2 else "x86_64"},
                                            **extra)
            out.append(Node(f"{p.name}-n{k:05d}", labels=labels, total=total))
    return Continuum(poolset, ClusterSnapshot(out, pools=poolset), regions)
