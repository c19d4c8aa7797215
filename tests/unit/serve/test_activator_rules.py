"""The activator's options and scaling decisions, without Ray."""

from __future__ import annotations

import pytest

import yuanrong as yr
from yuanrong._private.serve import scaling
from yuanrong._private.serve.scaling import ReplicaLoad
from yuanrong.endpoint import Activator, Autoscaling, endpoint

ZERO = Autoscaling(min_replicas=0, max_replicas=3, target_ongoing_requests=2)


def handler(request):
    return None


class NoCall:
    pass


def test_activator_options_show_what_serve_is_given():
    ep = endpoint(handler, pool="edge-1", autoscaling=ZERO, max_ongoing_requests=4, activator=True)
    opts = ep.serve_options()
    assert opts["num_replicas"] == 1 and "autoscaling_config" not in opts
    assert opts["ray_actor_options"] == {"num_cpus": 0, "label_selector": {"yr.io/pool": "edge-1"}}
    assert opts["max_ongoing_requests"] == 4 * 3
    assert ep.spec.activator == Activator()
    assert ep.options(route="/other").spec.activator == Activator()
    assert ep.options(activator=None).serve_options()["autoscaling_config"]["min_replicas"] == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"activator": True}, r"activator is for endpoints that scale to zero.*Autoscaling\(min_replicas=0"),
    ({"activator": True, "autoscaling": Autoscaling(min_replicas=1)}, r"min_replicas=0"),
    ({"activator": "yes", "autoscaling": ZERO}, r"pass True or yuanrong.endpoint.Activator"),
    ({"activator": True, "autoscaling": ZERO, "bundles": [{"CPU": 1}]}, r"bundles=.*cannot be used with activator"),
    ({"activator": True, "autoscaling": ZERO, "request_router": "pkg.Router"}, r"routes requests itself"),
    ({"activator": True, "autoscaling": Autoscaling(min_replicas=0, max_replicas=2, initial_replicas=1)},
     r"initial_replicas=1 with activator"),
])
def test_bad_activator_options_are_refused_with_the_fix(kwargs, match):
    with pytest.raises(yr.InvalidOptionError, match=match):
        endpoint(handler, **kwargs)


def test_a_class_without_call_is_refused():
    with pytest.raises(yr.InvalidOptionError, match=r"has no __call__.*def __call__\(self, request\)"):
        endpoint(NoCall, autoscaling=ZERO, activator=True)


@pytest.mark.parametrize("kwargs, match", [({"warm_workers": -1}, "warm_workers=-1"),
                                           ({"warm_workers": 1.5}, "warm_workers=1.5"),
                                           ({"replica_timeout_s": 0}, "replica_timeout_s=0")])
def test_activator_values_are_checked(kwargs, match):
    with pytest.raises(yr.InvalidOptionError, match=match):
        Activator(**kwargs)


def test_from_zero_replicas_start_at_once_for_the_demand():
    assert scaling.replicas_to_add(1, 0, target=2, max_replicas=3, upscale_delay_s=30, overloaded_since=None,
                                   now=0) == (1, None)
    assert scaling.replicas_to_add(9, 0, target=2, max_replicas=3, upscale_delay_s=30, overloaded_since=None,
                                   now=0) == (3, None)
    assert scaling.replicas_to_add(0, 0, target=2, max_replicas=3, upscale_delay_s=0, overloaded_since=None,
                                   now=0) == (0, None)


def test_above_zero_load_must_stay_high_for_the_upscale_delay():
    kw = {"target": 1, "max_replicas": 3, "upscale_delay_s": 2}
    assert scaling.replicas_to_add(3, 1, overloaded_since=None, now=10, **kw) == (0, 10)
    assert scaling.replicas_to_add(3, 1, overloaded_since=10, now=11, **kw) == (0, 10)
    assert scaling.replicas_to_add(3, 1, overloaded_since=10, now=12, **kw) == (2, None)
    assert scaling.replicas_to_add(1, 1, overloaded_since=10, now=12, **kw) == (0, None)
    assert scaling.replicas_to_add(5, 3, overloaded_since=None, now=0, **kw) == (0, None), "capped at max"


def test_requests_go_to_the_least_loaded_replica_below_the_cap():
    loads = [ReplicaLoad(2, None), ReplicaLoad(1, None), ReplicaLoad(1, None)]
    assert scaling.least_loaded(loads, cap=5) == 1
    assert scaling.least_loaded(loads, cap=1) is None
    assert scaling.least_loaded([], cap=5) is None


def test_replicas_idle_for_the_delay_are_released_longest_idle_first():
    loads = [ReplicaLoad(0, 5.0), ReplicaLoad(1, None), ReplicaLoad(0, 1.0), ReplicaLoad(0, 9.5)]
    assert scaling.idle_to_release(loads, now=10, downscale_delay_s=2) == [2, 0]
    assert scaling.idle_to_release(loads, now=10, downscale_delay_s=2, min_replicas=3) == [2]
    assert scaling.idle_to_release(loads, now=10, downscale_delay_s=20) == []


def test_the_replica_pool_follows_the_endpoints_selector():
    pools = {"cloud": "cloud", "edge-1": "edge", "edge-2": "edge"}
    kw = {"pool_label": "yr.io/pool", "tier_label": "yr.io/tier"}
    assert scaling.replica_pool({"yr.io/pool": "edge-2"}, None, pools, **kw) == "edge-2"
    assert scaling.replica_pool({"yr.io/pool": "in(edge-9,edge-1)"}, None, pools, **kw) == "edge-1"
    assert scaling.replica_pool({"yr.io/tier": "edge"}, None, pools, **kw) == "edge-1"
    assert scaling.replica_pool(None, "cloud", pools, **kw) == "cloud"
    assert scaling.replica_pool(None, None, pools, **kw) == "cloud"
    assert scaling.replica_pool({"yr.io/pool": "edge-9"}, None, pools, **kw) is None
