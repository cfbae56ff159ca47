"""The Pc/Pg element feed, version 1: JSON lines over TCP with HMAC-SHA-256 per line.

The MSC/VLR (Pc) and the SGSN (Pg) tell the PNA about a subscriber's
circuit-switched and packet-switched state: attach/detach, idle/busy and
location area / routing area / cell.  Each event is one line: a UTF-8 JSON
object (at most :data:`MAX_LINE` bytes) ended by ``\\n``::

    {"v":1,"element":"sgsn1","type":"sgsn","seq":1717171717000,"ts":1717171717000,
     "user":"sip:alice@home1.net","event":"location","rai":"26201-0101-01",
     "cell":"4711","mac":"9c1e..."}

``mac`` is HMAC-SHA-256, keyed with the element's shared secret, over the
*canonical* form of every other field: ``json.dumps(fields, sort_keys=True,
separators=(",", ":"), ensure_ascii=True)``.  ``ts`` is the element's clock in
milliseconds since the Unix epoch; ``seq`` grows strictly per element (the
simulator starts it at its start time in milliseconds, so it keeps growing
across restarts).  The receiver refuses, in this order: a line that is not a
JSON object (``malformed``), another version (``version``), an element it does
not know (``unknown_element``), a wrong MAC (``bad_mac``), bad fields
(``invalid``), a ``type`` other than the element's (``wrong_type``), a ``ts``
more than ``max_skew`` seconds from its clock (``stale``) and a ``seq`` not
above the last one accepted from that element (``replay``).

Every line is answered, in order, with an (unsigned) acknowledgement line::

    {"v":1,"seq":1717171717000,"ok":true}
    {"v":1,"seq":1717171717000,"ok":false,"reason":"replay"}

Sans-IO: no sockets, no clocks (``now`` is passed in, in seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from .errors import ElementError

__all__ = [
    "EVENTS",
    "FEED_VERSION",
    "MAX_LINE",
    "ElementType",
    "FeedAck",
    "FeedElement",
    "FeedEvent",
    "FeedSigner",
    "FeedVerifier",
    "canonical",
    "encode_ack",
    "interface_of",
    "mac",
    "parse_ack",
]

FEED_VERSION: Final = 1
MAX_LINE: Final = 4096
"""Longest line accepted, bytes (the newline included)."""

ElementType = Literal["msc", "sgsn"]
EVENTS: Final = frozenset({"attach", "detach", "busy", "idle", "location"})
"""Event names of version 1."""

_AREA_FIELD: Final[Mapping[str, str]] = {"msc": "lai", "sgsn": "rai"}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z")
_AREA = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,31}\Z")
_USER = re.compile(r"(?:(?:sips?|tel):[!-~]{1,120}|\+?[0-9]{3,20})\Z")
_MAC = re.compile(r"[0-9a-f]{64}\Z")
_FIELDS: Final = frozenset(
    {"v", "element", "type", "seq", "ts", "user", "event", "lai", "rai", "cell", "mac"}
)
_MAX_INT: Final = 2**63 - 1


def interface_of(element_type: str) -> str:
    """The reference interface of an element type: ``Pc`` (MSC/VLR) or ``Pg`` (SGSN)."""
    return "Pc" if element_type == "msc" else "Pg"


@dataclass(frozen=True, slots=True)
class FeedElement:
    """A network element allowed to feed the PNA."""

    id: str
    """Element id (``msc1``, ``sgsn1``)."""
    type: ElementType
    """msc (Pc) or sgsn (Pg)."""
    secret: bytes
    """The shared secret keying its MACs."""


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One authenticated event from an element."""

    element: str
    """Element id."""
    type: ElementType
    """msc or sgsn."""
    seq: int
    """Sequence number (strictly growing per element)."""
    ts_ms: int
    """The element's timestamp, milliseconds since the epoch."""
    user: str
    """Subscriber: an IMPU (sip:/tel:) or MSISDN digits."""
    event: str
    """attach | detach | busy | idle | location."""
    area: str | None = None
    """Location area (msc, ``lai``) or routing area (sgsn, ``rai``) identity."""
    cell: str | None = None
    """Cell identity."""

    @property
    def interface(self) -> str:
        """Pc or Pg."""
        return interface_of(self.type)

    def fields(self) -> dict[str, Any]:
        """The JSON fields of this event, without ``mac``."""
        out: dict[str, Any] = {
            "v": FEED_VERSION,
            "element": self.element,
            "type": self.type,
            "seq": self.seq,
            "ts": self.ts_ms,
            "user": self.user,
            "event": self.event,
        }
        if self.area is not None:
            out[_AREA_FIELD[self.type]] = self.area
        if self.cell is not None:
            out["cell"] = self.cell
        return out


