"""@endpoint's options, checked where the decorator is applied; no cluster needed."""

from __future__ import annotations

import pytest

import yuanrong as yr
from yuanrong.endpoint import Autoscaling, Endpoint, endpoint


def handler(request):
    return "ok"


class Model:
    def __call__(self, request):
        return "ok"


def test_pool_becomes_a_label_selector_in_serve_actor_options():
    ep = endpoint(handler, route="/h", pool="edge-1", max_ongoing_requests=4, num_replicas=2)
    opts = ep.serve_options()
    assert isinstance(ep, Endpoint) and ep.route == "/h" and ep.name == "handler"
    assert opts["ray_actor_options"]["label_selector"] == {"yr.io/pool": "edge-1"}
    assert opts["num_replicas"] == 2 and opts["max_ongoing_requests"] == 4
    assert opts["ray_actor_options"]["num_cpus"] == 0.5


def test_tier_and_invoke_options_combine():
    ep = endpoint(Model, tier="edge", invoke_options=yr.InvokeOptions(cpu=250, memory=0, pool=["edge-1", "edge-2"]))
    sel = ep.serve_options()["ray_actor_options"]["label_selector"]
    assert sel == {"yr.io/pool": "in(edge-1,edge-2)", "yr.io/tier": "edge"}


def test_bundles_carry_the_pool_selector_per_bundle():
    ep = endpoint(handler, pool="edge-2", bundles=[{"CPU": 1}, {"CPU": 0.5}],
                  invoke_options=yr.InvokeOptions(cpu=500, memory=0))
    opts = ep.serve_options()
    assert opts["placement_group_bundles"] == [{"CPU": 1}, {"CPU": 0.5}]
    assert opts["placement_group_bundle_label_selector"] == [{"yr.io/pool": "edge-2"}] * 2
    assert "label_selector" not in opts["ray_actor_options"]


def test_replica_larger_than_its_first_bundle_is_refused():
    ep = endpoint(handler, bundles=[{"CPU": 0.25}], invoke_options=yr.InvokeOptions(cpu=1000, memory=0))
    with pytest.raises(yr.InvalidOptionError, match=r"first bundle"):
        ep.serve_options()


def test_autoscaling_is_passed_through_with_scale_to_zero():
    ep = endpoint(handler, autoscaling=Autoscaling(min_replicas=0, max_replicas=2, target_ongoing_requests=3))
    cfg = ep.serve_options()["autoscaling_config"]
    assert cfg["min_replicas"] == 0 and cfg["max_replicas"] == 2 and cfg["target_ongoing_requests"] == 3
    assert "num_replicas" not in ep.serve_options()


@pytest.mark.parametrize("kwargs, match", [
    ({"route": "no-slash"}, r"route='no-slash' is not a valid route prefix"),
    ({"route": "/trailing/"}, r"does not end with '/'"),
    ({"num_replicas": 0}, r"num_replicas=0 is invalid"),
    ({"num_replicas": 1, "autoscaling": Autoscaling()}, r"were both set"),
    ({"max_ongoing_requests": 0}, r"max_ongoing_requests=0"),
    ({"autoscaling": {"min_replicas": 0}}, r"pass yr.Autoscaling"),
    ({"invoke_options": {"cpu": 1}}, r"pass a yr.InvokeOptions"),
    ({"pool": ""}, r"InvokeOptions.pool=''"),
    ({"bundles": []}, r"bundles=\[\] is invalid"),
    ({"request_router": int}, r"RequestRouter"),
    ({"name": "a#b"}, r"name='a#b' is invalid"),
])
def test_bad_options_fail_at_decoration_with_a_fix(kwargs, match):
    with pytest.raises(yr.InvalidOptionError, match=match):
        endpoint(handler, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"min_replicas": 3, "max_replicas": 2}, r"min_replicas is above max_replicas"),
    ({"min_replicas": -1}, r"min_replicas=-1"),
    ({"max_replicas": 0}, r"max_replicas=0"),
    ({"target_ongoing_requests": 0}, r"target_ongoing_requests=0"),
    ({"initial_replicas": 5, "max_replicas": 2}, r"outside \[min_replicas, max_replicas\]"),
])
def test_bad_autoscaling(kwargs, match):
    with pytest.raises(yr.InvalidOptionError, match=match):
        Autoscaling(**kwargs)


def test_misuse_is_caught_with_a_suggestion():
    with pytest.raises(TypeError, match="lambda"):
        endpoint(lambda r: r)
    with pytest.raises(TypeError, match="keywords"):
        endpoint("/route")
    ep = endpoint(handler)
    with pytest.raises(TypeError, match="already an endpoint"):
        endpoint(ep)
    with pytest.raises(TypeError, match="not called directly"):
        ep(None)


def test_options_returns_a_new_endpoint():
    ep = endpoint(handler, route="/a", num_replicas=2)
    other = ep.options(route="/b", autoscaling=Autoscaling(min_replicas=0, max_replicas=1))
    assert ep.route == "/a" and ep.spec.num_replicas == 2
    assert other.route == "/b" and other.spec.num_replicas is None and other.spec.autoscaling.min_replicas == 0
    with pytest.raises(yr.InvalidOptionError, match="unknown option"):
        ep.options(replicas=3)


def test_public_surface_is_sorted_and_importable():
    import yuanrong.endpoint as public

    assert public.__all__ == sorted(public.__all__)
    assert all(hasattr(public, name) for name in public.__all__)
    assert public.GATEWAY_ROUTE == "/serverless"
