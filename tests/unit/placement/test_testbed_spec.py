"""The testbed's topology without starting it: which node's processes get which RPC delay, which callers
lose which share of their calls."""

from __future__ import annotations

import json

import pytest

from yuanrong.testbed import CLIENT_REGION, Testbed, TestbedSpec, format_loss, format_rtts, loss_env, wilson_interval


def test_only_the_far_nodes_serve_their_calls_late():
    nodes = {n.pool: n for n in TestbedSpec(cloud_ms=38, edge2_ms=15.5).nodes()}
    assert nodes["cloud"].env == {"RAY_testing_asio_delay_us": "CoreWorkerService.grpc_server.PushTask=38000:38000"}
    assert nodes["edge-2"].env == {"RAY_testing_asio_delay_us": "CoreWorkerService.grpc_server.PushTask=15500:15500"}
    assert dict(nodes["edge-1"].env) == {}  # the clients' own site
    assert nodes["edge-1"].region == CLIENT_REGION
    assert dict(TestbedSpec(cloud_ms=0).nodes()[0].env) == {}


@pytest.mark.parametrize("bad", [-1, 10_001, "38", True, float("nan")])
def test_a_delay_out_of_range_is_refused_naming_the_field(bad):
    with pytest.raises(ValueError, match=r"cloud_ms=.* is not a delay between 0 and 10000 ms"):
        TestbedSpec(cloud_ms=bad)


def test_the_table_shows_the_error_of_the_emulated_part():
    row = {"from": "site-1", "pool": "cloud", "configured_ms": 38.0, "p50_ms": 39.5, "p90_ms": 40.0,
           "base_ms": 0.5, "emulated_ms": 39.0}
    assert format_rtts([row]).splitlines()[1].split() == ["site-1", "cloud", "38.0", "39.50", "40.00", "0.50",
                                                          "39.00", "+1.00"]


def test_a_link_loss_becomes_rays_failure_injection_in_the_caller():
    failures = json.loads(loss_env(5)["RAY_testing_rpc_failure"])
    assert failures == {"CoreWorkerService.grpc_client.PushTask": {"num_failures": -1, "req_failure_prob": 3,
                                                                  "resp_failure_prob": 2}}
    assert loss_env(0) == {}
    for split, legs in (("request", (5, 0)), ("reply", (0, 5))):
        got = json.loads(loss_env(5, split)["RAY_testing_rpc_failure"])["CoreWorkerService.grpc_client.PushTask"]
        assert (got["req_failure_prob"], got["resp_failure_prob"]) == legs
    with pytest.raises(ValueError, match=r"loss_split='late' is not one of both, request, reply"):
        TestbedSpec(loss_split="late")
    spec = TestbedSpec(cloud_loss_pct=10, edge2_loss_pct=4.0)
    assert spec.configured_loss == {"edge-1": 0, "edge-2": 4, "cloud": 10}
    assert all("RAY_testing_rpc_failure" not in n.env for n in spec.nodes())  # the nodes stay lossless
    bed = Testbed(spec)
    assert bed.link_caller_options("cloud")["runtime_env"]["env_vars"] == loss_env(10)
    assert bed.link_caller_options("cloud")["label_selector"] == {"yr.io/pool": "edge-1"}
    assert bed.link_caller_options("edge-1")["runtime_env"] is None
    with pytest.raises(ValueError, match=r"pool='fog' is not in the testbed; known pools: edge-1, edge-2, cloud"):
        bed.link_caller_options("fog")


@pytest.mark.parametrize("bad", [-1, 101, 2.5, 0.05, "5", True, float("nan")])
def test_a_loss_that_ray_cannot_express_is_refused_naming_the_field(bad):
    with pytest.raises(ValueError, match=r"edge2_loss_pct=.* is not a whole percent between 0 and 100; Ray's RPC "
                                         r"failure injection draws whole percents"):
        TestbedSpec(edge2_loss_pct=bad)


def test_the_wilson_interval_brackets_the_share_and_needs_a_trial():
    low, high = wilson_interval(10, 100)
    assert 0.05 < low < 0.10 < high < 0.18
    assert wilson_interval(0, 50)[0] == 0.0
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)


def test_the_loss_table_shows_configured_measured_and_the_cost():
    row = {"from": "site-1", "pool": "cloud", "configured_pct": 10, "attempts": 110, "lost": 11,
           "measured_pct": 10.0, "ci_low_pct": 5.7, "ci_high_pct": 17.0, "lost_after_ms": 1500.0, "ok_p50_ms": 40.1,
           "request_p50_ms": 40.3, "request_p99_ms": 1600.0, "request_mean_ms": 190.0, "failed": 0, "timed_out": 0}
    assert format_loss([row]).splitlines()[1].split() == ["site-1", "cloud", "10", "10.0", "5.7-17.0", "11/110",
                                                          "1500", "40.1", "40.3", "1600.0", "190.0", "0", "0"]
