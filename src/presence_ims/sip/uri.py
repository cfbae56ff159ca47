"""SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966) and URI comparison.

URIs keep their text as received (escapes included) so that serialising a
parsed URI gives back the same bytes; comparison (section 19.1.4) works on the
unescaped values.  Any other scheme becomes an :class:`AbsoluteURI`, kept
opaque, which is enough to answer 416 or to carry ``pres:``/``im:`` URIs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import unquote_to_bytes

from .errors import SipParseError
from .grammar import (
    HCHARS_RE,
    HOST,
    HOST_RE,
    PARAM_NAME_RE,
    PARAM_VALUE_RE,
    PARAMCHARS,
    PASSWORD,
    PASSWORD_RE,
    USER,
    USER_RE,
)

Params = tuple[tuple[str, str | None], ...]

# port = 1*DIGIT, refused above 65535: as one pattern, for the fast paths
PORT_0_65535 = r"(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[0-5]\d{4}|\d{1,4})"
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
# The usual shape of a SIP URI in one pattern (user, password, host, port, parameters;
# no headers): what it matches, the general path below would parse the same way.
_SIP_FAST_RE = re.compile(
    rf"([Ss][Ii][Pp][Ss]?):(?:({USER})(?::({PASSWORD}))?@)?({HOST})(?::({PORT_0_65535}))?"
    rf"((?:;{PARAMCHARS}(?:={PARAMCHARS})?)*)"
)
_HOSTPORT_RE = re.compile(rf"({HOST_RE.pattern})(?::(\d{{1,5}}))?")
# RFC 3966: global-number-digits = "+" *phonedigit DIGIT *phonedigit ; local = *phonedigit-hex ...
_TEL_NUMBER_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()]+")
_DEFAULT_PORT = {"sip": 5060, "sips": 5061}
# parameters that must match whenever either URI has them (RFC 3261 19.1.4)
_SIGNIFICANT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _unescape(text: str) -> bytes:
    return unquote_to_bytes(text)


_ESCAPE_RE = re.compile(rb"%([0-9A-Fa-f]{2})")
# RFC 2396 reserved: escaped, these are not equivalent to their literal form (RFC 3261 19.1.4)
_RESERVED = frozenset(b";/?:@&=+$,")


def _unescape_match(m: re.Match[bytes]) -> bytes:
    value = int(m.group(1), 16)
    return b"%%%02X" % value if value in _RESERVED else bytes((value,))


def _canonical(text: str) -> bytes:
    """Comparison form: escapes of unreserved octets decoded, reserved ones kept (19.1.4)."""
    return _ESCAPE_RE.sub(_unescape_match, text.encode("utf-8", "surrogateescape"))


def _parse_params(text: str, where: str) -> Params:
    """``;name[=value]`` list (the leading ``;`` already removed)."""
    out: list[tuple[str, str | None]] = []
    for part in text.split(";"):
        if part == "":
            raise SipParseError(f"empty parameter in {where}")
        name, eq, value = part.partition("=")
        if not PARAM_NAME_RE.fullmatch(name):
            raise SipParseError(f"bad parameter name in {where}")
        if eq:
            if not PARAM_VALUE_RE.fullmatch(value):
                raise SipParseError(f"bad parameter value in {where}")
            out.append((name, value))
        else:
            out.append((name, None))
    return tuple(out)


def _params_text(params: Params) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def _get_param(params: Params, name: str) -> str | None:
    lname = name.lower()
    for n, v in params:
        if n.lower() == lname:
            return v if v is not None else ""
    return None


def _has_param(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(n.lower() == lname for n, _ in params)


def _set_param(params: Params, name: str, value: str | None) -> Params:
    lname = name.lower()
    kept = tuple((n, v) for n, v in params if n.lower() != lname)
    return (*kept, (name, value))


def _del_param(params: Params, name: str) -> Params:
    lname = name.lower()
    return tuple((n, v) for n, v in params if n.lower() != lname)


@dataclass(frozen=True, slots=True)
class SipURI:
    """A ``sip:`` or ``sips:`` URI."""

    scheme: str
    """``sip`` or ``sips`` (lower case)."""
    host: str
    """Host as written (hostname, IPv4 or ``[IPv6]``)."""
    user: str | None = None
    """User part as written, escapes included (``None`` when absent)."""
    password: str | None = None
    port: int | None = None
    """Explicit port, ``None`` when the URI has none."""
    params: Params = ()
    """uri-parameters in order, names and values as written."""
    headers: tuple[tuple[str, str], ...] = ()
    """``?name=value&...`` headers as written."""

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(_params_text(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(out)

    # -- accessors ---------------------------------------------------------
    def param(self, name: str) -> str | None:
        """Value of a uri-parameter (``""`` for a flag), ``None`` when absent."""
        return _get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> SipURI:
        return replace(self, params=_set_param(self.params, name, value))

    def without_param(self, name: str) -> SipURI:
        return replace(self, params=_del_param(self.params, name))

    def without_headers(self) -> SipURI:
        return replace(self, headers=())

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        return self.has_param("lr")

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else _DEFAULT_PORT[self.scheme]

    @property
    def aor(self) -> str:
        """Address of record: ``sip:user@host`` without port, parameters or headers."""
        user = f"{self.user}@" if self.user is not None else ""
        return f"{self.scheme}:{user}{self.host.lower()}"

    @property
    def user_unescaped(self) -> str | None:
        if self.user is None:
            return None
        return _unescape(self.user).decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class TelURI:
    """A ``tel:`` URI (RFC 3966)."""

    number: str
    """The number as written, visual separators included."""
    params: Params = ()

    scheme: str = field(default="tel", init=False)

    def __str__(self) -> str:
        return f"tel:{self.number}{_params_text(self.params)}"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 section 5.1.1)."""
        return re.sub(r"[\-.()]", "", self.number)

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    @property
    def aor(self) -> str:
        return f"tel:{self.digits}"


