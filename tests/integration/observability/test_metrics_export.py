"""Built-in and user metrics from the driver and the workers arrive over OTLP/gRPC with the right counts."""

from __future__ import annotations

import sys
import time

import pytest
import ray

import yuanrong as yr

pytestmark = pytest.mark.cluster
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

CALLS = 6


@yr.invoke
def tally(i):
    if i % 3 == 2:
        raise ValueError("every third call fails")
    yr.metrics.UInt64Counter("tallied", "calls tallied", labels={"where": "worker"}).add(1)
    return i


def test_calls_errors_and_user_metrics_arrive_with_their_counts(traced_session):
    f = tally.options(pool="edge-1", cpu=100, memory=0)
    refs = [f.invoke(i) for i in range(CALLS)]
    outcomes = []
    for ref in refs:
        try:
            outcomes.append(yr.get(ref, timeout=60))
        except ValueError:
            outcomes.append("error")
    assert outcomes.count("error") == 2
    ok = {"yr.function": "tally", "yr.pool": "edge-1", "yr.outcome": "ok"}
    error = {**ok, "yr.outcome": "error"}
    traced_session.wait_for_metrics(lambda _: traced_session.latest("yr.calls", **ok) == CALLS - 2
                                    and traced_session.latest("yr.calls", **error) == 2
                                    and traced_session.latest("tallied", where="worker") == CALLS - 2)
    assert traced_session.latest("yr.call.duration", **ok) == CALLS - 2   # histogram point counts
    assert traced_session.latest("yr.cold_starts", **{"yr.function": "tally"}) >= 1


def test_the_driver_reports_the_function_instances_it_holds(traced_session):
    f = tally.options(pool="edge-2", cpu=100, memory=0, min_instances=2)
    assert yr.get(f.invoke(0), timeout=60) == 0
    deadline = time.monotonic() + 30

    def two_instances(points):
        latest = [p for p in points if p["name"] == "yr.function.instances"
                  and p["attributes"].get("yr.function") == "tally" and p["resource"].get("yr.role") == "driver"]
        return bool(latest) and latest[-1]["value"] == 2

    traced_session.wait_for_metrics(two_instances, timeout=max(1.0, deadline - time.monotonic()))
