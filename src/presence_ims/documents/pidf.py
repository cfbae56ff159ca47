"""PIDF (RFC 3863) with the presence data model (RFC 4479), RPID and GEOPRIV.

``parse(data, expected_entity=None) -> PresenceDocument`` and
``build(doc) -> bytes``. A document holds tuples (services), data-model persons
and devices, presence-level notes and extension elements. RPID attributes
(:mod:`.rpid`) and locations (:mod:`.geopriv`) are typed fields; any element of a
namespace not modelled here (timed-status, caps, OMA extensions, our provenance)
is kept as exclusive-C14N bytes in an ``extensions`` tuple so that composition
and re-publication do not lose it.

Parsing refuses: a root other than ``{urn:ietf:params:xml:ns:pidf}presence``, no
``entity``, an entity that is not the expected presentity, ids that are not XML
IDs or are repeated (tuples, persons and devices share one ID space), a ``basic``
other than open/closed, misplaced PIDF elements, and unsupported extensions
marked ``mustUnderstand``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import unquote

from lxml import etree

from . import geopriv as gp
from . import rpid
from .geopriv import Geopriv, build_geopriv, parse_geopriv
from .rpid import (
    RPID_NS,
    Activities,
    Mood,
    Note,
    PlaceIs,
    PlaceType,
    Privacy,
    Relationship,
    ServiceClass,
    Sphere,
    StatusIcon,
    TimeOffset,
    UserInput,
    build_note,
    build_rpid,
    parse_note,
    parse_rpid,
)
from .xml import (
    DEFAULT_MAX_SIZE,
    DocumentError,
    canonical,
    check_ncname,
    clark,
    element_from_bytes,
    format_datetime,
    is_ncname,
    new_root,
    parse_datetime,
    parse_xml,
    serialize,
    split_clark,
)

__all__ = [
    "CONTENT_TYPE",
    "DM_NS",
    "NEUTRAL_TUPLE_ID",
    "PIDF_NS",
    "Contact",
    "Device",
    "Person",
    "PresenceDocument",
    "PresenceTuple",
    "build",
    "neutral_document",
    "parse",
    "presentity_key",
    "same_presentity",
    "validate",
]

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
DM_NS = "urn:ietf:params:xml:ns:pidf:data-model"
CONTENT_TYPE = "application/pidf+xml"
NEUTRAL_TUPLE_ID = "t0"
"""Tuple id of the neutral (offline / polite-block) document."""

Basic = Literal["open", "closed"]


# --- models ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contact:
    """``<contact>``: how to reach the service, with an optional priority."""

    uri: str
    """Contact URI."""
    priority: float | None = None
    """0..1 with at most three decimals."""


@dataclass(frozen=True, slots=True)
class PresenceTuple:
    """A PIDF ``<tuple>``: one service of the presentity."""

    id: str
    """Tuple id (an XML ID, unique in the document)."""
    basic: Basic | None = None
    """``<status><basic>``: open | closed | None."""
    contact: Contact | None = None
    """``<contact>``."""
    notes: tuple[Note, ...] = ()
    """``<note>`` elements."""
    timestamp: datetime | None = None
    """``<timestamp>``."""
    device_ids: tuple[str, ...] = ()
    """``dm:deviceID``: devices this service runs on."""
    class_: str | None = None
    """``rpid:class``."""
    user_input: UserInput | None = None
    """``rpid:user-input``."""
    status_icon: StatusIcon | None = None
    """``rpid:status-icon``."""
    relationship: Relationship | None = None
    """``rpid:relationship``."""
    service_class: ServiceClass | None = None
    """``rpid:service-class``."""
    location: Geopriv | None = None
    """``gp:geopriv`` inside ``<status>`` (RFC 4119 placement)."""
    status_extensions: tuple[bytes, ...] = ()
    """Other extension elements inside ``<status>`` (exclusive C14N)."""
    extensions: tuple[bytes, ...] = ()
    """Extension elements of the tuple (timed-status, caps, ...; exclusive C14N)."""


@dataclass(frozen=True, slots=True)
class Person:
    """``dm:person``: the human user and their RPID attributes."""

    id: str
    """Person id (an XML ID)."""
    activities: Activities | None = None
    """``rpid:activities``."""
    class_: str | None = None
    """``rpid:class``."""
    mood: Mood | None = None
    """``rpid:mood``."""
    place_is: PlaceIs | None = None
    """``rpid:place-is``."""
    place_type: PlaceType | None = None
    """``rpid:place-type``."""
    privacy: Privacy | None = None
    """``rpid:privacy``."""
    sphere: Sphere | None = None
    """``rpid:sphere``."""
    status_icon: StatusIcon | None = None
    """``rpid:status-icon``."""
    time_offset: TimeOffset | None = None
    """``rpid:time-offset``."""
    user_input: UserInput | None = None
    """``rpid:user-input``."""
    location: Geopriv | None = None
    """``gp:geopriv``: where the person is."""
    notes: tuple[Note, ...] = ()
    """``dm:note`` elements."""
    timestamp: datetime | None = None
    """``dm:timestamp``."""
    extensions: tuple[bytes, ...] = ()
    """Extension elements (exclusive C14N)."""


@dataclass(frozen=True, slots=True)
class Device:
    """``dm:device``: a device of the presentity."""

    id: str
    """Device element id (an XML ID)."""
    device_id: str
    """``dm:deviceID``: the device's URN."""
    class_: str | None = None
    """``rpid:class``."""
    user_input: UserInput | None = None
    """``rpid:user-input``."""
    location: Geopriv | None = None
    """``gp:geopriv``."""
    notes: tuple[Note, ...] = ()
    """``dm:note`` elements."""
    timestamp: datetime | None = None
    """``dm:timestamp``."""
    extensions: tuple[bytes, ...] = ()
    """Extension elements (exclusive C14N)."""


