"""yuanrong's per-call spans (``yr.invoke``, ``yr.run``), made without the OpenTelemetry SDK's ``Span``.

Every traced call makes two spans, one where it is made and one where it runs. On that path the
SDK's ``Tracer.start_span`` and ``Span.end`` cost 30-45 µs a span on the development machine (each
attribute validated and copied under a lock, span limits and the sampler consulted, a second,
read-only copy made at the end), more than everything else tracing adds to a call. A
:class:`LightSpan` does on the call's path only what cannot wait: its ids (drawn as the SDK's
``RandomIdGenerator`` draws them), the decision of the provider's ``ParentBased`` sampler, its start
and end times. Its ``SpanContext`` is made only if something asks for it (a span started inside it,
a carrier), its attributes dict is shared until written, and a parent read from a carrier is kept
as its span id. At its end it is queued; the :class:`Recorder`'s thread turns queued spans into
SDK ``ReadableSpan`` objects in batches and gives each batch to the provider's exporters, so they
receive exactly what an SDK span would have given them (yuanrong's span log takes the light spans
themselves, :meth:`LightSpan.plain_fields`, and writes the same lines). Work done for a batch in
one loop costs a fraction of the same work done once per call between Ray's own.

It is an OpenTelemetry ``Span``: it can be made current, spans started inside it (user spans,
``yr.place``) are its children, and ``set_attribute``, ``add_event``, ``set_status`` and
``record_exception`` work on it as on the SDK's.

Pure: no Ray, no yuanrong imports; :mod:`yuanrong._private.tracing` configures it.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger(__name__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)
_PROPAGATOR = TraceContextTextMapPropagator()


class Recorder:
    """Where this process's light spans go: the provider's resource and span exporters, the
    instrumentation scope, and the sampler of root spans (``None``: every root span is recorded).

    Ended spans wait in a queue; a thread exports them every ``delay_s`` seconds, or as soon as
    ``batch`` are waiting, as the SDK's ``BatchSpanProcessor`` does for its spans (the exporters are
    shared with it: they must take one export at a time). An exporter whose ``takes_light_spans``
    is true gets the light spans as they are; the others, their SDK ``ReadableSpan`` forms. At most ``max_queue`` wait: beyond that
    the oldest are dropped, with one warning. :meth:`flush` exports what waits now; :meth:`shutdown`
    does and stops the thread (the exporters belong to the provider, which shuts them down).
    """

    def __init__(self, resource: Resource, scope_name: str, exporters: Sequence[Any], root_sampler: Any, *,
                 delay_s: float = 0.2, batch: int = 1024, max_queue: int = 65536) -> None:
        self.resource = resource
        self.scope = InstrumentationScope(scope_name)
        self.exporters = tuple(exporters)
        self.root_sampler = root_sampler
        self._delay_s = delay_s
        self._batch = batch
        self._queue: collections.deque[LightSpan] = collections.deque(maxlen=max_queue)
        self._wake = threading.Event()
        self._exporting = threading.Lock()   # one export at a time: a flush returns after the spans before it
        self._stopped = False
        self._warned_full = False
        self._thread = threading.Thread(target=self._run, name="yr-span-recorder", daemon=True)
        self._thread.start()

    def add(self, span: LightSpan) -> None:
        queue = self._queue
        queue.append(span)
        if len(queue) >= self._batch:
            if len(queue) == queue.maxlen and not self._warned_full:
                self._warned_full = True
                logger.warning("more than %d spans waited for export in this process: the oldest are being "
                               "dropped (is the exporter's endpoint slow or gone?)", queue.maxlen)
            if not self._wake.is_set():
                self._wake.set()

    def flush(self) -> None:
        """Export every span queued so far (this thread waits for it)."""
        with self._exporting:
            queue, batch_size = self._queue, self._batch
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), batch_size))]
                readable = None
                # As the SDK's processors: an exporter's own calls (gRPC) are not instrumented.
                token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
                try:
                    for exporter in self.exporters:
                        try:
                            if getattr(exporter, "takes_light_spans", False):
                                exporter.export(batch)
                                continue
                            if readable is None:
                                readable = _readable(batch)
                            exporter.export(readable)
                        except Exception:  # noqa: BLE001 - one exporter's failure must not cost the others
                            logger.exception("span exporter %r failed", exporter)
                finally:
                    otel_context.detach(token)

    def shutdown(self) -> None:
        """Export what is queued and stop the thread (idempotent)."""
        self._stopped = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self.flush()


def _readable(batch: list[LightSpan]) -> list[ReadableSpan]:
    out = []
    for span in batch:
        try:
            out.append(span.readable())
        except Exception:  # noqa: BLE001 - one bad span must not stop the thread or lose the rest
            logger.exception("span %r could not be exported", span)
    return out


_recorder: Recorder | None = None


def configure(recorder: Recorder | None) -> Recorder | None:
    """Record light spans with ``recorder`` from now on (``None``: make only non-recording spans).
    Returns the recorder it replaces, for the caller to shut down before its exporters go."""
    global _recorder
    old, _recorder = _recorder, recorder
    return old


def current() -> Recorder | None:
    return _recorder


def start(name: str, kind: SpanKind, attributes: Mapping[str, Any], parent: SpanContext | None) -> Any:
    """A started span named ``name``, child of ``parent`` (a new trace's root when ``None`` or
    invalid). ``attributes`` is kept, not copied (a span copies it before its first write): it may be
    a mapping shared by many spans that no one changes.

    As the SDK with a ``ParentBased`` sampler: a child follows its parent's sampled flag, a root the
    root sampler; an unsampled span is a ``NonRecordingSpan`` carrying its ids, so the calls below
    it follow the decision. With no recorder (tracing off, or metrics alone), an invalid span.
    """
    recorder = _recorder
    if recorder is None:
        return otel_trace.INVALID_SPAN
    span_id = random.getrandbits(64) or 1
    if parent is not None and parent.is_valid:
        if not parent.trace_flags.sampled:
            return otel_trace.NonRecordingSpan(SpanContext(parent.trace_id, span_id, False, _NOT_SAMPLED,
                                                           parent.trace_state))
        return LightSpan(name, parent.trace_id, span_id, parent, kind, attributes, recorder)
    trace_id = random.getrandbits(128) or 1
    sampler = recorder.root_sampler
    if sampler is not None and not sampler.should_sample(None, trace_id, name).decision.is_sampled():
        return otel_trace.NonRecordingSpan(SpanContext(trace_id, span_id, False, _NOT_SAMPLED))
    return LightSpan(name, trace_id, span_id, None, kind, attributes, recorder)


def start_remote(name: str, kind: SpanKind, attributes: Mapping[str, Any], traceparent: str) -> Any:
    """:func:`start` for a parent given as W3C ``traceparent`` text that yuanrong itself wrote (a
    compact carrier's): a sampled parent's ids are read without a ``SpanContext``. Any other text is
    read by OpenTelemetry's propagator (what it cannot read starts a new trace)."""
    recorder = _recorder
    if recorder is None:
        return otel_trace.INVALID_SPAN
    if len(traceparent) == 55 and traceparent[53:55] == "01" and traceparent.startswith("00-"):
        try:
            trace_id, parent_id = int(traceparent[3:35], 16), int(traceparent[36:52], 16)
        except ValueError:
            trace_id = parent_id = 0
        if trace_id and parent_id:
            return LightSpan(name, trace_id, random.getrandbits(64) or 1, parent_id, kind, attributes, recorder)
    parent = otel_trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent})).get_span_context()
    return start(name, kind, attributes, parent if parent.is_valid else None)


