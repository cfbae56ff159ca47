"""``presence-ims pki init``: the network's CA and every node certificate, made ahead of time.

When every node runs in a process (or a container) of its own, each one would
otherwise create missing PKI files on its first start, and two nodes starting
together could each make a CA of their own.  ``pki init`` runs once, before
any node (the one-shot ``pki`` service of docker-compose.yml), and leaves the
directory complete: the CA, and per node a key and a certificate naming the
node (``scscf.home1.net``) with, as IP SANs, the addresses the node is reached
at (its address from ``network.hosts`` and 127.0.0.1), exactly what
:func:`presence_ims.nodes.runner.make_tls` asks for, so a node then only reads.

It is idempotent: sound files are kept; a node certificate that is missing,
unreadable, not issued by this CA, not matching its key, lacking a name or an
address, or close to expiry is issued anew.  A damaged or half-present CA is
never replaced silently (every certificate would change): the command stops
and says which files to remove.

    presence-ims pki init --config configs/compose.toml [--dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .cli import UsageError
from .security import pki

if TYPE_CHECKING:
    from .config import NetworkSettings

RENEW_BEFORE = dt.timedelta(days=30)
"""A node certificate expiring sooner than this is issued anew."""


class PkiInitError(Exception):
    """The PKI directory cannot be made complete; the message says why."""


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """What ``init`` did with one node's certificate."""

    name: str
    addresses: tuple[str, ...]
    action: str
    """``created``, ``kept`` or ``reissued``."""
    reason: str | None = None
    """Why an existing certificate was issued anew."""


@dataclass(frozen=True, slots=True)
class PkiReport:
    directory: Path
    ca_created: bool
    nodes: tuple[NodeEntry, ...]


def node_addresses(settings: NetworkSettings, role: str) -> tuple[str, ...]:
    """The IP SANs of ``role``'s certificate: its own address and the loopback."""
    return tuple(sorted({settings.host_of(role), "127.0.0.1"}))


def _ip_set(addresses: Iterable[str]) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return {ipaddress.ip_address(a) for a in addresses}


