"""Pex input: reading, scoping and validating submissions, and the person they make."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence_ims.documents import pidf
from presence_ims.documents import validate as schema
from presence_ims.nodes.pea.auth import SourcePolicy
from presence_ims.nodes.pea.errors import PeaError
from presence_ims.nodes.pea.icalendar import parse_calendar
from presence_ims.nodes.pea.submission import (
    calendar_attributes,
    check_scope,
    person_element,
    read_submission,
    validate,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
CAL = SourcePolicy("cal", "hmac-sha256", b"k" * 16, ("sip:bob@home1.net",), frozenset({"activities", "note"}))
BOB = "sip:bob@home1.net"


def checked(raw: dict[str, Any]) -> Any:
    return validate(raw, NOW, default_ttl=3600, max_ttl=86400)


def status(fn: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(PeaError) as info:
        fn(*args)
    return info.value.status, info.value.kind


def test_reading() -> None:
    assert read_submission(b'{"presentity": "sip:bob@home1.net"}')["presentity"] == BOB
    for body in (b"", b"[]", b"{", b'{"activities": []}', b'{"presentity": 7}', b"\xff"):
        assert status(read_submission, body) == (400, "invalid")


def test_scope_presentity_and_attributes() -> None:
    check_scope({"presentity": BOB, "activities": ["meeting"], "note": "x"}, CAL, BOB)
    assert status(check_scope, {"presentity": "sip:alice@home1.net"}, CAL, "sip:alice@home1.net") == (403, "presentity_not_allowed")
    # an alias of someone else does not sneak past the pattern
    assert status(check_scope, {"presentity": BOB}, CAL, "sip:alice@home1.net") == (403, "presentity_not_allowed")
    assert status(check_scope, {"presentity": BOB, "mood": ["happy"]}, CAL, BOB) == (403, "attribute_not_allowed")
    assert status(check_scope, {"presentity": BOB, "place_type": ["office"]}, CAL, BOB) == (403, "attribute_not_allowed")
    check_scope({"presentity": BOB, "calendar": "..."}, CAL, BOB)  # a calendar sets activities


def test_meeting_until_fifteen_hundred() -> None:
    until = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)
    sub = checked({"presentity": BOB, "activities": ["meeting"], "note": "Design review", "until": "2024-05-01T17:00:00+02:00"})
    assert sub.attributes.activities == ("meeting",) and sub.attributes.until == until
    assert sub.expires_at == until.timestamp()  # it holds until then
    person = person_element("cal", sub.attributes, NOW)
    assert person.id == "pea-cal"
    assert person.activities is not None and person.activities.until == until
    assert [n.text for n in person.notes] == ["Design review"]
    doc = pidf.PresenceDocument(BOB, (), (person,))
    body = pidf.build(doc)
    assert pidf.parse(body) == doc and schema.errors(body) == []


def test_expiry_rules() -> None:
    assert checked({"presentity": BOB, "activities": ["busy"]}).expires_at == NOW + 3600
    assert checked({"presentity": BOB, "activities": ["busy"], "expires": 60}).expires_at == NOW + 60
    late = (datetime.fromtimestamp(NOW, UTC) + timedelta(days=3)).isoformat()
    assert checked({"presentity": BOB, "activities": ["busy"], "until": late}).expires_at == NOW + 86400


@pytest.mark.parametrize(
    "changes",
    [
        {"activities": ["plotting"]},
        {"activities": "meeting meeting"},
        {"activities": ["meeting", "meeting"]},
        {"mood": ["furious-ish"]},
        {"sphere": "garden"},
        {"note": ""},
        {"note": "x" * 201},
        {"until": "2024-05-01T11:00:00Z"},  # in the past
        {"until": "2024-05-01T15:00:00"},  # no offset
        {"from": "2024-05-01T16:00:00Z", "until": "2024-05-01T15:00:00Z"},
        {"expires": 0},
        {"expires": True},
        {"expires": 10**9},
        {"location": {"lat": 95, "lon": 0}},
        {"location": {"lat": "north", "lon": 0}},
        {"location": {"lat": 1}},
        {"colour": "blue"},
        {"v": 2},
        {"presentity": "bob"},
        {"activities": [], "note": None},
        {"clear": True},
        {"clear": "yes"},
        {"calendar": 5},
        {"calendar": "BEGIN:VCALENDAR\nEND:VCALENDAR", "note": "x"},
    ],
)
def test_invalid(changes: dict[str, Any]) -> None:
    raw = {"presentity": BOB, "activities": ["meeting"], **changes}  # clear takes no other field
    assert status(checked, raw) == (400, "invalid")


def test_clear_and_location() -> None:
    assert checked({"presentity": BOB, "clear": True}).clear
    sub = checked({"presentity": BOB, "location": {"lat": 52.5, "lon": 13.4, "radius": 20}})
    person = person_element("iot", sub.attributes, NOW)
    assert person.location is not None and b"gs:Circle" in person.location.location_extensions[0]
    sub = checked({"presentity": BOB, "location": {"lat": 52.5, "lon": 13.4}, "place_type": ["office"], "sphere": "work", "mood": ["happy"]})
    person = person_element("iot", sub.attributes, NOW)
    assert person.location.point.latitude == 52.5  # type: ignore[union-attr]
    assert person.place_type.types == ("office",) and person.sphere.value == "work"  # type: ignore[union-attr]
    body = pidf.build(pidf.PresenceDocument(BOB, (), (person,)))
    assert schema.errors(body) == []


def test_calendar_submission() -> None:
    text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Review\r\nCATEGORIES:APPOINTMENT\r\nDTSTART:20240501T113000Z\r\nDTEND:20240501T130000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    sub = checked({"presentity": BOB, "calendar": text})
    assert sub.calendar is not None and sub.expires_at == NOW + 86400
    attrs, change = calendar_attributes(sub.calendar, NOW, with_note=False)
    assert attrs is not None and attrs.activities == ("appointment",) and attrs.note is None
    assert change == datetime(2024, 5, 1, 13, 0, tzinfo=UTC).timestamp()
    attrs, change = calendar_attributes(sub.calendar, change, with_note=True)
    assert attrs is None and change is None
    assert status(checked, {"presentity": BOB, "calendar": "BEGIN:NOTHING"}) == (400, "bad_calendar")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["presentity", "activities", "note", "mood", "place_type", "sphere", "location",
                     "from", "until", "expires", "clear", "calendar", "v", "other"]),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                           st.text(max_size=30)),
                 lambda inner: st.one_of(st.lists(inner, max_size=3),
                                         st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                 max_leaves=6),
    max_size=8))
def test_any_json_validates_or_raises_pea_error(raw: dict[str, Any]) -> None:
    body = json.dumps({"presentity": BOB, **raw}).encode()
    try:
        value = read_submission(body)
        sub = checked(value)
    except PeaError as exc:
        assert exc.status == 400
        return
    if sub.attributes is not None:
        pidf.build(pidf.PresenceDocument(BOB, (), (person_element("s", sub.attributes, NOW),)))


def test_text_xml_cannot_carry_is_refused_or_left_out() -> None:
    # a note with a control character would make lxml refuse the PIDF: 400, named
    for bad in ("\x08", "a\x00b", "x\x1f", "\ufffe"):
        assert status(checked, {"presentity": BOB, "note": bad}) == (400, "invalid")
    assert checked({"presentity": BOB, "note": "tab\tand newline\n are fine"}).attributes is not None
    # a calendar's summary is free text from elsewhere: the characters are left out
    text = ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Re\x08view\x01\r\nDTSTART:20240501T113000Z\r\n"
            "DTEND:20240501T130000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    sub = checked({"presentity": BOB, "calendar": text})
    assert sub.calendar is not None
    attrs, _ = calendar_attributes(sub.calendar, NOW, with_note=True)
    assert attrs is not None and attrs.note == "Review"
    body = pidf.build(pidf.PresenceDocument(BOB, (), (person_element("s", attrs, NOW),)))
    assert schema.errors(body) == []


def test_parse_calendar_is_used() -> None:
    assert parse_calendar("BEGIN:VCALENDAR\nEND:VCALENDAR\n").events == ()
