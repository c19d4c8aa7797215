"""openYuanrong's ``yr.trace``: OpenTelemetry spans of your own inside yuanrong's call spans.

Tracing is switched on for a job with ``yr.Config(enable_trace=True, runtime_trace_config=...)``
(see docs/observability.md). Then every call yuanrong makes has a span, and a span you start in a
function or instance method is a child of that call's execution span::

    import yuanrong as yr

    @yr.invoke
    def score(rows):
        with yr.trace.get_tracer("scoring").start_as_current_span("load-model"):
            ...

With tracing off, :func:`get_tracer` returns OpenTelemetry's global tracer (a no-op one unless
the program set up OpenTelemetry itself), so instrumented code runs unchanged.
"""

from __future__ import annotations

from typing import Any

from yuanrong._private import tracing
from yuanrong.exception import InvalidOptionError

__all__ = ["get_tracer"]


def get_tracer(name: str) -> Any:
    """An OpenTelemetry ``Tracer`` named ``name`` whose spans are exported with yuanrong's.

    Example:
        >>> tracer = yr.trace.get_tracer("my-app")          # doctest: +SKIP
        >>> with tracer.start_as_current_span("step"):      # doctest: +SKIP
        ...     pass
    """
    if not isinstance(name, str) or not name:
        raise InvalidOptionError(f"get_tracer(name={name!r}): name must be a non-empty str, such as your "
                                 f"module's __name__.", option="name", value=name)
    return tracing.get_tracer(name)