@dataclass(frozen=True, slots=True)
class AbsoluteURI:
    """Any URI whose scheme this stack does not interpret (``pres:``, ``im:``, ``http:`` ...)."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    @property
    def aor(self) -> str:
        return str(self)


URI = SipURI | TelURI | AbsoluteURI


def parse_uri(text: str) -> URI:
    """Parse a URI; raise :class:`SipParseError` when it is malformed."""
    fast = _SIP_FAST_RE.fullmatch(text)
    if fast is not None:
        scheme, user, password, host, port, ptext = fast.groups()
        return SipURI(
            scheme.lower(),
            host,
            user,
            password,
            int(port) if port is not None else None,
            _parse_params(ptext[1:], "SIP URI") if ptext else (),
        )
    m = _SCHEME_RE.match(text)
    if not m:
        raise SipParseError("URI without a scheme")
    scheme = m.group(1).lower()
    rest = text[m.end() :]
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    if not rest or any(c in rest for c in " \t\r\n<>\""):
        raise SipParseError(f"malformed {scheme}: URI")
    return AbsoluteURI(scheme, rest)


def _parse_sip(scheme: str, rest: str) -> SipURI:
    headers: tuple[tuple[str, str], ...] = ()
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        uname, colon, pwd = userinfo.partition(":")
        if USER_RE.fullmatch(uname) and (not colon or PASSWORD_RE.fullmatch(pwd)):
            user = uname
            password = pwd if colon else None
            rest = rest[at + 1 :]
        elif "?" not in userinfo and ";" not in userinfo:
            raise SipParseError("malformed user part in SIP URI")
    q = rest.find("?")
    if q >= 0:
        htext = rest[q + 1 :]
        rest = rest[:q]
        hdrs: list[tuple[str, str]] = []
        for item in htext.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq or not HCHARS_RE.fullmatch(name) or not HCHARS_RE.fullmatch(value):
                raise SipParseError("malformed header in SIP URI")
            hdrs.append((name, value))
        headers = tuple(hdrs)
    hostport, semi, ptext = rest.partition(";")
    hm = _HOSTPORT_RE.fullmatch(hostport)
    if not hm:
        raise SipParseError("malformed host in SIP URI")
    port: int | None = None
    if hm.group(2) is not None:
        port = int(hm.group(2))
        if port > 65535:
            raise SipParseError("port out of range in SIP URI")
    params = _parse_params(ptext, "SIP URI") if semi else ()
    return SipURI(scheme, hm.group(1), user, password, port, params, headers)


def _parse_tel(rest: str) -> TelURI:
    number, semi, ptext = rest.partition(";")
    if not _TEL_NUMBER_RE.fullmatch(number) or not any(c.isalnum() for c in number):
        raise SipParseError("malformed tel URI")
    params = _parse_params(ptext, "tel URI") if semi else ()
    if not number.startswith("+") and _get_param(params, "phone-context") is None:
        raise SipParseError("local tel URI without phone-context")
    return TelURI(number, params)


def uri_equal(a: URI, b: URI) -> bool:
    """URI equivalence per RFC 3261 section 19.1.4 (and RFC 3966 section 4 for tel)."""
    if isinstance(a, SipURI) and isinstance(b, SipURI):
        return _sip_equal(a, b)
    if isinstance(a, TelURI) and isinstance(b, TelURI):
        if a.digits.lower() != b.digits.lower():
            return False
        pa = {n.lower(): (v or "").lower() for n, v in a.params}
        pb = {n.lower(): (v or "").lower() for n, v in b.params}
        return pa == pb
    if isinstance(a, AbsoluteURI) and isinstance(b, AbsoluteURI):
        return a.scheme == b.scheme and _unescape(a.rest) == _unescape(b.rest)
    return False


def _sip_equal(a: SipURI, b: SipURI) -> bool:
    if a.scheme != b.scheme:
        return False
    ua = _canonical(a.user) if a.user is not None else None
    ub = _canonical(b.user) if b.user is not None else None
    if ua != ub:
        return False
    pa = _canonical(a.password) if a.password is not None else None
    pb = _canonical(b.password) if b.password is not None else None
    if pa != pb:
        return False
    if a.host.lower() != b.host.lower() or a.port != b.port:
        return False
    amap = {n.lower(): _canonical(v).lower() if v is not None else b"" for n, v in a.params}
    bmap = {n.lower(): _canonical(v).lower() if v is not None else b"" for n, v in b.params}
    for name in _SIGNIFICANT_PARAMS:
        if (name in amap or name in bmap) and amap.get(name) != bmap.get(name):
            return False
    for name in amap.keys() & bmap.keys():
        if amap[name] != bmap[name]:
            return False
    ha = {n.lower(): _canonical(v) for n, v in a.headers}
    hb = {n.lower(): _canonical(v) for n, v in b.headers}
    return ha == hb
