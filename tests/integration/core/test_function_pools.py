"""Pooled function instances on the shared multi-pool cluster (cloud head + edge-1 + edge-2).

Functions return the id of the Ray actor they ran in (``None`` when a call ran as a plain Ray
task, e.g. while the pool's first instance was starting), so the tests observe instances directly.
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import pytest
import ray

import yuanrong as yr
from yuanrong._private import session

pytestmark = pytest.mark.cluster
# Workers cannot import this test module; send its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _actor_id():
    return ray.get_runtime_context().get_actor_id()


@yr.invoke
def who():
    return _actor_id(), os.getpid()


@yr.invoke
def nap(seconds):
    start = time.time()
    time.sleep(seconds)
    return _actor_id(), start, time.time()


@yr.invoke
async def async_nap(seconds):
    await asyncio.sleep(seconds)
    return _actor_id()


@yr.invoke
def stream(n):
    yield _actor_id()
    for i in range(n):
        yield i


@yr.invoke
def delegating(n):
    yield _actor_id()
    yield from range(n)  # Ray sends values into streaming generators; a range cannot take them


@yr.invoke
def inner():
    return _actor_id()


@yr.invoke
def outer():
    return _actor_id(), yr.get(inner.options(min_instances=1).invoke(), timeout=60)


@yr.invoke
def where():
    import ray

    return _actor_id(), ray.get_runtime_context().get_node_labels().get("yr.io/pool")


@yr.invoke
def node_env():
    import ray

    return os.environ.get("NODE_ID"), os.environ.get("INIT_LABELS"), ray.get_runtime_context().get_node_id(), \
        _actor_id()


@yr.invoke
def crash_first(path):
    import pathlib

    p = pathlib.Path(path)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n == 0:
        os._exit(1)
    return n + 1, _actor_id()


def _until(fn, what, timeout=60.0):
    """Call ``fn`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        out = fn()
        if out:
            return out
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


def _served_by_instance(proxy, *args, index=0):
    """Call until a call ran in a function instance; return that call's result."""
    def attempt():
        out = yr.get(proxy.invoke(*args), timeout=60)
        return out if out[index] else None
    return _until(attempt, "a call served by a function instance")


def _pool_of(proxy):
    return proxy._pool


def test_calls_reuse_one_instance(yr_session):
    f = who.options(min_instances=1, cpu=100)
    actor, pid = _served_by_instance(f)
    seen = {tuple(yr.get(f.invoke(), timeout=30)) for _ in range(20)}
    assert seen == {(actor, pid)}
    assert _pool_of(f).instance_count() == 1


def test_a_pool_sees_a_call_finished_once_its_caller_has_the_result(yr_session):
    # A caller that waits for each result must find the instance free for its next call: were the
    # pool's completion marker stored after the result, the next call could see the instance still
    # busy and run as a Ray task or start another instance (seen once in ~20 runs of such a loop).
    f = who.options(min_instances=1, cpu=100)
    _served_by_instance(f)
    inst = _pool_of(f).live()[0]
    late = 0
    for _ in range(300):
        out = f.invoke()
        marker = inst.pending[-1][0]
        yr.get(out, timeout=30)
        late += not ray.wait([marker], timeout=0, fetch_local=False)[0]
    assert late == 0, f"{late} of 300 calls' markers were not ready once their results were"
    assert _pool_of(f).instance_count() == 1

def test_concurrency_calls_overlap_in_one_instance(yr_session):
    f = nap.options(concurrency=4, min_instances=1, max_instances=1, cpu=100)
    _served_by_instance(f, 0)
    t0 = time.monotonic()
    results = yr.get([f.invoke(1.0) for _ in range(4)], timeout=60)
    elapsed = time.monotonic() - t0
    assert len({r[0] for r in results}) == 1 and results[0][0]
    # Four one-second calls in one instance overlap: all started before any ended.
    assert max(r[1] for r in results) < min(r[2] for r in results)
    assert elapsed < 3, elapsed


def test_async_function_runs_many_calls_in_one_instance(yr_session):
    f = async_nap.options(min_instances=1, max_instances=1, cpu=100)
    _until(lambda: yr.get(f.invoke(0), timeout=60), "the async instance")
    t0 = time.monotonic()
    ids = yr.get([f.invoke(1.0) for _ in range(50)], timeout=60)
    assert len(set(ids)) == 1 and ids[0]
    assert time.monotonic() - t0 < 4


def test_min_instances_are_started_and_max_instances_bound_the_pool(yr_session):
    f = nap.options(min_instances=2, max_instances=3, cpu=100)
    pool_ready = lambda: (yr.get(f.invoke(0), timeout=60)[0]
                          and sum(i.ready for i in _pool_of(f).instances) == 2)
    _until(pool_ready, "two ready instances")
    # A burst wider than the pool: at most max_instances distinct instances ever serve it.
    ids = set()
    for _ in range(3):
        ids |= {r[0] for r in yr.get([f.invoke(0.3) for _ in range(8)], timeout=60) if r[0]}
    assert 2 <= len(ids) <= 3
    assert _pool_of(f).instance_count() <= 3


def test_idle_instances_scale_to_zero(yr_session):
    f = who.options(idle_timeout=1, cpu=100)
    actor, _ = _served_by_instance(f)
    pool = _pool_of(f)
    _until(lambda: pool.instance_count() == 0, "the idle instance to be released", timeout=15)
    import ray

    # The instance's process is gone, not only forgotten (private GCS view; Ray 2.60 is pinned).
    _until(lambda: ray._private.state.actors(actor_id=actor)["State"] == "DEAD", "the actor to die", timeout=15)


def test_min_instances_survive_idle_timeout(yr_session):
    f = who.options(idle_timeout=1, min_instances=1, cpu=100)
    actor, _ = _served_by_instance(f)
    time.sleep(3)
    assert _pool_of(f).instance_count() == 1
    assert yr.get(f.invoke(), timeout=30)[0] == actor


def test_an_instance_crash_mid_call_is_retried(yr_session, tmp_path):
    f = crash_first.options(retry_times=1, min_instances=1, max_instances=1, cpu=100)
    warm = tmp_path / "warm"
    warm.write_text("1")  # a file that no longer crashes: only to wait until the instance serves
    _until(lambda: yr.get(f.invoke(str(warm)), timeout=60)[1], "a ready instance")
    marker = tmp_path / "attempts"
    attempts, actor = yr.get(f.invoke(str(marker)), timeout=120)
    assert attempts == 2 and actor  # ran twice, the second time in the restarted instance


def test_a_crash_without_retries_says_how_to_retry(yr_session, tmp_path):
    f = crash_first.options(min_instances=1, max_instances=1, cpu=100)
    warm = tmp_path / "warm"
    warm.write_text("1")
    _until(lambda: yr.get(f.invoke(str(warm)), timeout=60)[1], "a ready instance")
    with pytest.raises(yr.InstanceDiedError, match="retry_times"):
        yr.get(f.invoke(str(tmp_path / "attempts")), timeout=60)
    # The pool replaces the dead instance.
    _until(lambda: yr.get(f.invoke(str(warm)), timeout=60)[1], "a new instance")


def test_cancel_running_and_queued_calls(yr_session):
    f = nap.options(min_instances=1, max_instances=1, cpu=100)
    _served_by_instance(f, 0)
    running = f.invoke(60)
    time.sleep(0.5)
    t0 = time.monotonic()
    yr.cancel(running)
    with pytest.raises(yr.InvokeCancelledError):
        yr.get(running, timeout=30)
    assert time.monotonic() - t0 < 15
    _served_by_instance(f, 0)
    first, queued = f.invoke(2), f.invoke(2)
    yr.cancel(queued, allow_force=False)
    with pytest.raises(yr.InvokeCancelledError):
        yr.get(queued, timeout=30)
    assert yr.get(first, timeout=30)[0]


def test_a_call_cancelled_on_a_starting_instance_holds_up_no_later_call(yr_session):
    # Ray holds an actor's next call for 30 s, then fails it, when a call queued on it was
    # cancelled while the actor's process was starting; the pool must not send calls there.
    f = nap.options(max_instances=1, cpu=100)
    _served_by_instance(f, 0)
    running = f.invoke(60)
    time.sleep(0.5)
    yr.cancel(running)  # stops the pool's only instance
    with pytest.raises(yr.InvokeCancelledError):
        yr.get(running, timeout=30)
    as_tasks = [f.invoke(3), f.invoke(3)]  # Ray tasks, while a new instance starts
    time.sleep(0.2)
    queued = f.invoke(0)  # two tasks run: this one queues on the starting instance
    yr.cancel(queued)
    t0 = time.monotonic()
    assert all(yr.get(f.invoke(0), timeout=25)[2] > 0 for _ in range(3))
    assert time.monotonic() - t0 < 20
    assert len(yr.get(as_tasks, timeout=30)) == 2


def test_generators_stream_from_an_instance(yr_session):
    f = stream.options(min_instances=1, cpu=100)

    def attempt():
        refs = list(f.invoke(3))
        values = [yr.get(r, timeout=30) for r in refs]
        return values if values[0] else None

    values = _until(attempt, "a generator served by an instance")
    assert values[1:] == [0, 1, 2]


def test_generators_that_delegate_to_an_iterator_stream_on_both_paths(yr_session):
    as_task = delegating.options(function_instances=False, cpu=100)
    values = [yr.get(r, timeout=30) for r in as_task.invoke(3)]
    assert values == [None, 0, 1, 2]
    pooled = delegating.options(min_instances=1, cpu=100)

    def attempt():
        values = [yr.get(r, timeout=30) for r in pooled.invoke(3)]
        return values if values[0] else None

    assert _until(attempt, "a delegating generator served by an instance")[1:] == [0, 1, 2]


def test_nested_calls_run_in_instances(yr_session):
    f = outer.options(min_instances=1, cpu=100)
    mine, theirs = _until(lambda: all(x for x in yr.get(f.invoke(), timeout=60)) and yr.get(f.invoke(), timeout=60),
                          "both levels in instances")
    assert mine and theirs and mine != theirs


@pytest.mark.parametrize("pool", ["edge-1", "edge-2"])
def test_instances_are_placed_in_the_pool(yr_session, pool):
    f = where.options(pool=pool, min_instances=1, cpu=100)
    actor, got = _served_by_instance(f)
    assert got == pool
    assert {yr.get(f.invoke(), timeout=30) for _ in range(5)} == {(actor, pool)}


def test_instances_see_node_id_and_init_labels(yr_session):
    node_id, labels, real_node, _ = _served_by_instance(node_env.options(min_instances=1, cpu=100), index=3)
    assert node_id == real_node
    assert json.loads(labels)["ray.io/node-id"] == real_node


def test_instances_of_classes_see_node_id(yr_session):
    @yr.instance
    class Probe:
        def env(self):
            import ray

            return os.environ.get("NODE_ID"), ray.get_runtime_context().get_node_id(), yr.is_initialized()

    p = Probe.options(cpu=100).invoke()
    node_id, real_node, _ = yr.get(p.env.invoke(), timeout=60)
    assert node_id == real_node
    p.terminate()


def test_a_full_queue_fails_clearly(yr_session, monkeypatch):
    monkeypatch.setenv("YR_FUNCTION_QUEUE_LIMIT", "2")
    f = nap.options(min_instances=1, max_instances=1, cpu=100, memory=7)  # options of its own: a new pool
    _served_by_instance(f, 0)
    refs = [f.invoke(1.5) for _ in range(3)]  # one runs, two wait
    with pytest.raises(yr.FunctionQueueFullError, match=r"function nap: 2 calls are already queued \(the limit is 2\)"
                       ) as info:
        f.invoke(0)
    assert info.value.limit == 2 and "max_instances" in str(info.value)
    assert len(yr.get(refs, timeout=60)) == 3


def test_opt_out_runs_plain_ray_tasks(yr_session):
    f = who.options(function_instances=False, cpu=100)
    assert all(yr.get(f.invoke(), timeout=30)[0] is None for _ in range(5))


def test_instance_options_are_refused_for_classes(yr_session):
    @yr.instance
    class C:
        pass

    with pytest.raises(yr.InvalidOptionError, match="min_instances=1 sizes the pool"):
        C.options(min_instances=1)
    with pytest.raises(yr.InvalidOptionError, match="more than max_instances"):
        who.options(min_instances=3, max_instances=2)


def test_element_has_openyuanrong_fields():
    e = yr.Element(b"x", ele_id=3)
    assert (e.data, e.id, e.value) == (b"x", 3, b"x")
    assert yr.Element(b"y").id == 0


def test_finalize_kills_every_instance(yr_session):
    """A registry's close() (what finalize does) leaves no instance running."""
    from yuanrong._private.core import pool_registry

    import ray

    registry = session.current().function_pools
    f = who.options(min_instances=2, cpu=100, memory=11)
    _served_by_instance(f)
    actors = [i.actor_id for i in _pool_of(f).instances]
    assert len(actors) == 2
    key = next(k for k, p in registry.pools.items() if p is _pool_of(f))
    pool = registry.pools.pop(key)
    pool.close()
    for actor in actors:
        _until(lambda: ray._private.state.actors(actor_id=actor)["State"] == "DEAD", "the instance to die", 15)
    assert isinstance(registry, pool_registry.Registry)
