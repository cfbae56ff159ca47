"""RPID (RFC 4480) elements: models, parsing and building.

The elements live inside PIDF tuples, data-model persons and devices (see
:mod:`presence_ims.documents.pidf`). Each RPID element is a frozen dataclass;
:func:`parse_rpid` turns one ``rpid:*`` element into ``(field, model)`` and
:func:`build_rpid` appends a model back under a parent element. ``from_``,
``until`` and ``id`` are the RFC's common ``from``/``until``/``id`` attributes.
Extension children from other namespaces are kept as exclusive-C14N bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from lxml import etree

from .xml import (
    XML_LANG,
    DocumentError,
    canonical,
    check_ncname,
    clark,
    element_from_bytes,
    format_datetime,
    parse_datetime,
    split_clark,
)

__all__ = [
    "ACTIVITIES",
    "LOCATION_TYPE_NS",
    "MOODS",
    "RELATIONSHIPS",
    "RPID_NS",
    "SERVICE_CLASSES",
    "Activities",
    "Mood",
    "Note",
    "PlaceIs",
    "PlaceType",
    "Privacy",
    "Relationship",
    "ServiceClass",
    "Sphere",
    "StatusIcon",
    "TimeOffset",
    "UserInput",
    "build_note",
    "build_rpid",
    "parse_note",
    "parse_rpid",
]

RPID_NS = "urn:ietf:params:xml:ns:pidf:rpid"
LOCATION_TYPE_NS = "urn:ietf:params:xml:ns:location-type"
"""RFC 4589 location types, the usual children of ``rpid:place-type``."""

ACTIVITIES = frozenset(
    {
        "appointment", "away", "breakfast", "busy", "dinner", "holiday", "in-transit",
        "looking-for-work", "meal", "meeting", "on-the-phone", "performance",
        "permanent-absence", "playing", "presentation", "shopping", "sleeping",
        "spectator", "steering", "travel", "tv", "vacation", "working", "worship",
    }
)  # fmt: skip
"""RFC 4480 activity names (besides ``unknown`` and free-text ``other``)."""

MOODS = frozenset(
    {
        "afraid", "amazed", "angry", "annoyed", "anxious", "ashamed", "bored", "brave",
        "calm", "cold", "confused", "contented", "cranky", "curious", "depressed",
        "disappointed", "disgusted", "distracted", "embarrassed", "excited",
        "flirtatious", "frustrated", "grumpy", "guilty", "happy", "hot", "humbled",
        "humiliated", "hungry", "hurt", "impressed", "in_awe", "in_love", "indignant",
        "interested", "invincible", "jealous", "lonely", "mean", "moody", "nervous",
        "neutral", "offended", "playful", "proud", "relieved", "remorseful", "restless",
        "sad", "sarcastic", "serious", "shocked", "shy", "sick", "sleepy", "stressed",
        "surprised", "thirsty", "worried",
    }
)  # fmt: skip
"""RFC 4480 mood names (besides ``unknown`` and free-text ``other``)."""

RELATIONSHIPS = frozenset(
    {"assistant", "associate", "family", "friend", "other", "self", "supervisor", "unknown"}
)
SERVICE_CLASSES = frozenset({"courier", "electronic", "freight", "in-person", "postal", "unknown"})
_PLACE_IS = {
    "audio": ("noisy", "ok", "quiet", "unknown"),
    "video": ("toobright", "ok", "dark", "unknown"),
    "text": ("uncomfortable", "inappropriate", "ok", "unknown"),
}
_SPHERES = ("home", "work", "unknown")


_RPID_OPEN = "{" + RPID_NS + "}"
_RPID_OPEN_LEN = len(_RPID_OPEN)


def _q(local: str) -> str:
    return clark(RPID_NS, local)


# --- models ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Note:
    """A free-text note (``Note_t``: text with an optional ``xml:lang``)."""

    text: str
    """The note text."""
    lang: str | None = None
    """Its language tag, or None."""


@dataclass(frozen=True, slots=True)
class Activities:
    """``rpid:activities``: what the person is doing."""

    values: tuple[str, ...] = ()
    """Activity names from :data:`ACTIVITIES`, or ``("unknown",)`` alone."""
    other: tuple[Note, ...] = ()
    """Free-text ``<other>`` activities."""
    notes: tuple[Note, ...] = ()
    """``rpid:note`` children."""
    extensions: tuple[bytes, ...] = ()
    """Activities of other namespaces (exclusive C14N)."""
    from_: datetime | None = None
    """Start of validity (``from``)."""
    until: datetime | None = None
    """End of validity."""
    id: str | None = None
    """Element id."""


@dataclass(frozen=True, slots=True)
class Mood:
    """``rpid:mood``: the person's mood (at least one value)."""

    values: tuple[str, ...] = ()
    """Mood names from :data:`MOODS`, or ``("unknown",)`` alone."""
    other: tuple[Note, ...] = ()
    """Free-text ``<other>`` moods."""
    notes: tuple[Note, ...] = ()
    """``rpid:note`` children."""
    extensions: tuple[bytes, ...] = ()
    """Moods of other namespaces (exclusive C14N)."""
    from_: datetime | None = None
    """Start of validity."""
    until: datetime | None = None
    """End of validity."""
    id: str | None = None
    """Element id."""


