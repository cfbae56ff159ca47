"""Configuration of the HSS: subscribers (identities, AKA keys, digest
passwords, initial filter criteria) and the node's Diameter endpoint."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["HssConfig", "IfcConfig", "SubscriberConfig"]

_HEX = re.compile(r"^[0-9a-fA-F]*$")
_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _hex(value: str, nbytes: int, name: str) -> str:
    if len(value) != 2 * nbytes or not _HEX.match(value):
        raise ValueError(f"{name} must be {2 * nbytes} hex digits")
    return value.lower()


class IfcConfig(BaseModel):
    """One initial filter criterion: which requests the S-CSCF sends to an AS."""

    model_config = _MODEL

    priority: int = Field(default=0, ge=0)
    """Priority (lower first), unitless."""
    methods: tuple[str, ...] = ("PUBLISH", "SUBSCRIBE")
    """SIP methods that trigger (ORed); empty means any method."""
    event: str | None = "presence.*"
    """Regular expression the Event header must match; None means no condition."""
    session_cases: tuple[Literal[0, 1, 2, 3, 4], ...] = ()
    """Session cases (0 originating, 1 terminating registered, 2 terminating
    unregistered, 3 originating unregistered, 4 originating CDIV); empty means any."""
    server_name: str
    """SIP URI of the application server (the presence server)."""
    default_handling: Literal["continue", "terminate"] = "continue"
    """What the S-CSCF does when the AS does not answer."""
    profile_part: Literal["registered", "unregistered"] | None = None
    """Profile part the criterion belongs to; None for both."""

    @field_validator("server_name")
    @classmethod
    def _sip_uri(cls, value: str) -> str:
        if not value.startswith(("sip:", "sips:")):
            raise ValueError("server_name must be a sip: or sips: URI")
        return value

    @field_validator("event")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"event is not a regular expression: {exc}") from exc
        return value


class SubscriberConfig(BaseModel):
    """One IMS subscription: an IMPI, its IMPUs and its credentials."""

    model_config = _MODEL

    impi: str
    """Private user identity (``alice@home1.net``), the User-Name on Cx."""
    impus: tuple[tuple[str, ...], ...]
    """Implicit registration sets, each a list of IMPUs (sip: and tel:); the
    first IMPU of the first set is the default public identity."""
    anonymous_impu: str | None = None
    """An extra IMPU in its own implicit set, never linked to the others in
    answers about them (Sh IMSPublicIdentity)."""
    msisdn: str | None = None
    """MSISDN digits (Sh PublicIdentifiers), optional."""
    k: str | None = None
    """Subscriber key K, 32 hex digits (128 bits); needed for AKA."""
    op: str | None = None
    """Operator variant OP, 32 hex digits; exactly one of op/opc for AKA."""
    opc: str | None = None
    """Derived OPc, 32 hex digits; exactly one of op/opc for AKA."""
    amf: str = "8000"
    """Authentication management field, 4 hex digits (16 bits)."""
    sqn: int = Field(default=0, ge=0, lt=1 << 48)
    """Last sequence number used (48 bits); the first vector uses the next one."""
    digest_password: str | None = None
    """Password for SIP Digest (ordinary SIP clients); needed for digest."""
    auth_schemes: tuple[Literal["aka", "digest"], ...] = ("aka",)
    """Authentication schemes allowed; the first is used when the S-CSCF asks
    for scheme ``Unknown``."""
    barred: bool = False
    """All IMPUs barred: registration is refused."""
    unregistered_services: bool = True
    """Whether the user has services in the unregistered state (presence
    does: watchers may subscribe to an offline presentity), so LIR answers
    DIAMETER_UNREGISTERED_SERVICE instead of IDENTITY_NOT_REGISTERED."""
    ifc: tuple[IfcConfig, ...] = ()
    """Initial filter criteria of the service profile."""

    @field_validator("k", "op", "opc")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return None if value is None else _hex(value, 16, "key")

    @field_validator("amf")
    @classmethod
    def _amf(cls, value: str) -> str:
        return _hex(value, 2, "amf")

    @model_validator(mode="after")
    def _consistent(self) -> SubscriberConfig:
        if not self.impus or any(not group for group in self.impus):
            raise ValueError("impus needs at least one non-empty implicit registration set")
        every = self.all_impus
        for impu in every:
            if not impu.startswith(("sip:", "sips:", "tel:")):
                raise ValueError(f"IMPU {impu!r} is not a sip:, sips: or tel: URI")
        if len(set(every)) != len(every):
            raise ValueError("an IMPU appears twice")
        if not self.auth_schemes:
            raise ValueError("auth_schemes must not be empty")
        if "aka" in self.auth_schemes:
            if self.k is None or (self.op is None) == (self.opc is None):
                raise ValueError("AKA needs k and exactly one of op or opc")
        if "digest" in self.auth_schemes and self.digest_password is None:
            raise ValueError("digest needs digest_password")
        return self

    @property
    def default_impu(self) -> str:
        """The default public identity."""
        return self.impus[0][0]

    @property
    def implicit_sets(self) -> tuple[tuple[str, ...], ...]:
        """Every implicit registration set, the anonymous IMPU's own set last."""
        if self.anonymous_impu is None:
            return self.impus
        return (*self.impus, (self.anonymous_impu,))

    @property
    def all_impus(self) -> tuple[str, ...]:
        """Every IMPU of the subscription, anonymous one included."""
        return tuple(impu for group in self.implicit_sets for impu in group)


class HssConfig(BaseModel):
    """The HSS node: its Diameter identity, endpoint and subscribers."""

    model_config = _MODEL

    realm: str = "home1.net"
    """Origin-Realm and the SIP Digest realm."""
    origin_host: str = "hss.home1.net"
    """Origin-Host: the HSS's Diameter identity."""
    listen_address: str = "127.0.0.1"
    """Address the Diameter server binds."""
    listen_port: int = Field(default=3868, ge=0, le=65535)
    """TCP port of the Diameter server (0 picks a free one)."""
    scscf_name: str = "sip:scscf.home1.net:6060"
    """S-CSCF SIP URI offered to the I-CSCF for users with none assigned."""
    subscribers: tuple[SubscriberConfig, ...] = ()
    """The subscriptions the HSS holds."""
    sqn_store: Path | None = None
    """JSON file keeping the last SQN per IMPI across restarts; None keeps them in memory."""
    sh_allowed_hosts: tuple[str, ...] | None = None
    """Origin-Hosts allowed to use Sh (UDR/SNR); None allows every connected peer."""
    max_auth_items: int = Field(default=5, ge=1, le=32)
    """Most vectors returned in one MAA, count."""
    sh_max_expiry: int = Field(default=86400, ge=1)
    """Longest Sh subscription granted, in seconds."""

    @model_validator(mode="after")
    def _unique(self) -> HssConfig:
        impis = [s.impi for s in self.subscribers]
        if len(set(impis)) != len(impis):
            raise ValueError("an IMPI appears twice")
        impus = [impu for s in self.subscribers for impu in s.all_impus]
        if len(set(impus)) != len(impus):
            raise ValueError("an IMPU belongs to two subscribers")
        return self
