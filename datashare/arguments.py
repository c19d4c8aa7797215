"""Checks of the arguments many datashare calls share: versions and timeouts.

Pure, so the rules are tested without Ray. Each check raises :class:`InvalidArgumentError` naming
the argument, the value given and what would be accepted.

Example:
    >>> check_timeout(5)
    5.0
    >>> check_timeout(float("nan"))
    Traceback (most recent call last):
    ...
    datashare.errors.InvalidArgumentError: timeout=nan is not valid: it must be a number of seconds > 0 and at most 2147483647.
"""

from __future__ import annotations

from datashare.errors import InvalidArgumentError

__all__ = ["MAX_TIMEOUT_S", "check_timeout", "check_version"]

MAX_TIMEOUT_S = 0x7FFFFFFF
"""Longest timeout accepted, in seconds (Ray's timers overflow beyond it)."""


def check_timeout(timeout: object, *, argument: str = "timeout", allow_none: bool = False) -> float | None:
    """A timeout in seconds: a number > 0 and at most :data:`MAX_TIMEOUT_S` (``None`` if allowed).

    NaN and infinity are refused: NaN compares false with every deadline, so a wait would never end.
    """
    if timeout is None and allow_none:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_S:
        tail = ", or None to wait without limit" if allow_none else ""
        raise InvalidArgumentError(argument, timeout, f"it must be a number of seconds > 0 and at most "
                                                      f"{MAX_TIMEOUT_S}{tail}.")
    return float(timeout)


def check_version(version: object) -> int | None:
    """A dataset version: an int >= 1, or ``None`` for the latest."""
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise InvalidArgumentError("version", version, "it must be an int >= 1, or None for the latest.")
    return version