@dataclass(frozen=True, slots=True)
class PlaceIs:
    """``rpid:place-is``: audio, video and text conditions at the person's place."""

    audio: str | None = None
    """noisy | ok | quiet | unknown."""
    video: str | None = None
    """toobright | ok | dark | unknown."""
    text: str | None = None
    """uncomfortable | inappropriate | ok | unknown."""
    notes: tuple[Note, ...] = ()
    """``rpid:note`` children."""
    from_: datetime | None = None
    """Start of validity."""
    until: datetime | None = None
    """End of validity."""
    id: str | None = None
    """Element id."""


@dataclass(frozen=True, slots=True)
class PlaceType:
    """``rpid:place-type``: the kind of place (RFC 4589 types, free text, or extensions)."""

    types: tuple[str, ...] = ()
    """RFC 4589 location-type names (``office``, ``home``, ...)."""
    other: Note | None = None
    """Free-text ``<other>`` place type (instead of types)."""
    notes: tuple[Note, ...] = ()
    """``rpid:note`` children."""
    extensions: tuple[bytes, ...] = ()
    """Place types of other namespaces (exclusive C14N)."""
    from_: datetime | None = None
    """Start of validity."""
    until: datetime | None = None
    """End of validity."""
    id: str | None = None
    """Element id."""


@dataclass(frozen=True, slots=True)
class Privacy:
    """``rpid:privacy``: which media third parties are unlikely to overhear."""

    audio: bool = False
    """Audio is private."""
    text: bool = False
    """Text is private."""
    video: bool = False
    """Video is private."""
    unknown: bool = False
    """``<unknown/>`` (excludes the three others)."""
    notes: tuple[Note, ...] = ()
    """``rpid:note`` children."""
    extensions: tuple[bytes, ...] = ()
    """Privacy types of other namespaces (exclusive C14N)."""
    from_: datetime | None = None
    """Start of validity."""
    until: datetime | None = None
    """End of validity."""
    id: str | None = None
    """Element id."""


@dataclass(frozen=True, slots=True)
class Sphere:
    """``rpid:sphere``: the role the person is playing (home, work, ...)."""

    value: str | None = None
    """home | work | unknown, or None (empty, or given by extensions)."""
    extensions: tuple[bytes, ...] = ()
    """Sphere values of other namespaces (exclusive C14N)."""
    from_: datetime | None = None
    """Start of validity."""
    until: datetime | None = None
    """End of validity."""
    id: str | None = None
    """Element id."""


