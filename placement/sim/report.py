"""Renders simulator results: a Markdown table, a JSON document and PNG plots.

Example:
    >>> print(markdown_table([], baseline="ray_label_pinning"))  # doctest: +ELLIPSIS
    | policy | ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from placement.sim.runner import PolicyResult

BASELINE = "ray_label_pinning"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "n/a"


def markdown_table(results: Sequence[PolicyResult], *, baseline: str = BASELINE) -> str:
    """One row per policy; ratios are against ``baseline`` (Ray's label pinning by default)."""
    base = next((r for r in results if r.policy == baseline), None)
    head = ("| policy | SLO met | SLO vs Ray | rejected | cost $ | $ / CPU-h | carbon kg | gCO2 / CPU-h "
            "| util edge / fog / cloud | offloads | decide p50 / p99 ms |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        util = r.utilisation["tier"]
        per_cpu_cost = r.cost_usd / r.cpu_hours if r.cpu_hours else 0.0
        per_cpu_carbon = r.carbon_kg * 1000 / r.cpu_hours if r.cpu_hours else 0.0
        lines.append(
            f"| {r.policy} | {r.slo_attainment:.1%} | "
            f"{_ratio(r.slo_attainment, base.slo_attainment) if base else 'n/a'} | {r.rejected} | "
            f"{r.cost_usd:,.0f} | {per_cpu_cost:.4f} | {r.carbon_kg:,.0f} | {per_cpu_carbon:.1f} | "
            f"{util.get('edge', 0):.0%} / {util.get('fog', 0):.0%} / {util.get('cloud', 0):.0%} | {r.offloads} | "
            f"{r.decision_ms_p50:.2f} / {r.decision_ms_p99:.2f} |"
        )
    return "\n".join(lines)


def write_json(path: Path, results: Sequence[PolicyResult], config: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": dict(config), "results": [r.as_dict() for r in results]}, indent=2))


def write_plots(directory: Path, results: Sequence[PolicyResult]) -> list[Path]:
    """Two PNGs: a 2×2 summary (SLO, cost and carbon per CPU-hour, tier utilisation, decision time)
    and per-pool utilisation. Returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    names = [r.policy for r in results]
    x = np.arange(len(names))
    colors = ["#888888" if n.startswith("ray_") else "#1f77b4" for n in names]
    fig, ax = plt.subplots(2, 2, figsize=(13, 8))
    ax[0, 0].bar(x, [r.slo_attainment * 100 for r in results], color=colors)
    ax[0, 0].set_ylabel("latency SLO met (%)")
    ax[0, 0].set_title("Latency-SLO attainment (grey: Ray-like baselines)")
    cost = [r.cost_usd / r.cpu_hours if r.cpu_hours else 0 for r in results]
    carbon = [r.carbon_kg * 1000 / r.cpu_hours if r.cpu_hours else 0 for r in results]
    ax[0, 1].bar(x - 0.2, np.array(cost) / max(cost or [1]), 0.4, label="cost / CPU-h")
    ax[0, 1].bar(x + 0.2, np.array(carbon) / max(carbon or [1]), 0.4, label="gCO2 / CPU-h")
    ax[0, 1].set_title("Cost and carbon per CPU-hour (relative to the maximum)")
    ax[0, 1].legend()
    tiers = sorted({t for r in results for t in r.utilisation["tier"]})
    for k, tier in enumerate(tiers):
        ax[1, 0].bar(x + (k - (len(tiers) - 1) / 2) * 0.25, [r.utilisation["tier"].get(tier, 0) * 100 for r in results],
                     0.25, label=tier)
    ax[1, 0].set_ylabel("time-averaged CPU utilisation (%)")
    ax[1, 0].set_title("Utilisation per tier")
    ax[1, 0].legend()
    ax[1, 1].bar(x - 0.2, [r.decision_ms_p50 for r in results], 0.4, label="p50")
    ax[1, 1].bar(x + 0.2, [r.decision_ms_p99 for r in results], 0.4, label="p99")
    ax[1, 1].set_ylabel("ms")
    ax[1, 1].set_title("Decision time")
    ax[1, 1].legend()
    for a in ax.flat:
        a.set_xticks(x)
        a.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    fig.tight_layout()
    summary = directory / "placement_sim.png"
    fig.savefig(summary, dpi=90)
    plt.close(fig)
    pools = list(results[0].utilisation["pool"]) if results else []
    grid = np.array([[r.utilisation["pool"][p] * 100 for p in pools] for r in results])
    fig, ax2 = plt.subplots(figsize=(max(8, len(pools) * 0.35), 0.5 * len(results) + 2))
    im = ax2.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=100)
    ax2.set_yticks(range(len(names)))
    ax2.set_yticklabels(names)
    ax2.set_xticks(range(len(pools)))
    ax2.set_xticklabels(pools, rotation=90, fontsize=7)
    ax2.set_title("Time-averaged CPU utilisation per pool (%)")
    fig.colorbar(im, ax=ax2)
    fig.tight_layout()
    per_pool = directory / "placement_sim_pools.png"
    fig.savefig(per_pool, dpi=90)
    plt.close(fig)
    return [summary, per_pool]
