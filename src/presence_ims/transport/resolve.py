"""From a SIP URI to an address (a static stand-in for RFC 3263).

Names resolve through a hosts table from the configuration first (so one
machine can hold a whole network with names such as ``scscf.home1.net``),
then through the system resolver (Docker's DNS in docker-compose).  The
transport comes from the URI's ``transport`` parameter, ``sips`` means TLS,
and otherwise the caller's default applies.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping

from ..sip import SipURI, TelURI
from ..sip.transaction import Address
from ..sip.uri import URI


class ResolveError(Exception):
    """The URI names nothing this element can reach."""


def host_key(name: str) -> str:
    """A host name or IP literal as the tables hold it: no brackets, lower case, no final dot."""
    return name.strip("[]").lower().rstrip(".")


class Resolver:
    def __init__(
        self,
        hosts: Mapping[str, str] | None = None,
        *,
        default_transport: str = "udp",
        tls_transport: str = "tls",
    ) -> None:
        self.hosts = {k.lower(): v for k, v in (hosts or {}).items()}
        self.default_transport = default_transport
        self.tls_transport = tls_transport
        self._cache: dict[str, str] = {}

    def static(self, name: str) -> str | None:
        """The address from the hosts table or an IP literal; None otherwise (no DNS)."""
        name = host_key(name)
        mapped = self.hosts.get(name)
        if mapped is not None:
            return mapped
        parts = name.split(".")
        for i in range(1, len(parts)):
            mapped = self.hosts.get("*." + ".".join(parts[i:]))
            if mapped is not None:
                return mapped
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return None
        return name

    def host(self, name: str) -> str:
        """An address for ``name``: hosts table, IP literal, then the system resolver (cached).

        Failures are cached too, so that a name without DNS does not stall
        the event loop on every message that names it.
        """
        found = self.static(name)
        if found is not None:
            return found
        name = host_key(name)
        cached = self._cache.get(name)
        if cached is not None:
            if cached:
                return cached
            raise ResolveError(f"cannot resolve {name}")
        try:
            addr = socket.gethostbyname(name)
        except OSError as exc:
            self._cache[name] = ""
            raise ResolveError(f"cannot resolve {name}: {exc}") from None
        self._cache[name] = addr
        return addr

    def resolve(self, uri: URI, *, transport: str | None = None) -> Address:
        if isinstance(uri, TelURI) or not isinstance(uri, SipURI):
            raise ResolveError(f"cannot route to {uri}")
        maddr = uri.param("maddr")
        host = self.host(maddr or uri.host)
        t = transport or uri.transport
        if t is None:
            t = self.tls_transport if uri.scheme == "sips" else self.default_transport
        t = t.lower()
        port = uri.port or (5061 if t == "tls" or uri.scheme == "sips" else 5060)
        return Address(t, host, port)
