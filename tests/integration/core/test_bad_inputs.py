"""Bad inputs and lost pools end in a clear error within bounded time, never a call pending forever."""

from __future__ import annotations

import sys
import time

import pytest
import ray

import yuanrong as yr

pytestmark = pytest.mark.cluster
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@yr.invoke
def nap(seconds):
    time.sleep(seconds)
    return seconds


@pytest.mark.parametrize("timeout", [float("nan"), float("inf")])
def test_get_and_kv_read_refuse_non_finite_timeouts_at_once(yr_session, timeout):
    ref = yr.put(1)
    started = time.monotonic()
    with pytest.raises(yr.InvalidOptionError, match="timeout="):
        yr.get(ref, timeout=timeout)
    with pytest.raises(ValueError, match="timeout="):
        yr.kv_read("bad-inputs-key", timeout=timeout)
    with pytest.raises(ValueError, match="timeout="):
        yr.kv_get("bad-inputs-key", timeout=timeout)
    with pytest.raises(yr.InvalidOptionError, match="timeout="):
        yr.get_instance("bad-inputs-none", timeout=timeout)
    for name in ("a\x00b", "n" * 100_000):
        with pytest.raises(yr.InvalidOptionError, match="name=") as info:
            yr.get_instance(name, timeout=1)
        assert len(str(info.value)) < 400
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("env", [{"": "x"}, {"A=B": "x"}])
def test_env_vars_no_process_can_have_are_refused_before_the_call(yr_session, env):
    with pytest.raises(yr.InvalidOptionError, match="env_vars"):
        nap.options(env_vars=env).invoke(0)


@pytest.mark.slow
@pytest.mark.parametrize("pooled", [True, False], ids=["function-instances", "ray-tasks"])
def test_calls_waiting_for_a_pool_fail_when_its_last_node_leaves(yr_session, ray_cluster, pooled):
    from yuanrong.local_cluster import NodeSpec

    pool = "vanishing" if pooled else "vanishing-tasks"
    ray_cluster.add_node(NodeSpec(pool=pool, tier="edge", num_cpus=1))
    timeout_ms = 20_000
    slow = nap.options(pool=pool, cpu=1000, memory=0, schedule_timeout_ms=timeout_ms, function_instances=pooled)
    try:
        assert yr.get(slow.invoke(0), timeout=60) == 0      # the pool works while it has its node
        refs = [slow.invoke(30) for _ in range(4)]             # one runs; the others wait for the CPU
        time.sleep(1.0)
    finally:
        ray_cluster.remove_node(pool)
    left = time.monotonic()
    errors = []
    for ref in refs:
        with pytest.raises(yr.YRError) as info:
            yr.get(ref, timeout=timeout_ms / 1000 + 10)
        errors.append(info.value)
    assert time.monotonic() - left < timeout_ms / 1000, "waiting calls must fail within schedule_timeout_ms"
    # Calls running on that node (or queued in its function instance) died with it; those that
    # waited for a CPU or for an instance to start there are told that the pool is gone.
    assert not any(isinstance(e, yr.GetTimeoutError) for e in errors), errors
    placement = [e for e in errors if isinstance(e, yr.PlacementError)]
    assert placement, errors
    if not pooled:   # plain Ray tasks: one ran on the node, every other one waited for its CPU
        assert len(placement) == len(refs) - 1, errors
    assert pool in str(placement[0]) and "left the cluster" in str(placement[0])
    # A new call fails too (one sent to the pool's dead instance before the reaper forgot it dies with it).
    with pytest.raises((yr.PlacementError, yr.InstanceDiedError)):
        yr.get(slow.invoke(0), timeout=timeout_ms / 1000 + 10)


@yr.instance
class Sleeper:
    def ping(self):
        return "pong"


@pytest.mark.slow
def test_an_instance_waiting_for_a_vanished_pool_is_told_so(yr_session, ray_cluster):
    from yuanrong.local_cluster import NodeSpec

    ray_cluster.add_node(NodeSpec(pool="vanishing-2", tier="edge", num_cpus=1))
    opts = yr.InvokeOptions(pool="vanishing-2", cpu=1000, memory=0, schedule_timeout_ms=5_000)
    try:
        first = Sleeper.options(opts).invoke()
        assert yr.get(first.ping.invoke(), timeout=60) == "pong"
        waiting = Sleeper.options(opts).invoke()      # no CPU left in the pool: it waits
        pending = waiting.ping.invoke()
        time.sleep(0.5)
    finally:
        ray_cluster.remove_node("vanishing-2")
    started = time.monotonic()
    with pytest.raises(yr.YRError) as info:
        yr.get(pending, timeout=30)
    # Ray fails an instance it had queued at the node that left ("the actor never ran"); one still
    # waiting in the GCS is stopped by the placement watch at schedule_timeout_ms, naming the pool.
    if isinstance(info.value, yr.PlacementError):
        assert "vanishing-2" in str(info.value) and "left the cluster" in str(info.value)
    else:
        assert isinstance(info.value, yr.InstanceDiedError) and "never ran" in str(info.value)
    assert time.monotonic() - started < 5 + 3