@dataclass(frozen=True, slots=True)
class StatusIcon:
    """``rpid:status-icon``: URI of an icon for the current status."""

    uri: str
    """The icon URI."""
    from_: datetime | None = None
    """Start of validity."""
    until: datetime | None = None
    """End of validity."""
    id: str | None = None
    """Element id."""


@dataclass(frozen=True, slots=True)
class TimeOffset:
    """``rpid:time-offset``: minutes from UTC at the person's location."""

    minutes: int
    """Offset in minutes."""
    description: str | None = None
    """Optional description (e.g. a zone name)."""
    from_: datetime | None = None
    """Start of validity."""
    until: datetime | None = None
    """End of validity."""
    id: str | None = None
    """Element id."""


@dataclass(frozen=True, slots=True)
class UserInput:
    """``rpid:user-input``: active or idle, with threshold and last input time."""

    value: Literal["active", "idle"]
    """active | idle."""
    idle_threshold: int | None = None
    """Seconds of no input after which the state is idle."""
    last_input: datetime | None = None
    """When the last input happened."""
    id: str | None = None
    """Element id."""


@dataclass(frozen=True, slots=True)
class Relationship:
    """``rpid:relationship`` (services): how the contact relates to the presentity."""

    value: str
    """One of :data:`RELATIONSHIPS`."""
    other: str | None = None
    """Text of ``<other>`` when value is ``other``."""
    notes: tuple[Note, ...] = ()
    """``rpid:note`` children."""


@dataclass(frozen=True, slots=True)
class ServiceClass:
    """``rpid:service-class`` (services): the kind of service."""

    value: str
    """One of :data:`SERVICE_CLASSES`."""
    notes: tuple[Note, ...] = ()
    """``rpid:note`` children."""


# --- notes ----------------------------------------------------------------------------


def parse_note(element: etree._Element) -> Note:
    if len(element):
        raise DocumentError("note must be text only")
    return Note(text=element.text or "", lang=element.get(XML_LANG))


def build_note(parent: etree._Element, tag: str, note: Note) -> None:
    el = etree.SubElement(parent, tag)
    el.text = note.text
    if note.lang is not None:
        el.set(XML_LANG, note.lang)


# --- common attributes ----------------------------------------------------------------


def _times(el: etree._Element, what: str) -> tuple[datetime | None, datetime | None, str | None]:
    if not el.attrib:
        return None, None, None
    start = el.get("from")
    end = el.get("until")
    ident = el.get("id")
    return (
        parse_datetime(start, f"{what} from") if start is not None else None,
        parse_datetime(end, f"{what} until") if end is not None else None,
        check_ncname(ident, f"{what} id") if ident is not None else None,
    )


def _set_times(
    el: etree._Element,
    from_: datetime | None,
    until: datetime | None,
    ident: str | None,
) -> None:
    if from_ is not None:
        el.set("from", format_datetime(from_))
    if until is not None:
        el.set("until", format_datetime(until))
    if ident is not None:
        el.set("id", check_ncname(ident, "RPID id"))


def _empty(el: etree._Element, what: str) -> None:
    if len(el) or (el.text or "").strip():
        raise DocumentError(f"{what} must be empty")


def _append_extensions(parent: etree._Element, extensions: tuple[bytes, ...]) -> None:
    for data in extensions:
        parent.append(element_from_bytes(data))


# --- enumerations (activities, mood) --------------------------------------------------


