"""yuanrong's per-call spans, made without the SDK's Span, reach the exporters as the SDK's would (no Ray)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from yuanrong._private import light_spans, tracing
from yuanrong._private.core import traced_calls
from yuanrong._private.trace_config import TraceConfig


@pytest.fixture
def traced(tmp_path, monkeypatch):
    tracing.start(TraceConfig(log_dir=str(tmp_path)), attributes={"yr.role": "worker", "yr.pool": "edge-1"})
    # A worker's facts, as a call's first run would read them from Ray.
    monkeypatch.setattr(traced_calls, "_actor", [("a" * 32, False)])
    monkeypatch.setattr(traced_calls, "_fixed", {})
    monkeypatch.setattr(traced_calls, "_ran", set())
    monkeypatch.setattr(traced_calls, "_process_attributes",
                        {"yr.node_id": "n" * 56, "yr.pool": "edge-1", "yr.tier": "edge"})
    try:
        yield tmp_path
    finally:
        tracing.stop()


def lines(directory):
    return [json.loads(line[len(tracing.LOG_PREFIX):]) for path in directory.glob("yr-trace-*.log")
            for line in path.read_text().splitlines()]


def test_a_calls_spans_link_caller_run_and_user_spans_and_carry_the_run_attributes(traced):
    with traced_calls.submitting("echo", "invoke", {}, {"yr.requested_pool": "'edge-1'"}) as kwargs:
        carrier = kwargs[tracing.CTX_KWARG]

    def echo(x):
        with tracing.get_tracer("user").start_as_current_span("user-step"):
            otel_trace.get_current_span().set_attribute("step.rows", 3)
        otel_trace.get_current_span().set_attribute("echo.x", x)
        return x

    run = traced_calls.traced_function(echo, "echo")
    assert run(1, **{tracing.CTX_KWARG: carrier}) == 1
    assert run(2, **{tracing.CTX_KWARG: carrier}) == 2
    tracing.stop()
    spans = lines(traced)
    submit = next(s for s in spans if s["name"] == "yr.invoke echo")
    runs = [s for s in spans if s["name"] == "yr.run echo"]
    user = [s for s in spans if s["name"] == "user-step"]
    assert len(runs) == 2 and len(user) == 2
    assert submit["kind"] == "SpanKind.PRODUCER" and submit["attributes"]["yr.requested_pool"] == "'edge-1'"
    for r in runs:
        assert r["parent_id"] == submit["context"]["span_id"]
        assert r["context"]["trace_id"] == submit["context"]["trace_id"]
        a = r["attributes"]
        assert (a["yr.pool"], a["yr.tier"], a["yr.node_id"], a["yr.instance_id"]) == ("edge-1", "edge", "n" * 56,
                                                                                      "a" * 32)
        assert a["yr.call_path"] == "function_instance" and a["yr.attempt"] == 0
    assert [r["attributes"]["yr.cold"] for r in sorted(runs, key=lambda r: r["attributes"]["echo.x"])] == [True, False]
    assert {u["parent_id"] for u in user} == {r["context"]["span_id"] for r in runs}
    assert user[0]["attributes"] == {"step.rows": 3}
    assert runs[0]["resource"]["attributes"]["yr.role"] == "worker"


def test_a_failed_call_is_an_error_with_the_sdks_exception_event(traced):
    def fails():
        raise KeyError("missing")

    run = traced_calls.traced_function(fails, "fails")
    with traced_calls.submitting("fails", "invoke", {}, {}) as kwargs:
        with pytest.raises(KeyError):
            run(**kwargs)
    tracing.stop()
    failed = next(s for s in lines(traced) if s["name"] == "yr.run fails")
    assert failed["status"]["status_code"] == "ERROR" and "KeyError" in failed["status"]["description"]
    event = failed["events"][0]
    assert event["name"] == "exception" and event["attributes"]["exception.type"] == "KeyError"
    assert "raise KeyError" in event["attributes"]["exception.stacktrace"]


def test_exporters_receive_sdk_readable_spans_and_sampling_follows_the_parent(tmp_path):
    exported = InMemorySpanExporter()
    tracing.start(TraceConfig(log_dir=str(tmp_path), sample_ratio=0.0))
    try:
        recorder = light_spans.current()
        light_spans.configure(light_spans.Recorder(recorder.resource, "yuanrong", [exported],
                                                   recorder.root_sampler))
        recorder.shutdown()
        root = tracing.call_span("yr.invoke f", SpanKind.PRODUCER, {}, None)
        assert not root.is_recording() and root.get_span_context().is_valid  # ratio 0: not sampled, ids kept
        assert not root.get_span_context().trace_flags.sampled
        sampled_parent = otel_trace.SpanContext(7, 8, is_remote=True,
                                                trace_flags=otel_trace.TraceFlags(otel_trace.TraceFlags.SAMPLED))
        child = tracing.call_span("yr.run f", SpanKind.CONSUMER, {"yr.pool": "cloud"}, sampled_parent)
        assert child.is_recording()
        child.end()
        child.end()  # a second end is ignored, as the SDK's
        unsampled = otel_trace.SpanContext(7, 9, is_remote=True)
        assert not tracing.call_span("yr.run g", SpanKind.CONSUMER, {}, unsampled).is_recording()
    finally:
        tracing.stop()
    [span] = exported.get_finished_spans()
    assert span.name == "yr.run f" and span.parent.span_id == 8 and span.context.trace_id == 7
    assert dict(span.attributes) == {"yr.pool": "cloud"} and span.instrumentation_scope.name == "yuanrong"
    assert span.end_time >= span.start_time and span.resource.attributes["service.name"] == "yuanrong"


def test_without_a_recorder_calls_get_an_invalid_span():
    assert not tracing.enabled
    span = tracing.call_span("yr.invoke f", SpanKind.PRODUCER, {}, None)
    assert span is otel_trace.INVALID_SPAN


def test_ended_spans_reach_the_processors_from_the_recorders_thread_without_a_flush(tmp_path):
    exported = InMemorySpanExporter()
    tracing.start(TraceConfig(log_dir=str(tmp_path)))
    try:
        recorder = light_spans.Recorder(light_spans.current().resource, "yuanrong", [exported],
                                        None, delay_s=0.05)
        light_spans.configure(recorder).shutdown()
        tracing.call_span("yr.invoke f", SpanKind.PRODUCER, {}, None).end()
        deadline = time.monotonic() + 5
        while not exported.get_finished_spans() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [s.name for s in exported.get_finished_spans()] == ["yr.invoke f"]
    finally:
        tracing.stop()


def test_a_full_queue_drops_its_oldest_spans_with_one_warning(tmp_path, caplog):
    exported = InMemorySpanExporter()
    tracing.start(TraceConfig(log_dir=str(tmp_path)))
    try:
        # A delay no test waits out and a batch of 2: the queue of 4 fills before the thread runs.
        recorder = light_spans.Recorder(light_spans.current().resource, "yuanrong", [exported],
                                        None, delay_s=3600, batch=2, max_queue=4)
        recorder._wake.set = lambda: None  # keep the thread asleep: only the flush below hands spans over
        light_spans.configure(recorder).shutdown()
        with caplog.at_level(logging.WARNING, logger=light_spans.__name__):
            for i in range(7):
                tracing.call_span(f"span {i}", SpanKind.PRODUCER, {}, None).end()
        recorder.flush()
        assert [s.name for s in exported.get_finished_spans()] == ["span 3", "span 4", "span 5", "span 6"]
        assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    finally:
        tracing.stop()


def test_a_span_copies_shared_attributes_before_it_writes_them(traced):
    shared = {"yr.function": "f"}
    first = tracing.call_span("yr.run f", SpanKind.CONSUMER, shared, None)
    second = tracing.call_span("yr.run f", SpanKind.CONSUMER, shared, None)
    first.set_attribute("rows", 3)
    first.end()
    second.end()
    assert shared == {"yr.function": "f"}
    tracing.stop()
    by_id = {s["context"]["span_id"]: s["attributes"] for s in lines(traced)}
    assert by_id[f"0x{first.get_span_context().span_id:016x}"] == {"yr.function": "f", "rows": 3}
    assert by_id[f"0x{second.get_span_context().span_id:016x}"] == {"yr.function": "f"}


def test_a_compact_carrier_makes_the_run_a_child_of_the_caller_and_follows_its_sampling(traced):
    traced_calls._configs[tracing.config_id()] = tracing.config_json()  # as the driver's key-value entry
    run = traced_calls.traced_function(lambda: otel_trace.get_current_span().get_span_context(), "f")
    with traced_calls.submitting("f", "invoke", {}, {}, carry=False):
        carrier = traced_calls.current_carrier()
        caller = otel_trace.get_current_span().get_span_context()
    assert isinstance(carrier, str) and carrier.endswith(";" + tracing.config_id())
    inside = run(**{tracing.CTX_KWARG: carrier})
    assert inside.trace_id == caller.trace_id and inside.span_id != caller.span_id
    unsampled = f"00-{caller.trace_id:032x}-{caller.span_id:016x}-00;{tracing.config_id()}"
    assert not run(**{tracing.CTX_KWARG: unsampled}).trace_flags.sampled
    malformed = f"00-{'z' * 32}-{caller.span_id:016x}-01;{tracing.config_id()}"
    assert run(**{tracing.CTX_KWARG: malformed}).trace_id != caller.trace_id  # read as no parent: a new trace
    tracing.stop()
    runs = [s for s in lines(traced) if s["name"] == "yr.run f"]
    assert len(runs) == 2  # the unsampled call recorded nothing
    assert runs[0]["parent_id"] == f"0x{caller.span_id:016x}" and runs[1]["parent_id"] is None


def test_an_exporter_that_fails_costs_neither_the_other_exporters_nor_later_spans(tmp_path, caplog):
    class Broken:
        def export(self, batch):
            raise ConnectionError("collector gone")

    exported = InMemorySpanExporter()
    tracing.start(TraceConfig(log_dir=str(tmp_path)))
    try:
        recorder = light_spans.Recorder(light_spans.current().resource, "yuanrong", [Broken(), exported], None)
        light_spans.configure(recorder).shutdown()
        with caplog.at_level(logging.ERROR, logger=light_spans.__name__):
            for name in ("first", "second"):
                tracing.call_span(name, SpanKind.PRODUCER, {}, None).end()
                recorder.flush()
        assert [s.name for s in exported.get_finished_spans()] == ["first", "second"]
        assert any("collector gone" in (r.exc_text or "") or "Broken" in r.getMessage() for r in caplog.records)
    finally:
        tracing.stop()


def test_a_failed_call_sent_with_a_compact_carrier_is_an_error_and_leaves_no_span_current(traced):
    traced_calls._configs[tracing.config_id()] = tracing.config_json()

    def fails():
        raise KeyError("missing")

    run = traced_calls.traced_function(fails, "fails")
    with traced_calls.submitting("fails", "invoke", {}, {}, carry=False):
        carrier = traced_calls.current_carrier()
    with pytest.raises(KeyError):
        run(**{tracing.CTX_KWARG: carrier})
    assert not otel_trace.get_current_span().get_span_context().is_valid
    tracing.stop()
    failed = next(s for s in lines(traced) if s["name"] == "yr.run fails")
    assert failed["status"]["status_code"] == "ERROR" and failed["events"][0]["name"] == "exception"
    assert failed["parent_id"] is not None and failed["attributes"]["yr.cold"] is True
