"""Re-placement after a node dies, on a separate small cluster driven from a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.subprocess
@pytest.mark.slow
def test_pool_pinned_instance_is_replaced_in_the_runner_up_pool_when_its_node_dies(tmp_path):
    pools_file = tmp_path / "pools.yaml"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "YR_ADDRESS")}
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("replacement_driver.py")), str(pools_file)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # latency_first from site-1 within 20 ms: edge-1 (2 ms) first, edge-2 (15 ms) as the fallback.
    assert out["options"] == {"label_selector": {"yr.io/pool": "edge-1"},
                              "fallback_strategy": [{"label_selector": {"yr.io/pool": "edge-2"}}]}
    assert out["first_node"] == out["edge1"]
    # Ray restarted the actor in the policy's runner-up pool; likewise the yuanrong instance.
    assert out["after_node"] == out["edge2"]
    assert out["yr_first_node"] == out["edge1"] and out["yr_after_node"] == out["edge2"]
    # A fresh decision for 1 CPU sees edge-1's node as dead and edge-2 taken by the restarted instances; the
    # cloud is outside the 20 ms budget, and the explanation says all three.
    assert out["edge1_alive_in_snapshot"] in ([False], [])
    assert out["redecision"] == []
    text = out["redecision_explain"]
    assert "latency_budget excluded cloud" in text
    assert "capacity excluded edge-2" in text
    assert "alive excluded edge-1" in text
