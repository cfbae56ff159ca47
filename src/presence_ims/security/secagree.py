"""Security mechanism agreement: Security-Client, -Server and -Verify values.

Specifications: RFC 3329 section 2.2 (syntax) and 2.3 (procedure), 3GPP
TS 33.203 Annex H (the ``ipsec-3gpp`` mechanism and its parameters) and
section 7.2 (algorithm choice).

Grammar (RFC 3329 section 2.2, with the TS 33.203 Annex H parameters)::

    security-client  = "Security-Client" HCOLON sec-mechanism *(COMMA sec-mechanism)
    sec-mechanism    = mechanism-name *(SEMI mech-parameters)
    mech-parameters  = preference / digest-algorithm / digest-qop / digest-verify / extension
    preference       = "q" EQUAL qvalue
    extension        = generic-param
    ipsec-3gpp params: alg, ealg, prot, mod, spi-c, spi-s, port-c, port-s

This module parses and formats header *values*, chooses an offer
(:func:`negotiate`) and checks that a Security-Verify repeats what the server
sent (:func:`verify_matches`): a mismatch is a downgrade attack.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from .errors import SecurityError

__all__ = [
    "IPSEC_3GPP",
    "SecAgreeError",
    "SecurityMechanism",
    "format_mechanisms",
    "negotiate",
    "parse_mechanisms",
    "verify_matches",
]

IPSEC_3GPP = "ipsec-3gpp"

# Preference orders (TS 33.203 7.2 lists the algorithms; the order is ours:
# confidentiality first, then the stronger integrity algorithm).
_EALG_RANK = {"aes-cbc": 3, "des-ede3-cbc": 2, "null": 1}
_ALG_RANK = {"hmac-sha-1-96": 2, "hmac-md5-96": 1}

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# generic-param values: token, host (with IPv6 brackets and colons) or quoted-string
_GEN_VALUE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+|\"(?:[^\"\\\r\n]|\\[^\r\n])*\"")
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_DIGITS = re.compile(r"[0-9]{1,10}")
_KNOWN = ("alg", "ealg", "prot", "mod", "spi-c", "spi-s", "port-c", "port-s", "q")


class SecAgreeError(SecurityError):
    """A Security-Client/Server/Verify value that does not parse."""


@dataclass(frozen=True, slots=True)
class SecurityMechanism:
    """One ``sec-mechanism`` of a Security-* header.

    Names of mechanisms and parameters, and the values of ``alg``, ``ealg``,
    ``prot`` and ``mod``, are kept lowercase.
    """

    name: str
    """Mechanism name: ``ipsec-3gpp``, ``digest``, ``tls`` ..."""
    alg: str | None = None
    """Integrity algorithm (``hmac-md5-96``, ``hmac-sha-1-96``)."""
    ealg: str | None = None
    """Encryption algorithm; None when absent, which means ``null`` (Annex H)."""
    prot: str | None = None
    """Protocol, ``esp`` (the default when absent)."""
    mod: str | None = None
    """Mode, ``trans`` (the default when absent)."""
    spi_c: int | None = None
    """SPI of the SA the sender of this value receives on at its client port."""
    spi_s: int | None = None
    """SPI of the SA the sender of this value receives on at its server port."""
    port_c: int | None = None
    """Protected client port."""
    port_s: int | None = None
    """Protected server port."""
    q: float | None = None
    """Preference, 0..1 (RFC 3329)."""
    params: tuple[tuple[str, str | None], ...] = ()
    """Other parameters, sorted by name; value None for a bare flag."""

    @property
    def effective_ealg(self) -> str:
        """``ealg``, with an absent value read as ``null`` (TS 33.203 Annex H)."""
        return self.ealg or "null"

    def param(self, name: str) -> str | None:
        """The value of an unknown parameter, or None."""
        name = name.lower()
        return next((v for k, v in self.params if k == name), None)

    def to_header(self) -> str:
        """This mechanism as header text."""
        parts = [self.name]
        if self.q is not None:
            parts.append(f"q={_format_q(self.q)}")
        for key, value in (
            ("alg", self.alg),
            ("ealg", self.ealg),
            ("prot", self.prot),
            ("mod", self.mod),
            ("spi-c", self.spi_c),
            ("spi-s", self.spi_s),
            ("port-c", self.port_c),
            ("port-s", self.port_s),
        ):
            if value is not None:
                parts.append(f"{key}={value}")
        for key, text in self.params:
            parts.append(key if text is None else f"{key}={text}")
        return ";".join(parts)


def _format_q(q: float) -> str:
    return f"{q:.3f}".rstrip("0").rstrip(".")


def _split(value: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings."""
    out: list[str] = []
    start, quoted, i = 0, False, 0
    while i < len(value):
        ch = value[i]
        if quoted and ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            out.append(value[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise SecAgreeError("unterminated quoted string")
    out.append(value[start:])
    return out


def _number(key: str, text: str, low: int, high: int) -> int:
    if not _DIGITS.fullmatch(text):
        raise SecAgreeError(f"{key} must be a decimal number, got {text!r}")
    number = int(text)
    if not low <= number <= high:
        raise SecAgreeError(f"{key}={number} is outside {low}..{high}")
    return number


def _parse_one(text: str) -> SecurityMechanism:
    pieces = [p.strip(" \t\r\n") for p in _split(text, ";")]
    name = pieces[0]
    if not _TOKEN.fullmatch(name):
        raise SecAgreeError(f"bad mechanism name {name!r}")
    fields: dict[str, str] = {}
    other: dict[str, str | None] = {}
    for piece in pieces[1:]:
        key, eq, raw = piece.partition("=")
        key, raw = key.strip(" \t").lower(), raw.strip(" \t")
        if not _TOKEN.fullmatch(key):
            raise SecAgreeError(f"bad parameter {piece!r}")
        if key in fields or key in other:
            raise SecAgreeError(f"parameter {key!r} repeated")
        if eq and not _GEN_VALUE.fullmatch(raw):
            raise SecAgreeError(f"bad value for {key!r}: {raw!r}")
        if key in _KNOWN:
            if not eq:
                raise SecAgreeError(f"parameter {key!r} needs a value")
            fields[key] = raw
        else:
            other[key] = raw if eq else None
    q = None
    if "q" in fields:
        if not _QVALUE.fullmatch(fields["q"]):
            raise SecAgreeError(f"bad q value {fields['q']!r}")
        q = float(fields["q"])

    def spi(key: str) -> int | None:
        return _number(key, fields[key], 1, 0xFFFFFFFF) if key in fields else None

    def port(key: str) -> int | None:
        return _number(key, fields[key], 1, 0xFFFF) if key in fields else None

    def word(key: str) -> str | None:
        value = fields.get(key)
        if value is not None and not _TOKEN.fullmatch(value):
            raise SecAgreeError(f"{key} must be a token")
        return value.lower() if value is not None else None

    return SecurityMechanism(
        name=name.lower(),
        alg=word("alg"),
        ealg=word("ealg"),
        prot=word("prot"),
        mod=word("mod"),
        spi_c=spi("spi-c"),
        spi_s=spi("spi-s"),
        port_c=port("port-c"),
        port_s=port("port-s"),
        q=q,
        params=tuple(sorted(other.items())),
    )


def parse_mechanisms(value: str) -> list[SecurityMechanism]:
    """Parse a Security-Client/Server/Verify value (one or more mechanisms)."""
    if not isinstance(value, str):
        raise SecAgreeError("header value must be text")
    items = [item.strip(" \t\r\n") for item in _split(value, ",")]
    mechanisms = [_parse_one(item) for item in items if item]
    if not mechanisms:
        raise SecAgreeError("no security mechanism")
    return mechanisms


def format_mechanisms(mechanisms: Iterable[SecurityMechanism]) -> str:
    """Header value for a list of mechanisms, comma-separated."""
    return ", ".join(m.to_header() for m in mechanisms)


def _usable(m: SecurityMechanism, allow_null_encryption: bool) -> bool:
    return (
        m.name == IPSEC_3GPP
        and m.alg in _ALG_RANK
        and m.effective_ealg in _EALG_RANK
        and (allow_null_encryption or m.effective_ealg != "null")
        and m.prot in (None, "esp")
        and m.mod in (None, "trans")
        and None not in (m.spi_c, m.spi_s, m.port_c, m.port_s)
    )


def negotiate(
    offers: Iterable[SecurityMechanism], *, allow_null_encryption: bool
) -> SecurityMechanism | None:
    """Pick the best ``ipsec-3gpp`` offer, or None when none is acceptable.

    Preference: encryption ``aes-cbc`` > ``des-ede3-cbc`` > ``null`` (``null``
    only when allowed), then integrity ``hmac-sha-1-96`` > ``hmac-md5-96``,
    then the offer's own ``q``.  Offers must carry both SPIs and both ports,
    ``prot`` esp and ``mod`` trans (or omit them).
    """
    usable = [m for m in offers if _usable(m, allow_null_encryption)]
    if not usable:
        return None
    return max(
        usable,
        key=lambda m: (_EALG_RANK[m.effective_ealg], _ALG_RANK[m.alg or ""], m.q or 0.0),
    )


def verify_matches(
    verify: Sequence[SecurityMechanism], server_sent: Sequence[SecurityMechanism]
) -> bool:
    """Whether a Security-Verify repeats the Security-Server list exactly.

    Mechanisms are compared parameter by parameter (an absent ``ealg``,
    ``prot`` or ``mod`` equals its default ``null``, ``esp``, ``trans``); the
    order of the mechanisms does not matter.
    Any difference means the protected request may have been downgraded.
    """

    def canon(m: SecurityMechanism) -> tuple[object, ...]:
        if m.name == IPSEC_3GPP:  # absent values mean their defaults (Annex H)
            m = replace(m, ealg=m.effective_ealg, prot=m.prot or "esp", mod=m.mod or "trans")
        return (
            m.name,
            m.alg,
            m.ealg,
            m.prot,
            m.mod,
            m.spi_c,
            m.spi_s,
            m.port_c,
            m.port_s,
            m.q,
            m.params,
        )

    return Counter(map(canon, verify)) == Counter(map(canon, server_sent))