def _parse_enum(
    el: etree._Element, allowed: frozenset[str], what: str
) -> tuple[tuple[str, ...], tuple[Note, ...], tuple[Note, ...], tuple[bytes, ...]]:
    values: list[str] = []
    other: list[Note] = []
    notes: list[Note] = []
    extensions: list[bytes] = []
    for child in el:
        tag = child.tag
        if tag.startswith(_RPID_OPEN):  # split_clark, for the usual case
            ns, local = RPID_NS, tag[_RPID_OPEN_LEN:]
        else:
            ns, local = split_clark(tag)
        if ns == RPID_NS:
            if local == "note":
                notes.append(parse_note(child))
            elif local == "other":
                other.append(parse_note(child))
            elif local in allowed or local == "unknown":
                _empty(child, f"{what} {local}")
                if local in values:
                    raise DocumentError(f"duplicate {what} {local}")
                values.append(local)
            else:
                raise DocumentError(f"unknown RPID {what}: {local}")
        else:
            extensions.append(canonical(child))
    if "unknown" in values and (len(values) > 1 or other or extensions):
        raise DocumentError(f"{what} unknown combined with other values")
    return tuple(values), tuple(other), tuple(notes), tuple(extensions)


def _build_enum(
    el: etree._Element,
    allowed: frozenset[str],
    what: str,
    values: tuple[str, ...],
    other: tuple[Note, ...],
    notes: tuple[Note, ...],
    extensions: tuple[bytes, ...],
) -> None:
    if "unknown" in values and (len(values) > 1 or other or extensions):
        raise DocumentError(f"{what} unknown combined with other values")
    if len(set(values)) != len(values):
        raise DocumentError(f"duplicate {what} value")
    for note in notes:
        build_note(el, _q("note"), note)
    for value in values:
        if value not in allowed and value != "unknown":
            raise DocumentError(f"unknown RPID {what}: {value}")
        etree.SubElement(el, _q(value))
    for note in other:
        build_note(el, _q("other"), note)
    _append_extensions(el, extensions)


def _parse_activities(el: etree._Element) -> Activities:
    values, other, notes, extensions = _parse_enum(el, ACTIVITIES, "activity")
    from_, until, ident = _times(el, "activities")
    return Activities(values, other, notes, extensions, from_, until, ident)


def _parse_mood(el: etree._Element) -> Mood:
    values, other, notes, extensions = _parse_enum(el, MOODS, "mood")
    if not (values or other or extensions):
        raise DocumentError("empty RPID mood")
    from_, until, ident = _times(el, "mood")
    return Mood(values, other, notes, extensions, from_, until, ident)


# --- the other elements ---------------------------------------------------------------


def _parse_place_is(el: etree._Element) -> PlaceIs:
    found: dict[str, str] = {}
    notes: list[Note] = []
    for child in el:
        ns, local = split_clark(child.tag)
        if ns == RPID_NS and local == "note":
            notes.append(parse_note(child))
            continue
        if ns != RPID_NS or local not in _PLACE_IS or local in found:
            raise DocumentError(f"unexpected element in place-is: {local}")
        kids = list(child)
        if len(kids) != 1:
            raise DocumentError(f"bad place-is {local}")
        value_ns, value = split_clark(kids[0].tag)
        if value_ns != RPID_NS or value not in _PLACE_IS[local]:
            raise DocumentError(f"bad place-is {local}: {value}")
        _empty(kids[0], f"place-is {local}")
        found[local] = value
    from_, until, ident = _times(el, "place-is")
    return PlaceIs(
        found.get("audio"), found.get("video"), found.get("text"), tuple(notes), from_, until, ident
    )


def _parse_place_type(el: etree._Element) -> PlaceType:
    types: list[str] = []
    other: Note | None = None
    notes: list[Note] = []
    extensions: list[bytes] = []
    for child in el:
        ns, local = split_clark(child.tag)
        if ns == RPID_NS and local == "note":
            notes.append(parse_note(child))
        elif ns == RPID_NS and local == "other" and other is None:
            other = parse_note(child)
        elif ns == RPID_NS:
            raise DocumentError(f"unexpected element in place-type: {local}")
        elif ns == LOCATION_TYPE_NS and not len(child) and not (child.text or "").strip():
            types.append(local)
        else:
            extensions.append(canonical(child))
    if other is not None and (types or extensions):
        raise DocumentError("place-type other combined with types")
    if other is None and not (types or extensions):
        raise DocumentError("empty RPID place-type")
    from_, until, ident = _times(el, "place-type")
    return PlaceType(tuple(types), other, tuple(notes), tuple(extensions), from_, until, ident)


