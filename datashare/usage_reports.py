"""What each tenant's jobs report they use (instances, CPUs), counted while the reports are fresh. Pure.

The catalogue keeps these for yuanrong's quota checks; a job reports every few seconds while it
uses anything, so a job that died without a last report stops counting once its report is older
than :data:`USAGE_LEASE_S`.

Example:
    >>> reports = UsageReports(clock=lambda: 0.0)
    >>> reports.report("t", "job-1", {"instances": 2})
    >>> reports.total("t")
    {'instances': 2.0}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["USAGE_LEASE_S", "UsageReports"]

USAGE_LEASE_S = 15.0
"""How long a job's report of what it uses counts (jobs report every few seconds while they use any)."""


class UsageReports:
    """Tenant -> reporter -> (amounts, when reported), on an injected clock."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._usage: dict[str, dict[str, tuple[dict[str, float], float]]] = {}

    def report(self, tenant: str, reporter: str, amounts: Mapping[str, float]) -> None:
        """What ``reporter`` (one job) of ``tenant`` uses now, e.g. ``{"instances": 3, "cpus": 1.5}``;
        empty forgets the reporter. A report counts for :data:`USAGE_LEASE_S`."""
        usage = self._usage.setdefault(tenant, {})
        if amounts:
            usage[reporter] = (dict(amounts), self._clock())
        else:
            usage.pop(reporter, None)

    def total(self, tenant: str, *, without: str | None = None) -> dict[str, float]:
        """The sum of the current reports of ``tenant``'s reporters, leaving out ``without``."""
        now, total = self._clock(), {}
        usage = self._usage.get(tenant, {})
        for reporter, (amounts, at) in list(usage.items()):
            if now - at > USAGE_LEASE_S:
                del usage[reporter]
            elif reporter != without:
                for name, amount in amounts.items():
                    total[name] = total.get(name, 0.0) + amount
        return total
