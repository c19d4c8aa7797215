"""End to end on the live testbed: the demo's workloads placed by each engine policy and by Ray's best native options.

On :mod:`yuanrong.testbed` (a cloud head, ``edge-1`` where the clients are, ``edge-2``; Ray calls
into the cloud and ``edge-2`` held by Ray's RPC delay injection) every variant places the same apps,
one 1-CPU actor per replica, in the same order, and a client actor on ``edge-1`` then calls each
app's replicas in turn; a request's latency is what that call took (network, queueing, service).

Apps (the demo's three workloads, reduced to their shape on this 2-core machine):

======================  ===========  ========  ==========  ================================
app                     service      SLO       budget      demo counterpart
======================  ===========  ========  ==========  ================================
features                2 ms         30 ms     25 ms       feature service at the edge
classifier              8 ms         60 ms     50 ms       digits classifier at the edge
generator               15 ms        150 ms    100 ms      token generator behind the router
etl                     25 ms a job  none      none        ETL job (batch, placed by price)
======================  ===========  ========  ==========  ================================

The ETL is timed like the others (``--etl-jobs`` jobs a round, each a call of its replica); it has
no SLO, so it is outside the attainment. The generator is called as an actor, not through the
router (see ``docs/placement.md``).

*Load* is replicas per interactive app: 1 (4 CPUs of 8 asked for, with the ETL's), 2 (7 of 8) and
3 (10 of 8: more than the testbed has, so some replica is not placed and its share of requests is
lost). Variants (:data:`VARIANTS`): the engine's policies from :data:`placement.POLICIES`, each
placing every app (``latency_first``, ``cost_first``, ``carbon_aware``, ``load_balancing``,
``edge_first``) with live telemetry from :class:`placement.ray_probe.TelemetryProbe`;
``per_kind`` (``default`` for budgeted apps, ``cost_first`` for the ETL) with telemetry and
``per_kind@file`` without (the pools file's figures); and ``ray_per_kind`` — real Ray, the
strongest fair baseline of ``placement/sim/baselines.py``: ``label_selector`` on the pools inside
the budget by the pools file, nearest first, the rest as ordered ``fallback_strategy``; the ETL by
price. Scenarios: ``declared`` (the emulated RTTs are the pools file's) and ``drift`` (``edge-2``'s
link is 70 ms, the file still says 15). Variants take turns to go first, round by round; figures per
round are reported as the mean with a 95 % interval across rounds.

Writes ``bench/results/continuum.json``; ``--apps real`` runs the demo apps' own code in the
replicas (see :mod:`bench._continuum_apps`) and writes ``bench/results/continuum_real_apps.json``.

Usage:
    python bench/continuum.py          # both scenarios, loads 1-3, 3 rounds, 8 variants (~10 min here)
    python bench/continuum.py --rounds 1 --requests 10 --scenarios drift --loads 2   # a quick look
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._continuum_apps import actors  # noqa: E402
from bench._report import mean_ci95, percentile, print_table, row, write_json  # noqa: E402

POOLS_FILE = _HERE.parent / "cluster_configs" / "pools.yaml"
APPS = (  # name, service ms, SLO ms (None: no SLO), budget ms (None: batch)
    ("features", 2.0, 30.0, 25.0),
    ("classifier", 8.0, 60.0, 50.0),
    ("generator", 15.0, 150.0, 100.0),
    ("etl", 25.0, None, None),
)
INTERACTIVE = tuple(a for a in APPS if a[2] is not None)
SCENARIOS = {"declared": {"cloud_ms": 38.0, "edge2_ms": 15.0}, "drift": {"cloud_ms": 38.0, "edge2_ms": 70.0}}
ENGINE_VARIANTS = {  # name: (policy for budgeted apps, policy for the ETL, live telemetry)
    "per_kind": ("default", "cost_first", True),
    "per_kind@file": ("default", "cost_first", False),
    **{p: (p, p, True) for p in ("latency_first", "cost_first", "carbon_aware", "load_balancing", "edge_first")},
}
"""Engine variants. ``default`` alone is ``per_kind`` with the ETL placed by ``default`` too, so it is
left out; ``ray_label_pinning``/``ray_pack_spread`` are the engine's imitations of Ray, which real
Ray replaces here."""
RAY_VARIANTS = ("ray_per_kind",)
VARIANTS = (*ENGINE_VARIANTS, *RAY_VARIANTS)


def _ray_selectors(pools: Any, budget: float | None) -> list[str]:
    """Pools a skilled Ray user lists from the pools file: inside the budget, nearest first (or cheapest)."""
    names = [p for p in pools if pools[p].latency_to_regions_ms.get("site-1") is not None]
    if budget is None:
        return sorted(names, key=lambda p: (pools[p].cost_per_hour.get("CPU", 0.0), p))
    inside = [p for p in names if pools[p].latency_to_regions_ms["site-1"] <= budget]
    return sorted(inside, key=lambda p: (pools[p].latency_to_regions_ms["site-1"], p))


def submit(variant: str, kind: str, budget: float | None, ctx: dict[str, Any]) -> Any:
    """One 1-CPU replica submitted as ``variant`` places it; the actor, or ``None`` when the variant finds
    no room (Ray's own variant never says so: Ray keeps such an actor pending)."""
    from placement import Bundle, PlacementInfeasible, PlacementRequest

    if variant in RAY_VARIANTS:
        order = [p for p in _ray_selectors(ctx["pools"], budget) if p in ctx["live_pools"]]
        if not order:
            return None
        opts: dict[str, Any] = {"label_selector": {"yr.io/pool": order[0]}}
        if order[1:]:
            opts["fallback_strategy"] = [{"label_selector": {"yr.io/pool": p}} for p in order[1:]]
    else:
        budgeted, batch, live = ENGINE_VARIANTS[variant]
        placer = ctx["placers"]["live" if live else "file"]
        req = PlacementRequest((Bundle({"CPU": 1}),), client_region="site-1", latency_budget_ms=budget)
        try:  # no wait: the placer's snapshot holds this round's earlier decisions, and nothing frees up
            opts = placer.options_for(req, policy=budgeted if budget is not None else batch, timeout_s=0)
        except PlacementInfeasible:
            return None
    return ctx["Service"].options(**opts).remote(kind)


def await_placed(actors: list[Any], ctx: dict[str, Any], held: int = 0, settle_s: float = 1.5) -> list[str | None]:
    """The pool each submitted actor started in; ``None`` for one Ray holds pending for want of room.

    An actor is waiting for room (rather than still starting) when every CPU in use belongs to an
    actor that has started (these, or the ``held`` CPUs of replicas started before). That must hold
    for ``settle_s`` (Ray's view of free resources lags), or ``ctx["create_timeout_s"]`` pass; such
    an actor is killed and counts unplaced.
    """
    import ray

    refs = {a.node.remote(): i for i, a in enumerate(actors) if a is not None}
    pools: list[str | None] = [None] * len(actors)
    end, settled_since = time.monotonic() + ctx["create_timeout_s"], None
    total = ray.cluster_resources()["CPU"]
    while refs and time.monotonic() < end:
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0.2)
        for ref in ready:
            pools[refs.pop(ref)] = ctx["pool_of"][ray.get(ref)]
        started = held + sum(p is not None for p in pools)
        if refs and total - ray.available_resources().get("CPU", 0.0) <= started:
            settled_since = settled_since or time.monotonic()
            if time.monotonic() - settled_since >= settle_s:
                break
        else:
            settled_since = None
    for i in refs.values():
        ray.kill(actors[i])
        actors[i] = None
    return pools


