"""The engine every placement policy shares: hard constraints as masks, then a scored search.

A :class:`~placement.policies.WeightedPolicy` is a set of weights; this module turns one, a request
and a snapshot into a :class:`~placement.decision.Decision`. Hard constraints (pools, tiers, RESOURCE
and INSTANCE affinity, latency budget, required data locality, resource shape, free capacity,
strategy) filter nodes as boolean arrays and are reported, in that order, when nothing is left; the
survivors are ranked by the weighted score terms described in :mod:`placement.policies`. Bundles
are placed greedily, most constrained first, each reserving its resources before the next; a
group fails as a whole. Everything is pure: no Ray, no clock but ``perf_counter`` for the timing
the decision reports.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from placement.decision import BundlePlacement, Decision, Exclusion, Infeasibility, RunnerUp
from placement.feasibility import unknown_pool
from placement.requests import Affinity, AffinityKind, AffinityType, Bundle, PlacementRequest, Strategy
from placement.snapshot import ClusterSnapshot

if TYPE_CHECKING:
    from placement.policies import WeightedPolicy

_EPS = 1e-9
_FLAT_LIMIT = 2048  # candidate nodes up to which one vectorised pass beats branch and bound
_UNITS = {"latency": "ms", "cost": "$/h", "carbon": "gCO2/h", "load": "", "locality": "", "preference": "",
          "tier": "", "group": "", "hybrid": ""}


@dataclasses.dataclass
class _Step:
    name: str
    level: str  # "pool": mask over pools; "node": mask over nodes
    mask: np.ndarray
    detail: Callable[[set[str]], str]


@dataclasses.dataclass
class _Prepared:
    """One bundle's constraints and pool-level score, computed once per decision."""

    bi: int
    bundle: Bundle
    cols: list[int]
    vals: list[float]
    pool_ok: np.ndarray
    node_ok: np.ndarray
    pool_score: np.ndarray
    pool_raw: dict[str, np.ndarray]
    rules: list[tuple[float, np.ndarray, bool]]
    data_mask: np.ndarray | None
    pool_has_data: np.ndarray | None
    preferred: np.ndarray | None
    count: int
    factors: dict[str, float]


@dataclasses.dataclass
class _Pick:
    node: int
    score: float
    terms: dict[str, float]


