"""A private certificate authority and node certificates for Ray's TLS (``yr certs``).

Ray's TLS is mutual: every process (GCS, raylets, workers, drivers) presents
``RAY_TLS_SERVER_CERT`` / ``RAY_TLS_SERVER_KEY`` and accepts peers whose certificate chains to
``RAY_TLS_CA_CERT``. One CA per cluster signs one certificate per node; the certificate names the
node's addresses (as DNS and IP subject alternative names, since gRPC checks the address it dialled).
The CA key signs node certificates and nothing else: keep it off the nodes.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import socket
from pathlib import Path

from yuanrong._private import auth
from yuanrong._private.credentials import CA_FILE, CERT_FILE, KEY_FILE

CA_KEY_FILE = "ca.key"
CA_DAYS = 3650
NODE_DAYS = 825


@dataclasses.dataclass(frozen=True)
class NodeCertificate:
    """Files of one node's TLS identity.

    Attributes:
        ca: The CA certificate every node trusts (``RAY_TLS_CA_CERT``).
        cert: This node's certificate (``RAY_TLS_SERVER_CERT``).
        key: This node's private key, mode 0600 (``RAY_TLS_SERVER_KEY``).
        names: The DNS names and addresses the certificate is valid for.
        created_ca: Whether a new CA was made.
    """

    ca: Path
    cert: Path
    key: Path
    names: tuple[str, ...]
    created_ca: bool

    def env(self) -> dict[str, str]:
        """Ray's TLS variables for a process that uses these files."""
        return {"RAY_USE_TLS": "1", "RAY_TLS_SERVER_CERT": str(self.cert), "RAY_TLS_SERVER_KEY": str(self.key),
                "RAY_TLS_CA_CERT": str(self.ca)}


def default_names() -> list[str]:
    """This host's names and addresses: localhost, 127.0.0.1, its hostname, the address it resolves to,
    and the address of its default route (what Ray advertises as the node's IP when not told otherwise)."""
    names = ["localhost", "127.0.0.1", socket.gethostname()]
    try:
        names.append(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.254", 9))  # no packet is sent: this only picks the outgoing interface
            names.append(s.getsockname()[0])
    except OSError:
        pass
    return list(dict.fromkeys(names))


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_ca(ca_dir: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((ca_dir / CA_FILE).read_bytes())
    key = serialization.load_pem_private_key((ca_dir / CA_KEY_FILE).read_bytes(), password=None)
    return cert, key


def ensure_ca(ca_dir: Path, *, cluster_name: str = "yuanrong") -> bool:
    """Create the CA in ``ca_dir`` unless one is there; returns whether it was created."""
    if (ca_dir / CA_FILE).is_file() and (ca_dir / CA_KEY_FILE).is_file():
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_name),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{cluster_name} cluster CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    auth.write_secret_file(ca_dir / CA_KEY_FILE, _pem_key(key))
    (ca_dir / CA_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def issue(ca_dir: Path, out_dir: Path, names: list[str], *, cluster_name: str = "yuanrong") -> NodeCertificate:
    """A node certificate for ``names`` (DNS names and IP addresses) signed by the CA in ``ca_dir``.

    Creates the CA first if ``ca_dir`` has none. Writes ``ca.crt``, ``node.crt`` and ``node.key``
    (0600) to ``out_dir``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not names:
        raise ValueError("a node certificate needs at least one DNS name or IP address.")
    created = ensure_ca(ca_dir, cluster_name=cluster_name)
    ca_cert, ca_key = _load_ca(ca_dir)
    sans: list[x509.GeneralName] = []
    for n in names:
        sans.append(x509.DNSName(n))
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            pass
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_name),
                                     x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=NODE_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            # Every Ray process is both a gRPC server and a client of the others.
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    auth.write_secret_file(out_dir / KEY_FILE, _pem_key(key))
    (out_dir / CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if out_dir.resolve() != ca_dir.resolve():
        (out_dir / CA_FILE).write_bytes((ca_dir / CA_FILE).read_bytes())
    return NodeCertificate(ca=out_dir / CA_FILE, cert=out_dir / CERT_FILE, key=out_dir / KEY_FILE,
                           names=tuple(names), created_ca=created)
