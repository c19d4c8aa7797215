"""Outcomes, not constraints: the latency each invocation actually saw, under load, bursts and churn.

A trace of function invocations runs on a small continuum. Each invocation is placed by a policy
(the engine's, or a fair Ray baseline from :mod:`placement.sim.baselines`) and holds its CPUs for
its service time. What it experiences is

    end-to-end latency = network RTT (client region → chosen pool) + waiting for room + service time

and its SLO is met when that is within its deadline, whatever constraint the policy filtered on. A
request nothing can take now waits in one FIFO queue and is re-decided when CPUs free up (both
sides alike); one still waiting at its deadline is a miss (``timed_out``), a batch request still
waiting after ``batch_max_wait_s`` is rejected. Latency quantiles count a timed-out request at its
deadline, the moment its client gives up, so p99 is always a number (capped there when over 1 %
timed out); ``served_only`` leaves them out.

* **RTT**: the pools file's latency from the client's region to the pool, times a per-request
  jitter (log-normal, σ 0.2), times the link's drift. With ``drift=True`` the network is not what
  the file says: every link is off by a fixed log-normal factor (σ 0.25) and the links into one fog
  pool run 3× slower through the middle third of the run (a congested uplink).
* **Telemetry**: a prober measures every (region, pool) RTT every ``probe_s`` (an EWMA of samples)
  into a :class:`~placement.telemetry.Telemetry` the engine's snapshots carry; the baselines keep
  the file's figures, as a selector written once does.
* **Arrivals**: a Gamma renewal process (the family BurstGPT fits, Wang et al. 2024) whose gaps
  have CV 1.8, the median for Azure Functions applications without timers (Shahrad et al., USENIX
  ATC 2020, Figure 6): :data:`placement.sim.arrivals.SERVERLESS_IAT_CV`.
* **Load**: offered CPU-seconds per second over the cluster's CPUs; the horizon is set so a run
  has about ``requests`` arrivals at that load.
* **Churn**: edge nodes leave (work on them is retried from the queue, keeping its arrival time)
  and rejoin later; ``churn_events`` departures per run, each down for 1/5 of the run on average.

Example:
    >>> from placement.sim.continuum import build_continuum
    >>> c = outcome_continuum(seed=0)
    >>> r = replay("latency_first", c, build_invocations(c, load=0.5, requests=200, seed=1))
    >>> 0.0 <= r.slo_attainment <= 1.0 and r.slo_requests == len(r.latencies_ms) < r.requests
    True
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import math
import time

import numpy as np

from placement.policies import POLICIES, Policy, get_policy
from placement.requests import Bundle, PlacementRequest
from placement.sim.arrivals import SERVERLESS_IAT_CV, gamma_renewal
from placement.sim.baselines import RAY_BASELINES, PerKind
from placement.sim.continuum import Continuum, build_continuum
from placement.telemetry import Telemetry


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of invocation: its share, shape, service time and latency targets."""

    name: str
    share: float
    resources: dict[str, float]
    service_median_s: float
    service_sigma: float
    slo_ms: float | None  # end-to-end deadline; None: no SLO (batch)
    budget_ms: float | None  # network budget the request carries (the SLO minus room for service)
    edge_only: bool = False

    @property
    def mean_cpu_s(self) -> float:
        return self.resources.get("CPU", 0.0) * self.service_median_s * math.exp(self.service_sigma ** 2 / 2)


KINDS = (
    Kind("interactive", 0.45, {"CPU": 1.0}, 0.020, 0.5, 60.0, 25.0),
    Kind("camera", 0.15, {"CPU": 1.0, "camera": 1.0}, 0.040, 0.5, 100.0, 40.0, edge_only=True),
    Kind("api", 0.25, {"CPU": 1.0}, 0.100, 0.8, 300.0, 100.0),
    Kind("batch", 0.15, {"CPU": 1.0}, 1.0, 1.0, None, None),
)
"""The invocation mix. Service times are log-normal (a median and σ); the Azure Functions trace
shows execution times spanning orders of magnitude, most under a second."""


@dataclasses.dataclass(frozen=True)
class Invocation:
    arrival_s: float
    kind: Kind
    region: str
    service_s: float
    jitter: float  # multiplies the link's RTT for this request
    request: PlacementRequest


