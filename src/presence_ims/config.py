"""The network configuration: one TOML file, one section per node, env overrides.

``configs/home1.toml`` describes a home network.  Everything that several
nodes must agree on (who the S-CSCF is, where the PS is, which transport the
network side uses) is derived here from a few ports and the ``tls`` switch,
so one file stays short and consistent.  Environment variables override any
field: prefix ``PRESENCE_IMS_``, nested delimiter ``__``
(``PRESENCE_IMS_PCSCF__ALLOW_AKA_WITHOUT_IPSEC=true``).

:func:`load` returns validated settings or raises :class:`ConfigError` whose
message lists every problem in one readable block (no traceback).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from .nodes.hss.model import HssConfig, IfcConfig, SubscriberConfig
from .nodes.icscf import IcscfConfig
from .nodes.pcscf import PcscfConfig
from .nodes.pea.config import PeaSection
from .nodes.pna.config import PnaSection
from .nodes.ps.config import PsConfig, PsPeer
from .nodes.scscf import ScscfConfig
from .nodes.sim.config import SimSection

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class ConfigError(Exception):
    """An invalid or unreadable configuration; the message is for the user."""


class NetworkSection(BaseModel):
    model_config = _MODEL

    domain: str = "home1.net"
    """Home network domain (SIP domain, Diameter realm, digest realm)."""
    host: str = "127.0.0.1"
    """Address every node binds (one machine). Per-node hosts come from ``hosts``."""
    tls: bool = True
    """Mutual TLS between network nodes (SIP Mw/ISC/Pen/Pex and Diameter), with a generated CA."""
    state_dir: str = "var/home1"
    """Where the SQLite store, SQN file and PKI live."""
    pki_dir: str | None = None
    """PKI directory (default: state_dir/pki); networks started together share one."""
    hosts: dict[str, str] = Field(default_factory=dict)
    """Node name -> IP address (a hosts file for ``*.home1.net`` names)."""
    peer_networks: dict[str, str] = Field(default_factory=dict)
    """Other home networks: domain -> their I-CSCF URI."""
    demo: bool = False
    """The subscribers are demo-only (printed with their credentials by ``up``)."""


class HssSection(BaseModel):
    model_config = _MODEL
    port: int = Field(3868, ge=0, le=65535)
    """Diameter port."""


class IcscfSection(BaseModel):
    model_config = _MODEL
    port: int = Field(4060, ge=0, le=65535)
    """SIP port on the network side (tls or tcp)."""


class ScscfSection(BaseModel):
    model_config = _MODEL
    port: int = Field(6060, ge=0, le=65535)
    min_expires: int = Field(60, ge=1)
    max_expires: int = Field(3600, ge=60)


class PcscfSection(BaseModel):
    model_config = _MODEL
    port: int = Field(5060, ge=0, le=65535)
    """Gm port for UEs and SIP clients (udp and tcp)."""
    network_port: int = Field(5061, ge=0, le=65535)
    """Mw port toward the I-/S-CSCF."""
    port_c: int = Field(5062, ge=0, le=65535)
    port_s: int = Field(5064, ge=0, le=65535)
    allow_null_encryption: bool = False
    """Accept ESP with ealg=null (integrity only)."""
    allow_aka_without_ipsec: bool = False
    """Let clients without sec-agree (SIPp) register with IMS AKA; logged loudly."""


class PsSection(BaseModel):
    model_config = _MODEL
    port: int = Field(5065, ge=0, le=65535)
    """SIP port for network peers (tls or tcp)."""
    xcap_port: int | None = Field(8080, ge=0, le=65535)
    """XCAP root http://HOST:PORT/xcap-root; None disables XCAP."""
    store: str | None = None
    """``memory`` or ``sqlite:PATH`` (default: sqlite in state_dir)."""
    min_expires: int = Field(60, ge=1)
    min_notify_interval: float = Field(0.0, ge=0)
    initial_rules: dict[str, list[str]] = Field(default_factory=dict)
    """Presentity -> watchers allowed full information, installed when the user has no rules yet."""
    presence_ifc: bool = True
    """Give every subscriber the iFC that sends PUBLISH/SUBSCRIBE Event presence* to the PS."""