@dataclass(frozen=True, slots=True)
class PresenceDocument:
    """A PIDF ``<presence>`` document."""

    entity: str
    """The presentity URI."""
    tuples: tuple[PresenceTuple, ...] = ()
    """Services."""
    persons: tuple[Person, ...] = ()
    """Persons."""
    devices: tuple[Device, ...] = ()
    """Devices."""
    notes: tuple[Note, ...] = ()
    """Presence-level ``<note>`` elements."""
    extensions: tuple[bytes, ...] = ()
    """Presence-level extension elements (exclusive C14N)."""


def neutral_document(entity: str) -> PresenceDocument:
    """What a watcher sees of a presentity that is offline with nothing published.

    One tuple, basic closed, nothing else. The polite-block document and every
    transformation that leaves nothing visible are this same document.
    """
    return PresenceDocument(entity, (PresenceTuple(NEUTRAL_TUPLE_ID, "closed"),))


# --- presentity URI comparison --------------------------------------------------------

_SIP_LIKE = frozenset({"sip", "sips", "pres"})


def presentity_key(uri: str) -> tuple[str, ...]:
    """A comparison key: sip, sips and pres URIs of one user@host compare equal.

    User part: case-sensitive after %-decoding; host: case-insensitive; port kept;
    URI parameters and headers ignored (RFC 3261 19.1.4 in spirit). tel URIs
    compare by number without visual separators. Other schemes compare exactly
    (scheme case-insensitive).
    """
    text = uri.strip()
    scheme, sep, rest = text.partition(":")
    if not sep:
        return ("", text)
    scheme = scheme.lower()
    if scheme in _SIP_LIKE:
        rest = rest.split("?", 1)[0]
        userinfo, at, hostport = rest.rpartition("@")
        if not at:
            userinfo, hostport = "", rest
        hostport = hostport.split(";", 1)[0]
        user = unquote(userinfo.split(":", 1)[0])
        if hostport.startswith("["):
            host, _, port = hostport.partition("]")
            host += "]"
            port = port[1:] if port.startswith(":") else ""
        else:
            host, _, port = hostport.partition(":")
        return ("sip", user, unquote(host).lower().rstrip("."), port)
    if scheme == "tel":
        number = rest.split(";", 1)[0]
        return ("tel", re.sub(r"[-.()]", "", number).lower())
    return (scheme, rest)


