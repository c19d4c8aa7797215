"""The benchmark scripts start as documented (``python bench/NAME.py``), whatever their names shadow."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["invoke", "coldstart", "placement", "datashare", "serve"])
def test_bench_script_starts_and_explains_itself(name, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"usage: {name}.py")
