"""yuanrong's per-call spans (``yr.invoke``, ``yr.run``), made without the OpenTelemetry SDK's ``Span``.

Every traced call makes two spans, one where it is made and one where it runs. On that path the
SDK's ``Tracer.start_span`` and ``Span.end`` cost 30-45 µs a span on the development machine (each
attribute validated and copied under a lock, span limits and the sampler consulted, a second,
read-only copy made at the end), more than everything else tracing adds to a call. A
:class:`LightSpan` does what these spans need and no more: ids drawn as the SDK's
``RandomIdGenerator`` draws them, the decision of the provider's ``ParentBased`` sampler, a plain
attribute dict, and at its end one SDK ``ReadableSpan`` handed to the provider's span processors,
so exporters receive exactly what an SDK span would have given them.

It is an OpenTelemetry ``Span``: it can be made current, spans started inside it (user spans,
``yr.place``) are its children, and ``set_attribute``, ``add_event``, ``set_status`` and
``record_exception`` work on it as on the SDK's.

Pure: no Ray, no yuanrong imports; :mod:`yuanrong._private.tracing` configures it.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)


class Recorder:
    """Where this process's light spans go: the provider's resource and span processors, the
    instrumentation scope, and the sampler of root spans (``None``: every root span is recorded)."""

    __slots__ = ("resource", "scope", "processors", "root_sampler")

    def __init__(self, resource: Resource, scope_name: str, processors: Sequence[Any], root_sampler: Any) -> None:
        self.resource = resource
        self.scope = InstrumentationScope(scope_name)
        self.processors = tuple(processors)
        self.root_sampler = root_sampler


_recorder: Recorder | None = None


def configure(recorder: Recorder | None) -> None:
    """Record light spans with ``recorder`` from now on (``None``: make only non-recording spans)."""
    global _recorder
    _recorder = recorder


def start(name: str, kind: SpanKind, attributes: dict[str, Any], parent: SpanContext | None) -> Any:
    """A started span named ``name``, child of ``parent`` (a new trace's root when ``None`` or
    invalid). ``attributes`` is kept, not copied: the caller gives a dict of its own.

    As the SDK with a ``ParentBased`` sampler: a child follows its parent's sampled flag, a root the
    root sampler; an unsampled span is a ``NonRecordingSpan`` carrying its ids, so the calls below
    it follow the decision. With no recorder (tracing off, or metrics alone), an invalid span.
    """
    recorder = _recorder
    if recorder is None:
        return otel_trace.INVALID_SPAN
    span_id = random.getrandbits(64) or 1
    if parent is not None and parent.is_valid:
        sampled = parent.trace_flags.sampled
        context = SpanContext(parent.trace_id, span_id, False, _SAMPLED if sampled else _NOT_SAMPLED,
                              parent.trace_state)
    else:
        parent = None
        trace_id = random.getrandbits(128) or 1
        sampler = recorder.root_sampler
        sampled = sampler is None or sampler.should_sample(None, trace_id, name).decision.is_sampled()
        context = SpanContext(trace_id, span_id, False, _SAMPLED if sampled else _NOT_SAMPLED)
    if not sampled:
        return otel_trace.NonRecordingSpan(context)
    return LightSpan(name, context, parent, kind, attributes, recorder)


class LightSpan(otel_trace.Span):
    """A recording span that becomes an SDK ``ReadableSpan`` for the span processors when it ends."""

    __slots__ = ("_name", "_context", "_parent", "_kind", "_attributes", "_events", "_status", "_start",
                 "_end", "_recorder")

    def __init__(self, name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind,
                 attributes: dict[str, Any], recorder: Recorder) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._events: list[Event] | None = None
        self._status = _UNSET
        self._recorder = recorder
        self._end: int | None = None
        self._start = time.time_ns()

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end is None and value is not None:
            self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None) -> None:
        if self._end is None:
            if self._events is None:
                self._events = []
            self._events.append(Event(name, attributes, timestamp))

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return  # as the SDK: a span's OK status is final
        self._status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(self, exception: BaseException, attributes: Mapping[str, Any] | None = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        """The exception as an ``exception`` event, with the SDK's attributes."""
        module, qualname = type(exception).__module__, type(exception).__qualname__
        event = {"exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
                 "exception.message": str(exception),
                 "exception.stacktrace": "".join(traceback.format_exception(exception)),
                 "exception.escaped": str(escaped), **(attributes or {})}
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time or time.time_ns()
        recorder = self._recorder
        readable = ReadableSpan(name=self._name, context=self._context, parent=self._parent,
                                resource=recorder.resource, attributes=self._attributes,
                                events=tuple(self._events) if self._events else (), kind=self._kind,
                                status=self._status, start_time=self._start, end_time=self._end,
                                instrumentation_scope=recorder.scope)
        for processor in recorder.processors:
            processor.on_end(readable)

    def __repr__(self) -> str:
        return f"LightSpan({self._name!r}, trace_id=0x{self._context.trace_id:032x}, span_id=0x{self._context.span_id:016x})"