def _parse_privacy(el: etree._Element) -> Privacy:
    flags: dict[str, bool] = {"audio": False, "text": False, "video": False, "unknown": False}
    notes: list[Note] = []
    extensions: list[bytes] = []
    for child in el:
        ns, local = split_clark(child.tag)
        if ns == RPID_NS and local == "note":
            notes.append(parse_note(child))
        elif ns == RPID_NS and local in flags and not flags[local]:
            _empty(child, f"privacy {local}")
            flags[local] = True
        elif ns == RPID_NS:
            raise DocumentError(f"unexpected element in privacy: {local}")
        else:
            extensions.append(canonical(child))
    if flags["unknown"] and (flags["audio"] or flags["text"] or flags["video"] or extensions):
        raise DocumentError("privacy unknown combined with other values")
    from_, until, ident = _times(el, "privacy")
    return Privacy(
        flags["audio"], flags["text"], flags["video"], flags["unknown"],
        tuple(notes), tuple(extensions), from_, until, ident,
    )  # fmt: skip


def _parse_sphere(el: etree._Element) -> Sphere:
    value: str | None = None
    extensions: list[bytes] = []
    for child in el:
        ns, local = split_clark(child.tag)
        if ns == RPID_NS and local in _SPHERES and value is None and not extensions:
            _empty(child, f"sphere {local}")
            value = local
        elif ns == RPID_NS:
            raise DocumentError(f"unexpected element in sphere: {local}")
        elif value is None:
            extensions.append(canonical(child))
        else:
            raise DocumentError("sphere has more than one value")
    if (el.text or "").strip():
        raise DocumentError("sphere must not carry text")
    from_, until, ident = _times(el, "sphere")
    return Sphere(value, tuple(extensions), from_, until, ident)


def _parse_status_icon(el: etree._Element) -> StatusIcon:
    if len(el):
        raise DocumentError("status-icon must be a URI")
    uri = (el.text or "").strip()
    if not uri:
        raise DocumentError("empty status-icon")
    from_, until, ident = _times(el, "status-icon")
    return StatusIcon(uri, from_, until, ident)


def _parse_integer(text: str | None, what: str) -> int:
    value = (text or "").strip()
    body = value[1:] if value[:1] in "+-" else value
    if not body.isascii() or not body.isdigit() or len(body) > 18:
        raise DocumentError(f"bad {what}: {value!r}")
    return int(value)


def _parse_time_offset(el: etree._Element) -> TimeOffset:
    if len(el):
        raise DocumentError("time-offset must be an integer")
    minutes = _parse_integer(el.text, "time-offset")
    from_, until, ident = _times(el, "time-offset")
    return TimeOffset(minutes, el.get("description"), from_, until, ident)


def _parse_user_input(el: etree._Element) -> UserInput:
    if len(el):
        raise DocumentError("user-input must be text")
    value = (el.text or "").strip()
    if value not in ("active", "idle"):
        raise DocumentError(f"bad user-input: {value!r}")
    threshold_text = el.get("idle-threshold")
    threshold = None
    if threshold_text is not None:
        threshold = _parse_integer(threshold_text, "idle-threshold")
        if threshold < 1:
            raise DocumentError("bad idle-threshold")
    last = el.get("last-input")
    ident = el.get("id")
    return UserInput(
        "active" if value == "active" else "idle",
        threshold,
        parse_datetime(last, "last-input") if last is not None else None,
        check_ncname(ident, "user-input id") if ident is not None else None,
    )


