"""End to end on the live testbed: the demo's workloads placed by the engine and by Ray's best native options.

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
etl                     —            none      none        Ray Data ETL (batch, by price)
======================  ===========  ========  ==========  ================================

*Load* is replicas per interactive app (1: 4 CPUs of 8 asked for; 2: 7 of 8). Variants:
``per_kind`` (the engine: ``default`` for budgeted apps, ``cost_first`` for the ETL, with live
telemetry from :class:`placement.ray_probe.TelemetryProbe`), ``per_kind@file`` (the same without
telemetry: the pools file's figures), and ``ray_per_kind`` (real Ray: ``label_selector`` on the pools
inside the budget by the pools file, nearest first, the rest as ordered ``fallback_strategy``; the
ETL by price) — what ``placement/sim/baselines.py`` models, run on Ray itself. Scenarios:
``declared`` (the emulated RTTs are the pools file's) and ``drift`` (``edge-2``'s link is 70 ms,
the file still says 15). Variants alternate order each round.

Writes ``bench/results/continuum.json``.

``--apps real`` runs the demo apps' own code in the replicas (see ``AppService``) and writes
``bench/results/continuum_real_apps.json``.

Usage:
    python bench/continuum.py                       # both scenarios, loads 1 and 2, 3 rounds (~4 min)
    python bench/continuum.py --rounds 1 --requests 10 --scenarios drift --loads 2   # a quick look
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._report import percentile, write_json  # noqa: E402

POOLS_FILE = _HERE.parent / "cluster_configs" / "pools.yaml"
APPS = (  # name, service ms, SLO ms, budget ms (None: batch)
    ("features", 2.0, 30.0, 25.0),
    ("classifier", 8.0, 60.0, 50.0),
    ("generator", 15.0, 150.0, 100.0),
)
SCENARIOS = {"declared": {"cloud_ms": 38.0, "edge2_ms": 15.0}, "drift": {"cloud_ms": 38.0, "edge2_ms": 70.0}}
VARIANTS = ("per_kind", "per_kind@file", "ray_per_kind")


def _actors():
    import ray

    @ray.remote(num_cpus=1)
    class Service:
        """A stand-in replica: spins for the app's nominal service time."""

        def __init__(self, app: str = "") -> None:
            self.app = app

        def work(self, ms: float) -> None:
            end = time.perf_counter() + ms / 1e3
            while time.perf_counter() < end:
                pass

        def node(self) -> str:
            return ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=1)
    class AppService:
        """A replica running the demo app's own code (``apps/``); a request's time is what that code takes.

        features: the ETL's feature table (``apps.etl.pipeline`` on 20,000 seeded events) and one
        lookup as ``apps.features.service.FeatureService`` does it (``pc.index`` on ``user_id``, one
        row out); classifier: ``apps.inference.models.train_digits`` at start, one held-out image
        classified per request; generator: ``apps.inference.models.BigramLM``, 3 tokens with the
        app's per-token decode time (``TokenModel``, 5 ms a token); etl: placed, never called.
        """

        def __init__(self, app: str) -> None:
            import random
            import tempfile

            self.app, self._rng = app, random.Random(7)
            if app == "features":
                from apps.etl.pipeline import expected_features, generate_events

                with tempfile.TemporaryDirectory() as d:
                    self._table = expected_features(generate_events(d, rows=20_000, users=2_000, files=1))
                self._users = self._table["user_id"].to_pylist()
            elif app == "classifier":
                from apps.inference.models import train_digits

                self._model = train_digits()
            elif app == "generator":
                from apps.inference.models import BigramLM

                self._lm = BigramLM()

        def work(self, ms: float) -> None:
            if self.app == "features":
                import pyarrow as pa
                import pyarrow.compute as pc

                i = pc.index(self._table["user_id"], pa.scalar(self._rng.choice(self._users), pa.int64())).as_py()
                self._table.slice(i, 1).to_pylist()
            elif self.app == "classifier":
                x = self._model.test_x
                self._model.predict(x[self._rng.randrange(len(x))].reshape(1, -1))
            elif self.app == "generator":
                for _ in self._lm.tokens("the zen of", 3, seed=self._rng.randrange(1000)):
                    time.sleep(0.005)

        def node(self) -> str:
            return ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=0)
    class Client:
        def drive(self, replicas: list, ms: float, n: int) -> list[float]:
            out = []
            for i in range(n):
                r = replicas[i % len(replicas)]
                if r is None:  # a replica nobody could place: its share of requests is lost
                    out.append(float("inf"))
                    continue
                t0 = time.perf_counter()
                ray.get(r.work.remote(ms))
                out.append((time.perf_counter() - t0) * 1e3)
            return out

    return Service, AppService, Client


