"""Warm workers: which instances adopt, which pool they come from, and how they are counted (pure)."""

from __future__ import annotations

import pytest

import yuanrong as yr
from yuanrong._private import options as options_mod
from yuanrong._private import config_checks
from yuanrong._private.core import warm_workers
from yuanrong._private.core.warm_workers import ASYNC, SYNC, MethodTable, WarmRequest, choose_pool, request_for
from yuanrong.cli._ray_state import build_snapshot
from yuanrong.cli._status_view import render_table


def _request(cls_is_async=False, **kw):
    opts = yr.InvokeOptions(**kw)
    return request_for(opts, options_mod.resolve(opts, for_instance=True), is_async=cls_is_async)


def test_only_the_default_shape_without_names_groups_or_placement_adopts():
    assert _request() == WarmRequest(SYNC)
    assert _request(True) == WarmRequest(ASYNC)
    assert _request(pool="edge-1", recover_retry_times=2) == WarmRequest(SYNC, ("edge-1",), None, 2)
    assert _request(tier="edge") == WarmRequest(SYNC, (), "edge")
    cold = [dict(cpu=100), dict(memory=32), dict(custom_resources={"camera": 1}), dict(name="svc"),
            dict(group_name="g"), dict(concurrency=4), dict(env_vars={"A": "1"}), dict(labels=["role:db"]),
            dict(custom_extensions={"lifecycle": "detached"}), dict(placement_policy="cost_first"),
            dict(resource_group_options=yr.ResourceGroupOptions("rg", 0))]
    for kw in cold:
        assert _request(**kw) is None, kw


def test_a_pool_is_chosen_among_allowed_ones_with_the_most_idle_workers():
    idle = {("cloud", SYNC): 1, ("edge-1", SYNC): 2, ("edge-2", SYNC): 0, ("cloud", ASYNC): 3}
    tiers = {"cloud": "cloud", "edge-1": "edge", "edge-2": "edge"}
    assert choose_pool(WarmRequest(SYNC), idle, tiers) == "edge-1"
    assert choose_pool(WarmRequest(SYNC, ("cloud",)), idle, tiers) == "cloud"
    assert choose_pool(WarmRequest(SYNC, ("edge-2",)), idle, tiers) is None
    assert choose_pool(WarmRequest(SYNC, (), "cloud"), idle, tiers) == "cloud"
    assert choose_pool(WarmRequest(ASYNC, (), "edge"), idle, tiers) is None


def test_pool_sizes_are_checked_against_the_live_pools():
    pools = {"cloud": "cloud", "edge-1": "edge"}
    assert warm_workers.sizes_for(1, pools, field="warm_pool_size") == {"cloud": 1, "edge-1": 1}
    assert warm_workers.sizes_for({"cloud": 2, "edge-1": 0}, pools, field="warm_pool_size") == {"cloud": 2}
    with pytest.raises(yr.InvalidOptionError, match=r"'mars'.*known pools: cloud, edge-1"):
        warm_workers.sizes_for({"mars": 1}, pools, field="warm_pool_size")
    with pytest.raises(yr.InvalidOptionError, match="Config.warm_pool_size"):
        config_checks.check(yr.Config(warm_pool_size=-1))
    with pytest.raises(yr.InvalidOptionError, match="Config.warm_async_pool_size"):
        config_checks.check(yr.Config(warm_async_pool_size={"cloud": "2"}))


class Counter:
    def add(self, k=1):
        return k

    @yr.method(return_nums=2)
    def split(self):
        return 1, -1

    def stream(self, k):
        yield from range(k)


def test_method_table_knows_return_nums_and_generators():
    table = MethodTable.of(Counter, 0)
    assert table.returns["split"] == 2 and table.returns["stream"] == "streaming" and table.returns["add"] == 1
    assert "__init__" not in table.returns


def test_status_counts_warm_workers_apart_from_instances():
    tables = {"nodes": [{"NodeID": "c1", "Alive": True, "Labels": {"yr.io/pool": "cloud"}, "Resources": {"CPU": 4}}],
              "totals": {}, "available": {},
              "actors": {"a": {"State": "ALIVE", "ActorClassName": "WarmWorker", "Address": {"NodeID": "c1"}},
                         "b": {"State": "ALIVE", "ActorClassName": "AsyncWarmWorker", "Address": {"NodeID": "c1"}},
                         "c": {"State": "ALIVE", "ActorClassName": "Counter", "Address": {"NodeID": "c1"}}}}
    snap = build_snapshot(tables, address="x")
    (cloud,) = snap["pools"]
    assert cloud["warm_workers"] == 2 and [i["class_name"] for i in cloud["instances"]] == ["Counter"]
    snap["datasets"] = {}
    assert "warm workers: 2" in render_table(snap)
