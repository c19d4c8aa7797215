"""The span log file (``logFileExporter``): one ``trace info {json}`` line per span.

Each line holds the fields of the OpenTelemetry SDK's ``ReadableSpan.to_json`` (what ``yr trace``
and other readers parse), made without its per-span copies: the line is put together around the C
JSON encoder, with what many spans share (the resource; a span name's and kind's text; the
attributes dicts that light spans share) encoded once. It runs in the export threads of every
traced process, which share the interpreter with the process's calls.

A per-call span (:class:`~yuanrong._private.light_spans.LightSpan`) is written from its own
fields: the recorder hands it over as it is (:attr:`SpanLogExporter.takes_light_spans`), without
the SDK ``ReadableSpan`` made for other exporters. A span with events or links, or a trace state,
gets the SDK's own ``to_json``.

Pure: no Ray, no yuanrong imports but :mod:`.light_spans`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from yuanrong._private.light_spans import LightSpan

LOG_PREFIX = "trace info "  # openYuanrong's marker of a span line in its log files
_encode = json.JSONEncoder(separators=(",", ":")).encode
_UNSET_JSON = '{"status_code":"UNSET"}'


class SpanLogExporter(SpanExporter):
    """Writes spans to ``out``, a line each, in one write per batch. Closes ``out`` at :meth:`shutdown`."""

    #: The recorder of per-call spans may give them as they are (see the module's text).
    takes_light_spans = True

    def __init__(self, out: IO[str], resource: Resource) -> None:
        self._out = out
        self._line = formatter(resource)

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self._out.write("".join(map(self._line, spans)))
        self._out.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._out.close()

    def __repr__(self) -> str:
        return f"SpanLogExporter({getattr(self._out, 'name', self._out)!r})"


def formatter(resource: Resource) -> Callable[[Any], str]:
    """The function that makes a span's line (an SDK ``ReadableSpan`` or an ended light span)."""
    resource_json = resource.to_json(indent=None)
    kinds: dict[Any, str] = {}
    heads: dict[str, str] = {}      # by span name: the line up to its trace id
    # A line's end from its attributes on, by the identity of the attributes dict: many spans share
    # one (a warm run's, a proxy's submit span's: see light_spans, which never changes a dict it was
    # given). The dict is kept, so its id is not reused while cached. Only plain dicts: the SDK's
    # own spans hold BoundedAttributes.
    tails: dict[int, tuple[Any, str]] = {}

    def kind_json(kind: Any) -> str:
        text = kinds.get(kind)
        if text is None:
            text = kinds[kind] = _encode(str(kind))
        return text

    def tail(raw: Any) -> str:
        if type(raw) is not dict:
            return f',"attributes":{_encode(dict(raw or {}))},"events":[],"links":[],"resource":{resource_json}}}\n'
        cached = tails.get(id(raw))
        if cached is not None and cached[0] is raw:
            return cached[1]
        if len(tails) >= 256:
            tails.clear()
        text = f',"attributes":{_encode(raw)},"events":[],"links":[],"resource":{resource_json}}}\n'
        tails[id(raw)] = (raw, text)
        return text

    def status_json(status: Any) -> str:
        if status.status_code is StatusCode.UNSET and not status.description:
            return _UNSET_JSON
        code = status.status_code.name
        if status.description:
            return f'{{"status_code":"{code}","description":{_encode(status.description)}}}'
        return f'{{"status_code":"{code}"}}'

    def light_line(fields: tuple) -> str:
        name, kind, trace_id, span_id, parent_id, status, start, end, attributes = fields
        head = heads.get(name)
        if head is None:
            if len(heads) >= 256:
                heads.clear()
            head = heads[name] = f'{LOG_PREFIX}{{"name":{_encode(name)},"context":{{"trace_id":"0x'
        parent = f'"0x{parent_id:016x}"' if parent_id is not None else "null"
        return (f'{head}{trace_id:032x}","span_id":"0x{span_id:016x}","trace_state":"[]"}},"kind":{kind_json(kind)},'
                f'"parent_id":{parent},"start_time":"{iso(start)}","end_time":"{iso(end)}",'
                f'"status":{status_json(status)}{tail(attributes)}')

    def line(span: Any) -> str:
        if type(span) is LightSpan:
            fields = span.plain_fields()
            if fields is not None:
                return light_line(fields)
            span = span.readable()
        ctx = span.context
        if span.events or span.links or ctx.trace_state:
            return LOG_PREFIX + span.to_json(indent=None) + "\n"  # exceptions, links: the SDK's full form
        parent = span.parent
        raw = getattr(span, "_attributes", None)
        attributes = tail(raw if type(raw) is dict else span.attributes)
        parent_id = f'"0x{parent.span_id:016x}"' if parent is not None else "null"
        return (f'{LOG_PREFIX}{{"name":{_encode(span.name)},"context":{{"trace_id":"0x{ctx.trace_id:032x}",'
                f'"span_id":"0x{ctx.span_id:016x}","trace_state":"[]"}},"kind":{kind_json(span.kind)},'
                f'"parent_id":{parent_id},"start_time":{_encode(iso(span.start_time))},'
                f'"end_time":{_encode(iso(span.end_time))},"status":{status_json(span.status)}{attributes}')
    return line


_second: tuple[int, str] = (-1, "")  # the last whole second iso formatted, and its text (replaced whole)


def iso(ns: int | None) -> str | None:
    """``ns`` (Unix nanoseconds) as ISO 8601 in UTC to the microsecond; the date and time to the
    second are formatted once per second."""
    global _second
    if not ns:
        return None
    second, rest = divmod(ns, 1_000_000_000)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{rest // 1000:06d}Z"
