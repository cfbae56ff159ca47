"""What an external source may submit, and how it becomes a PIDF person, sans-IO.

A submission (version 1) is one JSON object::

    {
      "presentity": "sip:bob@home1.net",
      "activities": ["meeting"],            RPID activities (RFC 4480 names)
      "note": "Design review",              free text, at most 200 characters
      "mood": ["happy"],                    RPID moods
      "place_type": ["office"],             RFC 4589 place types
      "sphere": "work",                     home | work | unknown
      "location": {"lat": 52.52, "lon": 13.40, "radius": 25},   GEOPRIV point (circle)
      "from": "2024-05-01T14:00:00+02:00",  when it starts to hold (optional)
      "until": "2024-05-01T15:00:00+02:00", when it stops holding (optional)
      "expires": 3600                       seconds it holds (default: until, or default_ttl)
    }

or ``{"presentity": ..., "clear": true}`` to withdraw what the source set, or
``{"presentity": ..., "calendar": "BEGIN:VCALENDAR..."}`` (see
:mod:`.icalendar`): then the PEA itself follows the calendar.

Checks, in this order: the body is a JSON object with a presentity (else
400); the source may set that presentity and every attribute present
(``place_type`` is the attribute ``place-type``; a calendar needs
``activities``) (else 403); every value is valid (else 400).  Unknown keys
are invalid.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from lxml import etree

from ...documents import pidf
from ...documents.geopriv import GML_NS, Geopriv, Point, UsageRules
from ...documents.rpid import ACTIVITIES, MOODS, Activities, Mood, Note, PlaceType, Sphere
from ...documents.xml import DocumentError, canonical, clark, parse_datetime
from .auth import SourcePolicy
from .errors import PeaError
from .icalendar import Calendar, busy_at, parse_calendar

__all__ = [
    "PLACE_TYPES",
    "PersonAttributes",
    "Submission",
    "attribute_keys",
    "calendar_attributes",
    "check_scope",
    "person_element",
    "read_submission",
    "validate",
]

PLACE_TYPES: Final = frozenset(
    {
        "aircraft", "airport", "arena", "automobile", "bank", "bar", "bicycle", "bus",
        "bus-station", "cafe", "classroom", "club", "construction", "convention-center",
        "government", "hospital", "hotel", "industrial", "library", "motorcycle", "office",
        "outdoors", "parking", "place-of-worship", "prison", "public", "public-transport",
        "residence", "restaurant", "school", "shopping-area", "stadium", "store", "street",
        "theater", "train", "train-station", "truck", "underway", "unknown", "warehouse",
        "water", "watercraft",
    }
)  # fmt: skip
"""RFC 4589 location types accepted in ``place_type``."""

_ATTRIBUTE_OF: Final[dict[str, str]] = {
    "activities": "activities",
    "note": "note",
    "mood": "mood",
    "place_type": "place-type",
    "sphere": "sphere",
    "location": "location",
    "calendar": "activities",
}
_CONTROL: Final = frozenset({"presentity", "from", "until", "expires", "clear", "v"})
NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters an XML 1.0 document cannot hold (a PIDF note would be refused by lxml)."""
_MAX_NOTE: Final = 200
GS_NS: Final = "http://www.opengis.net/pidflo/1.0"


@dataclass(frozen=True, slots=True)
class PersonAttributes:
    """The person attributes one source sets for one presentity."""

    activities: tuple[str, ...] = ()
    """RPID activities."""
    note: str | None = None
    """A dm:note."""
    mood: tuple[str, ...] = ()
    """RPID moods."""
    place_type: tuple[str, ...] = ()
    """RFC 4589 place types."""
    sphere: str | None = None
    """home | work | unknown."""
    location: tuple[float, float, float | None] | None = None
    """(latitude, longitude, radius in metres or None)."""
    valid_from: datetime | None = None
    """RPID ``from`` of the activities."""
    until: datetime | None = None
    """RPID ``until`` of the activities."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A checked submission."""

    presentity: str
    """The presentity (as the source named it, checked against its scope)."""
    attributes: PersonAttributes | None = None
    """What to publish (None with ``clear`` or ``calendar``)."""
    calendar: Calendar | None = None
    """A calendar to follow."""
    expires_at: float | None = None
    """When it stops holding (seconds), None: until replaced (calendars)."""
    clear: bool = False
    """Withdraw what the source set."""


