"""Per-tenant quotas kept by the catalogue (set by an admin, enforced where data is published)."""

from __future__ import annotations

from datashare import tenancy
from datashare._ray import handles
from datashare._ray.handles import CONTROL_TIMEOUT_S, require_connected
from datashare.errors import InvalidArgumentError, PermissionDeniedError


def set_quota(tenant: str, quota: str, limit: float | None, *, timeout: float = CONTROL_TIMEOUT_S) -> None:
    """Set one of ``tenant``'s quotas (``None`` lifts it). Admin only.

    ``"dataset_bytes"`` limits the bytes of the tenant's datasets (their latest versions): a publish
    beyond it raises :class:`QuotaExceededError` naming the quota. Other names (yuanrong's ``cpus``
    and ``instances``) are kept for their enforcers. The catalogue keeps quotas in memory: set them
    again after it restarts.
    """
    require_connected()
    me = tenancy.current()
    if not me.admin:
        raise PermissionDeniedError(f"tenant {me.name!r} may not set quotas; only the admin role may.",
                                    tenant=me.name, owner=tenant, resource="quota")
    if limit is not None and (not isinstance(limit, (int, float)) or isinstance(limit, bool) or limit < 0):
        raise InvalidArgumentError(quota, limit, "a quota is a number >= 0, or None for no limit.")
    handles.ask_catalogue("set_quota", tenant, quota, limit, timeout=timeout)


def quotas(tenant: str, *, timeout: float = CONTROL_TIMEOUT_S) -> dict[str, float]:
    """``tenant``'s quotas by name (empty when none were set, without starting the catalogue)."""
    require_connected()
    if not handles.catalogue_exists():
        return {}
    return handles.ask_catalogue("quotas", tenant, timeout=timeout)


def report_usage(tenant: str, amounts: dict[str, float]) -> None:
    """Tell the catalogue what this job of ``tenant`` uses now (empty: nothing), without waiting.
    A report counts for ``catalogue.USAGE_LEASE_S``: report again while using anything."""
    require_connected()
    handles.catalogue().report_usage.remote(tenant, handles.connection_id(), dict(amounts))


def tenant_usage(tenant: str, *, others_only: bool = True, timeout: float = CONTROL_TIMEOUT_S) -> dict[str, float]:
    """What ``tenant``'s jobs reported using, summed (by default leaving out this job's report)."""
    require_connected()
    if not handles.catalogue_exists():
        return {}
    without = handles.connection_id() if others_only else None
    return handles.ask_catalogue("tenant_usage", tenant, without, timeout=timeout)
