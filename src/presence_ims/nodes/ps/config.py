"""Configuration of the Presence Server."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...transport.spec import parse_listen

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class PsPeer(BaseModel):
    """A network node the PS trusts, and what it may publish (the publisher policy)."""

    model_config = _MODEL

    name: str
    """Peer name used in logs and provenance (``scscf``, ``pna``, ``pea``)."""
    tls_names: tuple[str, ...] = ()
    """Names in the peer's TLS certificate (mutual TLS identifies it)."""
    addresses: tuple[str, ...] = ()
    """Source addresses identifying the peer without TLS: ``HOST`` or ``HOST:PORT`` (UDP)."""
    source_class: Literal["ue", "network", "external"] = "ue"
    """ue: it relays UEs' requests with P-Asserted-Identity (the S-CSCF, ISC);
    network: the PNA (Pen); external: the PEA (Pex)."""
    presentities: tuple[str, ...] = ("*",)
    """fnmatch patterns of presentities it may publish for (``sip:*@home1.net``)."""
    elements: tuple[Literal["tuple", "person", "device"], ...] | None = None
    """Element kinds it may publish; None: all."""


class PsConfig(BaseModel):
    """The Presence Server node."""

    model_config = _MODEL

    name: str = "ps.home1.net"
    """SIP host name of the PS (Contact, Via, certificates)."""
    domain: str = "home1.net"
    """Home network domain of the presentities it serves."""
    sip: tuple[str, ...] = ("udp:127.0.0.1:5065", "tcp:127.0.0.1:5065")
    """SIP listen addresses TRANSPORT:HOST:PORT (udp, tcp, tls)."""
    advertise: str | None = None
    """Host written in Via and Contact; default: the listen host."""
    trust: Literal["open", "network"] = "network"
    """network: only configured peers; open: anyone (labs, benchmarks)."""
    peers: tuple[PsPeer, ...] = ()
    """Trusted network peers (network trust mode)."""
    store: str = "memory"
    """``memory`` or ``sqlite:PATH``."""
    xcap: str | None = None
    """XCAP server address ``http:HOST:PORT`` (or https); None: no XCAP."""
    xcap_root: str = "/xcap-root"
    """Path of the XCAP root."""
    min_expires: int = Field(60, ge=1)
    """Shortest PUBLISH/SUBSCRIBE expiry accepted (seconds); below it: 423."""
    default_expires: int = Field(3600, ge=1)
    """Expiry used when a request has no Expires (seconds)."""
    max_expires: int = Field(86400, ge=1)
    """Longest expiry granted (seconds)."""
    min_notify_interval: float = Field(0.0, ge=0)
    """RFC 6446 rate control: seconds between NOTIFYs of one subscription (0: off)."""
    default_sub_handling: Literal["block", "confirm", "polite-block", "allow"] | None = None
    """When no rule matches; None: confirm (network) or allow (open)."""
    workers: int = Field(1, ge=1, le=64)
    """Worker processes sharing one UDP address, presentities sharded over them
    (decision D13); more than one: UDP listeners only."""
    flush_interval: float = Field(0.02, gt=0)
    """How often pending store writes are committed (seconds)."""
    shutdown: Literal["keep", "deactivate"] = "keep"
    """At stop: keep subscriptions for the next start, or end them with final NOTIFYs."""
    known_users: tuple[str, ...] | None = None
    """Presentities served (IMPUs); None: anyone in ``domain``. Others get 404."""
    aliases: dict[str, str] = Field(default_factory=dict)
    """Alias IMPU -> canonical IMPU (tel: to sip: of one implicit set)."""
    credentials: dict[str, str] = Field(default_factory=dict)
    """XCAP Digest: IMPI -> password (from the HSS data)."""
    identities: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """XCAP: IMPI -> the IMPUs (XUIs) the user owns."""
    @field_validator("sip")
    @classmethod
    def _listen_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for spec in value:
            parse_listen(spec)  # ValueError: "bad listen address ...: expected TRANSPORT:HOST:PORT"
        return value

    tls_cert: str | None = None
    """PEM certificate for TLS (network domain security)."""
    tls_key: str | None = None
    tls_ca: str | None = None
    """CA that signs peers' certificates (mutual TLS)."""
