"""`yr testbed` run for real at its smallest: three raylets start, the RTTs are measured, every node stops.

Its own cluster on free ports (the testbed's); the session's shared test cluster is untouched. About
ten seconds on two cores (2026-11-30).
"""

from __future__ import annotations

import json

import pytest

from tests.yr_cli import cli_env, yr

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def test_yr_testbed_measures_the_configured_rtts_and_stops_every_node(tmp_path):
    out = tmp_path / "rtts.json"
    run = yr("testbed", "--cloud-ms", "30", "--edge2-ms", "10", "--pings", "5", "--json", str(out),
             env=cli_env(tmp_path), timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[-1] == "testbed: every node stopped"
    rows = {r["pool"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"edge-1", "edge-2", "cloud"}
    for pool, configured in (("edge-2", 10.0), ("cloud", 30.0)):
        assert rows[pool]["configured_ms"] == configured
        assert abs(rows[pool]["emulated_ms"] - configured) <= 3.0, rows[pool]
