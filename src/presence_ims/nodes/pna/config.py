"""Configuration of the Presence Network Agent: the ``[pna]`` section of a network file.

The secrets below are DEMO defaults (published with the code): a real
deployment sets its own in the configuration or the environment
(``PRESENCE_IMS_PNA__RADIUS_CLIENTS='{"10.1.2.3": "..."}'``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

DEMO_FEED_ELEMENTS: dict[str, dict[str, str]] = {
    "msc1": {"type": "msc", "secret": "demo-msc1-feed-secret"},
    "sgsn1": {"type": "sgsn", "secret": "demo-sgsn1-feed-secret"},
}
"""Element ids, types and shared secrets of the demo feed (DEMO ONLY)."""


class FeedElementConfig(BaseModel):
    """One MSC/VLR or SGSN allowed to feed the PNA (Pc/Pg)."""

    model_config = _MODEL

    type: Literal["msc", "sgsn"]
    """msc (Pc) or sgsn (Pg)."""
    secret: str = Field(min_length=8)
    """Shared secret keying the HMAC-SHA-256 of every line."""


def _stale_defaults() -> dict[str, float]:
    return {"Pi": 7200.0, "Ph": 7200.0, "Pc": 3600.0, "Pg": 3600.0, "Pk": 86400.0, "Pl": 900.0}


class PnaSection(BaseModel):
    """The PNA: Pi, Ph, Pc, Pg, Pk and Pl in, Pen out."""

    model_config = _MODEL

    enabled: bool = False
    """Run the PNA with the network. Off by default: with it, every registered user gets
    network tuples (``pna-ims`` ...) and the S-CSCF a reg-event watcher more, which
    tests written for a PNA-less network do not expect; ``[pna] enabled = true`` turns it on."""
    sip_port: int = Field(5066, ge=0, le=65535)
    """SIP port (network transport, tls or tcp) where the S-CSCF's reg NOTIFYs (Pi) arrive."""
    feed_port: int = Field(7070, ge=0, le=65535)
    """TCP port of the Pc/Pg element feed (JSON lines)."""
    radius_port: int = Field(1813, ge=0, le=65535)
    """UDP port of the RADIUS accounting server (Pk)."""
    mlp_port: int = Field(9210, ge=0, le=65535)
    """HTTP port of the MLP location report endpoint (Pl), path ``/mlp``."""
    users: tuple[str, ...] | None = None
    """IMPUs the PNA watches (Pi, Ph); None: the default IMPU of every subscriber."""
    pi: bool = True
    """Subscribe to the reg event at the S-CSCF (Pi)."""
    ph: bool = True
    """Use Sh toward the HSS (Ph): UDR, SNR, PNR."""
    reg_expires: int = Field(600, ge=60)
    """Expiry asked for reg-event subscriptions, seconds (refreshed at 80 %)."""
    sh_expiry: int = Field(3600, ge=60)
    """Expiry asked for Sh subscriptions (SNR), seconds (renewed at 80 %)."""
    publish_expires: int = Field(3600, ge=60)
    """Expires of the PUBLISHes on Pen, seconds (refreshed at 80 %)."""
    debounce: float = Field(0.2, ge=0.0, le=60.0)
    """Seconds to wait after a change before publishing, so that bursts become one PUBLISH."""
    retry: float = Field(1.0, gt=0.0)
    """First retry delay after a failed PUBLISH/SUBSCRIBE/Diameter exchange, seconds (doubling to 60)."""
    stale_after: dict[str, float] = Field(default_factory=_stale_defaults)
    """Interface -> seconds after which data not refreshed from it is dropped."""
    feed_elements: dict[str, FeedElementConfig] = Field(
        default_factory=lambda: {k: FeedElementConfig.model_validate(v) for k, v in DEMO_FEED_ELEMENTS.items()}
    )
    """Element id -> type and shared secret (Pc/Pg). DEMO defaults."""
    feed_max_skew: float = Field(30.0, gt=0.0)
    """Largest distance between a feed line's timestamp and the PNA's clock, seconds."""
    radius_clients: dict[str, str] = Field(default_factory=lambda: {"127.0.0.1": "demo-radius-secret"})
    """GGSN source address -> RADIUS shared secret (Pk). DEMO default."""
    mlp_user: str = "gmlc"
    """User name the GMLC presents (HTTP Basic) on Pl."""
    mlp_password: str = Field("demo-gmlc-password", min_length=8)
    """Its password. DEMO default."""
    location_retention: int = Field(900, ge=60)
    """GEOPRIV retention-expiry given to watchers, seconds after the fix."""
