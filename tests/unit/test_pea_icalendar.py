"""The minimal iCalendar reader of the calendar source (RFC 5545 subset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence_ims.nodes.pea.errors import PeaError
from presence_ims.nodes.pea.icalendar import busy_at, occurrences, parse_calendar

ROOT = Path(__file__).resolve().parents[2]
BERLIN = ZoneInfo("Europe/Berlin")


def cal(*events: str) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "".join(events) + "END:VCALENDAR\r\n"


def event(*lines: str) -> str:
    return "BEGIN:VEVENT\r\n" + "".join(f"{line}\r\n" for line in lines) + "END:VEVENT\r\n"


def test_folding_escapes_and_forms_of_time() -> None:
    text = cal(
        event("UID:a", "SUMMARY:Design review\\, weekly\\; room\\n4.11 \\\\ x",
              "DTSTART:20240501T120000Z", "DTEND:20240501T130000Z"),
        event("UID:b", "SUMMARY:Long ti", " tle folded", "DTSTART;TZID=Europe/Berlin:20240501T140000",
              "DURATION:PT1H30M", "CATEGORIES:travel, Meeting"),
        event("UID:c", "DTSTART;VALUE=DATE:20240502", "TRANSP:TRANSPARENT"),
        event("UID:d", "DTSTART:20240503T080000", "DTEND:20240503T090000"),  # floating: the default zone
    )  # fmt: skip
    a, b, c, d = parse_calendar(text).events
    assert a.summary == "Design review, weekly; room\n4.11 \\ x"
    assert (a.start, a.end) == (datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 1, 13, tzinfo=UTC))
    assert b.summary == "Long title folded"
    assert b.start == datetime(2024, 5, 1, 14, tzinfo=BERLIN) and b.end - b.start == timedelta(minutes=90)
    assert b.categories == ("TRAVEL", "MEETING") and b.activity == "travel"
    assert c.transparent and c.end - c.start == timedelta(days=1)
    assert d.start.tzinfo is UTC and a.activity == "meeting"


def test_busy_now_and_next_change() -> None:
    text = cal(
        event("UID:review", "SUMMARY:Review", "DTSTART:20240501T120000Z", "DTEND:20240501T150000Z"),
        event("UID:call", "SUMMARY:Call", "CATEGORIES:APPOINTMENT", "DTSTART:20240501T140000Z", "DTEND:20240501T160000Z"),
        event("UID:free", "SUMMARY:Free", "TRANSP:TRANSPARENT", "DTSTART:20240501T000000Z", "DTEND:20240502T000000Z"),
        event("UID:off", "SUMMARY:Off", "STATUS:CANCELLED", "DTSTART:20240501T100000Z", "DTEND:20240501T200000Z"),
    )  # fmt: skip
    calendar = parse_calendar(text)
    at = datetime(2024, 5, 1, 11, tzinfo=UTC)
    busy = busy_at(calendar, at)
    assert busy.event is None and busy.next_change == datetime(2024, 5, 1, 12, tzinfo=UTC)
    busy = busy_at(calendar, datetime(2024, 5, 1, 12, 30, tzinfo=UTC))
    assert busy.event is not None and busy.event.uid == "review"
    assert busy.end == datetime(2024, 5, 1, 15, tzinfo=UTC)
    assert busy.next_change == datetime(2024, 5, 1, 14, tzinfo=UTC)  # the call starts
    busy = busy_at(calendar, datetime(2024, 5, 1, 14, 30, tzinfo=UTC))
    assert busy.event is not None and busy.event.uid == "call"  # overlapping: the one ending last
    busy = busy_at(calendar, datetime(2024, 5, 1, 16, tzinfo=UTC))
    assert busy.event is None and busy.next_change is None


def test_recurrence_with_interval_count_until_and_dst() -> None:
    daily = parse_calendar(cal(event(
        "UID:standup", "DTSTART;TZID=Europe/Berlin:20240325T090000", "DTEND;TZID=Europe/Berlin:20240325T091500",
        "RRULE:FREQ=DAILY;INTERVAL=2;COUNT=4",
    ))).events[0]  # fmt: skip
    starts = [s for s, _ in occurrences(daily, datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))]
    # 09:00 Berlin on both sides of the switch to summer time (31 March)
    assert [s.astimezone(UTC).hour for s in starts] == [8, 8, 8, 7]
    assert [s.day for s in starts] == [25, 27, 29, 31]
    hourly = parse_calendar(cal(event(
        "UID:h", "DTSTART:20240501T000000Z", "DURATION:PT30M", "RRULE:FREQ=HOURLY;UNTIL=20240501T030000Z",
    ))).events[0]  # fmt: skip
    assert len(list(occurrences(hourly, datetime(2024, 4, 30, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)))) == 4
    busy = busy_at(parse_calendar(cal(event("UID:h", "DTSTART:20240501T000000Z", "DURATION:PT30M", "RRULE:FREQ=HOURLY"))),
                   datetime(2024, 7, 1, 10, 45, tzinfo=UTC))  # fmt: skip
    assert busy.event is None and busy.next_change == datetime(2024, 7, 1, 11, tzinfo=UTC)


def test_unsupported_rules_count_once_with_a_warning() -> None:
    calendar = parse_calendar(cal(
        event("UID:m", "DTSTART:20240501T120000Z", "DTEND:20240501T130000Z", "RRULE:FREQ=MONTHLY"),
        event("UID:w", "DTSTART:20240501T120000Z", "DTEND:20240501T130000Z", "RRULE:FREQ=WEEKLY;BYDAY=MO,WE"),
        event("UID:z", "DTSTART;TZID=Mars/Olympus:20240501T120000", "DTEND:20240501T130000Z"),
    ))  # fmt: skip
    assert [e.rrule for e in calendar.events] == [None, None, None]
    assert len(calendar.warnings) == 3 and "Mars/Olympus" in calendar.warnings[2]


def test_nested_components_are_skipped() -> None:
    calendar = parse_calendar(cal(
        "BEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n",
        event("UID:a", "DTSTART:20240501T120000Z", "BEGIN:VALARM", "TRIGGER:-PT5M", "DTSTART:20990101T000000Z",
              "END:VALARM", "DTEND:20240501T130000Z"),
    ))  # fmt: skip
    (only,) = calendar.events
    assert only.start.year == 2024 and only.end.hour == 13


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BEGIN:VEVENT\r\nEND:VEVENT\r\n",
        cal(event("SUMMARY:no start")),
        cal(event("DTSTART:2024-05-01")),
        cal(event("DTSTART:20240230T120000Z")),
        cal(event("DTSTART:20240501T120000Z", "DTEND:20240501T110000Z")),
        cal(event("DTSTART:20240501T120000Z", "DURATION:1H")),
        cal(event("DTSTART:20240501T120000Z", "RRULE:FREQ=DAILY;COUNT=x")),
        cal(event("DTSTART:20240501T120000Z", "RRULE:nonsense")),
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20240501T120000Z\r\n",
        "BEGIN:VCALENDAR\r\nno colon here\r\nEND:VCALENDAR\r\n",
        "BEGIN:VCALENDAR\r\nEND:VEVENT\r\n",
        cal(*(event(f"UID:{i}", "DTSTART:20240501T120000Z") for i in range(501))),
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(PeaError) as info:
        parse_calendar(text)
    assert info.value.status == 400 and info.value.kind == "bad_calendar"


def test_the_demo_calendar_of_bob() -> None:
    calendar = parse_calendar((ROOT / "configs" / "calendar" / "bob.ics").read_text(encoding="utf-8"))
    assert calendar.warnings == ()
    uids = [e.uid for e in calendar.events]
    assert "design-review-bob@home1.net" in uids
    # at 14:30 Berlin time bob is in the design review, "in a meeting until 15:00"
    busy = busy_at(calendar, datetime(2024, 6, 3, 14, 30, tzinfo=BERLIN))
    assert busy.event is not None and busy.event.activity == "meeting"
    assert busy.end == datetime(2024, 6, 3, 15, 0, tzinfo=BERLIN)
    assert busy.event.summary == "Design review, presence over IMS"
    # lunch, and free in between; the all-day transparent event never makes him busy
    assert busy_at(calendar, datetime(2024, 6, 3, 12, 10, tzinfo=BERLIN)).event.activity == "meal"  # type: ignore[union-attr]
    free = busy_at(calendar, datetime(2024, 6, 3, 16, 0, tzinfo=BERLIN))
    assert free.event is None and free.next_change == datetime(2024, 6, 4, 9, 0, tzinfo=BERLIN)


_LINES = st.lists(
    st.one_of(
        st.sampled_from(["BEGIN:VEVENT", "END:VEVENT", "BEGIN:VALARM", "END:VALARM", "DTSTART:20240501T120000Z",
                         "DTEND:20240501T130000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=3", "TRANSP:OPAQUE",
                         "DTSTART;VALUE=DATE:20240501", "SUMMARY:x", " folded"]),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    ),
    max_size=14,
)


@settings(max_examples=300, deadline=None)
@given(_LINES)
def test_any_text_parses_or_raises_pea_error(lines: list[str]) -> None:
    text = "BEGIN:VCALENDAR\r\n" + "\r\n".join(lines) + "\r\nEND:VCALENDAR\r\n"
    try:
        calendar = parse_calendar(text)
    except PeaError as exc:
        assert exc.status == 400
        return
    busy_at(calendar, datetime(2024, 5, 1, 12, 30, tzinfo=UTC))
