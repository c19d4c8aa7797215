"""yr.metrics and the built-in call metrics, read back from the Prometheus endpoint (no Ray)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from opentelemetry.sdk.resources import Resource

import yuanrong as yr
from yuanrong._private import metering
from yuanrong._private.trace_config import MetricsConfig


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def scrape(tmp_path, monkeypatch):
    from yuanrong._private import auth

    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    auth.ensure_token_file()
    port = _free_port()
    metering.start(MetricsConfig(prometheus_host="127.0.0.1", prometheus_port=port),
                   Resource.create({"service.name": "yuanrong"}), serve_prometheus=True)

    def read(token=auth.mint()):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read().decode()

    try:
        yield read
    finally:
        metering.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def _sample(text, name, **labels):
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in:\n{text}")


def test_user_metrics_reach_the_prometheus_endpoint(scrape):
    orders = yr.metrics.UInt64Counter("shop_orders", "orders taken", labels={"shop": "eu"})
    orders.add(2)
    orders.set(5)
    depth = yr.metrics.Gauge("queue_depth", "jobs waiting").add_labels({"queue": "a"})
    depth.set(3)
    depth.set(7)
    seconds = yr.metrics.Counter("work_seconds")
    seconds.add(1.5)
    yr.metrics.CustomGauge("temperature", callback=lambda: {(("room", "lab"),): 21.5})
    text = scrape()
    assert _sample(text, "shop_orders_total", shop="eu") == 5
    assert _sample(text, "queue_depth", queue="a") == 7
    assert _sample(text, "work_seconds_total") == 1.5
    assert _sample(text, "temperature", room="lab") == 21.5


def test_built_in_call_metrics_count_calls_errors_and_cold_starts(scrape):
    where = {"yr.function": "add", "yr.call_path": "task", "yr.pool": "edge-1"}
    metering.record_call(where, 0.01, error=False, cold=True)
    metering.record_call(where, 0.02, error=False, cold=False)
    metering.record_call(where, 0.03, error=True, cold=False)
    text = scrape()
    assert _sample(text, "yr_calls_total", yr_function="add", yr_outcome="ok") == 2
    assert _sample(text, "yr_calls_total", yr_function="add", yr_outcome="error") == 1
    assert _sample(text, "yr_cold_starts_total", yr_function="add") == 1
    assert _sample(text, "yr_call_duration_seconds_count", yr_function="add", yr_outcome="ok") == 2


def test_placement_decisions_are_counted_by_policy_pool_and_offload(scrape):
    metering.record_placement("edge_first", "edge-1", False)
    metering.record_placement("edge_first", "cloud", True)
    metering.record_placement("edge_first", "cloud", True)
    text = scrape()
    assert _sample(text, "yr_placements_total", yr_placement_pool="cloud", yr_placement_offloaded="true") == 2
    assert _sample(text, "yr_placements_total", yr_placement_pool="edge-1", yr_placement_offloaded="false") == 1


def test_datashare_bytes_published_and_read_are_counted_by_direction(scrape):
    from datashare import telemetry

    telemetry.report("published", 1000, {"datashare.name": "features", "datashare.zero_copy": True})
    telemetry.report("read", 400, {"datashare.name": "features", "datashare.zero_copy": False})
    telemetry.report("read", 600, {"datashare.name": "features", "datashare.zero_copy": False})
    text = scrape()
    assert _sample(text, "datashare_io_bytes_total", datashare_io_direction="published") == 1000
    assert _sample(text, "datashare_io_bytes_total", datashare_io_direction="read", datashare_zero_copy="false") == 1000


def test_datashare_reports_nothing_once_metrics_stop():
    from datashare import telemetry

    metering.stop()
    telemetry.report("read", 5, {"datashare.name": "x"})  # no provider: recorded nowhere, no error


def test_recording_while_metrics_are_off_does_nothing_and_bad_values_are_refused():
    assert not metering.on()
    counter = yr.metrics.UInt64Counter("jobs_done")
    counter.add(1)
    with pytest.raises(yr.InvalidOptionError, match="never goes down"):
        counter.set(0)
    with pytest.raises(yr.InvalidOptionError, match="expected an int >= 0"):
        counter.add(1.5)
    with pytest.raises(yr.InvalidOptionError, match="a metric name"):
        yr.metrics.Gauge("9lives")
    with pytest.raises(yr.InvalidOptionError, match="label name '__x'"):
        yr.metrics.Gauge("g", labels={"__x": "1"})
    with pytest.raises(yr.InvalidOptionError, match="must be callable"):
        yr.metrics.CustomCounter("c", callback=3)


def test_the_prometheus_endpoint_wants_a_token_of_the_jobs_tenant(scrape):
    from yuanrong._private import auth

    assert "target_info" in scrape() or scrape() is not None
    for token in (None, "forged", auth.mint("bank")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(token)
        assert refused.value.code == 401 and refused.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert scrape(auth.mint("ops", role="admin")) is not None
