"""Watcher information (RFC 3857 event package, RFC 3858 format).

``parse(data) -> WatcherInfo`` and ``build(info) -> bytes`` for
``application/watcherinfo+xml``. Extension elements of other namespaces are
ignored on parsing (RFC 3858 section 4: unknown elements are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxml import etree

from .xml import (
    DEFAULT_MAX_SIZE,
    XML_LANG,
    DocumentError,
    clark,
    new_root,
    parse_xml,
    serialize,
    split_clark,
)

__all__ = [
    "CONTENT_TYPE",
    "WATCHERINFO_NS",
    "Watcher",
    "WatcherInfo",
    "WatcherList",
    "build",
    "parse",
]

WATCHERINFO_NS = "urn:ietf:params:xml:ns:watcherinfo"
CONTENT_TYPE = "application/watcherinfo+xml"

WatcherStatus = Literal["pending", "active", "waiting", "terminated"]
WatcherEvent = Literal[
    "subscribe", "approved", "deactivated", "probation", "rejected", "timeout", "giveup",
    "noresource",
]  # fmt: skip
_STATUSES: tuple[WatcherStatus, ...] = ("pending", "active", "waiting", "terminated")
_EVENTS: tuple[WatcherEvent, ...] = (
    "subscribe", "approved", "deactivated", "probation", "rejected", "timeout", "giveup",
    "noresource",
)  # fmt: skip
_UNSIGNED_LONG_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Watcher:
    """One ``<watcher>``: a subscription to the resource."""

    id: str
    """Opaque, unlinkable subscription id."""
    status: WatcherStatus
    """pending | active | waiting | terminated."""
    event: WatcherEvent
    """What caused the last state change."""
    uri: str
    """The watcher's URI (``sip:anonymous@anonymous.invalid`` for anonymous watchers)."""
    display_name: str | None = None
    """Display name."""
    duration_subscribed: int | None = None
    """Seconds the subscription has existed."""
    expiration: int | None = None
    """Seconds until the subscription expires."""
    lang: str | None = None
    """``xml:lang`` of the display name."""


@dataclass(frozen=True, slots=True)
class WatcherList:
    """``<watcher-list>``: the watchers of one resource for one event package."""

    resource: str
    """The watched resource (presentity URI)."""
    package: str
    """Event package (``presence``)."""
    watchers: tuple[Watcher, ...] = ()
    """Watchers."""


@dataclass(frozen=True, slots=True)
class WatcherInfo:
    """``<watcherinfo>``."""

    version: int
    """Document version (incremented per NOTIFY)."""
    state: Literal["full", "partial"]
    """full | partial."""
    lists: tuple[WatcherList, ...] = ()
    """Watcher lists."""


_T_ROOT = clark(WATCHERINFO_NS, "watcherinfo")
_T_LIST = clark(WATCHERINFO_NS, "watcher-list")
_T_WATCHER = clark(WATCHERINFO_NS, "watcher")


def _unsigned(text: str | None, what: str, limit: int = _UNSIGNED_LONG_MAX) -> int | None:
    if text is None:
        return None
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 20 or int(value) > limit:
        raise DocumentError(f"bad {what}: {value!r}")
    return int(value)


def _parse_watcher(el: etree._Element) -> Watcher:
    ident = el.get("id")
    if not ident:
        raise DocumentError("watcher has no id")
    status = el.get("status")
    if status not in _STATUSES:
        raise DocumentError(f"bad watcher status: {status!r}")
    event = el.get("event")
    if event not in _EVENTS:
        raise DocumentError(f"bad watcher event: {event!r}")
    if len(el):
        raise DocumentError("watcher must be a URI")
    uri = (el.text or "").strip()
    if not uri:
        raise DocumentError("watcher has no URI")
    return Watcher(
        id=ident,
        status=_STATUSES[_STATUSES.index(status)],
        event=_EVENTS[_EVENTS.index(event)],
        uri=uri,
        display_name=el.get("display-name"),
        duration_subscribed=_unsigned(el.get("duration-subscribed"), "duration-subscribed"),
        expiration=_unsigned(el.get("expiration"), "expiration"),
        lang=el.get(XML_LANG),
    )


def _parse_list(el: etree._Element) -> WatcherList:
    resource = (el.get("resource") or "").strip()
    package = (el.get("package") or "").strip()
    if not resource:
        raise DocumentError("watcher-list has no resource")
    if not package:
        raise DocumentError("watcher-list has no package")
    watchers: list[Watcher] = []
    for child in el:
        if child.tag == _T_WATCHER:
            watchers.append(_parse_watcher(child))
        elif split_clark(child.tag)[0] == WATCHERINFO_NS:
            raise DocumentError(f"unexpected element in watcher-list: {child.tag}")
    return WatcherList(resource, package, tuple(watchers))


def parse(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> WatcherInfo:
    """Parse a watcherinfo body."""
    root = parse_xml(data, max_size=max_size)
    if root.tag != _T_ROOT:
        raise DocumentError(f"not a watcherinfo document: root is {root.tag}")
    version = _unsigned(root.get("version"), "watcherinfo version")
    if version is None:
        raise DocumentError("watcherinfo has no version")
    state = root.get("state")
    if state not in ("full", "partial"):
        raise DocumentError(f"bad watcherinfo state: {state!r}")
    lists: list[WatcherList] = []
    for child in root:
        if child.tag == _T_LIST:
            lists.append(_parse_list(child))
        elif split_clark(child.tag)[0] == WATCHERINFO_NS:
            raise DocumentError(f"unexpected element in watcherinfo: {child.tag}")
    return WatcherInfo(version, "full" if state == "full" else "partial", tuple(lists))


def build(info: WatcherInfo) -> bytes:
    """Serialise ``info`` as an ``application/watcherinfo+xml`` body."""
    if info.version < 0:
        raise DocumentError("bad watcherinfo version")
    if info.state not in ("full", "partial"):
        raise DocumentError(f"bad watcherinfo state: {info.state!r}")
    root = new_root(_T_ROOT, {None: WATCHERINFO_NS})
    root.set("version", str(info.version))
    root.set("state", info.state)
    for wl in info.lists:
        if not wl.resource.strip() or not wl.package.strip():
            raise DocumentError("watcher-list needs resource and package")
        list_el = etree.SubElement(root, _T_LIST)
        list_el.set("resource", wl.resource)
        list_el.set("package", wl.package)
        for w in wl.watchers:
            if not w.id:
                raise DocumentError("watcher has no id")
            if w.status not in _STATUSES:
                raise DocumentError(f"bad watcher status: {w.status!r}")
            if w.event not in _EVENTS:
                raise DocumentError(f"bad watcher event: {w.event!r}")
            if not w.uri.strip():
                raise DocumentError("watcher has no URI")
            el = etree.SubElement(list_el, _T_WATCHER)
            el.set("id", w.id)
            el.set("status", w.status)
            el.set("event", w.event)
            if w.display_name is not None:
                el.set("display-name", w.display_name)
            for name, value in (
                ("duration-subscribed", w.duration_subscribed),
                ("expiration", w.expiration),
            ):
                if value is not None:
                    if not 0 <= value <= _UNSIGNED_LONG_MAX:
                        raise DocumentError(f"bad {name}")
                    el.set(name, str(value))
            if w.lang is not None:
                el.set(XML_LANG, w.lang)
            el.text = w.uri
    return serialize(root)
