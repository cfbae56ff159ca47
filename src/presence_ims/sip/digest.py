"""HTTP Digest authentication as SIP uses it: MD5 and AKAv1-MD5.

Specifications: RFC 2617 section 3 (Digest; the response computation of
3.2.2.1-3.2.2.3), RFC 7616 (its update; parameter syntax), RFC 3261 sections
22.4 and 25.1 (Digest in SIP, header grammar), RFC 3310 (AKAv1-MD5: the
password is RES as raw bytes; ``auts`` parameter), 3GPP TS 24.229 section 5.1.1
and TS 33.203 (the ``ik``, ``ck`` and ``integrity-protected`` parameters).

Header values handled (everything after the header name and colon)::

    challenge   = "Digest" LWS digest-cln *(COMMA digest-cln)
    credentials = "Digest" LWS dig-resp *(COMMA dig-resp)
    auth-param  = token EQUAL ( token / quoted-string )

Response (RFC 2617 3.2.2.1)::

    HA1 = MD5(username ":" realm ":" password)         (MD5, AKAv1-MD5)
    HA1 = MD5(HA1 ":" nonce ":" cnonce)                 (the -sess variants)
    HA2 = MD5(method ":" uri)                           (qop auth or none)
    HA2 = MD5(method ":" uri ":" MD5(body))             (qop auth-int)
    response = MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)  (with qop)
    response = MD5(HA1 ":" nonce ":" HA2)                            (without)

This module is self-contained (no import from the rest of :mod:`presence_ims.sip`).
Nonces for plain Digest come from :class:`NonceManager`; AKA nonces are made by
the S-CSCF from the authentication vector (``security.aka.encode_nonce``).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass, field, replace

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "Challenge",
    "Credentials",
    "DigestError",
    "NonceManager",
    "NonceStatus",
    "compute_response",
    "parse_challenge",
    "parse_credentials",
    "verify",
]

SUPPORTED_ALGORITHMS = ("MD5", "MD5-sess", "AKAv1-MD5")
"""Algorithms :func:`compute_response` implements (compared case-insensitively)."""

_TOKEN_CHARS = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_UNQUOTED = re.compile(r'[^\s,"]+')
_NC = re.compile(r"[0-9A-Fa-f]{8}")
_HEX = re.compile(r"[0-9A-Fa-f]*")
_MAX_VALUE = 8192


class DigestError(Exception):
    """A Digest header value that does not parse, or an unsupported computation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------
# auth-param lists


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """Split ``Scheme name=value, name="quoted"`` into the scheme and its params."""
    if not isinstance(value, str):
        raise DigestError("header value must be text")
    if len(value) > _MAX_VALUE:
        raise DigestError("header value too long")
    text = value.strip(" \t\r\n")
    m = _TOKEN_CHARS.match(text)
    if m is None:
        raise DigestError("missing authentication scheme")
    scheme, i, n = m.group(), m.end(), len(text)
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported scheme {scheme!r}")
    if i < n and text[i] not in " \t":
        raise DigestError("scheme must be followed by whitespace")
    params: list[tuple[str, str]] = []
    seen: set[str] = set()
    while True:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        m = _TOKEN_CHARS.match(text, i)
        if m is None:
            raise DigestError(f"expected a parameter name at offset {i}")
        name, i = m.group().lower(), m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            raise DigestError(f"parameter {name!r} has no value")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i, param_value = _read_quoted(text, i)
        else:
            m = _UNQUOTED.match(text, i)
            if m is None:
                raise DigestError(f"parameter {name!r} has an empty value")
            param_value, i = m.group(), m.end()
        if name in seen:
            raise DigestError(f"parameter {name!r} repeated")
        seen.add(name)
        params.append((name, param_value))
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            raise DigestError(f"expected a comma at offset {i}")
    return scheme, params