def _parse_choice_with_notes(
    el: etree._Element, allowed: frozenset[str], what: str
) -> tuple[str, str | None, tuple[Note, ...]]:
    value: str | None = None
    other: str | None = None
    notes: list[Note] = []
    for child in el:
        ns, local = split_clark(child.tag)
        if ns == RPID_NS and local == "note":
            notes.append(parse_note(child))
        elif ns == RPID_NS and local in allowed and value is None:
            if local == "other":
                other = parse_note(child).text
            else:
                _empty(child, f"{what} {local}")
            value = local
        else:
            raise DocumentError(f"unsupported {what}: {local}")
    if value is None:
        raise DocumentError(f"empty RPID {what}")
    return value, other, tuple(notes)


def _parse_relationship(el: etree._Element) -> Relationship:
    value, other, notes = _parse_choice_with_notes(el, RELATIONSHIPS, "relationship")
    return Relationship(value, other, notes)


def _parse_service_class(el: etree._Element) -> ServiceClass:
    value, _, notes = _parse_choice_with_notes(el, SERVICE_CLASSES, "service-class")
    return ServiceClass(value, notes)


def _parse_class(el: etree._Element) -> str:
    if len(el):
        raise DocumentError("class must be a token")
    value = " ".join((el.text or "").split())
    if not value:
        raise DocumentError("empty RPID class")
    return value


_FIELDS: dict[str, str] = {
    "activities": "activities",
    "class": "class_",
    "mood": "mood",
    "place-is": "place_is",
    "place-type": "place_type",
    "privacy": "privacy",
    "sphere": "sphere",
    "status-icon": "status_icon",
    "time-offset": "time_offset",
    "user-input": "user_input",
    "relationship": "relationship",
    "service-class": "service_class",
}
"""RPID element local name -> model field name."""

_PARSERS = {
    "activities": _parse_activities,
    "class": _parse_class,
    "mood": _parse_mood,
    "place-is": _parse_place_is,
    "place-type": _parse_place_type,
    "privacy": _parse_privacy,
    "sphere": _parse_sphere,
    "status-icon": _parse_status_icon,
    "time-offset": _parse_time_offset,
    "user-input": _parse_user_input,
    "relationship": _parse_relationship,
    "service-class": _parse_service_class,
}

FIELD_ELEMENTS: dict[str, str] = {field: local for local, field in _FIELDS.items()}
"""Model field name -> RPID element local name."""


def parse_rpid(element: etree._Element) -> tuple[str, object]:
    """(model field name, model) for one ``rpid:*`` element; unknown names are errors."""
    tag = element.tag
    local = tag[_RPID_OPEN_LEN:] if tag.startswith(_RPID_OPEN) else split_clark(tag)[1]
    parser = _PARSERS.get(local)
    if parser is None:
        raise DocumentError(f"unknown RPID element: {local}")
    return _FIELDS[local], parser(element)


# --- building -------------------------------------------------------------------------


