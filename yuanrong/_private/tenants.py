"""Tenants in the API: names scoped to the caller's tenant, quotas, and the admin's quota calls.

Named instances (their Ray namespace) and streams use datashare's rule for dataset names and KV
keys (``datashare.tenancy``): the default tenant's names are as given, another tenant's are
``"<tenant>$<name>"``, and naming another tenant's full name is refused with
:class:`yuanrong.PermissionDeniedError` unless the caller is admin.

Quotas live in datashare's catalogue (so every job of a tenant reads the same numbers):
``dataset_bytes`` is enforced there, at publish; ``cpus`` and ``instances`` here, when an instance
is created, counting the instances of all the tenant's jobs. Ray has no per-tenant accounting of
actors, so each job of a tenant with such a quota reports what it keeps alive to the catalogue
when it creates an instance and every few seconds while it keeps any (``datashare.report_usage``);
a job that dies without its last report stops counting once its report is 15 s old.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import datashare
from datashare import errors as ds_errors
from datashare import tenancy
from yuanrong.exception import InvalidOptionError, PermissionDeniedError, QuotaExceededError, _adopt

QUOTAS = ("cpus", "instances", "dataset_bytes")
_CACHE_S = 5.0
_cache: dict[str, tuple[float, dict[str, float]]] = {}
_cache_lock = threading.Lock()


def scoped(name: str, *, what: str, argument: str) -> str:
    """The stored name ``name`` means for the calling tenant (see the module docstring)."""
    try:
        return tenancy.full_name(name, what=what, argument=argument)
    except ds_errors.PermissionDeniedError as e:
        raise _adopt(e) from None
    except ds_errors.InvalidArgumentError as e:
        raise InvalidOptionError(str(e), option=argument, value=name) from None


def visible(stored: str) -> bool:
    """Whether the calling tenant may see ``stored`` in a listing."""
    return tenancy.visible(stored)


def set_quota(tenant: str, *, cpus: float | None = None, instances: int | None = None,
              dataset_bytes: int | None = None) -> None:
    """Set ``tenant``'s quotas (admin only); a quota left ``None`` is not changed.

    Example:
        >>> yr.set_tenant_quota("shop", cpus=4, instances=8, dataset_bytes=2 << 30)   # doctest: +SKIP
    """
    me = tenancy.current()
    if not me.admin:
        raise PermissionDeniedError(f"tenant {me.name!r} may not set quotas; only the admin role may (an admin "
                                    f"token in Config.auth_token).", tenant=me.name, owner=tenant, resource="quota")
    for quota, limit in (("cpus", cpus), ("instances", instances), ("dataset_bytes", dataset_bytes)):
        if limit is None:
            continue
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0:
            raise InvalidOptionError(f"set_tenant_quota({quota}={limit!r}): a quota is a number >= 0.",
                                     option=quota, value=limit)
        try:
            datashare.set_quota(tenant, quota, limit)
        except ds_errors.DatashareError as e:
            raise _adopt(e) from None
    with _cache_lock:
        _cache.pop(tenant, None)


def quotas(tenant: str) -> dict[str, float]:
    """``tenant``'s quotas (read at most every few seconds per process)."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(tenant)
        if hit is not None and now - hit[0] < _CACHE_S:
            return hit[1]
    found = datashare.quotas(tenant)
    with _cache_lock:
        _cache[tenant] = (now, found)
    return found


def check_instance_quota(need: Mapping[str, float], live: int, live_cpus: float) -> None:
    """Refuse a new instance that would take this job's tenant past its ``instances`` or ``cpus`` quota.

    Args:
        need: Ray resources of the new instance.
        live: Instances this job keeps alive.
        live_cpus: Their CPUs.
    """
    me = tenancy.current()
    limits = quotas(me.name)
    if "instances" not in limits and "cpus" not in limits:
        return
    others = datashare.tenant_usage(me.name)
    jobs = live + int(others.get("instances", 0))
    if "instances" in limits and jobs + 1 > limits["instances"]:
        raise QuotaExceededError(
            f"tenant {me.name!r}'s instances quota is {limits['instances']:g} and its jobs already keep {jobs} "
            f"alive ({live} of them this job's); terminate instances or ask an admin to raise the quota "
            f"(yr.set_tenant_quota).", tenant=me.name, quota="instances", limit=limits["instances"], requested=jobs + 1)
    want = live_cpus + others.get("cpus", 0.0) + float(need.get("CPU", 0.0))
    if "cpus" in limits and want > limits["cpus"] + 1e-9:
        raise QuotaExceededError(
            f"tenant {me.name!r}'s cpus quota is {limits['cpus']:g} and this instance would bring its jobs' "
            f"instances to {want:g} CPUs ({live_cpus:g} of them this job's before it); terminate instances, ask "
            f"for less InvokeOptions.cpu, or ask an admin to raise the quota.",
            tenant=me.name, quota="cpus", limit=limits["cpus"], requested=want)


REPORT_EVERY_S = 5.0
_reporting: set[str] = set()     # tenants this process reports for now


def report_instances(counts: Callable[[], tuple[int, float]]) -> None:
    """Report this job's live instances (``counts()``: how many, their CPUs) to the catalogue now, and
    every few seconds while there are any, if its tenant has an ``instances`` or ``cpus`` quota."""
    me = tenancy.current()
    limits = quotas(me.name)
    if "instances" not in limits and "cpus" not in limits:
        return
    live, cpus = counts()
    datashare.report_usage(me.name, {"instances": live, "cpus": cpus} if live else {})
    with _cache_lock:
        if me.name in _reporting or not live:
            return
        _reporting.add(me.name)

    def beat() -> None:
        try:
            while True:
                time.sleep(REPORT_EVERY_S)
                live, cpus = counts()
                datashare.report_usage(me.name, {"instances": live, "cpus": cpus} if live else {})
                if not live:
                    return
        except Exception:  # noqa: BLE001 - disconnected: the catalogue forgets the report after its lease
            pass
        finally:
            with _cache_lock:
                _reporting.discard(me.name)

    threading.Thread(target=beat, name="yuanrong-quota-usage", daemon=True).start()
