"""The tracer provider and the context a call carries, without Ray: spans written to a log file."""

from __future__ import annotations

import inspect
import json

import pytest

from yuanrong._private import trace_config, tracing
from yuanrong._private.core import traced_calls
from yuanrong._private.trace_config import TraceConfig


@pytest.fixture
def log_tracing(tmp_path):
    tracing.start(TraceConfig(log_dir=str(tmp_path)), attributes={"yr.role": "driver"})
    try:
        yield tmp_path
    finally:
        tracing.stop()


def spans_in(directory):
    out = []
    for path in directory.glob("yr-trace-*.log"):
        for line in path.read_text().splitlines():
            assert line.startswith(tracing.LOG_PREFIX)
            out.append(json.loads(line[len(tracing.LOG_PREFIX):]))
    return out


def test_spans_are_written_to_the_log_file_and_flushed_by_stop(log_tracing):
    assert tracing.enabled
    with tracing.tracer().start_as_current_span("outer"):
        with tracing.get_tracer("mine").start_as_current_span("inner"):
            pass
    tracing.stop()
    assert not tracing.enabled
    spans = {s["name"]: s for s in spans_in(log_tracing)}
    assert spans["inner"]["parent_id"] == spans["outer"]["context"]["span_id"]
    assert spans["outer"]["resource"]["attributes"]["yr.role"] == "driver"


def test_the_carrier_holds_the_w3c_context_and_the_configuration(log_tracing):
    with tracing.tracer().start_as_current_span("submit") as span:
        carrier = tracing.carrier()
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert carrier["traceparent"].split("-")[1] == trace_id
    assert trace_config.from_json(carrier[tracing.CONFIG_KEY]) == (TraceConfig(log_dir=str(log_tracing)), None)
    parent = tracing.context_from(carrier)
    with tracing.tracer().start_as_current_span("run", context=parent) as child:
        pass
    assert child.parent.span_id == span.get_span_context().span_id


def test_a_worker_adopts_a_configuration_once_and_refuses_a_broken_one_once(tmp_path, caplog):
    good = trace_config.to_json(TraceConfig(log_dir=str(tmp_path)), None)
    try:
        assert tracing.adopt(good)
        assert tracing.adopt(good) and tracing.config_json() == good
        blocked = tmp_path / "file"
        blocked.write_text("")
        bad = trace_config.to_json(TraceConfig(log_dir=str(blocked / "sub")), None)
        assert not tracing.adopt(bad)
        assert not tracing.adopt(bad)
        assert len([r for r in caplog.records if "tracing could not start" in r.getMessage()]) == 1
    finally:
        tracing.stop()


def test_no_provider_exists_while_tracing_is_off():
    assert not tracing.enabled and tracing.config_json() == ""
    with tracing.tracer().start_as_current_span("nothing") as span:
        assert not span.is_recording()


def test_the_probe_names_why_an_endpoint_is_unreachable():
    assert tracing.probe("127.0.0.1:9", timeout_s=0.5)


