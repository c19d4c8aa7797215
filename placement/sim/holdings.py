"""``python -m placement.sim.holdings``: long-held placements of the policies on a large continuum.

This is the capacity view: 2,500 groups held for hours on 3,000 nodes, scored by the constraints
they were placed under (cost, carbon, utilisation, offloads, decision time). Its "SLO met" only
says whether every bundle landed inside its budget, which the engine guarantees by construction;
what requests actually experience is measured by ``python -m placement.sim`` (outcomes).

Example:
    python -m placement.sim.holdings                 # default: 3,000 nodes, 2,500 requests, all policies
    python -m placement.sim.holdings --nodes 200 --requests 100 --out /tmp/sim
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from placement.policies import POLICIES
from placement.sim.continuum import build_continuum
from placement.sim.report import markdown_table, write_json, write_plots
from placement.sim.runner import simulate
from placement.sim.workload import build_trace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m placement.sim.holdings", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3000, help="approximate number of nodes (default 3000)")
    parser.add_argument("--sites", type=int, default=24, help="edge sites = edge pools = client regions")
    parser.add_argument("--requests", type=int, default=2500, help="requests in the trace (default 2500)")
    parser.add_argument("--hours", type=float, default=24.0, help="trace length in hours (default 24)")
    parser.add_argument("--mean-duration-h", type=float, default=16.0, help="mean holding time (default 16 h)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help=f"comma-separated policy names (default all: {', '.join(POLICIES)})")
    parser.add_argument("--out", type=Path, default=Path("docs/placement"),
                        help="directory for placement_sim.json and the PNG plots (default docs/placement)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args(argv)
    names = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        parser.error(f"--policies: {unknown[0]!r} does not exist; known policies: {', '.join(POLICIES)}.")
    t0 = time.perf_counter()
    continuum = build_continuum(nodes=args.nodes, sites=args.sites, seed=args.seed)
    trace = build_trace(regions=continuum.regions, requests=args.requests, horizon_h=args.hours,
                        mean_duration_h=args.mean_duration_h, seed=args.seed)
    results = []
    for name in names:
        results.append(simulate(name, continuum, trace))
        print(f"  {name}: {results[-1].wall_s:.1f} s", file=sys.stderr)
    config = {"nodes": len(continuum.snapshot), "pools": len(continuum.pools), "sites": args.sites,
              "requests": args.requests, "hours": args.hours, "mean_duration_h": args.mean_duration_h,
              "seed": args.seed, "policies": names}
    print(f"{len(continuum.snapshot)} nodes in {len(continuum.pools)} pools, {len(trace)} requests "
          f"over {args.hours:g} h (seed {args.seed})\n")
    print(markdown_table(results))
    write_json(args.out / "placement_sim.json", results, config)
    written = [args.out / "placement_sim.json"]
    if not args.no_plots:
        written += write_plots(args.out, results)
    print(f"\nwrote {', '.join(map(str, written))} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
