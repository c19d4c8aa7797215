"""The side-by-side demo end to end, as a separate driver with its own cluster."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def test_demo_runs_all_three_workloads_and_stops_cleanly(tmp_path):
    png = tmp_path / "demo.png"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "YR_ADDRESS")}
    proc = subprocess.run([sys.executable, "-m", "apps.demo", "--rows", "50000", "--requests", "20",
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