def _ray_selectors(pools: Any, budget: float | None) -> list[str]:
    """Pools a skilled Ray user lists from the pools file: inside the budget, nearest first (or cheapest)."""
    names = [p for p in pools if pools[p].latency_to_regions_ms.get("site-1") is not None]
    if budget is None:
        return sorted(names, key=lambda p: (pools[p].cost_per_hour.get("CPU", 0.0), p))
    inside = [p for p in names if pools[p].latency_to_regions_ms["site-1"] <= budget]
    return sorted(inside, key=lambda p: (pools[p].latency_to_regions_ms["site-1"], p))


def place(variant: str, kind: str, budget: float | None, ctx: dict[str, Any]) -> tuple[Any, str | None]:
    """One 1-CPU replica placed as ``variant`` does; returns (actor or None, pool)."""
    import ray
    from placement import Bundle, PlacementInfeasible, PlacementRequest

    Service = ctx["Service"]
    if variant == "ray_per_kind":
        order = [p for p in _ray_selectors(ctx["pools"], budget) if p in ctx["live_pools"]]
        if not order:
            return None, None
        opts: dict[str, Any] = {"label_selector": {"yr.io/pool": order[0]}}
        if order[1:]:
            opts["fallback_strategy"] = [{"label_selector": {"yr.io/pool": p}} for p in order[1:]]
    else:
        placer = ctx["placers"][variant]
        req = PlacementRequest((Bundle({"CPU": 1}),), client_region="site-1", latency_budget_ms=budget)
        try:
            opts = placer.options_for(req, policy="default" if budget is not None else "cost_first", timeout_s=0.5)
        except PlacementInfeasible:
            return None, None
    actor = Service.options(**opts).remote(kind)
    try:
        node = ray.get(actor.node.remote(), timeout=ctx.get("create_timeout_s", 10))
    except ray.exceptions.GetTimeoutError:  # Ray keeps an unplaceable actor pending: count it unplaced
        ray.kill(actor)
        return None, None
    return actor, ctx["pool_of"][node]


def run_variant(variant: str, load: int, requests: int, ctx: dict[str, Any]) -> dict[str, Any]:
    import ray

    if variant == "per_kind":
        ctx["probe"].probe()
    for placer in ctx["placers"].values():
        placer.invalidate()
    placed: dict[str, list[tuple[Any, str | None]]] = {}
    for name, _, _, budget in APPS:
        placed[name] = [place(variant, name, budget, ctx) for _ in range(load)]
    placed["etl"] = [place(variant, "etl", None, ctx)]
    lat = {}
    for name, ms, _, _ in APPS:
        handles = [a for a, _ in placed[name]]
        ray.get(ctx["client"].drive.remote(handles, ms, 2 * len(handles)))  # warm-up, not counted
        lat[name] = ray.get(ctx["client"].drive.remote(handles, ms, requests))
    pools = ctx["pools"]
    cost = carbon = 0.0
    for reps in placed.values():
        for _, pool in reps:
            if pool is not None:
                cost += pools[pool].cost_per_hour.get("CPU", 0.0)
                carbon += (pools[pool].carbon.at(0) if pools[pool].carbon else 0.0) * pools[pool].watts_per_cpu / 1e3
    for reps in placed.values():
        for a, _ in reps:
            if a is not None:
                ray.kill(a)
    _wait_all_free()
    return {"latency_ms": lat, "pools": {k: [p for _, p in v] for k, v in placed.items()},
            "cost_per_hour": cost, "carbon_g_per_hour": carbon}


def _wait_all_free(timeout: float = 20.0) -> None:
    import ray

    end = time.monotonic() + timeout
    while time.monotonic() < end and ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        time.sleep(0.05)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    apps: dict[str, Any] = {}
    every: list[float] = []
    met = total = 0
    for name, _, slo, _ in APPS:
        values = [v for r in runs for v in r["latency_ms"][name]]
        ok = sum(v <= slo for v in values)
        met, total = met + ok, total + len(values)
        every += values
        apps[name] = {"p50_ms": percentile(values, 0.5), "p99_ms": percentile(values, 0.99),
                      "slo_ms": slo, "slo_attainment": ok / len(values),
                      "pools": collections.Counter(p or "unplaced" for r in runs for p in r["pools"][name])}
    per_round = [sum(v <= slo for name, _, slo, _ in APPS for v in r["latency_ms"][name])
                 / sum(len(r["latency_ms"][name]) for name, *_ in APPS) for r in runs]
    return {"apps": apps, "slo_attainment": met / total, "slo_attainment_per_round": per_round,
            "p99_ms": percentile(every, 0.99),
            "cost_per_hour": sum(r["cost_per_hour"] for r in runs) / len(runs),
            "carbon_g_per_hour": sum(r["carbon_g_per_hour"] for r in runs) / len(runs),
            "etl_pools": collections.Counter(p or "unplaced" for r in runs for p in r["pools"]["etl"])}


