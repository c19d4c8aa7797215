"""yr.fcc function groups: members reserved together, bundles sharing a node, ranks, handlers."""

from __future__ import annotations

import pytest
import ray

import yuanrong as yr

pytestmark = pytest.mark.cluster


def _opts(**kw):
    return yr.FunctionGroupOptions(**{"cpu": 200, "memory": 32, "scheduling_affinity_each_bundle_size": 2, **kw})


@yr.invoke
def ranked(tag):
    ctx = yr.fcc.get_function_group_context()
    return tag, ctx.rank_id, ctx.world_size, ray.get_runtime_context().get_node_id()


@yr.invoke(return_nums=2)
def pair(a, b):
    return a, b


@yr.instance
class Member:
    def __init__(self, name):
        self.name = name

    def who(self):
        ctx = yr.fcc.get_function_group_context()
        return self.name, ctx.rank_id, ctx.world_size, ray.get_runtime_context().get_node_id()

    @yr.method(return_nums=2)
    def two(self):
        return self.name, self.name.upper()

    def fail(self):
        raise RuntimeError("member failed")


def test_function_members_know_their_rank_and_bundles_share_a_node(yr_session):
    out = yr.get(yr.fcc.create_function_group(ranked, args=("t",), group_size=4, options=_opts()))
    assert [o[:3] for o in out] == [("t", r, 4) for r in range(4)]
    assert out[0][3] == out[1][3] and out[2][3] == out[3][3]
    assert yr.fcc.get_function_group_context().world_size == 0


def test_return_nums_are_flattened_per_member_and_a_single_result_is_one_ref(yr_session):
    assert yr.get(yr.fcc.create_function_group(pair, args=("a", "b"), group_size=2, options=_opts())) == \
        ["a", "b", "a", "b"]
    one = yr.fcc.create_function_group(ranked, args=("x",), group_size=1,
                                       options=_opts(scheduling_affinity_each_bundle_size=1))
    assert yr.get(one)[:3] == ("x", 0, 1)


def test_class_members_answer_every_call_and_terminate(yr_session):
    handler = yr.fcc.create_function_group(Member, args=("m",), group_size=2, options=_opts())
    try:
        handler.accelerate()
        assert [w[:3] for w in yr.get(handler.who.invoke())] == [("m", 0, 2), ("m", 1, 2)]
        assert yr.get(handler.two.invoke()) == ["m", "M", "m", "M"]
        with pytest.raises(RuntimeError, match="member failed"):
            yr.get(handler.fail.invoke())
    finally:
        handler.terminate()
    with pytest.raises(yr.InvalidOptionError, match="terminated"):
        handler.who.invoke()


@pytest.mark.parametrize("kw, match", [
    ({"scheduling_affinity_each_bundle_size": 0}, "invalid bundle size"),
    ({"scheduling_affinity_each_bundle_size": None}, "invalid bundle size"),
    ({"scheduling_affinity_each_bundle_size": 3}, "divide the group size"),
    ({"timeout": -2}, "invalid timeout"),
    ({"timeout": -0.1}, "invalid timeout"),
])
def test_bad_options_are_refused_naming_the_field(yr_session, kw, match):
    with pytest.raises(yr.InvalidOptionError, match=match):
        yr.fcc.create_function_group(ranked, args=("t",), group_size=4, options=_opts(**kw))


def test_a_group_that_can_never_fit_fails_fast(yr_session):
    with pytest.raises(yr.PlacementError):
        yr.fcc.create_function_group(ranked, args=("t",), group_size=2,
                                     options=_opts(cpu=64000, scheduling_affinity_each_bundle_size=1))