def _read_quoted(text: str, i: int) -> tuple[int, str]:
    """Read the quoted-string starting at ``text[i] == '"'``; return (end, value)."""
    out: list[str] = []
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                break
            ch = text[i + 1]
            i += 1
        elif ch == '"':
            return i + 1, "".join(out)
        if ch in "\r\n\x00":
            raise DigestError("control character in a quoted string")
        out.append(ch)
        i += 1
    raise DigestError("unterminated quoted string")


def _format_params(scheme: str, items: list[tuple[str, str, bool]]) -> str:
    return scheme + " " + ", ".join(f"{k}={_quote(v) if q else v}" for k, v, q in items)


def _unquoted_ok(name: str, value: str) -> str:
    if not _TOKEN_CHARS.fullmatch(value):
        raise DigestError(f"{name} must be a token")
    return value


# --------------------------------------------------------------------------
# challenges and credentials


@dataclass(frozen=True, slots=True)
class Challenge:
    """A Digest challenge (WWW-Authenticate / Proxy-Authenticate, RFC 2617 3.2.1)."""

    realm: str
    """Protection space, e.g. the home domain."""
    nonce: str
    """Server nonce; for AKA, base64(RAND || AUTN)."""
    algorithm: str = "MD5"
    """``MD5``, ``MD5-sess`` or ``AKAv1-MD5``; ``MD5`` when absent."""
    qop: tuple[str, ...] = ()
    """Offered qop values (``auth``, ``auth-int``); empty when absent."""
    opaque: str | None = None
    """Opaque data the client returns unchanged."""
    stale: bool = False
    """True: the previous nonce was stale, the credentials themselves were good."""
    domain: str | None = None
    """Space-separated URIs of the protection space."""
    extra: tuple[tuple[str, str], ...] = ()
    """Other parameters in order, lowercase names (``ik``, ``ck`` from the S-CSCF)."""

    def param(self, name: str) -> str | None:
        """Value of an extra parameter (case-insensitive name), or None."""
        return _get(self.extra, name)

    def with_params(self, **params: str) -> Challenge:
        """A copy with extra parameters set (``_`` in names becomes ``-``)."""
        return replace(self, extra=_set(self.extra, params))

    def without_params(self, *names: str) -> Challenge:
        """A copy without these extra parameters (the P-CSCF drops ik and ck)."""
        drop = {n.lower() for n in names}
        return replace(self, extra=tuple((k, v) for k, v in self.extra if k not in drop))

    def to_header(self) -> str:
        """The header value, ``Digest realm="..", nonce="..", ...``."""
        items: list[tuple[str, str, bool]] = [
            ("realm", self.realm, True),
            ("nonce", self.nonce, True),
        ]
        if self.domain is not None:
            items.append(("domain", self.domain, True))
        if self.opaque is not None:
            items.append(("opaque", self.opaque, True))
        if self.stale:
            items.append(("stale", "TRUE", False))
        items.append(("algorithm", _unquoted_ok("algorithm", self.algorithm), False))
        if self.qop:
            items.append(("qop", ",".join(self.qop), True))
        items.extend((k, v, True) for k, v in self.extra)
        return _format_params("Digest", items)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Digest credentials (Authorization / Proxy-Authorization, RFC 2617 3.2.2).

    The initial IMS REGISTER carries empty ``nonce`` and ``response``
    (TS 24.229 5.1.1.2), so both default to the empty string when absent.
    """

    username: str
    """The user name; for IMS AKA the private identity (IMPI)."""
    realm: str
    """The realm being answered."""
    uri: str
    """The digest-uri: the Request-URI as the client sent it."""
    nonce: str = ""
    """The nonce being answered."""
    response: str = ""
    """32 hex digits, or empty."""
    algorithm: str = "MD5"
    """``MD5`` when absent."""
    cnonce: str | None = None
    """Client nonce (with qop)."""
    opaque: str | None = None
    """The challenge's opaque, returned."""
    qop: str | None = None
    """The chosen qop (``auth``, ``auth-int``)."""
    nc: str | None = None
    """Nonce count, 8 hex digits (with qop)."""
    extra: tuple[tuple[str, str], ...] = ()
    """Other parameters in order (``auts``, ``integrity-protected`` ...)."""

    @property
    def nc_value(self) -> int | None:
        """The nonce count as an integer."""
        return int(self.nc, 16) if self.nc is not None else None

    def param(self, name: str) -> str | None:
        """Value of an extra parameter (case-insensitive name), or None."""
        return _get(self.extra, name)

    def with_params(self, **params: str) -> Credentials:
        """A copy with extra parameters set (``_`` in names becomes ``-``)."""
        return replace(self, extra=_set(self.extra, params))

    def without_params(self, *names: str) -> Credentials:
        """A copy without these extra parameters."""
        drop = {n.lower() for n in names}
        return replace(self, extra=tuple((k, v) for k, v in self.extra if k not in drop))

    def to_header(self) -> str:
        """The header value, ``Digest username="..", realm="..", ...``."""
        items: list[tuple[str, str, bool]] = [
            ("username", self.username, True),
            ("realm", self.realm, True),
            ("nonce", self.nonce, True),
            ("uri", self.uri, True),
            ("response", self.response, True),
            ("algorithm", _unquoted_ok("algorithm", self.algorithm), False),
        ]
        if self.cnonce is not None:
            items.append(("cnonce", self.cnonce, True))
        if self.opaque is not None:
            items.append(("opaque", self.opaque, True))
        if self.qop is not None:
            items.append(("qop", _unquoted_ok("qop", self.qop), False))
        if self.nc is not None:
            items.append(("nc", _unquoted_ok("nc", self.nc), False))
        items.extend((k, v, True) for k, v in self.extra)
        return _format_params("Digest", items)