def test_wrapped_functions_take_the_context_argument_and_keep_their_signature():
    def add(a, b=1, **rest):
        return a + b

    run = traced_calls.traced_function(add, "add")
    assert str(inspect.signature(run)) == "(a, b=1, *, _yr_trace_ctx=None, **rest)"
    assert not hasattr(run, "__wrapped__")
    assert run(1, 2) == 3
    # A context without a configuration (the caller's job does not trace) runs the call untraced.
    assert run(1, _yr_trace_ctx={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) == 2


def test_traced_classes_wrap_methods_but_not_static_or_class_methods():
    class Thing:
        def __init__(self, n):
            self.n = n

        def get(self):
            return self.n

        @staticmethod
        def helper(x):
            return x

        @classmethod
        def make(cls):
            return cls(1)

    traced = traced_calls.traced_class(Thing)
    assert traced.__name__ == "Thing" and issubclass(traced, Thing)
    assert traced_calls.creation_accepts_context(traced)
    assert traced(3).get() == 3 and traced.helper(4) == 4 and traced.make().n == 1
    assert "_yr_trace_ctx" in inspect.signature(traced.get).parameters

    class Bare:
        pass

    assert traced_calls.creation_accepts_context(traced_calls.traced_class(Bare))


def test_libraries_using_opentelemetrys_global_tracer_follow_yuanrongs_provider(tmp_path):
    from opentelemetry import trace as otel_trace

    library_tracer = otel_trace.get_tracer("some.library")
    tracing.start(TraceConfig(log_dir=str(tmp_path)))
    with library_tracer.start_as_current_span("while-on") as span:
        assert span.is_recording()
    tracing.stop()
    with library_tracer.start_as_current_span("while-off") as span:
        assert not span.is_recording()
    assert [s["name"] for s in spans_in(tmp_path)] == ["while-on"]


def test_request_spans_continue_an_http_or_grpc_traceparent(tmp_path):
    import asyncio
    import inspect
    import types

    from yuanrong._private import trace_config as tc
    from yuanrong._private.serve import traced_requests

    config = tc.to_json(TraceConfig(log_dir=str(tmp_path)), None)
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"

    class Handler:
        async def __call__(self, request):
            return tracing.tracer().start_span("inside").get_span_context().trace_id

        def Rpc(self, request):  # noqa: N802
            return tracing.tracer().start_span("rpc-inside").get_span_context().trace_id

    traced = traced_requests.traced_target(Handler, "ep", config, lambda: {"yr.role": "replica"})
    assert "grpc_context" in inspect.signature(traced.Rpc).parameters
    try:
        http = types.SimpleNamespace(headers={"traceparent": parent}, method="POST",
                                     url=types.SimpleNamespace(path="/ep"))
        assert format(asyncio.run(traced()(http)), "032x") == "a" * 32
        grpc_context = types.SimpleNamespace(invocation_metadata=lambda: [("traceparent", parent)])
        assert format(traced().Rpc(object(), grpc_context=grpc_context), "032x") == "a" * 32
    finally:
        tracing.stop()
    names = {s["name"]: s for s in spans_in(tmp_path)}
    assert names["yr.endpoint ep"]["parent_id"] == "0x" + "b" * 16
    assert names["yr.endpoint ep.Rpc"]["attributes"]["rpc.system"] == "grpc"


def test_sampling_keeps_a_share_of_root_traces_and_follows_the_callers_decision(tmp_path):
    tracing.start(TraceConfig(log_dir=str(tmp_path), sample_ratio=0.0))
    try:
        with tracing.tracer().start_as_current_span("root") as root:
            carrier = tracing.carrier()
        assert not root.is_recording()
        assert int(carrier["traceparent"][-2:], 16) & 1 == 0  # the callee learns: not sampled
        with tracing.tracer().start_as_current_span("run", context=tracing.context_from_carrier(carrier)) as run:
            assert not run.is_recording()
        sampled = {**carrier, "traceparent": carrier["traceparent"][:-2] + "01"}  # e.g. an HTTP client's choice
        with tracing.tracer().start_as_current_span("run", context=tracing.context_from_carrier(sampled)) as run:
            assert run.is_recording()
    finally:
        tracing.stop()
    assert [s["name"] for s in spans_in(tmp_path)] == ["run"]


def test_the_fast_carrier_reading_matches_the_w3c_propagators(log_tracing):
    with tracing.tracer().start_as_current_span("submit") as span:
        carrier = tracing.carrier()
    fast = tracing.context_from_carrier(carrier)
    slow = tracing.context_from(carrier)
    from opentelemetry import trace as otel_trace
    assert otel_trace.get_current_span(fast).get_span_context() == otel_trace.get_current_span(slow).get_span_context()
    assert otel_trace.get_current_span(fast).get_span_context().span_id == span.get_span_context().span_id
    for bad in ("00-zz", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", "x" * 55):
        ctx = tracing.context_from_carrier({"traceparent": bad})
        assert not otel_trace.get_current_span(ctx).get_span_context().is_valid


def test_log_lines_have_the_sdks_fields_and_exceptions_keep_their_events(log_tracing):
    with pytest.raises(ValueError):
        with tracing.tracer().start_as_current_span("fails"):
            raise ValueError("boom")
    with tracing.tracer().start_as_current_span("ok", attributes={"yr.pool": "edge"}):
        pass
    tracing.stop()
    spans = {s["name"]: s for s in spans_in(log_tracing)}
    assert spans["fails"]["status"]["status_code"] == "ERROR"
    assert spans["fails"]["events"][0]["name"] == "exception"
    assert spans["ok"]["attributes"] == {"yr.pool": "edge"}
    assert spans["ok"]["start_time"].endswith("Z") and spans["ok"]["parent_id"] is None


def test_a_worker_with_metrics_on_starts_its_providers_once(tmp_path):
    from yuanrong._private.trace_config import MetricsConfig

    # The driver's text names its Prometheus endpoint, which a worker does not serve.
    carried = trace_config.to_json(TraceConfig(log_dir=str(tmp_path)),
                                   MetricsConfig(prometheus_host="127.0.0.1", prometheus_port=9464))
    try:
        assert tracing.adopt(carried)
        first = tracing._provider
        assert tracing.adopt(carried) and tracing._provider is first
        assert tracing.config_json() == carried  # nested calls carry the same text on
    finally:
        tracing.stop()


def test_a_compact_carrier_names_the_configuration_and_stands_for_the_carrier(log_tracing):
    from yuanrong._private.core import traced_calls
    with tracing.tracer().start_as_current_span("submit"):
        carrier = tracing.carrier()
    compact = tracing.compact(carrier)
    assert compact == f"{carrier['traceparent']};{tracing.config_id()}" and len(tracing.config_id()) == 16
    assert traced_calls.expand(compact) == carrier      # this process holds the configuration it names
    # What it cannot stand for stays a dict: a tracestate, no span, another process's configuration.
    assert tracing.compact({**carrier, "tracestate": "k=v"}) == {**carrier, "tracestate": "k=v"}
    assert tracing.compact({tracing.CONFIG_KEY: carrier[tracing.CONFIG_KEY]}) == {tracing.CONFIG_KEY: carrier[tracing.CONFIG_KEY]}
    other = {tracing.CONFIG_KEY: '{"trace": null, "metrics": null}', "traceparent": carrier["traceparent"]}
    assert tracing.compact(other) is other


def test_the_configuration_id_follows_the_configuration(tmp_path):
    tracing.start(TraceConfig(log_dir=str(tmp_path / "a")))
    first = tracing.config_id()
    tracing.start(TraceConfig(log_dir=str(tmp_path / "b")))
    try:
        assert tracing.config_id() != first
    finally:
        tracing.stop()
    assert tracing.config_id() == ""