def _price(pools: Any, pool: str | None) -> tuple[float, float]:
    """($/h, gCO2/h) of one CPU in ``pool`` by the pools file; nothing for an unplaced replica."""
    if pool is None:
        return 0.0, 0.0
    p = pools[pool]
    return p.cost_per_hour.get("CPU", 0.0), (p.carbon.at(0) if p.carbon else 0.0) * p.watts_per_cpu / 1e3


def run_variant(variant: str, load: int, requests: int, ctx: dict[str, Any], etl_jobs: int = 3) -> dict[str, Any]:
    """Place every app as ``variant`` does at ``load``, time ``requests`` calls per app (``etl_jobs``
    ETL jobs), free everything; one round's record."""
    import ray

    started = time.perf_counter()
    if variant in ENGINE_VARIANTS and ENGINE_VARIANTS[variant][2] and time.monotonic() - ctx["probed_at"] > 10:
        ctx["probe"].probe()  # the live variants decide on RTTs at most 10 s old (telemetry keeps 30 s)
        ctx["probed_at"] = time.monotonic()
    for placer in ctx["placers"].values():
        placer.invalidate()
    kinds = [(name, budget) for name, _, slo, budget in APPS for _ in range(load if slo is not None else 1)]
    actors: list[Any] = []
    pools: list[str | None] = []
    for name, budget in kinds:
        one = [submit(variant, name, budget, ctx)]
        if variant in RAY_VARIANTS:  # each replica started before the next is asked for: Ray's fallbacks see it
            pools += await_placed(one, ctx, held=sum(p is not None for p in pools))
        actors += one
    if variant not in RAY_VARIANTS:  # the engine's decisions already hold each other; start them together
        pools = await_placed(actors, ctx)
    placed: dict[str, list[tuple[Any, str | None]]] = {name: [] for name, *_ in APPS}
    for (name, _), actor, pool in zip(kinds, actors, pools):
        placed[name].append((actor, pool))
    lat = {}
    for name, ms, slo, _ in APPS:
        handles = [a for a, _ in placed[name]]
        ray.get(ctx["client"].drive.remote(handles, ms, len(handles)))  # warm-up, not counted
        lat[name] = ray.get(ctx["client"].drive.remote(handles, ms, requests if slo is not None else etl_jobs))
    app_cost = {}
    for name, reps in placed.items():
        prices = [_price(ctx["pools"], p) for _, p in reps]
        app_cost[name] = (sum(c for c, _ in prices), sum(g for _, g in prices))
    for reps in placed.values():
        for a, _ in reps:
            if a is not None:
                ray.kill(a)
    _wait_all_free()
    return {"seconds": time.perf_counter() - started, "latency_ms": lat,
            "pools": {k: [p for _, p in v] for k, v in placed.items()},
            "app_cost_per_hour": {k: c for k, (c, _) in app_cost.items()},
            "app_carbon_g_per_hour": {k: g for k, (_, g) in app_cost.items()},
            "cost_per_hour": sum(c for c, _ in app_cost.values()),
            "carbon_g_per_hour": sum(g for _, g in app_cost.values())}


