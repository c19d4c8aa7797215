"""The span log's lines: a light span's, written from its own fields, is the line its SDK form gets,
and both hold what the SDK's ``ReadableSpan.to_json`` says."""

from __future__ import annotations

import datetime
import io
import json

from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags, TraceState

from yuanrong._private import light_spans, span_log


class _Keep:
    takes_light_spans = True

    def __init__(self) -> None:
        self.spans: list = []

    def export(self, batch):
        self.spans.extend(batch)


def _ended_light_spans():
    keep = _Keep()
    recorder = light_spans.Recorder(Resource.create({"service.name": "yuanrong", "yr.pool": "edge-1"}), "yuanrong",
                                    [keep], None)
    light_spans.configure(recorder)
    shared = {"yr.function": "echo", "yr.cold": False, "yr.attempt": 0}
    try:
        root = light_spans.start("yr.invoke echo", SpanKind.PRODUCER, shared, None)
        root.end()
        remote = light_spans.start_remote("yr.run echo", SpanKind.CONSUMER, shared, root.traceparent())
        remote.set_attribute("yr.rank", 3)
        remote.set_status(StatusCode.ERROR, 'failed: "quoted" \u00e9')
        remote.end()
        sampled = TraceFlags(TraceFlags.SAMPLED)
        local = light_spans.start("yr.place echo", SpanKind.INTERNAL, {}, SpanContext(5, 6, False, sampled))
        local.end()
        with_state = light_spans.start("yr.run state", SpanKind.CONSUMER, shared,
                                       SpanContext(5, 6, True, sampled, TraceState([("k", "v")])))
        with_state.end()
        with_event = light_spans.start("yr.run failing", SpanKind.CONSUMER, shared, None)
        with_event.record_exception(ValueError("boom"))
        with_event.end()
        recorder.flush()
    finally:
        light_spans.configure(None)
        recorder.shutdown()
    return keep.spans


def _time(iso: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_a_light_spans_line_is_its_sdk_forms_line_and_holds_what_to_json_says():
    line = span_log.formatter(Resource.create({"service.name": "yuanrong", "yr.pool": "edge-1"}))
    spans = _ended_light_spans()
    assert [s.plain_fields() is None for s in spans] == [False, False, False, True, True]
    for span in spans:
        readable = span.readable()
        mine = line(span)
        assert mine.startswith(span_log.LOG_PREFIX) and mine.endswith("\n") and mine.count("\n") == 1
        assert mine == line(readable), span
        ours, sdks = json.loads(mine[len(span_log.LOG_PREFIX):]), json.loads(readable.to_json(indent=None))
        for key in ("start_time", "end_time"):  # the SDK rounds through a float; the log truncates
            assert abs(_time(ours.pop(key)) - _time(sdks.pop(key))) <= datetime.timedelta(microseconds=1), (span, key)
        assert ours == sdks, span
    # The line of a shared attributes dict is made once and reused, but never for another dict.
    first, second = line(spans[0]), line(spans[1])
    assert json.loads(first[len(span_log.LOG_PREFIX):])["attributes"] == {
        "yr.function": "echo", "yr.cold": False, "yr.attempt": 0}
    assert json.loads(second[len(span_log.LOG_PREFIX):])["attributes"]["yr.rank"] == 3


def test_the_exporter_writes_a_batch_of_lines_and_closes_its_file_at_shutdown():
    out = io.StringIO()
    exporter = span_log.SpanLogExporter(out, Resource.create({"service.name": "yuanrong"}))
    spans = _ended_light_spans()
    exporter.export(spans)
    lines = out.getvalue().splitlines()
    assert [json.loads(x[len(span_log.LOG_PREFIX):])["name"] for x in lines] == [s.name for s in
                                                                                 (x.readable() for x in spans)]
    exporter.shutdown()
    assert out.closed
