"""Who is calling: the cluster secret, tenant tokens, and the token file's permissions.

One secret per cluster, the token Ray's own authentication uses (``$RAY_AUTH_TOKEN``,
``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``, Ray's order). Whoever holds it can run any code
on the cluster through Ray, so holding it is the admin role. From it yuanrong derives a signing key
and mints **tenant tokens** ``yr1.<tenant>.<role>.<signature>``: HMAC-SHA256 over tenant and role.
Any process with the secret verifies a token without a lookup, and a token holder cannot recover
the secret or forge a token for another tenant. Tokens do not expire; rotating the cluster secret
(``ray get-auth-token --generate`` after removing the file) revokes all of them.

Pure: no Ray, no network. The listeners (gateway, endpoints, Flight) call :func:`verify`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

DEFAULT_TENANT = "default"
TENANT_ROLE = "tenant"
ADMIN_ROLE = "admin"
ROLES = (TENANT_ROLE, ADMIN_ROLE)
TOKEN_ENV = "YR_TOKEN"
"""A tenant token for clients (the apps' HTTP client, Flight clients) to send."""

_PREFIX = "yr1"
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_KEY_CONTEXT = b"yuanrong tenant tokens v1"


class AuthError(Exception):
    """A token is missing, malformed or not signed by this cluster's secret (HTTP 401)."""


class SecretMissing(AuthError):
    """This machine has no cluster secret, so it can neither mint nor verify tokens."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """A verified caller.

    Attributes:
        tenant: The tenant the caller acts for.
        role: ``"tenant"`` (its own tenant only) or ``"admin"`` (every tenant).
    """

    tenant: str = DEFAULT_TENANT
    role: str = TENANT_ROLE

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE

    def may_access(self, tenant: str) -> bool:
        """Whether this caller may use what belongs to ``tenant``."""
        return self.is_admin or tenant == self.tenant


def check_tenant(tenant: object, *, what: str = "tenant_id") -> str:
    """``tenant`` if it is a valid tenant name, else ``ValueError`` saying what names look like."""
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise ValueError(f"{what}={tenant!r} is not a tenant name: use 1-63 lower-case letters, digits, '_' or '-', "
                         f"starting with a letter or digit (e.g. 'shop-eu').")
    return tenant


# ---------------------------------------------------------------------------------------------
# The cluster secret


def token_path() -> Path:
    """Where Ray (and yuanrong) read the cluster token file: ``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def cluster_secret() -> str | None:
    """The cluster token this process would send to Ray, or ``None`` when the machine has none."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    path = token_path()
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def ensure_token_file() -> Path:
    """Make sure the cluster token file exists and only its owner may read it (mode 0600).

    Creates a random token when there is none (and no ``$RAY_AUTH_TOKEN``); tightens a file that
    group or others may read (Ray 2.60 writes it 0644). Returns the path.
    """
    path = token_path()
    if not os.environ.get("RAY_AUTH_TOKEN", "").strip():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    tighten(path)
    return path


def tighten(path: Path) -> None:
    """Remove group and other permissions from a secret file this user owns (no-op otherwise)."""
    try:
        st = path.stat()
    except OSError:
        return
    if st.st_uid == os.getuid() and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o600)


def write_secret_file(path: Path, data: bytes | str) -> None:
    """Write a file only its owner may read, created 0600 from the start (no window at 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    tighten(path)


# ---------------------------------------------------------------------------------------------
# Tenant tokens


def _signature(secret: str, tenant: str, role: str) -> str:
    key = hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
    mac = hmac.new(key, f"{_PREFIX}.{tenant}.{role}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _require_secret(secret: str | None) -> str:
    secret = secret if secret is not None else cluster_secret()
    if not secret:
        raise SecretMissing(
            f"this machine has no cluster token ({token_path()}, $RAY_AUTH_TOKEN_PATH or $RAY_AUTH_TOKEN), so "
            f"yuanrong tokens can be neither minted nor checked here; copy the cluster's token file to this "
            f"machine (mode 0600) or run `yr local up` / `yr start --head`, which create one.")
    return secret


def mint(tenant: str = DEFAULT_TENANT, *, role: str = TENANT_ROLE, secret: str | None = None) -> str:
    """A bearer token for ``tenant`` with ``role``, signed by the cluster secret."""
    check_tenant(tenant)
    if role not in ROLES:
        raise ValueError(f"role={role!r} is not a role; use one of {', '.join(ROLES)}.")
    return f"{_PREFIX}.{tenant}.{role}.{_signature(_require_secret(secret), tenant, role)}"


def is_tenant_token(token: str) -> bool:
    """Whether ``token`` has the shape of a yuanrong tenant token (not whether it is valid)."""
    return isinstance(token, str) and token.startswith(_PREFIX + ".") and token.count(".") == 3


def verify(token: str | None, *, secret: str | None = None) -> Identity:
    """The identity a bearer token proves, or :class:`AuthError` saying what is wrong with it.

    The cluster secret itself is accepted too and is the admin role.
    """
    if not token:
        raise AuthError("no token: send 'Authorization: Bearer <token>' with a tenant token (`yr token --tenant "
                        "NAME`, or yuanrong.auth.token() in a driver).")
    secret = _require_secret(secret)
    if is_tenant_token(token):
        _, tenant, role, signature = token.split(".")
        if role in ROLES and _TENANT.fullmatch(tenant) and hmac.compare_digest(
                signature, _signature(secret, tenant, role)):
            return Identity(tenant=tenant, role=role)
        raise AuthError("the token is not valid for this cluster (wrong signature, tenant or role); mint a new one "
                        "with `yr token --tenant NAME` on a machine that holds the cluster token.")
    if hmac.compare_digest(token.encode(), secret.encode()):
        return Identity(tenant=DEFAULT_TENANT, role=ADMIN_ROLE)
    raise AuthError("the token is neither a yuanrong tenant token (yr1.TENANT.ROLE.SIGNATURE) nor this cluster's "
                    "token; mint one with `yr token --tenant NAME`.")


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or ``None``."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
