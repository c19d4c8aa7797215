"""A synthetic workload trace: bursty arrivals, heavy-tailed sizes and durations, client regions.

Four request kinds, mixed by weight:

* ``interactive`` (40 %): 1–2 small bundles near the client — preferred pool = the client's edge
  site, 20 ms budget.
* ``pipeline`` (25 %): a camera pre-processing bundle that must run on an edge node with a camera
  (preferring the client's site), plus 1–2 heavy model bundles anywhere; 60 ms budget, SPREAD.
* ``batch`` (25 %): 1–4 bundles, PACK, no latency budget.
* ``replicated`` (10 %): 2–4 replicas, STRICT_SPREAD, 40 ms budget.

Arrivals are Poisson with burst windows (rate × ``burst_factor``); CPU per bundle is Pareto-tailed;
durations are log-normal with a long tail; client regions are Zipf-distributed so a few sites are
hot. Every request names its client's edge site as preferred, the same hint a Ray user would give a
label selector, so the Ray baselines get the same information.

Example:
    >>> trace = build_trace(regions=("site-0", "site-1"), requests=50, seed=3)
    >>> len(trace) == 50 and all(a.arrival_h <= b.arrival_h for a, b in zip(trace, trace[1:]))
    True
"""

from __future__ import annotations

import dataclasses

import numpy as np

from placement.requests import Bundle, PlacementRequest


@dataclasses.dataclass(frozen=True)
class TraceItem:
    """One request of the trace.

    Attributes:
        arrival_h: Arrival time in hours from the start of the trace.
        duration_h: How long the placement holds its resources.
        kind: Request kind (``interactive``, ``pipeline``, ``batch``, ``replicated``).
        request: The placement request.
    """

    arrival_h: float
    duration_h: float
    kind: str
    request: PlacementRequest


def _cpu(rng: np.random.Generator, scale: float, cap: float) -> float:
    # Pareto tail (alpha 1.8) rounded to half CPUs.
    return float(min(cap, max(0.5, round(scale * (1 + rng.pareto(1.8)) * 2) / 2)))


def build_trace(*, regions: tuple[str, ...], requests: int = 2000, horizon_h: float = 24.0,
                bursts: int = 6, burst_factor: float = 4.0, mean_duration_h: float = 6.0,
                seed: int = 0) -> list[TraceItem]:
    """Generate ``requests`` requests over ``horizon_h`` hours.

    Args:
        regions: Client regions (the continuum's edge sites, ``site-<i>`` served by ``edge-<i>``).
        requests: Number of requests.
        horizon_h: Length of the trace in hours.
        bursts: Number of burst windows (each 1 hour long).
        burst_factor: Arrival-rate multiplier inside a burst.
        mean_duration_h: Mean holding time.
        seed: Random seed.
    """
    rng = np.random.default_rng(seed)
    # Arrival times: inverse-CDF sampling of a piecewise-constant rate with burst windows.
    grid = np.linspace(0, horizon_h, int(horizon_h * 12) + 1)
    rate = np.ones(len(grid) - 1)
    for start in rng.uniform(0, horizon_h - 1, size=bursts):
        rate[(grid[:-1] >= start) & (grid[:-1] < start + 1)] *= burst_factor
    cdf = np.concatenate([[0], np.cumsum(rate)])
    cdf /= cdf[-1]
    arrivals = np.sort(np.interp(rng.uniform(size=requests), cdf, grid))
    zipf = 1.0 / np.arange(1, len(regions) + 1) ** 1.1
    zipf /= zipf.sum()
    sigma = 1.0
    mu = np.log(mean_duration_h) - sigma**2 / 2
    kinds = rng.choice(["interactive", "pipeline", "batch", "replicated"], p=[0.4, 0.25, 0.25, 0.1], size=requests)
    out = []
    for t, kind in zip(arrivals, kinds):
        region = str(rng.choice(regions, p=zipf))
        site_pool = "edge-" + region.split("-", 1)[1]
        duration = float(min(4 * 24.0, rng.lognormal(mu, sigma)))
        if kind == "interactive":
            bundles = tuple(Bundle({"CPU": _cpu(rng, 0.5, 4)}, preferred_pools=(site_pool,))
                            for _ in range(rng.integers(1, 3)))
            req = PlacementRequest(bundles, strategy="PACK", client_region=region, latency_budget_ms=20)
        elif kind == "pipeline":
            first = Bundle({"CPU": 1, "camera": 1}, tiers=("edge",), preferred_pools=(site_pool,))
            rest = tuple(Bundle({"CPU": _cpu(rng, 3, 16), "memory": float(4 << 30)}, preferred_pools=(site_pool,))
                         for _ in range(rng.integers(1, 3)))
            req = PlacementRequest((first, *rest), strategy="SPREAD", client_region=region, latency_budget_ms=60)
        elif kind == "batch":
            bundles = tuple(Bundle({"CPU": _cpu(rng, 2, 16)}) for _ in range(rng.integers(1, 5)))
            req = PlacementRequest(bundles, strategy="PACK", client_region=region)
            duration *= 0.5
        else:
            cpu = _cpu(rng, 1, 8)
            bundles = tuple(Bundle({"CPU": cpu}, preferred_pools=(site_pool,)) for _ in range(rng.integers(2, 5)))
            req = PlacementRequest(bundles, strategy="STRICT_SPREAD", client_region=region, latency_budget_ms=40)
        out.append(TraceItem(float(t), duration, str(kind), req))
    return out
