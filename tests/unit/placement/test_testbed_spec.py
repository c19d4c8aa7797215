"""The testbed's topology without starting it: which node's processes get which RPC delay."""

from __future__ import annotations

import pytest

from yuanrong.testbed import CLIENT_REGION, TestbedSpec, format_rtts


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
