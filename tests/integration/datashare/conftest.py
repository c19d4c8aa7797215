"""Fixtures for datashare's tests: the shared cluster, and a clean catalogue at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


@pytest.fixture(scope="session")
def ds(ray_session):
    """The datashare package on the shared cluster; its detached actors are killed at the end."""
    import datashare

    yield datashare
    datashare.shutdown_actors()


@pytest.fixture(scope="session")
def run_driver(ray_cluster):
    """Run Python code as a second Ray driver process connected to the shared cluster."""

    def run(code: str, *, timeout: float = 240) -> str:
        prelude = (
            "import ray, datashare\n"
            f"ray.init(address={ray_cluster.address!r}, logging_level='WARNING', log_to_driver=False)\n"
        )
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)
        proc = subprocess.run(
            [sys.executable, "-c", prelude + textwrap.dedent(code)],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
        if proc.returncode != 0:
            raise AssertionError(f"driver failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
        return proc.stdout

    return run


def node_of(cluster, pool: str) -> str:
    """The first node id of ``pool``."""
    return cluster.node_ids(pool)[0]
