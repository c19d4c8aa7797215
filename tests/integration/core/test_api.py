"""The Tier-1 API against the shared real multi-pool cluster (cloud head + edge-1 + edge-2)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import pytest

import yuanrong as yr

pytestmark = pytest.mark.cluster


@yr.invoke
def add(a, b):
    return a + b


@yr.invoke(return_nums=3)
def three(x):
    return x, x + 1, x + 2


@yr.invoke
def count_to(n):
    for i in range(n):
        yield i


@yr.invoke
def fail(msg):
    raise ValueError(msg)


@yr.invoke
def outer(msg):
    return yr.get(fail.invoke(msg))


@yr.invoke
def nested(x):
    # A function calling another function from inside the cluster.
    return yr.get(add.invoke(x, 1)) * 10


@yr.invoke
def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


@yr.invoke
def where():
    import ray

    return ray.get_runtime_context().get_node_labels().get("yr.io/pool")


@yr.invoke
def read_env(key):
    return os.environ.get(key)


@yr.instance
class Counter:
    def __init__(self, start=0):
        self.n = start

    def add(self, k=1):
        self.n += k
        return self.n

    def get(self):
        return self.n

    @yr.method(return_nums=2)
    def split(self):
        return self.n, -self.n

    def stream(self, k):
        for i in range(k):
            yield self.n + i

    def pool(self):
        import ray

        return ray.get_runtime_context().get_node_labels().get("yr.io/pool")

    def boom(self):
        raise KeyError("missing")


@yr.instance
class Sleeper:
    def nap(self, s):
        time.sleep(s)
        return threading.get_ident()


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- stateless functions -------------------------------------------------------------------------

def test_invoke_and_get(yr_session):
    ref = add.invoke(1, 2)
    assert isinstance(ref, yr.ObjectRef)
    assert yr.get(ref) == 3
    assert ref.get() == 3
    assert yr.get([add.invoke(i, i) for i in range(5)]) == [0, 2, 4, 6, 8]


def test_return_nums_gives_a_list_of_refs(yr_session):
    refs = three.invoke(10)
    assert isinstance(refs, list) and len(refs) == 3
    assert yr.get(refs) == [10, 11, 12]


def test_generator_returns_refs_as_values_are_yielded(yr_session):
    gen = count_to.invoke(4)
    assert isinstance(gen, yr.ObjectRefGenerator)
    assert [yr.get(r) for r in gen] == [0, 1, 2, 3]


def test_refs_as_arguments_are_resolved(yr_session):
    a = yr.put(40)
    b = add.invoke(1, 1)
    assert yr.get(add.invoke(a, b)) == 42
    assert yr.get(add.invoke(a=a, b=2)) == 42


def test_nested_calls(yr_session):
    assert yr.get(nested.invoke(4)) == 50


def test_put_get_large_numpy_zero_copy(yr_session):
    import numpy as np

    arr = np.arange(1_000_000, dtype=np.float64)
    out = yr.get(yr.put(arr))
    assert np.array_equal(out, arr)
    assert not out.flags.writeable  # a read-only view into shared memory, not a copy


def test_put_rejects_refs(yr_session):
    with pytest.raises(TypeError, match="already in the object store"):
        yr.put(yr.put(1))


def test_remote_exception_keeps_type_and_traceback(yr_session):
    with pytest.raises(ValueError) as info:
        yr.get(fail.invoke("bad input"))
    err = info.value
    assert isinstance(err, yr.YRInvokeError) and isinstance(err, yr.YRError)
    assert isinstance(err.cause, ValueError) and str(err.cause) == "bad input"
    assert "Remote traceback" in str(err) and "in fail" in str(err)


def test_nested_remote_exception_reaches_the_caller_as_the_original_type(yr_session):
    with pytest.raises(ValueError) as info:
        yr.get(outer.invoke("deep"))
    assert isinstance(info.value, yr.YRInvokeError)
    assert str(info.value.cause) == "deep"
    assert "in fail" in str(info.value) and "in outer" in str(info.value)


def test_get_timeout_raises_builtin_timeout_error(yr_session):
    ref = sleep_then.invoke(3, "late")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        yr.get(ref, timeout=0.3)
    assert time.monotonic() - t0 < 2
    assert isinstance(info.value, yr.GetTimeoutError) and info.value.timeout == 0.3
    assert "timeout=0.3" in str(info.value)
    assert yr.get(ref, timeout=-1) == "late"


def test_get_partial(yr_session):
    fast, slow = add.invoke(1, 1), sleep_then.invoke(3, "x")
    assert yr.get([fast, slow], timeout=1, allow_partial=True) == [2, None]


@pytest.mark.parametrize("bad", [0, -2, "1", True])
def test_get_bad_timeout(yr_session, bad):
    with pytest.raises(yr.InvalidOptionError, match="timeout="):
        yr.get(add.invoke(1, 1), timeout=bad)


def test_get_bad_argument(yr_session):
    with pytest.raises(yr.InvalidOptionError, match="every element must be an ObjectRef"):
        yr.get([add.invoke(1, 1), 5])
    with pytest.raises(yr.InvalidOptionError, match="takes an ObjectRef or a list"):
        yr.get("ref")


def test_wait(yr_session):
    refs = [sleep_then.invoke(0, "a"), sleep_then.invoke(0, "b"), sleep_then.invoke(5, "c")]
    ready, unready = yr.wait(refs, wait_num=2, timeout=10)
    assert [yr.get(r) for r in ready] == ["a", "b"]
    assert unready == [refs[2]]
    ready, unready = yr.wait(refs[2], timeout=0.2)
    assert ready == [] and unready == [refs[2]]
    yr.cancel(refs[2])


def test_wait_validation(yr_session):
    r = add.invoke(1, 1)
    with pytest.raises(yr.InvalidOptionError, match=r"wait_num=3 is invalid: expected an int in \[0, 1\]"):
        yr.wait([r], wait_num=3)
    with pytest.raises(yr.InvalidOptionError, match="same ObjectRef twice"):
        yr.wait([r, r])
    with pytest.raises(yr.InvalidOptionError, match="timeout=-5"):
        yr.wait([r], timeout=-5)


def test_cancel_stateless_call(yr_session):
    ref = sleep_then.invoke(60, "never")
    time.sleep(0.5)
    yr.cancel(ref)
    with pytest.raises(RuntimeError, match=r"cancelled with yr.cancel\(\)") as info:
        yr.get(ref, timeout=30)
    assert isinstance(info.value, yr.InvokeCancelledError)


def test_async_instance_runs_calls_concurrently_by_default(yr_session):
    @yr.instance
    class AsyncSleeper:
        async def nap(self, s):
            import asyncio

            await asyncio.sleep(s)
            return s

    a = AsyncSleeper.options(cpu=100).invoke()
    yr.get(a.nap.invoke(0))
    t0 = time.monotonic()
    assert yr.get([a.nap.invoke(1) for _ in range(5)]) == [1] * 5
    assert time.monotonic() - t0 < 3
    a.terminate()


def test_object_ref_methods(yr_session):
    ref = sleep_then.invoke(0.5, 7)
    assert ref.done() is False
    ref.wait(timeout=30)
    assert ref.done() is True
    assert ref.get_future().result(timeout=5) == 7
    seen = []
    event = threading.Event()
    ref.on_complete(lambda v: (seen.append(v), event.set()))
    assert event.wait(10) and seen == [7]
    assert ref.is_exception() is False
    assert fail.invoke("x").is_exception() is True

    async def main():
        return await add.invoke(2, 3), await add.invoke(4, 4).as_future()

    assert asyncio.run(main()) == (5, 8)
    with pytest.raises(TimeoutError):
        sleep_then.invoke(5, 0).wait(timeout=0.2)


def test_resources_option_places_on_the_pool(yr_session):
    assert yr.get(where.options(yr.InvokeOptions(pool="edge-1")).invoke()) == "edge-1"
    assert yr.get(where.options(pool="edge-2").invoke()) == "edge-2"
    assert yr.get(where.options(tier="cloud").invoke()) == "cloud"
    cam = yr.InvokeOptions(cpu=100, memory=64, custom_resources={"camera": 1})
    assert yr.get(where.options(cam).invoke()) == "edge-1"


def test_pool_that_does_not_exist_fails_fast(yr_session):
    t0 = time.monotonic()
    with pytest.raises(yr.PlacementError, match=r"pool='edge-9' does not exist; known pools: cloud, edge-1, edge-2"):
        where.options(pool="edge-9").invoke()
    assert time.monotonic() - t0 < 5


def test_resources_larger_than_any_node_fail_fast(yr_session):
    with pytest.raises(yr.PlacementError, match="can never be placed") as info:
        where.options(cpu=64000).invoke()
    assert "needs CPU=64" in str(info.value) and "has 4" in str(info.value)
    with pytest.raises(yr.PlacementError, match="no node in pool"):
        where.options(pool="edge-2", custom_resources={"camera": 1}).invoke()


def test_env_vars_reach_the_worker(yr_session):
    opts = yr.InvokeOptions(env_vars={"YR_TEST_FLAG": "on"})
    assert yr.get(read_env.options(opts).invoke("YR_TEST_FLAG"), timeout=120) == "on"


def test_retry_times_reruns_after_a_worker_crash(yr_session, tmp_path):
    marker = tmp_path / "attempts"

    @yr.invoke
    def crash_once(path):
        import pathlib

        p = pathlib.Path(path)
        n = int(p.read_text()) if p.exists() else 0
        p.write_text(str(n + 1))
        if n == 0:
            os._exit(1)
        return n + 1

    assert yr.get(crash_once.options(retry_times=2).invoke(str(marker)), timeout=120) == 2
    marker.unlink()
    with pytest.raises(yr.InstanceDiedError, match="retry_times"):
        yr.get(crash_once.invoke(str(marker)), timeout=120)


# --- stateful instances ------------------------------------------------------------------------

def test_instance_keeps_state(yr_session):
    c = Counter.invoke(5)
    assert isinstance(c, yr.InstanceProxy)
    assert yr.get(c.add.invoke(2)) == 7
    assert yr.get(c.add.invoke()) == 8
    assert yr.get(c.get.invoke()) == 8
    a, b = c.split.invoke()
    assert yr.get([a, b]) == [8, -8]
    assert [yr.get(r) for r in c.stream.invoke(3)] == [8, 9, 10]
    c.terminate()


def test_instance_method_exception(yr_session):
    c = Counter.invoke()
    with pytest.raises(KeyError) as info:
        yr.get(c.boom.invoke())
    assert isinstance(info.value, yr.YRInvokeError)
    assert yr.get(c.add.invoke(1)) == 1  # the instance survives its method's exception
    c.terminate()


def test_unknown_method_lists_the_real_ones(yr_session):
    c = Counter.invoke()
    with pytest.raises(AttributeError, match="no method 'ad'; its methods are: add, boom, get"):
        c.ad.invoke(1)
    with pytest.raises(TypeError, match=r"call .add.invoke"):
        c.add(1)
    c.terminate()


def test_terminated_instance_raises_instance_died(yr_session):
    c = Counter.invoke()
    assert yr.get(c.add.invoke(1)) == 1
    c.terminate(is_sync=True)
    with pytest.raises(yr.InstanceDiedError):
        yr.get(c.add.invoke(1), timeout=30)


def test_handles_pass_between_calls(yr_session):
    c = Counter.invoke(100)

    @yr.invoke
    def bump(counter):
        return yr.get(counter.add.invoke(5))

    assert yr.get(bump.invoke(c)) == 105
    assert yr.get(c.get.invoke()) == 105
    c.terminate()


def test_instance_options_and_placement(yr_session):
    c = Counter.options(yr.InvokeOptions(pool="edge-2", cpu=200)).invoke()
    assert yr.get(c.pool.invoke()) == "edge-2"
    c.terminate()
    with pytest.raises(yr.PlacementError, match="does not exist"):
        Counter.options(pool="nowhere").invoke()


def test_concurrency_runs_calls_in_parallel(yr_session):
    s = Sleeper.options(yr.InvokeOptions(concurrency=4, cpu=100)).invoke()
    yr.get(s.nap.invoke(0))
    t0 = time.monotonic()
    threads = yr.get([s.nap.invoke(1) for _ in range(4)])
    elapsed = time.monotonic() - t0
    assert elapsed < 2.5, elapsed
    assert len(set(threads)) > 1
    s.terminate()
    serial = Sleeper.options(cpu=100).invoke()
    yr.get(serial.nap.invoke(0))
    t0 = time.monotonic()
    yr.get([serial.nap.invoke(0.5) for _ in range(3)])
    assert time.monotonic() - t0 >= 1.4
    serial.terminate()


def test_recover_retry_times_restarts_the_instance(yr_session):
    @yr.instance
    class Fragile:
        def pid(self):
            return os.getpid()

        def die(self, in_pid):
            # Only the first process dies: recover_retry_times also retries this call on the
            # restarted instance, which must then survive it.
            if os.getpid() == in_pid:
                os._exit(1)

    f = Fragile.options(recover_retry_times=1, cpu=100).invoke()
    first, second = _crash_once(f)
    assert second != first
    f.terminate()


def _crash_once(inst) -> tuple[int, int]:
    """Kill the instance's process through its ``die(pid)`` method and wait until Ray restarted it.

    Returns the process ids before and after.
    """
    first = yr.get(inst.pid.invoke())
    inst.die.invoke(first)
    deadline = time.monotonic() + 60
    while True:
        try:
            return first, yr.get(inst.pid.invoke(), timeout=30)
        except yr.InstanceDiedError:
            assert time.monotonic() < deadline
            time.sleep(0.5)


# --- named instances ---------------------------------------------------------------------------

def test_named_instance_get_or_create(yr_session):
    name = _uid("ctr")
    a = Counter.options(yr.InvokeOptions(name=name)).invoke(1)
    b = Counter.options(yr.InvokeOptions(name=name)).invoke(999)  # returns the existing one
    assert yr.get(b.add.invoke(1)) == 2
    assert a == b
    assert name in yr.list_named_instances()
    assert yr.get(yr.get_instance(name).add.invoke(1)) == 3
    assert yr.get(Counter.get_instance(name).get.invoke()) == 3
    yr.kill_instance(name)
    deadline = time.monotonic() + 10
    while name in yr.list_named_instances() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert name not in yr.list_named_instances()


def test_named_instances_in_namespaces(yr_session):
    name = _uid("svc")
    x = Counter.options(name=name, namespace="ns-x").invoke(10)
    y = Counter.options(name=name, namespace="ns-y").invoke(20)
    assert yr.get(yr.get_instance(name, namespace="ns-x").get.invoke()) == 10
    assert yr.get(yr.get_instance(name, namespace="ns-y").get.invoke()) == 20
    listed = yr.list_named_instances(all_namespaces=True)
    assert {"name": name, "namespace": "ns-x"} in listed and {"name": name, "namespace": "ns-y"} in listed
    assert name not in yr.list_named_instances()
    with pytest.raises(yr.InstanceNotFoundError, match="exists in several namespaces"):
        yr.get_instance(name, timeout=0)
    x.terminate()
    y.terminate()
    only = _uid("solo")
    z = Counter.options(name=only, ns="ns-z").invoke(7)
    assert yr.get(yr.get_instance(only, timeout=5).get.invoke()) == 7  # found without its namespace
    z.terminate()


def test_get_instance_waits_for_a_creation_in_progress(yr_session):
    name = _uid("late")

    def create_later():
        time.sleep(1)
        Counter.options(name=name).invoke(5)

    t = threading.Thread(target=create_later)
    t.start()
    inst = yr.get_instance(name, timeout=30)
    t.join()
    assert yr.get(inst.get.invoke()) == 5
    inst.terminate()


def test_unknown_named_instance(yr_session):
    t0 = time.monotonic()
    with pytest.raises(yr.InstanceNotFoundError, match="no instance named 'ghost' in namespace 'default'") as info:
        yr.get_instance("ghost", timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert info.value.name == "ghost" and isinstance(info.value, RuntimeError)
    with pytest.raises(yr.InstanceNotFoundError):
        yr.kill_instance("ghost")


# --- resource groups ---------------------------------------------------------------------------

def test_resource_group_pins_calls_to_a_bundle(yr_session):
    rg = yr.create_resource_group([{"CPU": 500, "Memory": 128}, {"CPU": 500, "camera": 1}],
                                  name=_uid("rg"), strategy="SPREAD")
    rg.wait(30)
    assert rg.bundle_count == 2
    # memory left at the call default (500 MB) against bundle 1's default 128 MB: the call fits its bundle.
    opts = yr.InvokeOptions(cpu=500, custom_resources={"camera": 1})
    opts.resource_group_options = yr.ResourceGroupOptions(rg.resource_group_name, 1)
    assert yr.get(where.options(opts).invoke(), timeout=60) == "edge-1"
    opts.memory = 256
    with pytest.raises(yr.InvalidOptionError, match="bundle 1 .* is smaller"):
        where.options(opts).invoke()
    bad = yr.InvokeOptions(cpu=100, memory=10)
    bad.resource_group_options = yr.ResourceGroupOptions(rg.resource_group_name, 5)
    with pytest.raises(yr.InvalidOptionError, match="bundle_index=5 is out of range"):
        where.options(bad).invoke()
    yr.remove_resource_group(rg)
    missing = yr.InvokeOptions(resource_group_options=yr.ResourceGroupOptions("no-such-group", -1))
    with pytest.raises(yr.InvalidOptionError, match="no such resource group"):
        where.options(missing).invoke()


def test_infeasible_resource_groups_fail_fast(yr_session):
    with pytest.raises(yr.PlacementError, match="STRICT_SPREAD needs 4 different nodes but the cluster has 3"):
        yr.create_resource_group([{"CPU": 100}] * 4, strategy="STRICT_SPREAD")
    with pytest.raises(yr.PlacementError, match="can never be placed"):
        yr.create_resource_group([{"CPU": 3000}, {"CPU": 3000}], strategy="STRICT_PACK")
    with pytest.raises(yr.InvalidOptionError, match="strategy='CLOSE'"):
        yr.create_resource_group([{"CPU": 100}], strategy="CLOSE")


def test_resources_reports_openyuanrong_units(yr_session):
    nodes = [n for n in yr.resources() if n["status"] == 0]   # other tests may leave dead nodes listed
    assert len(nodes) == 3
    pools = sorted(n["labels"]["yr.io/pool"] for n in nodes)
    assert pools == ["cloud", "edge-1", "edge-2"]
    cloud = next(n for n in nodes if n["labels"]["yr.io/pool"] == "cloud")
    assert cloud["capacity"]["CPU"] == 4000 and cloud["status"] == 0
    assert cloud["allocatable"]["CPU"] <= 4000


# --- KV ----------------------------------------------------------------------------------------

def test_kv_write_read_nx_ttl_and_errors(yr_session):
    key = _uid("kv")
    yr.kv_write(key, b"v1")
    assert bytes(yr.kv_read(key)) == b"v1"
    with pytest.raises(yr.YRError) as info:
        yr.kv_write(key, b"v2", existence=yr.ExistenceOpt.NX)
    assert key in str(info.value)
    assert bytes(yr.kv_get(key, timeout=5)) == b"v1"
    yr.kv_write(key + "-ttl", b"short", ttl_second=1)
    time.sleep(2.5)
    with pytest.raises(yr.YRError, match="ttl|not|expired|found"):
        yr.kv_read(key + "-ttl", timeout=0)
    yr.kv_del([key])
    with pytest.raises(yr.YRError):
        yr.kv_read(key, timeout=0)


def test_terminate_runs_the_shutdown_hook_first(yr_session, tmp_path):
    marker = tmp_path / "shutdown"

    @yr.instance
    class Graceful:
        def __init__(self, path):
            self.path = path

        def ping(self):
            return "pong"

        def __yr_shutdown__(self, grace_period_seconds):
            with open(self.path, "w") as f:
                f.write(f"grace={grace_period_seconds}")

    g = Graceful.options(cpu=100).invoke(str(marker))
    assert yr.get(g.ping.invoke()) == "pong"
    g.terminate(grace_period_seconds=5)
    assert marker.read_text() == "grace=5"


@yr.instance
class Tally:
    def __init__(self, recover: bool = False):
        self.count = 0
        if recover:
            try:
                yr.load_state()         # after a restart: pick up what was saved before the crash
            except RuntimeError:
                pass                    # first start: nothing saved yet

    def add(self, n=1):
        self.count += n
        return self.count

    def save(self):
        yr.save_state()
        return self.count

    def load(self):
        yr.load_state()
        return self.count

    def die(self, in_pid):
        if os.getpid() == in_pid:
            os._exit(1)

    def pid(self):
        return os.getpid()


def test_save_and_load_state_restore_attributes(yr_session):
    c = Tally.options(cpu=100, memory=32).invoke()
    with pytest.raises(RuntimeError, match="Failed to load state"):
        yr.get(c.load.invoke())
    yr.get(c.add.invoke(5))
    assert yr.get(c.save.invoke()) == 5
    yr.get(c.add.invoke(10))
    assert yr.get(c.load.invoke()) == 5
    assert yr.get(c.add.invoke()) == 6
    c.terminate()


def test_restarted_instance_reloads_its_saved_state(yr_session):
    c = Tally.options(cpu=100, memory=32, recover_retry_times=1).invoke(True)
    yr.get(c.add.invoke(7))
    yr.get(c.save.invoke())
    first, pid = _crash_once(c)
    assert pid != first
    assert yr.get(c.add.invoke(1)) == 8           # 7 came back from the saved state
    c.terminate()


def test_state_calls_outside_an_instance_say_where_they_work(yr_session):
    with pytest.raises(RuntimeError, match="only works inside a method of a @yr.instance class"):
        yr.save_state()

    @yr.invoke
    def stateless():
        yr.load_state()

    with pytest.raises(RuntimeError, match="stateless function"):
        yr.get(stateless.options(cpu=100, memory=32).invoke())
    with pytest.raises(ValueError, match="timeout_sec=0"):
        yr.save_state(0)