@dataclasses.dataclass(frozen=True)
class Trace:
    """Invocations plus the run's network and churn, all drawn from one seed."""

    invocations: tuple[Invocation, ...]
    horizon_s: float
    load: float
    drift: np.ndarray  # (regions, pools) static RTT factor
    congested_pool: int | None  # pool index whose links are 3x slower in the middle third
    churn: tuple[tuple[float, int, float], ...]  # (leave at, node index, down for)
    seed: int


def outcome_continuum(*, seed: int = 0, nodes: int = 40, sites: int = 6) -> Continuum:
    """The small continuum the outcome runs use: 6 edge sites of 2-CPU nodes, 2 fog pools of 8-CPU
    nodes, one cloud region of 16-CPU nodes (about 200 CPUs)."""
    return build_continuum(nodes=nodes, sites=sites, fogs=2, clouds=1, seed=seed,
                           shapes={"edge": (2, 4), "fog": (8, 32), "cloud": (16, 64)})


def build_invocations(c: Continuum, *, load: float, requests: int = 2000, seed: int = 0,
                      drift: bool = False, churn_events: int = 10) -> Trace:
    """A trace of about ``requests`` invocations offering ``load`` × the cluster's CPUs."""
    if not 0 < load <= 4:
        raise ValueError(f"load={load!r} must be in (0, 4]; 1 offers as many CPU-seconds as the cluster has.")
    rng = np.random.default_rng(seed)
    s = c.snapshot._s
    capacity = float(c.snapshot.total[:, s.res_pos["CPU"]].sum())
    mean_cpu_s = sum(k.share * k.mean_cpu_s for k in KINDS)
    horizon = requests * mean_cpu_s / (load * capacity)
    rate = requests / horizon
    times = gamma_renewal(rate_per_s=rate, cv=SERVERLESS_IAT_CV, duration_s=horizon, seed=rng)
    zipf = 1.0 / np.arange(1, len(c.regions) + 1) ** 1.1
    zipf /= zipf.sum()
    kinds = rng.choice(len(KINDS), p=[k.share for k in KINDS], size=len(times))
    regions = rng.choice(len(c.regions), p=zipf, size=len(times))
    out = []
    for t, ki, ri in zip(times, kinds, regions):
        k, region = KINDS[ki], c.regions[ri]
        service = float(k.service_median_s * rng.lognormal(0.0, k.service_sigma))
        bundle = Bundle(k.resources, tiers=("edge",) if k.edge_only else ())
        req = PlacementRequest((bundle,), client_region=region, latency_budget_ms=k.budget_ms)
        out.append(Invocation(float(t), k, region, service, float(rng.lognormal(0.0, 0.2)), req))
    n_pools = len(s.pool_names)
    factors = rng.lognormal(0.0, 0.25, size=(len(c.regions), n_pools)) if drift else np.ones((len(c.regions), n_pools))
    fogs = [i for i, p in enumerate(s.pool_names) if s.pools[p].tier == "fog"]
    congested = int(rng.choice(fogs)) if drift and fogs else None
    edge_nodes = np.flatnonzero(np.isin(s.pool_idx, [i for i, t in enumerate(s.pool_tiers) if t == "edge"]))
    churn = tuple(sorted((float(rng.uniform(0, horizon)), int(rng.choice(edge_nodes)),
                          float(rng.exponential(horizon / 5))) for _ in range(churn_events)))
    return Trace(tuple(out), horizon, load, factors, congested, churn, seed)


@dataclasses.dataclass
class Outcome:
    """What one policy's invocations experienced on one trace."""

    policy: str
    load: float
    seed: int
    requests: int
    slo_requests: int
    slo_met: int
    timed_out: int
    rejected: int
    latencies_ms: list[float]  # end-to-end, per SLO request (inf when it timed out)
    deadlines_ms: list[float]  # the SLO of each of those requests, in the same order
    cost_usd: float
    carbon_g: float
    cpu_seconds: float
    retried: int
    decisions: int
    decision_ms_p99: float
    wall_s: float

    @property
    def slo_attainment(self) -> float:
        return self.slo_met / self.slo_requests if self.slo_requests else 1.0

    def latency_ms(self, q: float, *, served_only: bool = False) -> float:
        """Quantile ``q`` of end-to-end latency over SLO requests. A request that timed out counts at
        its deadline (when its client gave up); ``served_only`` leaves those out instead."""
        values = np.asarray(self.latencies_ms, dtype=float)
        missed = ~np.isfinite(values)
        if served_only:
            values = values[~missed]
        else:
            values = np.where(missed, np.asarray(self.deadlines_ms, dtype=float), values)
        if not len(values):
            return 0.0
        return float(np.quantile(values, q, method="inverted_cdf"))


