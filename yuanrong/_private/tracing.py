"""This process's OpenTelemetry tracer provider, and the W3C context that calls carry.

The driver starts tracing (and metrics, :mod:`metering`) in ``yr.init`` (:func:`start`); a worker
starts them the first time a call arrives carrying the job's configuration (:func:`adopt`): every
call of a job with traces or metrics on sends, next to its W3C ``traceparent``, the job's
:class:`~yuanrong._private.trace_config.TraceConfig` and ``MetricsConfig`` as JSON. So workers
on any node, instances created by the job and workers it reaches through nested calls export the
same way, without a process-wide environment that only a newly started cluster could receive; and
a process no traced call reaches never starts an exporter.

The call path reads one boolean, :data:`enabled`; everything else runs only when it is true.
Spans go through a ``BatchSpanProcessor`` with a short delay (a worker may be stopped at any time,
so they must not wait long); the per-call spans wait as long in their recorder's queue
(:mod:`.light_spans`), which exports to the same exporters. :func:`stop` flushes both
(``yr.finalize``, and process exit).

No Ray here: the Ray-side attributes (node, pool, instance) come from the callers in ``core/``.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from yuanrong._private import light_spans, metering, span_log, trace_config
from yuanrong._private.trace_config import MetricsConfig, TraceConfig
from yuanrong.exception import InvalidOptionError

logger = logging.getLogger("yuanrong")

#: The keyword argument a traced call carries its context in (removed before user code runs).
CTX_KWARG = "_yr_trace_ctx"
CONFIG_KEY = "yr-trace-config"
TRACER_NAME = "yuanrong"
SERVICE_NAME = "yuanrong"
LOG_PREFIX = span_log.LOG_PREFIX  # openYuanrong's marker of a span line in its log files
# A worker may be stopped any time: a span waits at most this long in its queue (the batch
# processor's for SDK spans, the recorder's for per-call spans) before its export starts.
SCHEDULE_DELAY_MS = 100
# A burst of thousands of async calls makes a span each: the SDK's default queue (2,048) would drop some.
MAX_QUEUE = 65536
BATCH = 1024
EXPORT_TIMEOUT_S = 5
FLUSH_TIMEOUT_MS = 5000
PROBE_TIMEOUT_S = 1.0

#: Whether yuanrong's calls in this process carry telemetry (spans, metrics or both): the one check
#: on the call path.
enabled = False
#: Whether spans are exported (metrics alone make calls carry the context, without spans).
spans = False

_lock = threading.Lock()
_adopt_lock = threading.Lock()  # concurrent first calls in a threaded actor start one provider
_provider: TracerProvider | None = None
_tracer: Any = None
_config_json = ""
_config_id = ""       # a short digest of _config_json: what a compact carrier names it by
_refused: set[str] = set()      # worker configurations that failed to start: warned once each
_propagator = TraceContextTextMapPropagator()
_atexit_registered = False


class _CurrentTracer(otel_trace.Tracer):
    """A tracer that starts its spans with whatever provider this process has now (a no-op one
    while tracing is off), so libraries that took OpenTelemetry's global tracer once (datashare,
    user code) follow ``yr.init`` / ``yr.finalize``."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._for: Any = None
        self._tracer: Any = otel_trace.NoOpTracer()

    def _current(self) -> Any:
        provider = _provider
        if provider is not self._for:
            self._tracer = provider.get_tracer(self._name) if provider is not None else otel_trace.NoOpTracer()
            self._for = provider
        return self._tracer

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._current().start_as_current_span(*args, **kwargs)


class _CurrentProvider(otel_trace.TracerProvider):
    """OpenTelemetry's global provider while yuanrong owns it (installed unless the program set its own)."""

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> Any:
        return _CurrentTracer(instrumenting_module_name)


def _install_global_provider() -> None:
    if isinstance(otel_trace.get_tracer_provider(), otel_trace.ProxyTracerProvider):
        otel_trace.set_tracer_provider(_CurrentProvider())


