"""openYuanrong's trace switches, checked once: ``enable_trace`` and ``runtime_trace_config``.

``runtime_trace_config`` is a dict, or the same as a JSON string (the form openYuanrong's
``yr start --runtime_trace_config`` and its ``RUNTIME_TRACE_CONFIG`` environment variable take)::

    {"otlpGrpcExporter": {"enable": true, "endpoint": "127.0.0.1:4317"},
     "logFileExporter": {"enable": true}}

yuanrong extension: ``logFileExporter`` also takes ``"dir"`` (where each process writes its
``yr-trace-<pid>.log``; default :data:`DEFAULT_LOG_DIR`).

Pure: no Ray, no OpenTelemetry. The result is a frozen :class:`TraceConfig` that travels to the
workers as JSON (:meth:`TraceConfig.to_json`).
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
DEFAULT_LOG_DIR = "/tmp/yuanrong/trace"
EXPORTERS = {"otlpGrpcExporter": ("enable", "endpoint"), "logFileExporter": ("enable", "dir")}
_EXAMPLE = '{"otlpGrpcExporter": {"enable": true, "endpoint": "HOST:4317"}, "logFileExporter": {"enable": true}}'


@dataclasses.dataclass(frozen=True)
class TraceConfig:
    """Where this job's spans go.

    Attributes:
        otlp_endpoint: ``host:port`` of an OTLP/gRPC receiver (a collector, Jaeger), or ``""``.
        log_dir: Directory of the span log files, or ``""`` for no log files.
    """

    otlp_endpoint: str = ""
    log_dir: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TraceConfig:
        return cls(**json.loads(text))


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
    if not isinstance(enable_trace, bool):
        raise InvalidOptionError(f"Config.enable_trace={enable_trace!r} is invalid: expected True or False.",
                                 option="enable_trace", value=enable_trace)
    from_env = runtime_trace_config is None
    if from_env:
        runtime_trace_config = environ.get(CONFIG_ENV) or None
    if not enable_trace:
        if runtime_trace_config is not None and not from_env:
            raise _bad("Config.runtime_trace_config is set but enable_trace is False, so no span would be "
                       "exported: set enable_trace=True, or drop runtime_trace_config.", runtime_trace_config)
        return None
    if runtime_trace_config is None:
        raise _bad(f"Config.enable_trace=True needs runtime_trace_config to say where spans go, e.g. {_EXAMPLE} "
                   f"(or set {CONFIG_ENV}).", None)
    where = f"{CONFIG_ENV} (environment)" if from_env else "Config.runtime_trace_config"
    raw = _parse(runtime_trace_config, where)
    endpoint = log_dir = ""
    for exporter, settings in raw.items():
        if exporter not in EXPORTERS:
            raise _bad(f"{where} names an unknown exporter {exporter!r}; the exporters are "
                       f"{', '.join(EXPORTERS)}. Example: {_EXAMPLE}", runtime_trace_config)
        if not isinstance(settings, Mapping):
            raise _bad(f"{where}[{exporter!r}]={settings!r} must be an object such as {{\"enable\": true}}.",
                       runtime_trace_config)
        unknown = sorted(set(settings) - set(EXPORTERS[exporter]))
        if unknown:
            raise _bad(f"{where}[{exporter!r}] has unknown key(s) {unknown}; its keys are "
                       f"{', '.join(EXPORTERS[exporter])}.", runtime_trace_config)
        enable = settings.get("enable")
        if not isinstance(enable, bool):
            raise _bad(f"{where}[{exporter!r}]['enable']={enable!r} is required and must be true or false.",
                       runtime_trace_config)
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
                   f"otlpGrpcExporter or logFileExporter, e.g. {_EXAMPLE}; or set enable_trace=False.",
                   runtime_trace_config)
    return TraceConfig(otlp_endpoint=endpoint, log_dir=log_dir)


def _parse(value: Any, where: str) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise _bad(f"{where} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}): {value!r}. "
                       f"Example: {_EXAMPLE}", value) from None
    if not isinstance(value, Mapping):
        raise _bad(f"{where}={value!r} must be a dict (or a JSON object string) such as {_EXAMPLE}.", value)
    return value


def _endpoint(value: Any, where: str, whole: Any) -> str:
    """``host:port`` (an ``http://`` prefix is accepted; the OTLP/gRPC exporter connects without TLS)."""
    text = value if isinstance(value, str) else ""
    hostport = text.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _bad(f"{where}['otlpGrpcExporter']['endpoint']={value!r} must be 'host:port' of an OTLP/gRPC "
                   f"receiver, e.g. '127.0.0.1:4317'.", whole)
    if text.startswith("https://"):
        raise _bad(f"{where}['otlpGrpcExporter']['endpoint']={value!r}: TLS to the receiver is not supported; "
                   f"use a plain 'host:port' (a collector next to the cluster).", whole)
    return hostport
