"""Turning bytes into messages: datagrams, TCP/TLS streams, and validation.

``parse_datagram`` splits one UDP datagram; :class:`StreamFramer` frames a
byte stream by Content-Length.  Both only split start line, header fields and
body.  :func:`validate_request` and :func:`validate_response` then check what
RFC 3261 requires of every message a transaction layer will look at (the
mandatory headers, their syntax, CSeq against the method, Content-Length), so
that a server answers a malformed request with the right status and a reason
that names the defect, or drops a malformed response silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SipFramingError, SipParseError
from .grammar import (
    HEADER_NAME_RE,
    HOST,
    IPV4,
    IPV6REF,
    METHOD_RE,
    PARAMCHARS,
    PASSWORD,
    QUOTED_STRING,
    REQUEST_LINE_RE,
    STATUS_LINE_RE,
    SWS,
    TOKEN,
    TOKEN_CHARSET,
    TOKEN_RE,
    USER,
)
from .headers import (
    COMPACT_FORMS,
    LIST_HEADERS,
    CSeq,
    canonical_name,
    normalize_name,
    parse_contact,
    parse_cseq,
    parse_name_addr,
    parse_tokens,
    parse_uint,
    parse_via,
    split_list,
)
from .message import SIP_VERSION, Headers, Message, Request, Response
from .uri import PORT_0_65535, SipURI, parse_uri

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Size limits; a core takes its own small config, never the app settings."""

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    """Largest message accepted, headers and body together (bytes)."""
    max_header_fields: int = 256
    """Most header lines in one message."""


DEFAULT_LIMITS = ParserLimits()


def _decode(head: bytes) -> str:
    return head.decode("utf-8", "surrogateescape")


