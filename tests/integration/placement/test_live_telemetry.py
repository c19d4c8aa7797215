"""``Config(placement_telemetry=True)`` on the shared cluster: measured RTT and load change where calls run.

The shared cluster's three nodes are one machine, so every measured round trip is about a
millisecond, where the pools file declares 38–45 ms from ``region-a`` to the edge pools: with the
switch on, a call from ``region-a`` with a 20 ms budget may use an edge pool, and ``edge_first``
sends it there; on the file's figures it must stay in the cloud. A 0-CPU busy loop on one edge node
is load that Ray never booked: the probe measures it and the next call goes to the other edge node.
Each test reconnects the driver with the switch on and restores the shared session afterwards.
"""

from __future__ import annotations

import logging
import time

import pytest

import yuanrong as yr
from tests.conftest import POOLS_FILE

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PERIOD_S, MAX_AGE_S = 0.5, 3.0


@yr.invoke
def node_of():
    import ray

    ctx = ray.get_runtime_context()
    return ctx.get_node_labels()["yr.io/pool"], ctx.get_node_id()


@pytest.fixture
def telemetry_session(yr_session, ray_cluster):
    """The shared cluster's driver reconnected with live telemetry (its probe); restored afterwards."""
    from yuanrong._private import session

    yr.finalize()
    yr.init(yr.Config(server_address=ray_cluster.address, pools_file=str(POOLS_FILE), placement_telemetry=True,
                      placement_telemetry_period_s=PERIOD_S, placement_telemetry_max_age_s=MAX_AGE_S))
    probe = session.current().telemetry_probe
    try:
        yield probe
    finally:
        yr.finalize()
        yr.init(yr.Config(server_address=ray_cluster.address, pools_file=str(POOLS_FILE)))
    # yr.finalize stopped the probe's thread and its actors.
    assert probe._thread is None and not probe._meters and not probe._echo and not probe._probers


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_measured_rtt_moves_the_call_and_a_stale_one_falls_back_warning_once(telemetry_session, caplog):
    far = yr.InvokeOptions(cpu=100, memory=32, client_region="region-a", latency_budget_ms=20,
                           placement_policy="edge_first", function_instances=False)
    t = telemetry_session.telemetry
    assert 0 < t.rtt_ms("region-a", "edge-1") < 20  # the file says 38
    pool, _ = yr.get(node_of.options(far).invoke())
    assert pool in ("edge-1", "edge-2")
    telemetry_session.close()  # no more rounds: the figures age out
    time.sleep(MAX_AGE_S + 0.5)
    with caplog.at_level(logging.WARNING, logger="placement.telemetry"):
        pools = {yr.get(node_of.options(far).invoke())[0] for _ in range(3)}
    assert pools == {"cloud"}  # the file's 38 and 45 ms are outside the budget
    warned = [r.getMessage() for r in caplog.records if "RTT from region-a" in r.getMessage()]
    assert len(warned) == 1 and "stale or missing" in warned[0], warned


def test_load_ray_did_not_book_moves_the_call_to_the_idle_node(telemetry_session):
    import ray

    probe = telemetry_session
    # A whole edge node (2 CPUs): full after the placement by its reservations alone, so the busy loop's
    # half a node counts only because the engine adds the demand to the measured load (a comparison of
    # the two would call both nodes full and keep the first).
    opts = yr.InvokeOptions(cpu=2000, memory=32, pool=["edge-1", "edge-2"], placement_policy="load_balancing",
                            function_instances=False)
    _, first = yr.get(node_of.options(opts).invoke())  # two idle edge nodes, alike: the engine picks this one

    @ray.remote(num_cpus=0)
    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    hog = spin.options(label_selector={"ray.io/node-id": first}).remote(8.0)
    try:
        _wait(lambda: probe.burnt.get(first, 0.0) > 0.3)   # about one core of the node's two, as measured
        time.sleep(1.2)  # past the placer's 1 s snapshot cache, which still counts the first call's CPU
        _, second = yr.get(node_of.options(opts).invoke())
        assert second != first, probe.burnt
    finally:
        ray.cancel(hog, force=True)