ENGINE_PER_KIND = {"per_kind": ("default", "cost_first")}
"""Engine combinations: (policy for calls with a latency budget, policy for the rest)."""


def make_policy(name: str, seed: int) -> Policy:
    """An engine policy or combination by name (``NAME@file``: the same without telemetry), or a
    fresh fair Ray baseline seeded for this run."""
    if name in RAY_BASELINES:
        return RAY_BASELINES[name](seed=seed)
    name = name.removesuffix("@file")
    if name in ENGINE_PER_KIND:
        budgeted, rest = ENGINE_PER_KIND[name]
        return PerKind(name, get_policy(budgeted), get_policy(rest))
    return get_policy(name)


def replay(policy: str, c: Continuum, trace: Trace, *, telemetry: bool = True, probe_s: float | None = None,
           batch_max_wait_s: float = 10.0, retries_per_event: int = 4) -> Outcome:
    """Run ``trace`` with ``policy`` and measure what each invocation experienced."""
    pol = make_policy(policy, trace.seed)
    base = c.snapshot
    s = base._s
    width = len(s.resources)
    avail = np.array(base.available, dtype=float)
    total = np.array(base.total, dtype=float)
    region_pos = {r: i for i, r in enumerate(c.regions)}
    declared = np.array([[math.nan if (v := s.pools[p].latency_to(r)) is None else v for p in s.pool_names]
                         for r in c.regions])
    h = trace.horizon_s
    probe_s = probe_s if probe_s is not None else h / 40
    with_telemetry = telemetry and (policy in POLICIES or policy in ENGINE_PER_KIND)
    tel = Telemetry(max_age_s=3 * probe_s, clock=lambda: now) if with_telemetry else None

    def link_rtt(ri: int, p: int, t: float) -> float:
        slow = 3.0 if trace.congested_pool == p and h / 3 <= t < 2 * h / 3 else 1.0
        return float(declared[ri, p] * trace.drift[ri, p] * slow)

    price = s.cost  # $/h per unit, per pool × resource
    carbon = s.carbon(12.0) * s.watts / 1000.0  # gCO2 per CPU-hour, per pool (midday)
    invs = trace.invocations
    events: list[tuple[float, int, int, object]] = []  # (time, order, seq, payload)
    seq = 0

    def push(t: float, order: int, payload: object) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, order, seq, payload))

    for t, node, down in trace.churn:
        push(t, 0, ("leave", node, down))
    if tel is not None:
        push(0.0, 1, ("probe",))
    for i in range(len(invs)):
        push(invs[i].arrival_s, 3, ("arrive", i))
    running: dict[int, tuple[int, np.ndarray, int]] = {}  # request -> (node, demand, generation)
    on_node: dict[int, set[int]] = collections.defaultdict(set)
    generation = [0] * len(invs)
    down_until: dict[int, float] = {}
    waiting: collections.deque[int] = collections.deque()
    ewma: dict[tuple[int, int], float] = {}
    now = 0.0
    lat_of: dict[int, float] = {}  # SLO request -> end-to-end ms of its last placement (inf: timed out)
    probe_rng = np.random.default_rng(trace.seed + 7919)
    timed_out = rejected = retried = decisions = 0
    cost = carbon_g = cpu_s = 0.0
    times: list[float] = []
    wall0 = time.perf_counter()

    def demand_of(inv: Invocation) -> np.ndarray:
        d = np.zeros(width)
        for r, v in inv.kind.resources.items():
            d[s.res_pos[r]] = v
        return d

    def try_place(i: int) -> bool:
        nonlocal decisions, cost, carbon_g, cpu_s
        inv = invs[i]
        snap = base.replace(available=avail, hour=12.0, telemetry=tel)
        t0 = time.perf_counter()
        d = pol(inv.request, snap)
        times.append(time.perf_counter() - t0)
        decisions += 1
        if not d.feasible:
            return False
        node = s.node_pos[d.placements[0].node_id]
        p = int(s.pool_idx[node])
        dem = demand_of(inv)
        avail[node] -= dem
        generation[i] += 1
        running[i] = (node, dem, generation[i])
        on_node[node].add(i)
        push(now + inv.service_s, 2, ("done", i, generation[i]))
        hours = inv.service_s / 3600.0
        cost += float(price[p] @ dem) * hours
        carbon_g += float(carbon[p]) * dem[s.res_pos["CPU"]] * hours
        cpu_s += dem[s.res_pos["CPU"]] * inv.service_s
        if inv.kind.slo_ms is not None:
            rtt = link_rtt(region_pos[inv.region], p, now) * inv.jitter
            lat_of[i] = rtt + (now - inv.arrival_s + inv.service_s) * 1e3
        return True

    def expired(i: int) -> bool:
        nonlocal timed_out, rejected
        inv = invs[i]
        if inv.kind.slo_ms is not None and (now - inv.arrival_s) * 1e3 > inv.kind.slo_ms:
            timed_out += 1
            lat_of[i] = math.inf
            return True
        if inv.kind.slo_ms is None and now - inv.arrival_s > batch_max_wait_s:
            rejected += 1
            return True
        return False

    def drain(node: int | None) -> None:
        """Re-decide waiting requests after room appeared (on ``node``, or anywhere)."""
        attempts = 0
        for i in list(waiting):
            if expired(i):
                waiting.remove(i)
                continue
            if attempts >= retries_per_event:
                break
            if node is not None and np.any(avail[node] < demand_of(invs[i]) - 1e-9):
                continue
            attempts += 1
            if try_place(i):
                waiting.remove(i)

    while events:
        now, _, _, payload = heapq.heappop(events)
        what = payload[0]  # type: ignore[index]
        if what == "arrive":
            i = payload[1]  # type: ignore[index]
            if not try_place(i):
                waiting.append(i)
        elif what == "done":
            i, gen = payload[1], payload[2]  # type: ignore[index]
            if i in running and running[i][2] == gen:
                node, dem, _ = running.pop(i)
                on_node[node].discard(i)
                if node not in down_until:
                    avail[node] += dem
                drain(node)
        elif what == "leave":
            node, down = payload[1], payload[2]  # type: ignore[index]
            if node in down_until:
                continue
            down_until[node] = now + down
            for i in sorted(on_node.pop(node, set())):
                running.pop(i, None)
                generation[i] += 1
                retried += 1
                waiting.appendleft(i)
            avail[node] = 0.0
            push(now + down, 0, ("join", node))
            drain(None)
        elif what == "join":
            node = payload[1]  # type: ignore[index]
            down_until.pop(node, None)
            avail[node] = total[node]
            drain(node)
        elif what == "probe" and tel is not None:
            for (ri, region) in enumerate(c.regions):
                for p, pool in enumerate(s.pool_names):
                    if math.isnan(declared[ri, p]):
                        continue
                    sample = link_rtt(ri, p, now) * float(probe_rng.lognormal(0.0, 0.2))
                    key = (ri, p)
                    ewma[key] = sample if key not in ewma else 0.7 * ewma[key] + 0.3 * sample
                    tel.record_rtt(region, pool, ewma[key], at=now)
            if now + probe_s <= h or len(events) > 0:  # keep measuring while work is still draining
                push(now + probe_s, 1, ("probe",))
    for i in waiting:  # the run ended with these never placed
        inv = invs[i]
        if inv.kind.slo_ms is not None:
            timed_out += 1
            lat_of[i] = math.inf
        else:
            rejected += 1
    ms = np.array(times) * 1e3 if times else np.zeros(1)
    latencies = [lat_of[i] for i in sorted(lat_of)]
    deadlines = [float(invs[i].kind.slo_ms or 0.0) for i in sorted(lat_of)]
    slo_met = sum(lat_of[i] <= (invs[i].kind.slo_ms or 0.0) for i in lat_of)
    return Outcome(policy, trace.load, trace.seed, len(invs), len(latencies), int(slo_met), timed_out, rejected,
                   latencies, deadlines, cost, carbon_g, cpu_s, retried, decisions, float(np.percentile(ms, 99)),
                   time.perf_counter() - wall0)
