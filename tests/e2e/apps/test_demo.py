"""``yr demo`` end to end (the README's first command), as a separate driver with its own cluster."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def test_demo_runs_all_three_workloads_and_stops_cleanly(tmp_path):
    png = tmp_path / "demo.png"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "YR_ADDRESS")}
    proc = subprocess.run([sys.executable, "-m", "yuanrong.cli", "demo", "--rows", "50000", "--requests", "20",
                           "--png", str(png)], capture_output=True, text=True, timeout=420, env=env, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr[-4000:]}"
    assert "ETL (Ray Data) blocks by pool: {'cloud':" in out
    placement = {line.split()[0]: line for line in out.splitlines() if line.startswith("  edge-") or
                 line.startswith("  cloud ")}
    assert "features/FeatureService" in placement["edge-1"]
    assert "digits/DigitClassifier" in placement["edge-2"]
    assert "generate/TokenModel x2" in placement["cloud"]
    for service in ("features (HTTP)", "features (gRPC)", "digits (HTTP, batched)", "gateway (HTTP)",
                    "generate (HTTP stream)"):
        assert service in out
    assert "summary:" in out and png.stat().st_size > 10_000
    assert out.index("stopping Serve") > out.index("summary:")
    # Every process wrote its spans under the default directory; one request's waterfall is printed.
    traces = tmp_path / "yuanrong-demo-traces"
    assert len(list(traces.glob("yr-trace-*.log"))) >= 3
    rows = _waterfall(out)
    where = {name: place for name, place in rows}
    assert where["yr.endpoint FeatureService"].startswith("edge-1@"), rows
    assert where["yr.run UserState.bump"].startswith("cloud@"), rows
    # The lookup read the feature table where the replica runs (an open the read cache answered).
    assert where["datashare.open"].startswith("edge-1@"), rows
    # The client's span (the demo's driver, on the cloud head) is the root; the edge replica's is its child.
    assert rows[0][0].startswith("client GET /features/users/") and rows[0][1].startswith("cloud@"), rows
    assert rows[1][0] == "yr.endpoint FeatureService", rows
    assert (tmp_path / "demo-trace.png").stat().st_size > 1_000


def _waterfall(out):
    """(span name, pool@node) of each row of the waterfall the demo printed after ``$ yr trace``."""
    lines = out[out.index("$ yr trace"):out.index("summary:")].splitlines()[1:]
    rows = [(line.split(" |")[0].strip(), line.split()[-1]) for line in lines if " |" in line]
    assert rows, out
    return rows


def test_basic_demo_fans_calls_out_across_the_pools(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "YR_ADDRESS")}
    proc = subprocess.run([sys.executable, "-m", "yuanrong.cli", "demo", "--basic"], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr[-4000:]}"
    ran_on = [line.split()[1] for line in out.splitlines() if line.startswith("read_sensor(")]
    assert sorted(ran_on) == ["edge-1"] * 3 + ["edge-2"] * 3
    assert any(line.startswith("Aggregator.report()") and " cloud " in line for line in out.splitlines())
    assert "edge-9" in out and "PlacementError" not in proc.stderr
