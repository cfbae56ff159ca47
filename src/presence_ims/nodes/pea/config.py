"""Configuration of the Presence External Agent: the ``[pea]`` section and its sources.

Each external source has an id, a key and a scope::

    [[pea.sources]]
    id = "calendar-bob"
    algorithm = "hmac-sha256"          # or "ed25519"
    key = "a shared secret of 16+ characters"   # ed25519: the source's public key (hex or base64)
    presentities = ["sip:bob@{domain}"]         # fnmatch patterns; {domain} is the network's
    attributes = ["activities", "note"]         # person attributes it may set

With ``network.demo`` set and ``demo_sources`` on, the sources of
:data:`DEMO_SOURCES` (published keys, DEMO ONLY) are added.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

Attribute = Literal["activities", "note", "mood", "place-type", "sphere", "location"]
ATTRIBUTES: Final[tuple[Attribute, ...]] = (
    "activities", "note", "mood", "place-type", "sphere", "location",
)  # fmt: skip
"""Person attributes an external source may be allowed to set."""


def decode_key(text: str) -> bytes:
    """A 32-byte key from 64 hex digits or base64; ValueError otherwise."""
    value = text.strip()
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError("not hex or base64") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 key is 32 bytes")
    return raw


class PeaSource(BaseModel):
    """An external source (calendar, IoT device, web application)."""

    model_config = _MODEL

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
    """Source id, sent in ``X-PEA-Source``."""
    algorithm: Literal["hmac-sha256", "ed25519"] = "hmac-sha256"
    """Signature algorithm; a submission signed otherwise is refused."""
    key: str = Field(min_length=16)
    """hmac-sha256: the shared secret; ed25519: the source's public key (hex or base64)."""
    presentities: tuple[str, ...] = Field(min_length=1)
    """fnmatch patterns of the presentities it may set (``{domain}`` expands)."""
    attributes: tuple[Attribute, ...] = ("activities", "note")
    """Person attributes it may set."""

    @model_validator(mode="after")
    def _key_form(self) -> PeaSource:
        if self.algorithm == "ed25519":
            decode_key(self.key)
        return self


class PeaSection(BaseModel):
    """The PEA: signed submissions over HTTP in, Pex out."""

    model_config = _MODEL

    enabled: bool = True
    """Run the PEA with the network."""
    port: int = Field(8081, ge=0, le=65535)
    """HTTP port of the submission API."""
    max_skew: float = Field(300.0, gt=0)
    """Largest distance between X-PEA-Timestamp and the PEA's clock, seconds."""
    max_body: int = Field(65536, ge=1024)
    """Largest submission, bytes."""
    publish_expires: int = Field(3600, ge=60)
    """Expires of the PUBLISHes on Pex, seconds (refreshed at 80 %)."""
    debounce: float = Field(0.1, ge=0.0, le=60.0)
    """Seconds between a change and its PUBLISH."""
    default_ttl: int = Field(3600, ge=60)
    """How long a submission holds when it gives neither ``expires`` nor ``until``, seconds."""
    max_ttl: int = Field(86400, ge=60)
    """Longest a submission may hold, seconds."""
    sources: tuple[PeaSource, ...] = ()
    """Configured external sources."""
    demo_sources: bool = True
    """With ``network.demo``: add the DEMO ONLY sources of :data:`DEMO_SOURCES`."""

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: tuple[PeaSource, ...]) -> tuple[PeaSource, ...]:
        ids = [s.id for s in value]
        if len(set(ids)) != len(ids):
            raise ValueError("two sources with one id")
        return value


DEMO_ED25519_SEED: Final = hashlib.sha256(b"presence-ims DEMO ONLY iot-alice ed25519 seed").hexdigest()
"""Private key seed (hex) of the demo Ed25519 source ``iot-alice`` (DEMO ONLY, published)."""

DEMO_HMAC_KEY: Final = "calendar-bob-demo-key-DEMO-ONLY"
"""Shared secret of the demo source ``calendar-bob`` (DEMO ONLY, published)."""


def _demo_public_key() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(DEMO_ED25519_SEED))
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def demo_sources() -> tuple[PeaSource, ...]:
    """The DEMO ONLY sources: a calendar for bob (HMAC) and an IoT device for alice (Ed25519)."""
    return (
        PeaSource(
            id="calendar-bob",
            algorithm="hmac-sha256",
            key=DEMO_HMAC_KEY,
            presentities=("sip:bob@{domain}",),
            attributes=("activities", "note"),
        ),
        PeaSource(
            id="iot-alice",
            algorithm="ed25519",
            key=_demo_public_key(),
            presentities=("sip:alice@{domain}",),
            attributes=("activities", "note", "place-type", "location"),
        ),
    )