def _split_head(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Start line and header fields of a message head (no empty line at the end)."""
    lines = text.split("\r\n")
    if "\r\n " in text or "\r\n\t" in text:
        return _split_head_general(lines)  # folded lines
    fields: list[tuple[str, str, str]] = []
    append = fields.append
    known = _KNOWN_KEYS.get
    start = lines[0]
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = known(name)
        if key is None or not colon:
            if not colon or not name:
                # errors: the general loop below names the defect
                return _split_head_general(lines)
            name = name.rstrip(" \t")
            key = known(name)
            if key is None:
                if not HEADER_NAME_RE.fullmatch(name):
                    raise SipParseError("malformed header name")
                key = normalize_name(name)
        append((key, name, value.strip(" \t")))
    return start, fields


def _split_head_general(lines: list[str]) -> tuple[str, list[tuple[str, str, str]]]:
    start = lines[0]
    fields: list[tuple[str, str, str]] = []
    for line in lines[1:]:
        if not line:
            raise SipParseError("empty header line")
        if line[0] in " \t":
            if not fields:
                raise SipParseError("continuation line before the first header")
            key, name, value = fields[-1]
            fields[-1] = (key, name, f"{value} {line.strip()}".strip())
            continue
        colon = line.find(":")
        if colon <= 0:
            raise SipParseError("header line without a colon")
        name = line[:colon].rstrip(" \t")
        known = _KNOWN_KEYS.get(name)
        if known is None:
            if not HEADER_NAME_RE.fullmatch(name):
                raise SipParseError("malformed header name")
            known = normalize_name(name)
        fields.append((known, name, line[colon + 1 :].strip(" \t")))
    return start, fields


def _known_keys() -> dict[str, str]:
    """Keys of the header names seen in nearly every message, in their usual spellings.

    A fixed table (built once, never changed) that spares the name regex and
    ``normalize_name`` on the hot path; other names take the general path.
    """
    names = (
        "Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Contact", "Content-Length",
        "Content-Type", "Expires", "Route", "Record-Route", "Event", "Allow", "Allow-Events",
        "Supported", "Require", "Proxy-Require", "User-Agent", "Server", "Accept", "Path",
        "Service-Route", "Authorization", "WWW-Authenticate", "Proxy-Authorization",
        "Proxy-Authenticate", "Authentication-Info", "Subscription-State", "SIP-ETag",
        "SIP-If-Match", "P-Asserted-Identity", "P-Preferred-Identity", "P-Associated-URI",
        "P-Charging-Vector", "P-Charging-Function-Addresses", "P-Access-Network-Info",
        "P-Visited-Network-ID", "Privacy", "Security-Client", "Security-Server",
        "Security-Verify", "Date", "Subject", "Content-Encoding", "Unsupported",
    )
    table: dict[str, str] = {}
    for name in names:
        for spelling in (name, name.lower(), name.upper(), canonical_name(name.lower())):
            table[spelling] = normalize_name(name)
    for compact in COMPACT_FORMS:
        table[compact] = table[compact.upper()] = normalize_name(compact)
    return table


_KNOWN_KEYS = _known_keys()


def _is_status_line(start: str) -> bool:
    return start[:4].upper() == "SIP/"


def _start_message(start: str, fields: list[tuple[str, str, str]]) -> Message:
    headers = Headers._from_raw(fields)
    if _is_status_line(start):
        m = STATUS_LINE_RE.fullmatch(start)
        if not m:
            raise SipParseError("malformed status line")
        status = int(m.group(2))
        if len(m.group(2)) != 3 or not 100 <= status <= 699:
            raise SipParseError("status code out of range")
        return Response(headers, b"", status, m.group(3), m.group(1))
    m = REQUEST_LINE_RE.fullmatch(start)
    if not m:
        partial = Request(headers, b"", start.split(" ", 1)[0], None)
        raise SipParseError("malformed request line", partial=partial)
    method, uri_text, version = m.groups()
    request = Request(headers, b"", method, None, version)
    try:
        request.uri = parse_uri(uri_text)
    except SipParseError as exc:
        raise SipParseError(f"malformed Request-URI: {exc.reason}", partial=request) from None
    return request


def _content_length(msg: Message) -> int | None:
    lines = [value for key, _, value in msg.headers._fields if key == "content-length"]
    if not lines:
        return None
    if len(lines) == 1 and lines[0].isdigit() and lines[0].isascii():
        return int(lines[0])  # the usual case: one plain number
    values = set()
    for line in lines:
        for v in split_list(line):
            values.add(v)
    if len(values) != 1:
        raise SipFramingError("conflicting Content-Length values", partial=msg)
    text = values.pop()
    if not text.isdigit() or not text.isascii():
        raise SipFramingError("malformed Content-Length header", partial=msg)
    return int(text)


def parse_datagram(data: bytes, limits: ParserLimits = DEFAULT_LIMITS) -> Message:
    """Parse one UDP datagram into a request or response (framing only, see validate_*).

    Octets after the Content-Length body are discarded (RFC 3261 18.3); a
    missing Content-Length means the body runs to the end of the datagram.
    """
    if len(data) > limits.max_message_size:
        raise SipParseError("message too large", status=513)
    offset = 0
    while data.startswith(b"\r\n", offset):
        offset += 2
    end = data.find(b"\r\n\r\n", offset)
    if end < 0:
        raise SipParseError("header section not terminated by an empty line")
    msg = _parse_head(data[offset:end], limits)
    body_start = end + 4
    length = _content_length(msg)
    available = len(data) - body_start
    if length is None:
        msg.body = data[body_start:]
    elif length > available:
        raise SipParseError("Content-Length larger than the datagram", partial=msg)
    else:
        msg.body = data[body_start : body_start + length]
    return msg


def _salvage(text: str) -> Request | None:
    """The well-formed header lines of a request whose head does not split, or None.

    A server can then still answer the defect with a 400 (it needs Via, From,
    To, Call-ID and CSeq); a response is never answered, so responses give None.
    """
    lines = text.split("\r\n")
    start = lines[0]
    if _is_status_line(start):
        return None
    fields: list[tuple[str, str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if colon and name and line[0] not in " \t" and HEADER_NAME_RE.fullmatch(name):
            fields.append((normalize_name(name), name, value.strip(" \t")))
    return Request(Headers._from_raw(fields), b"", start.split(" ", 1)[0], None)


def _parse_head(head: bytes, limits: ParserLimits) -> Message:
    text = _decode(head)
    try:
        start, fields = _split_head(text)
    except SipParseError as exc:
        if exc.partial is None:
            exc.partial = _salvage(text)
        raise
    if len(fields) > limits.max_header_fields:
        raise SipParseError("too many header fields")
    try:
        return _start_message(start, fields)
    except SipParseError as exc:
        if exc.partial is None and not _is_status_line(start):
            exc.partial = Request(Headers._from_raw(fields), b"", start.split(" ", 1)[0], None)
        raise


class StreamFramer:
    """Frames SIP messages on a TCP/TLS byte stream by Content-Length.

    ``feed(data)`` then call ``next_message()`` until it returns ``None``
    ("need more").  A framing error poisons the framer: the connection must be
    closed after an answer (the stream position is lost).
    """

    def __init__(self, limits: ParserLimits = DEFAULT_LIMITS) -> None:
        self._buf = bytearray()
        self._limits = limits
        self._pending: Message | None = None
        self._body_len = 0
        self.closed = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_message(self) -> Message | None:
        if self.closed:
            raise SipFramingError("stream framing lost")
        try:
            return self._next()
        except SipParseError:
            self.closed = True
            raise

    def _next(self) -> Message | None:
        if self._pending is None:
            # RFC 5626 keep-alives (CRLF) between messages
            while self._buf.startswith(b"\r\n"):
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self._limits.max_message_size:
                    raise SipFramingError("header section too large", status=513)
                return None
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            msg = _parse_head(head, self._limits)
            length = _content_length(msg)
            if length is None:
                raise SipFramingError("missing Content-Length on a stream transport", partial=msg)
            if end + length > self._limits.max_message_size:
                raise SipFramingError("message too large", status=513, partial=msg)
            self._pending = msg
            self._body_len = length
        if len(self._buf) < self._body_len:
            return None
        msg = self._pending
        msg.body = bytes(self._buf[: self._body_len])
        del self._buf[: self._body_len]
        self._pending = None
        return msg


# -- validation -----------------------------------------------------------------

# -- validation fast paths ------------------------------------------------------------
#
# Validation only needs to know that a header parses.  For the shapes nearly every
# message has, one regex built from the same grammar fragments answers that without
# building the typed objects.  Each pattern accepts a subset of what the full parser
# accepts (tests/property checks this); anything it does not match goes through the
# full parser, which accepts it or raises with the reason naming the defect.

_PORT = PORT_0_65535
_SIP_URI = (
    rf"[Ss][Ii][Pp][Ss]?:(?:{USER}(?::{PASSWORD})?@)?{HOST}(?::{_PORT})?"
    rf"(?:;{PARAMCHARS}(?:={PARAMCHARS})?)*"
)
_GENERIC_PARAM = rf"{SWS}{TOKEN}{SWS}(?:={SWS}(?:{TOKEN}|{IPV6REF}|{QUOTED_STRING}))?{SWS}"
_NAME_ADDR_FAST = re.compile(
    rf"(?:{QUOTED_STRING}|{TOKEN}(?:[ \t]+{TOKEN})*)?[ \t]*<{_SIP_URI}>[ \t]*"
    rf"(?:;{_GENERIC_PARAM}(?:;{_GENERIC_PARAM})*)?"
)
_IPV6_ADDRESS = r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]*"
_VIA_PARAM = (
    rf"(?:(?i:branch)={TOKEN}"
    rf"|(?i:rport)(?:={_PORT})?"
    rf"|(?i:received)=(?:{IPV4}|{_IPV6_ADDRESS}|{IPV6REF})"
    rf"|(?!(?i:branch|rport)(?:[=;]|$)){TOKEN}(?:=(?:{TOKEN}|{IPV6REF}|{QUOTED_STRING}))?)"
)
_VIA_FAST = re.compile(
    rf"(?i:SIP)/2\.0/{TOKEN}[ \t]+{HOST}(?::{_PORT})?(?:;{_VIA_PARAM})*"
)


def _check_via(value: str) -> None:
    if _VIA_FAST.fullmatch(value) is None:
        parse_via(value)


def _check_name_addr(value: str, key: str) -> None:
    if _NAME_ADDR_FAST.fullmatch(value.strip()) is None:
        parse_name_addr(value, key_label(key))


def _check_contact(value: str) -> None:
    if _NAME_ADDR_FAST.fullmatch(value.strip()) is None:
        parse_contact(value)


_MANDATORY = ("via", "from", "to", "call-id", "cseq")
_SINGLE = ("call-id", "from", "to", "cseq", "max-forwards", "content-type", "expires")


def _index(msg: Message) -> dict[str, list[str]]:
    """Header lines by key, in order (one pass instead of one scan per lookup)."""
    index: dict[str, list[str]] = {}
    for key, _, value in msg.headers._fields:
        lines = index.get(key)
        if lines is None:
            index[key] = [value]
        else:
            lines.append(value)
    return index


def _values(index: dict[str, list[str]], key: str) -> list[str]:
    """Like ``Headers.get_all``: the lines of a list header are split on commas."""
    lines = index.get(key)
    if not lines:
        return []
    if key not in LIST_HEADERS:
        return lines
    out: list[str] = []
    for line in lines:
        out.extend(split_list(line))
    return out


def _check_common(msg: Message, index: dict[str, list[str]]) -> CSeq:
    for key in _MANDATORY:
        if key not in index:
            raise SipParseError(f"missing {key_label(key)} header", partial=msg)
    for key in _SINGLE:
        lines = index.get(key)
        if lines is not None and len(lines) > 1:
            raise SipParseError(f"more than one {key_label(key)} header", partial=msg)
    vias = _values(index, "via")
    if not vias:
        raise SipParseError("empty Via header", partial=msg)
    for value in vias:
        _check_via(value)
    call_id = index["call-id"][0]
    if not call_id or " " in call_id or "\t" in call_id:
        raise SipParseError("malformed Call-ID header", partial=msg)
    _check_name_addr(index["from"][0], "from")
    _check_name_addr(index["to"][0], "to")
    cseq = parse_cseq(index["cseq"][0])
    mf = index.get("max-forwards")
    if mf is not None:
        parse_uint(mf[0], "Max-Forwards", 255)
    return cseq


def key_label(key: str) -> str:
    return canonical_name(key)


# What :func:`_usual_and_valid` checks in each header, by key.
_VIA, _FROM, _TO, _CALL_ID, _CSEQ, _MAX_FORWARDS, _CONTENT_TYPE, _EXPIRES, _NAME_ADDRS, _TOKENS = range(10)
_CHECKED = {
    "via": _VIA, "from": _FROM, "to": _TO, "call-id": _CALL_ID, "cseq": _CSEQ,
    "max-forwards": _MAX_FORWARDS, "content-type": _CONTENT_TYPE, "expires": _EXPIRES,
    "contact": _NAME_ADDRS, "route": _NAME_ADDRS, "record-route": _NAME_ADDRS, "path": _NAME_ADDRS,
    "require": _TOKENS, "proxy-require": _TOKENS,
}


def _usual_and_valid(msg: Message, is_request: bool) -> str | None:
    """The CSeq method when the message passes every check of validation, found in one pass
    over its fields for the usual shapes; ``None`` when anything is unusual or wrong.

    The checks are those of :func:`_check_common` (and, for a request, of
    :func:`validate_request`) on the same values, with the fast regexes only: one value
    per line, plain CSeq and numbers.  It never raises: ``None`` sends the message
    through the general checks, which name the defect (or accept a shape this pass
    does not know).
    """
    via_fast = _VIA_FAST.fullmatch
    name_addr_fast = _NAME_ADDR_FAST.fullmatch
    checked = _CHECKED.get
    method: str | None = None
    vias = froms = tos = call_ids = max_forwards = content_types = expires = 0
    for key, _, value in msg.headers._fields:
        kind = checked(key)
        if kind is None:
            continue
        if kind == _VIA:
            if "," in value:
                return None
            value = value.strip()
            if not value or via_fast(value) is None:
                return None
            vias += 1
        elif kind == _FROM or kind == _TO:
            if name_addr_fast(value.strip()) is None:
                return None
            if kind == _FROM:
                froms += 1
            else:
                tos += 1
        elif kind == _CALL_ID:
            if not value or " " in value or "\t" in value:
                return None
            call_ids += 1
        elif kind == _CSEQ:
            number, space, name = value.partition(" ")
            if method is not None or not (
                space and number.isdigit() and number.isascii() and name
                and not name.strip(TOKEN_CHARSET) and int(number) < 2**31
            ):
                return None
            method = name
        elif kind == _MAX_FORWARDS:
            text = value.strip()
            if max_forwards or not (text.isdigit() and text.isascii() and int(text) <= 255):
                return None
            max_forwards = 1
        elif kind == _CONTENT_TYPE:
            content_types += 1
        elif kind == _EXPIRES:
            text = value.strip()
            if is_request and not (text.isdigit() and text.isascii() and int(text) <= 2**32 - 1):
                return None
            expires += 1
        elif not is_request:
            continue
        elif kind == _NAME_ADDRS:
            if "," in value:
                return None
            value = value.strip()
            if value and name_addr_fast(value) is None:
                return None
        else:  # _TOKENS
            for item in split_list(value):
                if not TOKEN_RE.fullmatch(item):
                    return None
    if not vias or froms != 1 or tos != 1 or call_ids != 1 or content_types > 1 or expires > 1:
        return None
    return method


def validate_request(req: Request) -> None:
    """Check a parsed request as RFC 3261 sections 8.2 and 16.3 need it.

    Raises :class:`SipParseError` with the status to answer (400, or 505 for a
    version other than SIP/2.0) and a reason naming the defect.
    """
    if req.version == SIP_VERSION and METHOD_RE.fullmatch(req.method):
        method = _usual_and_valid(req, True)
        if (
            method is not None
            and (method == req.method or (method == "INVITE" and req.method == "ACK"))
            and not (isinstance(req.uri, SipURI) and req.uri.headers)
        ):
            return
    try:
        if req.version.upper() != SIP_VERSION:
            raise SipParseError("SIP version not supported", status=505)
        if not METHOD_RE.fullmatch(req.method):
            raise SipParseError("malformed method")
        index = _index(req)
        cseq = _check_common(req, index)
        if isinstance(req.uri, SipURI) and req.uri.headers:
            raise SipParseError("Request-URI must not contain headers")
        if cseq.method != req.method and not (req.method == "ACK" and cseq.method == "INVITE"):
            raise SipParseError("CSeq method does not match the request method")
        if "contact" in index:
            for value in _values(index, "contact"):
                _check_contact(value)
        for name in ("route", "record-route", "path"):
            if name in index:
                for value in _values(index, name):
                    _check_name_addr(value, name)
        for name in ("require", "proxy-require"):
            for line in index.get(name, ()):
                parse_tokens(line, key_label(name))
        expires = index.get("expires")
        if expires is not None:
            parse_uint(expires[0], "Expires")
    except SipParseError as exc:
        if exc.partial is None:
            exc.partial = req
        raise


def validate_response(resp: Response) -> None:
    """Check what the transaction layer reads from a response (drop it if this raises)."""
    if resp.version == SIP_VERSION and _usual_and_valid(resp, False) is not None:
        return
    if resp.version.upper() != SIP_VERSION:
        raise SipParseError("SIP version not supported", partial=resp)
    _check_common(resp, _index(resp))
