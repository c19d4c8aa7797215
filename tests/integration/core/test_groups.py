"""yr.Group: instances reserved all-or-nothing across pools, created together, sharing one fate."""

from __future__ import annotations

import time

import pytest

import yuanrong as yr

pytestmark = pytest.mark.cluster


@yr.instance
class Stage:
    def __init__(self, role):
        self.role = role

    def where(self):
        import ray

        return self.role, ray.get_runtime_context().get_node_labels()["yr.io/pool"]

    def crash(self):
        import os

        os._exit(1)


@yr.instance
class Broken:
    def __init__(self):
        raise ValueError("bad model path")


def _member(group, role, **opts):
    return Stage.options(yr.InvokeOptions(cpu=200, memory=32, group_name=group, **opts)).invoke(role)


def test_group_spans_pools_and_members_start_together(yr_session):
    g = yr.Group("pipeline", yr.GroupOptions(timeout=60, strategy="SPREAD"))
    decode = _member("pipeline", "decode", pool="edge-1")
    model = _member("pipeline", "model", tier="cloud")
    with pytest.raises(yr.YRError, match="has not been created yet"):
        decode.where.invoke()
    g.invoke()
    g.wait()
    assert yr.get([decode.where.invoke(), model.where.invoke()]) == [("decode", "edge-1"), ("model", "cloud")]
    assert [i.instance_id for i in g.instances] == [decode.instance_id, model.instance_id]
    g.terminate()
    with pytest.raises(yr.InstanceDiedError):
        yr.get(model.where.invoke(), timeout=30)


def test_a_group_that_cannot_fit_creates_nothing(yr_session):
    g = yr.Group("too-big", yr.GroupOptions(timeout=5))
    # Each member fits the 2-CPU edge-2 node alone; together they never can.
    first = Stage.options(yr.InvokeOptions(cpu=1500, memory=32, group_name="too-big", pool="edge-2")).invoke("a")
    Stage.options(yr.InvokeOptions(cpu=1500, memory=32, group_name="too-big", pool="edge-2")).invoke("b")
    t0 = time.monotonic()
    with pytest.raises(yr.PlacementError) as err:
        g.invoke()
    assert time.monotonic() - t0 < 5 and "too-big" in str(err.value) and "edge-2" in str(err.value)
    with pytest.raises(yr.YRError, match="never created"):
        first.where.invoke()


def test_a_failing_constructor_terminates_the_whole_group(yr_session):
    g = yr.Group("half-broken", yr.GroupOptions(timeout=60))
    ok = _member("half-broken", "ok")
    Broken.options(yr.InvokeOptions(cpu=100, memory=32, group_name="half-broken")).invoke()
    g.invoke()
    with pytest.raises(ValueError, match="bad model path"):   # the constructor's own exception
        g.wait()
    with pytest.raises(yr.InstanceDiedError):
        yr.get(ok.where.invoke(), timeout=30)


def test_same_lifecycle_members_die_together(yr_session):
    g = yr.Group("fate", yr.GroupOptions(timeout=60))
    a, b = _member("fate", "a"), _member("fate", "b")
    g.invoke()
    g.wait()
    a.crash.invoke()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            yr.get(b.where.invoke(), timeout=5)
        except yr.InstanceDiedError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("member b still alive 30 s after member a died")
    g.terminate()


def test_group_errors_name_what_to_fix(yr_session):
    with pytest.raises(yr.InvalidOptionError, match="no members"):
        yr.Group("empty").invoke()
    with pytest.raises(yr.InvalidOptionError, match="group_name"):
        yr.Group("")
    with pytest.raises(yr.InvalidOptionError, match="strategy"):
        yr.Group("g", yr.GroupOptions(strategy="ROUND_ROBIN"))
    with pytest.raises(yr.InvalidOptionError, match="timeout"):
        yr.Group("g", yr.GroupOptions(timeout=0))
    with pytest.raises(yr.InvalidOptionError, match="stateless function"):

        @yr.invoke(invoke_options=yr.InvokeOptions(group_name="g"))
        def f():
            return 1

    _member("affine", "x", labels=["role:x"])
    with pytest.raises(yr.InvalidOptionError, match="labels"):
        yr.Group("affine").invoke()
    with pytest.raises(yr.YRError, match="only an invoked, unterminated group can be suspended"):
        yr.Group("g").suspend()


@yr.instance
class Tally:
    def __init__(self, start):
        self.total = start

    def add(self, k):
        self.total += k
        return self.total


def test_suspend_frees_the_group_and_resume_brings_back_each_members_state(yr_session):
    g = yr.Group("pausable", yr.GroupOptions(timeout=60))
    opts = yr.InvokeOptions(cpu=200, memory=32, group_name="pausable")
    a, b = Tally.options(opts).invoke(0), Tally.options(opts).invoke(100)
    g.invoke()
    assert yr.get([a.add.invoke(1), b.add.invoke(1)], timeout=30) == [1, 101]
    old_ids = {a.instance_id, b.instance_id}
    g.suspend()
    with pytest.raises(yr.YRError, match="suspended"):
        a.add.invoke(1)
    g.resume()
    assert yr.get([a.add.invoke(1), b.add.invoke(1)], timeout=30) == [2, 102]
    assert {a.instance_id, b.instance_id}.isdisjoint(old_ids)
    g.terminate()
    with pytest.raises(yr.YRError, match="not suspended"):
        g.resume()
