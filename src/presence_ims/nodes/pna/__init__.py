"""The Presence Network Agent (PNA): network-derived presence on Pen.

It learns what the network knows about a presentity over Pi (reg event at
the S-CSCF), Ph (Sh to the HSS), Pc/Pg (MSC/VLR and SGSN feed), Pk (RADIUS
accounting from the GGSN) and Pl (MLP from the GMLC), maps it to PIDF
(:mod:`.mapping`) and publishes it to the Presence Server.

``build(settings, tls)`` is the hook :mod:`presence_ims.nodes.runner` calls.
Importing this package stays light (the node is imported by ``build``), so
:mod:`presence_ims.config` can import :mod:`.config` without a cycle.
"""

from __future__ import annotations

from typing import Any

from .config import PnaSection
from .errors import PnaError

__all__ = ["PnaError", "PnaSection", "build"]


def build(settings: Any, tls: Any) -> Any:
    """The PNA node of a network (``settings``: NetworkSettings, ``tls``: the runner's Tls)."""
    from .node import PnaNetwork, PnaNode
    from .state import UserDirectory

    section: PnaSection = settings.pna
    hss_host = settings.host_of("hss")
    network = PnaNetwork(
        domain=settings.domain,
        name=settings.name("pna"),
        host=settings.host_of("pna"),
        transport=settings.net_transport,
        hosts=settings.hosts(),
        scscf_uri=settings.scscf_uri,
        scscf_name=settings.name("scscf"),
        ps_uri=settings.ps_uri,
        hss_host=hss_host,
        hss_port=settings.hss.port,
        hss_name=settings.name("hss"),
    )
    directory = UserDirectory.from_subscribers(settings.subscribers, section.users)
    return PnaNode(
        section,
        network,
        directory,
        server_ssl=tls.server.get("pna"),
        client_ssl=tls.client.get("pna"),
    )
