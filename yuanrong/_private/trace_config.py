"""openYuanrong's trace and metrics switches, checked once: ``enable_trace`` and
``runtime_trace_config``; ``enable_metrics`` and (a yuanrong extension) ``runtime_metrics_config``.

``runtime_trace_config`` is a dict, or the same as a JSON string (the form openYuanrong's
``yr start --runtime_trace_config`` and its ``RUNTIME_TRACE_CONFIG`` environment variable take)::

    {"otlpGrpcExporter": {"enable": true, "endpoint": "127.0.0.1:4317"},
     "logFileExporter": {"enable": true}}

yuanrong extensions: ``logFileExporter`` also takes ``"dir"`` (where each process writes its
``yr-trace-<pid>.log``; default :data:`DEFAULT_LOG_DIR`); a top-level ``"samplingRatio"`` (0..1,
default 1) records that share of the traces a job starts, and a call whose caller (or HTTP client)
sent a ``traceparent`` follows the caller's decision.

``runtime_metrics_config`` has the same shape, with ``prometheusExporter {enable, host, port}`` (a
scrape endpoint in the driver, loopback by default) next to ``otlpGrpcExporter``. ``enable_metrics``
alone serves the Prometheus endpoint on :data:`DEFAULT_PROMETHEUS`.

Pure: no Ray, no OpenTelemetry. The results are frozen :class:`TraceConfig` and
:class:`MetricsConfig`, which travel to the workers as JSON (:func:`to_json`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from yuanrong.exception import InvalidOptionError

ENABLE_ENV = "ENABLE_TRACE"
CONFIG_ENV = "RUNTIME_TRACE_CONFIG"
METRICS_CONFIG_ENV = "RUNTIME_METRICS_CONFIG"
DEFAULT_PROMETHEUS = ("127.0.0.1", 9464)
DEFAULT_LOG_DIR = "/tmp/yuanrong/trace"
SAMPLING_KEY = "samplingRatio"
EXPORTERS = {"otlpGrpcExporter": ("enable", "endpoint"), "logFileExporter": ("enable", "dir")}
METRICS_EXPORTERS = {"otlpGrpcExporter": ("enable", "endpoint"), "prometheusExporter": ("enable", "host", "port")}
EXAMPLE = '{"otlpGrpcExporter": {"enable": true, "endpoint": "HOST:4317"}, "logFileExporter": {"enable": true}}'


@dataclasses.dataclass(frozen=True)
class TraceConfig:
    """Where this job's spans go.

    Attributes:
        otlp_endpoint: ``host:port`` of an OTLP/gRPC receiver (a collector, Jaeger), or ``""``.
        log_dir: Directory of the span log files, or ``""`` for no log files.
        sample_ratio: Share of the traces started here that are recorded (parent-based below the root).
    """

    otlp_endpoint: str = ""
    log_dir: str = ""
    sample_ratio: float = 1.0


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """Where this job's metrics go.

    Attributes:
        otlp_endpoint: ``host:port`` of an OTLP/gRPC receiver, or ``""``; every process exports there.
        prometheus_host / prometheus_port: The driver's scrape endpoint, or ``""`` / 0 for none.
    """

    otlp_endpoint: str = ""
    prometheus_host: str = ""
    prometheus_port: int = 0


def to_json(trace: TraceConfig | None, metrics: MetricsConfig | None) -> str:
    """What a traced call carries to its worker: both configurations (``null`` when off)."""
    return json.dumps({"trace": dataclasses.asdict(trace) if trace else None,
                       "metrics": dataclasses.asdict(metrics) if metrics else None},
                      sort_keys=True, separators=(",", ":"))


def from_json(text: str) -> tuple[TraceConfig | None, MetricsConfig | None]:
    raw = json.loads(text)
    trace, metrics = raw.get("trace"), raw.get("metrics")
    return (TraceConfig(**trace) if trace else None,
            MetricsConfig(**{**metrics, "prometheus_host": "", "prometheus_port": 0}) if metrics else None)


def _bad(message: str, value: Any) -> InvalidOptionError:
    return InvalidOptionError(message, option="runtime_trace_config", value=value)


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def resolve(enable_trace: Any, runtime_trace_config: Any, environ: Mapping[str, str] | None = None
            ) -> TraceConfig | None:
    """The trace configuration of a job, or None when tracing is off.

    ``enable_trace=None`` / ``runtime_trace_config=None`` fall back to openYuanrong's environment
    variables ``ENABLE_TRACE`` and ``RUNTIME_TRACE_CONFIG``.

    Raises:
        InvalidOptionError: A value is malformed, names an unknown exporter or key, or asks for
            tracing with no exporter (the message says which, and shows a valid example).
    """
    environ = os.environ if environ is None else environ
    if enable_trace is None:
        enable_trace = _truthy(environ.get(ENABLE_ENV, ""))
    switched = _switch("enable_trace", enable_trace, "runtime_trace_config", runtime_trace_config, CONFIG_ENV,
                       environ)
    if switched is None:
        return None
    runtime_trace_config, from_env = switched
    if runtime_trace_config is None:
        raise _bad(f"Config.enable_trace=True needs runtime_trace_config to say where spans go, e.g. {EXAMPLE} "
                   f"(or set {CONFIG_ENV}).", None)
    where = f"{CONFIG_ENV} (environment)" if from_env else "Config.runtime_trace_config"
    raw = dict(_parse(runtime_trace_config, where))
    ratio = raw.pop(SAMPLING_KEY, 1.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
        raise _bad(f"{where}[{SAMPLING_KEY!r}]={ratio!r} must be a number from 0 to 1 (the share of traces "
                   f"recorded), e.g. 0.1.", runtime_trace_config)
    endpoint = log_dir = ""
    for exporter, settings in raw.items():
        enable = _exporter_settings(exporter, settings, where, EXPORTERS, runtime_trace_config, EXAMPLE,
                                    "runtime_trace_config")
        if not enable:
            continue
        if exporter == "otlpGrpcExporter":
            endpoint = _endpoint(settings.get("endpoint"), where, runtime_trace_config)
        else:
            log_dir = settings.get("dir", DEFAULT_LOG_DIR)
            if not isinstance(log_dir, str) or not log_dir:
                raise _bad(f"{where}['logFileExporter']['dir']={log_dir!r} must be a non-empty path.",
                           runtime_trace_config)
    if not endpoint and not log_dir:
        raise _bad(f"{where} enables no exporter, so no span would go anywhere: set \"enable\": true on "
                   f"otlpGrpcExporter or logFileExporter, e.g. {EXAMPLE}; or set enable_trace=False.",
                   runtime_trace_config)
    return TraceConfig(otlp_endpoint=endpoint, log_dir=log_dir, sample_ratio=float(ratio))


_METRICS_EXAMPLE = '{"prometheusExporter": {"enable": true, "port": 9464}}'


def resolve_metrics(enable_metrics: Any, runtime_metrics_config: Any, environ: Mapping[str, str] | None = None
                    ) -> MetricsConfig | None:
    """The metrics configuration of a job, or None when metrics are off.

    Raises:
        InvalidOptionError: as :func:`resolve` does, for ``runtime_metrics_config``.
    """
    environ = os.environ if environ is None else environ
    switched = _switch("enable_metrics", enable_metrics, "runtime_metrics_config", runtime_metrics_config,
                       METRICS_CONFIG_ENV, environ)
    if switched is None:
        return None
    runtime_metrics_config, from_env = switched
    if runtime_metrics_config is None:
        return MetricsConfig(prometheus_host=DEFAULT_PROMETHEUS[0], prometheus_port=DEFAULT_PROMETHEUS[1])
    where = f"{METRICS_CONFIG_ENV} (environment)" if from_env else "Config.runtime_metrics_config"
    raw = _parse(runtime_metrics_config, where, _METRICS_EXAMPLE, "runtime_metrics_config")
    endpoint, host, port = "", "", 0
    for exporter, settings in raw.items():
        enable = _exporter_settings(exporter, settings, where, METRICS_EXPORTERS, runtime_metrics_config,
                                    _METRICS_EXAMPLE, "runtime_metrics_config")
        if not enable:
            continue
        if exporter == "otlpGrpcExporter":
            endpoint = _endpoint(settings.get("endpoint"), where, runtime_metrics_config, "runtime_metrics_config")
        else:
            host = settings.get("host", DEFAULT_PROMETHEUS[0])
            port = settings.get("port", DEFAULT_PROMETHEUS[1])
            if not isinstance(host, str) or not host:
                raise InvalidOptionError(f"{where}['prometheusExporter']['host']={host!r} must be an interface "
                                         f"address such as '127.0.0.1'.", option="runtime_metrics_config", value=host)
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise InvalidOptionError(f"{where}['prometheusExporter']['port']={port!r} must be a TCP port in "
                                         f"1..65535.", option="runtime_metrics_config", value=port)
    if not endpoint and not host:
        raise InvalidOptionError(f"{where} enables no exporter: set \"enable\": true on otlpGrpcExporter or "
                                 f"prometheusExporter, e.g. {_METRICS_EXAMPLE}; or set enable_metrics=False.",
                                 option="runtime_metrics_config", value=runtime_metrics_config)
    return MetricsConfig(otlp_endpoint=endpoint, prometheus_host=host, prometheus_port=port)


def _switch(flag: str, enable: Any, option: str, config: Any, env: str, environ: Mapping[str, str]
            ) -> tuple[Any, bool] | None:
    """One switch and its configuration (read from ``env`` when not given): ``(config, from_env)``
    when the switch is on, None when it is off.

    Raises:
        InvalidOptionError: ``enable`` is not a bool, or a configuration was given to a switch that is off.
    """
    if not isinstance(enable, bool):
        raise InvalidOptionError(f"Config.{flag}={enable!r} is invalid: expected True or False.",
                                 option=flag, value=enable)
    from_env = config is None
    if from_env:
        config = environ.get(env) or None
    if not enable:
        if config is not None and not from_env:
            raise InvalidOptionError(f"Config.{option} is set but {flag} is False, so nothing would be exported: "
                                     f"set {flag}=True, or drop {option}.", option=option, value=config)
        return None
    return config, from_env


def _exporter_settings(exporter: str, settings: Any, where: str, known: Mapping[str, tuple[str, ...]], whole: Any,
                       example: str, option: str) -> bool:
    """Check one exporter's entry; returns its ``enable``."""
    if exporter not in known:
        extra = f" (and {SAMPLING_KEY!r})" if option == "runtime_trace_config" else ""
        raise InvalidOptionError(f"{where} names an unknown exporter {exporter!r}; the exporters are "
                                 f"{', '.join(known)}{extra}. Example: {example}", option=option, value=whole)
    if not isinstance(settings, Mapping):
        raise InvalidOptionError(f"{where}[{exporter!r}]={settings!r} must be an object such as "
                                 f"{{\"enable\": true}}.", option=option, value=whole)
    unknown = sorted(set(settings) - set(known[exporter]))
    if unknown:
        raise InvalidOptionError(f"{where}[{exporter!r}] has unknown key(s) {unknown}; its keys are "
                                 f"{', '.join(known[exporter])}.", option=option, value=whole)
    enable = settings.get("enable")
    if not isinstance(enable, bool):
        raise InvalidOptionError(f"{where}[{exporter!r}]['enable']={enable!r} is required and must be true or "
                                 f"false.", option=option, value=whole)
    return enable


def _parse(value: Any, where: str, example: str = EXAMPLE, option: str = "runtime_trace_config"
           ) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise InvalidOptionError(f"{where} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}): "
                                     f"{value!r}. Example: {example}", option=option, value=value) from None
    if not isinstance(value, Mapping):
        raise InvalidOptionError(f"{where}={value!r} must be a dict (or a JSON object string) such as {example}.",
                                 option=option, value=value)
    return value


def _endpoint(value: Any, where: str, whole: Any, option: str = "runtime_trace_config") -> str:
    """``host:port`` (an ``http://`` prefix is accepted; the OTLP/gRPC exporter connects without TLS)."""
    text = value if isinstance(value, str) else ""
    hostport = text.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidOptionError(f"{where}['otlpGrpcExporter']['endpoint']={value!r} must be 'host:port' of an "
                                 f"OTLP/gRPC receiver, e.g. '127.0.0.1:4317'.", option=option, value=whole)
    if text.startswith("https://"):
        raise InvalidOptionError(f"{where}['otlpGrpcExporter']['endpoint']={value!r}: TLS to the receiver is not "
                                 f"supported; use a plain 'host:port' (a collector next to the cluster).",
                                 option=option, value=whole)
    return hostport