def read_submission(body: bytes) -> dict[str, Any]:
    """The JSON object of a submission (400 otherwise)."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PeaError(400, "invalid", "body is not JSON") from None
    if not isinstance(value, dict):
        raise PeaError(400, "invalid", "body is not a JSON object")
    presentity = value.get("presentity")
    if not isinstance(presentity, str) or not presentity.strip():
        raise PeaError(400, "invalid", "presentity missing")
    return value


def attribute_keys(raw: Mapping[str, Any]) -> set[str]:
    """The person attributes a submission touches."""
    return {_ATTRIBUTE_OF[k] for k in raw if k in _ATTRIBUTE_OF}


def check_scope(raw: Mapping[str, Any], source: SourcePolicy, canonical_presentity: str | None) -> None:
    """403 unless ``source`` may set this presentity and every attribute present.

    ``canonical_presentity`` is the presentity as the network knows it (None
    when unknown); the source's patterns are checked against what it wrote
    and against the canonical form, and both must match.
    """
    named = str(raw["presentity"]).strip()
    if not source.may_set(named) or (
        canonical_presentity is not None and not source.may_set(canonical_presentity)
    ):
        raise PeaError(403, "presentity_not_allowed", f"source {source.id} may not set {named[:60]}")
    over = attribute_keys(raw) - source.attributes
    if over:
        raise PeaError(403, "attribute_not_allowed", f"source {source.id} may not set {', '.join(sorted(over))}")


def _names(raw: Mapping[str, Any], key: str, allowed: frozenset[str]) -> tuple[str, ...]:
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PeaError(400, "invalid", f"{key} must be a list of names")
    if len(value) > 8 or len(set(value)) != len(value):
        raise PeaError(400, "invalid", f"{key}: too many or repeated values")
    bad = [v for v in value if v not in allowed]
    if bad:
        raise PeaError(400, "invalid", f"{key}: unknown value {bad[0][:30]!r}")
    return tuple(value)


def _time(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PeaError(400, "invalid", f"{key} must be a date-time string")
    try:
        moment = parse_datetime(value, key)
    except DocumentError as exc:
        raise PeaError(400, "invalid", exc.reason) from None
    if moment.tzinfo is None:
        raise PeaError(400, "invalid", f"{key} needs a time zone offset")
    return moment.astimezone(UTC)


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PeaError(400, "invalid", f"{what} must be a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise PeaError(400, "invalid", f"{what} out of range")
    return number


def validate(raw: Mapping[str, Any], now: float, *, default_ttl: int, max_ttl: int) -> Submission:
    """The checked submission (400 when a value is wrong)."""
    unknown = set(raw) - set(_ATTRIBUTE_OF) - _CONTROL
    if unknown:
        raise PeaError(400, "invalid", f"unknown field {sorted(unknown)[0][:30]!r}")
    if raw.get("v", 1) != 1:
        raise PeaError(400, "invalid", "unsupported submission version")
    presentity = str(raw["presentity"]).strip()
    if not presentity.startswith(("sip:", "sips:", "tel:")):
        raise PeaError(400, "invalid", "presentity must be a sip: or tel: URI")
    expires = raw.get("expires")
    if expires is not None:
        if isinstance(expires, bool) or not isinstance(expires, int) or not 1 <= expires <= max_ttl:
            raise PeaError(400, "invalid", f"expires must be 1..{max_ttl} seconds")
    clear = raw.get("clear", False)
    if not isinstance(clear, bool):
        raise PeaError(400, "invalid", "clear must be true or false")
    if clear:
        if set(raw) - {"presentity", "clear", "v"}:
            raise PeaError(400, "invalid", "clear takes no other field")
        return Submission(presentity, clear=True)
    if "calendar" in raw:
        text = raw["calendar"]
        if not isinstance(text, str):
            raise PeaError(400, "invalid", "calendar must be iCalendar text")
        if set(raw) - {"presentity", "calendar", "expires", "v"}:
            raise PeaError(400, "invalid", "calendar takes only presentity and expires")
        calendar = parse_calendar(text)
        hold = float(expires if expires is not None else max_ttl)
        return Submission(presentity, calendar=calendar, expires_at=now + hold)
    note = raw.get("note")
    if note is not None and (not isinstance(note, str) or not note.strip() or len(note) > _MAX_NOTE):
        raise PeaError(400, "invalid", f"note must be 1..{_MAX_NOTE} characters")
    if isinstance(note, str) and NOT_XML_TEXT.search(note):
        raise PeaError(400, "invalid", "note holds a character XML cannot carry (a control character)")
    sphere = raw.get("sphere")
    if sphere is not None and sphere not in ("home", "work", "unknown"):
        raise PeaError(400, "invalid", "sphere must be home, work or unknown")
    location: tuple[float, float, float | None] | None = None
    if "location" in raw:
        loc = raw["location"]
        if not isinstance(loc, dict) or set(loc) - {"lat", "lon", "radius"} or not {"lat", "lon"} <= set(loc):
            raise PeaError(400, "invalid", "location needs lat and lon (and may have radius)")
        radius = loc.get("radius")
        location = (
            _number(loc["lat"], "lat", -90, 90),
            _number(loc["lon"], "lon", -180, 180),
            None if radius is None else _number(radius, "radius", 0, 1e7),
        )
    valid_from = _time(raw, "from")
    until = _time(raw, "until")
    if until is not None and until.timestamp() <= now:
        raise PeaError(400, "invalid", "until is in the past")
    if valid_from is not None and until is not None and valid_from >= until:
        raise PeaError(400, "invalid", "from is not before until")
    attributes = PersonAttributes(
        activities=_names(raw, "activities", ACTIVITIES),
        note=note.strip() if isinstance(note, str) else None,
        mood=_names(raw, "mood", MOODS),
        place_type=_names(raw, "place_type", PLACE_TYPES),
        sphere=sphere,
        location=location,
        valid_from=valid_from,
        until=until,
    )
    if not any(
        (attributes.activities, attributes.note, attributes.mood, attributes.place_type,
         attributes.sphere, attributes.location)
    ):  # fmt: skip
        raise PeaError(400, "invalid", "nothing to publish")
    if expires is not None:
        expires_at = now + expires
        if until is not None:
            expires_at = min(expires_at, until.timestamp())
    elif until is not None:
        expires_at = min(until.timestamp(), now + max_ttl)
    else:
        expires_at = now + default_ttl
    return Submission(presentity, attributes, expires_at=expires_at)


def calendar_attributes(calendar: Calendar, now: float, *, with_note: bool) -> tuple[PersonAttributes | None, float | None]:
    """What a calendar says at ``now`` (None when free) and when that changes (seconds)."""
    busy = busy_at(calendar, datetime.fromtimestamp(now, UTC))
    change = busy.next_change.timestamp() if busy.next_change is not None else None
    if busy.event is None:
        return None, change
    # an event's summary is a calendar's free text: what XML cannot carry is left out
    summary = NOT_XML_TEXT.sub("", busy.event.summary).strip()
    note = summary if with_note and summary else None
    attrs = PersonAttributes(
        activities=(busy.event.activity,),
        note=note,
        valid_from=busy.start.astimezone(UTC) if busy.start is not None else None,
        until=busy.end.astimezone(UTC) if busy.end is not None else None,
    )
    return attrs, change


def _seconds(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(microsecond=0)


def person_element(source_id: str, attrs: PersonAttributes, received_at: float) -> pidf.Person:
    """The dm:person one source contributes (id ``pea-<source>``)."""
    activities = None
    if attrs.activities:
        activities = Activities(
            attrs.activities, from_=_seconds(attrs.valid_from), until=_seconds(attrs.until)
        )
    location = None
    if attrs.location is not None:
        lat, lon, radius = attrs.location
        rules = UsageRules(retransmission_allowed=False)
        if radius is None:
            location = Geopriv(point=Point(lat, lon), usage_rules=rules)
        else:
            circle = etree.Element(clark(GS_NS, "Circle"), nsmap={"gs": GS_NS, "gml": GML_NS})
            circle.set("srsName", "urn:ogc:def:crs:EPSG::4326")
            etree.SubElement(circle, clark(GML_NS, "pos")).text = f"{lat!r} {lon!r}"
            r = etree.SubElement(circle, clark(GS_NS, "radius"))
            r.set("uom", "urn:ogc:def:uom:EPSG::9001")
            r.text = f"{radius:g}"
            location = Geopriv(usage_rules=rules, location_extensions=(canonical(circle),))
    return pidf.Person(
        f"pea-{source_id}",
        activities=activities,
        mood=Mood(attrs.mood) if attrs.mood else None,
        place_type=PlaceType(attrs.place_type) if attrs.place_type else None,
        sphere=Sphere(attrs.sphere) if attrs.sphere else None,
        location=location,
        notes=(Note(attrs.note),) if attrs.note else (),
        timestamp=datetime.fromtimestamp(int(received_at), UTC),
    )