def same_presentity(a: str, b: str) -> bool:
    """Whether two URIs name the same presentity (see :func:`presentity_key`)."""
    return presentity_key(a) == presentity_key(b)


# --- parsing --------------------------------------------------------------------------

_PRIORITY = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\Z")
_MUST_UNDERSTAND = (clark(PIDF_NS, "mustUnderstand"), "mustUnderstand")

_TUPLE_RPID = frozenset({"class_", "user_input", "status_icon", "relationship", "service_class"})
_PERSON_RPID = frozenset(
    {
        "activities", "class_", "mood", "place_is", "place_type", "privacy", "sphere",
        "status_icon", "time_offset", "user_input",
    }
)  # fmt: skip
_DEVICE_RPID = frozenset({"class_", "user_input"})

_T_STATUS = clark(PIDF_NS, "status")
_T_BASIC = clark(PIDF_NS, "basic")
_T_CONTACT = clark(PIDF_NS, "contact")
_T_NOTE = clark(PIDF_NS, "note")
_T_TIMESTAMP = clark(PIDF_NS, "timestamp")
_T_TUPLE = clark(PIDF_NS, "tuple")
_T_PRESENCE = clark(PIDF_NS, "presence")
_T_PERSON = clark(DM_NS, "person")
_T_DEVICE = clark(DM_NS, "device")
_T_DEVICE_ID = clark(DM_NS, "deviceID")
_T_DM_NOTE = clark(DM_NS, "note")
_T_DM_TIMESTAMP = clark(DM_NS, "timestamp")
_T_GEOPRIV = clark(gp.GEOPRIV_NS, "geopriv")


def _extension(el: etree._Element) -> bytes:
    for attr in _MUST_UNDERSTAND:
        if el.get(attr) in ("true", "1"):
            raise DocumentError(f"unsupported mustUnderstand extension: {el.tag}")
    return canonical(el)


def _text(el: etree._Element, what: str) -> str:
    if len(el):
        raise DocumentError(f"{what} must be text only")
    return (el.text or "").strip()


def _rpid_into(
    fields: dict[str, object], el: etree._Element, allowed: frozenset[str], extensions: list[bytes]
) -> None:
    name, value = parse_rpid(el)
    if name not in allowed:
        extensions.append(canonical(el))  # a known RPID element where it has no meaning
        return
    if name in fields:
        raise DocumentError(f"duplicate rpid:{rpid.FIELD_ELEMENTS[name]}")
    fields[name] = value


def _parse_tuple(el: etree._Element) -> PresenceTuple:
    ident = el.get("id")
    if not ident:
        raise DocumentError("PIDF tuple has no id")
    check_ncname(ident, "tuple id")
    basic: Basic | None = None
    location: Geopriv | None = None
    status_ext: list[bytes] = []
    contact: Contact | None = None
    notes: list[Note] = []
    timestamp: datetime | None = None
    device_ids: list[str] = []
    fields: dict[str, object] = {}
    extensions: list[bytes] = []
    seen_status = False
    for child in el:
        tag = child.tag
        if tag == _T_STATUS:
            if seen_status:
                raise DocumentError(f"tuple {ident} has two status elements")
            seen_status = True
            for item in child:
                if item.tag == _T_BASIC and basic is None:
                    value = _text(item, "basic")
                    if value == "open":
                        basic = "open"
                    elif value == "closed":
                        basic = "closed"
                    else:
                        raise DocumentError(f"bad basic status: {value!r}")
                elif item.tag == _T_GEOPRIV and location is None:
                    location = parse_geopriv(item)
                elif split_clark(item.tag)[0] == PIDF_NS:
                    raise DocumentError(f"unexpected element in status: {item.tag}")
                else:
                    status_ext.append(_extension(item))
        elif tag == _T_CONTACT:
            if contact is not None:
                raise DocumentError(f"tuple {ident} has two contacts")
            uri = _text(child, "contact")
            if not uri:
                raise DocumentError("empty contact")
            prio_text = child.get("priority")
            priority = None
            if prio_text is not None:
                if not _PRIORITY.match(prio_text.strip()):
                    raise DocumentError(f"bad contact priority: {prio_text!r}")
                priority = float(prio_text)
            contact = Contact(uri, priority)
        elif tag == _T_NOTE:
            notes.append(parse_note(child))
        elif tag == _T_TIMESTAMP:
            if timestamp is not None:
                raise DocumentError(f"tuple {ident} has two timestamps")
            timestamp = parse_datetime(_text(child, "timestamp"), "timestamp")
        elif tag == _T_DEVICE_ID:
            value = _text(child, "deviceID")
            if not value:
                raise DocumentError("empty deviceID")
            device_ids.append(value)
        else:
            ns = split_clark(tag)[0]
            if ns == PIDF_NS:
                raise DocumentError(f"unexpected element in tuple: {tag}")
            if ns == RPID_NS:
                _rpid_into(fields, child, _TUPLE_RPID, extensions)
            else:
                extensions.append(_extension(child))
    if not seen_status:
        raise DocumentError(f"tuple {ident} has no status")
    return PresenceTuple(
        id=ident,
        basic=basic,
        contact=contact,
        notes=tuple(notes),
        timestamp=timestamp,
        device_ids=tuple(device_ids),
        location=location,
        status_extensions=tuple(status_ext),
        extensions=tuple(extensions),
        **fields,  # type: ignore[arg-type]
    )