def check_port_free(host: str, port: int) -> None:
    """Refuse, naming the option, a Prometheus endpoint that cannot listen (checked before connecting)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        raise InvalidOptionError(
            f"the Prometheus endpoint cannot listen on {host}:{port} ({e.strerror or e}): pick another "
            f"runtime_metrics_config prometheusExporter \"port\" (or \"host\"), or stop what uses it.",
            option="runtime_metrics_config", value=f"{host}:{port}") from None


def check_log_dir(path: str) -> None:
    """Refuse, naming the option, a span log directory this user cannot write."""
    try:
        os.makedirs(path, exist_ok=True)
        writable = os.access(path, os.W_OK)
    except OSError as e:
        writable, path = False, f"{path} ({e.strerror or e})"
    if not writable:
        raise InvalidOptionError(
            f"runtime_trace_config's logFileExporter cannot write to {path}: give logFileExporter a \"dir\" this "
            f"user may write, or disable it.", option="runtime_trace_config", value=path)


def probe(endpoint: str, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """Why nothing accepts connections at ``endpoint`` (``host:port``), or ``""`` if something does."""
    host, _, port = endpoint.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        return e.strerror or str(e)
    return ""


def start(config: TraceConfig | None, metrics: MetricsConfig | None = None, *,
          attributes: Mapping[str, Any] | None = None, driver: bool = False, carried: str = "") -> None:
    """Start exporting this process's spans and metrics as the configurations say (replacing earlier
    providers). ``driver``: this process serves the Prometheus endpoint, if one is configured.
    ``carried``: the configuration as a call carried it (a worker keeps that text, so the next call's
    equal text is recognised: the worker's own encoding drops the driver's Prometheus endpoint)."""
    global _provider, _tracer, _config_json, _config_id, enabled, spans, _atexit_registered
    resource = Resource.create({"service.name": SERVICE_NAME, "process.pid": os.getpid(), **(attributes or {})})
    provider, recorder = _make_provider(config, resource) if config is not None else (None, None)
    if metrics is not None:
        metering.start(metrics, resource, serve_prometheus=driver)
    with _lock:
        old, _provider = _provider, provider
        _tracer = provider.get_tracer(TRACER_NAME) if provider is not None else otel_trace.NoOpTracer()
        _config_json = carried or trace_config.to_json(config, metrics)
        _config_id = hashlib.sha256(_config_json.encode()).hexdigest()[:16]
        spans = provider is not None
        old_recorder = light_spans.configure(recorder)
        enabled = True
        if not _atexit_registered:
            atexit.register(stop)
            _atexit_registered = True
    if provider is not None:
        _install_global_provider()
    if old_recorder is not None:
        old_recorder.shutdown()   # its spans to the old provider's processors, before they shut down
    if old is not None:
        old.shutdown()


def adopt(config_json: str, attributes: Mapping[str, Any] | None = None) -> bool:
    """In a worker: trace as the call's job does. Returns whether tracing is on afterwards.

    A configuration this process cannot use (say, a log directory it may not write) is logged once
    and the calls run untraced: tracing never fails a call.
    """
    if config_json == _config_json:
        return True
    with _adopt_lock:
        if config_json == _config_json:
            return True
        if config_json in _refused:
            return False
        try:
            trace, metrics = trace_config.from_json(config_json)
            start(trace, metrics, attributes=attributes, carried=config_json)
        except Exception as e:  # noqa: BLE001 - any failure to set up tracing must leave the call running
            _refused.add(config_json)
            logger.warning("tracing could not start in this worker (pid %d), its calls run untraced: %s",
                           os.getpid(), e)
            return False
    return True


def _make_provider(config: TraceConfig, resource: Resource) -> tuple[TracerProvider, light_spans.Recorder]:
    """The SDK provider of this process, and the recorder of its per-call spans (the same exporters)."""
    # Parent-based: a call's spans follow the decision its caller (or the HTTP client) made.
    ratio = config.sample_ratio
    root_sampler = None if ratio >= 1 else TraceIdRatioBased(ratio)
    provider = TracerProvider(resource=resource, sampler=ParentBased(root_sampler or ALWAYS_ON))
    exporters = []
    if config.otlp_endpoint:
        # Imported only when asked for: the OTLP exporter loads gRPC and protobuf modules.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporters.append(_OneAtATime(OTLPSpanExporter(endpoint=config.otlp_endpoint, insecure=True,
                                                      timeout=EXPORT_TIMEOUT_S)))
    if config.log_dir:
        os.makedirs(config.log_dir, exist_ok=True)
        # Block-buffered: the exporter flushes after each batch, so a batch is one write, not a
        # write per span line (what line buffering made it).
        out = open(os.path.join(config.log_dir, f"yr-trace-{os.getpid()}.log"), "a",  # noqa: SIM115
                   encoding="utf-8")
        exporters.append(_OneAtATime(span_log.SpanLogExporter(out, resource)))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=SCHEDULE_DELAY_MS,
                                                       export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
                                                       max_queue_size=MAX_QUEUE, max_export_batch_size=BATCH))
    return provider, light_spans.Recorder(resource, TRACER_NAME, exporters, root_sampler,
                                          delay_s=SCHEDULE_DELAY_MS / 1000, batch=BATCH, max_queue=MAX_QUEUE)


class _OneAtATime(SpanExporter):
    """An exporter shared by the provider's batch processor (SDK spans) and the light spans' recorder
    (per-call spans), which export from two threads: one export at a time, as each expects."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter
        self._lock = threading.Lock()
        self.takes_light_spans = getattr(exporter, "takes_light_spans", False)

    def export(self, spans: Sequence[Any]) -> Any:
        with self._lock:
            return self._exporter.export(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        with self._lock:
            self._exporter.shutdown()

    def __repr__(self) -> str:
        return repr(self._exporter)


def tracer() -> Any:
    """yuanrong's tracer in this process (a no-op tracer while tracing is off)."""
    return _tracer if enabled else otel_trace.get_tracer(TRACER_NAME)


def get_tracer(name: str) -> Any:
    """A tracer named ``name`` from this process's provider (OpenTelemetry's global one when off)."""
    provider = _provider
    if provider is not None:
        return provider.get_tracer(name)
    return otel_trace.get_tracer(name)


def carrier(span: Any = None) -> dict[str, str]:
    """What a call sends: the W3C ``traceparent`` of ``span`` (default: the current span) and the
    job's trace configuration."""
    ctx = (span if span is not None else otel_trace.get_current_span()).get_span_context()
    if not ctx.is_valid:
        return {CONFIG_KEY: _config_json}
    out = {CONFIG_KEY: _config_json,
           "traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"}
    if ctx.trace_state:
        out["tracestate"] = ctx.trace_state.to_header()
    return out


def compact(carrier: Mapping[str, str]) -> Any:
    """``carrier`` as one string, ``"TRACEPARENT;CONFIG_ID"``, when it holds just those (else itself).

    What a pooled call sends: Ray serializes a short string for less than a dict, and the worker
    has the configuration already, or reads it once by its id (:func:`config_id`)."""
    parent = carrier.get("traceparent")
    if parent is None or len(carrier) != 2 or carrier.get(CONFIG_KEY) is not _config_json or not _config_id:
        return carrier
    return f"{parent};{_config_id}"


def config_id() -> str:
    """The id compact carriers give this process's configuration (``""`` while tracing is off)."""
    return _config_id


def context_from_carrier(carrier: Mapping[str, str]) -> Any:
    """The context a call's carrier (made by :func:`carrier`) describes."""
    parent = span_context_from_carrier(carrier)
    if parent is None:
        return otel_context.Context()
    return otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(parent))


