"""The members of a function group (yr.fcc) run in spans, children of the group's submit span.

A function's group has one ``yr.invoke`` span in the caller and a ``yr.run`` span per member, each
saying its rank; a member's own calls are children of its run. A class's group has one
``yr.create`` span, a ``yr.run CLASS.__init__`` per member, and a handler's call has one
``yr.group`` span over the members' calls, each traced as any instance's.
"""

from __future__ import annotations

import sys

import pytest
import ray

import yuanrong as yr

pytestmark = pytest.mark.cluster
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _opts():
    return yr.FunctionGroupOptions(cpu=200, memory=32, scheduling_affinity_each_bundle_size=1)


@yr.invoke
def doubled(x):
    return 2 * x


@yr.invoke
def ranked_member(base):
    rank = yr.fcc.get_function_group_context().rank_id
    return yr.get(doubled.options(cpu=100, memory=0).invoke(base + rank))


@yr.instance
class RankedMember:
    def __init__(self, tag):
        self.tag = tag

    def who(self):
        return self.tag, yr.fcc.get_function_group_context().rank_id


def _named(spans, name):
    return [s for s in spans if s["name"] == name]


def test_function_members_run_in_spans_with_their_rank_under_the_groups_submit_span(traced_session, ray_cluster):
    assert yr.get(yr.fcc.create_function_group(ranked_member, args=(10,), group_size=2, options=_opts()),
                  timeout=60) == [20, 22]
    # Spans arrive from each process on its own schedule: wait for every one the checks below read.
    spans = traced_session.wait_for_spans(lambda got: len(_named(got, "yr.run ranked_member")) == 2
                                          and len(_named(got, "yr.run doubled")) == 2
                                          and len(_named(got, "yr.invoke doubled")) == 2
                                          and _named(got, "yr.invoke ranked_member"))
    [submit] = _named(spans, "yr.invoke ranked_member")
    assert submit["parent_id"] == "" and submit["resource"]["yr.role"] == "driver"
    assert submit["attributes"]["yr.group_size"] == 2
    runs = sorted(_named(spans, "yr.run ranked_member"), key=lambda s: s["attributes"]["yr.rank"])
    assert [r["attributes"]["yr.rank"] for r in runs] == [0, 1]
    all_nodes = {n for pool in ("cloud", "edge-1", "edge-2") for n in ray_cluster.node_ids(pool)}
    for run in runs:
        assert run["parent_id"] == submit["span_id"] and run["trace_id"] == submit["trace_id"]
        attributes = run["attributes"]
        assert attributes["yr.call_path"] == "task" and attributes["yr.instance_id"] == ""
        assert attributes["yr.node_id"] in ray_cluster.node_ids(attributes["yr.pool"])
        assert attributes["yr.node_id"] in all_nodes and "yr.tier" in attributes
        assert run["resource"]["yr.role"] == "worker"
    # Each member's nested call is a child of that member's run.
    by_id = {s["span_id"]: s for s in spans}
    for nested in _named(spans, "yr.run doubled"):
        submit_nested = by_id[nested["parent_id"]]
        assert submit_nested["name"] == "yr.invoke doubled"
        assert by_id[submit_nested["parent_id"]] in runs


def test_class_members_construct_in_spans_and_their_calls_are_traced(traced_session):
    handler = yr.fcc.create_function_group(RankedMember, args=("m",), group_size=2, options=_opts())
    try:
        assert yr.get(handler.who.invoke(), timeout=60) == [("m", 0), ("m", 1)]
        ids = [m.instance_id for m in handler.instances]
        spans = traced_session.wait_for_spans(lambda got: len(_named(got, "yr.run RankedMember.__init__")) == 2
                                              and len(_named(got, "yr.run RankedMember.who")) == 2
                                              and len(_named(got, "yr.invoke RankedMember.who")) == 2
                                              and _named(got, "yr.create RankedMember")
                                              and _named(got, "yr.group RankedMember.who"))
    finally:
        handler.terminate()
    [create] = _named(spans, "yr.create RankedMember")
    assert create["attributes"]["yr.group_size"] == 2 and create["parent_id"] == ""
    inits = {s["attributes"]["yr.instance_id"]: s for s in _named(spans, "yr.run RankedMember.__init__")}
    assert set(inits) == set(ids)
    for rank, instance_id in enumerate(ids):
        assert inits[instance_id]["parent_id"] == create["span_id"]
        assert inits[instance_id]["attributes"]["yr.rank"] == rank
    by_id = {s["span_id"]: s for s in spans}
    [group_call] = _named(spans, "yr.group RankedMember.who")
    assert group_call["attributes"]["yr.group_size"] == 2 and group_call["parent_id"] == ""
    for run in _named(spans, "yr.run RankedMember.who"):
        attributes = run["attributes"]
        submit = by_id[run["parent_id"]]
        assert submit["name"] == "yr.invoke RankedMember.who" and submit["parent_id"] == group_call["span_id"]
        assert submit["attributes"]["yr.instance_id"] == attributes["yr.instance_id"]
        assert attributes["yr.rank"] == ids.index(attributes["yr.instance_id"])
        assert attributes["yr.call_path"] == "instance" and attributes["yr.pool"]
