"""Shared fixtures: one real multi-pool Ray cluster for the whole test session.

Pure tests (placement policies, option validation) need no fixture and never start Ray. Tests
marked ``cluster`` use ``ray_cluster`` (the running :class:`LocalCluster`), ``ray_session`` (this
process connected to it as a Ray driver) or ``yr_session`` (the same connection, through
``yuanrong.init``). Only one driver connection exists per test process; it is made once.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from yuanrong.local_cluster import LocalCluster

POOLS_FILE = pathlib.Path(__file__).resolve().parent.parent / "cluster_configs" / "pools.yaml"


@pytest.fixture(scope="session")
def ray_cluster():
    """A cloud head node plus two edge nodes, started once and stopped at the end of the session."""
    # Never join a cluster left running on this machine by something else.
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.pop("YR_ADDRESS", None)
    cluster = LocalCluster().start()
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def ray_session(ray_cluster):
    """This process connected as a Ray driver to the shared cluster."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_cluster.address, logging_level="WARNING", log_to_driver=False)
    yield ray_cluster


@pytest.fixture(scope="session")
def yr_session(ray_session):
    """This process connected as a yuanrong driver to the shared cluster (adopts the Ray connection)."""
    import yuanrong as yr

    if not yr.is_initialized():
        yr.init(yr.Config(server_address=ray_session.address, pools_file=str(POOLS_FILE)))
    yield yr
