"""A minimal iCalendar (RFC 5545) reader for calendar sources, sans-IO.

Enough of RFC 5545 to know whether someone is busy now: content lines are
unfolded (section 3.1), ``VEVENT`` components are read (nested components
such as ``VALARM`` are skipped, ``VTIMEZONE`` is ignored in favour of the
system's zone database for ``TZID``; a zone it does not know is taken as the
default zone, with a warning) with ``UID``, ``SUMMARY`` (TEXT escapes
undone), ``DTSTART``/``DTEND`` or ``DURATION`` (UTC ``...Z``, ``TZID=``,
floating and ``VALUE=DATE`` forms), ``CATEGORIES``, ``TRANSP`` and ``STATUS``.
``RRULE`` is understood for ``FREQ=HOURLY|DAILY|WEEKLY`` with ``INTERVAL``,
``COUNT`` and ``UNTIL``; an event with any other rule part counts once (its
first occurrence) and is listed in :attr:`Calendar.warnings`.

:func:`busy_at` says what a calendar means at an instant: the busy event
(cancelled and ``TRANSP:TRANSPARENT`` events do not count) and when the
answer next changes.  Every bad input is a :class:`PeaError` (400).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import PeaError

__all__ = [
    "CATEGORY_ACTIVITIES",
    "Busy",
    "Calendar",
    "CalendarEvent",
    "Recurrence",
    "busy_at",
    "occurrences",
    "parse_calendar",
]

MAX_EVENTS: Final = 500
_HORIZON: Final = timedelta(days=8)
_DATETIME = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z?)\Z")
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})\Z")
_DURATION = re.compile(
    r"([+-]?)P(?:(\d+)W|(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?)\Z"
)
_NAME = re.compile(r"[A-Za-z0-9-]+\Z")

CATEGORY_ACTIVITIES: Final[dict[str, str]] = {
    "MEETING": "meeting",
    "APPOINTMENT": "appointment",
    "PRESENTATION": "presentation",
    "TRAVEL": "travel",
    "VACATION": "vacation",
    "HOLIDAY": "holiday",
    "LUNCH": "meal",
    "MEAL": "meal",
    "BUSINESS": "working",
    "WORK": "working",
}
"""CATEGORIES value (upper case) -> RPID activity; other events mean ``meeting``."""

Freq = Literal["HOURLY", "DAILY", "WEEKLY"]
_STEP: Final[dict[str, timedelta]] = {
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
}


@dataclass(frozen=True, slots=True)
class Recurrence:
    """The supported part of an RRULE."""

    freq: Freq
    """HOURLY | DAILY | WEEKLY."""
    interval: int = 1
    """Every ``interval`` periods."""
    count: int | None = None
    """Number of occurrences."""
    until: datetime | None = None
    """Last possible start (aware)."""


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """One VEVENT."""

    uid: str
    """UID (or a made-up one)."""
    summary: str
    """SUMMARY text."""
    start: datetime
    """DTSTART (aware)."""
    end: datetime
    """DTEND, or DTSTART + DURATION (aware)."""
    categories: tuple[str, ...] = ()
    """CATEGORIES values, upper case."""
    transparent: bool = False
    """TRANSP:TRANSPARENT: does not make the person busy."""
    cancelled: bool = False
    """STATUS:CANCELLED."""
    rrule: Recurrence | None = None
    """Repetition, when supported."""

    @property
    def activity(self) -> str:
        """The RPID activity this event stands for."""
        for category in self.categories:
            activity = CATEGORY_ACTIVITIES.get(category)
            if activity is not None:
                return activity
        return "meeting"


@dataclass(frozen=True, slots=True)
class Calendar:
    """A parsed calendar."""

    events: tuple[CalendarEvent, ...]
    """The VEVENTs."""
    warnings: tuple[str, ...] = ()
    """What was not understood (and how it was treated)."""


@dataclass(frozen=True, slots=True)
class Busy:
    """What the calendar says at an instant."""

    event: CalendarEvent | None
    """The busy event (the one ending last when several overlap), None when free."""
    start: datetime | None
    """Start of that occurrence."""
    end: datetime | None
    """End of that occurrence."""
    next_change: datetime | None
    """When the answer changes next (within eight days), None when it does not."""


def _bad(reason: str) -> PeaError:
    return PeaError(400, "bad_calendar", reason)


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif raw.strip():
            lines.append(raw)
    return lines


def _content_line(line: str) -> tuple[str, dict[str, str], str]:
    in_quotes = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == ":" and not in_quotes:
            head, value = line[:i], line[i + 1 :]
            break
    else:
        raise _bad(f"content line without ':': {line[:40]!r}")
    parts = _split_params(head)
    name = parts[0].upper()
    if not _NAME.match(name):
        raise _bad(f"bad property name {name[:30]!r}")
    params: dict[str, str] = {}
    for p in parts[1:]:
        key, sep, val = p.partition("=")
        if not sep or not _NAME.match(key):
            raise _bad(f"bad parameter {p[:30]!r}")
        params[key.upper()] = val.strip('"')
    return name, params, value


def _split_params(head: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    for ch in head:
        if ch == '"':
            in_quotes = not in_quotes
        if ch == ";" and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append("\n" if nxt in "nN" else nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _known_zone(tzid: str) -> tzinfo | None:
    try:
        return ZoneInfo(tzid.strip().lstrip("/"))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _zone(params: dict[str, str], default: tzinfo) -> tzinfo:
    """The zone of a TZID parameter; the default zone when the system does not know it
    (listed in :attr:`Calendar.warnings`)."""
    tzid = params.get("TZID")
    if tzid is None:
        return default
    return _known_zone(tzid) or default


def _moment(value: str, params: dict[str, str], default: tzinfo) -> tuple[datetime, bool]:
    """(aware datetime, is_date)."""
    value = value.strip()
    if params.get("VALUE", "").upper() == "DATE" or _DATE.match(value):
        m = _DATE.match(value)
        if m is None:
            raise _bad(f"bad DATE {value[:20]!r}")
        try:
            d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            raise _bad(f"bad DATE {value!r}") from None
        return datetime(d.year, d.month, d.day, tzinfo=_zone(params, default)), True
    m = _DATETIME.match(value)
    if m is None:
        raise _bad(f"bad DATE-TIME {value[:20]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    zone: tzinfo = UTC if m.group(7) else _zone(params, default)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone), False
    except ValueError:
        raise _bad(f"bad DATE-TIME {value!r}") from None


def _duration(value: str) -> timedelta:
    m = _DURATION.match(value.strip())
    if m is None or value.strip() in ("P", "PT"):
        raise _bad(f"bad DURATION {value[:20]!r}")
    sign, weeks, days, hours, minutes, seconds = m.groups()
    delta = timedelta(
        weeks=int(weeks or 0), days=int(days or 0), hours=int(hours or 0),
        minutes=int(minutes or 0), seconds=int(seconds or 0),
    )  # fmt: skip
    return -delta if sign == "-" else delta


def _rrule(value: str, start: datetime, default: tzinfo) -> tuple[Recurrence | None, str | None]:
    parts: dict[str, str] = {}
    for item in value.split(";"):
        key, sep, val = item.partition("=")
        if not sep:
            raise _bad(f"bad RRULE part {item[:20]!r}")
        parts[key.strip().upper()] = val.strip()
    freq = parts.pop("FREQ", "").upper()
    if freq not in _STEP:
        return None, f"RRULE FREQ={freq or '?'} not supported: first occurrence only"
    interval = parts.pop("INTERVAL", "1")
    count = parts.pop("COUNT", None)
    until_text = parts.pop("UNTIL", None)
    parts.pop("WKST", None)
    if parts:
        return None, f"RRULE {','.join(sorted(parts))} not supported: first occurrence only"
    if not interval.isdigit() or int(interval) < 1 or (count is not None and not count.isdigit()):
        raise _bad("bad RRULE INTERVAL or COUNT")
    until = None
    if until_text is not None:
        until, is_date = _moment(until_text, {}, start.tzinfo or default)
        if is_date:
            until = until + timedelta(days=1) - timedelta(seconds=1)
    return Recurrence(freq, int(interval), int(count) if count else None, until), None  # type: ignore[arg-type]


def parse_calendar(text: str, *, default_zone: tzinfo = UTC) -> Calendar:
    """Read the VEVENTs of an iCalendar text (floating times are in ``default_zone``)."""
    lines = _unfold(text)
    if not lines or lines[0].strip().upper() != "BEGIN:VCALENDAR":
        raise _bad("not an iCalendar object (BEGIN:VCALENDAR)")
    events: list[CalendarEvent] = []
    warnings: list[str] = []
    stack: list[str] = []
    props: dict[str, tuple[dict[str, str], str]] = {}
    categories: list[str] = []
    for line in lines:
        name, params, value = _content_line(line)
        if name == "BEGIN":
            stack.append(value.strip().upper())
            if stack[-1] == "VEVENT" and len(stack) == 2:
                props, categories = {}, []
            continue
        if name == "END":
            if not stack or stack[-1] != value.strip().upper():
                raise _bad(f"END:{value[:20]} does not close {stack[-1] if stack else 'anything'}")
            ended = stack.pop()
            if ended == "VEVENT" and len(stack) == 1:
                event, warning = _event(props, categories, len(events), default_zone)
                if warning:
                    warnings.append(warning)
                if event is not None:
                    events.append(event)
                if len(events) > MAX_EVENTS:
                    raise _bad(f"more than {MAX_EVENTS} events")
            continue
        tzid = params.get("TZID")
        if tzid is not None and _known_zone(tzid) is None:
            note = f"unknown TZID {tzid[:40]!r}: taken as {default_zone}"
            if note not in warnings:
                warnings.append(note)
        if stack[-1:] == ["VEVENT"] and len(stack) == 2:
            if name == "CATEGORIES":
                categories.extend(c.strip().upper() for c in _unescape(value).split(",") if c.strip())
            else:
                props.setdefault(name, (params, value))
    if stack:
        raise _bad(f"{stack[-1]} not closed")
    return Calendar(tuple(events), tuple(warnings))


def _event(
    props: dict[str, tuple[dict[str, str], str]],
    categories: list[str],
    index: int,
    default: tzinfo,
) -> tuple[CalendarEvent | None, str | None]:
    if "DTSTART" not in props:
        raise _bad("VEVENT without DTSTART")
    start, is_date = _moment(props["DTSTART"][1], props["DTSTART"][0], default)
    if "DTEND" in props:
        end, _ = _moment(props["DTEND"][1], props["DTEND"][0], default)
    elif "DURATION" in props:
        end = start + _duration(props["DURATION"][1])
    else:
        end = start + (timedelta(days=1) if is_date else timedelta(0))
    if end < start:
        raise _bad("event ends before it starts")
    uid = _unescape(props["UID"][1]).strip() if "UID" in props else f"event-{index}"
    summary = _unescape(props["SUMMARY"][1]).strip() if "SUMMARY" in props else ""
    transparent = props.get("TRANSP", ({}, ""))[1].strip().upper() == "TRANSPARENT"
    cancelled = props.get("STATUS", ({}, ""))[1].strip().upper() == "CANCELLED"
    rule, warning = (None, None)
    if "RRULE" in props:
        rule, warning = _rrule(props["RRULE"][1], start, default)
        if warning:
            warning = f"{uid}: {warning}"
    event = CalendarEvent(
        uid[:200], summary[:200], start, end, tuple(categories), transparent, cancelled, rule
    )
    return event, warning


def _shift(start: datetime, steps: int, rule: Recurrence) -> datetime:
    """Start of occurrence ``steps``: wall-clock arithmetic in the event's zone (DST-safe)."""
    naive = start.replace(tzinfo=None) + _STEP[rule.freq] * (rule.interval * steps)
    return naive.replace(tzinfo=start.tzinfo)


