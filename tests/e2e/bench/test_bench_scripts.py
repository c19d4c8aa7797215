"""The benchmark scripts start as documented (``python bench/NAME.py``), whatever their names shadow."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[3] / "bench"


@pytest.mark.subprocess
@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH.glob("*.py") if not p.name.startswith("_")))
def test_bench_script_starts_and_explains_itself(name, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"usage: {name}.py")


@pytest.mark.subprocess
@pytest.mark.parametrize("ratio", ["1.5", "-0.1"])
def test_invoke_refuses_a_sampling_ratio_outside_0_to_1_before_starting_a_cluster(ratio, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "invoke.py"), "--only-tracing", "--sampling-ratio", ratio],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"--sampling-ratio {float(ratio):g}: give a share of calls to trace, from 0 to 1" in proc.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize(("option", "value", "message"), [
    ("--async-calls", "0", "--async-calls 0: give at least 1 call per round"),
    ("--rounds", "0", "--rounds 0: give at least 1 round"),
])
def test_invoke_refuses_empty_rounds_before_starting_a_cluster(option, value, message, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "invoke.py"), "--only-tracing", option, value],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in proc.stderr
