"""Pl: OMA Mobile Location Protocol (MLP 3.x) location reports from the GMLC.

The GMLC reports where a subscriber is with a standard location answer or
report (``slia``, ``slirep``; ``tlrep`` for triggered reports), usually
wrapped in ``svc_result``::

    <svc_result ver="3.2.0">
      <slirep ver="3.2.0">
        <req_id>25267</req_id>
        <pos>
          <msid type="MSISDN">15550001</msid>
          <pd>
            <time utc_off="+0000">20240501120000</time>
            <shape><Point><coord><X>52 31 12.000N</X><Y>13 24 36.000E</Y></coord></Point></shape>
          </pd>
          <pos_method>GPS</pos_method>
        </pos>
      </slirep>
    </svc_result>

Supported shapes: ``Point`` and ``CircularArea`` (centre and radius in
metres).  Coordinates are read in the MLP degrees-minutes-seconds form
(``52 31 12.000N``) or as signed decimal degrees (``52.52``); ``Z`` or
``pd/alt`` is the altitude in metres.  A ``pos`` with ``poserr`` instead of
``pd`` is kept with its result code.  A ``<!DOCTYPE ...>`` naming the MLP DTD
is allowed (MLP documents carry one) but must not have an internal subset;
everything is parsed by the hardened parser of :mod:`presence_ims.documents.xml`.

Sans-IO; every bad document is an :class:`ElementError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, Literal

from lxml import etree

from ..documents.xml import DocumentError, parse_xml
from .errors import ElementError

__all__ = [
    "MAX_SIZE",
    "LocationReport",
    "Position",
    "ReportKind",
    "build_report",
    "build_result",
    "format_dms",
    "parse_coordinate",
    "parse_report",
]

MAX_SIZE: Final = 32 * 1024
"""Largest MLP document accepted, bytes."""

ReportKind = Literal["slia", "slirep", "tlrep"]
_KINDS: Final[tuple[ReportKind, ...]] = ("slia", "slirep", "tlrep")
_DOCTYPE = re.compile(rb"<!DOCTYPE\s+[A-Za-z_][\w.-]*(?:\s+(?:SYSTEM|PUBLIC)(?:\s+\"[^\"<>\[\]]*\"){1,2})?\s*>")
_DMS = re.compile(r"\s*(\d{1,3})\s+(\d{1,2})\s+(\d{1,2}(?:\.\d{1,6})?)\s*([NSEW])\s*\Z")
_DECIMAL = re.compile(r"\s*[+-]?\d{1,3}(?:\.\d{1,12})?\s*\Z")
_MLP_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})\Z")
_UTC_OFF = re.compile(r"([+-])(\d{2})(\d{2})\Z")
_TEXT = re.compile(r"[ -~]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class Position:
    """One ``pos``: a subscriber and where it is (or why that is unknown)."""

    msid: str
    """Subscriber identity (``msid`` text)."""
    msid_type: str = "MSISDN"
    """``msid/@type`` (MSISDN, IMSI, SIP_URI ...)."""
    latitude: float | None = None
    """Degrees north (WGS 84)."""
    longitude: float | None = None
    """Degrees east."""
    altitude: float | None = None
    """Metres."""
    radius: float | None = None
    """Uncertainty radius (``CircularArea``), metres."""
    time: datetime | None = None
    """When the position was determined (aware, UTC)."""
    method: str | None = None
    """``pos_method`` (GPS, A-GPS, CELL, OTDOA ...)."""
    error: str | None = None
    """``poserr/result`` text (and ``resid``) when there is no position."""

    @property
    def has_position(self) -> bool:
        """A latitude and longitude are known."""
        return self.latitude is not None and self.longitude is not None


@dataclass(frozen=True, slots=True)
class LocationReport:
    """A parsed location answer or report."""

    kind: ReportKind
    """slia | slirep | tlrep."""
    positions: tuple[Position, ...]
    """The ``pos`` elements."""
    req_id: str | None = None
    """``req_id`` of the request being answered, when given."""
    version: str | None = None
    """``ver`` attribute."""


def parse_coordinate(text: str, axis: Literal["lat", "lon"]) -> float:
    """A latitude or longitude from MLP DMS text or decimal degrees."""
    limit = 90.0 if axis == "lat" else 180.0
    match = _DMS.match(text)
    if match is not None:
        deg, minutes, seconds, hemi = match.groups()
        if hemi not in (("N", "S") if axis == "lat" else ("E", "W")):
            raise ElementError(f"bad {axis} hemisphere in {text.strip()!r}")
        if int(minutes) >= 60 or float(seconds) >= 60:
            raise ElementError(f"bad {axis} {text.strip()!r}")
        value = int(deg) + int(minutes) / 60 + float(seconds) / 3600
        if hemi in ("S", "W"):
            value = -value
    elif _DECIMAL.match(text):
        value = float(text)
    else:
        raise ElementError(f"bad {axis} {text.strip()[:40]!r}")
    if not math.isfinite(value) or abs(value) > limit:
        raise ElementError(f"{axis} out of range")
    return value


def format_dms(value: float, axis: Literal["lat", "lon"]) -> str:
    """MLP DMS text (``52 31 12.000N``) for a latitude or longitude."""
    limit = 90.0 if axis == "lat" else 180.0
    if not math.isfinite(value) or abs(value) > limit:
        raise ElementError(f"{axis} out of range", "invalid")
    hemi = ("N" if value >= 0 else "S") if axis == "lat" else ("E" if value >= 0 else "W")
    total = round(abs(value) * 3600, 3)
    deg = int(total // 3600)
    minutes = int((total - deg * 3600) // 60)
    seconds = total - deg * 3600 - minutes * 60
    return f"{deg} {minutes} {seconds:06.3f}{hemi}"


def _child(el: etree._Element, tag: str) -> etree._Element | None:
    found = el.find(tag)
    return found


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    return (el.text or "").strip()


def _time(el: etree._Element | None) -> datetime | None:
    text = _text(el)
    if el is None or not text:
        return None
    match = _MLP_TIME.match(text)
    if match is None:
        raise ElementError(f"bad time {text[:20]!r}")
    offset = timedelta(0)
    off = el.get("utc_off")
    if off:
        om = _UTC_OFF.match(off.strip())
        if om is None:
            raise ElementError(f"bad utc_off {off[:10]!r}")
        sign = 1 if om.group(1) == "+" else -1
        offset = sign * timedelta(hours=int(om.group(2)), minutes=int(om.group(3)))
        if abs(offset) > timedelta(hours=14):
            raise ElementError("utc_off out of range")
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:
        raise ElementError(f"bad time {text!r}") from None
    return local.astimezone(UTC)


def _number(text: str | None, what: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise ElementError(f"bad {what}") from None
    if not math.isfinite(value):
        raise ElementError(f"bad {what}")
    return value


def _coord(el: etree._Element | None) -> tuple[float, float, float | None]:
    if el is None:
        raise ElementError("shape without coord")
    x, y = _text(_child(el, "X")), _text(_child(el, "Y"))
    if not x or not y:
        raise ElementError("coord without X and Y")
    z = _text(_child(el, "Z"))
    return parse_coordinate(x, "lat"), parse_coordinate(y, "lon"), (_number(z, "Z") if z else None)


def _position(pos: etree._Element) -> Position:
    msid_el = _child(pos, "msid")
    msid = _text(msid_el)
    if msid_el is None or not msid or not _TEXT.match(msid):
        raise ElementError("pos without a usable msid")
    msid_type = (msid_el.get("type") or "MSISDN").strip()
    method_el = pos.find(".//pos_method")
    method = _text(method_el)
    if method is not None and not _TEXT.match(method):
        raise ElementError("bad pos_method")
    err = _child(pos, "poserr")
    if err is not None:
        result = err.find("result")
        code = (result.get("resid") if result is not None else None) or "?"
        text = _text(result) or "position error"
        return Position(msid, msid_type, method=method or None, error=f"{code} {text}"[:80])
    pd = _child(pos, "pd")
    if pd is None:
        raise ElementError("pos without pd or poserr")
    shape = _child(pd, "shape")
    if shape is None or len(shape) != 1:
        raise ElementError("pd without one shape")
    geometry = shape[0]
    radius: float | None = None
    if geometry.tag == "Point":
        lat, lon, alt = _coord(_child(geometry, "coord"))
    elif geometry.tag == "CircularArea":
        lat, lon, alt = _coord(_child(geometry, "coord"))
        radius = _number(_text(_child(geometry, "radius")), "radius")
        if radius < 0:
            raise ElementError("negative radius")
    else:
        raise ElementError(f"unsupported shape {str(geometry.tag)[:30]}")
    alt_text = _text(_child(pd, "alt"))
    if alt_text:
        alt = _number(alt_text, "alt")
    return Position(
        msid,
        msid_type,
        latitude=lat,
        longitude=lon,
        altitude=alt,
        radius=radius,
        time=_time(_child(pd, "time")),
        method=method or None,
    )


def parse_report(data: bytes) -> LocationReport:
    """Parse an MLP ``svc_result`` (or a bare ``slia``/``slirep``/``tlrep``)."""
    if not isinstance(data, bytes | bytearray):
        raise ElementError("document must be bytes")
    data = bytes(data)
    if len(data) > MAX_SIZE:
        raise ElementError("document too large")
    if b"<!DOCTYPE" in data:
        cleaned, count = _DOCTYPE.subn(b"", data, count=1)
        if count != 1 or b"<!DOCTYPE" in cleaned:
            raise ElementError("DOCTYPE with an internal subset is not allowed")
        data = cleaned
    try:
        root = parse_xml(data, max_size=MAX_SIZE)
    except DocumentError as exc:
        raise ElementError(exc.reason) from None
    version = root.get("ver")
    if root.tag == "svc_result":
        inner = [c for c in root if c.tag in _KINDS]
        if len(inner) != 1:
            raise ElementError("svc_result without one slia, slirep or tlrep")
        body = inner[0]
    elif root.tag in _KINDS:
        body = root
    else:
        raise ElementError(f"not an MLP location report: {str(root.tag)[:30]}")
    kind = next(k for k in _KINDS if k == body.tag)
    positions = tuple(_position(p) for p in body.iter("pos"))
    if not positions:
        raise ElementError(f"{kind} without pos")
    if len(positions) > 64:
        raise ElementError("too many positions")
    req_id = _text(_child(body, "req_id"))
    return LocationReport(kind, positions, req_id or None, body.get("ver") or version)


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def build_report(report: LocationReport, *, version: str = "3.2.0") -> bytes:
    """An MLP ``svc_result`` document for ``report`` (the GMLC side)."""
    root = etree.Element("svc_result", ver=version)
    body = _sub(root, report.kind)
    body.set("ver", version)
    if report.req_id is not None:
        _sub(body, "req_id", report.req_id)
    for p in report.positions:
        pos = _sub(body, "pos")
        msid = _sub(pos, "msid", p.msid)
        msid.set("type", p.msid_type)
        if p.error is not None or not p.has_position:
            err = _sub(pos, "poserr")
            result = _sub(err, "result", p.error or "POSITION METHOD FAILURE")
            result.set("resid", "6")
            continue
        assert p.latitude is not None and p.longitude is not None
        pd = _sub(pos, "pd")
        if p.time is not None:
            stamp = p.time.astimezone(UTC)
            t = _sub(pd, "time", stamp.strftime("%Y%m%d%H%M%S"))
            t.set("utc_off", "+0000")
        shape = _sub(pd, "shape")
        geometry = _sub(shape, "Point" if p.radius is None else "CircularArea")
        coord = _sub(geometry, "coord")
        _sub(coord, "X", format_dms(p.latitude, "lat"))
        _sub(coord, "Y", format_dms(p.longitude, "lon"))
        if p.radius is not None:
            _sub(geometry, "radius", f"{p.radius:g}")
        if p.altitude is not None:
            _sub(pd, "alt", f"{p.altitude:g}")
        if p.method is not None:
            _sub(pos, "pos_method", p.method)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def build_result(resid: int, text: str) -> bytes:
    """The small ``svc_result`` the PNA answers a report with (``resid`` 0 = OK)."""
    root = etree.Element("svc_result", ver="3.2.0")
    result = _sub(root, "result", text)
    result.set("resid", str(resid))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
