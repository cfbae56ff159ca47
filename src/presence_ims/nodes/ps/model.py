"""The Presence Server's state: publications and subscriptions, as storable records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ...sip.dialog import Dialog

SourceClass = Literal["ue", "network", "external"]
SubState = Literal["pending", "active", "terminated"]


@dataclass(slots=True)
class PublicationRecord:
    """One event state of RFC 3903 (one publisher's PIDF for one presentity)."""

    etag: str
    presentity: str
    """Normalised presentity key (``sip:alice@home1.net``)."""
    event: str
    source_id: str
    """Who published: the asserted identity for UEs, the peer name for the PNA/PEA."""
    source_class: SourceClass
    interface: str
    """Peu, Pen or Pex."""
    asserted_identity: str
    received_at: float
    expires_at: float
    content_type: str
    body: bytes

    def to_dict(self) -> dict[str, Any]:
        # written out by hand: dataclasses.asdict deep-copies and costs ~50 us per PUBLISH
        return {
            "etag": self.etag,
            "presentity": self.presentity,
            "event": self.event,
            "source_id": self.source_id,
            "source_class": self.source_class,
            "interface": self.interface,
            "asserted_identity": self.asserted_identity,
            "received_at": self.received_at,
            "expires_at": self.expires_at,
            "content_type": self.content_type,
            "body": self.body.decode("utf-8", "surrogateescape"),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublicationRecord:
        d = dict(d)
        d["body"] = d["body"].encode("utf-8", "surrogateescape")
        return cls(**d)


@dataclass(slots=True)
class SubscriptionRecord:
    """One subscription (RFC 6665) held by the PS as notifier."""

    id: str
    """Internal id (random)."""
    event: str
    """``presence`` or ``presence.winfo``."""
    presentity: str
    """The watched resource (normalised)."""
    resource_uri: str
    """The resource URI as the watcher named it (used in NOTIFY bodies)."""
    watcher: str
    """The watcher's identity as authenticated (asserted or From)."""
    watcher_display: str | None
    authenticated: bool
    anonymous: bool
    dialog: Dialog
    expires_at: float
    created_at: float
    state: SubState = "pending"
    reason: str | None = None
    """Why a terminated subscription ended (timeout, rejected ...)."""
    event_id: str | None = None
    winfo_id: str = ""
    """Opaque, unlinkable id used in watcherinfo documents."""
    winfo_event: str = "subscribe"
    """The last watcherinfo event of this watcher (subscribe, approved, timeout ...)."""
    polite_block: bool = False
    winfo_version: int = 0
    """Version of the last watcherinfo document sent (winfo subscriptions)."""
    last_notify_at: float = 0.0
    contact: str = ""
    """Our Contact for this dialog."""
    destination: dict[str, Any] | None = None
    """Where the NOTIFYs go when the route set does not say (transport, host, port)."""
    accept: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dialog"] = self.dialog.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubscriptionRecord:
        d = dict(d)
        d["dialog"] = Dialog.from_dict(d["dialog"])
        return cls(**d)
