"""The openYuanrong system-test runner, on a stand-in repository: alias, copy, counting, exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

_CONFTEST = """
import os
import yr

def pytest_configure(config):
    assert os.environ["YR_SERVER_ADDRESS"] == ""
"""
_TESTS = """
import pytest
import yr
from yr.config import Config


def test_alias_is_yuanrong():
    import yuanrong
    assert yr is yuanrong and Config is yuanrong.Config


def test_fails():
    assert yr.GetParam().offset == 1


@pytest.mark.skip(reason="skipped by the suite itself")
def test_skipped():
    pass


def test_invoke_cpp_task():
    raise AssertionError("excluded, never run")
"""


def _mirror(tmp_path: Path) -> Path:
    st = tmp_path / "mirror" / "test" / "st" / "python"
    st.mkdir(parents=True)
    (st / "conftest.py").write_text(_CONFTEST)
    (st / "test_yr_api.py").write_text(_TESTS)
    return tmp_path / "mirror"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.compat.openyuanrong_st", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def test_counts_by_module_with_exclusions_and_fails_on_a_failure(tmp_path):
    mirror = _mirror(tmp_path)
    run = _run("--mirror", str(mirror), "--only", "test_yr_api.py", "--json", str(tmp_path / "out.json"))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "test_yr_api.py                    1      1        1        4" in run.stdout
    assert "1 of 2 applicable tests passed (50.0 %)" in run.stdout
    assert "test_yr_api.py: test_fails:" in run.stdout
    assert "test_yr_api.py::test_invoke_cpp_task: calls a C++ function" in run.stdout
    assert not (mirror / "test" / "st" / "python" / ".pytest_cache").exists()   # ran on a copy


def test_a_directory_that_is_not_a_checkout_is_refused_with_the_fix(tmp_path):
    run = _run("--mirror", str(tmp_path), "--only", "test_yr_api.py")
    assert run.returncode == 2
    assert "neither a checkout nor a git repository" in run.stderr