def _parse_dm_common(
    el: etree._Element,
    what: str,
    allowed: frozenset[str],
) -> tuple[str, dict[str, object], list[Note], datetime | None, list[bytes], list[str]]:
    ident = el.get("id")
    if not ident:
        raise DocumentError(f"{what} has no id")
    check_ncname(ident, f"{what} id")
    fields: dict[str, object] = {}
    notes: list[Note] = []
    timestamp: datetime | None = None
    extensions: list[bytes] = []
    device_ids: list[str] = []
    for child in el:
        tag = child.tag
        if tag == _T_DM_NOTE:
            notes.append(parse_note(child))
        elif tag == _T_DM_TIMESTAMP:
            if timestamp is not None:
                raise DocumentError(f"{what} {ident} has two timestamps")
            timestamp = parse_datetime(_text(child, "timestamp"), "timestamp")
        elif tag == _T_DEVICE_ID and what == "device":
            value = _text(child, "deviceID")
            if not value:
                raise DocumentError("empty deviceID")
            device_ids.append(value)
        elif tag == _T_GEOPRIV:
            if "location" in fields:
                raise DocumentError(f"{what} {ident} has two locations")
            fields["location"] = parse_geopriv(child)
        else:
            ns = split_clark(tag)[0]
            if ns in (DM_NS, PIDF_NS):
                raise DocumentError(f"unexpected element in {what}: {tag}")
            if ns == RPID_NS:
                _rpid_into(fields, child, allowed, extensions)
            else:
                extensions.append(_extension(child))
    return ident, fields, notes, timestamp, extensions, device_ids


def _parse_person(el: etree._Element) -> Person:
    ident, fields, notes, timestamp, extensions, _ = _parse_dm_common(el, "person", _PERSON_RPID)
    return Person(
        id=ident,
        notes=tuple(notes),
        timestamp=timestamp,
        extensions=tuple(extensions),
        **fields,  # type: ignore[arg-type]
    )


def _parse_device(el: etree._Element) -> Device:
    ident, fields, notes, timestamp, extensions, ids = _parse_dm_common(el, "device", _DEVICE_RPID)
    if len(ids) != 1:
        raise DocumentError(f"device {ident} needs exactly one deviceID")
    return Device(
        id=ident,
        device_id=ids[0],
        notes=tuple(notes),
        timestamp=timestamp,
        extensions=tuple(extensions),
        **fields,  # type: ignore[arg-type]
    )


def parse(
    data: bytes, expected_entity: str | None = None, *, max_size: int = DEFAULT_MAX_SIZE
) -> PresenceDocument:
    """Parse a PIDF body; with ``expected_entity``, its entity must name that presentity."""
    return _document(parse_xml(data, max_size=max_size), expected_entity)