class _Engine:
    """Branch and bound over pools: pool-level terms are a lower bound of every node's score in the
    pool (node-level terms are non-negative), so pools are visited best-first and the search stops
    at the first pool whose bound cannot beat the best node found."""

    def __init__(self, policy: WeightedPolicy, request: PlacementRequest, snap: ClusterSnapshot) -> None:
        self.p = policy
        self.w = policy.weights
        self.req = request
        self.snap = snap
        self.s = snap._s
        self.n = len(snap)
        self.np = len(self.s.pool_names)
        self._lat: np.ndarray | None = None
        self._measured_load: np.ndarray | None = None
        if snap.telemetry is not None:
            self._measured_load = snap.telemetry.node_load(self.s.node_ids)

    def latency(self) -> np.ndarray:
        """Client region → pool latency per pool: live telemetry while fresh, else the pools file."""
        if self._lat is None:
            lat = self.s.region_latency(self.req.client_region)  # type: ignore[arg-type]
            if self.snap.telemetry is not None:
                lat = self.snap.telemetry.region_rtt(self.req.client_region, self.s.pool_names, lat)
            self._lat = lat
        return self._lat

    # -- constraints ------------------------------------------------------------------------------
    def demand(self, b: Bundle) -> tuple[list[int], list[float], list[str]]:
        cols, vals, missing = [], [], []
        for r, v in b.resources.items():
            j = self.s.res_pos.get(r)
            if j is None:
                missing.append(r)
            else:
                cols.append(j)
                vals.append(v)
        return cols, vals, missing

    def _pool_ok(self, names: tuple[str, ...], by_tier: bool = False) -> np.ndarray:
        """Pools named (or whose tier is named) in ``names``; cached on the snapshot's static index."""
        s = self.s
        key = (by_tier, names)
        hit = s.pool_sets.get(key)
        if hit is None:
            wanted = set(names)
            keys = s.pool_tiers if by_tier else s.pool_names
            hit = np.fromiter((k in wanted for k in keys), dtype=bool, count=self.np)
            hit.setflags(write=False)
            if len(s.pool_sets) > 4096:
                s.pool_sets.clear()
            s.pool_sets[key] = hit
        return hit.copy()

    def steps(self, b: Bundle) -> list[_Step]:
        """The hard constraints on one bundle, in the order explanations report them."""
        s, out = self.s, []
        names = s.pool_names
        if b.pools:
            unknown = [p for p in b.pools if p not in s.pools]

            def pools_detail(ex: set[str], unknown: list[str] = unknown) -> str:
                msg = f"bundle requires pool in ({', '.join(b.pools)})"
                if unknown:
                    live = [p for p in names if s.alive[s.pool_nodes[p]].any()]
                    msg += f"; {unknown_pool(unknown[0], live)}"
                    if len(live) < len(names):
                        msg += f" (no live node: {', '.join(p for p in names if p not in live)})"
                    msg += ". Add it to the pools file or pick one of those"
                return msg
            out.append(_Step("pools", "pool", self._pool_ok(b.pools), pools_detail))
        if b.tiers:
            out.append(_Step("tiers", "pool", self._pool_ok(b.tiers, by_tier=True),
                             lambda ex: f"bundle requires tier in ({', '.join(b.tiers)}); tiers present: "
                                        f"{', '.join(s.tier_names)}"))
        # After what the request names, so a dead node in a pool the bundle excludes anyway is not
        # reported ahead of the constraint the caller can fix.
        if not s.all_alive:
            out.append(_Step("alive", "node", s.alive, lambda ex: "their nodes are not alive"))
        for kind in (AffinityKind.RESOURCE, AffinityKind.INSTANCE):
            if kind is AffinityKind.INSTANCE and not self.p.instance_affinity:
                continue
            rules = [a for a in b.affinities if a.kind is kind and a.required]
            if not rules:
                continue
            mask = self._rules_mask(rules)
            out.append(_Step(f"{kind.value.lower()}_affinity", "node", mask,
                             lambda ex, rules=rules: " or ".join(map(str, rules))))
        if self.req.latency_budget_ms is not None and self.p.latency_budget:
            lat_p = self.latency()
            ok_p = lat_p <= self.req.latency_budget_ms + _EPS  # NaN (unknown) compares False

            def lat_detail(ex: set[str]) -> str:
                parts = []
                for pool in sorted(ex):
                    v = lat_p[names.index(pool)]
                    parts.append(f"{pool} {'unknown' if math.isnan(v) else f'{v:g} ms'}")
                return (f"latency from {self.req.client_region} exceeds the {self.req.latency_budget_ms:g} ms "
                        f"budget ({', '.join(parts)})")
            out.append(_Step("latency_budget", "pool", ok_p, lat_detail))
        if b.data_required:
            out.append(_Step("data_locality", "node", self._data_mask(b),
                             lambda ex: f"bundle must run on a node holding its data ({', '.join(b.data_nodes)})"))
        cols, vals, missing = self.demand(b)
        shape = np.zeros(self.n, dtype=bool) if missing else self._fits(s.total_t, cols, vals)

        def shape_detail(ex: set[str]) -> str:
            need = ", ".join(f"{r} {v:g}" for r, v in b.resources.items())
            if missing:
                return f"needs {need}; no node has resource {missing[0]!r} at all"
            biggest = []
            for pool in sorted(ex):
                idx = s.pool_nodes[pool]
                biggest.append(f"{pool} at most " + ", ".join(
                    f"{s.resources[c]} {(s.total_t[c][idx].max() if len(idx) else 0):g}" for c in cols))
            return f"needs {need} on one node; {'; '.join(biggest)}"
        out.append(_Step("resource_shape", "node", shape, shape_detail))
        return out

    @staticmethod
    def _fits(matrix_t: np.ndarray, cols: list[int], vals: list[float]) -> np.ndarray:
        mask = matrix_t[cols[0]] >= vals[0] - _EPS
        for c, v in zip(cols[1:], vals[1:]):
            mask &= matrix_t[c] >= v - _EPS
        return mask

    def _rule_mask(self, a: Affinity) -> np.ndarray:
        if a.kind is AffinityKind.RESOURCE:
            return self.s.labels.match_all(a.operators)
        return self.snap.instance_mask(a.operators)

    def _data_mask(self, b: Bundle) -> np.ndarray:
        m = np.zeros(self.n, dtype=bool)
        m[[self.s.node_pos[n] for n in b.data_nodes if n in self.s.node_pos]] = True
        return m

    def preferred(self, b: Bundle) -> np.ndarray | None:
        """Preferred pools (over pools), from the bundle or the policy's offload tiers."""
        pools, tiers = b.preferred_pools, b.preferred_tiers
        if not pools and not tiers:
            tiers = self.p.offload_tiers
        if not pools and not tiers:
            return None
        ok = self._pool_ok(pools) if pools else np.zeros(self.np, dtype=bool)
        if tiers:
            ok |= self._pool_ok(tiers, by_tier=True)
        return ok

    # -- preparation: constraints and the pool-level part of the score --------------------------
    def _pool_level(self, b: Bundle) -> np.ndarray:
        """Pool-level hard constraints (pools, tiers, latency budget) as a mask over pools; the same
        rules :meth:`steps` reports."""
        s = self.s
        ok = np.ones(self.np, dtype=bool)
        if b.pools:
            ok &= self._pool_ok(b.pools)
        if b.tiers:
            ok &= self._pool_ok(b.tiers, by_tier=True)
        if self.req.latency_budget_ms is not None and self.p.latency_budget:
            ok &= self.latency() <= self.req.latency_budget_ms + _EPS
        return ok

    def _node_level(self, b: Bundle) -> tuple[np.ndarray, np.ndarray]:
        """Node-level hard constraints that depend only on the static index (liveness, RESOURCE
        rules, required data, resource shape) and the count of passing nodes per pool. Cached on
        the index, so snapshots that share it (the adapter's refreshes, the simulator) reuse it."""
        s = self.s
        rules = tuple(a for a in b.affinities if a.kind is AffinityKind.RESOURCE and a.required)
        key = (tuple(sorted(b.resources.items())), rules, b.data_nodes if b.data_required else ())
        hit = s.node_ok_cache.get(key)
        if hit is None:
            node_ok = np.ones(self.n, dtype=bool)
            for st in self.steps(b):
                if st.level == "node" and st.name != "instance_affinity":
                    node_ok &= st.mask
            node_ok.setflags(write=False)
            hit = (node_ok, self._per_pool(node_ok))
            if len(s.node_ok_cache) > 1024:
                s.node_ok_cache.clear()
            s.node_ok_cache[key] = hit
        return hit

    def _per_pool(self, node_ok: np.ndarray) -> np.ndarray:
        s = self.s
        per_pool = np.zeros(self.np, dtype=np.int64)
        if self.n:
            per_pool[s.nonempty] = np.add.reduceat(node_ok, s.pool_start[s.nonempty], dtype=np.int64)
        return per_pool

    def _rules_mask(self, rules: list[Affinity]) -> np.ndarray:
        """REQUIRED rules ORed, then every REQUIRED_ANTI rule excluded."""
        mask = np.ones(self.n, dtype=bool)
        req = [a for a in rules if a.type is AffinityType.REQUIRED]
        if req:
            any_req = np.zeros(self.n, dtype=bool)
            for a in req:
                any_req |= self._rule_mask(a)
            mask &= any_req
        for a in rules:
            if a.type is AffinityType.REQUIRED_ANTI:
                mask &= ~self._rule_mask(a)
        return mask

    def prepare(self, bi: int, b: Bundle) -> _Prepared:
        s, w = self.s, self.w
        node_ok, per_pool = self._node_level(b)
        inst = [a for a in b.affinities if a.kind is AffinityKind.INSTANCE and a.required]
        if inst and self.p.instance_affinity:
            node_ok = node_ok & self._rules_mask(inst)
            per_pool = self._per_pool(node_ok)
        # Pools whose nodes all fail node-level constraints are dropped before any scoring.
        pool_ok = self._pool_level(b) & (per_pool > 0)
        cols, vals, _ = self.demand(b)
        raw: dict[str, np.ndarray] = {}
        factors: dict[str, float] = {}
        score = np.zeros(self.np)
        any_pool = bool(pool_ok.any())

        def add(name: str, values: np.ndarray, scaled: bool) -> None:
            wt = getattr(w, name)
            raw[name] = values
            if not wt:
                return
            if scaled:
                top = float(values[pool_ok].max()) if any_pool else 0.0
                if top <= 0:
                    return
                wt = wt / top
            factors[name] = wt
            score.__iadd__(wt * values)

        if self.req.client_region is not None:
            lat_p = self.latency()
            if np.isnan(lat_p).any():
                # Unknown latency ranks behind every known one.
                fill = np.nanmax(lat_p) * 2 if not np.isnan(lat_p).all() else 0.0
                lat_p = np.where(np.isnan(lat_p), fill, lat_p)
            add("latency", lat_p, True)
        if cols:
            add("cost", s.cost[:, cols] @ np.asarray(vals), True)
        cpu_j = s.res_pos.get("CPU")
        cpus = vals[cols.index(cpu_j)] if cpu_j in cols else 1.0
        carbon_p = s.carbon(self.snap.hour) * s.watts * cpus / 1000.0
        if np.isnan(carbon_p).any():
            # Unknown intensity counts as the worst known one.
            fill = np.nanmax(carbon_p) if not np.isnan(carbon_p).all() else 0.0
            carbon_p = np.where(np.isnan(carbon_p), fill, carbon_p)
        add("carbon", carbon_p, True)
        if w.tier:
            add("tier", s.pool_tier_rank, False)
        preferred = self.preferred(b)
        rules_in = [a for a in b.affinities if not a.required
                    and (a.kind is AffinityKind.RESOURCE or self.p.instance_affinity)]
        total_w = (1.0 if preferred is not None else 0.0) + sum(1.0 / (i + 1) for i in range(len(rules_in)))
        rules: list[tuple[float, np.ndarray, bool]] = []
        if preferred is not None:
            raw["preference"] = (~preferred).astype(float) / total_w
            score += w.preference * raw["preference"]
        elif rules_in:
            raw["preference"] = np.zeros(self.np)
        ranked = sorted(enumerate(rules_in), key=lambda ia: (-ia[1].priority, ia[0]))
        for rank, (_, a) in enumerate(ranked):
            rules.append((1.0 / (rank + 1) / total_w, self._rule_mask(a), a.anti))
        data_mask = pool_has_data = None
        if b.data_nodes:
            data_mask = self._data_mask(b)
            pool_has_data = np.zeros(self.np, dtype=bool)
            pool_has_data[s.pool_idx[data_mask]] = True
            raw["locality"] = np.where(pool_has_data, 0.0, 1.0)
            score += w.locality * raw["locality"]
        count = int(per_pool[pool_ok].sum())
        for name in ("preference", "locality", "load", "group", "hybrid"):
            if getattr(w, name):
                factors[name] = getattr(w, name)
        return _Prepared(bi, b, cols, vals, pool_ok, node_ok, score, raw, rules, data_mask, pool_has_data,
                         preferred, count, factors)

    # -- node level -------------------------------------------------------------------------------
    def _eval(self, pr: _Prepared, sel: slice | np.ndarray, avail_t: np.ndarray, used: np.ndarray,
              node_ok: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Scores of the feasible nodes among ``sel`` (a pool's slice or node indices):
        (node indices, scores, node-level terms)."""
        s, w = self.s, self.w
        ok = (pr.node_ok if node_ok is None else node_ok)[sel].copy()
        for c, v in zip(pr.cols, pr.vals):
            ok &= avail_t[c, sel] >= v - _EPS
        if self.req.strategy is Strategy.STRICT_SPREAD:
            ok &= ~used[sel]
        hit = np.flatnonzero(ok)
        idx = hit + sel.start if isinstance(sel, slice) else sel[hit]
        terms: dict[str, np.ndarray] = {}
        if not len(idx):
            return idx, np.zeros(0), terms
        pidx = s.pool_idx[idx]
        # What the node measurably does, when busier than its reservations say (never lower: the
        # bounds below assume load only adds to the reservation-based figure). The measurement is of
        # the node before this placement, so the demand adds to it as it adds to the reservations.
        measured = None if self._measured_load is None else self._measured_load[idx]
        util = None
        for c, v in zip(pr.cols, pr.vals):
            tot = np.where(s.total_t[c, idx] > 0, s.total_t[c, idx], 1.0)
            u = 1.0 - (avail_t[c, idx] - v) / tot
            if measured is not None:
                u = u + np.fmax(measured - (1.0 - avail_t[c, idx] / tot), 0.0)  # NaN (stale): 0
            util = u if util is None else np.maximum(util, u)
        if util is None:
            util = np.zeros(len(idx)) if measured is None else np.nan_to_num(measured)
        terms["load"] = util
        sc = pr.pool_score[pidx] + w.load * terms["load"]
        if self.req.strategy is Strategy.PACK:
            terms["group"] = np.where(used[idx], 0.0, 1.0)
        elif self.req.strategy is Strategy.SPREAD:
            terms["group"] = used[idx].astype(float)
        if "group" in terms:
            sc += w.group * terms["group"]
        if pr.rules:
            pref = np.zeros(len(idx))
            for wr, mask, anti in pr.rules:
                m = mask[idx]
                pref += wr * (m if anti else ~m)
            terms["preference"] = pr.pool_raw["preference"][pidx] + pref
            sc += w.preference * pref
        if pr.data_mask is not None and pr.pool_has_data is not None:
            extra = np.where(pr.pool_has_data[pidx] & ~pr.data_mask[idx], 0.5, 0.0)
            terms["locality"] = pr.pool_raw["locality"][pidx] + extra
            sc += w.locality * extra
        if w.hybrid:
            # Ray's hybrid policy: fill nodes in a fixed order until 50 % busy, then the least busy.
            terms["hybrid"] = np.where(terms["load"] <= 0.5, idx / max(self.n, 1) * 0.01, 0.5 + terms["load"])
            sc += w.hybrid * terms["hybrid"]
        return idx, sc, terms

    def _pick_terms(self, pr: _Prepared, node: int, j: int, terms: dict[str, np.ndarray]) -> dict[str, float]:
        p = self.s.pool_idx[node]
        out = {name: float(v[p]) for name, v in pr.pool_raw.items()}
        for name, v in terms.items():
            out[name] = float(v[j])
        return out

    def bounds(self, pr: _Prepared, avail_t: np.ndarray, used: np.ndarray,
               frac: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """A lower bound of the score of every node in each pool (``inf`` for excluded pools).

        ``frac`` caches, per resource, each pool's best free fraction for the current ``avail_t``;
        the decision loop keeps it up to date as bundles reserve resources.
        """
        s, w = self.s, self.w
        bound = np.where(pr.pool_ok, pr.pool_score, np.inf)
        if not self.n:
            return bound
        ne = s.nonempty
        if w.load or w.hybrid:
            # util = 1 - free/total + v/total >= 1 - max(free/total) + v/max(total), per resource.
            util_lb = np.zeros(int(ne.sum()))
            for c, v in zip(pr.cols, pr.vals):
                best_frac = None if frac is None else frac.get(c)
                if best_frac is None:
                    best_frac = np.maximum.reduceat(avail_t[c] * s.inv_total_t[c], s.pool_start[ne])
                    if frac is not None:
                        frac[c] = best_frac
                maxtot = s.pool_max_total(c)
                lb = 1.0 - best_frac + np.divide(v, maxtot, out=np.zeros_like(maxtot), where=maxtot > 0)
                util_lb = np.maximum(util_lb, lb)
            extra = w.load * util_lb
            if w.hybrid:
                extra = extra + w.hybrid * np.where(util_lb <= 0.5, s.pool_start[ne] / self.n * 0.01, 0.5 + util_lb)
            bound[ne] += extra
        if w.group and self.req.strategy is Strategy.PACK:
            pool_used = np.zeros(self.np, dtype=bool)
            pool_used[s.pool_idx[used]] = True
            bound += w.group * np.where(pool_used, 0.0, 1.0)
        return bound

    def _update_frac(self, frac: dict[int, np.ndarray], avail_t: np.ndarray, node: int) -> None:
        """Refresh the best free fractions of the one pool whose node just reserved resources."""
        s = self.s
        p = int(s.pool_idx[node])
        a, e = int(s.pool_start[p]), int(s.pool_end[p])
        j = int(s.nonempty_pos[p])
        for c, arr in frac.items():
            arr[j] = (avail_t[c, a:e] * s.inv_total_t[c, a:e]).max()

    def best(self, pr: _Prepared, avail_t: np.ndarray, used: np.ndarray, want_runners: int,
             node_ok: np.ndarray | None = None,
             frac: dict[int, np.ndarray] | None = None) -> tuple[_Pick | None, list[_Pick]]:
        """Best node for a prepared bundle, and the best node of up to ``want_runners`` other pools."""
        s = self.s
        sizes = s.pool_end - s.pool_start
        if int(sizes[pr.pool_ok].sum()) <= _FLAT_LIMIT:
            return self._best_flat(pr, avail_t, used, want_runners, node_ok)
        bound = self.bounds(pr, avail_t, used, frac)
        order = np.flatnonzero(np.isfinite(bound))
        order = order[np.argsort(bound[order], kind="stable")]
        picks: list[_Pick] = []  # best node of each evaluated pool
        same_pool: _Pick | None = None
        best_score = math.inf
        extra_budget = want_runners + 1  # pools looked at after the winner is certain
        for p in order:
            if bound[p] >= best_score - 1e-12:
                if len(picks) > want_runners or extra_budget <= 0:
                    break
                extra_budget -= 1
            idx, sc, terms = self._eval(pr, slice(int(s.pool_start[p]), int(s.pool_end[p])), avail_t, used, node_ok)
            if not len(idx):
                continue
            j = int(np.argmin(sc))
            picks.append(_Pick(int(idx[j]), float(sc[j]), self._pick_terms(pr, int(idx[j]), j, terms)))
            if sc[j] < best_score:
                best_score = float(sc[j])
                same_pool = None
                if want_runners and len(idx) > 1:
                    sc2 = sc.copy()
                    sc2[j] = math.inf
                    j2 = int(np.argmin(sc2))
                    same_pool = _Pick(int(idx[j2]), float(sc[j2]), self._pick_terms(pr, int(idx[j2]), j2, terms))
        if not picks:
            return None, []
        picks.sort(key=lambda pk: pk.score)
        runners = picks[1: 1 + want_runners]
        if same_pool is not None and len(runners) < want_runners:
            runners.append(same_pool)
        return picks[0], runners

    def _best_flat(self, pr: _Prepared, avail_t: np.ndarray, used: np.ndarray, want_runners: int,
                   node_ok: np.ndarray | None) -> tuple[_Pick | None, list[_Pick]]:
        """Small candidate sets: score every node of the allowed pools in one pass."""
        s = self.s
        sel = np.flatnonzero(pr.pool_ok[s.pool_idx])
        idx, sc, terms = self._eval(pr, sel, avail_t, used, node_ok)
        if not len(idx):
            return None, []
        k = int(np.argmin(sc))
        winner = _Pick(int(idx[k]), float(sc[k]), self._pick_terms(pr, int(idx[k]), k, terms))
        runners: list[_Pick] = []
        if want_runners and len(idx) > 1:
            pidx = s.pool_idx[idx]
            best_per_pool = np.full(self.np, np.inf)
            np.minimum.at(best_per_pool, pidx, sc)
            best_per_pool[pidx[k]] = np.inf
            for p in np.argsort(best_per_pool, kind="stable")[:want_runners]:
                if not np.isfinite(best_per_pool[p]):
                    break
                j = int(np.flatnonzero((pidx == p) & (sc == best_per_pool[p]))[0])
                runners.append(_Pick(int(idx[j]), float(sc[j]), self._pick_terms(pr, int(idx[j]), j, terms)))
            if len(runners) < want_runners:
                same = np.flatnonzero(pidx == pidx[k])
                same = same[same != k]
                if len(same):
                    j = int(same[np.argmin(sc[same])])
                    runners.append(_Pick(int(idx[j]), float(sc[j]), self._pick_terms(pr, int(idx[j]), j, terms)))
        return winner, runners

    # -- the decision ------------------------------------------------------------------------------
    def decide(self) -> Decision:
        t0 = time.perf_counter()
        prepared = [self.prepare(bi, b) for bi, b in enumerate(self.req.bundles)]
        if self.req.strategy is Strategy.STRICT_PACK:
            result = self._strict_pack(prepared)
        else:
            result = self._greedy(prepared)
        if isinstance(result, Infeasibility):
            return Decision(self.p.name, (), result, time.perf_counter() - t0)
        return Decision(self.p.name, result, None, time.perf_counter() - t0)

    def _greedy(self, prepared: list[_Prepared]) -> tuple[BundlePlacement, ...] | Infeasibility:
        order = sorted(prepared, key=lambda pr: (pr.count, -sum(pr.bundle.resources.values())))
        avail_t = self.snap._available_t.copy()
        used = np.zeros(self.n, dtype=bool)
        placed: dict[int, BundlePlacement] = {}
        reserved: list[tuple[int, list[int], list[float]]] = []
        frac = self.snap._frac_cache  # valid until the first reservation, then a private copy
        for pr in order:
            winner, _ = self.best(pr, avail_t, used, 0, frac=frac) if pr.count else (None, [])
            if winner is None:
                return self._explain(pr, avail_t, used, sorted(placed))
            placed[pr.bi] = self._placement(pr, winner, self._later_runners(pr, winner, tuple(reserved)), avail_t)
            avail_t[pr.cols, winner.node] -= pr.vals
            used[winner.node] = True
            reserved.append((winner.node, pr.cols, pr.vals))
            if frac is self.snap._frac_cache:
                frac = {c: v.copy() for c, v in frac.items()}
            self._update_frac(frac, avail_t, winner.node)
        return tuple(placed[i] for i in range(len(prepared)))

    def _later_runners(self, pr: _Prepared, winner: _Pick, reserved: tuple[tuple[int, list[int], list[float]], ...],
                       node_ok: np.ndarray | None = None) -> Callable[[], tuple[RunnerUp, ...]] | tuple[()]:
        """A thunk computing the runners-up of one bundle on demand, replaying the reservations made
        before it so it sees exactly the free resources the decision saw."""
        if not self.p.runners_up:
            return ()

        def runners() -> tuple[RunnerUp, ...]:
            avail_t = self.snap._available_t.copy()
            used = np.zeros(self.n, dtype=bool)
            for node, cols, vals in reserved:
                avail_t[cols, node] -= vals
                used[node] = True
            _, picks = self.best(pr, avail_t, used, self.p.runners_up, node_ok=node_ok)
            return self._runner_ups(pr, winner, picks)
        return runners

    def _strict_pack(self, prepared: list[_Prepared]) -> tuple[BundlePlacement, ...] | Infeasibility:
        s = self.s
        avail_t = self.snap._available_t
        no_use = np.zeros(self.n, dtype=bool)
        for pr in prepared:
            if not pr.count:
                return self._explain(pr, avail_t, no_use, [])
        total: dict[str, float] = {}
        for pr in prepared:
            for r, v in pr.bundle.resources.items():
                total[r] = total.get(r, 0.0) + v
        merged = self.prepare(-1, Bundle(total, preferred_pools=prepared[0].bundle.preferred_pools,
                                         preferred_tiers=prepared[0].bundle.preferred_tiers,
                                         affinities=tuple(a for pr in prepared for a in pr.bundle.affinities
                                                          if not a.required),
                                         data_nodes=tuple(n for pr in prepared for n in pr.bundle.data_nodes)))
        node_ok = np.logical_and.reduce([pr.node_ok for pr in prepared])
        merged.pool_ok = np.logical_and.reduce([pr.pool_ok for pr in prepared])
        winner, _ = self.best(merged, avail_t, no_use, 0, node_ok=node_ok)
        if winner is None:
            both = node_ok & merged.pool_ok[s.pool_idx]
            need = ", ".join(f"{r} {v:g}" for r, v in total.items())
            if not both.any():
                detail = "STRICT_PACK needs one node that satisfies every bundle's constraints; none does"
                pools = tuple(sorted({s.pool_names[i] for i in s.pool_idx[s.alive]}))
            else:
                pools = tuple(sorted({s.pool_names[i] for i in s.pool_idx[both]}))
                detail = f"STRICT_PACK needs {need} free on one node; no node in {', '.join(pools)} has that"
            return Infeasibility((Exclusion(None, "strategy", pools, detail),))
        later = self._later_runners(merged, winner, (), node_ok=node_ok)
        out = []
        for pr in prepared:
            view = dataclasses.replace(merged, bi=pr.bi, bundle=pr.bundle, preferred=pr.preferred)
            out.append(self._placement(view, winner, later, avail_t))
        return tuple(out)

    def _runner_ups(self, pr: _Prepared, winner: _Pick, runners: list[_Pick]) -> tuple[RunnerUp, ...]:
        s = self.s
        factors = self._factors(pr)
        out = []
        for r in runners:
            diffs = {n: f * (r.terms.get(n, 0.0) - winner.terms.get(n, 0.0)) for n, f in factors.items()}
            lost = max(diffs, key=diffs.__getitem__) if diffs else "tie"
            if not diffs or diffs[lost] <= 1e-12:
                lost, detail = "tie", "equal score; the earlier node in snapshot order wins"
            else:
                detail = f"{lost} {_fmt(r.terms[lost], lost)} vs {_fmt(winner.terms.get(lost, 0.0), lost)}"
            out.append(RunnerUp(s.node_ids[r.node], s.pool_names[s.pool_idx[r.node]], r.score, lost, detail))
        return tuple(out)

    def _placement(self, pr: _Prepared, winner: _Pick,
                   runners: Callable[[], tuple[RunnerUp, ...]] | tuple[()], avail_t: np.ndarray) -> BundlePlacement:
        s = self.s
        best = winner.node
        p = int(s.pool_idx[best])
        pool = s.pool_names[p]
        factors = self._factors(pr)
        reason = ", ".join(f"{n} {_fmt(v, n)}" for n, v in winner.terms.items() if n in factors)
        offloaded: tuple[str, ...] = ()
        if pr.preferred is not None and not pr.preferred[p]:
            offloaded, why = self._left_preferred(pr, avail_t)
            if why is not None and not offloaded:
                reason = f"{why}; {reason}"
            elif offloaded:
                budget = ""
                if self.req.latency_budget_ms is not None and "latency" in winner.terms:
                    budget = (f", still within the {self.req.latency_budget_ms:g} ms budget "
                              f"({winner.terms['latency']:g} ms)")
                reason = f"offloaded from {', '.join(offloaded)} ({why}) to {pool}{budget}; {reason}"
        return BundlePlacement(pr.bi, s.node_ids[best], pool, s.pools[pool].tier, winner.score,
                               dict(winner.terms), offloaded, reason or "only candidate", _runners=runners)

    def _left_preferred(self, pr: _Prepared, avail_t: np.ndarray) -> tuple[tuple[str, ...], str | None]:
        """Why a bundle is not in its preferred pools: ``(pools it was offloaded from, why)``.

        An offload is leaving preferred pools for lack of room: every constraint but room lets the
        bundle in, and no node there is big enough (``resource_shape``) or has enough free now
        (``capacity``). Preferred pools that another constraint rules out (a required pool, the
        latency budget, an affinity) are not an offload; the answer is then ``((), None)``.
        """
        s = self.s
        pool_ok = pr.preferred.copy()
        node_ok = np.ones(self.n, dtype=bool)
        for st in self.steps(pr.bundle):
            if st.name == "resource_shape":
                continue
            if st.level == "pool":
                pool_ok &= st.mask
            else:
                node_ok &= st.mask
        allowed = node_ok & pool_ok[s.pool_idx]
        if not allowed.any():
            return (), None
        big = allowed & pr.node_ok
        if (big & self._fits(avail_t, pr.cols, pr.vals)).any():
            return (), "preferred pools had room but scored worse"
        pools = tuple(s.pool_names[i] for i in np.flatnonzero(np.bincount(s.pool_idx[allowed], minlength=self.np)))
        need = ", ".join(f"{s.resources[c]} {v:g}" for c, v in zip(pr.cols, pr.vals))
        if big.any():
            most = ", ".join(f"{s.resources[c]} {avail_t[c][big].max():g}" for c in pr.cols)
            return pools, f"needs {need}; most free there {most}"
        largest = ", ".join(f"{s.resources[c]} {s.total_t[c][allowed].max():g}" for c in pr.cols)
        return pools, f"needs {need}; no node there is that big, the largest has {largest}"

    def _factors(self, pr: _Prepared) -> dict[str, float]:
        """Multiplier of each raw term in the score (weights over the scale of scaled terms)."""
        return pr.factors

    def _explain(self, pr: _Prepared, avail_t: np.ndarray, used: np.ndarray,
                 placed_before: list[int]) -> Infeasibility:
        s, b, bi = self.s, pr.bundle, pr.bi
        if self.n == 0:
            return Infeasibility((Exclusion(bi, "alive", (), "the cluster snapshot has no nodes"),))
        exclusions: list[Exclusion] = []
        mask = np.ones(self.n, dtype=bool)
        steps = self.steps(b)
        cols, vals, missing = self.demand(b)
        if not missing:
            def cap_detail(ex: set[str]) -> str:
                need = ", ".join(f"{s.resources[c]} {v:g}" for c, v in zip(cols, vals))
                parts = []
                for pool in sorted(ex):
                    idx = s.pool_nodes[pool]
                    parts.append(f"{pool} " + ", ".join(
                        f"{s.resources[c]} {(avail_t[c][idx].max() if len(idx) else 0):g}" for c in cols))
                after = f" after placing bundles {placed_before} of this group" if placed_before else ""
                return f"needs {need} free on one node{after}; most free: {'; '.join(parts)}"
            steps.append(_Step("capacity", "node", self._fits(avail_t, cols, vals), cap_detail))
        if self.req.strategy is Strategy.STRICT_SPREAD:
            steps.append(_Step("strategy", "node", ~used,
                               lambda ex: "STRICT_SPREAD: every remaining node already holds a bundle of this group"))
        for st in steps:
            before = set(s.pool_idx[mask].tolist())
            mask = mask & (st.mask[s.pool_idx] if st.level == "pool" else st.mask)
            after = set(s.pool_idx[mask].tolist())
            gone = {s.pool_names[i] for i in before - after}
            if gone:
                exclusions.append(Exclusion(bi, st.name, tuple(sorted(gone)), st.detail(gone)))
            if not mask.any():
                break
        return Infeasibility(tuple(exclusions))


def _fmt(value: float, term: str) -> str:
    unit = _UNITS.get(term, "")
    if term == "load":
        return f"{value:.0%}"
    if term == "cost":
        return f"{value:.4g} {unit}"
    return f"{value:.3g} {unit}".rstrip()