def span_context_from_carrier(carrier: Mapping[str, str]) -> Any:
    """The remote parent a call's carrier describes (``None`` if none): its ``traceparent`` read
    directly, the propagator's way only for what that cannot read (a ``tracestate``)."""
    header = carrier.get("traceparent")
    if not isinstance(header, str) or len(header) != 55 or "tracestate" in carrier:
        return _extracted(carrier)
    try:
        trace_id, span_id, flags = int(header[3:35], 16), int(header[36:52], 16), int(header[53:55], 16)
    except ValueError:
        return _extracted(carrier)
    if not trace_id or not span_id:
        return _extracted(carrier)
    return otel_trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=otel_trace.TraceFlags(flags))


def _extracted(carrier: Mapping[str, str]) -> Any:
    parent = otel_trace.get_current_span(_propagator.extract(carrier)).get_span_context()
    return parent if parent.is_valid else None


def call_span(name: str, kind: Any, attributes: dict[str, Any], parent: Any) -> Any:
    """A started span of one call (``yr.invoke``, ``yr.run``), child of the ``SpanContext`` ``parent``
    (see :mod:`.light_spans`). ``attributes`` is kept: give a dict of its own."""
    return light_spans.start(name, kind, attributes, parent)


def takes_context(func: Any) -> bool:
    """Whether ``func`` takes :data:`CTX_KWARG` (it was wrapped for a traced job)."""
    try:
        return CTX_KWARG in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def context_from(headers: Mapping[str, str]) -> Any:
    """The OpenTelemetry context a ``traceparent`` (and ``tracestate``) in ``headers`` describes."""
    return _propagator.extract(headers)


def attach(ctx: Any) -> Any:
    return otel_context.attach(ctx)


def detach(token: Any) -> None:
    otel_context.detach(token)


def flush(timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
    recorder, provider = light_spans.current(), _provider
    if recorder is not None:
        recorder.flush()
    if provider is not None:
        provider.force_flush(timeout_ms)


def stop() -> None:
    """Export what is buffered and stop (``yr.finalize``; process exit). Tracing is off afterwards."""
    global _provider, _tracer, _config_json, _config_id, enabled, spans
    with _lock:
        provider, _provider = _provider, None
        enabled = spans = False
        recorder = light_spans.configure(None)
        _tracer = None
        _config_json = _config_id = ""
    if recorder is not None:
        recorder.shutdown()
    if provider is not None:
        provider.force_flush(FLUSH_TIMEOUT_MS)
        provider.shutdown()
    metering.stop()


def config_json() -> str:
    return _config_json