def _wait_all_free(timeout: float = 20.0) -> None:
    import ray

    end = time.monotonic() + timeout
    while time.monotonic() < end and ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        time.sleep(0.05)


def _attainment(run: dict[str, Any]) -> float:
    """Share of one round's interactive requests inside their app's SLO."""
    values = [(v, slo) for name, _, slo, _ in INTERACTIVE for v in run["latency_ms"][name]]
    return sum(v <= slo for v, slo in values) / len(values)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled percentiles over every round, and per-round figures as mean with a 95 % interval."""
    apps: dict[str, Any] = {}
    for name, _, slo, _ in APPS:
        values = [v for r in runs for v in r["latency_ms"][name]]
        apps[name] = {"p50_ms": percentile(values, 0.5), "p99_ms": percentile(values, 0.99), "slo_ms": slo,
                      "p50_ms_rounds": mean_ci95([percentile(r["latency_ms"][name], 0.5) for r in runs]),
                      "p99_ms_rounds": mean_ci95([percentile(r["latency_ms"][name], 0.99) for r in runs]),
                      "cost_per_hour": mean_ci95([r["app_cost_per_hour"][name] for r in runs])["mean"],
                      "carbon_g_per_hour": mean_ci95([r["app_carbon_g_per_hour"][name] for r in runs])["mean"],
                      "pools": collections.Counter(p or "unplaced" for r in runs for p in r["pools"][name])}
        if slo is not None:
            apps[name]["slo_attainment"] = sum(v <= slo for v in values) / len(values)
    interactive = [v for r in runs for name, *_ in INTERACTIVE for v in r["latency_ms"][name]]
    per_round = [_attainment(r) for r in runs]
    p99_rounds = [percentile([v for name, *_ in INTERACTIVE for v in r["latency_ms"][name]], 0.99) for r in runs]
    return {"apps": apps, "slo_attainment": sum(per_round) / len(per_round), "slo_attainment_per_round": per_round,
            "slo_attainment_rounds": mean_ci95(per_round),
            "p99_ms": percentile(interactive, 0.99), "p99_ms_rounds": mean_ci95(p99_rounds),
            "cost_per_hour": mean_ci95([r["cost_per_hour"] for r in runs])["mean"],
            "cost_per_hour_rounds": mean_ci95([r["cost_per_hour"] for r in runs]),
            "carbon_g_per_hour": mean_ci95([r["carbon_g_per_hour"] for r in runs])["mean"],
            "carbon_g_per_hour_rounds": mean_ci95([r["carbon_g_per_hour"] for r in runs]),
            "etl_pools": apps["etl"]["pools"]}


def run_scenario(bed: Any, *, loads: list[int], rounds: int, requests: int, etl_jobs: int = 3,
                 variants: tuple[str, ...] = VARIANTS, real_apps: bool = False) -> dict[str, Any]:
    """Every variant at every load on a started testbed; the variants take turns to go first.

    ``real_apps`` runs the demo apps' own code in the replicas instead of the spinning stand-ins.
    """
    import ray
    from placement import load_pools
    from placement.ray_adapter import RayPlacer
    from placement.ray_probe import TelemetryProbe
    from placement.telemetry import Telemetry

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"variant {unknown[0]!r} does not exist; known variants: {', '.join(VARIANTS)}.")
    Service, AppService, Client = actors()
    telemetry = Telemetry(max_age_s=30)
    pools = load_pools(POOLS_FILE)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    ctx = {"Service": AppService if real_apps else Service, "pools": pools,
           "pool_of": {n["NodeID"]: n["Labels"]["yr.io/pool"] for n in nodes},
           "live_pools": {n["Labels"]["yr.io/pool"] for n in nodes},
           # One snapshot per round (invalidated at its start), holding the round's own decisions.
           "placers": {"live": RayPlacer(pools=pools, telemetry=telemetry, use_instance_registry=False,
                                         cache_ttl_s=120),
                       "file": RayPlacer(pools=pools, use_instance_registry=False, cache_ttl_s=120)},
           "client": Client.options(label_selector={"yr.io/pool": "edge-1"}).remote(),
           # The apps train or load their data at start; stand-ins start in a few seconds here.
           "create_timeout_s": 90 if real_apps else 30}
    with TelemetryProbe(telemetry, regions=["site-1"], pings=5) as probe:
        ctx["probe"] = probe
        measured = {p: percentile(s, 0.5) for (_, p), s in probe.probe().last.items()}
        ctx["probed_at"] = time.monotonic()
        out: dict[str, Any] = {"measured_rtt_ms": measured, "loads": {}}
        for load in loads:
            runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
            for r in range(rounds):
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                for v in order:
                    runs[v].append(run_variant(v, load, requests, ctx, etl_jobs))
            out["loads"][str(load)] = {v: summarise(runs[v]) for v in variants}
    ray.kill(ctx["client"])
    return out


def _ms(v: float) -> str:
    """A latency, or ``lost`` for a percentile that fell on requests no replica could serve."""
    return f"{v:.1f}" if math.isfinite(v) else "lost"


def _ci(x: dict[str, Any], scale: float = 1.0, fmt: str = ".1f") -> str:
    """``mean [low, high]`` of a :func:`mean_ci95` record (``lost`` when a round lost requests)."""
    if not math.isfinite(x["mean"]):
        return "lost"
    mean = f"{scale * x['mean']:{fmt}}"
    if x["ci95"] is None:
        return mean
    lo, hi = (scale * b for b in x["ci95"])
    return f"{mean} [{lo:{fmt}}, {hi:{fmt}}]"


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Standard rows per scenario and load: the engine's best variant (highest attainment, then
    cheapest) against Ray's best (its selectors with fallbacks), on SLO attainment and cost per hour."""
    out = []
    for scenario, result in results.items():
        for load, cells in result["loads"].items():
            def best(variants: list[str]) -> str:
                return max(variants, key=lambda v: (cells[v]["slo_attainment"], -cells[v]["cost_per_hour"]))
            ray_side = [v for v in cells if v in RAY_VARIANTS]
            engine = [v for v in cells if v not in RAY_VARIANTS]
            if not ray_side or not engine:
                continue
            ours, ray_best = best(engine), best(ray_side)
            ray_cell = cells[ray_best]
            what = f"{scenario} load {load}: {ours} vs {ray_best}"
            if ray_cell["slo_attainment"] > 0:
                out.append(row(f"SLO attainment, {what}", "%", 100 * cells[ours]["slo_attainment"],
                               100 * ray_cell["slo_attainment"], 1.0, "higher"))
            if ray_cell["cost_per_hour"] > 0:
                out.append(row(f"cost, {what}", "$/h", cells[ours]["cost_per_hour"], ray_cell["cost_per_hour"],
                               1.0, "lower"))
    return out


