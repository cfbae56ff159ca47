"""The Presence Server's state: publications and subscriptions, as storable records."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ...sip.dialog import Dialog

_DIALOG_FIELDS = ("call_id", "local_tag", "remote_tag", "local_uri", "remote_uri",
                  "remote_target", "route_set", "local_cseq", "remote_cseq", "secure")
_DIALOG_BY_HAND = tuple(f.name for f in fields(Dialog)) == _DIALOG_FIELDS
"""The dialog is written out by hand below while it has exactly these fields."""

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

    saved: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)
    """What the node last persisted of the fields other than the NOTIFY counters (see
    :meth:`persisted_state`); bookkeeping of the node, never persisted itself."""
    saved_cseq: int = field(default=0, compare=False, repr=False)
    """The dialog's local CSeq when the node last persisted this record (bookkeeping)."""

    def persisted_state(self) -> tuple[Any, ...]:
        """Every persisted field that can change, except the counters of the NOTIFYs sent
        (dialog local CSeq, winfo version, time of the last NOTIFY): when only those
        moved, the node may persist the record later (see ``PresenceServer``)."""
        d = self.dialog
        return (self.state, self.reason, self.expires_at, self.winfo_event, self.polite_block,
                d.remote_cseq, d.remote_target)

    def to_dict(self) -> dict[str, Any]:
        # written out by hand: dataclasses.asdict recurses and deep-copies (~100 us)
        d = self.dialog
        dialog = {
            "call_id": d.call_id,
            "local_tag": d.local_tag,
            "remote_tag": d.remote_tag,
            "local_uri": d.local_uri,
            "remote_uri": d.remote_uri,
            "remote_target": d.remote_target,
            "route_set": list(d.route_set),
            "local_cseq": d.local_cseq,
            "remote_cseq": d.remote_cseq,
            "secure": d.secure,
        } if _DIALOG_BY_HAND else d.to_dict()
        return {
            "id": self.id,
            "event": self.event,
            "presentity": self.presentity,
            "resource_uri": self.resource_uri,
            "watcher": self.watcher,
            "watcher_display": self.watcher_display,
            "authenticated": self.authenticated,
            "anonymous": self.anonymous,
            "dialog": dialog,
            "expires_at": self.expires_at,
            "created_at": self.created_at,
            "state": self.state,
            "reason": self.reason,
            "event_id": self.event_id,
            "winfo_id": self.winfo_id,
            "winfo_event": self.winfo_event,
            "polite_block": self.polite_block,
            "winfo_version": self.winfo_version,
            "last_notify_at": self.last_notify_at,
            "contact": self.contact,
            "destination": dict(self.destination) if self.destination is not None else None,
            "accept": list(self.accept),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubscriptionRecord:
        d = dict(d)
        d["dialog"] = Dialog.from_dict(d["dialog"])
        d.pop("saved", None)
        d.pop("saved_cseq", None)
        return cls(**d)
