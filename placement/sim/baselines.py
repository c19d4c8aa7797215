"""What Ray 2.60 itself would do with the constraints a skilled Ray user writes: the fair baselines.

A Ray user can give every task a ``label_selector`` on the pool label and a ``fallback_strategy`` of
further selectors tried in order. The latency budget the engine enforces is expressible in those
terms: the pools whose declared latency from the client's region fits the budget, written as
``{"yr.io/pool": "in(edge-3,fog-1)"}`` (yuanrong emits exactly that itself with ``pin="pool"``).
So each baseline here is given the same pools file, the same budget and the same preferred pool the
engine gets, and differs from the engine only in how Ray picks a node among those the selectors
allow. The models, and the Ray source each follows:

* **Hybrid policy** (Ray's default; ``src/ray/raylet/scheduling/policy/hybrid_scheduling_policy.cc``,
  ``HybridSchedulingPolicy::ScheduleImpl`` and ``GetBestNode``): among nodes that are alive, match
  the selector and have the resources free now, each node's score is its *critical resource
  utilisation* (the busiest resource's used fraction), rounded down to 0 below
  ``scheduler_spread_threshold`` (0.5). Nodes are sorted by node id, then stably by score; the
  local (submitting) node wins when it is available and scores no worse than the best; otherwise
  one of the top ``k = max(scheduler_top_k_absolute, scheduler_top_k_fraction × cluster nodes)``
  (1 and 0.2) is picked uniformly at random. With ``scheduler_avoid_gpu_nodes`` (on by default), a
  request without GPUs tries the nodes without GPUs first (``HybridSchedulingPolicy::Schedule``).
* **SPREAD** (``scheduling_strategy="SPREAD"``; ``spread_scheduling_policy.cc``): round robin over
  the nodes sorted by id, from where the previous pick stopped, taking the first available node.
* **Label selectors and fallbacks** (``label_selector`` / ``fallback_strategy`` task options,
  ``python/ray/remote_function.py``): the primary selector first; a fallback is used only when no
  node of the ones before it can take the request now. :data:`RAY_BASELINES` orders the fallbacks
  by latency, by price, or per kind of call (:class:`PerKind`: by latency for calls with a budget,
  by price for the rest — the strongest of them in ``python -m placement.sim``).

Ray node ids are random, so "sorted by id" is a random order: each model draws one permutation of
the nodes per seed (the old baselines filled pools in name order, which put the cloud first).

Modelled generously to Ray: a request that fits nowhere now waits in the simulator's queue and is
re-decided whenever resources free up anywhere (ideal spillback), the local node is a node of the
client's own edge site (a gateway there), and the selectors use the pools file's latencies, the
same figures the engine has when it has no telemetry. Not modelled: Ray's resource broadcast lag,
its raylet-local queues, placement-group bundle policies (groups are placed bundle by bundle).

Example:
    >>> from placement.sim.continuum import build_continuum
    >>> from placement import PlacementRequest
    >>> c = build_continuum(nodes=100, sites=4, fogs=2, clouds=1)
    >>> ray = RAY_BASELINES["ray_fallback_latency"](seed=1)
    >>> d = ray(PlacementRequest.single({"CPU": 1}, preferred_pools=("edge-2",), client_region="site-2",
    ...                                 latency_budget_ms=25), c.snapshot)
    >>> d.placements[0].pool
    'edge-2'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from placement.decision import BundlePlacement, Decision, Exclusion, Infeasibility
from placement.requests import AffinityKind, Bundle, PlacementRequest, Strategy
from placement.snapshot import ClusterSnapshot

SPREAD_THRESHOLD = 0.5
"""``RAY_scheduler_spread_threshold`` default: below this utilisation a node scores 0."""
TOP_K_FRACTION = 0.2
"""``RAY_scheduler_top_k_fraction`` default: the hybrid policy picks among this share of the nodes."""
TOP_K_ABSOLUTE = 1
"""``RAY_scheduler_top_k_absolute`` default: ...but among at least this many."""


class _Index:
    """Per-snapshot facts every decision of one model reuses: the random node order, local nodes."""

    def __init__(self, snap: ClusterSnapshot, rng: np.random.Generator) -> None:
        s = snap._s
        self.static = s
        n = len(s.node_ids)
        self.rank = np.empty(n, dtype=np.int64)
        self.rank[rng.permutation(n)] = np.arange(n)
        self.k = max(TOP_K_ABSOLUTE, int(n * TOP_K_FRACTION))
        gpu = s.res_pos.get("GPU")
        self.has_gpu = s.total_t[gpu] > 0 if gpu is not None else np.zeros(n, dtype=bool)
        self.inv_total = s.inv_total_t
        self.by_id = np.argsort(self.rank, kind="stable")  # node indices in (random) id order
        # The submitting node of a client region: the first node (by id) of the edge pool serving it.
        self.local: dict[str, int] = {}
        for i in self.by_id:
            pool = s.pools[s.pool_names[s.pool_idx[i]]]
            if pool.region is not None and pool.region not in self.local and pool.tier == "edge":
                self.local[pool.region] = int(i)


class RayModel:
    """One fair Ray baseline: how it builds selectors and how it picks a node within them.

    Args:
        name: Baseline name.
        selectors: ``"budget"`` (one selector: the pools inside the budget), ``"fallback_latency"``
            (the preferred pools, then every other pool inside the budget as a fallback, nearest
            first) or ``"fallback_price"`` (pools inside the budget, cheapest first).
        scheduling: ``"hybrid"`` (Ray's default) or ``"spread"``.
        seed: Seeds the node order and the hybrid policy's random pick.
    """

    def __init__(self, name: str, *, selectors: str, scheduling: str, seed: int = 0) -> None:
        if selectors not in ("budget", "fallback_latency", "fallback_price"):
            raise ValueError(f"selectors={selectors!r}; give 'budget', 'fallback_latency' or 'fallback_price'.")
        if scheduling not in ("hybrid", "spread"):
            raise ValueError(f"scheduling={scheduling!r}; give 'hybrid' or 'spread'.")
        self.name = name
        self.selectors = selectors
        self.scheduling = scheduling
        self._rng = np.random.default_rng(seed)
        self._index: _Index | None = None
        self._next = 0  # SPREAD's round-robin position

    def _idx(self, snap: ClusterSnapshot) -> _Index:
        if self._index is None or self._index.static is not snap._s:
            self._index = _Index(snap, self._rng)
        return self._index

    # -- what the user writes ---------------------------------------------------------------------
    def selector_pools(self, request: PlacementRequest, bundle: Bundle, snap: ClusterSnapshot) -> list[np.ndarray]:
        """The bundle's ``label_selector`` and ``fallback_strategy`` as pool masks, in order."""
        s = snap._s
        names = s.pool_names
        allowed = np.ones(len(names), dtype=bool)
        if bundle.pools:
            allowed &= np.isin(names, bundle.pools)
        if bundle.tiers:
            allowed &= np.isin(s.pool_tiers, bundle.tiers)
        lat = None
        if request.client_region is not None:
            lat = s.region_latency(request.client_region)
            if request.latency_budget_ms is not None:
                allowed &= lat <= request.latency_budget_ms + 1e-9  # NaN (unknown) is outside
        if self.selectors == "budget":
            return [allowed]
        if self.selectors == "fallback_price":
            price = s.cost @ _demand(bundle, s.res_pos, len(s.resources))
            key = [(price[i], _or_inf(lat, i)) for i in range(len(names))]
            preferred = np.zeros(len(names), dtype=bool)
        else:
            key = [(_or_inf(lat, i), 0.0) for i in range(len(names))]
            preferred = allowed & np.isin(names, bundle.preferred_pools) if bundle.preferred_pools \
                else np.zeros(len(names), dtype=bool)
        out = [preferred] if preferred.any() else []
        for i in sorted(np.flatnonzero(allowed & ~preferred), key=lambda i: key[i]):
            one = np.zeros(len(names), dtype=bool)
            one[i] = True
            out.append(one)
        return out

    # -- what Ray does with it ------------------------------------------------------------------
    def __call__(self, request: PlacementRequest, snapshot: ClusterSnapshot) -> Decision:
        idx = self._idx(snapshot)
        s = idx.static
        avail_t = snapshot._available_t.copy()
        used = np.zeros(len(s.node_ids), dtype=bool)
        placements = []
        for bi, b in enumerate(request.bundles):
            node = self._place(request, b, snapshot, idx, avail_t, used)
            if node is None:
                return Decision(self.name, (), Infeasibility((Exclusion(
                    bi, "capacity", (), f"no node matching any selector of {self.name} has the resources free"),)))
            demand = _demand(b, s.res_pos, len(s.resources))
            avail_t[:, node] -= demand
            used[node] = True
            pool = s.pool_names[s.pool_idx[node]]
            lat = s.pools[pool].latency_to(request.client_region) if request.client_region else None
            placements.append(BundlePlacement(bi, s.node_ids[node], pool, s.pools[pool].tier, 0.0,
                                              {} if lat is None else {"latency": float(lat)},
                                              reason=f"{self.name}: Ray {self.scheduling} policy in its selectors"))
        return Decision(self.name, tuple(placements))

    def _place(self, request: PlacementRequest, b: Bundle, snap: ClusterSnapshot, idx: _Index,
               avail_t: np.ndarray, used: np.ndarray) -> int | None:
        s = idx.static
        demand = _demand(b, s.res_pos, len(s.resources))
        cols = np.flatnonzero(demand)
        if len(cols) < sum(1 for r in b.resources if r in s.res_pos) or any(r not in s.res_pos for r in b.resources):
            return None
        base = s.alive.copy()
        rules = [a for a in b.affinities if a.kind is AffinityKind.RESOURCE and a.required]
        for a in rules:
            base &= s.labels.match_all(a.operators) ^ a.anti
        if request.strategy is Strategy.STRICT_SPREAD:
            base &= ~used
        fits = np.all(avail_t[cols] >= demand[cols, None] - 1e-9, axis=0)
        for pools in self.selector_pools(request, b, snap):
            ok = base & pools[s.pool_idx] & fits
            if not ok.any():
                continue
            if self.scheduling == "spread":
                return self._spread(ok, idx)
            if "GPU" not in b.resources and (ok & ~idx.has_gpu).any():
                ok &= ~idx.has_gpu
            return self._hybrid(ok, idx, avail_t, request)
        return None

    def _hybrid(self, ok: np.ndarray, idx: _Index, avail_t: np.ndarray, request: PlacementRequest) -> int:
        cand = np.flatnonzero(ok)
        util = (1.0 - avail_t[:, cand] * idx.inv_total[:, cand]).max(axis=0, where=idx.inv_total[:, cand] > 0,
                                                                         initial=0.0)
        score = np.where(util < SPREAD_THRESHOLD, 0.0, util)
        order = np.lexsort((idx.rank[cand], score))
        local = idx.local.get(request.client_region or "")
        if local is not None and ok[local]:
            j = int(np.flatnonzero(cand == local)[0])
            if score[j] <= score[order[0]]:
                return local
        pick = int(self._rng.integers(0, min(idx.k, len(cand))))
        return int(cand[order[pick]])

    def _spread(self, ok: np.ndarray, idx: _Index) -> int:
        n = len(idx.by_id)
        ring = np.roll(idx.by_id, -self._next)
        j = int(np.flatnonzero(ok[ring])[0])
        node = int(ring[j])
        self._next = (int(idx.rank[node]) + 1) % n
        return node


def _or_inf(lat: np.ndarray | None, i: int) -> float:
    return math.inf if lat is None or math.isnan(lat[i]) else float(lat[i])


def _demand(b: Bundle, res_pos: Mapping[str, int], width: int) -> np.ndarray:
    out = np.zeros(width)
    for r, v in b.resources.items():
        j = res_pos.get(r)
        if j is not None:
            out[j] = v
    return out


class PerKind:
    """One policy for requests with a latency budget and another for those without, as a user who
    writes different options for interactive and batch calls does (engine policies or Ray models).

    Args:
        name: Name of the combination.
        budgeted: Decides requests that carry a latency budget.
        unbudgeted: Decides the rest.
    """

    def __init__(self, name: str, budgeted: Callable[[PlacementRequest, ClusterSnapshot], Decision],
                 unbudgeted: Callable[[PlacementRequest, ClusterSnapshot], Decision]) -> None:
        self.name = name
        self._budgeted, self._unbudgeted = budgeted, unbudgeted

    def __call__(self, request: PlacementRequest, snapshot: ClusterSnapshot) -> Decision:
        pick = self._budgeted if request.latency_budget_ms is not None else self._unbudgeted
        d = pick(request, snapshot)
        return Decision(self.name, d.placements, d.infeasibility, d.elapsed_s)


RAY_BASELINES: Mapping[str, Callable[..., RayModel | PerKind]] = {
    "ray_fallback_latency": lambda seed=0: RayModel("ray_fallback_latency", selectors="fallback_latency",
                                                    scheduling="hybrid", seed=seed),
    "ray_fallback_price": lambda seed=0: RayModel("ray_fallback_price", selectors="fallback_price",
                                                  scheduling="hybrid", seed=seed),
    "ray_hybrid_budget": lambda seed=0: RayModel("ray_hybrid_budget", selectors="budget", scheduling="hybrid",
                                                 seed=seed),
    "ray_spread_budget": lambda seed=0: RayModel("ray_spread_budget", selectors="budget", scheduling="spread",
                                                 seed=seed),
    # Nearest-first fallbacks for calls with a budget, cheapest-first for the rest.
    "ray_per_kind": lambda seed=0: PerKind(
        "ray_per_kind", RayModel("ray_fallback_latency", selectors="fallback_latency", scheduling="hybrid", seed=seed),
        RayModel("ray_fallback_price", selectors="fallback_price", scheduling="hybrid", seed=seed + 7919)),
}
"""The fair baselines by name; each factory takes a seed (node order and random picks)."""
