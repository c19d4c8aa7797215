"""``python -m placement.sim``: what invocations experience under each policy and each fair Ray baseline.

Example:
    python -m placement.sim                          # quick: 5 loads x 5 seeds, 600 requests a run
    python -m placement.sim --full                   # the documented sweep, both network scenarios
    python -m placement.sim --loads 0.8 --seeds 1,2 --requests 300 --out /tmp/sim.json

The long-held capacity view of the policies is ``python -m placement.sim.holdings``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from placement.sim.sweep import BASELINES, ENGINE, LOADS, SEEDS, default_workers, markdown, sweep


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m placement.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="the documented sweep: 4,000 requests a run, scenarios declared and drift")
    parser.add_argument("--loads", type=_floats, default=LOADS, help="comma-separated loads (default 0.2..1.0)")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated seeds (default 1..5)")
    parser.add_argument("--requests", type=int, default=None, help="invocations per run (default 600; --full 4000)")
    parser.add_argument("--scenarios", default=None,
                        help="declared (the network is what the pools file says), drift, or both comma-separated")
    parser.add_argument("--policies", default=",".join((*ENGINE, *BASELINES)),
                        help="comma-separated engine policies and baselines (default all)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes (default: CPUs, max 4)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default bench/results/placement_sim.json with --full, else "
                             "placement_sim_quick.json in the temp directory)")
    args = parser.parse_args(argv)
    policies = tuple(p.strip() for p in args.policies.split(",") if p.strip())
    unknown = [p for p in policies if p not in ENGINE and p not in BASELINES]
    if unknown:
        parser.error(f"--policies: {unknown[0]!r} does not exist; known: {', '.join((*ENGINE, *BASELINES))}.")
    seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    requests = args.requests or (4000 if args.full else 600)
    scenarios = tuple((args.scenarios or ("declared,drift" if args.full else "declared")).split(","))
    bad = [s for s in scenarios if s not in ("declared", "drift")]
    if bad:
        parser.error(f"--scenarios: {bad[0]!r} is not a scenario; give declared, drift or both.")
    out = args.out or (Path("bench/results/placement_sim.json") if args.full
                       else Path(os.environ.get("TMPDIR", "/tmp")) / "placement_sim_quick.json")
    t0 = time.perf_counter()
    doc = sweep(loads=args.loads, seeds=seeds, requests=requests, scenarios=scenarios, policies=policies,
                workers=args.workers)
    doc["run"] = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "command": "python -m placement.sim " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "wall_s": round(time.perf_counter() - t0, 1), "cpus": os.cpu_count(),
                  "python": platform.python_version()}
    print(markdown(doc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {out} in {doc['run']['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