def markdown(results: dict[str, Any]) -> str:
    """The docs' table: one row per scenario, load and variant."""
    names = [a[0] for a in APPS]
    lines = ["| scenario | load | variant | SLO % [95 % CI] | p99 ms [95 % CI] | $/h | gCO2/h | "
             + " | ".join(f"{a} p50/p99 ms" for a in names) + " | $/h per app (" + ", ".join(names) + ")"
             + " | classifier pools |",
             "|" + "---|" * (9 + len(names))]
    for scenario, result in results.items():
        for load, by_variant in result["loads"].items():
            for v, s in by_variant.items():
                apps = " | ".join(f"{_ms(x['p50_ms'])}/{_ms(x['p99_ms'])}" for x in s["apps"].values())
                per_app = ", ".join(f"{x['cost_per_hour']:.3f}" for x in s["apps"].values())
                where = ", ".join(f"{p}×{c}" for p, c in sorted(s["apps"]["classifier"]["pools"].items()))
                lines.append(f"| {scenario} | {load} | {v} | {_ci(s['slo_attainment_rounds'], 100)} | "
                             f"{_ci(s['p99_ms_rounds'])} | {s['cost_per_hour']:.3f} | {s['carbon_g_per_hour']:.1f} | "
                             f"{apps} | {per_app} | {where} |")
    return "\n".join(lines)


