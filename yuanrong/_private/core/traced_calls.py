"""Spans of yuanrong's calls: a submit span where a call is made, an execution span where it runs.

A traced call carries one extra keyword argument, :data:`~yuanrong._private.tracing.CTX_KWARG`:
the submit span's W3C ``traceparent`` and the job's trace configuration (to a pooled function
instance it travels in one list with the call's arguments, :func:`send`, and becomes that keyword
there). The code that runs in the
worker is wrapped (:func:`traced_function`, :func:`traced_class`) so that the wrapper takes that
argument off before the user's function or method sees it, starts tracing in the worker if needed,
and runs the call inside an execution span whose parent is the submit span. Nested calls made
there are children of it, on whatever node they run.

The wrappers are built only when a job traces (at a function's or class's first call after
``yr.init(enable_trace=True)``): with tracing off, calls run the user's code as before and the call
path pays one boolean check.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import ray
from ray.experimental import internal_kv
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from yuanrong._private import light_spans, metering, session, tracing

CTX_KWARG = tracing.CTX_KWARG
logger = logging.getLogger(__name__)
_CONFIG_KV_PREFIX = "yuanrong/trace-config/"
# Trace configurations by id: those this process put in Ray's key-value store (as a caller), and
# those it read there for compact carriers (as a worker; "": not found).
_configs: dict[str, str] = {}
_SHUTDOWN_HOOK = "__yr_shutdown__"
# A class member of a function group (yr.fcc) has its rank in its process's environment: its runs say it.
GROUP_RANK_ENV = "YR_FUNCTION_GROUP_RANK"
_ran: set[str] = set()          # what this process has run: the first run of each is a cold one
_run_names: dict[str, str] = {}  # the execution span's name of each function or method run here
_process_attributes: dict[str, str] = {}
# The attributes of runs that stay the same in this process, by (name, call, actor id).
_fixed: dict[tuple[str, str, str], dict[str, Any]] = {}
# This worker's (actor id, restarted) once it hosts an actor: fixed from then on (an actor's process
# ends with it). A task worker asks each time: Ray may later hand an idle task worker to an actor.
_actor: list[tuple[str, bool]] = []


class submitting:  # noqa: N801 - used as a context manager, like the function it replaced
    """A submit span around making one call; ``with`` gives the call's kwargs with the context added.

    ``carry=False`` records the span without sending the context (the callee is not wrapped). A
    class rather than a generator: it is on every traced call's path, and the SDK's own
    ``start_as_current_span`` costs two generator context managers more.
    """

    __slots__ = ("_kwargs", "_span", "_token")

    def __init__(self, name: str, kind: str, kwargs: dict[str, Any], attributes: Mapping[str, Any],
                 *, carry: bool = True) -> None:
        self._open(labels(name, kind, attributes), kwargs, carry)

    @classmethod
    def labelled(cls, span_labels: tuple[str, Mapping[str, Any]], kwargs: dict[str, Any], *,
                 carry: bool = True) -> submitting:
        """A submit span with the name and attributes :func:`labels` made (a caller on every call's
        path makes them once and passes them each time)."""
        self = cls.__new__(cls)
        self._open(span_labels, kwargs, carry)
        return self

    def _open(self, span_labels: tuple[str, Mapping[str, Any]], kwargs: dict[str, Any], carry: bool) -> None:
        span_name, span_attributes = span_labels
        self._span = tracing.call_span(span_name, SpanKind.PRODUCER, span_attributes,
                                       otel_trace.get_current_span().get_span_context())
        self._kwargs = {**kwargs, CTX_KWARG: tracing.carrier(self._span)} if carry else kwargs

    @property
    def span(self) -> Any:
        return self._span

    def __enter__(self) -> dict[str, Any]:
        self._token = otel_context.attach(otel_trace.set_span_in_context(self._span))
        return self._kwargs

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        otel_context.detach(self._token)
        _end(self._span, kind, error)


def labels(name: str, kind: str, attributes: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The name and attributes of a submit span (:class:`submitting`); no span changes them."""
    return f"yr.{kind} {name}", {"yr.function": name, "yr.call": kind, **attributes}


