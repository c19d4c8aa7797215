"""The public namespace stays deliberate and the pure core never imports Ray or yuanrong."""

from __future__ import annotations

import subprocess
import sys

import placement


def test_all_is_sorted_and_complete():
    assert placement.__all__ == sorted(placement.__all__)
    for name in placement.__all__:
        assert hasattr(placement, name), name


def test_core_imports_neither_ray_nor_yuanrong():
    code = ("import sys, placement, placement.sim.continuum; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'yuanrong')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