def table(scenario: str, result: dict[str, Any]) -> str:
    lines = [f"\n{scenario}: measured RTT from site-1 (ms): "
             + ", ".join(f"{p} {v:.1f}" for p, v in sorted(result["measured_rtt_ms"].items()))]
    lines.append(f"{'load':<6}{'variant':<16}{'SLO %':>7}{'p99 ms':>8}{'$/h':>8}{'gCO2/h':>8}  "
                 "per app p50/p99 ms (SLO %) [pools]")
    for load, by_variant in result["loads"].items():
        for v, s in by_variant.items():
            apps = "; ".join(f"{a} {x['p50_ms']:.1f}/{x['p99_ms']:.1f}"
                             + (f" ({100 * x['slo_attainment']:.0f})" if "slo_attainment" in x else "")
                             + f" [{','.join(f'{p}x{c}' for p, c in sorted(x['pools'].items()))}]"
                             for a, x in s["apps"].items())
            lines.append(f"{load:<6}{v:<16}{100 * s['slo_attainment']:>7.1f}{s['p99_ms']:>8.1f}"
                         f"{s['cost_per_hour']:>8.3f}{s['carbon_g_per_hour']:>8.1f}  {apps}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo's workloads on the live testbed, engine vs Ray.")
    parser.add_argument("--scenarios", default="declared,drift", help="declared,drift")
    parser.add_argument("--loads", default="1,2,3", help="replicas per interactive app (1,2,3)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per load (3)")
    parser.add_argument("--requests", type=int, default=12, help="requests per interactive app per round (12)")
    parser.add_argument("--etl-jobs", type=int, default=3, help="ETL jobs per round (3)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"({','.join(VARIANTS)})")
    parser.add_argument("--apps", choices=("stand-in", "real"), default="stand-in",
                        help="replicas spin for the apps' nominal times (stand-in), or run the demo apps' code "
                             "(real; writes continuum_real_apps.json)")
    parser.add_argument("--markdown", action="store_true", help="also print the docs' table")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: {unknown[0]!r} does not exist; known: {', '.join(SCENARIOS)}.")
    variants = tuple(v for v in args.variants.split(",") if v)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: {unknown[0]!r} does not exist; known: {', '.join(VARIANTS)}.")
    try:
        loads = [int(x) for x in args.loads.split(",")]
    except ValueError:
        parser.error(f"--loads {args.loads!r} is not a comma-separated list of whole numbers; give e.g. 1,2,3.")
    for flag, value in (("--loads", min(loads)), ("--rounds", args.rounds), ("--requests", args.requests),
                        ("--etl-jobs", args.etl_jobs)):
        if value < 1:
            parser.error(f"{flag} {value} must be at least 1.")
    from yuanrong.testbed import Testbed, TestbedSpec

    results = {}
    for scenario in scenarios:
        started = time.perf_counter()
        with Testbed(TestbedSpec(**SCENARIOS[scenario])) as bed:
            results[scenario] = run_scenario(bed, loads=loads, rounds=args.rounds, requests=args.requests,
                                             etl_jobs=args.etl_jobs, variants=variants,
                                             real_apps=args.apps == "real")
        results[scenario]["seconds"] = time.perf_counter() - started
        results[scenario]["emulated_rtt_ms"] = TestbedSpec(**SCENARIOS[scenario]).configured
        print(table(scenario, results[scenario]), flush=True)
    print_table(rows(results), title="the engine's best variant against Ray's selectors with fallbacks")
    if args.markdown:
        print("\n" + markdown(results))
    if not args.no_write:
        name = "continuum" if args.apps == "stand-in" else "continuum_real_apps"
        path = write_json(name, {"replicas": args.apps,
                                 "apps": [dict(zip(("name", "service_ms", "slo_ms", "budget_ms"), a)) for a in APPS],
                                 "variants": {v: ({"budgeted": ENGINE_VARIANTS[v][0], "etl": ENGINE_VARIANTS[v][1],
                                                   "telemetry": ENGINE_VARIANTS[v][2]} if v in ENGINE_VARIANTS
                                                  else {"ray": "label_selector + fallback_strategy"})
                                              for v in variants},
                                 "rounds": args.rounds, "requests_per_app_per_round": args.requests,
                                 "etl_jobs_per_round": args.etl_jobs,
                                 "command": "python bench/continuum.py " + " ".join(argv or sys.argv[1:]),
                                 "results": results, "rows": rows(results)})
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
