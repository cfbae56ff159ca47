"""Header field names and typed views of header values.

The message keeps every header value as text; the functions here turn a value
into a typed, frozen object on demand (and back with ``str()``), so a proxy
that forwards a message never re-serialises headers it did not touch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import SipParseError
from .grammar import (
    DISPLAY_TOKENS_RE,
    GENERIC_PARAM_RE,
    HOST,
    QUOTED_STRING,
    TOKEN,
    TOKEN_CHARSET,
    TOKEN_RE,
)
from .uri import URI, Params, SipURI, _del_param, _get_param, _has_param, _set_param, parse_uri

# -- names ------------------------------------------------------------------

COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Canonical spelling used when this stack adds a header.
CANONICAL: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
    "p-associated-uri": "P-Associated-URI",
    "p-access-network-info": "P-Access-Network-Info",
    "p-visited-network-id": "P-Visited-Network-ID",
    "p-charging-vector": "P-Charging-Vector",
    "p-charging-function-addresses": "P-Charging-Function-Addresses",
    "mime-version": "MIME-Version",
}

# Headers whose grammar is a comma-separated list (RFC 3261 section 7.3.1);
# other headers (WWW-Authenticate, Date ...) contain commas that are not separators.
LIST_HEADERS = frozenset(
    {
        "via", "route", "record-route", "contact", "path", "service-route",
        "p-associated-uri", "p-asserted-identity", "p-preferred-identity",
        "allow", "allow-events", "supported", "require", "proxy-require", "unsupported",
        "accept", "accept-encoding", "accept-language", "content-encoding",
        "security-client", "security-server", "security-verify",
        "p-visited-network-id", "in-reply-to", "reply-to",
    }
)


def normalize_name(name: str) -> str:
    """Lower-case key of a header name, compact forms expanded."""
    low = name.lower()
    return COMPACT_FORMS.get(low, low)


def canonical_name(key: str) -> str:
    """Display spelling of a lower-case header key (``call-id`` -> ``Call-ID``)."""
    return CANONICAL.get(key) or "-".join(p.capitalize() for p in key.split("-"))


def split_list(value: str) -> list[str]:
    """Split a list header value on commas outside quotes and angle brackets."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    out: list[str] = []
    start = 0
    quoted = False
    angle = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angle += 1
        elif c == ">":
            angle = max(0, angle - 1)
        elif c == "," and angle == 0:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [part for part in out if part]


# -- generic parameters ---------------------------------------------------


# via-received = "received" EQUAL (IPv4address / IPv6address): an IPv6 address without brackets
_RECEIVED_V6_RE = re.compile(r"[ \t]*(received)[ \t]*=[ \t]*([0-9A-Fa-f]*:[0-9A-Fa-f:.]*)[ \t]*", re.I)


def parse_header_params(text: str, where: str) -> Params:
    """Parse ``;name[=value]...`` header parameters (``text`` starts after the first ``;``)."""
    # Fast path: every name and value a plain token (branch, tag, lr, expires ...).
    fast: list[tuple[str, str | None]] = []
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        name = name.strip(" \t")
        if not name or name.strip(TOKEN_CHARSET):
            break
        if eq:
            value = value.strip(" \t")
            if not value or value.strip(TOKEN_CHARSET):
                break
            fast.append((name, value))
        else:
            fast.append((name, None))
    else:
        return tuple(fast)
    return _parse_header_params(text, where)


def _parse_header_params(text: str, where: str) -> Params:
    out: list[tuple[str, str | None]] = []
    pos = 0
    n = len(text)
    while True:
        m = GENERIC_PARAM_RE.match(text, pos)
        if m is None or (m.end() < n and text[m.end()] != ";"):
            m = _RECEIVED_V6_RE.match(text, pos) or m
        if not m:
            raise SipParseError(f"malformed parameter in {where}")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos == n:
            return tuple(out)
        if text[pos] != ";":
            raise SipParseError(f"malformed parameter in {where}")
        pos += 1


def params_text(params: Params) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def unquote(text: str) -> str:
    """Contents of a quoted-string (quoted-pairs resolved); tokens are returned as they are."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- name-addr / addr-spec ------------------------------------------------

_NAME_ADDR_RE = re.compile(
    rf"[ \t]*(?:({QUOTED_STRING})|({TOKEN}(?:[ \t]+{TOKEN})*))?[ \t]*<([^<>\s]*)>[ \t]*(?:;(.*))?$",
    re.S,
)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``[display-name] <URI> *(;param)`` or an addr-spec with header params.

    Used for From, To, Contact, Route, Record-Route, Path, Service-Route,
    P-Asserted-Identity, P-Preferred-Identity, P-Associated-URI, Reply-To.
    """

    uri: URI
    display: str | None = None
    """Display name as written (quotes included when it was quoted)."""
    params: Params = ()
    """Header parameters (tag, expires, q, +sip.instance ...)."""

    def __str__(self) -> str:
        display = f"{self.display} " if self.display else ""
        return f"{display}<{self.uri}>{params_text(self.params)}"

    def param(self, name: str) -> str | None:
        value = _get_param(self.params, name)
        return unquote(value) if value else value

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return replace(self, params=_set_param(self.params, name, value))

    def without_param(self, name: str) -> NameAddr:
        return replace(self, params=_del_param(self.params, name))

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    @property
    def display_name(self) -> str | None:
        return unquote(self.display) if self.display else None


