"""Tenant tokens, the token file's mode, Config's credentials and `yr certs` (no Ray)."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

import yuanrong as yr
from yuanrong._private import auth, credentials
from yuanrong.cli import cli


@pytest.fixture
def token_file(tmp_path, monkeypatch):
    path = tmp_path / "ray" / "auth_token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    return path


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_token_file_is_created_0600_and_a_loose_one_is_tightened(token_file):
    auth.ensure_token_file()
    assert mode(token_file) == 0o600 and len(token_file.read_text()) == 64
    os.chmod(token_file, 0o644)
    auth.ensure_token_file()
    assert mode(token_file) == 0o600


def test_tokens_name_their_tenant_and_cannot_be_forged(token_file):
    auth.ensure_token_file()
    shop = auth.mint("shop")
    assert auth.verify(shop) == auth.Identity("shop", "tenant")
    assert auth.verify(auth.mint("ops", role="admin")).is_admin
    assert auth.verify(token_file.read_text()) == auth.Identity("default", "admin")
    forged = shop.replace(".shop.", ".bank.")
    with pytest.raises(auth.AuthError, match="not valid for this cluster"):
        auth.verify(forged)
    with pytest.raises(auth.AuthError, match="not valid for this cluster"):
        auth.verify(shop.replace(".tenant.", ".admin."))
    with pytest.raises(auth.AuthError, match="no token"):
        auth.verify(None)
    with pytest.raises(auth.AuthError, match="neither"):
        auth.verify("hello")
    other = auth.mint("shop", secret="another cluster")
    with pytest.raises(auth.AuthError):
        auth.verify(other)
    assert auth.bearer(f"Bearer {shop}") == shop and auth.bearer("Basic abc") is None


def test_tenant_names_are_checked(token_file):
    auth.ensure_token_file()
    with pytest.raises(ValueError, match="not a tenant name"):
        auth.mint("Shop EU")
    with pytest.raises(yr.InvalidOptionError, match="tenant_id='a b' is not a tenant name"):
        credentials.resolve(tenant_id="a b", auth_token="", enable_tls=False, enable_mtls=False,
                            certificate_file_path="", private_key_path="", verify_file_path="")


def _resolve(**kw):
    args = dict(tenant_id="", auth_token="", enable_tls=False, enable_mtls=False, certificate_file_path="",
                private_key_path="", verify_file_path="")
    args.update(kw)
    return credentials.resolve(**args)


def test_config_credentials(token_file, tmp_path, monkeypatch):
    auth.ensure_token_file()
    assert _resolve().identity == auth.Identity() and _resolve().env == {}
    assert _resolve(tenant_id="shop").identity.tenant == "shop"
    assert _resolve(auth_token=auth.mint("shop")).identity == auth.Identity("shop")
    with pytest.raises(yr.AuthenticationError, match="disagrees"):
        _resolve(tenant_id="bank", auth_token=auth.mint("shop"))
    with pytest.raises(yr.AuthenticationError, match="not valid"):
        _resolve(auth_token=auth.mint("shop", secret="elsewhere"))
    # Anything else is the cluster token, handed to Ray (which refuses a wrong one when connecting).
    admin = _resolve(auth_token="cluster-secret")
    assert admin.identity.is_admin and admin.env == {"RAY_AUTH_TOKEN": "cluster-secret", "RAY_AUTH_MODE": "token"}
    monkeypatch.setenv("YR_CERTS_DIR", str(tmp_path / "none"))
    with pytest.raises(yr.InvalidOptionError, match="enable_tls=True needs a certificate.*yr certs"):
        _resolve(enable_tls=True)
    monkeypatch.setenv("RAY_USE_TLS", "1")
    with pytest.raises(yr.InvalidOptionError, match="enable_tls is False but RAY_USE_TLS"):
        _resolve()


def test_config_accepts_openyuanrong_credentials():
    conf = yr.Config(enable_tls=False, auth_token="t", tenant_id="shop")
    assert conf.auth_token == "t" and conf.tenant_id == "shop"


def test_yr_token_and_yr_certs(token_file, tmp_path, monkeypatch):
    runner = CliRunner()
    auth.ensure_token_file()
    minted = runner.invoke(cli, ["token", "--tenant", "shop"])
    assert minted.exit_code == 0, minted.output
    checked = runner.invoke(cli, ["token", "--verify", minted.output.strip()])
    assert "tenant 'shop', role tenant" in checked.output
    assert runner.invoke(cli, ["token", "--tenant", "Bad Name"]).exit_code == 2

    ca_dir, node_dir = tmp_path / "ca", tmp_path / "node"
    made = runner.invoke(cli, ["certs", "--ca-dir", str(ca_dir), "--out", str(node_dir), "--name", "10.20.1.11",
                               "--name", "edge-1.example"])
    assert made.exit_code == 0, made.output
    assert "created CA" in made.output and f"RAY_TLS_SERVER_KEY={node_dir / 'node.key'}" in made.output
    assert mode(ca_dir / "ca.key") == 0o600 and mode(node_dir / "node.key") == 0o600
    assert not (node_dir / "ca.key").exists()

    from cryptography import x509

    ca = x509.load_pem_x509_certificate((node_dir / "ca.crt").read_bytes())
    node = x509.load_pem_x509_certificate((node_dir / "node.crt").read_bytes())
    node.verify_directly_issued_by(ca)
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "edge-1.example" in sans.get_values_for_type(x509.DNSName)
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.20.1.11"]
    again = runner.invoke(cli, ["certs", "--ca-dir", str(ca_dir), "--out", str(tmp_path / "n2")])
    assert again.exit_code == 0 and "created CA" not in again.output
