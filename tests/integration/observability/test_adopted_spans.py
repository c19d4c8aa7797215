"""Instances that are not created by their own Ray actor creation still run their calls in spans:
an instance adopted by a warm worker, and the members of a yr.Group."""

from __future__ import annotations

import sys
import time

import pytest
import ray

import yuanrong as yr
from yuanrong._private import session
from yuanrong._private.core import warm_workers

pytestmark = pytest.mark.cluster
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@yr.instance
class Tally:
    def __init__(self, start=0):
        self.n = start

    def add(self, k):
        self.n += k
        return self.n

    def where(self):
        return ray.get_runtime_context().get_actor_id()


@pytest.fixture
def warm(traced_session):
    s = session.current()
    s.warm_pools = warm_workers.start({"cloud": 1}, {})
    try:
        deadline = time.monotonic() + 60
        while not s.warm_pools.idle().get(("cloud", warm_workers.SYNC)):
            assert time.monotonic() < deadline, "the warm pool did not fill within 60 s"
            time.sleep(0.1)
        yield s.warm_pools
    finally:
        s.warm_pools.stop()
        s.warm_pools = None


def _chain_ok(spans, submit, run):
    return next((r for r in spans if r["name"] == run and any(
        s["name"] == submit and s["span_id"] == r["parent_id"] for s in spans)), None)


def test_an_instance_adopted_by_a_warm_worker_runs_its_calls_in_spans(traced_session, warm):
    idle = {w["actor_id"] for w in warm.idle()[("cloud", warm_workers.SYNC)]}
    tally = Tally.invoke(5)
    assert yr.get(tally.add.invoke(2), timeout=60) == 7
    adopted = yr.get(tally.where.invoke(), timeout=60)
    assert adopted == tally.instance_id
    assert adopted in idle  # the pre-started worker adopted it
    spans = traced_session.wait_for_spans(lambda got: _chain_ok(got, "yr.invoke Tally.add", "yr.run Tally.add")
                                          and _chain_ok(got, "yr.create Tally", "yr.run Tally.__init__"))
    run = _chain_ok(spans, "yr.invoke Tally.add", "yr.run Tally.add")
    assert run["attributes"]["yr.instance_id"] == tally.instance_id
    assert run["attributes"]["yr.pool"] == "cloud" and run["attributes"]["yr.call_path"] == "instance"
    tally.terminate()


def test_group_members_run_their_constructor_and_calls_in_spans(traced_session):
    group = yr.Group("traced-group", yr.GroupOptions(timeout=60))
    member = Tally.options(yr.InvokeOptions(cpu=200, memory=32, group_name="traced-group", pool="edge-1")).invoke(1)
    group.invoke()
    group.wait()
    assert yr.get(member.add.invoke(1), timeout=60) == 2
    spans = traced_session.wait_for_spans(lambda got: _chain_ok(got, "yr.invoke Tally.add", "yr.run Tally.add")
                                          and any(s["name"] == "yr.run Tally.__init__"
                                                  and s["attributes"]["yr.instance_id"] == member.instance_id
                                                  for s in got))
    run = next(s for s in spans if s["name"] == "yr.run Tally.add"
               and s["attributes"]["yr.instance_id"] == member.instance_id)
    assert run["attributes"]["yr.pool"] == "edge-1"
    group.terminate()