def parse_name_addr(value: str, where: str = "header") -> NameAddr:
    """Parse a name-addr or addr-spec value; raise :class:`SipParseError` naming ``where``."""
    text = value.strip()
    if "<" in text:
        m = _NAME_ADDR_RE.match(text)
        if not m:
            raise SipParseError(f"malformed {where} header")
        quoted, tokens, uri_text, ptext = m.groups()
        try:
            uri = parse_uri(uri_text)
        except SipParseError as exc:
            raise SipParseError(f"malformed URI in {where} header: {exc.reason}") from None
        params = parse_header_params(ptext, f"{where} header") if ptext is not None else ()
        return NameAddr(uri, quoted or tokens, params)
    # addr-spec: the URI ends at the first ';' and may not contain ',', '?' or ';' (RFC 3261 20)
    uri_text, semi, ptext = text.partition(";")
    uri_text = uri_text.rstrip(" \t")
    if not uri_text or any(c in uri_text for c in " \t?,\"<>"):
        raise SipParseError(f"malformed {where} header")
    try:
        uri = parse_uri(uri_text)
    except SipParseError as exc:
        raise SipParseError(f"malformed URI in {where} header: {exc.reason}") from None
    params = parse_header_params(ptext, f"{where} header") if semi else ()
    return NameAddr(uri, None, params)


@dataclass(frozen=True, slots=True)
class ContactStar:
    """``Contact: *`` (remove all bindings)."""

    def __str__(self) -> str:
        return "*"


def parse_contact(value: str) -> NameAddr | ContactStar:
    if value.strip() == "*":
        return ContactStar()
    return parse_name_addr(value, "Contact")


# -- Via --------------------------------------------------------------------

MAGIC_COOKIE = "z9hG4bK"