def current_carrier(span: Any = None) -> Any:
    """What a call made here sends: the context of ``span`` (default: the current span) in the
    compact form, made from the span's ids (:func:`compact`'s result without the dict it reads), or
    the whole carrier where the compact form cannot hold it (a ``tracestate``, no span recorded,
    tracing just stopped)."""
    if span is None:
        span = otel_trace.get_current_span()
    config_id = tracing.config_id()
    if isinstance(span, light_spans.LightSpan) and config_id and span.trace_state_empty():
        if config_id not in _configs:
            compact(tracing.carrier(span))  # the configuration into the key-value store, once
        return f"{span.traceparent()};{config_id}"
    return compact(tracing.carrier(span))


def compact(carrier: Mapping[str, str]) -> Any:
    """``carrier`` in the compact form (:func:`yuanrong._private.tracing.compact`), its configuration
    first put in Ray's key-value store under its id (once per id and process), so a worker whose
    first traced call is a compact one can read it."""
    out = tracing.compact(carrier)
    if out is not carrier:
        config_id = tracing.config_id()
        if config_id not in _configs:
            internal_kv._internal_kv_put(_CONFIG_KV_PREFIX + config_id, tracing.config_json().encode(),
                                         overwrite=True)
            _configs[config_id] = tracing.config_json()
    return out


def send(inst: Any, carrier: Mapping[str, str], args: tuple, kwargs: dict) -> Any:
    """Send a traced call to a pooled function instance ``inst``: the compact context and the
    arguments in one list (one argument for Ray to serialize, however many the call has), unless an
    argument is an ``ObjectRef``, which Ray resolves only where it is an argument of its own.

    A list, not a tuple: Ray encodes lists, dicts, strings and numbers with MessagePack and pickles
    the rest (a tuple too), each value that needs it, as it does for a call's arguments."""
    context = carrier if isinstance(carrier, str) else compact(carrier)
    if any(isinstance(a, ray.ObjectRef) for a in args) or any(isinstance(v, ray.ObjectRef) for v in kwargs.values()):
        return inst.call_traced(context, *args, **kwargs)
    return inst.call_packed([context, list(args), kwargs])


def expand(carrier: str | Mapping[str, str]) -> Mapping[str, str]:
    """A compact carrier as the carrier it stands for (a carrier :func:`compact` left whole is
    returned as it is). The configuration is this process's own when the id matches, else read once
    from Ray's key-value store; if it is not there (the driver that traced has gone), the call runs
    untraced, with one warning."""
    if not isinstance(carrier, str):
        return carrier
    parent, _, config_id = carrier.partition(";")
    config = tracing.config_json() if config_id == tracing.config_id() else _configs.get(config_id)
    if config is None:
        raw = internal_kv._internal_kv_get(_CONFIG_KV_PREFIX + config_id)
        config = _configs[config_id] = raw.decode() if raw else ""
        if not config:
            logger.warning("a traced call named trace configuration %r, which the cluster does not hold (its "
                           "driver has ended?); calls naming it run without spans in this process.", config_id)
    return {tracing.CONFIG_KEY: config, "traceparent": parent}


def accepts_context(actor_method: Any) -> bool:
    """Whether an actor method was built by :func:`traced_class` (so it takes the context argument)."""
    return any(p.name == CTX_KWARG for p in getattr(actor_method, "_signature", None) or ())


def _start(carrier: Any) -> bool:
    config = carrier.get(tracing.CONFIG_KEY) if isinstance(carrier, Mapping) else None
    if not config:
        return False
    if not _process_attributes and ray.is_initialized():
        _process_attributes.update(session.process_attributes(ray.get_runtime_context(), role="worker"))
    return tracing.adopt(config, _process_attributes)


def _actor_facts() -> tuple[str, bool]:
    if _actor:
        return _actor[0]
    ctx = ray.get_runtime_context()
    actor_id = ctx.get_actor_id() or ""
    if not actor_id:
        return "", False
    _actor.append((actor_id, ctx.was_current_actor_reconstructed))
    return _actor[0]