def build_rpid(parent: etree._Element, value: object) -> None:
    """Append the element for one RPID model (or a class string) under ``parent``."""
    if isinstance(value, str):
        token = " ".join(value.split())
        if not token:
            raise DocumentError("empty RPID class")
        etree.SubElement(parent, _q("class")).text = token
    elif isinstance(value, Activities):
        el = etree.SubElement(parent, _q("activities"))
        _set_times(el, value.from_, value.until, value.id)
        _build_enum(
            el, ACTIVITIES, "activity", value.values, value.other, value.notes, value.extensions
        )
    elif isinstance(value, Mood):
        if not (value.values or value.other or value.extensions):
            raise DocumentError("empty RPID mood")
        el = etree.SubElement(parent, _q("mood"))
        _set_times(el, value.from_, value.until, value.id)
        _build_enum(el, MOODS, "mood", value.values, value.other, value.notes, value.extensions)
    elif isinstance(value, PlaceIs):
        el = etree.SubElement(parent, _q("place-is"))
        _set_times(el, value.from_, value.until, value.id)
        for note in value.notes:
            build_note(el, _q("note"), note)
        for kind, item in (("audio", value.audio), ("video", value.video), ("text", value.text)):
            if item is None:
                continue
            if item not in _PLACE_IS[kind]:
                raise DocumentError(f"bad place-is {kind}: {item}")
            etree.SubElement(etree.SubElement(el, _q(kind)), _q(item))
    elif isinstance(value, PlaceType):
        if value.other is not None and (value.types or value.extensions):
            raise DocumentError("place-type other combined with types")
        if value.other is None and not (value.types or value.extensions):
            raise DocumentError("empty RPID place-type")
        el = etree.SubElement(parent, _q("place-type"))
        _set_times(el, value.from_, value.until, value.id)
        for note in value.notes:
            build_note(el, _q("note"), note)
        if value.other is not None:
            build_note(el, _q("other"), value.other)
        for name in value.types:
            etree.SubElement(el, clark(LOCATION_TYPE_NS, name), nsmap={"lt": LOCATION_TYPE_NS})
        _append_extensions(el, value.extensions)
    elif isinstance(value, Privacy):
        if value.unknown and (value.audio or value.text or value.video or value.extensions):
            raise DocumentError("privacy unknown combined with other values")
        el = etree.SubElement(parent, _q("privacy"))
        _set_times(el, value.from_, value.until, value.id)
        for note in value.notes:
            build_note(el, _q("note"), note)
        if value.unknown:
            etree.SubElement(el, _q("unknown"))
        for name, flag in (("audio", value.audio), ("text", value.text), ("video", value.video)):
            if flag:
                etree.SubElement(el, _q(name))
        _append_extensions(el, value.extensions)
    elif isinstance(value, Sphere):
        if value.value is not None and value.value not in _SPHERES:
            raise DocumentError(f"bad sphere: {value.value}")
        if value.value is not None and value.extensions:
            raise DocumentError("sphere has more than one value")
        el = etree.SubElement(parent, _q("sphere"))
        _set_times(el, value.from_, value.until, value.id)
        if value.value is not None:
            etree.SubElement(el, _q(value.value))
        _append_extensions(el, value.extensions)
    elif isinstance(value, StatusIcon):
        if not value.uri.strip():
            raise DocumentError("empty status-icon")
        el = etree.SubElement(parent, _q("status-icon"))
        _set_times(el, value.from_, value.until, value.id)
        el.text = value.uri
    elif isinstance(value, TimeOffset):
        el = etree.SubElement(parent, _q("time-offset"))
        _set_times(el, value.from_, value.until, value.id)
        if value.description is not None:
            el.set("description", value.description)
        el.text = str(value.minutes)
    elif isinstance(value, UserInput):
        if value.value not in ("active", "idle"):
            raise DocumentError(f"bad user-input: {value.value!r}")
        el = etree.SubElement(parent, _q("user-input"))
        if value.idle_threshold is not None:
            if value.idle_threshold < 1:
                raise DocumentError("bad idle-threshold")
            el.set("idle-threshold", str(value.idle_threshold))
        if value.last_input is not None:
            el.set("last-input", format_datetime(value.last_input))
        if value.id is not None:
            el.set("id", check_ncname(value.id, "user-input id"))
        el.text = value.value
    elif isinstance(value, Relationship):
        if value.value not in RELATIONSHIPS:
            raise DocumentError(f"bad relationship: {value.value}")
        el = etree.SubElement(parent, _q("relationship"))
        for note in value.notes:
            build_note(el, _q("note"), note)
        child = etree.SubElement(el, _q(value.value))
        if value.value == "other":
            child.text = value.other or ""
    elif isinstance(value, ServiceClass):
        if value.value not in SERVICE_CLASSES:
            raise DocumentError(f"bad service-class: {value.value}")
        el = etree.SubElement(parent, _q("service-class"))
        for note in value.notes:
            build_note(el, _q("note"), note)
        etree.SubElement(el, _q(value.value))
    else:
        raise DocumentError(f"not an RPID value: {type(value).__name__}")
