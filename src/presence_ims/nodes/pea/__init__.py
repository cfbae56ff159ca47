"""The Presence External Agent (PEA): presence from outside the network, on Pex.

External sources (a calendar, an IoT device, a web application) submit signed
JSON over HTTP (:mod:`.auth`, :mod:`.submission`, :mod:`.icalendar`); the PEA
authenticates, authorises, validates and only then publishes person elements
to the Presence Server.  :mod:`.client` signs submissions (the
``presence-ims pea`` command and the tests use it).

``build(settings, tls)`` is the hook :mod:`presence_ims.nodes.runner` calls.
"""

from __future__ import annotations

from typing import Any

from .config import PeaSection, PeaSource
from .errors import PeaError

__all__ = ["PeaError", "PeaSection", "PeaSource", "build", "source_policies"]


def source_policies(section: PeaSection, domain: str, demo: bool) -> tuple[Any, ...]:
    """The SourcePolicy of every configured (and, in a demo network, demo) source."""
    from .auth import SourcePolicy
    from .config import decode_key, demo_sources

    sources = list(section.sources)
    if demo and section.demo_sources:
        taken = {s.id for s in sources}
        sources += [s for s in demo_sources() if s.id not in taken]
    out = []
    for s in sources:
        key = decode_key(s.key) if s.algorithm == "ed25519" else s.key.encode()
        patterns = tuple(p.replace("{domain}", domain) for p in s.presentities)
        out.append(SourcePolicy(s.id, s.algorithm, key, patterns, frozenset(s.attributes)))
    return tuple(out)


def build(settings: Any, tls: Any) -> Any:
    """The PEA node of a network (``settings``: NetworkSettings, ``tls``: the runner's Tls)."""
    from ..pna.state import UserDirectory
    from .node import PeaNetwork, PeaNode

    section: PeaSection = settings.pea
    network = PeaNetwork(
        domain=settings.domain,
        name=settings.name("pea"),
        host=settings.host_of("pea"),
        transport=settings.net_transport,
        hosts=settings.hosts(),
        ps_uri=settings.ps_uri,
    )
    return PeaNode(
        section,
        network,
        source_policies(section, settings.domain, settings.network.demo),
        UserDirectory.from_subscribers(settings.subscribers),
        server_ssl=tls.server.get("pea"),
        client_ssl=tls.client.get("pea"),
    )
