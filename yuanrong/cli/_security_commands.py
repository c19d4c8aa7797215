"""``yr token`` and ``yr certs``: the credentials of yuanrong's listeners and of Ray's TLS.

Plain click commands, added to the ``yr`` group by ``_commands``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from yuanrong._private import auth, credentials
from yuanrong.cli import _certs
from yuanrong.cli._errors import BadInput, CommandFailed

_EPILOG = "Exit status: 0 ok, 1 runtime failure, 2 usage error (bad option, unknown pool, invalid config)."


def default_token() -> str:
    """A bearer token of the default tenant, signed with this machine's token file."""
    return auth.mint(auth.DEFAULT_TENANT)


def token_lines(tenant: str = auth.DEFAULT_TENANT) -> list[str]:
    """What ``yr local up`` and ``yr start --head`` print about tokens: the token file and a tenant token."""
    path = auth.token_path()
    token = auth.mint(tenant)
    return [f"token:     export {auth.TOKEN_ENV}={token}   # tenant {tenant!r}: "
            f"Authorization: Bearer for the gateway, endpoints and Flight",
            f"           cluster token (admin) in {path} (mode 0600); other tenants: yr token --tenant NAME"]


@click.command("token", epilog=_EPILOG)
@click.option("--tenant", default=auth.DEFAULT_TENANT, show_default=True, help="Tenant the token acts for.")
@click.option("--admin", is_flag=True, help="The admin role: every tenant's datasets, keys and endpoints.")
@click.option("--verify", "to_verify", default=None, metavar="TOKEN", help="Check a token instead of minting one.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def token(*, tenant: str, admin: bool, to_verify: str | None, as_json: bool) -> None:
    """Mint (or check) a bearer token, signed with this machine's cluster token file.

    \b
    curl -H "Authorization: Bearer $(yr token --tenant shop)" ...
    """
    try:
        if to_verify is not None:
            identity = auth.verify(to_verify)
            out = {"tenant": identity.tenant, "role": identity.role}
            click.echo(json.dumps(out) if as_json else f"valid: tenant {identity.tenant!r}, role {identity.role}")
            return
        minted = auth.mint(tenant, role=auth.ADMIN_ROLE if admin else auth.TENANT_ROLE)
    except ValueError as e:
        raise BadInput(f"--tenant: {e}") from None
    except auth.SecretMissing as e:
        raise CommandFailed(str(e)) from None
    except auth.AuthError as e:
        raise BadInput(f"--verify: {e}") from None
    if as_json:
        click.echo(json.dumps({"token": minted, "tenant": tenant, "role": "admin" if admin else "tenant"}))
    else:
        click.echo(minted)


@click.command("certs", epilog=_EPILOG)
@click.option("--ca-dir", type=click.Path(file_okay=False), default=None,
              help="Where the CA lives (created if missing); default: $YR_CERTS_DIR or ~/.yr/certs.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where this node's ca.crt, node.crt and node.key go (default: the CA directory).")
@click.option("--name", "names", multiple=True, metavar="HOST_OR_IP",
              help="DNS name or IP address of the node (repeatable; default: localhost, 127.0.0.1 and this host's).")
@click.option("--cluster-name", default="yuanrong", show_default=True, help="Organisation name in the certificates.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def certs(*, ca_dir: str | None, out_dir: str | None, names: tuple[str, ...], cluster_name: str,
          as_json: bool) -> None:
    """Create the cluster's CA (once) and a certificate for one node, for Ray's TLS (RAY_USE_TLS).

    Run once per node with that node's addresses, then copy the node's directory (not ca.key) to it.
    Prints the RAY_TLS_* variables to export before `ray start` / `yr start` / a driver.
    """
    ca = Path(ca_dir) if ca_dir else credentials.default_certs_dir()
    out = Path(out_dir) if out_dir else ca
    try:
        node = _certs.issue(ca, out, list(names) or _certs.default_names(), cluster_name=cluster_name)
    except ValueError as e:
        raise BadInput(str(e)) from None
    except OSError as e:
        raise CommandFailed(f"could not write the certificates: {e}") from None
    if as_json:
        click.echo(json.dumps({"created_ca": node.created_ca, "names": list(node.names), "env": node.env()}))
        return
    click.echo(f"{'created CA' if node.created_ca else 'CA'} in {ca} (keep {ca / _certs.CA_KEY_FILE} off the nodes)")
    click.echo(f"node certificate for {', '.join(node.names)} in {out}")
    click.echo("export " + " ".join(f"{k}={v}" for k, v in node.env().items()))


def tls_env_for_local_cluster(state_dir: Path) -> dict[str, str]:
    """TLS variables for ``yr local up --tls``: one CA and one certificate for this host, under the state dir."""
    node = _certs.issue(state_dir / "certs", state_dir / "certs", _certs.default_names())
    return node.env()


def apply_env(env: dict[str, str]) -> None:
    """Set variables in this process (so its GCS reads and children use them)."""
    os.environ.update(env)
