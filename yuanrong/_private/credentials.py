"""``Config.tenant_id``, ``auth_token``, ``enable_tls`` / ``enable_mtls`` → who this driver is and the
environment its connection to Ray needs.

Pure: decides from the config and the files on this machine; ``session`` applies the environment
before Ray connects (Ray reads ``RAY_AUTH_*`` and ``RAY_USE_TLS`` / ``RAY_TLS_*`` when it starts).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from datashare.tenancy import ROLE_ENV, TENANT_ENV
from yuanrong._private import auth
from yuanrong.exception import AuthenticationError, InvalidOptionError

# TENANT_ENV / ROLE_ENV carry the job's tenant to its workers (set in the job's runtime_env).
CERTS_DIR_ENV = "YR_CERTS_DIR"
CA_FILE, CERT_FILE, KEY_FILE = "ca.crt", "node.crt", "node.key"


def default_certs_dir() -> Path:
    """Where ``yr certs`` writes this machine's CA and node certificate: ``$YR_CERTS_DIR`` or ``~/.yr/certs``."""
    return Path(os.environ.get(CERTS_DIR_ENV) or Path.home() / ".yr" / "certs")


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What ``init`` applies.

    Attributes:
        identity: The tenant and role of this driver.
        env: Environment variables to set in this process before Ray connects.
    """

    identity: auth.Identity
    env: dict[str, str]


def resolve(*, tenant_id: str, auth_token: str, enable_tls: bool, enable_mtls: bool, certificate_file_path: str,
            private_key_path: str, verify_file_path: str) -> Credentials:
    """Decide this driver's identity and connection environment.

    ``auth_token`` may be a tenant token (its tenant and role become the driver's; ``tenant_id`` must
    agree) or the cluster token itself (sent to Ray; the admin role). Without a token the driver acts
    for ``tenant_id`` (default ``"default"``): a process that can reach Ray can run any code there, so
    the declared tenant is a boundary between cooperating jobs, not against hostile code on the cluster
    (docs/security.md).
    """
    if tenant_id:
        try:
            auth.check_tenant(tenant_id)
        except ValueError as e:
            raise InvalidOptionError(f"Config.{e}", option="tenant_id", value=tenant_id) from None
    env: dict[str, str] = {}
    identity = auth.Identity(tenant=tenant_id or auth.DEFAULT_TENANT)
    if auth_token:
        if not isinstance(auth_token, str):
            raise InvalidOptionError(f"Config.auth_token={auth_token!r} must be a str.", option="auth_token")
        if auth.is_tenant_token(auth_token):
            try:
                identity = auth.verify(auth_token)
            except auth.AuthError as e:
                raise AuthenticationError(f"Config.auth_token: {e}") from None
            if tenant_id and tenant_id != identity.tenant:
                raise AuthenticationError(
                    f"Config.tenant_id={tenant_id!r} disagrees with Config.auth_token, which is a token of tenant "
                    f"{identity.tenant!r}; drop tenant_id or use a token of that tenant.")
        else:
            # The cluster token: Ray checks it when the driver connects (a wrong one fails there).
            env.update({"RAY_AUTH_TOKEN": auth_token, "RAY_AUTH_MODE": "token"})
            identity = auth.Identity(tenant=tenant_id or auth.DEFAULT_TENANT, role=auth.ADMIN_ROLE)
    if enable_tls or enable_mtls:
        env.update(tls_env(certificate_file_path, private_key_path, verify_file_path))
    elif os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        raise InvalidOptionError(
            "Config.enable_tls is False but RAY_USE_TLS is set in this process's environment, so the connection would "
            "use TLS anyway; set enable_tls=True (with the certificate paths) or unset RAY_USE_TLS.",
            option="enable_tls", value=False)
    return Credentials(identity=identity, env=env)


def tls_env(cert: str, key: str, ca: str) -> dict[str, str]:
    """Ray's TLS variables for this driver, from the openYuanrong paths, ``RAY_TLS_*`` or ``yr certs``' files.

    Ray's TLS is mutual: the driver presents ``cert``/``key`` and checks the cluster's against ``ca``.
    """
    certs = default_certs_dir()
    chosen = {
        "RAY_TLS_SERVER_CERT": cert or os.environ.get("RAY_TLS_SERVER_CERT") or str(certs / CERT_FILE),
        "RAY_TLS_SERVER_KEY": key or os.environ.get("RAY_TLS_SERVER_KEY") or str(certs / KEY_FILE),
        "RAY_TLS_CA_CERT": ca or os.environ.get("RAY_TLS_CA_CERT") or str(certs / CA_FILE),
    }
    missing = {k: v for k, v in chosen.items() if not Path(v).is_file()}
    if missing:
        raise InvalidOptionError(
            "Config.enable_tls=True needs a certificate, its key and the cluster's CA, and "
            + ", ".join(f"{v} ({k})" for k, v in missing.items())
            + " do not exist. Pass certificate_file_path, private_key_path and verify_file_path, set RAY_TLS_SERVER_CERT, "
              "RAY_TLS_SERVER_KEY and RAY_TLS_CA_CERT, or create them with `yr certs`.",
            option="enable_tls", value=True)
    return {"RAY_USE_TLS": "1", **chosen}


def worker_identity() -> auth.Identity:
    """The identity of the job a worker process runs for (from the job's environment)."""
    return auth.Identity(tenant=os.environ.get(TENANT_ENV) or auth.DEFAULT_TENANT,
                         role=os.environ.get(ROLE_ENV) or auth.TENANT_ROLE)