_CURRENT_TOML: list[Path] = []


class NetworkSettings(BaseSettings):
    """A whole home network."""

    model_config = SettingsConfigDict(
        env_prefix="PRESENCE_IMS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    network: NetworkSection = Field(default_factory=NetworkSection)
    subscribers: tuple[SubscriberConfig, ...] = ()
    hss: HssSection = Field(default_factory=HssSection)
    icscf: IcscfSection = Field(default_factory=IcscfSection)
    scscf: ScscfSection = Field(default_factory=ScscfSection)
    pcscf: PcscfSection = Field(default_factory=PcscfSection)
    ps: PsSection = Field(default_factory=PsSection)
    pna: PnaSection = Field(default_factory=PnaSection)
    pea: PeaSection = Field(default_factory=PeaSection)
    sim: SimSection = Field(default_factory=SimSection)

    source_path: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _CURRENT_TOML:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_CURRENT_TOML[-1]))
        return tuple(sources)

    # -- derived values shared by several nodes ---------------------------------------------------
    @property
    def domain(self) -> str:
        return self.network.domain

    @property
    def net_transport(self) -> str:
        return "tls" if self.network.tls else "tcp"

    def name(self, role: str) -> str:
        return f"{role}.{self.domain}"

    def host_of(self, role: str) -> str:
        return self.network.hosts.get(self.name(role), self.network.host)

    def hosts(self) -> dict[str, str]:
        roles = ("pcscf", "icscf", "scscf", "hss", "ps", "pna", "pea", "sim", "xcap")
        out = {self.name(r): self.host_of(r) for r in roles}
        out.update(self.network.hosts)
        return out

    def sip_uri(self, role: str, port: int, user: str | None = None) -> str:
        u = f"{user}@" if user else ""
        return f"sip:{u}{self.name(role)}:{port};transport={self.net_transport}"

    @property
    def ps_uri(self) -> str:
        return self.sip_uri("ps", self.ps.port)

    @property
    def scscf_uri(self) -> str:
        return self.sip_uri("scscf", self.scscf.port)

    @property
    def icscf_uri(self) -> str:
        return self.sip_uri("icscf", self.icscf.port)

    @property
    def state_dir(self) -> Path:
        return Path(self.network.state_dir)

    @property
    def pki_dir(self) -> Path:
        return Path(self.network.pki_dir) if self.network.pki_dir else self.state_dir / "pki"

    def subscribers_with_ifc(self) -> tuple[SubscriberConfig, ...]:
        if not self.ps.presence_ifc:
            return self.subscribers
        ifc = IfcConfig(
            priority=0,
            methods=("PUBLISH", "SUBSCRIBE"),
            event="presence.*",
            session_cases=(1, 2),
            server_name=self.ps_uri,
        )
        return tuple(s if s.ifc else s.model_copy(update={"ifc": (ifc,)}) for s in self.subscribers)

    # -- per-node configurations --------------------------------------------------------------------
    def hss_config(self) -> HssConfig:
        return HssConfig(
            realm=self.domain,
            origin_host=self.name("hss"),
            listen_address=self.host_of("hss"),
            listen_port=self.hss.port,
            scscf_name=self.scscf_uri,
            subscribers=self.subscribers_with_ifc(),
            sqn_store=self.state_dir / "hss-sqn.json",
            sh_allowed_hosts=(self.name("pna"),),
        )

    def icscf_config(self) -> IcscfConfig:
        host = self.host_of("icscf")
        return IcscfConfig(
            name=self.name("icscf"),
            domain=self.domain,
            sip=(f"{self.net_transport}:{host}:{self.icscf.port}",),
            hss=f"{self.host_of('hss')}:{self.hss.port}",
            hss_name=self.name("hss"),
            default_scscf=self.scscf_uri,
        )

    def scscf_config(self) -> ScscfConfig:
        host = self.host_of("scscf")
        return ScscfConfig(
            name=self.name("scscf"),
            domain=self.domain,
            sip=(f"{self.net_transport}:{host}:{self.scscf.port}",),
            server_name=self.scscf_uri,
            hss=f"{self.host_of('hss')}:{self.hss.port}",
            hss_name=self.name("hss"),
            icscf=self.icscf_uri,
            peer_networks=dict(self.network.peer_networks),
            min_expires=self.scscf.min_expires,
            max_expires=self.scscf.max_expires,
            reg_watchers=(f"sip:{self.name('pcscf')}", f"sip:{self.name('pna')}"),
            store=f"sqlite:{self.state_dir / 'scscf.db'}",
        )

    def pcscf_config(self) -> PcscfConfig:
        host = self.host_of("pcscf")
        p = self.pcscf
        return PcscfConfig(
            name=self.name("pcscf"),
            domain=self.domain,
            sip=(f"udp:{host}:{p.port}", f"tcp:{host}:{p.port}"),
            network=f"{self.net_transport}:{host}:{p.network_port}",
            protected_host=host,
            port_c=p.port_c,
            port_s=p.port_s,
            icscf=self.icscf_uri,
            allow_null_encryption=p.allow_null_encryption,
            allow_aka_without_ipsec=p.allow_aka_without_ipsec,
        )

    def ps_config(self) -> PsConfig:
        host = self.host_of("ps")
        store = self.ps.store or f"sqlite:{self.state_dir / 'ps.db'}"
        aliases: dict[str, str] = {}
        known: list[str] = []
        creds: dict[str, str] = {}
        idents: dict[str, tuple[str, ...]] = {}
        for sub in self.subscribers:
            for group in sub.implicit_sets:
                canonical = next((u for u in group if u.startswith("sip")), group[0])
                for impu in group:
                    known.append(impu)
                    if impu != canonical:
                        aliases[impu] = canonical
            if sub.digest_password:
                creds[sub.impi] = sub.digest_password
            idents[sub.impi] = sub.all_impus
        peers = (
            PsPeer(name="scscf", tls_names=(self.name("scscf"),), source_class="ue"),
            PsPeer(name="pna", tls_names=(self.name("pna"),), source_class="network",
                   presentities=(f"sip:*@{self.domain}",)),
            PsPeer(name="pea", tls_names=(self.name("pea"),), source_class="external",
                   presentities=(f"sip:*@{self.domain}",), elements=("person",)),
        )
        return PsConfig(
            name=self.name("ps"),
            domain=self.domain,
            sip=(f"{self.net_transport}:{host}:{self.ps.port}",),
            trust="network",
            peers=peers,
            store=store,
            xcap=f"http:{self.host_of('xcap')}:{self.ps.xcap_port}" if self.ps.xcap_port is not None else None,
            min_expires=self.ps.min_expires,
            min_notify_interval=self.ps.min_notify_interval,
            known_users=tuple(known),
            aliases=aliases,
            credentials=creds,
            identities=idents,
        )


def load(path: str | Path | None) -> NetworkSettings:
    """Read, merge with the environment and validate; ConfigError with every problem."""
    toml: Path | None = Path(path) if path is not None else None
    if toml is not None:
        if not toml.is_file():
            raise ConfigError(f"config file not found: {toml}")
        try:
            with toml.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{toml}: not valid TOML: not UTF-8 at byte {exc.start}") from None
        except OSError as exc:
            raise ConfigError(f"{toml}: cannot read: {exc.strerror or exc}") from None
        _CURRENT_TOML.append(toml)
    try:
        return NetworkSettings()
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, toml)) from None
    except SettingsError as exc:  # an environment value that does not parse (JSON of a section)
        raise ConfigError(f"environment: {exc}") from None
    finally:
        if toml is not None:
            _CURRENT_TOML.pop()


def format_errors(exc: ValidationError, path: Path | None) -> str:
    where = f"{path}: " if path else ""
    lines = [f"{where}{exc.error_count()} problem(s) in the configuration:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)


def dump_defaults() -> dict[str, Any]:
    return NetworkSettings().model_dump()


Role = Literal["hss", "icscf", "scscf", "pcscf", "ps", "pna", "pea", "sim"]