def _run_attributes(name: str, call: str, extra: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """One run's attributes. A warm first attempt's are the same for every run of ``name`` in this
    process: made once and shared (no one changes them: a span copies them before its first write);
    a cold run's, a retry's and those with ``extra`` are a new dict."""
    actor_id, restarted = _actor_facts()
    cold = name not in _ran
    if cold:
        _ran.add(name)
    fixed = _fixed.get((name, call, actor_id))
    if fixed is None:
        fixed = _fixed[name, call, actor_id] = _fixed_attributes(name, call, actor_id, restarted)
    attempt = session.task_attempt()
    if extra or cold or attempt:
        return {**fixed, **(extra or {}), "yr.cold": cold, "yr.attempt": attempt}
    return fixed


def _fixed_attributes(name: str, call: str, actor_id: str, restarted: bool) -> dict[str, Any]:
    """The attributes of ``name``'s warm, first-attempt runs in this process."""
    attributes = {"yr.function": name, "yr.node_id": _process_attributes.get("yr.node_id", ""),
                  "yr.pool": _process_attributes.get("yr.pool", ""), "yr.tier": _process_attributes.get("yr.tier", ""),
                  "yr.instance_id": actor_id}
    if call == "function":
        attributes["yr.call_path"] = "function_instance" if actor_id else "task"
    elif call == "replica":
        attributes["yr.call_path"] = "replica"   # a scale-to-zero endpoint's replica, called by its activator
    else:
        attributes["yr.call_path"] = "instance"
        attributes["yr.restarted"] = restarted
        rank = os.environ.get(GROUP_RANK_ENV) if actor_id else None
        if rank is not None:
            attributes["yr.rank"] = int(rank)
    attributes["yr.cold"] = False
    attributes["yr.attempt"] = 0
    return attributes


class _Execution:
    """One call's execution: its span (when spans are on) and its metrics (when metrics are on)."""

    __slots__ = ("_span", "_attributes", "_started", "_token")

    def __init__(self, carrier: Mapping[str, str] | str, name: str, call: str,
                 extra: Mapping[str, Any] | None = None) -> None:
        """``carrier``: the call's carrier, or the traceparent text of a compact one."""
        self._attributes = _run_attributes(name, call, extra)
        self._span = None
        if tracing.spans:
            span_name = _run_names.get(name)
            if span_name is None:
                span_name = _run_names[name] = f"yr.run {name}"
            if isinstance(carrier, str):
                self._span = light_spans.start_remote(span_name, SpanKind.CONSUMER, self._attributes, carrier)
            else:
                self._span = tracing.call_span(span_name, SpanKind.CONSUMER, self._attributes,
                                               tracing.span_context_from_carrier(carrier))

    def __enter__(self) -> _Execution:
        if self._span is not None:
            self._token = otel_context.attach(otel_trace.set_span_in_context(self._span))
        self._started = time.perf_counter()
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        a = self._attributes
        if metering.on():
            metering.record_call({"yr.function": a["yr.function"], "yr.call_path": a["yr.call_path"],
                                  "yr.pool": a["yr.pool"]}, time.perf_counter() - self._started, error is not None,
                                 a["yr.cold"])
        span = self._span
        if span is not None:
            otel_context.detach(self._token)
            _end(span, kind, error)


def _end(span: Any, kind: Any, error: Any) -> None:
    """End ``span``, as ERROR with the exception when the call raised."""
    if error is not None and span.is_recording():
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {error}"))
    span.end()


def execution(carrier: Any, name: str, call: str, extra: Mapping[str, Any] | None = None) -> _Execution | None:
    """The execution of one call (a context manager: its ``yr.run`` span and metrics), or None when
    the call carries no telemetry. ``call``: ``function``, ``instance`` or ``replica``; ``extra``:
    attributes of this run only (a function group member's ``yr.rank``)."""
    if carrier is None:
        return None
    if isinstance(carrier, str):
        parent, _, config_id = carrier.partition(";")
        if config_id and config_id == tracing.config_id():
            return _Execution(parent, name, call, extra)  # this process traces with that configuration already
        carrier = expand(carrier)
    if not _start(carrier):
        return None
    return _Execution(carrier, name, call, extra)



def traced_function(func: Callable, name: str, call: str = "function") -> Callable:
    """``func`` wrapped to run in an execution span when called with a trace context."""
    if inspect.iscoroutinefunction(func):
        async def run(*args: Any, **kwargs: Any) -> Any:
            span = execution(kwargs.pop(CTX_KWARG, None), name, call)
            if span is None:
                return await func(*args, **kwargs)
            with span:
                return await func(*args, **kwargs)
    elif inspect.isasyncgenfunction(func):
        async def run(*args: Any, **kwargs: Any) -> Any:
            span = execution(kwargs.pop(CTX_KWARG, None), name, call)
            if span is None:
                async for item in func(*args, **kwargs):
                    yield item
                return
            # The span is current only while the body runs, between yields it is not: a context
            # must not stay attached while the caller's code runs.
            with span:
                items = func(*args, **kwargs)
            async for item in items:
                yield item
    elif inspect.isgeneratorfunction(func):
        def run(*args: Any, **kwargs: Any) -> Any:
            span = execution(kwargs.pop(CTX_KWARG, None), name, call)
            if span is None:
                yield from func(*args, **kwargs)
                return
            with span:
                items = func(*args, **kwargs)
            yield from items
    else:
        span_name = f"yr.run {name}"

        def run(*args: Any, **kwargs: Any) -> Any:
            carrier = kwargs.pop(CTX_KWARG, None)
            if type(carrier) is str and tracing.spans and not metering.on():
                # A pooled call's usual case, on every call's path: a compact carrier of the
                # configuration this process traces with, spans and no metrics. What _Execution
                # does then, without making one.
                parent, _, config_id = carrier.partition(";")
                if config_id == tracing.config_id():
                    span = light_spans.start_remote(span_name, SpanKind.CONSUMER, _run_attributes(name, call), parent)
                    token = otel_context.attach(otel_trace.set_span_in_context(span))
                    try:
                        result = func(*args, **kwargs)
                    except BaseException as error:
                        otel_context.detach(token)
                        _end(span, type(error), error)
                        raise
                    otel_context.detach(token)
                    span.end()
                    return result
            span = execution(carrier, name, call)
            if span is None:
                return func(*args, **kwargs)
            with span:
                return func(*args, **kwargs)
    functools.update_wrapper(run, func)
    # Ray checks a call's arguments against the signature it reads from the function: add ours. It
    # unwraps actor methods first, so the wrapper must not point at the function it wraps.
    del run.__wrapped__
    run.__signature__ = _with_context_parameter(inspect.signature(func))  # type: ignore[attr-defined]
    return run


def _with_context_parameter(sig: inspect.Signature) -> inspect.Signature:
    params = list(sig.parameters.values())
    extra = inspect.Parameter(CTX_KWARG, inspect.Parameter.KEYWORD_ONLY, default=None)
    at = len(params) - 1 if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD else len(params)
    return sig.replace(parameters=[*params[:at], extra, *params[at:]])


def traced_class(cls: type) -> type:
    """A subclass of ``cls`` whose ``__init__`` and methods run in execution spans when traced."""
    namespace: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                 "__doc__": cls.__doc__}
    for attr, member in inspect.getmembers(cls, inspect.isfunction):
        if attr.startswith("__") and attr not in ("__init__", _SHUTDOWN_HOOK):
            continue
        if isinstance(inspect.getattr_static(cls, attr), (staticmethod, classmethod)):
            continue
        namespace[attr] = traced_function(member, f"{cls.__qualname__}.{attr}", call="instance")
    if "__init__" not in namespace and cls.__init__ is object.__init__:
        def __init__(self: Any) -> None:
            pass
        namespace["__init__"] = traced_function(__init__, f"{cls.__qualname__}.__init__", call="instance")
    return type(cls.__name__, (cls,), namespace)


def creation_accepts_context(cls: type) -> bool:
    return tracing.takes_context(cls.__init__)
