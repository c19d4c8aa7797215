"""Tenant tokens: what clients send to the gateway, endpoints and Flight.

Every listener yuanrong starts wants ``Authorization: Bearer <token>`` (Flight: the same header).
A token names one tenant and a role and is signed with the cluster's secret (Ray's token file,
``~/.ray/auth_token``), so any machine that holds that file mints and checks tokens offline::

    >>> import yuanrong as yr
    >>> t = yr.auth.token("shop")                    # doctest: +SKIP
    >>> yr.auth.verify(t)                            # doctest: +SKIP
    Identity(tenant='shop', role='tenant')

On the command line: ``yr token --tenant shop`` (``--admin`` for the admin role). See docs/security.md.
"""

from __future__ import annotations

from datashare import flight_server as _flight_server
from datashare import tenancy as _tenancy
from yuanrong._private import auth as _auth
from yuanrong._private.auth import DEFAULT_TENANT, Identity
from yuanrong.exception import AuthenticationError

__all__ = ["DEFAULT_TENANT", "Identity", "current", "token", "verify"]


def current() -> Identity:
    """The tenant and role this process acts for (a driver's from ``yr.init``; a worker's from its job)."""
    from yuanrong._private import session

    return session.identity()


def token(tenant: str | None = None, *, admin: bool = False) -> str:
    """A bearer token for ``tenant`` (default: this process's tenant), signed with this machine's cluster secret.

    Raises:
        AuthenticationError: this machine has no cluster token to sign with.
        ValueError: ``tenant`` is not a valid tenant name.
    """
    tenant = tenant if tenant is not None else current().tenant
    try:
        return _auth.mint(tenant, role=_auth.ADMIN_ROLE if admin else _auth.TENANT_ROLE)
    except _auth.SecretMissing as e:
        raise AuthenticationError(str(e)) from None


def verify(token: str) -> Identity:
    """The identity ``token`` proves on this cluster, or :class:`yuanrong.AuthenticationError`."""
    try:
        return _auth.verify(token)
    except _auth.AuthError as e:
        raise AuthenticationError(str(e)) from None


def _flight_tenant(token: str) -> _tenancy.Tenant:
    try:
        identity = _auth.verify(token)
    except _auth.AuthError as e:
        raise ValueError(str(e)) from None
    return _tenancy.Tenant(identity.tenant, identity.is_admin)


# datashare's Flight servers started in a yuanrong process accept tenant tokens (datashare itself
# knows only the cluster token: it does not import yuanrong).
_flight_server.set_token_verifier(_flight_tenant)
