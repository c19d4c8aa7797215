"""Bad trace configuration: a clear error before connecting, or one warning; never a hang or a failed call."""

from __future__ import annotations

import logging
import socket
import sys
import time

import pytest
import ray

import yuanrong as yr
from tests.conftest import POOLS_FILE
from yuanrong._private import tracing

pytestmark = pytest.mark.cluster
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@yr.invoke
def one():
    return 1


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def reconnect(yr_session, ray_cluster):
    """Lets a test call yr.init itself; the shared untraced connection is restored afterwards."""
    yr.finalize()
    try:
        yield ray_cluster.address
    finally:
        yr.finalize()
        yr.init(yr.Config(server_address=ray_cluster.address, pools_file=str(POOLS_FILE)))


@pytest.mark.parametrize("config, message", [
    ('{"otlpGrpcExporter": {"enable": true, "endpoint": ', "is not valid JSON"),
    ({"zipkinExporter": {"enable": True}}, "unknown exporter 'zipkinExporter'"),
])
def test_malformed_or_unknown_configuration_fails_init_before_connecting(reconnect, config, message):
    with pytest.raises(yr.InvalidOptionError, match=message):
        yr.init(yr.Config(server_address=reconnect, enable_trace=True, runtime_trace_config=config))
    assert not yr.is_initialized() and not tracing.enabled


def test_an_unreachable_collector_costs_one_warning_and_calls_still_run(reconnect, caplog):
    endpoint = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="yuanrong"):
        yr.init(yr.Config(server_address=reconnect, enable_trace=True,
                          runtime_trace_config={"otlpGrpcExporter": {"enable": True, "endpoint": endpoint}}))
        # Nothing is left to export to: tracing stays off rather than buffering spans for nobody.
        assert not tracing.enabled
        assert yr.get([one.options(cpu=100, memory=0).invoke() for _ in range(5)], timeout=60) == [1] * 5
        yr.finalize()
    assert time.monotonic() - started < 30
    warnings = [r.getMessage() for r in caplog.records if endpoint in r.getMessage()]
    assert len(warnings) == 1 and "no OTLP/gRPC receiver" in warnings[0]
