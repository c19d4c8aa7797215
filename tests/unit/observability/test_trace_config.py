"""openYuanrong's trace switches: every bad value is refused with what was wrong and a valid example."""

from __future__ import annotations

import json

import pytest

import yuanrong as yr
from yuanrong._private import trace_config
from yuanrong._private.trace_config import MetricsConfig, TraceConfig

OTLP = {"otlpGrpcExporter": {"enable": True, "endpoint": "127.0.0.1:4317"}}


def resolve(enable, config, env=None):
    return trace_config.resolve(enable, config, environ=env or {})


def test_off_by_default_and_with_enable_false():
    assert resolve(None, None) is None
    assert resolve(False, None) is None


def test_otlp_and_log_file_from_a_dict_or_openyuanrongs_json_string():
    both = {**OTLP, "logFileExporter": {"enable": True}}
    assert resolve(True, both) == TraceConfig(otlp_endpoint="127.0.0.1:4317", log_dir=trace_config.DEFAULT_LOG_DIR)
    assert resolve(True, json.dumps(both)) == resolve(True, both)
    assert resolve(True, {"logFileExporter": {"enable": True, "dir": "/x"}}) == TraceConfig(log_dir="/x")
    # A disabled exporter is not used, even with an endpoint.
    assert resolve(True, {**OTLP, "logFileExporter": {"enable": False}}).log_dir == ""
    assert resolve(True, {"otlpGrpcExporter": {"enable": True, "endpoint": "http://collector:4317"}}
                   ).otlp_endpoint == "collector:4317"


def test_openyuanrongs_environment_variables_are_the_defaults():
    env = {"ENABLE_TRACE": "true", "RUNTIME_TRACE_CONFIG": json.dumps(OTLP)}
    assert resolve(None, None, env).otlp_endpoint == "127.0.0.1:4317"
    assert resolve(False, None, env) is None          # the Config wins over the environment
    with pytest.raises(yr.InvalidOptionError, match=r"RUNTIME_TRACE_CONFIG \(environment\) is not valid JSON"):
        resolve(None, None, {"ENABLE_TRACE": "1", "RUNTIME_TRACE_CONFIG": "{oops"})


@pytest.mark.parametrize("config, message", [
    ("{\"otlpGrpcExporter\": {", "is not valid JSON .*line 1 column"),
    ("[1, 2]", "must be a dict"),
    ({"jaegerExporter": {"enable": True}}, "unknown exporter 'jaegerExporter'; the exporters are otlpGrpcExporter, "
                                           "logFileExporter"),
    ({"otlpGrpcExporter": {"enable": True, "endpoint": "h:1", "tls": True}}, r"unknown key\(s\) \['tls'\]"),
    ({"otlpGrpcExporter": {"endpoint": "h:1"}}, r"\['enable'\]=None is required"),
    ({"otlpGrpcExporter": {"enable": "yes", "endpoint": "h:1"}}, r"\['enable'\]='yes' is required and must be true"),
    ({"otlpGrpcExporter": {"enable": True}}, "must be 'host:port'"),
    ({"otlpGrpcExporter": {"enable": True, "endpoint": "collector"}}, "must be 'host:port'"),
    ({"otlpGrpcExporter": {"enable": True, "endpoint": "h:99999"}}, "must be 'host:port'"),
    ({"otlpGrpcExporter": {"enable": True, "endpoint": "https://h:4317"}}, "TLS to the receiver is not supported"),
    ({"otlpGrpcExporter": True}, "must be an object"),
    ({"logFileExporter": {"enable": True, "dir": ""}}, "must be a non-empty path"),
    ({"otlpGrpcExporter": {"enable": False, "endpoint": "h:1"}}, "enables no exporter"),
    ({}, "enables no exporter"),
    ({"logFileExporter": {"enable": True}, "samplingRatio": 1.5}, r"\['samplingRatio'\]=1.5 must be a number from 0"),
    ({"logFileExporter": {"enable": True}, "samplingRatio": "0.1"}, "must be a number from 0 to 1"),
    ({"logFileExporter": {"enable": True}, "samplingRatio": True}, "must be a number from 0 to 1"),
    (None, "needs runtime_trace_config to say where spans go"),
])
def test_bad_configuration_is_refused_with_the_reason(config, message):
    with pytest.raises(yr.InvalidOptionError, match=message) as info:
        resolve(True, config)
    assert info.value.option == "runtime_trace_config"


def test_a_sampling_ratio_is_read_and_defaults_to_every_trace():
    assert resolve(True, {"logFileExporter": {"enable": True}}).sample_ratio == 1.0
    config = resolve(True, '{"logFileExporter": {"enable": true}, "samplingRatio": 0.25}')
    assert config.sample_ratio == 0.25
    assert trace_config.from_json(trace_config.to_json(config, None))[0] == config


def test_a_configuration_without_enable_trace_is_refused_not_ignored():
    with pytest.raises(yr.InvalidOptionError, match="enable_trace is False"):
        resolve(False, OTLP)


def test_enable_trace_must_be_a_bool():
    with pytest.raises(yr.InvalidOptionError, match="enable_trace='true' is invalid") as info:
        resolve("true", OTLP)
    assert info.value.option == "enable_trace"


def test_config_accepts_the_trace_fields():
    conf = yr.Config(enable_trace=True, runtime_trace_config=OTLP)
    assert conf.enable_trace is True and conf.runtime_trace_config == OTLP


def test_the_configuration_travels_as_json_without_the_drivers_prometheus_endpoint():
    trace = TraceConfig(otlp_endpoint="h:1", log_dir="/d")
    metrics = MetricsConfig(otlp_endpoint="h:2", prometheus_host="127.0.0.1", prometheus_port=9464)
    assert trace_config.from_json(trace_config.to_json(trace, None)) == (trace, None)
    assert trace_config.from_json(trace_config.to_json(None, metrics)) == (None, MetricsConfig(otlp_endpoint="h:2"))


def test_metrics_alone_serve_prometheus_on_loopback():
    assert trace_config.resolve_metrics(False, None, {}) is None
    assert trace_config.resolve_metrics(True, None, {}) == MetricsConfig(prometheus_host="127.0.0.1",
                                                                         prometheus_port=9464)
    both = {"otlpGrpcExporter": {"enable": True, "endpoint": "c:4317"},
            "prometheusExporter": {"enable": True, "port": 9000}}
    assert trace_config.resolve_metrics(True, json.dumps(both), {}) == MetricsConfig(
        otlp_endpoint="c:4317", prometheus_host="127.0.0.1", prometheus_port=9000)


@pytest.mark.parametrize("enable, config, message", [
    (True, {"statsd": {"enable": True}}, "unknown exporter 'statsd'"),
    (True, {"prometheusExporter": {"enable": True, "port": 0}}, "must be a TCP port"),
    (True, {"prometheusExporter": {"enable": True, "host": ""}}, "must be an interface address"),
    (True, {"prometheusExporter": {"enable": False}}, "enables no exporter"),
    (True, "{", "is not valid JSON"),
    (False, {"prometheusExporter": {"enable": True}}, "enable_metrics is False"),
    ("yes", None, "enable_metrics='yes' is invalid"),
])
def test_bad_metrics_configuration_is_refused(enable, config, message):
    with pytest.raises(yr.InvalidOptionError, match=message):
        trace_config.resolve_metrics(enable, config, {})