def _get(extra: tuple[tuple[str, str], ...], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in extra if k == name), None)


def _set(extra: tuple[tuple[str, str], ...], params: dict[str, str]) -> tuple[tuple[str, str], ...]:
    new = {k.lower().replace("_", "-"): v for k, v in params.items()}
    kept = [(k, v) for k, v in extra if k not in new]
    return (*kept, *new.items())


_CHALLENGE_FIELDS = frozenset({"realm", "nonce", "algorithm", "qop", "opaque", "stale", "domain"})
_CREDENTIAL_FIELDS = frozenset(
    {"username", "realm", "uri", "nonce", "response", "algorithm", "cnonce", "opaque", "qop", "nc"}
)


def parse_challenge(value: str) -> Challenge:
    """Parse a WWW-Authenticate or Proxy-Authenticate value (Digest only)."""
    _, params = _parse_params(value)
    d = dict(params)
    for required in ("realm", "nonce"):
        if required not in d:
            raise DigestError(f"challenge without {required}")
    stale = d.get("stale", "false").lower()
    if stale not in ("true", "false"):
        raise DigestError(f"stale must be true or false, got {d['stale']!r}")
    qop = tuple(q.strip() for q in d["qop"].split(",") if q.strip()) if "qop" in d else ()
    if any(not _TOKEN_CHARS.fullmatch(q) for q in qop):
        raise DigestError("qop options must be tokens")
    return Challenge(
        realm=d["realm"],
        nonce=d["nonce"],
        algorithm=_unquoted_ok("algorithm", d.get("algorithm", "MD5")),
        qop=qop,
        opaque=d.get("opaque"),
        stale=stale == "true",
        domain=d.get("domain"),
        extra=tuple((k, v) for k, v in params if k not in _CHALLENGE_FIELDS),
    )


