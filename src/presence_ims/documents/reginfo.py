"""Registration information (RFC 3680, ``application/reginfo+xml``).

The S-CSCF builds it for the ``reg`` event package; the PNA parses it on Pi.
``parse(data) -> RegInfo`` and ``build(info) -> bytes``. Extension elements
inside a contact (GRUU ``pub-gruu``/``temp-gruu`` of RFC 5628, for instance)
and inside a registration are kept as exclusive-C14N bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

from lxml import etree

from .xml import (
    DEFAULT_MAX_SIZE,
    DocumentError,
    canonical,
    clark,
    element_from_bytes,
    new_root,
    parse_xml,
    serialize,
    split_clark,
)

__all__ = [
    "CONTENT_TYPE",
    "REGINFO_NS",
    "Contact",
    "RegInfo",
    "Registration",
    "build",
    "parse",
]

REGINFO_NS = "urn:ietf:params:xml:ns:reginfo"
CONTENT_TYPE = "application/reginfo+xml"

RegistrationState = Literal["init", "active", "terminated"]
ContactState = Literal["active", "terminated"]
ContactEvent = Literal[
    "registered", "created", "refreshed", "shortened", "expired", "deactivated", "probation",
    "unregistered", "rejected",
]  # fmt: skip
_REG_STATES: tuple[RegistrationState, ...] = ("init", "active", "terminated")
_CONTACT_STATES: tuple[ContactState, ...] = ("active", "terminated")
_EVENTS: tuple[ContactEvent, ...] = (
    "registered", "created", "refreshed", "shortened", "expired", "deactivated", "probation",
    "unregistered", "rejected",
)  # fmt: skip
_UNSIGNED_LONG_MAX = 2**64 - 1
_S = TypeVar("_S", bound=str)


@dataclass(frozen=True, slots=True)
class Contact:
    """A ``<contact>`` of a registration."""

    id: str
    """Contact id (stable across notifications)."""
    state: ContactState
    """active | terminated."""
    event: ContactEvent
    """What changed it."""
    uri: str
    """The contact URI."""
    expires: int | None = None
    """Seconds until the binding expires."""
    q: str | None = None
    """Contact q-value as sent."""
    display_name: str | None = None
    """Display name."""
    unknown_params: tuple[tuple[str, str], ...] = ()
    """Contact header parameters not otherwise represented: (name, value, "" if none)."""
    duration_registered: int | None = None
    """Seconds the binding has existed."""
    retry_after: int | None = None
    """Seconds before re-registration may be tried (after rejected/probation)."""
    callid: str | None = None
    """Call-ID of the REGISTER."""
    cseq: int | None = None
    """CSeq number of the REGISTER."""
    extensions: tuple[bytes, ...] = ()
    """Extension elements (e.g. GRUUs), exclusive C14N."""


@dataclass(frozen=True, slots=True)
class Registration:
    """A ``<registration>``: one address-of-record and its contacts."""

    aor: str
    """Address of record (an IMPU)."""
    id: str
    """Registration id."""
    state: RegistrationState
    """init | active | terminated."""
    contacts: tuple[Contact, ...] = ()
    """Contacts bound to the AOR."""
    extensions: tuple[bytes, ...] = ()
    """Extension elements, exclusive C14N."""


@dataclass(frozen=True, slots=True)
class RegInfo:
    """``<reginfo>``."""

    version: int
    """Document version."""
    state: Literal["full", "partial"]
    """full | partial."""
    registrations: tuple[Registration, ...] = ()
    """Registrations."""


_T_ROOT = clark(REGINFO_NS, "reginfo")
_T_REG = clark(REGINFO_NS, "registration")
_T_CONTACT = clark(REGINFO_NS, "contact")
_T_URI = clark(REGINFO_NS, "uri")
_T_DISPLAY = clark(REGINFO_NS, "display-name")
_T_PARAM = clark(REGINFO_NS, "unknown-param")


def _unsigned(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise DocumentError(f"bad {what}: {value!r}")
    if int(value) > _UNSIGNED_LONG_MAX:
        raise DocumentError(f"bad {what}: {value!r}")
    return int(value)


def _pick(value: str | None, allowed: tuple[_S, ...], what: str) -> _S:
    for item in allowed:
        if value == item:
            return item
    raise DocumentError(f"bad {what}: {value!r}")


def _parse_contact(el: etree._Element) -> Contact:
    ident = el.get("id")
    if not ident:
        raise DocumentError("contact has no id")
    state = _pick(el.get("state"), _CONTACT_STATES, "contact state")
    event = _pick(el.get("event"), _EVENTS, "contact event")
    uri: str | None = None
    display: str | None = None
    params: list[tuple[str, str]] = []
    extensions: list[bytes] = []
    for child in el:
        if child.tag == _T_URI and uri is None:
            uri = (child.text or "").strip()
        elif child.tag == _T_DISPLAY and display is None:
            display = child.text or ""
        elif child.tag == _T_PARAM:
            name = child.get("name")
            if not name:
                raise DocumentError("unknown-param has no name")
            params.append((name, child.text or ""))
        elif split_clark(child.tag)[0] == REGINFO_NS:
            raise DocumentError(f"unexpected element in contact: {child.tag}")
        else:
            extensions.append(canonical(child))
    if not uri:
        raise DocumentError(f"contact {ident} has no uri")
    return Contact(
        id=ident,
        state=state,
        event=event,
        uri=uri,
        expires=_unsigned(el.get("expires"), "expires"),
        q=el.get("q"),
        display_name=display,
        unknown_params=tuple(params),
        duration_registered=_unsigned(el.get("duration-registered"), "duration-registered"),
        retry_after=_unsigned(el.get("retry-after"), "retry-after"),
        callid=el.get("callid"),
        cseq=_unsigned(el.get("cseq"), "cseq"),
        extensions=tuple(extensions),
    )


def _parse_registration(el: etree._Element) -> Registration:
    aor = (el.get("aor") or "").strip()
    if not aor:
        raise DocumentError("registration has no aor")
    ident = el.get("id")
    if not ident:
        raise DocumentError("registration has no id")
    state = _pick(el.get("state"), _REG_STATES, "registration state")
    contacts: list[Contact] = []
    extensions: list[bytes] = []
    for child in el:
        if child.tag == _T_CONTACT:
            contacts.append(_parse_contact(child))
        elif split_clark(child.tag)[0] == REGINFO_NS:
            raise DocumentError(f"unexpected element in registration: {child.tag}")
        else:
            extensions.append(canonical(child))
    return Registration(aor, ident, state, tuple(contacts), tuple(extensions))


def parse(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> RegInfo:
    """Parse a reginfo body."""
    root = parse_xml(data, max_size=max_size)
    if root.tag != _T_ROOT:
        raise DocumentError(f"not a reginfo document: root is {root.tag}")
    version = _unsigned(root.get("version"), "reginfo version")
    if version is None:
        raise DocumentError("reginfo has no version")
    states: tuple[Literal["full", "partial"], ...] = ("full", "partial")
    state = _pick(root.get("state"), states, "reginfo state")
    registrations: list[Registration] = []
    for child in root:
        if child.tag == _T_REG:
            registrations.append(_parse_registration(child))
        elif split_clark(child.tag)[0] == REGINFO_NS:
            raise DocumentError(f"unexpected element in reginfo: {child.tag}")
    return RegInfo(version, state, tuple(registrations))


def _set_unsigned(el: etree._Element, name: str, value: int | None) -> None:
    if value is None:
        return
    if not 0 <= value <= _UNSIGNED_LONG_MAX:
        raise DocumentError(f"bad {name}")
    el.set(name, str(value))


def build(info: RegInfo) -> bytes:
    """Serialise ``info`` as an ``application/reginfo+xml`` body."""
    if info.version < 0:
        raise DocumentError("bad reginfo version")
    _pick(info.state, ("full", "partial"), "reginfo state")
    root = new_root(_T_ROOT, {None: REGINFO_NS})
    root.set("version", str(info.version))
    root.set("state", info.state)
    for reg in info.registrations:
        if not reg.aor.strip() or not reg.id:
            raise DocumentError("registration needs aor and id")
        _pick(reg.state, _REG_STATES, "registration state")
        reg_el = etree.SubElement(root, _T_REG)
        reg_el.set("aor", reg.aor)
        reg_el.set("id", reg.id)
        reg_el.set("state", reg.state)
        for c in reg.contacts:
            if not c.id or not c.uri.strip():
                raise DocumentError("contact needs id and uri")
            _pick(c.state, _CONTACT_STATES, "contact state")
            _pick(c.event, _EVENTS, "contact event")
            el = etree.SubElement(reg_el, _T_CONTACT)
            el.set("id", c.id)
            el.set("state", c.state)
            el.set("event", c.event)
            _set_unsigned(el, "expires", c.expires)
            _set_unsigned(el, "duration-registered", c.duration_registered)
            _set_unsigned(el, "retry-after", c.retry_after)
            if c.q is not None:
                el.set("q", c.q)
            if c.callid is not None:
                el.set("callid", c.callid)
            _set_unsigned(el, "cseq", c.cseq)
            etree.SubElement(el, _T_URI).text = c.uri
            if c.display_name is not None:
                etree.SubElement(el, _T_DISPLAY).text = c.display_name
            for name, value in c.unknown_params:
                if not name:
                    raise DocumentError("unknown-param has no name")
                param = etree.SubElement(el, _T_PARAM)
                param.set("name", name)
                if value:
                    param.text = value
            for data in c.extensions:
                el.append(element_from_bytes(data))
        for data in reg.extensions:
            reg_el.append(element_from_bytes(data))
    return serialize(root)
