"""openYuanrong's ``yr.metrics``: your own metrics, exported with yuanrong's.

Metrics are exported when the job enables them (``yr.Config(enable_metrics=True,
runtime_metrics_config=...)``, see docs/observability.md): from the driver, and from every worker
that runs the job's calls, to the OTLP endpoint; the driver's also on its Prometheus endpoint.
Instruments may be created anywhere (at import time too); while metrics are off, recording is a
no-op, as with OpenTelemetry's API.

Example:
    >>> orders = yr.metrics.UInt64Counter("shop_orders", "orders taken", labels={"shop": "eu"})  # doctest: +SKIP
    >>> orders.add_labels({"channel": "web"}).set(12)                                          # doctest: +SKIP
    >>> depth = yr.metrics.Gauge("queue_depth", "jobs waiting")                                # doctest: +SKIP
    >>> depth.set(3)                                                                            # doctest: +SKIP

Classes: :class:`Gauge` (a value that goes up and down), :class:`UInt64Counter` and
:class:`Counter` (totals that only grow: ``add`` an amount, or ``set`` the new total),
:class:`CustomGauge` and :class:`CustomCounter` (read from your callback at each export).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from yuanrong._private import metering
from yuanrong.exception import InvalidOptionError

__all__ = ["Counter", "CustomCounter", "CustomGauge", "Gauge", "UInt64Counter"]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:.]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.]*$")
METER_NAME = "yuanrong.metrics"


def _check_name(name: Any, cls: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidOptionError(f"{cls}(name={name!r}): a metric name is letters, digits, '_', ':' and '.', not "
                                 f"starting with a digit, e.g. 'shop_orders'.", option="name", value=name)
    return name


def _check_labels(labels: Any, cls: str) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidOptionError(f"{cls} labels={labels!r} must be a dict of label name -> str value.",
                                 option="labels", value=labels)
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL.match(key) or key.startswith("__"):
            raise InvalidOptionError(f"{cls} label name {key!r} is invalid: use letters, digits and '_', not "
                                     f"starting with a digit or '__'.", option="labels", value=labels)
        if not isinstance(value, str):
            raise InvalidOptionError(f"{cls} label {key}={value!r} must have a str value.", option="labels",
                                     value=labels)
    return dict(labels)


class _Metric:
    """Name, description, unit and labels; the OpenTelemetry instrument is made at first use, from the
    meter provider live then (so an instrument made before ``yr.init`` exports once metrics start)."""

    def __init__(self, name: str, description: str = "", unit: str = "", labels: Mapping[str, str] | None = None
                 ) -> None:
        kind = type(self).__name__
        self.name = _check_name(name, kind)
        if not isinstance(description, str) or not isinstance(unit, str):
            raise InvalidOptionError(f"{kind}({name!r}): description and unit must be str.", option="description",
                                     value=(description, unit))
        self.description = description
        self.unit = unit
        self.labels = _check_labels(labels, kind)
        self._lock = threading.Lock()
        self._instrument: Any = None
        self._meter: Any = None

    def add_labels(self, labels: Mapping[str, str]) -> _Metric:
        """Add (or replace) labels on every value recorded from now on; returns ``self``."""
        self.labels.update(_check_labels(labels, type(self).__name__))
        return self

    def _get(self) -> Any:
        meter = metering.meter(METER_NAME)
        if meter is None:
            return None
        if meter is not self._meter:
            with self._lock:
                if meter is not self._meter:
                    self._instrument = self._make(meter)
                    self._meter = meter
        return self._instrument

    def _make(self, meter: Any) -> Any:
        raise NotImplementedError


class Gauge(_Metric):
    """A value that goes up and down (queue depth, temperature); ``set`` records the current value."""

    def _make(self, meter: Any) -> Any:
        return meter.create_gauge(self.name, unit=self.unit, description=self.description)

    def set(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidOptionError(f"Gauge {self.name}.set({value!r}): the value must be a number.",
                                     option="value", value=value)
        instrument = self._get()
        if instrument is not None:
            instrument.set(value, self.labels)


class _Total(_Metric):
    """A total that only grows, per label set: ``add`` an amount, or ``set`` the new total."""

    _integer = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._totals: dict[tuple, float] = {}

    def _make(self, meter: Any) -> Any:
        return meter.create_counter(self.name, unit=self.unit, description=self.description)

    def _check(self, value: Any, what: str) -> None:
        kinds = (int,) if self._integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
            expect = "an int >= 0" if self._integer else "a number >= 0"
            raise InvalidOptionError(f"{type(self).__name__} {self.name}.{what}({value!r}): expected {expect}.",
                                     option="value", value=value)

    def add(self, value: float = 1) -> None:
        """Add ``value`` (>= 0) to the total."""
        self._check(value, "add")
        key = tuple(sorted(self.labels.items()))
        with self._lock:
            self._totals[key] = self._totals.get(key, 0) + value
        instrument = self._get()
        if instrument is not None:
            instrument.add(value, self.labels)

    def set(self, value: float) -> None:
        """Make the total ``value``; a total never goes down, so a smaller value is an error."""
        self._check(value, "set")
        key = tuple(sorted(self.labels.items()))
        with self._lock:
            before = self._totals.get(key, 0)
            if value < before:
                raise InvalidOptionError(
                    f"{type(self).__name__} {self.name}.set({value!r}): the total is already {before!r} and a "
                    f"counter never goes down; use a Gauge for values that do.", option="value", value=value)
            self._totals[key] = value
        instrument = self._get()
        if instrument is not None and value > before:
            instrument.add(value - before, self.labels)


class UInt64Counter(_Total):
    """An integer total (requests served, rows written)."""

    _integer = True


class Counter(_Total):
    """A floating-point total (bytes, seconds of work)."""


class _Custom(_Metric):
    """Read from ``callback`` at each export: it returns a number, or a dict label-dict-tuple -> number."""

    def __init__(self, name: str, description: str = "", unit: str = "", labels: Mapping[str, str] | None = None,
                 *, callback: Callable[[], Any]) -> None:
        super().__init__(name, description, unit, labels)
        if not callable(callback):
            raise InvalidOptionError(f"{type(self).__name__}({name!r}): callback={callback!r} must be callable, "
                                     f"returning the current value.", option="callback", value=callback)
        self.callback = callback
        # Read by every meter provider this process starts from now on (and the live one).
        metering.on_start(self._get)

    def _observe(self, _options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        value = self.callback()
        if isinstance(value, Mapping):
            return [Observation(v, {**self.labels, **dict(k)}) for k, v in value.items()]
        return [Observation(value, self.labels)]


class CustomGauge(_Custom):
    """A gauge read from ``callback`` at each export."""

    def _make(self, meter: Any) -> Any:
        return meter.create_observable_gauge(self.name, callbacks=[self._observe], unit=self.unit,
                                             description=self.description)


class CustomCounter(_Custom):
    """A total read from ``callback`` at each export (the callback returns the total so far)."""

    def _make(self, meter: Any) -> Any:
        return meter.create_observable_counter(self.name, callbacks=[self._observe], unit=self.unit,
                                               description=self.description)