def parse_credentials(value: str) -> Credentials:
    """Parse an Authorization or Proxy-Authorization value (Digest only)."""
    _, params = _parse_params(value)
    d = dict(params)
    for required in ("username", "realm", "uri"):
        if required not in d:
            raise DigestError(f"credentials without {required}")
    nc = d.get("nc")
    if nc is not None and not _NC.fullmatch(nc):
        raise DigestError("nc must be 8 hex digits")
    response = d.get("response", "")
    if not _HEX.fullmatch(response):
        raise DigestError("response must be hex")
    qop = d.get("qop")
    if qop is not None:
        _unquoted_ok("qop", qop)
        if "cnonce" not in d or nc is None:
            raise DigestError("qop needs cnonce and nc")
    return Credentials(
        username=d["username"],
        realm=d["realm"],
        uri=d["uri"],
        nonce=d.get("nonce", ""),
        response=response,
        algorithm=_unquoted_ok("algorithm", d.get("algorithm", "MD5")),
        cnonce=d.get("cnonce"),
        opaque=d.get("opaque"),
        qop=qop,
        nc=nc,
        extra=tuple((k, v) for k, v in params if k not in _CREDENTIAL_FIELDS),
    )


# --------------------------------------------------------------------------
# the response


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def compute_response(
    *,
    username: str,
    realm: str,
    password: bytes | str,
    method: str,
    uri: str,
    nonce: str,
    nc: str | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
    algorithm: str = "MD5",
    body: bytes = b"",
    ha1: str | None = None,
) -> str:
    """The ``response`` value, lowercase hex (RFC 2617 3.2.2.1, RFC 3310 3.4).

    ``password`` is the shared secret; for AKAv1-MD5 it is RES as raw bytes
    (an empty password for the response that carries ``auts``).  A server
    that holds only H(A1) (what the HSS hands out, TS 29.229 Digest-HA1)
    passes it as ``ha1`` and any ``password``.
    """
    alg = algorithm.lower()
    if alg not in ("md5", "md5-sess", "akav1-md5"):
        raise DigestError(f"unsupported algorithm {algorithm!r}")
    if ha1 is None:
        ha1 = _md5_hex(b":".join((_b(username), _b(realm), _b(password))))
    if alg == "md5-sess":
        if cnonce is None:
            raise DigestError("MD5-sess needs a cnonce")
        ha1 = _md5_hex(f"{ha1}:{nonce}:{cnonce}".encode())
    if qop is None or qop == "auth":
        ha2 = _md5_hex(f"{method}:{uri}".encode())
    elif qop == "auth-int":
        ha2 = _md5_hex(f"{method}:{uri}:{_md5_hex(body)}".encode())
    else:
        raise DigestError(f"unsupported qop {qop!r}")
    if qop is None:
        return _md5_hex(f"{ha1}:{nonce}:{ha2}".encode())
    if nc is None or cnonce is None:
        raise DigestError("qop needs nc and cnonce")
    return _md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


def verify(
    credentials: Credentials,
    *,
    password: bytes | str,
    method: str,
    body: bytes = b"",
    ha1: str | None = None,
) -> bool:
    """Whether ``credentials.response`` is right for ``password`` (constant time).

    Checks only the response; the caller checks realm, nonce freshness
    (:class:`NonceManager`) and that ``uri`` matches the request.  Raises
    :class:`DigestError` for an unsupported algorithm or qop.
    """
    expected = compute_response(
        username=credentials.username,
        realm=credentials.realm,
        password=password,
        method=method,
        uri=credentials.uri,
        nonce=credentials.nonce,
        nc=credentials.nc,
        cnonce=credentials.cnonce,
        qop=credentials.qop,
        algorithm=credentials.algorithm,
        body=body,
        ha1=ha1,
    )
    return hmac.compare_digest(expected.encode(), credentials.response.lower().encode())


# --------------------------------------------------------------------------
# nonces


class NonceStatus(enum.StrEnum):
    """Outcome of :meth:`NonceManager.check`."""

    VALID = "valid"
    """Issued by us, within its lifetime, nonce count not seen before."""
    STALE = "stale"
    """Issued by us but too old: challenge again with ``stale=TRUE``."""
    INVALID = "invalid"
    """Not one of ours (or bound to other ``extra`` data)."""
    REPLAYED = "replayed"
    """A nonce count not above the last one seen: a replay."""


