"""The network's own CA and node certificates (network domain security, TS 33.210 style).

``ensure_pki(directory, nodes)`` creates, on first start, a CA and one key and
certificate per node (subject CN and DNS SAN = the node's name, e.g.
``scscf.home1.net``) and reuses them afterwards.  Contexts for mutual TLS:
:func:`server_context` requires a client certificate signed by the CA;
:func:`client_context` presents the node's own.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True, slots=True)
class NodeCredentials:
    name: str
    cert: Path
    key: Path
    ca: Path


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write through a temporary file and rename: readers never see half a PEM."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    _write_atomic(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "presence-ims network"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def ensure_ca(directory: Path, realm: str) -> tuple[Path, Path]:
    """The CA certificate and key in ``directory`` (created on first use)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"presence-ims CA {realm}"))
        .issuer_name(_name(f"presence-ims CA {realm}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def ensure_node(
    directory: Path, realm: str, name: str, ips: Iterable[str] = ()
) -> NodeCredentials:
    """Key and certificate of node ``name`` signed by the network CA.

    The certificate names the node (CN and DNS SAN) and, as IP SANs, the
    addresses it is reached at, so TLS clients that connect by address can
    check the server.  A certificate lacking one of ``ips`` is made anew.
    """
    ca_cert_path, ca_key_path = ensure_ca(directory, realm)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    wanted = {ipaddress.ip_address(ip) for ip in ips}
    if cert_path.exists() and wanted:
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        try:
            san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have = set(san.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            have = set()
        if not wanted <= have:
            cert_path.unlink()
    if not (cert_path.exists() and key_path.exists()):
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        ca_key = _load_key(ca_key_path)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(name), *(x509.IPAddress(ip) for ip in sorted(wanted, key=str))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(key_path, key)
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return NodeCredentials(name, cert_path, key_path, ca_cert_path)


def ensure_pki(
    directory: Path, realm: str, names: Iterable[str], ips: Iterable[str] = ()
) -> dict[str, NodeCredentials]:
    addresses = tuple(ips)
    return {name: ensure_node(directory, realm, name, addresses) for name in names}


def server_context(creds: NodeCredentials, *, require_client_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(creds.cert, creds.key)
    ctx.load_verify_locations(creds.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def client_context(creds: NodeCredentials) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(creds.cert, creds.key)
    ctx.load_verify_locations(creds.ca)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_names(cert: dict[str, object] | None) -> list[str]:
    """CN and DNS SANs of a peer certificate as returned by ``SSLSocket.getpeercert()``."""
    if not cert:
        return []
    names: list[str] = []
    for rdn in cert.get("subject", ()):  # type: ignore[attr-defined]
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
    for kind, value in cert.get("subjectAltName", ()):  # type: ignore[attr-defined]
        if kind == "DNS" and value not in names:
            names.append(value)
    return names