class LightSpan(otel_trace.Span):
    """A recording span, queued to its :class:`Recorder` when it ends (always a sampled one)."""

    __slots__ = ("_name", "_trace_id", "_span_id", "_parent", "_kind", "_attributes", "_own_attributes",
                 "_events", "_status", "_start", "_end", "_recorder", "_context")

    def __init__(self, name: str, trace_id: int, span_id: int, parent: SpanContext | int | None,
                 kind: SpanKind, attributes: Mapping[str, Any], recorder: Recorder) -> None:
        self._name = name
        self._trace_id = trace_id
        self._span_id = span_id
        self._parent = parent              # a SpanContext, a sampled remote parent's span id, or None (a root)
        self._kind = kind
        self._attributes = attributes
        self._own_attributes = False       # copied before the first write: it may be shared
        self._events: list[Event] | None = None
        self._status = _UNSET
        self._recorder = recorder
        self._end: int | None = None
        self._context: SpanContext | None = None
        self._start = time.time_ns()

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            parent = self._parent
            state = parent.trace_state if isinstance(parent, SpanContext) else None
            context = self._context = SpanContext(self._trace_id, self._span_id, False, _SAMPLED, state)
        return context

    def traceparent(self) -> str:
        return f"00-{self._trace_id:032x}-{self._span_id:016x}-01"

    def trace_state_empty(self) -> bool:
        parent = self._parent
        return not (isinstance(parent, SpanContext) and parent.trace_state)

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end is None and value is not None:
            if not self._own_attributes:
                self._attributes = dict(self._attributes)
                self._own_attributes = True
            self._attributes[key] = value  # type: ignore[index]

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
        self._recorder.add(self)

    def plain_fields(self) -> tuple | None:
        """An ended span's ``(name, kind, trace_id, span_id, parent span id or None, status, start,
        end, attributes)``, for an exporter that writes them as they are; None when the span has
        more (events, a trace state), which its :meth:`readable` form holds."""
        parent = self._parent
        if self._events or (isinstance(parent, SpanContext) and parent.trace_state):
            return None
        parent_id = parent if type(parent) is int else (parent.span_id if parent is not None else None)
        return (self._name, self._kind, self._trace_id, self._span_id, parent_id, self._status, self._start,
                self._end, self._attributes)

    def readable(self) -> ReadableSpan:
        """The SDK's read-only form of this ended span, as exporters take it."""
        parent = self._parent
        if isinstance(parent, int):
            parent = SpanContext(self._trace_id, parent, True, _SAMPLED)
        recorder = self._recorder
        return ReadableSpan(name=self._name, context=self.get_span_context(), parent=parent,
                            resource=recorder.resource, attributes=self._attributes,
                            events=tuple(self._events) if self._events else (), kind=self._kind,
                            status=self._status, start_time=self._start, end_time=self._end,
                            instrumentation_scope=recorder.scope)

    def __repr__(self) -> str:
        return f"LightSpan({self._name!r}, trace_id=0x{self._trace_id:032x}, span_id=0x{self._span_id:016x})"
