"""The one hardened XML parser and the small helpers every document module shares.

Every document module parses bytes through :func:`parse_xml`, which uses the
single parser made by :func:`hardened_parser`: no entity resolution, no network,
no DTD loading, no huge trees, comments and processing instructions dropped, and
a document with a DOCTYPE refused outright (so "billion laughs" and external
entity tricks never get as far as a model). Inputs are capped in size
(:data:`DEFAULT_MAX_SIZE`, 64 KiB) before lxml sees them.

Every bad input becomes a :class:`DocumentError` whose ``reason`` is short,
printable ASCII and safe to use as a SIP reason phrase.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, cast

from lxml import etree

__all__ = [
    "DEFAULT_MAX_SIZE",
    "XML_LANG",
    "DocumentError",
    "canonical",
    "check_ncname",
    "clark",
    "element_from_bytes",
    "extension_name",
    "format_bool",
    "format_datetime",
    "hardened_parser",
    "is_ncname",
    "new_root",
    "parse_bool",
    "parse_datetime",
    "parse_xml",
    "serialize",
]

DEFAULT_MAX_SIZE = 64 * 1024
"""Largest document accepted by :func:`parse_xml` unless a caller says otherwise (bytes)."""

XML_NS = "http://www.w3.org/XML/1998/namespace"
XML_LANG = f"{{{XML_NS}}}lang"

_REASON_MAX = 120
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


class DocumentError(Exception):
    """A document could not be parsed or built; ``reason`` says why in a few words."""

    reason: str

    def __init__(self, reason: str) -> None:
        cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in reason)
        if len(cleaned) > _REASON_MAX:
            cleaned = cleaned[: _REASON_MAX - 3] + "..."
        super().__init__(cleaned)
        self.reason = cleaned


@lru_cache(maxsize=1)
def hardened_parser() -> etree.XMLParser:
    """The parser every document module uses (made once; lxml locks it per parse)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def parse_xml(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> etree._Element:
    """Parse ``data`` with the hardened parser and return the root element.

    Raises :class:`DocumentError` for anything but a well-formed, DTD-free
    document of at most ``max_size`` bytes.
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise DocumentError("document must be bytes")
    if not data.strip():
        raise DocumentError("empty document")
    if len(data) > max_size:
        raise DocumentError(f"document too large ({len(data)} > {max_size} bytes)")
    if b"<!DOCTYPE" in data:
        raise DocumentError("DOCTYPE not allowed")
    try:
        root = etree.fromstring(data, hardened_parser())
    except etree.XMLSyntaxError as exc:
        detail = str(exc.msg or "syntax error").split(",")[0]
        raise DocumentError(f"not well-formed XML: {detail}") from None
    except (etree.LxmlError, ValueError, TypeError) as exc:
        raise DocumentError(f"not well-formed XML: {type(exc).__name__}") from None
    if root is None:
        raise DocumentError("not well-formed XML: no root element")
    # Catch a DOCTYPE hidden from the byte scan by another encoding (UTF-16...).
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise DocumentError("DOCTYPE not allowed")
    return root


def clark(namespace: str, local: str) -> str:
    """``{namespace}local``."""
    return f"{{{namespace}}}{local}"


def split_clark(tag: str) -> tuple[str, str]:
    """(namespace, local name) of a Clark-notation tag; namespace "" when none."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def canonical(element: etree._Element) -> bytes:
    """Exclusive C14N of ``element`` (without its tail): how extensions are kept.

    The form carries exactly the namespace declarations the element uses, so it
    reads back byte for byte after being placed in another document.
    """
    try:
        return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    except etree.C14NError:
        # libxml2 refuses, e.g., a relative namespace URI (xmlns:x="us"): a bad document
        raise DocumentError(f"element cannot be canonicalised: {element.tag}") from None


def element_from_bytes(data: bytes) -> etree._Element:
    """An element from a kept extension (parsed by the hardened parser)."""
    return parse_xml(data)


@lru_cache(maxsize=4096)
def extension_name(data: bytes) -> tuple[str, str]:
    """(namespace, local name) of a kept extension element; ("", "") if unreadable."""
    try:
        return split_clark(element_from_bytes(data).tag)
    except DocumentError:
        return ("", "")


def new_root(tag: str, nsmap: Mapping[str | None, str]) -> etree._Element:
    """A root element with these namespace declarations (None: the default namespace)."""
    return etree.Element(tag, nsmap=cast(Any, dict(nsmap)))


def serialize(root: etree._Element) -> bytes:
    """UTF-8 bytes with an XML declaration."""
    return _XML_DECLARATION + etree.tostring(root, encoding="UTF-8")


# --- xs:NCName (what xs:ID values must be) -------------------------------------------

_NCNAME = re.compile(r"[A-Za-z_\u00c0-\ufffd][A-Za-z0-9_.\-\u00b7\u00c0-\ufffd]*\Z")


def check_ncname(value: str, what: str) -> str:
    """Return ``value`` if it is an xs:ID/NCName, else raise DocumentError."""
    if not _NCNAME.match(value):
        raise DocumentError(f"{what} is not an XML ID: {value!r}")
    return value


def is_ncname(value: str) -> bool:
    """Whether :func:`check_ncname` accepts ``value``."""
    return _NCNAME.match(value) is not None


# --- xs:boolean ---------------------------------------------------------------------


def parse_bool(text: str | None, what: str) -> bool:
    value = (text or "").strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise DocumentError(f"bad {what} boolean: {value!r}")


def format_bool(value: bool) -> str:
    return "true" if value else "false"


# --- xs:dateTime --------------------------------------------------------------------

_DATETIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
    r"(Z|[+-]\d\d:\d\d)?\Z"
)


def parse_datetime(text: str | None, what: str) -> datetime:
    """An xs:dateTime (years 0001-9999); naive when the text has no zone."""
    value = (text or "").strip()
    match = _DATETIME.match(value)
    if match is None:
        raise DocumentError(f"bad {what}: {value!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz: timezone | None = None
    if zone == "Z":
        tz = UTC
    elif zone:
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 14 or minutes > 59:
            raise DocumentError(f"bad {what}: {value!r}")
        offset = timedelta(hours=hours, minutes=minutes) * sign
        tz = UTC if not offset else timezone(offset)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
        )
    except ValueError:
        raise DocumentError(f"bad {what}: {value!r}") from None


def format_datetime(value: datetime) -> str:
    """xs:dateTime text: ``Z`` for UTC, ``+hh:mm`` for other offsets, none when naive."""
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset()
    if offset is None:
        return text
    if not offset:
        return text + "Z"
    seconds = int(offset.total_seconds())
    if seconds % 60 or offset.microseconds:
        raise DocumentError("time zone offset is not whole minutes")
    total = seconds // 60
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    return f"{text}{sign}{total // 60:02d}:{total % 60:02d}"


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def text_of(element: etree._Element) -> str:
    """The element's text, stripped ("" when none)."""
    return (element.text or "").strip()
