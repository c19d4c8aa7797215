"""Bytes that datashare publishes and reads, for whoever measures them.

datashare knows nothing of the application's metrics: an application that exports metrics (yuanrong
does, with ``enable_metrics``) registers a listener with :func:`on_bytes`, and each publish, append
and open reports its bytes to it. With no listener, reporting costs one list check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("datashare")

#: ``listener(direction, nbytes, attributes)``: direction is ``"published"`` or ``"read"``.
Listener = Callable[[str, int, Mapping[str, Any]], None]
_listeners: list[Listener] = []


def on_bytes(listener: Listener) -> None:
    """Call ``listener`` for every publish, append and open in this process (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def report(direction: str, nbytes: int, attributes: Mapping[str, Any]) -> None:
    """Tell the listeners; a failing listener is logged, never raised into the data path."""
    for listener in _listeners:
        try:
            listener(direction, nbytes, attributes)
        except Exception as e:  # noqa: BLE001 - measuring must not fail a publish or a read
            logger.debug("datashare bytes listener failed: %s", e)
