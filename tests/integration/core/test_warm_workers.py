"""Warm workers: adoption on the shared multi-pool cluster (which instances adopt: tests/unit/core).

The shared session starts with warm pools off (the default); the ``warm`` fixture starts pools on
the running session for this module only, exactly as ``yr.init`` does for ``Config.warm_pool_size``,
and stops them afterwards so no other test sees their resources held.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import yuanrong as yr
from yuanrong._private import session
from yuanrong._private.core import warm_workers
from yuanrong._private.core.warm_workers import ASYNC, SYNC
from yuanrong.cli._ray_state import build_snapshot, read_tables


# --- on the cluster ------------------------------------------------------------------------------

@yr.instance
class Counter:
    def __init__(self, start=0, recover=False):
        self.n = start
        if recover:
            try:
                yr.load_state()
            except RuntimeError:
                pass

    def add(self, k=1):
        self.n += k
        return self.n

    def pid(self):
        return os.getpid()

    def pool(self):
        import ray

        return ray.get_runtime_context().get_node_labels().get("yr.io/pool")

    @yr.method(return_nums=2)
    def split(self):
        return self.n, -self.n

    def stream(self, k):
        for i in range(k):
            yield self.n + i

    def save(self):
        yr.save_state()
        return self.n

    def die(self, in_pid):
        if os.getpid() == in_pid:
            os._exit(1)

    def __yr_shutdown__(self, grace_period_seconds):
        with open(f"/tmp/yr-warm-shutdown-{self.n}", "w") as f:
            f.write(str(grace_period_seconds))


@yr.instance
class AsyncNapper:
    async def nap(self, s):
        await asyncio.sleep(s)
        return os.getpid()

    async def count(self, k):
        for i in range(k):
            await asyncio.sleep(0)
            yield i

    def pid(self):
        return os.getpid()


@yr.instance
class Broken:
    def __init__(self):
        raise ValueError("no config")

    def ping(self):
        return "pong"


@yr.invoke
def add_through(counter, k):
    return yr.get(counter.add.invoke(k))


SIZES = {"cloud": 1, "edge-1": 1}


def _wait_full(pools, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        idle = pools.idle()
        if all(len(idle[key]) >= size for key, size in pools.sizes.items()):
            return idle
        time.sleep(0.1)
    raise AssertionError(f"warm pools did not fill within {timeout}s: {pools.idle()}")


@pytest.fixture(scope="module")
def warm(yr_session):
    s = session.current()
    s.warm_pools = warm_workers.start(SIZES, {"cloud": 1})
    try:
        _wait_full(s.warm_pools)
        yield s.warm_pools
    finally:
        s.warm_pools.stop()
        s.warm_pools = None


def _idle_pids(idle, pool=None, kind=SYNC):
    return {w["pid"] for (p, k), ws in idle.items() if k == kind and (pool is None or p == pool) for w in ws}


def test_a_new_instance_runs_in_a_prestarted_worker_and_the_pool_refills(warm):
    before = _wait_full(warm)
    c = Counter.invoke(3)
    pid = yr.get(c.pid.invoke(), timeout=30)
    assert pid in _idle_pids(before)
    assert yr.get(c.add.invoke(2)) == 5
    after = _wait_full(warm)
    assert pid not in _idle_pids(after) and len(_idle_pids(after)) == len(_idle_pids(before))
    c.terminate()


def test_methods_return_nums_generators_and_handles_work_on_adopted_instances(warm):
    before = _wait_full(warm)
    c = Counter.options(pool="edge-1").invoke(10)
    assert yr.get(c.pid.invoke()) in _idle_pids(before, "edge-1")
    assert yr.get(c.pool.invoke()) == "edge-1"
    refs = c.split.invoke()
    assert isinstance(refs, list) and yr.get(refs) == [10, -10]
    gen = c.stream.invoke(3)
    assert isinstance(gen, yr.ObjectRefGenerator) and [yr.get(r) for r in gen] == [10, 11, 12]
    assert yr.get(add_through.invoke(c, 5)) == 15          # the handle travels with its method table
    with pytest.raises(AttributeError, match="no method 'nope'.*add"):
        c.nope.invoke()
    c.terminate()


def test_async_instances_adopt_an_async_worker_and_run_calls_concurrently(warm):
    before = _wait_full(warm)
    a = AsyncNapper.invoke()
    assert yr.get(a.pid.invoke(), timeout=30) in _idle_pids(before, kind=ASYNC)
    t0 = time.monotonic()
    assert len(set(yr.get([a.nap.invoke(1) for _ in range(5)], timeout=30))) == 1
    assert time.monotonic() - t0 < 3
    assert [yr.get(r) for r in a.count.invoke(3)] == [0, 1, 2]
    a.terminate()


def test_a_crashed_adopted_instance_restarts_adopts_again_and_reloads_its_state(warm):
    _wait_full(warm)
    c = Counter.options(recover_retry_times=1).invoke(0, True)
    yr.get(c.add.invoke(7))
    yr.get(c.save.invoke())
    first = yr.get(c.pid.invoke())
    # As tests/integration/core/test_api.py's _crash_once: the die call itself may fail while Ray restarts the
    # worker (ActorUnavailableError), so wait on the next call instead.
    c.die.invoke(first)
    deadline = time.monotonic() + 60
    while True:
        try:
            second = yr.get(c.pid.invoke(), timeout=30)
            break
        except yr.InstanceDiedError:
            assert time.monotonic() < deadline, "the adopted instance did not come back within 60 s"
            time.sleep(0.5)
    assert second != first
    assert yr.get(c.add.invoke(1)) == 8                     # 7 came back from the saved state
    c.terminate()


def test_an_instance_without_restarts_stays_dead_after_a_crash(warm):
    _wait_full(warm)
    c = Counter.invoke()
    pid = yr.get(c.pid.invoke())
    with pytest.raises(yr.InstanceDiedError):
        yr.get(c.die.invoke(pid), timeout=30)
    with pytest.raises(yr.InstanceDiedError, match="no restarts left|died"):
        yr.get(c.pid.invoke(), timeout=30)


def test_a_failing_constructor_kills_the_instance(warm):
    _wait_full(warm)
    b = Broken.invoke()
    with pytest.raises(yr.InstanceDiedError, match="exit_actor"):
        yr.get(b.ping.invoke(), timeout=30)


def test_other_shapes_and_named_instances_take_the_cold_path(warm):
    before = _wait_full(warm)
    small = Counter.options(cpu=100, memory=32).invoke()
    named = Counter.options(name="warm-test-named").invoke()
    assert yr.get(small.pid.invoke(), timeout=60) not in _idle_pids(before)
    assert yr.get(named.pid.invoke(), timeout=60) not in _idle_pids(before)
    assert yr.get(yr.get_instance("warm-test-named").add.invoke(1)) == 1
    assert _idle_pids(warm.idle()) == _idle_pids(before)    # nothing was taken from the pools
    small.terminate()
    named.terminate()


def test_terminate_runs_the_adopted_instances_shutdown_hook(warm):
    _wait_full(warm)
    c = Counter.invoke(4242)
    assert yr.get(c.add.invoke(0)) == 4242
    marker = "/tmp/yr-warm-shutdown-4242"
    if os.path.exists(marker):
        os.remove(marker)
    c.terminate(is_sync=True, grace_period_seconds=3)
    assert open(marker).read() == "3"
    os.remove(marker)
    with pytest.raises(yr.InstanceDiedError):
        yr.get(c.add.invoke(1), timeout=30)


def test_yr_status_shows_the_warm_workers(warm, ray_cluster):
    _wait_full(warm)
    snap = build_snapshot(read_tables(ray_cluster.address), address=ray_cluster.address)
    by_pool = {p["name"]: p for p in snap["pools"]}
    assert by_pool["cloud"]["warm_workers"] >= 2 and by_pool["edge-1"]["warm_workers"] >= 1
    assert by_pool["edge-2"]["warm_workers"] == 0


# --- function instances adopted by warm workers ---------------------------------------------------

@yr.invoke
def fn_pid(k):
    return os.getpid(), k


@yr.invoke(return_nums=2)
def fn_pair(k):
    return k, os.getpid()


@yr.invoke
def fn_count(n):
    yield from range(n)


@yr.invoke
async def fn_async(k):
    await asyncio.sleep(0)
    return os.getpid(), k


def _served_by_pool(proxy, *args):
    """Call until the function's pool has a ready instance; then ``(a call's result, the pool)``."""
    deadline = time.monotonic() + 30
    while True:
        yr.get(proxy.invoke(*args), timeout=30)
        pool = proxy._pool
        if pool is not None and any(i.ready for i in pool.live()):
            return yr.get(proxy.invoke(*args), timeout=30), pool
        assert time.monotonic() < deadline, f"no function instance of {proxy.__name__} became ready"
        time.sleep(0.05)


def test_a_function_instance_is_adopted_by_a_warm_worker(warm):
    before = _wait_full(warm)
    (pid, k), pool = _served_by_pool(fn_pid.options(pool="cloud"), 7)
    assert k == 7
    assert pid in _idle_pids(before, "cloud"), "the function instance did not run in a warm worker"
    # Calls keep going to that same adopted process, and the warm pool refills behind it.
    assert {yr.get(fn_pid.options(pool="cloud").invoke(i), timeout=30)[0] for i in range(5)} == {pid}
    _wait_full(warm)


def test_adopted_function_instances_keep_return_nums_generators_and_async(warm):
    before = _wait_full(warm)
    (k, pid), _ = _served_by_pool(fn_pair.options(pool="edge-1"), 3)
    assert k == 3
    gen = fn_count.options(pool="edge-1")
    for _ in range(20):  # the first calls may run as Ray tasks while the instance starts
        assert [yr.get(r, timeout=30) for r in gen.invoke(4)] == [0, 1, 2, 3]
        if gen._pool is not None and any(i.ready for i in gen._pool.live()):
            break
        time.sleep(0.1)
    assert [yr.get(r, timeout=30) for r in gen.invoke(4)] == [0, 1, 2, 3]
    (pid, k), pool = _served_by_pool(fn_async, 5)
    assert k == 5 and pid in _idle_pids(before, kind=ASYNC)


def test_functions_that_retry_in_place_or_need_other_shapes_start_cold(warm):
    before = _wait_full(warm)
    (pid, _), _ = _served_by_pool(fn_pid.options(pool="cloud", retry_times=1), 1)
    assert pid not in _idle_pids(before)
    (pid, _), _ = _served_by_pool(fn_pid.options(pool="cloud", cpu=300), 1)
    assert pid not in _idle_pids(before)
