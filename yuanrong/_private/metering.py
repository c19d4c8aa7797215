"""This process's OpenTelemetry meter provider: yuanrong's built-in metrics and ``yr.metrics``.

Built-in instruments (names as exported; Prometheus adds ``_total`` to counters and the unit):

* ``yr.calls`` (counter) - calls that ran, by function, call path (task, function instance,
  instance), pool and outcome (``ok`` / ``error``), counted where they ran;
* ``yr.call.duration`` (histogram, s) - how long each call ran, same attributes;
* ``yr.cold_starts`` (counter) - first runs of a function or class in a process, by pool;
* ``yr.placements`` (counter) - the placement engine's decisions, by policy, chosen pool and
  whether the call was offloaded from the pools it preferred;
* ``yr.function.instances`` (gauge, driver) - live function instances per function;
* ``yr.function.queued`` (gauge, driver) - calls waiting beyond their instances' concurrency;
* ``datashare.io`` (counter, By) - bytes of datasets published (``datashare.io.direction=published``)
  and read (``read``: opens not served from the process's cache), by dataset and ``datashare.zero_copy``.

Every process that runs a traced job's calls exports to the job's OTLP endpoint; the driver also
serves a Prometheus scrape endpoint when asked. No Ray here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from datashare import telemetry as datashare_telemetry
from yuanrong._private import auth
from yuanrong._private.trace_config import MetricsConfig

logger = logging.getLogger("yuanrong")

METER_NAME = "yuanrong"
EXPORT_INTERVAL_MS = 1000
EXPORT_TIMEOUT_S = 5

_provider: MeterProvider | None = None
_meter: Any = None
_server: Any = None
_calls: Any = None
_duration: Any = None
_cold: Any = None
_placements: Any = None
_datashare_io: Any = None
#: Callbacks the driver registers for its gauges (function instances, queue depth).
_driver_gauges: list[tuple[str, str, Callable[[], Iterable[tuple[float, dict[str, Any]]]]]] = []
#: Called after each start (callback instruments of yuanrong.metrics register themselves).
_start_hooks: list[Callable[[], Any]] = []


def start(config: MetricsConfig, resource: Resource, *, serve_prometheus: bool) -> None:
    """Start this process's meter provider (replacing an earlier one)."""
    global _provider, _meter, _server, _calls, _duration, _cold, _placements, _datashare_io
    stop()
    readers = []
    if config.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=config.otlp_endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S)
        readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=EXPORT_INTERVAL_MS,
                                                     export_timeout_millis=EXPORT_TIMEOUT_S * 1000))
    if serve_prometheus and config.prometheus_port:
        import prometheus_client
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        registry = prometheus_client.CollectorRegistry()
        readers.append(PrometheusMetricReader(registry=registry))
        _server = _serve_scrapes(prometheus_client.make_wsgi_app(registry), config.prometheus_host,
                                 config.prometheus_port)
    _provider = MeterProvider(metric_readers=readers, resource=resource)
    _meter = _provider.get_meter(METER_NAME)
    _calls = _meter.create_counter("yr.calls", unit="1", description="calls that ran, by outcome")
    _duration = _meter.create_histogram("yr.call.duration", unit="s", description="how long each call ran")
    _cold = _meter.create_counter("yr.cold_starts", unit="1",
                                  description="first runs of a function or class in a process")
    _placements = _meter.create_counter("yr.placements", unit="1", description="placement engine decisions")
    # Named as OpenTelemetry's system.disk.io / system.network.io: bytes, with the direction as an attribute.
    _datashare_io = _meter.create_counter("datashare.io", unit="By",
                                          description="bytes of datasets published and read (opened uncached)")
    datashare_telemetry.on_bytes(record_datashare_bytes)
    for name, description, read in _driver_gauges:
        _meter.create_observable_gauge(name, callbacks=[_observer(read)], description=description)
    for hook in _start_hooks:
        hook()


#: The tenant whose tokens may scrape this process's endpoint (the driver's; set by the session).
scrape_tenant = auth.DEFAULT_TENANT


def _serve_scrapes(app: Callable, host: str, port: int) -> Any:
    """The Prometheus endpoint, answering only requests with a bearer token of ``scrape_tenant`` (or admin).

    Prometheus sends one with ``authorization: {credentials_file: ...}`` in its scrape config.
    """
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
    from socketserver import ThreadingMixIn

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    def guarded(environ: dict, start_response: Callable) -> Any:
        try:
            identity = auth.verify(auth.bearer(environ.get("HTTP_AUTHORIZATION")))
            allowed = identity.may_access(scrape_tenant)
            why = "" if allowed else f"the token is tenant {identity.tenant!r}'s; these metrics are {scrape_tenant!r}'s"
        except auth.AuthError as e:
            allowed, why = False, str(e)
        if not allowed:
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                ("WWW-Authenticate", 'Bearer realm="yuanrong"')])
            return [f"{why}\n".encode()]
        return app(environ, start_response)

    server = make_server(host, port, guarded, server_class=Server, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="yr-prometheus", daemon=True).start()
    return server


def on_start(hook: Callable[[], Any]) -> None:
    """Run ``hook`` now if metrics are on, and after every later start."""
    _start_hooks.append(hook)
    if _provider is not None:
        hook()


def _observer(read: Callable[[], Iterable[tuple[float, dict[str, Any]]]]) -> Callable[[Any], Any]:
    from opentelemetry.metrics import Observation

    def observe(_options: Any) -> Any:
        try:
            return [Observation(value, attributes) for value, attributes in read()]
        except Exception as e:  # noqa: BLE001 - a gauge must never break the export of the others
            logger.debug("metric callback failed: %s", e)
            return []

    return observe


def register_driver_gauge(name: str, description: str,
                          read: Callable[[], Iterable[tuple[float, dict[str, Any]]]]) -> None:
    """A gauge read at each export from ``read`` (registered once per process, before ``start``)."""
    if all(n != name for n, _, _ in _driver_gauges):
        _driver_gauges.append((name, description, read))


def on() -> bool:
    return _provider is not None


def record_call(attributes: dict[str, Any], seconds: float, error: bool, cold: bool) -> None:
    if _provider is None:
        return
    point = {**attributes, "yr.outcome": "error" if error else "ok"}
    _calls.add(1, point)
    _duration.record(seconds, point)
    if cold:
        _cold.add(1, {k: v for k, v in attributes.items() if k != "yr.call_path"})


def record_placement(policy: str, pool: str, offloaded: bool) -> None:
    if _provider is not None:
        _placements.add(1, {"yr.placement.policy": policy, "yr.placement.pool": pool,
                            "yr.placement.offloaded": offloaded})


def record_datashare_bytes(direction: str, nbytes: int, attributes: Mapping[str, Any]) -> None:
    if _provider is not None:
        _datashare_io.add(nbytes, {**attributes, "datashare.io.direction": direction})


def meter(name: str) -> Any:
    """A meter named ``name`` from this process's provider, or None while metrics are off."""
    return _provider.get_meter(name) if _provider is not None else None


def stop() -> None:
    """Export what is pending and stop (``yr.finalize``; process exit)."""
    global _provider, _meter, _server
    provider, _provider, _meter = _provider, None, None
    server, _server = _server, None
    if provider is not None:
        provider.shutdown(timeout_millis=EXPORT_TIMEOUT_S * 1000)
    if server is not None:
        server.shutdown()
        server.server_close()