@dataclass(frozen=True, slots=True)
class FeedAck:
    """The PNA's answer to one line."""

    seq: int | None
    """Sequence number of the line answered (None when it could not be read)."""
    ok: bool
    """Accepted."""
    reason: str | None = None
    """Why it was refused (a refusal kind)."""


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes the MAC covers: every field but ``mac``, sorted, compact, ASCII."""
    body = {k: v for k, v in fields.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def mac(fields: Mapping[str, Any], secret: bytes) -> str:
    """HMAC-SHA-256 of :func:`canonical`, lower-case hex."""
    return hmac.new(secret, canonical(fields), hashlib.sha256).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ElementError(f"duplicate field {key!r}", "malformed")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ElementError(f"non-finite number {name}", "malformed")


def _load(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise ElementError("line too long", "too_long")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ElementError("line is not UTF-8", "malformed") from None
    text = text.rstrip("\r\n")
    if not text.strip():
        raise ElementError("empty line", "malformed")
    try:
        value = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
    except ElementError:
        raise
    except (ValueError, RecursionError):
        raise ElementError("line is not JSON", "malformed") from None
    if not isinstance(value, dict):
        raise ElementError("line is not a JSON object", "malformed")
    return value


def _int(fields: Mapping[str, Any], name: str) -> int:
    value = fields.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INT:
        raise ElementError(f"bad {name}", "invalid")
    return value


def _str(fields: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise ElementError(f"bad {name}", "invalid")
    return value


def _opt(fields: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str | None:
    return None if name not in fields else _str(fields, name, pattern)


class FeedVerifier:
    """Authenticates feed lines and keeps the replay state (last ``seq`` per element)."""

    def __init__(self, elements: Iterable[FeedElement], *, max_skew: float = 30.0) -> None:
        self.elements = {e.id: e for e in elements}
        self.max_skew = max_skew
        """Largest accepted distance between ``ts`` and our clock, seconds."""
        self._last: dict[str, int] = {}

    def last_seq(self, element: str) -> int | None:
        """The highest sequence number accepted from ``element``."""
        return self._last.get(element)

    def peek_seq(self, line: bytes) -> int | None:
        """The ``seq`` of a line, if it can be read at all (for the acknowledgement)."""
        try:
            value = _load(line).get("seq")
        except ElementError:
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def verify(self, line: bytes, now: float) -> FeedEvent:
        """The event of one line, or :class:`ElementError` with the refusal kind."""
        fields = _load(line)
        if fields.get("v") != FEED_VERSION or isinstance(fields.get("v"), bool):
            raise ElementError(f"unsupported version {fields.get('v')!r}", "version")
        element_id = fields.get("element")
        element = self.elements.get(element_id) if isinstance(element_id, str) else None
        if element is None:
            raise ElementError("unknown element", "unknown_element")
        given = fields.get("mac")
        if not isinstance(given, str) or not _MAC.match(given):
            raise ElementError("missing or malformed mac", "bad_mac")
        if not hmac.compare_digest(given, mac(fields, element.secret)):
            raise ElementError("wrong mac", "bad_mac")
        unknown = set(fields) - _FIELDS
        if unknown:
            raise ElementError(f"unknown field {sorted(unknown)[0]!r}", "invalid")
        if fields.get("type") != element.type:
            raise ElementError(f"element {element.id} is not a {fields.get('type')!r}", "wrong_type")
        other_area = _AREA_FIELD["sgsn" if element.type == "msc" else "msc"]
        if other_area in fields:
            raise ElementError(f"{other_area} is not a field of a {element.type}", "invalid")
        seq = _int(fields, "seq")
        ts_ms = _int(fields, "ts")
        event = fields.get("event")
        if not isinstance(event, str) or event not in EVENTS:
            raise ElementError(f"unknown event {event!r}", "invalid")
        result = FeedEvent(
            element=element.id,
            type=element.type,
            seq=seq,
            ts_ms=ts_ms,
            user=_str(fields, "user", _USER),
            event=event,
            area=_opt(fields, _AREA_FIELD[element.type], _AREA),
            cell=_opt(fields, "cell", _AREA),
        )
        if abs(ts_ms / 1000.0 - now) > self.max_skew:
            raise ElementError("timestamp outside the accepted window", "stale")
        last = self._last.get(element.id)
        if last is not None and seq <= last:
            raise ElementError(f"sequence {seq} not above {last}", "replay")
        self._last[element.id] = seq
        return result


class FeedSigner:
    """The element side: numbers, timestamps and signs events."""

    def __init__(self, element: FeedElement, first_seq: int) -> None:
        if not _ID.match(element.id):
            raise ElementError(f"bad element id {element.id!r}", "invalid")
        self.element = element
        self._next = first_seq

    def line(
        self,
        user: str,
        event: str,
        now: float,
        *,
        area: str | None = None,
        cell: str | None = None,
    ) -> tuple[FeedEvent, bytes]:
        """The next event and its line (``\\n`` included)."""
        if event not in EVENTS:
            raise ElementError(f"unknown event {event!r}", "invalid")
        if not _USER.match(user):
            raise ElementError(f"bad user {user!r}", "invalid")
        for name, value in (("area", area), ("cell", cell)):
            if value is not None and not _AREA.match(value):
                raise ElementError(f"bad {name} {value!r}", "invalid")
        seq = self._next
        self._next += 1
        ev = FeedEvent(
            element=self.element.id,
            type=self.element.type,
            seq=seq,
            ts_ms=int(now * 1000),
            user=user,
            event=event,
            area=area,
            cell=cell,
        )
        fields = ev.fields()
        fields["mac"] = mac(fields, self.element.secret)
        data = json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"
        return ev, data


def encode_ack(ack: FeedAck) -> bytes:
    """One acknowledgement line (``\\n`` included)."""
    out: dict[str, Any] = {"v": FEED_VERSION, "seq": ack.seq, "ok": ack.ok}
    if ack.reason is not None:
        out["reason"] = ack.reason
    return json.dumps(out, separators=(",", ":")).encode() + b"\n"


def parse_ack(line: bytes) -> FeedAck:
    """Read an acknowledgement line."""
    value = _load(line)
    seq = value.get("seq")
    ok = value.get("ok")
    reason = value.get("reason")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        raise ElementError("bad ack seq")
    if not isinstance(ok, bool) or (reason is not None and not isinstance(reason, str)):
        raise ElementError("bad ack")
    return FeedAck(seq, ok, reason)
