"""Integration tests share one cluster: each module leaves it as it found it.

Function instances live until their ``idle_timeout`` (300 s by default), holding their CPU and
memory like any serverless keep-alive; a module that ran pooled functions releases them when it
ends. Ray frees what a module killed a moment later, so the next module waits (bounded) until every
CPU is free again before its capacity checks run.
"""

from __future__ import annotations

import time

import pytest

IDLE_WAIT_S = 20.0


@pytest.fixture(autouse=True, scope="module")
def _leave_the_cluster_idle():
    yield
    import ray

    from yuanrong._private import session

    s = session.current()
    if s.function_pools is not None:
        s.function_pools.close()
        s.function_pools = None
    if not ray.is_initialized():
        return
    deadline = time.monotonic() + IDLE_WAIT_S
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0.0) >= ray.cluster_resources().get("CPU", 0.0):
            return
        time.sleep(0.1)
