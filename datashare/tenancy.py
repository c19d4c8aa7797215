"""Tenants: whose datasets and keys a name means, and who may use them.

A name belongs to the tenant of the process that uses it. The default tenant's names are stored as
given (so a single user sees no change); another tenant's are stored as ``"<tenant>$<name>"``, its
**full name**, which is what listings show. A name written in full (``"shop$features"``) refers to
that tenant's dataset or key: allowed for that tenant and for the admin role, refused with
:class:`PermissionDeniedError` for everyone else. Listings show only the caller's own names (all,
for the admin role).

The tenant of a process comes from ``$YR_TENANT_ID`` / ``$YR_TENANT_ROLE`` (yuanrong puts them in a
job's environment), from :func:`set_process_tenant` (a yuanrong driver), or, for one call, from
:func:`acting_as` (the Flight server, per request). Dataset byte quotas per tenant live in the
catalogue (:func:`datashare.set_quota`).

Pure: no Ray.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

from datashare.errors import InvalidArgumentError, PermissionDeniedError

__all__ = ["DEFAULT_TENANT", "SEPARATOR", "Tenant", "acting_as", "current", "full_name", "owner_of",
           "set_process_tenant", "visible"]

DEFAULT_TENANT = "default"
SEPARATOR = "$"
TENANT_ENV = "YR_TENANT_ID"
ROLE_ENV = "YR_TENANT_ROLE"
ADMIN_ROLE = "admin"


class Tenant(tuple):
    """``(name, admin)``: the tenant a call acts for."""

    __slots__ = ()

    def __new__(cls, name: str = DEFAULT_TENANT, admin: bool = False) -> Tenant:
        return super().__new__(cls, (name, admin))

    @property
    def name(self) -> str:
        return self[0]

    @property
    def admin(self) -> bool:
        return self[1]


_process: Tenant | None = None
_call: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("datashare_tenant", default=None)


def set_process_tenant(tenant: Tenant | None) -> None:
    """Make ``tenant`` this process's (``None``: back to the environment's)."""
    global _process
    _process = tenant


def current() -> Tenant:
    """The tenant this call acts for."""
    override = _call.get()
    if override is not None:
        return override
    if _process is not None:
        return _process
    return Tenant(os.environ.get(TENANT_ENV) or DEFAULT_TENANT, os.environ.get(ROLE_ENV) == ADMIN_ROLE)


@contextlib.contextmanager
def acting_as(tenant: Tenant) -> Iterator[None]:
    """Run the calls inside the block for ``tenant`` (this thread or task only)."""
    token = _call.set(tenant)
    try:
        yield
    finally:
        _call.reset(token)


def owner_of(stored: str) -> str:
    """The tenant a stored name belongs to."""
    owner, sep, _ = stored.partition(SEPARATOR)
    return owner if sep else DEFAULT_TENANT


def full_name(name: str, *, what: str = "dataset", argument: str = "name") -> str:
    """The stored name ``name`` means for the current tenant; refuses another tenant's full name.

    Raises:
        PermissionDeniedError: ``name`` is another tenant's full name and the caller is not admin.
        InvalidArgumentError: ``name`` is a full name with an empty tenant or name part.
    """
    me = current()
    owner, sep, bare = name.partition(SEPARATOR)
    if not sep:
        return name if me.name == DEFAULT_TENANT else f"{me.name}{SEPARATOR}{name}"
    if not owner or not bare:
        raise InvalidArgumentError(argument, name, f"a full {what} name is '<tenant>{SEPARATOR}<name>' with both "
                                   f"parts non-empty; drop the '{SEPARATOR}' to name your own {what}.")
    if owner != me.name and not me.admin:
        raise PermissionDeniedError(
            f"{what} {name!r} belongs to tenant {owner!r}; tenant {me.name!r} may not read, write or delete it. "
            f"Use a name of your own (without '{SEPARATOR}'), or act as an admin.",
            tenant=me.name, owner=owner, resource=f"{what} {name!r}")
    return bare if owner == DEFAULT_TENANT else name


def visible(stored: str) -> bool:
    """Whether the current tenant's listings show ``stored``."""
    me = current()
    return me.admin or owner_of(stored) == me.name