_VIA_RE = re.compile(
    rf"[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*({TOKEN})[ \t]+({HOST})(?:[ \t]*:[ \t]*(\d{{1,5}}))?[ \t]*(?:;(.*))?$",
    re.S | re.I,
)
# The same rule without the optional whitespace, for the usual compact form (tried first).
_VIA_COMPACT_RE = re.compile(rf"(?i:SIP)/2\.0/({TOKEN})[ \t]+({HOST})(?::(\d{{1,5}}))?(?:;(.*))?")
_VIA_LENIENT_RE = re.compile(rf"[^/]*/[^/]*/[ \t]*{TOKEN}[ \t]+({HOST})(?::(\d{{1,5}}))?", re.I)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/TRANSPORT host[:port];params``."""

    transport: str
    """Transport in upper case (UDP, TCP, TLS, SCTP ...)."""
    host: str
    port: int | None = None
    params: Params = ()

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{params_text(self.params)}"

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> Via:
        return Via(self.transport, self.host, self.port, _set_param(self.params, name, value))

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def received(self) -> str | None:
        return self.param("received")

    @property
    def rport(self) -> int | bool | None:
        """``None``: no rport; ``True``: rport requested (empty); int: filled in by the server."""
        for name, value in self.params:
            if name.lower() == "rport":
                return int(value) if value else True
        return None

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    @property
    def is_rfc3261(self) -> bool:
        b = self.branch
        return b is not None and b.startswith(MAGIC_COOKIE)


def parse_via(value: str) -> Via:
    m = _VIA_COMPACT_RE.fullmatch(value) or _VIA_RE.match(value)
    if not m:
        raise SipParseError("malformed Via header")
    transport, host, port_text, ptext = m.groups()
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        raise SipParseError("port out of range in Via header")
    params = parse_header_params(ptext, "Via header") if ptext is not None else ()
    for name, pvalue in params:
        low = name.lower()
        if low == "rport" and pvalue is not None and not (pvalue.isdigit() and int(pvalue) <= 65535):
            raise SipParseError("malformed rport in Via header")
        if low == "branch" and (pvalue is None or pvalue == ""):
            raise SipParseError("empty branch in Via header")
    return Via(transport.upper(), host, port, params)


def via_sent_by_lenient(value: str) -> tuple[str, int | None, bool] | None:
    """Best-effort sent-by of a malformed top Via (host, port, has rport), for routing a 400."""
    m = _VIA_LENIENT_RE.match(value.strip())
    if not m:
        return None
    port = int(m.group(2)) if m.group(2) else None
    return m.group(1), port, ";rport" in value.lower()


# -- CSeq, numbers, tokens ----------------------------------------------------

_CSEQ_RE = re.compile(rf"[ \t]*(\d+)[ \t]+({TOKEN})[ \t]*$")


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    # the usual ``1 OPTIONS``: ASCII digits, one space, a token (what the rule matches too)
    number, space, method = value.partition(" ")
    if space and number.isdigit() and number.isascii() and method and not method.strip(TOKEN_CHARSET):
        seq = int(number)
    else:
        m = _CSEQ_RE.match(value)
        if not m:
            raise SipParseError("malformed CSeq header")
        seq = int(m.group(1))
        method = m.group(2)
    if seq >= 2**31:
        raise SipParseError("CSeq number out of range")
    return CSeq(seq, method)


def parse_uint(value: str, where: str, maximum: int = 2**32 - 1) -> int:
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise SipParseError(f"malformed {where} header")
    number = int(text)
    if number > maximum:
        raise SipParseError(f"{where} value out of range")
    return number


def parse_tokens(value: str, where: str) -> list[str]:
    """Comma-separated tokens (Require, Supported, Allow, Privacy uses ';')."""
    out = split_list(value)
    for item in out:
        if not TOKEN_RE.fullmatch(item):
            raise SipParseError(f"malformed {where} header")
    return out


# -- Event / Subscription-State ----------------------------------------------

_TOKEN_PARAMS_RE = re.compile(rf"[ \t]*({TOKEN})[ \t]*(?:;(.*))?$", re.S)


@dataclass(frozen=True, slots=True)
class TokenWithParams:
    """``token *(;param)``: Event, Allow-Events items, Subscription-State, Content-Disposition."""

    value: str
    params: Params = ()

    def __str__(self) -> str:
        return f"{self.value}{params_text(self.params)}"

    def param(self, name: str) -> str | None:
        v = _get_param(self.params, name)
        return unquote(v) if v else v

    @property
    def package(self) -> str:
        """Event package (``presence`` of ``presence.winfo``), lower case."""
        return self.value.lower().split(".", 1)[0]


def parse_token_params(value: str, where: str) -> TokenWithParams:
    m = _TOKEN_PARAMS_RE.match(value)
    if not m:
        raise SipParseError(f"malformed {where} header")
    params = parse_header_params(m.group(2), f"{where} header") if m.group(2) is not None else ()
    return TokenWithParams(m.group(1), params)


# -- media type ---------------------------------------------------------------

_MEDIA_RE = re.compile(rf"[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*(?:;(.*))?$", re.S)


@dataclass(frozen=True, slots=True)
class MediaType:
    type: str
    subtype: str
    params: Params = ()

    @property
    def mime(self) -> str:
        """``type/subtype`` in lower case."""
        return f"{self.type}/{self.subtype}".lower()

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{params_text(self.params)}"


def parse_media_type(value: str) -> MediaType:
    m = _MEDIA_RE.match(value)
    if not m:
        raise SipParseError("malformed Content-Type header")
    params = (
        parse_header_params(m.group(3), "Content-Type header") if m.group(3) is not None else ()
    )
    return MediaType(m.group(1), m.group(2), params)


# -- P-Charging-Vector and other semicolon lists -----------------------------


def parse_semicolon_params(value: str, where: str) -> dict[str, str | None]:
    """``name=value;name2=value2`` (P-Charging-Vector, Privacy uses bare tokens)."""
    return {n.lower(): (unquote(v) if v else v) for n, v in parse_header_params(value, where)}


_HOSTPORT_RE = re.compile(rf"({HOST})(?::(\d{{1,5}}))?$")


def parse_hostport(value: str) -> tuple[str, int | None]:
    m = _HOSTPORT_RE.match(value.strip())
    if not m:
        raise SipParseError("malformed host")
    return m.group(1), int(m.group(2)) if m.group(2) else None


def is_token(text: str) -> bool:
    return TOKEN_RE.fullmatch(text) is not None


def is_display_tokens(text: str) -> bool:
    return DISPLAY_TOKENS_RE.fullmatch(text) is not None


__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "MAGIC_COOKIE",
    "CSeq",
    "ContactStar",
    "MediaType",
    "NameAddr",
    "SipURI",
    "TokenWithParams",
    "Via",
    "canonical_name",
    "normalize_name",
    "parse_contact",
    "parse_cseq",
    "parse_header_params",
    "parse_media_type",
    "parse_name_addr",
    "parse_token_params",
    "parse_tokens",
    "parse_uint",
    "parse_via",
    "split_list",
]
