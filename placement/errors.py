"""Exceptions raised by the placement engine.

The tree::

    PlacementError                 every error the placement package raises on purpose
    ├── PlacementInfeasible        no node set satisfies the request (or it timed out); has .explanation
    └── PoolConfigError            a pools file or pool definition is invalid; has .source/.line/.key

``placement`` never imports ``yuanrong``; yuanrong's own exceptions wrap these.
"""

from __future__ import annotations

from typing import Any


class PlacementError(Exception):
    """Root of every error the placement package raises on purpose."""


class PlacementInfeasible(PlacementError):
    """A request cannot be placed, or was not placed before its timeout.

    Attributes:
        explanation: The :class:`placement.decision.Infeasibility` (or a plain string for a timeout
            whose cause lies outside the engine) saying which constraint excluded which pools.
        request: The request that could not be placed, if known.
        timed_out: True when the engine found a placement but Ray did not realise it in time.
    """

    def __init__(self, message: str, *, explanation: Any = None, request: Any = None,
                 timed_out: bool = False) -> None:
        super().__init__(message)
        self.explanation = explanation
        self.request = request
        self.timed_out = timed_out


class PoolConfigError(PlacementError):
    """A pools file (or an in-memory pool definition) is invalid.

    Attributes:
        source: File name (or ``"<string>"``) the definition came from.
        line: 1-based line of the offending key or value, when known.
        key: Dotted path of the offending key, e.g. ``pools[1].latency_ms.regions``.
    """

    def __init__(self, message: str, *, source: str = "<string>", line: int | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.line = line
        self.key = key
