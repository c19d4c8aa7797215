"""Shared fixtures: one real multi-pool Ray cluster for the whole test session.

Pure tests (placement policies, option validation) need no fixture and never start Ray. Tests
marked ``cluster`` use ``ray_cluster`` (the running :class:`LocalCluster`) and ``yr_session``
(this process connected to it through ``yuanrong.init``).
"""

from __future__ import annotations

import os

import pytest

from yuanrong.local_cluster import LocalCluster


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
def yr_session(ray_cluster):
    """This process connected as a yuanrong driver to the shared cluster."""
    import yuanrong as yr

    if not yr.is_initialized():
        yr.init(yr.Config(server_address=ray_cluster.address))
    yield yr
    if yr.is_initialized():
        yr.finalize()
