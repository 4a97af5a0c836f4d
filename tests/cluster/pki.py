"""Certificates, keys and kubeconfigs for the local control plane.

Everything is generated fresh per cluster into its state directory: a CA, the
apiserver's serving certificate, one client certificate per identity (admin,
controller-manager, scheduler) and the service-account token signing key pair.
Keys are ECDSA P-256: fast to generate and accepted by every component.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)
FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files on disk."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Identity:
    """A client identity for a kubeconfig: its user name (CN) and groups (O)."""

    user: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pki:
    """The files of one cluster's PKI."""

    ca: KeyPair
    apiserver: KeyPair
    front_proxy_ca: KeyPair
    front_proxy_client: KeyPair
    sa_private_key: Path
    sa_public_key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _load_ca(ca: KeyPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{ca.key}: expected an EC private key")
    return cert, key


def _issue(
    ca: KeyPair,
    out_dir: Path,
    stem: str,
    subject: x509.Name,
    *,
    server: bool,
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> KeyPair:
    ca_cert, ca_key = _load_ca(ca)
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if dns_names or ips:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = KeyPair(cert=out_dir / f"{stem}.crt", key=out_dir / f"{stem}.key")
    _write_key(key, pair.key)
    _write_cert(cert, pair.cert)
    return pair


def create_ca(out_dir: Path, common_name: str, stem: str = "ca") -> KeyPair:
    """Create a self-signed CA in ``out_dir`` (<stem>.crt, <stem>.key)."""
    key = _new_key()
    subject = _name(common_name)
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = KeyPair(cert=out_dir / f"{stem}.crt", key=out_dir / f"{stem}.key")
    _write_key(key, pair.key)
    _write_cert(cert, pair.cert)
    return pair


def create_pki(out_dir: Path, *, service_ip: str, cluster_name: str) -> Pki:
    """Create the CA, the apiserver serving certificate and the service-account keys.

    A separate front-proxy CA signs the apiserver's client certificate for aggregated
    API servers; the controller-manager and scheduler read it to authenticate
    proxied requests (without it they log an error on every lookup).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ca = create_ca(out_dir, f"modelmonitor-test-ca-{cluster_name}")
    apiserver = _issue(
        ca,
        out_dir,
        "apiserver",
        _name("kube-apiserver"),
        server=True,
        dns_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ips=("127.0.0.1", service_ip),
    )
    sa_key = _new_key()
    sa_private = out_dir / "sa.key"
    sa_public = out_dir / "sa.pub"
    _write_key(sa_key, sa_private)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    front_proxy_ca = create_ca(
        out_dir, f"modelmonitor-front-proxy-ca-{cluster_name}", "front-proxy-ca"
    )
    front_proxy_client = issue_client(
        front_proxy_ca, out_dir, "front-proxy-client", Identity(FRONT_PROXY_CLIENT)
    )
    return Pki(
        ca=ca,
        apiserver=apiserver,
        front_proxy_ca=front_proxy_ca,
        front_proxy_client=front_proxy_client,
        sa_private_key=sa_private,
        sa_public_key=sa_public,
    )


def issue_client(ca: KeyPair, out_dir: Path, stem: str, identity: Identity) -> KeyPair:
    """Issue a client certificate for ``identity`` signed by ``ca``."""
    return _issue(ca, out_dir, stem, _name(identity.user, identity.groups), server=False)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_kubeconfig(
    path: Path, *, server: str, ca: Path, client: KeyPair, cluster: str, user: str
) -> None:
    """Write a self-contained kubeconfig (certificates embedded) for one user."""
    context = f"{user}@{cluster}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
