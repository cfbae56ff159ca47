"""The event packages the Presence Server serves (RFC 3856, RFC 3857)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventPackage:
    name: str
    content_type: str
    publishable: bool


PACKAGES: dict[str, EventPackage] = {
    "presence": EventPackage("presence", "application/pidf+xml", True),
    "presence.winfo": EventPackage("presence.winfo", "application/watcherinfo+xml", False),
}