_NONCE_STRUCT = struct.Struct(">d8s")  # issue time, random
_NONCE_MAC_LEN = 16


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(slots=True)
class _Seen:
    issued: float
    last_nc: int = field(default=0)


class NonceManager:
    """Issues self-authenticating nonces and tracks their nonce counts.

    A nonce is ``base64url(time || random || HMAC-SHA256(secret, time || random
    || extra)[:16])``: any process with the same ``secret`` can check it.  The
    nonce count of each nonce must increase (RFC 2617 3.2.2: "nc");
    without qop there is no count and a nonce may be used once.  Counts are
    remembered for at most ``max_tracked`` nonces and only while they are
    within ``lifetime`` seconds of their issue.
    """

    def __init__(self, secret: bytes, lifetime: float, *, max_tracked: int = 100_000) -> None:
        if len(secret) < 16:
            raise DigestError("the nonce secret needs at least 16 bytes")
        if lifetime <= 0 or max_tracked < 1:
            raise DigestError("lifetime and max_tracked must be positive")
        self._secret = bytes(secret)
        self.lifetime = lifetime
        """Seconds a nonce stays valid after it was issued."""
        self.max_tracked = max_tracked
        """How many nonces' counts are remembered at most."""
        self._seen: OrderedDict[str, _Seen] = OrderedDict()

    def _mac(self, body: bytes, extra: bytes) -> bytes:
        return hmac.digest(self._secret, body + extra, "sha256")[:_NONCE_MAC_LEN]

    def issue(self, now: float, extra: bytes = b"") -> str:
        """A new nonce; ``extra`` binds it to data the checker must present again."""
        body = _NONCE_STRUCT.pack(now, os.urandom(8))
        return _encode(body + self._mac(body, extra))

    def check(
        self, nonce: str, nc: int | str | None, now: float, extra: bytes = b""
    ) -> NonceStatus:
        """Classify a nonce answered with nonce count ``nc`` at ``now``.

        ``nc`` is the count as an integer or its 8-hex-digit text; None when the
        client used no qop.  A VALID result records the count.
        """
        issued = self._decode(nonce, extra)
        if issued is None:
            return NonceStatus.INVALID
        if now - issued > self.lifetime:
            self._seen.pop(nonce, None)
            return NonceStatus.STALE
        count = self._count(nc)
        if count is None:
            return NonceStatus.INVALID
        seen = self._seen.get(nonce)
        if seen is None:
            self._prune(now)
            seen = self._seen[nonce] = _Seen(issued)
        if count <= seen.last_nc:
            return NonceStatus.REPLAYED
        seen.last_nc = count
        return NonceStatus.VALID

    def _decode(self, nonce: str, extra: bytes) -> float | None:
        if not isinstance(nonce, str) or len(nonce) > 64:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_STRUCT.size + _NONCE_MAC_LEN or _encode(raw) != nonce:
            return None  # one spelling per nonce, so counts cannot be split
        body, mac = raw[: _NONCE_STRUCT.size], raw[_NONCE_STRUCT.size :]
        if not hmac.compare_digest(self._mac(body, extra), mac):
            return None
        issued: float = _NONCE_STRUCT.unpack(body)[0]
        return issued

    @staticmethod
    def _count(nc: int | str | None) -> int | None:
        if nc is None:
            return 1  # no qop: the first use counts as 1, any later one is a replay
        if isinstance(nc, str):
            if not _NC.fullmatch(nc):
                return None
            nc = int(nc, 16)
        return nc if nc >= 1 else None

    def _prune(self, now: float) -> None:
        """Forget nonces past their lifetime, and the oldest beyond ``max_tracked``."""
        while self._seen:
            nonce, seen = next(iter(self._seen.items()))
            if now - seen.issued <= self.lifetime and len(self._seen) < self.max_tracked:
                break
            del self._seen[nonce]
