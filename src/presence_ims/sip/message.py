"""SIP requests and responses.

A message is a start line, an ordered list of header fields and a body.
Header fields are kept as text exactly as received (name spelling included);
lookups are case-insensitive and understand compact forms.  Typed views
(``msg.via``, ``msg.cseq``, ``msg.from_`` ...) parse on access.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import SipParseError
from .headers import (
    LIST_HEADERS,
    CSeq,
    MediaType,
    NameAddr,
    TokenWithParams,
    Via,
    canonical_name,
    normalize_name,
    parse_contact,
    parse_cseq,
    parse_media_type,
    parse_name_addr,
    parse_token_params,
    parse_uint,
    parse_via,
    split_list,
)
from .uri import URI

SIP_VERSION = "SIP/2.0"

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


class Headers:
    """Ordered, case-insensitive multimap of header fields.

    Each field is ``(key, name, value)``: ``key`` is the normalised name
    (lower case, compact form expanded), ``name`` the spelling to write out.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str, str]] = [
            (normalize_name(name), name, value) for name, value in fields
        ]

    @classmethod
    def _from_raw(cls, fields: list[tuple[str, str, str]]) -> Headers:
        h = cls.__new__(cls)
        h._fields = fields
        return h

    @classmethod
    def from_keyed(cls, fields: list[tuple[str, str, str]]) -> Headers:
        """Headers from ``(key, name, value)`` fields whose key is already
        ``normalize_name(name)`` and whose name is already the spelling to write
        (a canonical one): what ``Headers([(name, value), ...])`` holds, without
        normalising each name again.  The list is taken, not copied."""
        return cls._from_raw(fields)

    def copy(self) -> Headers:
        return Headers._from_raw(list(self._fields))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _, name, value in self._fields:
            yield name, value

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = normalize_name(name)
        for k, _, _ in self._fields:
            if k == key:
                return True
        return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._fields] == [(k, v) for k, _, v in other._fields]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def get(self, name: str) -> str | None:
        """Value of the first field with this name (whole line, not split)."""
        key = normalize_name(name)
        for k, _, value in self._fields:
            if k == key:
                return value
        return None

    def get_lines(self, name: str) -> list[str]:
        """Every field with this name, one entry per header line."""
        key = normalize_name(name)
        return [value for k, _, value in self._fields if k == key]

    def get_all(self, name: str) -> list[str]:
        """Every value: lines of list headers are split on commas (RFC 3261 7.3.1)."""
        key = normalize_name(name)
        lines = [value for k, _, value in self._fields if k == key]
        if key not in LIST_HEADERS:
            return lines
        out: list[str] = []
        for line in lines:
            out.extend(split_list(line))
        return out

    def count(self, name: str) -> int:
        key = normalize_name(name)
        return sum(1 for k, _, _ in self._fields if k == key)

    def add(self, name: str, value: str) -> None:
        """Append a field (after any field of the same name)."""
        key = normalize_name(name)
        last = -1
        for i, (k, _, _) in enumerate(self._fields):
            if k == key:
                last = i
        entry = (key, _spelling(name, key), value)
        if last >= 0:
            self._fields.insert(last + 1, entry)
        else:
            self._fields.append(entry)

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before any field of the same name (Via, Record-Route)."""
        key = normalize_name(name)
        entry = (key, _spelling(name, key), value)
        for i, (k, _, _) in enumerate(self._fields):
            if k == key:
                self._fields.insert(i, entry)
                return
        self._fields.append(entry)

    def set(self, name: str, value: str) -> None:
        """Replace every field with this name by one field (in the first one's place)."""
        key = normalize_name(name)
        entry = (key, _spelling(name, key), value)
        for i, (k, _, _) in enumerate(self._fields):
            if k == key:
                self._fields[i] = entry
                self._fields[i + 1 :] = [f for f in self._fields[i + 1 :] if f[0] != key]
                return
        self._fields.append(entry)

    def set_all(self, name: str, values: Iterable[str]) -> None:
        """Replace every field with this name by one line per value."""
        key = normalize_name(name)
        entries = [(key, _spelling(name, key), v) for v in values]
        for i, (k, _, _) in enumerate(self._fields):
            if k == key:
                rest = [f for f in self._fields[i:] if f[0] != key]
                self._fields[i:] = entries + rest
                return
        self._fields.extend(entries)

    def remove(self, name: str) -> int:
        """Remove every field with this name; return how many were removed."""
        key = normalize_name(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[0] != key]
        return before - len(self._fields)

    def pop_first_value(self, name: str) -> str | None:
        """Remove and return the first value of a list header (top Via, top Route)."""
        key = normalize_name(name)
        for i, (k, spelling, value) in enumerate(self._fields):
            if k != key:
                continue
            values = split_list(value) if key in LIST_HEADERS else [value]
            if len(values) <= 1:
                del self._fields[i]
            else:
                self._fields[i] = (k, spelling, ", ".join(values[1:]))
            return values[0] if values else None
        return None

    def serialize_into(self, out: list[str]) -> None:
        for _, name, value in self._fields:
            out.append(f"{name}: {value}\r\n")


def _spelling(name: str, key: str) -> str:
    return canonical_name(key) if name.islower() or len(name) == 1 else name


@dataclass(slots=True, eq=False)
class Message:
    """Common part of requests and responses."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    # -- header shortcuts ---------------------------------------------------
    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def call_id(self) -> str:
        value = self.headers.get("call-id")
        if value is None:
            raise SipParseError("missing Call-ID header")
        return value.strip()

    @property
    def cseq(self) -> CSeq:
        value = self.headers.get("cseq")
        if value is None:
            raise SipParseError("missing CSeq header")
        return parse_cseq(value)

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("via")]

    @property
    def via(self) -> Via:
        """Top Via."""
        values = self.headers.get_all("via")
        if not values:
            raise SipParseError("missing Via header")
        return parse_via(values[0])

    @property
    def from_(self) -> NameAddr:
        value = self.headers.get("from")
        if value is None:
            raise SipParseError("missing From header")
        return parse_name_addr(value, "From")

    @property
    def to(self) -> NameAddr:
        value = self.headers.get("to")
        if value is None:
            raise SipParseError("missing To header")
        return parse_name_addr(value, "To")

    @property
    def contacts(self) -> list[NameAddr]:
        out: list[NameAddr] = []
        for v in self.headers.get_all("contact"):
            c = parse_contact(v)
            if isinstance(c, NameAddr):
                out.append(c)
        return out

    @property
    def contact_star(self) -> bool:
        return any(v.strip() == "*" for v in self.headers.get_all("contact"))

    def name_addrs(self, name: str) -> list[NameAddr]:
        """Route, Record-Route, Path, Service-Route, P-Asserted-Identity, P-Associated-URI ..."""
        label = canonical_name(normalize_name(name))
        return [parse_name_addr(v, label) for v in self.headers.get_all(name)]

    @property
    def expires(self) -> int | None:
        value = self.headers.get("expires")
        return None if value is None else parse_uint(value, "Expires")

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("max-forwards")
        return None if value is None else parse_uint(value, "Max-Forwards", 255)

    @property
    def event(self) -> TokenWithParams | None:
        value = self.headers.get("event")
        return None if value is None else parse_token_params(value, "Event")

    @property
    def content_type(self) -> MediaType | None:
        value = self.headers.get("content-type")
        return None if value is None else parse_media_type(value)

    def tokens(self, name: str) -> list[str]:
        """Values of a token list header, lower-cased (Require, Supported, Allow-Events ...)."""
        return [t.strip().lower() for t in self.headers.get_all(name)]

    # -- serialisation ------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire form; Content-Length is (re)written to match the body."""
        out = [self.start_line(), "\r\n"]
        for key, name, value in self.headers._fields:
            if key != "content-length":
                out.append(f"{name}: {value}\r\n")
        out.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "".join(out).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()


@dataclass(slots=True, eq=False)
class Request(Message):
    method: str = "OPTIONS"
    uri: URI | None = None
    """Request-URI (``None`` only while a request is being built)."""
    version: str = SIP_VERSION

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def copy(self) -> Request:
        return Request(self.headers.copy(), self.body, self.method, self.uri, self.version)

    @property
    def ruri(self) -> URI:
        if self.uri is None:
            raise SipParseError("request without Request-URI")
        return self.uri

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


@dataclass(slots=True, eq=False)
class Response(Message):
    status: int = 200
    reason: str = "OK"
    version: str = SIP_VERSION

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def copy(self) -> Response:
        return Response(self.headers.copy(), self.body, self.status, self.reason, self.version)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})