def _public_bytes(key: Any) -> bytes:
    data: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _load_private(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC private key")
    return key


def ca_problem(directory: Path, now: dt.datetime) -> str | None:
    """Why the CA in ``directory`` is unusable (None: sound, or absent altogether)."""
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if not cert_path.exists() and not key_path.exists():
        return None
    if not (cert_path.exists() and key_path.exists()):
        missing = key_path if not key_path.exists() else cert_path
        return f"{missing.name} is missing"
    try:
        cert = _load_cert(cert_path)
        key = _load_private(key_path)
    except (ValueError, TypeError, OSError) as exc:
        return f"cannot read the CA: {exc}"
    if _public_bytes(cert.public_key()) != _public_bytes(key.public_key()):
        return "ca.key does not match ca.pem"
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "ca.pem is not a CA certificate"
    if not basic.ca:
        return "ca.pem is not a CA certificate"
    if cert.not_valid_after_utc <= now:
        return "the CA certificate has expired"
    return None


def node_problem(
    directory: Path, name: str, addresses: Iterable[str], now: dt.datetime
) -> str | None:
    """Why node ``name``'s certificate cannot be used as is (None: it can)."""
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    if not cert_path.exists():
        return "no certificate"
    if not key_path.exists():
        return "no key"
    try:
        ca = _load_cert(directory / "ca.pem")
        cert = _load_cert(cert_path)
        key = _load_private(key_path)
    except (ValueError, TypeError, OSError) as exc:
        return f"unreadable: {exc}"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "not issued by this CA"
    if _public_bytes(cert.public_key()) != _public_bytes(key.public_key()):
        return "key does not match the certificate"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no subjectAltName"
    if name not in san.get_values_for_type(x509.DNSName):
        return f"does not name {name}"
    missing = _ip_set(addresses) - set(san.get_values_for_type(x509.IPAddress))
    if missing:
        return "lacks address " + ", ".join(sorted(str(a) for a in missing))
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return "expires soon"
    return None


def init_pki(
    settings: NetworkSettings, directory: Path | None = None, *, now: dt.datetime | None = None
) -> PkiReport:
    """Make ``directory`` (default: the config's ``pki_dir``) hold the CA and every node's files.

    Raises :class:`PkiInitError` when a node address is not an IP address,
    the CA is damaged, or the directory cannot be written.
    """
    from .nodes.runner import ROLES

    when = now or dt.datetime.now(dt.UTC)
    where = Path(directory) if directory is not None else settings.pki_dir
    wanted: list[tuple[str, tuple[str, ...]]] = []
    for role in ROLES:
        addresses = node_addresses(settings, role)
        for address in addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise PkiInitError(
                    f"{settings.name(role)}: {address!r} is not an IP address "
                    "(give every node an address in network.hosts)"
                ) from None
        wanted.append((settings.name(role), addresses))
    problem = ca_problem(where, when)
    if problem is not None:
        raise PkiInitError(
            f"the CA in {where} is damaged ({problem}); remove {where / 'ca.pem'} and "
            f"{where / 'ca.key'} to make a new one (every node certificate is then issued anew)"
        )
    ca_created = not (where / "ca.pem").exists()
    entries: list[NodeEntry] = []
    try:
        pki.ensure_ca(where, settings.domain)
        for name, addresses in wanted:
            existed = (where / f"{name}.pem").exists() or (where / f"{name}.key").exists()
            reason = node_problem(where, name, addresses, when)
            if reason is not None:
                for suffix in (".pem", ".key"):
                    (where / f"{name}{suffix}").unlink(missing_ok=True)
                pki.ensure_node(where, settings.domain, name, addresses)
                fresh = dt.datetime.now(dt.UTC)  # the new certificate's validity starts now
                left = node_problem(where, name, addresses, fresh)
                if left is not None:
                    raise PkiInitError(f"{name}: the new certificate is still unusable: {left}")
            action = "kept" if reason is None else ("reissued" if existed else "created")
            entries.append(NodeEntry(name, addresses, action, reason if existed else None))
    except OSError as exc:
        raise PkiInitError(f"cannot write the PKI in {where}: {exc.strerror or exc}") from None
    return PkiReport(where, ca_created, tuple(entries))


def cmd_pki_init(args: argparse.Namespace) -> int:
    from .config import ConfigError, load

    try:
        settings = load(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not settings.network.tls:
        print(f"{args.config}: network.tls is off; certificates are made anyway")
    try:
        report = init_pki(settings, Path(args.dir) if args.dir else None)
    except PkiInitError as exc:
        raise UsageError(str(exc)) from None
    state = "created" if report.ca_created else "kept"
    print(f"CA of {settings.domain}: {report.directory / 'ca.pem'} ({state})")
    width = max(len(e.name) for e in report.nodes)
    for e in report.nodes:
        why = f"  ({e.reason})" if e.reason else ""
        print(f"  {e.action:<8} {e.name:<{width}}  {', '.join(e.addresses)}{why}")
    print(f"pki ready: {len(report.nodes)} node certificate(s) in {report.directory}", flush=True)
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``pki init`` to the ``presence-ims`` command line (``subparsers`` of the top parser)."""
    parser = subparsers.add_parser("pki", help="the network's CA and node certificates")
    sub = parser.add_subparsers(dest="pki_command", required=True)
    init = sub.add_parser(
        "init",
        help="create the CA and every node certificate ahead of time (idempotent)",
        description="Create the network CA and, for every node, a key and a certificate "
        "naming the node and its address, so that nodes started separately only read them.",
    )
    init.add_argument("--config", required=True, help="network configuration (TOML)")
    init.add_argument("--dir", help="PKI directory (default: the config's network.pki_dir)")
    init.set_defaults(func=cmd_pki_init)