def validate(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> str:
    """The entity of a body that :func:`parse` accepts, without building the model.

    Accepts and refuses exactly what :func:`parse` does, with the same
    :class:`DocumentError` reason: the usual shapes (below) are checked in one walk
    that builds nothing, every other document goes through :func:`parse`'s own
    checks on the same tree. For a PUBLISH nobody watches yet, whose model is only
    needed when it is composed.
    """
    root = parse_xml(data, max_size=max_size)
    if _usual(root):
        return (root.get("entity") or "").strip()
    return _document(root, None).entity


def _document(root: etree._Element, expected_entity: str | None) -> PresenceDocument:
    if root.tag != _T_PRESENCE:
        raise DocumentError(f"not a PIDF document: root is {root.tag}")
    entity = (root.get("entity") or "").strip()
    if not entity:
        raise DocumentError("PIDF presence has no entity")
    if expected_entity is not None and not same_presentity(entity, expected_entity):
        raise DocumentError("PIDF entity does not match presentity")
    tuples: list[PresenceTuple] = []
    persons: list[Person] = []
    devices: list[Device] = []
    notes: list[Note] = []
    extensions: list[bytes] = []
    ids: set[str] = set()
    for child in root:
        tag = child.tag
        if tag == _T_TUPLE:
            item = _parse_tuple(child)
            if item.id in ids:
                raise DocumentError(f"duplicate tuple id {item.id}")
            ids.add(item.id)
            tuples.append(item)
        elif tag == _T_NOTE:
            notes.append(parse_note(child))
        elif tag == _T_PERSON:
            person = _parse_person(child)
            if person.id in ids:
                raise DocumentError(f"duplicate person id {person.id}")
            ids.add(person.id)
            persons.append(person)
        elif tag == _T_DEVICE:
            device = _parse_device(child)
            if device.id in ids:
                raise DocumentError(f"duplicate device id {device.id}")
            ids.add(device.id)
            devices.append(device)
        elif split_clark(tag)[0] in (PIDF_NS, DM_NS):
            raise DocumentError(f"unexpected element in presence: {tag}")
        else:
            extensions.append(_extension(child))
    return PresenceDocument(
        entity, tuple(tuples), tuple(persons), tuple(devices), tuple(notes), tuple(extensions)
    )


# --- the usual shapes, checked without building the model -----------------------------
#
# ``_usual(root)`` is True only for documents that ``_document`` certainly accepts:
# tuples with status/basic, contact (plain priority), notes, a timestamp and
# deviceIDs; persons with notes, a timestamp and rpid:activities (no attributes, no
# extensions); devices with their deviceID, notes and a timestamp; presence-level
# notes. Anything else (RPID elements other than activities, locations, extensions,
# attributes it does not know, a suspicious value) answers False and the document
# goes through ``_document``, which accepts or names the defect. It never raises.
# tests/property/test_pidf_validate_props.py checks that it accepts nothing ``parse``
# refuses.

_T_ACTIVITIES = clark(RPID_NS, "activities")
_RPID_PREFIX = "{" + RPID_NS + "}"
_RPID_PREFIX_LEN = len(_RPID_PREFIX)
_PRIORITY_MATCH = _PRIORITY.match
_BASIC_VALUES = frozenset({"open", "closed"})


def _usual_id(el: etree._Element, ids: set[str]) -> bool:
    ident = el.get("id")
    if not ident or ident in ids or not is_ncname(ident):
        return False
    ids.add(ident)
    return True


def _usual_timestamp(el: etree._Element) -> bool:
    if len(el):
        return False
    try:
        parse_datetime((el.text or "").strip(), "timestamp")
    except DocumentError:
        return False
    return True


def _usual_tuple(el: etree._Element, ids: set[str]) -> bool:
    if not _usual_id(el, ids):
        return False
    status = contact = timestamp = False
    for child in el:
        tag = child.tag
        if tag == _T_STATUS:
            if status:
                return False
            status = True
            basic = False
            for item in child:
                if (
                    basic
                    or item.tag != _T_BASIC
                    or len(item)
                    or (item.text or "").strip() not in _BASIC_VALUES
                ):
                    return False
                basic = True
        elif tag == _T_CONTACT:
            if contact or len(child) or not (child.text or "").strip():
                return False
            contact = True
            priority = child.get("priority")
            if priority is not None:
                if not _PRIORITY_MATCH(priority):
                    return False
                try:
                    float(priority)
                except ValueError:
                    return False
        elif tag == _T_NOTE:
            if len(child):
                return False
        elif tag == _T_TIMESTAMP:
            if timestamp or not _usual_timestamp(child):
                return False
            timestamp = True
        elif tag == _T_DEVICE_ID:
            if len(child) or not (child.text or "").strip():
                return False
        else:
            return False
    return status


def _usual_activities(el: etree._Element) -> bool:
    if el.attrib:
        return False
    seen: set[str] = set()
    other = False
    for child in el:
        tag = child.tag
        if type(tag) is not str or not tag.startswith(_RPID_PREFIX) or len(child):
            return False
        local = tag[_RPID_PREFIX_LEN:]
        if local == "note":
            continue
        if local == "other":
            other = True
        elif (
            (local in rpid.ACTIVITIES or local == "unknown")
            and local not in seen
            and not (child.text or "").strip()
        ):
            seen.add(local)
        else:
            return False
    return not ("unknown" in seen and (len(seen) > 1 or other))


def _usual_person(el: etree._Element, ids: set[str]) -> bool:
    if not _usual_id(el, ids):
        return False
    timestamp = activities = False
    for child in el:
        tag = child.tag
        if tag == _T_DM_NOTE:
            if len(child):
                return False
        elif tag == _T_DM_TIMESTAMP:
            if timestamp or not _usual_timestamp(child):
                return False
            timestamp = True
        elif tag == _T_ACTIVITIES:
            if activities or not _usual_activities(child):
                return False
            activities = True
        else:
            return False
    return True


def _usual_device(el: etree._Element, ids: set[str]) -> bool:
    if not _usual_id(el, ids):
        return False
    timestamp = device_id = False
    for child in el:
        tag = child.tag
        if tag == _T_DEVICE_ID:
            if device_id or len(child) or not (child.text or "").strip():
                return False
            device_id = True
        elif tag == _T_DM_NOTE:
            if len(child):
                return False
        elif tag == _T_DM_TIMESTAMP:
            if timestamp or not _usual_timestamp(child):
                return False
            timestamp = True
        else:
            return False
    return device_id


def _usual(root: etree._Element) -> bool:
    """Whether ``_document(root)`` certainly accepts ``root`` (see above)."""
    if root.tag != _T_PRESENCE or not (root.get("entity") or "").strip():
        return False
    ids: set[str] = set()
    for child in root:
        tag = child.tag
        if tag == _T_TUPLE:
            if not _usual_tuple(child, ids):
                return False
        elif tag == _T_PERSON:
            if not _usual_person(child, ids):
                return False
        elif tag == _T_DEVICE:
            if not _usual_device(child, ids):
                return False
        elif tag == _T_NOTE:
            if len(child):
                return False
        else:
            return False
    return True


# --- building -------------------------------------------------------------------------


def _format_priority(value: float) -> str:
    if not 0.0 <= value <= 1.0:
        raise DocumentError("contact priority out of range")
    text = f"{value:.3f}"
    if float(text) != value:
        raise DocumentError("contact priority has more than three decimals")
    text = text.rstrip("0").rstrip(".")
    return text or "0"


def _append_all(parent: etree._Element, extensions: tuple[bytes, ...]) -> None:
    for data in extensions:
        parent.append(element_from_bytes(data))


def _build_rpid_fields(parent: etree._Element, obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            build_rpid(parent, value)


_TUPLE_ORDER = ("class_", "user_input", "status_icon", "relationship", "service_class")
_PERSON_ORDER = (
    "activities", "class_", "mood", "place_is", "place_type", "privacy", "sphere",
    "status_icon", "time_offset", "user_input",
)  # fmt: skip
_DEVICE_ORDER = ("class_", "user_input")


def _build_tuple(parent: etree._Element, t: PresenceTuple) -> None:
    el = etree.SubElement(parent, _T_TUPLE)
    el.set("id", check_ncname(t.id, "tuple id"))
    status = etree.SubElement(el, _T_STATUS)
    if t.basic is not None:
        if t.basic not in ("open", "closed"):
            raise DocumentError(f"bad basic status: {t.basic!r}")
        etree.SubElement(status, _T_BASIC).text = t.basic
    if t.location is not None:
        build_geopriv(status, t.location)
    _append_all(status, t.status_extensions)
    for device_id in t.device_ids:
        if not device_id.strip():
            raise DocumentError("empty deviceID")
        etree.SubElement(el, _T_DEVICE_ID).text = device_id
    _build_rpid_fields(el, t, _TUPLE_ORDER)
    _append_all(el, t.extensions)
    if t.contact is not None:
        if not t.contact.uri.strip():
            raise DocumentError("empty contact")
        contact = etree.SubElement(el, _T_CONTACT)
        contact.text = t.contact.uri
        if t.contact.priority is not None:
            contact.set("priority", _format_priority(t.contact.priority))
    for note in t.notes:
        build_note(el, _T_NOTE, note)
    if t.timestamp is not None:
        etree.SubElement(el, _T_TIMESTAMP).text = format_datetime(t.timestamp)


def _build_person(parent: etree._Element, p: Person) -> None:
    el = etree.SubElement(parent, _T_PERSON)
    el.set("id", check_ncname(p.id, "person id"))
    _build_rpid_fields(el, p, _PERSON_ORDER)
    if p.location is not None:
        build_geopriv(el, p.location)
    _append_all(el, p.extensions)
    for note in p.notes:
        build_note(el, _T_DM_NOTE, note)
    if p.timestamp is not None:
        etree.SubElement(el, _T_DM_TIMESTAMP).text = format_datetime(p.timestamp)


def _build_device(parent: etree._Element, d: Device) -> None:
    el = etree.SubElement(parent, _T_DEVICE)
    el.set("id", check_ncname(d.id, "device id"))
    _build_rpid_fields(el, d, _DEVICE_ORDER)
    if d.location is not None:
        build_geopriv(el, d.location)
    _append_all(el, d.extensions)
    if not d.device_id.strip():
        raise DocumentError("empty deviceID")
    etree.SubElement(el, _T_DEVICE_ID).text = d.device_id
    for note in d.notes:
        build_note(el, _T_DM_NOTE, note)
    if d.timestamp is not None:
        etree.SubElement(el, _T_DM_TIMESTAMP).text = format_datetime(d.timestamp)


def _nsmap(doc: PresenceDocument) -> dict[str | None, str]:
    nsmap: dict[str | None, str] = {None: PIDF_NS}
    uses_dm = bool(doc.persons or doc.devices) or any(t.device_ids for t in doc.tuples)
    uses_rpid = (
        bool(doc.persons)
        or any(d.class_ is not None or d.user_input is not None for d in doc.devices)
        or any(any(getattr(t, name) is not None for name in _TUPLE_ORDER) for t in doc.tuples)
    )
    uses_geo = (
        any(p.location is not None for p in doc.persons)
        or any(d.location is not None for d in doc.devices)
        or any(t.location is not None for t in doc.tuples)
    )
    if uses_dm:
        nsmap["dm"] = DM_NS
    if uses_rpid:
        nsmap["rpid"] = RPID_NS
    if uses_geo:
        nsmap.update(gp.NSMAP)
    return nsmap


def build(doc: PresenceDocument) -> bytes:
    """Serialise ``doc`` as an ``application/pidf+xml`` body (UTF-8, XML declaration)."""
    if not doc.entity.strip():
        raise DocumentError("PIDF presence has no entity")
    ids: set[str] = set()
    for what, ident in (
        *(("tuple", t.id) for t in doc.tuples),
        *(("person", p.id) for p in doc.persons),
        *(("device", d.id) for d in doc.devices),
    ):
        if ident in ids:
            raise DocumentError(f"duplicate {what} id {ident}")
        ids.add(ident)
    root = new_root(_T_PRESENCE, _nsmap(doc))
    root.set("entity", doc.entity)
    for t in doc.tuples:
        _build_tuple(root, t)
    for note in doc.notes:
        build_note(root, _T_NOTE, note)
    for p in doc.persons:
        _build_person(root, p)
    for d in doc.devices:
        _build_device(root, d)
    _append_all(root, doc.extensions)
    return serialize(root)