def method_of(msg: Message) -> str:
    """A request's method, or the method in a response's CSeq ("" when it has none).

    Never raises: for labels and logs, even of a 400 made for a request without CSeq.
    """
    if isinstance(msg, Request):
        return msg.method
    return (msg.headers.get("cseq") or "").rpartition(" ")[2]


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status) or {
        1: "Provisional",
        2: "OK",
        3: "Redirect",
        4: "Client Error",
        5: "Server Error",
        6: "Global Failure",
    }.get(status // 100, "Unknown")


def sanitize_reason(text: str) -> str:
    """A reason phrase that is safe to put on a status line (no CR/LF, bounded)."""
    return " ".join(text.split())[:120] or "Bad Request"


# What a response copies from its request, in this order, with the spelling it is written in.
_COPY = {key: canonical_name(key) for key in ("via", "from", "to", "call-id", "cseq")}
_COPY_DIALOG = {
    key: canonical_name(key) for key in ("via", "record-route", "from", "to", "call-id", "cseq")
}
_COPY_RANK = {key: rank for rank, key in enumerate(_COPY_DIALOG)}


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` per RFC 3261 section 8.2.6.

    Via, From, To, Call-ID and CSeq are copied as text (so a response can be
    built even when one of them does not parse); the To tag is added when
    ``to_tag`` is given and the To header has none.  Record-Route is copied
    into 101-299 responses to dialog-creating requests (RFC 3261 12.1.1).
    """
    keys = _COPY_DIALOG if 100 < status < 300 and request.method in DIALOG_CREATING else _COPY
    picked = [f for f in request.headers._fields if f[0] in keys]
    rank = _COPY_RANK.__getitem__
    picked.sort(key=lambda f: rank(f[0]))  # grouped in the order of ``keys``, stable within
    tag = to_tag if to_tag and status > 100 else None
    fields = []
    for key, _, line in picked:
        if key == "to" and tag is not None and ";tag=" not in line.replace(" ", "").lower():
            line = f"{line};tag={tag}"
        fields.append((key, keys[key], line))
    out = Headers._from_raw(fields)
    for name, value in headers:
        out.add(name, value)
    # the phrases of the table are already what sanitize_reason makes of them
    phrase = sanitize_reason(reason) if reason else reason_phrase(status)
    return Response(out, body, status, phrase)
