"""GEOPRIV location objects (RFC 4119 PIDF-LO, with the RFC 5491 point form).

A ``gp:geopriv`` element carries ``location-info`` (a GML point and/or a civic
address, other shapes kept as extension bytes), ``usage-rules``
(retransmission-allowed, retention-expiry, external-ruleset, note-well), and an
optional ``method`` and ``provided-by``. The presence documents carry it in a
data-model person (and also accept it in a device, or in a tuple's ``status`` as
RFC 4119 first did).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from .xml import (
    DocumentError,
    canonical,
    clark,
    element_from_bytes,
    format_bool,
    format_datetime,
    parse_bool,
    parse_datetime,
    split_clark,
)

__all__ = [
    "CIVIC_FIELDS",
    "CIVIC_NS",
    "GBP_NS",
    "GEOPRIV_NS",
    "GML_NS",
    "NSMAP",
    "CivicAddress",
    "Geopriv",
    "Point",
    "UsageRules",
    "build_geopriv",
    "parse_geopriv",
]

GEOPRIV_NS = "urn:ietf:params:xml:ns:pidf:geopriv10"
GBP_NS = "urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy"
CIVIC_NS = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
GML_NS = "http://www.opengis.net/gml"
NSMAP = {"gp": GEOPRIV_NS, "gbp": GBP_NS, "ca": CIVIC_NS, "gml": GML_NS}
"""Prefixes a document carrying a location declares."""

WGS84_2D = "urn:ogc:def:crs:EPSG::4326"
WGS84_3D = "urn:ogc:def:crs:EPSG::4979"

CIVIC_FIELDS = frozenset(
    {
        # RFC 4119
        "country", "A1", "A2", "A3", "A4", "A5", "A6", "PRD", "POD", "STS", "HNO", "HNS",
        "LMK", "LOC", "FLR", "NAM", "PC",
        # RFC 5139 additions
        "RD", "RDSEC", "RDBR", "RDSUBBR", "PRM", "POM", "BLD", "UNIT", "ROOM", "SEAT",
        "PLC", "PCN", "POBOX", "ADDCODE",
    }
)  # fmt: skip
"""Civic address element names (CAtypes)."""

_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")


@dataclass(frozen=True, slots=True)
class Point:
    """A GML point (``gml:Point`` with ``gml:pos``): WGS 84 latitude, longitude [altitude]."""

    latitude: float
    """Degrees north."""
    longitude: float
    """Degrees east."""
    altitude: float | None = None
    """Metres, with the 3D reference system."""
    srs_name: str = WGS84_2D
    """Coordinate reference system URN."""


@dataclass(frozen=True, slots=True)
class CivicAddress:
    """``ca:civicAddress``: CAtype fields in document order, e.g. ``(("country", "DE"),)``."""

    fields: tuple[tuple[str, str], ...] = ()
    """(element name from :data:`CIVIC_FIELDS`, value) pairs."""


@dataclass(frozen=True, slots=True)
class UsageRules:
    """``gp:usage-rules`` (RFC 4119 basic policy)."""

    retransmission_allowed: bool | None = None
    """May the recipient pass the location on."""
    retention_expiry: datetime | None = None
    """Until when the recipient may keep it."""
    external_ruleset: str | None = None
    """URI of fuller rules."""
    note_well: str | None = None
    """Free text for the recipient."""


@dataclass(frozen=True, slots=True)
class Geopriv:
    """``gp:geopriv``: a location and the rules for its use."""

    point: Point | None = None
    """Geodetic location."""
    civic: CivicAddress | None = None
    """Civic location."""
    usage_rules: UsageRules = field(default_factory=UsageRules)
    """Usage rules (always present in the element, possibly empty)."""
    method: str | None = None
    """How the location was found (``GPS``, ``Cell``, ``Wiremap``...)."""
    provided_by: bytes | None = None
    """``gp:provided-by`` kept as exclusive C14N."""
    location_extensions: tuple[bytes, ...] = ()
    """Other ``location-info`` children (other shapes), exclusive C14N."""
    extensions: tuple[bytes, ...] = ()
    """Extension children of ``gp:geopriv``, exclusive C14N."""


# --- parsing --------------------------------------------------------------------------


def _number(text: str, what: str) -> float:
    if not _DECIMAL.match(text):
        raise DocumentError(f"bad {what}: {text!r}")
    value = float(text)
    if not math.isfinite(value):
        raise DocumentError(f"bad {what}: {text!r}")
    return value


def _parse_point(el: etree._Element) -> Point | None:
    kids = list(el)
    if len(kids) != 1 or kids[0].tag != clark(GML_NS, "pos") or len(kids[0]):
        return None
    parts = (kids[0].text or "").split()
    if len(parts) not in (2, 3):
        raise DocumentError("bad gml:pos")
    lat = _number(parts[0], "latitude")
    lon = _number(parts[1], "longitude")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise DocumentError("gml:pos out of range")
    alt = _number(parts[2], "altitude") if len(parts) == 3 else None
    return Point(lat, lon, alt, el.get("srsName") or (WGS84_3D if alt is not None else WGS84_2D))


def _parse_civic(el: etree._Element) -> CivicAddress | None:
    fields: list[tuple[str, str]] = []
    for child in el:
        ns, local = split_clark(child.tag)
        if ns != CIVIC_NS or local not in CIVIC_FIELDS or len(child) or child.attrib:
            return None
        fields.append((local, child.text or ""))
    return CivicAddress(tuple(fields))


def _parse_usage_rules(el: etree._Element) -> UsageRules:
    retransmission: bool | None = None
    expiry: datetime | None = None
    ruleset: str | None = None
    note: str | None = None
    for child in el:
        ns, local = split_clark(child.tag)
        if ns != GBP_NS:
            continue  # extension rules: not modelled
        text = child.text or ""
        if local == "retransmission-allowed":
            retransmission = parse_bool(text, "retransmission-allowed")
        elif local == "retention-expiry":
            expiry = parse_datetime(text, "retention-expiry")
        elif local == "external-ruleset":
            ruleset = text.strip()
        elif local == "note-well":
            note = text
        else:
            raise DocumentError(f"unexpected element in usage-rules: {local}")
    return UsageRules(retransmission, expiry, ruleset, note)


def parse_geopriv(element: etree._Element) -> Geopriv:
    """Model of one ``gp:geopriv`` element."""
    point: Point | None = None
    civic: CivicAddress | None = None
    rules: UsageRules | None = None
    method: str | None = None
    provided_by: bytes | None = None
    location_extensions: list[bytes] = []
    extensions: list[bytes] = []
    seen_info = False
    for child in element:
        ns, local = split_clark(child.tag)
        if ns != GEOPRIV_NS:
            extensions.append(canonical(child))
        elif local == "location-info" and not seen_info:
            seen_info = True
            for item in child:
                if item.tag == clark(GML_NS, "Point") and point is None:
                    point = _parse_point(item)
                    if point is not None:
                        continue
                elif item.tag == clark(CIVIC_NS, "civicAddress") and civic is None:
                    civic = _parse_civic(item)
                    if civic is not None:
                        continue
                location_extensions.append(canonical(item))
        elif local == "usage-rules" and rules is None:
            rules = _parse_usage_rules(child)
        elif local == "method" and method is None:
            method = (child.text or "").strip()
        elif local == "provided-by" and provided_by is None:
            provided_by = canonical(child)
        else:
            raise DocumentError(f"unexpected element in geopriv: {local}")
    if not seen_info:
        raise DocumentError("geopriv without location-info")
    if rules is None:
        raise DocumentError("geopriv without usage-rules")
    return Geopriv(
        point, civic, rules, method, provided_by, tuple(location_extensions), tuple(extensions)
    )


# --- building -------------------------------------------------------------------------


def _format_number(value: float, what: str) -> str:
    if not math.isfinite(value):
        raise DocumentError(f"bad {what}")
    return repr(float(value))


def build_geopriv(parent: etree._Element, geo: Geopriv) -> None:
    """Append ``gp:geopriv`` for ``geo`` under ``parent``."""
    el = etree.SubElement(parent, clark(GEOPRIV_NS, "geopriv"))
    info = etree.SubElement(el, clark(GEOPRIV_NS, "location-info"))
    if geo.point is not None:
        p = geo.point
        if not (-90.0 <= p.latitude <= 90.0 and -180.0 <= p.longitude <= 180.0):
            raise DocumentError("gml:pos out of range")
        point = etree.SubElement(info, clark(GML_NS, "Point"))
        point.set("srsName", p.srs_name)
        coords = [_format_number(p.latitude, "latitude"), _format_number(p.longitude, "longitude")]
        if p.altitude is not None:
            coords.append(_format_number(p.altitude, "altitude"))
        etree.SubElement(point, clark(GML_NS, "pos")).text = " ".join(coords)
    if geo.civic is not None:
        civic = etree.SubElement(info, clark(CIVIC_NS, "civicAddress"))
        for name, value in geo.civic.fields:
            if name not in CIVIC_FIELDS:
                raise DocumentError(f"unknown civic address field: {name}")
            etree.SubElement(civic, clark(CIVIC_NS, name)).text = value
    for data in geo.location_extensions:
        info.append(element_from_bytes(data))
    rules = etree.SubElement(el, clark(GEOPRIV_NS, "usage-rules"))
    r = geo.usage_rules
    if r.retransmission_allowed is not None:
        etree.SubElement(rules, clark(GBP_NS, "retransmission-allowed")).text = format_bool(
            r.retransmission_allowed
        )
    if r.retention_expiry is not None:
        etree.SubElement(rules, clark(GBP_NS, "retention-expiry")).text = format_datetime(
            r.retention_expiry
        )
    if r.external_ruleset is not None:
        etree.SubElement(rules, clark(GBP_NS, "external-ruleset")).text = r.external_ruleset
    if r.note_well is not None:
        etree.SubElement(rules, clark(GBP_NS, "note-well")).text = r.note_well
    if geo.method is not None:
        etree.SubElement(el, clark(GEOPRIV_NS, "method")).text = geo.method
    if geo.provided_by is not None:
        provided = element_from_bytes(geo.provided_by)
        if provided.tag != clark(GEOPRIV_NS, "provided-by"):
            raise DocumentError("provided-by must be a gp:provided-by element")
        el.append(provided)
    for data in geo.extensions:
        el.append(element_from_bytes(data))
