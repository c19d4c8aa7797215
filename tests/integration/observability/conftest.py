"""A real OTLP/gRPC receiver inside the test process, and a yuanrong session that exports to it.

The receiver is OpenTelemetry's own collector services (``TraceService``, ``MetricsService`` from
opentelemetry-proto) served with grpcio on a free loopback port: what the cluster's processes send
is decoded exactly as a collector or Jaeger would receive it.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.conftest import POOLS_FILE


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


class Receiver:
    """Spans and metric points received over OTLP/gRPC, decoded into plain dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{self.port}"
        self._server.start()

    def add_spans(self, request: Any) -> None:
        decoded = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    decoded.append({
                        "name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex(), "attributes": _attributes(span.attributes),
                        "resource": resource, "status": span.status.code, "scope": scope.scope.name,
                        "events": [e.name for e in span.events], "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano})
        with self._lock:
            self.spans.extend(decoded)

    def add_metrics(self, request: Any) -> None:
        decoded = []
        for resource_metrics in request.resource_metrics:
            resource = _attributes(resource_metrics.resource.attributes)
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        value = point.count if kind == "histogram" else (
                            point.as_int if point.WhichOneof("value") == "as_int" else point.as_double)
                        decoded.append({"name": metric.name, "kind": kind, "value": value,
                                        "attributes": _attributes(point.attributes), "resource": resource})
        with self._lock:
            self.metrics.extend(decoded)

    def wait_for_spans(self, predicate: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The spans once ``predicate(spans)`` holds; fails after ``timeout`` seconds showing what came."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted(f"{s['name']}@{s['resource'].get('yr.pool')}" for s in spans)
                pytest.fail(f"the expected spans did not arrive in {timeout:g}s; received: {names}")
            time.sleep(0.1)

    def wait_for_metrics(self, predicate: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                points = list(self.metrics)
            if predicate(points):
                return points
            if time.monotonic() > deadline:
                pytest.fail(f"the expected metrics did not arrive in {timeout:g}s; received: "
                            f"{sorted({p['name'] for p in points})}")
            time.sleep(0.1)

    def latest(self, name: str, **attributes: Any) -> float:
        """The sum over processes of each series' latest cumulative value of metric ``name``."""
        with self._lock:
            points = [p for p in self.metrics if p["name"] == name
                      and all(p["attributes"].get(k) == v for k, v in attributes.items())]
        series: dict[Any, float] = {}
        for p in points:
            key = (p["resource"].get("process.pid"), p["resource"].get("yr.node_id"),
                   tuple(sorted(p["attributes"].items())))
            series[key] = max(series.get(key, 0), p["value"])
        return sum(series.values())

    def stop(self) -> None:
        self._server.stop(grace=None)


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802 - the gRPC service's method name
        self.receiver.add_spans(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802
        self.receiver.add_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture(scope="module")
def otlp_receiver():
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def traced_session(yr_session, ray_cluster, otlp_receiver):
    """The shared cluster's driver reconnected through ``yr.init(enable_trace=True)`` exporting to the
    receiver; afterwards it reconnects untraced, as the other modules expect."""
    import yuanrong as yr

    yr.finalize()
    otlp = {"otlpGrpcExporter": {"enable": True, "endpoint": otlp_receiver.endpoint}}
    yr.init(yr.Config(server_address=ray_cluster.address, pools_file=str(POOLS_FILE), enable_trace=True,
                      runtime_trace_config=otlp, enable_metrics=True, runtime_metrics_config=otlp))
    try:
        yield otlp_receiver
    finally:
        yr.finalize()
        yr.init(yr.Config(server_address=ray_cluster.address, pools_file=str(POOLS_FILE)))


@pytest.fixture(scope="module")
def serve_address(traced_session):
    """Serve's proxies started in the traced session for one module, stopped after it (a module that
    needs more of them, a gRPC servicer say, defines its own)."""
    from yuanrong.endpoint import shutdown, start

    address = start()
    try:
        yield address
    finally:
        shutdown()