def occurrences(event: CalendarEvent, after: datetime, before: datetime) -> Iterator[tuple[datetime, datetime]]:
    """(start, end) of the occurrences overlapping [after, before)."""
    length = event.end - event.start
    rule = event.rrule
    if rule is None:
        if event.start < before and (event.end > after or (length == timedelta(0) and event.start >= after)):
            yield event.start, event.end
        return
    period = _STEP[rule.freq] * rule.interval
    first = max(0, int((after - length - event.start) / period) - 1)
    k = first
    while True:
        if rule.count is not None and k >= rule.count:
            return
        start = _shift(event.start, k, rule)
        if rule.until is not None and start > rule.until:
            return
        if start >= before:
            return
        if start + length > after:
            yield start, start + length
        k += 1


def busy_at(calendar: Calendar, now: datetime) -> Busy:
    """The busy event at ``now`` and when that changes."""
    horizon = now + _HORIZON
    current: tuple[CalendarEvent, datetime, datetime] | None = None
    changes: list[datetime] = []
    for event in calendar.events:
        if event.cancelled or event.transparent:
            continue
        for start, end in occurrences(event, now, horizon):
            if start <= now < end:
                changes.append(end)
                if current is None or end > current[2]:
                    current = (event, start, end)
            elif start > now:
                changes.append(start)
                break
    next_change = min(changes) if changes else None
    if current is None:
        return Busy(None, None, None, next_change)
    return Busy(current[0], current[1], current[2], next_change)