def run_scenario(bed: Any, *, loads: list[int], rounds: int, requests: int,
                 variants: tuple[str, ...] = VARIANTS, real_apps: bool = False) -> dict[str, Any]:
    """Every variant at every load on a started testbed; alternating order per round.

    ``real_apps`` runs the demo apps' own code in the replicas instead of the spinning stand-ins.
    """
    import ray
    from placement import load_pools
    from placement.ray_adapter import RayPlacer
    from placement.ray_probe import TelemetryProbe
    from placement.telemetry import Telemetry

    Service, AppService, Client = _actors()
    if real_apps:
        Service = AppService
    telemetry = Telemetry(max_age_s=30)
    pools = load_pools(POOLS_FILE)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    ctx = {"Service": Service, "pools": pools,
           "pool_of": {n["NodeID"]: n["Labels"]["yr.io/pool"] for n in nodes},
           "live_pools": {n["Labels"]["yr.io/pool"] for n in nodes},
           "placers": {"per_kind": RayPlacer(pools=pools, telemetry=telemetry, use_instance_registry=False),
                       "per_kind@file": RayPlacer(pools=pools, use_instance_registry=False)},
           "client": Client.options(label_selector={"yr.io/pool": "edge-1"}).remote(),
           "create_timeout_s": 60 if real_apps else 10}  # the apps train or load their data at start
    with TelemetryProbe(telemetry, regions=["site-1"], pings=5) as probe:
        ctx["probe"] = probe
        measured = {p: percentile(s, 0.5) for (_, p), s in probe.probe().last.items()}
        out: dict[str, Any] = {"measured_rtt_ms": measured, "loads": {}}
        for load in loads:
            runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
            for r in range(rounds):
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                for v in order:
                    runs[v].append(run_variant(v, load, requests, ctx))
            out["loads"][str(load)] = {v: summarise(runs[v]) for v in variants}
    ray.kill(ctx["client"])
    return out


def table(scenario: str, result: dict[str, Any]) -> str:
    lines = [f"\n{scenario}: measured RTT from site-1 (ms): "
             + ", ".join(f"{p} {v:.1f}" for p, v in sorted(result["measured_rtt_ms"].items()))]
    lines.append(f"{'load':<6}{'variant':<16}{'SLO %':>7}{'p99 ms':>8}{'$/h':>8}{'gCO2/h':>8}  "
                 "per app p50/p99 ms (SLO %) [pools]")
    for load, by_variant in result["loads"].items():
        for v, s in by_variant.items():
            apps = "; ".join(f"{a} {x['p50_ms']:.1f}/{x['p99_ms']:.1f} ({100 * x['slo_attainment']:.0f}) "
                             f"[{','.join(f'{p}x{c}' for p, c in sorted(x['pools'].items()))}]"
                             for a, x in s["apps"].items())
            lines.append(f"{load:<6}{v:<16}{100 * s['slo_attainment']:>7.1f}{s['p99_ms']:>8.1f}"
                         f"{s['cost_per_hour']:>8.3f}{s['carbon_g_per_hour']:>8.1f}  {apps}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo's workloads on the live testbed, engine vs Ray.")
    parser.add_argument("--scenarios", default="declared,drift", help="declared,drift")
    parser.add_argument("--loads", default="1,2", help="replicas per interactive app (1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per load (3)")
    parser.add_argument("--requests", type=int, default=40, help="requests per app per round (40)")
    parser.add_argument("--apps", choices=("stand-in", "real"), default="stand-in",
                        help="replicas spin for the apps' nominal times (stand-in), or run the demo apps' code "
                             "(real; writes continuum_real_apps.json)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: {unknown[0]!r} does not exist; known: {', '.join(SCENARIOS)}.")
    loads = [int(x) for x in args.loads.split(",")]
    from yuanrong.testbed import Testbed, TestbedSpec

    results = {}
    for scenario in scenarios:
        started = time.perf_counter()
        with Testbed(TestbedSpec(**SCENARIOS[scenario])) as bed:
            results[scenario] = run_scenario(bed, loads=loads, rounds=args.rounds, requests=args.requests,
                                             real_apps=args.apps == "real")
        results[scenario]["seconds"] = time.perf_counter() - started
        results[scenario]["emulated_rtt_ms"] = TestbedSpec(**SCENARIOS[scenario]).configured
        print(table(scenario, results[scenario]), flush=True)
    if not args.no_write:
        name = "continuum" if args.apps == "stand-in" else "continuum_real_apps"
        path = write_json(name, {"replicas": args.apps,
                                 "apps": [dict(zip(("name", "service_ms", "slo_ms", "budget_ms"), a)) for a in APPS],
                                 "rounds": args.rounds, "requests_per_app_per_round": args.requests,
                                 "command": "python bench/continuum.py " + " ".join(argv or sys.argv[1:]),
                                 "results": results})
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
