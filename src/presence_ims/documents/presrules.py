"""Presence authorization rules: common-policy (RFC 4745) with pres-rules (RFC 5025).

* ``parse(data) -> Ruleset`` and ``build(ruleset) -> bytes``
  (``application/auth-policy+xml``, the XCAP ``pres-rules`` document).
* ``evaluate(ruleset, watcher, *, sphere, now) -> Permissions | None``: all
  matching rules combined per RFC 4745 section 10 (sub-handling and
  provide-user-input: the maximum; booleans: OR; selections: union). ``None``
  when no rule matches (the PS then uses ``confirm``).
* ``transform(doc, permissions) -> PresenceDocument``: what one watcher may see.
* ``polite_block_document(entity)``: the neutral document a politely blocked
  watcher gets, identical to what anyone gets of an offline presentity.

Our own transformations, in ``urn:presence-ims:params:xml:ns:pres-rules-ext``:
``provide-location`` (GEOPRIV location objects; default false, and not implied by
``provide-all-attributes``) and ``provide-provenance`` (the provenance elements of
:func:`presence_ims.documents.compose.with_provenance`; default false).

Conditions also understood: OMA XDM common-policy ``anonymous-request`` (matches
watchers that asked for anonymity) and ``other-identity`` (matches watchers no
rule's ``identity`` matches). Any other unknown condition makes its rule never
match (RFC 4745 section 12).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from lxml import etree

from .compose import PROVENANCE_NS
from .pidf import (
    Device,
    Person,
    PresenceDocument,
    PresenceTuple,
    neutral_document,
    presentity_key,
)
from .rpid import RPID_NS, UserInput
from .xml import (
    DEFAULT_MAX_SIZE,
    DocumentError,
    as_utc,
    canonical,
    check_ncname,
    clark,
    element_from_bytes,
    extension_name,
    format_bool,
    format_datetime,
    new_root,
    parse_bool,
    parse_datetime,
    parse_xml,
    serialize,
    split_clark,
)

__all__ = [
    "CONTENT_TYPE",
    "CP_NS",
    "EXT_NS",
    "OMA_CP_NS",
    "PROVENANCE_NS",
    "PR_NS",
    "SUB_HANDLING_ORDER",
    "USER_INPUT_ORDER",
    "Actions",
    "Conditions",
    "DeviceSelector",
    "Except",
    "Identity",
    "Many",
    "Permissions",
    "PersonSelector",
    "Rule",
    "Ruleset",
    "ServiceSelector",
    "Transformations",
    "UnknownAttribute",
    "WatcherIdentity",
    "build",
    "current_sphere",
    "evaluate",
    "owner_permissions",
    "parse",
    "polite_block_document",
    "transform",
]

CP_NS = "urn:ietf:params:xml:ns:common-policy"
PR_NS = "urn:ietf:params:xml:ns:pres-rules"
EXT_NS = "urn:presence-ims:params:xml:ns:pres-rules-ext"
OMA_CP_NS = "urn:oma:xml:xdm:common-policy"
CONTENT_TYPE = "application/auth-policy+xml"

SubHandling = Literal["block", "confirm", "polite-block", "allow"]
UserInputLevel = Literal["false", "bare", "thresholds", "full"]
SUB_HANDLING_ORDER: dict[str, int] = {"block": 0, "confirm": 10, "polite-block": 20, "allow": 30}
"""RFC 5025 section 3.2.1 numeric values (combined by maximum)."""
USER_INPUT_ORDER: dict[str, int] = {"false": 0, "bare": 10, "thresholds": 20, "full": 30}
"""RFC 5025 provide-user-input numeric values (combined by maximum)."""
_SUB_HANDLINGS: tuple[SubHandling, ...] = ("block", "confirm", "polite-block", "allow")
_USER_INPUTS: tuple[UserInputLevel, ...] = ("false", "bare", "thresholds", "full")

_S = TypeVar("_S", bound=str)
_T = TypeVar("_T")


# --- models ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Except:
    """``<except>`` inside ``<many>``: an identity or a domain left out."""

    id: str | None = None
    """Excluded identity URI."""
    domain: str | None = None
    """Excluded domain."""


@dataclass(frozen=True, slots=True)
class Many:
    """``<many>``: any authenticated identity (of ``domain``), minus the exceptions."""

    domain: str | None = None
    """Restrict to this domain (None: any domain)."""
    excepts: tuple[Except, ...] = ()
    """Exceptions."""


@dataclass(frozen=True, slots=True)
class Identity:
    """``<identity>``: matches if any ``one`` or ``many`` matches."""

    ones: tuple[str, ...] = ()
    """``<one id=...>`` URIs."""
    manys: tuple[Many, ...] = ()
    """``<many>`` elements."""
    extensions: tuple[bytes, ...] = ()
    """Unknown identity children (never match), exclusive C14N."""


@dataclass(frozen=True, slots=True)
class Conditions:
    """``<conditions>``: every present condition must hold (AND)."""

    identity: Identity | None = None
    """Who the watcher is."""
    sphere: str | None = None
    """``<sphere value=...>``: whitespace-separated sphere names."""
    validity: tuple[tuple[datetime, datetime], ...] | None = None
    """``<validity>``: (from, until) intervals, any of which may contain now."""
    anonymous_request: bool = False
    """OMA ``<anonymous-request/>``: the watcher asked for anonymity."""
    other_identity: bool = False
    """OMA ``<other-identity/>``: no rule's identity condition matches the watcher."""
    extensions: tuple[bytes, ...] = ()
    """Unknown conditions (the rule then never matches), exclusive C14N."""


@dataclass(frozen=True, slots=True)
class Actions:
    """``<actions>``."""

    sub_handling: SubHandling | None = None
    """``pr:sub-handling``."""
    extensions: tuple[bytes, ...] = ()
    """Other actions (ignored), exclusive C14N."""


@dataclass(frozen=True, slots=True)
class ServiceSelector:
    """``pr:provide-services``: which tuples a watcher sees."""

    all: bool = False
    """``<all-services/>``."""
    uris: tuple[str, ...] = ()
    """``<service-uri>``: tuples whose contact is this URI."""
    schemes: tuple[str, ...] = ()
    """``<service-uri-scheme>``: tuples whose contact has this scheme."""
    occurrence_ids: tuple[str, ...] = ()
    """``<occurrence-id>``: tuples with this id."""
    classes: tuple[str, ...] = ()
    """``<class>``: tuples with this rpid:class."""


@dataclass(frozen=True, slots=True)
class PersonSelector:
    """``pr:provide-persons``."""

    all: bool = False
    """``<all-persons/>``."""
    occurrence_ids: tuple[str, ...] = ()
    """Persons with this id."""
    classes: tuple[str, ...] = ()
    """Persons with this rpid:class."""


@dataclass(frozen=True, slots=True)
class DeviceSelector:
    """``pr:provide-devices``."""

    all: bool = False
    """``<all-devices/>``."""
    device_ids: tuple[str, ...] = ()
    """Devices with this deviceID."""
    occurrence_ids: tuple[str, ...] = ()
    """Devices with this id."""
    classes: tuple[str, ...] = ()
    """Devices with this rpid:class."""


@dataclass(frozen=True, slots=True)
class UnknownAttribute:
    """``pr:provide-unknown-attribute``: an extension element by namespace and name."""

    ns: str
    """Namespace of the element."""
    name: str
    """Local name of the element."""
    value: bool
    """Provide it or not."""


@dataclass(frozen=True, slots=True)
class Transformations:
    """``<transformations>``; None means the element is absent (counts as false)."""

    services: ServiceSelector | None = None
    """provide-services."""
    persons: PersonSelector | None = None
    """provide-persons."""
    devices: DeviceSelector | None = None
    """provide-devices."""
    activities: bool | None = None
    """provide-activities."""
    class_: bool | None = None
    """provide-class."""
    device_id: bool | None = None
    """provide-deviceID."""
    mood: bool | None = None
    """provide-mood."""
    place_is: bool | None = None
    """provide-place-is."""
    place_type: bool | None = None
    """provide-place-type."""
    privacy: bool | None = None
    """provide-privacy."""
    relationship: bool | None = None
    """provide-relationship."""
    sphere: bool | None = None
    """provide-sphere."""
    status_icon: bool | None = None
    """provide-status-icon."""
    time_offset: bool | None = None
    """provide-time-offset."""
    user_input: UserInputLevel | None = None
    """provide-user-input."""
    note: bool | None = None
    """provide-note."""
    unknown_attributes: tuple[UnknownAttribute, ...] = ()
    """provide-unknown-attribute elements."""
    all_attributes: bool = False
    """provide-all-attributes."""
    location: bool | None = None
    """Our provide-location (GEOPRIV)."""
    provenance: bool | None = None
    """Our provide-provenance."""
    extensions: tuple[bytes, ...] = ()
    """Other transformations (ignored), exclusive C14N."""


@dataclass(frozen=True, slots=True)
class Rule:
    """``<rule>``."""

    id: str
    """Rule id (an XML ID)."""
    conditions: Conditions = field(default_factory=Conditions)
    """Conditions (empty: always matches)."""
    actions: Actions = field(default_factory=Actions)
    """Actions."""
    transformations: Transformations = field(default_factory=Transformations)
    """Transformations."""


@dataclass(frozen=True, slots=True)
class Ruleset:
    """``<ruleset>``."""

    rules: tuple[Rule, ...] = ()
    """Rules."""


@dataclass(frozen=True, slots=True)
class WatcherIdentity:
    """Who is asking, as the PS established it."""

    uri: str | None
    """The watcher's identity (the authenticated one, even when it asked for anonymity)."""
    authenticated: bool
    """The PS authenticated ``uri`` (P-Asserted-Identity in the trust domain, digest...)."""
    anonymous: bool = False
    """The watcher asked not to be identified to the presentity."""


_BOOL_FLAGS = (
    "activities", "class_", "device_id", "mood", "place_is", "place_type", "privacy",
    "relationship", "sphere", "status_icon", "time_offset", "note", "location", "provenance",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Permissions:
    """The combined result of all matching rules for one watcher."""

    sub_handling: SubHandling | None
    """Combined sub-handling (None: no matching rule said; the PS uses confirm)."""
    services: ServiceSelector = field(default_factory=ServiceSelector)
    """Union of provide-services."""
    persons: PersonSelector = field(default_factory=PersonSelector)
    """Union of provide-persons."""
    devices: DeviceSelector = field(default_factory=DeviceSelector)
    """Union of provide-devices."""
    activities: bool = False
    """provide-activities."""
    class_: bool = False
    """provide-class."""
    device_id: bool = False
    """provide-deviceID."""
    mood: bool = False
    """provide-mood."""
    place_is: bool = False
    """provide-place-is."""
    place_type: bool = False
    """provide-place-type."""
    privacy: bool = False
    """provide-privacy."""
    relationship: bool = False
    """provide-relationship."""
    sphere: bool = False
    """provide-sphere."""
    status_icon: bool = False
    """provide-status-icon."""
    time_offset: bool = False
    """provide-time-offset."""
    user_input: UserInputLevel = "false"
    """provide-user-input."""
    note: bool = False
    """provide-note."""
    unknown_attributes: frozenset[tuple[str, str]] = frozenset()
    """(namespace, name) of extension elements that may be provided."""
    all_attributes: bool = False
    """provide-all-attributes."""
    location: bool = False
    """provide-location (ours)."""
    provenance: bool = False
    """provide-provenance (ours)."""
    matched_rules: tuple[str, ...] = ()
    """Ids of the rules that matched, in document order."""


def owner_permissions() -> Permissions:
    """Everything, for the presentity watching itself."""
    return Permissions(
        "allow",
        ServiceSelector(all=True),
        PersonSelector(all=True),
        DeviceSelector(all=True),
        user_input="full",
        all_attributes=True,
        location=True,
        provenance=True,
        **{name: True for name in _BOOL_FLAGS if name not in ("location", "provenance")},  # type: ignore[arg-type]
    )


# --- parsing --------------------------------------------------------------------------


def _pick(value: str | None, allowed: tuple[_S, ...], what: str) -> _S:
    text = (value or "").strip()
    for item in allowed:
        if text == item:
            return item
    raise DocumentError(f"bad {what}: {text!r}")


def _token(el: etree._Element, what: str) -> str:
    if len(el):
        raise DocumentError(f"{what} must be text")
    value = " ".join((el.text or "").split())
    if not value:
        raise DocumentError(f"empty {what}")
    return value


def _parse_identity(el: etree._Element) -> Identity:
    ones: list[str] = []
    manys: list[Many] = []
    extensions: list[bytes] = []
    for child in el:
        ns, local = split_clark(child.tag)
        if ns == CP_NS and local == "one":
            ident = (child.get("id") or "").strip()
            if not ident:
                raise DocumentError("identity one has no id")
            ones.append(ident)
        elif ns == CP_NS and local == "many":
            excepts: list[Except] = []
            for item in child:
                if item.tag != clark(CP_NS, "except"):
                    if split_clark(item.tag)[0] == CP_NS:
                        raise DocumentError(f"unexpected element in many: {item.tag}")
                    continue
                exc = Except(item.get("id"), item.get("domain"))
                if exc.id is None and exc.domain is None:
                    raise DocumentError("except needs id or domain")
                excepts.append(exc)
            manys.append(Many(child.get("domain"), tuple(excepts)))
        elif ns == CP_NS:
            raise DocumentError(f"unexpected element in identity: {child.tag}")
        else:
            extensions.append(canonical(child))
    if not (ones or manys or extensions):
        raise DocumentError("empty identity condition")
    return Identity(tuple(ones), tuple(manys), tuple(extensions))


def _parse_validity(el: etree._Element) -> tuple[tuple[datetime, datetime], ...]:
    items = list(el)
    if not items or len(items) % 2:
        raise DocumentError("validity needs from/until pairs")
    pairs: list[tuple[datetime, datetime]] = []
    for start, end in zip(items[::2], items[1::2], strict=True):
        if start.tag != clark(CP_NS, "from") or end.tag != clark(CP_NS, "until"):
            raise DocumentError("validity needs from/until pairs")
        pairs.append(
            (
                parse_datetime(start.text, "validity from"),
                parse_datetime(end.text, "validity until"),
            )
        )
    return tuple(pairs)


def _parse_conditions(el: etree._Element) -> Conditions:
    identity: Identity | None = None
    sphere: str | None = None
    validity: tuple[tuple[datetime, datetime], ...] | None = None
    anonymous = other = False
    extensions: list[bytes] = []
    for child in el:
        ns, local = split_clark(child.tag)
        if ns == CP_NS:
            if local == "identity" and identity is None:
                identity = _parse_identity(child)
            elif local == "sphere" and sphere is None:
                value = child.get("value")
                if value is None:
                    raise DocumentError("sphere condition has no value")
                sphere = value
            elif local == "validity" and validity is None:
                validity = _parse_validity(child)
            else:
                raise DocumentError(f"unexpected or repeated condition: {local}")
        elif ns == OMA_CP_NS and local == "anonymous-request" and not anonymous:
            anonymous = True
        elif ns == OMA_CP_NS and local == "other-identity" and not other:
            other = True
        else:
            extensions.append(canonical(child))
    return Conditions(identity, sphere, validity, anonymous, other, tuple(extensions))


def _parse_actions(el: etree._Element) -> Actions:
    sub: SubHandling | None = None
    extensions: list[bytes] = []
    for child in el:
        if child.tag == clark(PR_NS, "sub-handling"):
            if sub is not None:
                raise DocumentError("repeated sub-handling")
            sub = _pick(child.text, _SUB_HANDLINGS, "sub-handling")
        elif split_clark(child.tag)[0] in (CP_NS, PR_NS):
            raise DocumentError(f"unexpected action: {child.tag}")
        else:
            extensions.append(canonical(child))
    return Actions(sub, tuple(extensions))


def _selector_items(
    el: etree._Element, kinds: dict[str, str], all_name: str
) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {name: [] for name in kinds.values()}
    found["all"] = []
    for child in el:
        ns, local = split_clark(child.tag)
        if ns != PR_NS:
            continue  # selectors of other namespaces grant nothing
        if local == all_name:
            found["all"].append("1")
        elif local in kinds:
            found[kinds[local]].append(_token(child, local))
        else:
            raise DocumentError(f"unexpected element in provide-*: {local}")
    if found["all"] and any(found[name] for name in kinds.values()):
        raise DocumentError(f"{all_name} combined with other selectors")
    return found


def _parse_services(el: etree._Element) -> ServiceSelector:
    kinds = {
        "service-uri": "uris",
        "service-uri-scheme": "schemes",
        "occurrence-id": "occurrence_ids",
        "class": "classes",
    }
    f = _selector_items(el, kinds, "all-services")
    return ServiceSelector(
        bool(f["all"]),
        tuple(f["uris"]),
        tuple(f["schemes"]),
        tuple(f["occurrence_ids"]),
        tuple(f["classes"]),
    )


def _parse_persons(el: etree._Element) -> PersonSelector:
    kinds = {"occurrence-id": "occurrence_ids", "class": "classes"}
    f = _selector_items(el, kinds, "all-persons")
    return PersonSelector(bool(f["all"]), tuple(f["occurrence_ids"]), tuple(f["classes"]))


def _parse_devices(el: etree._Element) -> DeviceSelector:
    kinds = {"deviceID": "device_ids", "occurrence-id": "occurrence_ids", "class": "classes"}
    f = _selector_items(el, kinds, "all-devices")
    return DeviceSelector(
        bool(f["all"]), tuple(f["device_ids"]), tuple(f["occurrence_ids"]), tuple(f["classes"])
    )


_PR_BOOLEANS = {
    "provide-activities": "activities",
    "provide-class": "class_",
    "provide-deviceID": "device_id",
    "provide-mood": "mood",
    "provide-place-is": "place_is",
    "provide-place-type": "place_type",
    "provide-privacy": "privacy",
    "provide-relationship": "relationship",
    "provide-sphere": "sphere",
    "provide-status-icon": "status_icon",
    "provide-time-offset": "time_offset",
    "provide-note": "note",
}
_EXT_BOOLEANS = {"provide-location": "location", "provide-provenance": "provenance"}


def _parse_transformations(el: etree._Element) -> Transformations:
    values: dict[str, object] = {}
    unknown: list[UnknownAttribute] = []
    extensions: list[bytes] = []

    def put(name: str, value: object) -> None:
        if name in values:
            raise DocumentError(f"repeated transformation: {name}")
        values[name] = value

    for child in el:
        ns, local = split_clark(child.tag)
        if ns == PR_NS:
            if local in _PR_BOOLEANS:
                put(_PR_BOOLEANS[local], parse_bool(child.text, local))
            elif local == "provide-services":
                put("services", _parse_services(child))
            elif local == "provide-persons":
                put("persons", _parse_persons(child))
            elif local == "provide-devices":
                put("devices", _parse_devices(child))
            elif local == "provide-user-input":
                put("user_input", _pick(child.text, _USER_INPUTS, "provide-user-input"))
            elif local == "provide-unknown-attribute":
                attr_ns, name = child.get("ns"), child.get("name")
                if not attr_ns or not name:
                    raise DocumentError("provide-unknown-attribute needs ns and name")
                unknown.append(
                    UnknownAttribute(attr_ns, name, parse_bool(child.text, "unknown-attribute"))
                )
            elif local == "provide-all-attributes":
                put("all_attributes", True)
            else:
                raise DocumentError(f"unknown pres-rules transformation: {local}")
        elif ns == EXT_NS and local in _EXT_BOOLEANS:
            put(_EXT_BOOLEANS[local], parse_bool(child.text, local))
        elif ns == CP_NS:
            raise DocumentError(f"unexpected transformation: {child.tag}")
        else:
            extensions.append(canonical(child))
    return Transformations(
        unknown_attributes=tuple(unknown),
        extensions=tuple(extensions),
        **values,  # type: ignore[arg-type]
    )


def parse(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Ruleset:
    """Parse a common-policy ruleset with pres-rules actions and transformations."""
    root = parse_xml(data, max_size=max_size)
    if root.tag != clark(CP_NS, "ruleset"):
        raise DocumentError(f"not a common-policy ruleset: root is {root.tag}")
    rules: list[Rule] = []
    seen: set[str] = set()
    for child in root:
        if child.tag != clark(CP_NS, "rule"):
            raise DocumentError(f"unexpected element in ruleset: {child.tag}")
        ident = child.get("id")
        if not ident:
            raise DocumentError("rule has no id")
        check_ncname(ident, "rule id")
        if ident in seen:
            raise DocumentError(f"duplicate rule id {ident}")
        seen.add(ident)
        parts: dict[str, etree._Element] = {}
        for part in child:
            ns, local = split_clark(part.tag)
            if ns != CP_NS or local not in ("conditions", "actions", "transformations"):
                raise DocumentError(f"unexpected element in rule: {part.tag}")
            if local in parts:
                raise DocumentError(f"rule {ident} has two {local}")
            parts[local] = part
        rules.append(
            Rule(
                ident,
                _parse_conditions(parts["conditions"]) if "conditions" in parts else Conditions(),
                _parse_actions(parts["actions"]) if "actions" in parts else Actions(),
                _parse_transformations(parts["transformations"])
                if "transformations" in parts
                else Transformations(),
            )
        )
    return Ruleset(tuple(rules))


# --- building -------------------------------------------------------------------------


def _cp(local: str) -> str:
    return clark(CP_NS, local)


def _pr(local: str) -> str:
    return clark(PR_NS, local)


def _build_selector(
    parent: etree._Element,
    tag: str,
    all_name: str,
    is_all: bool,
    items: tuple[tuple[str, tuple[str, ...]], ...],
) -> None:
    el = etree.SubElement(parent, _pr(tag))
    if is_all:
        if any(values for _, values in items):
            raise DocumentError(f"{all_name} combined with other selectors")
        etree.SubElement(el, _pr(all_name))
        return
    for local, values in items:
        for value in values:
            if not value.strip():
                raise DocumentError(f"empty {local}")
            etree.SubElement(el, _pr(local)).text = value


def _build_conditions(rule_el: etree._Element, c: Conditions) -> None:
    if c == Conditions():
        return
    el = etree.SubElement(rule_el, _cp("conditions"))
    if c.identity is not None:
        ident = c.identity
        if not (ident.ones or ident.manys or ident.extensions):
            raise DocumentError("empty identity condition")
        id_el = etree.SubElement(el, _cp("identity"))
        for one in ident.ones:
            etree.SubElement(id_el, _cp("one")).set("id", one)
        for many in ident.manys:
            many_el = etree.SubElement(id_el, _cp("many"))
            if many.domain is not None:
                many_el.set("domain", many.domain)
            for exc in many.excepts:
                if exc.id is None and exc.domain is None:
                    raise DocumentError("except needs id or domain")
                exc_el = etree.SubElement(many_el, _cp("except"))
                if exc.domain is not None:
                    exc_el.set("domain", exc.domain)
                if exc.id is not None:
                    exc_el.set("id", exc.id)
        for data in ident.extensions:
            id_el.append(element_from_bytes(data))
    if c.sphere is not None:
        etree.SubElement(el, _cp("sphere")).set("value", c.sphere)
    if c.validity is not None:
        if not c.validity:
            raise DocumentError("validity needs from/until pairs")
        val_el = etree.SubElement(el, _cp("validity"))
        for start, end in c.validity:
            etree.SubElement(val_el, _cp("from")).text = format_datetime(start)
            etree.SubElement(val_el, _cp("until")).text = format_datetime(end)
    if c.anonymous_request:
        etree.SubElement(el, clark(OMA_CP_NS, "anonymous-request"), nsmap={"ocp": OMA_CP_NS})
    if c.other_identity:
        etree.SubElement(el, clark(OMA_CP_NS, "other-identity"), nsmap={"ocp": OMA_CP_NS})
    for data in c.extensions:
        el.append(element_from_bytes(data))


def _build_transformations(rule_el: etree._Element, t: Transformations) -> None:
    if t == Transformations():
        return
    el = etree.SubElement(rule_el, _cp("transformations"))
    if t.services is not None:
        s = t.services
        _build_selector(
            el, "provide-services", "all-services", s.all,
            (("service-uri", s.uris), ("service-uri-scheme", s.schemes),
             ("occurrence-id", s.occurrence_ids), ("class", s.classes)),
        )  # fmt: skip
    if t.persons is not None:
        p = t.persons
        _build_selector(
            el, "provide-persons", "all-persons", p.all,
            (("occurrence-id", p.occurrence_ids), ("class", p.classes)),
        )  # fmt: skip
    if t.devices is not None:
        d = t.devices
        _build_selector(
            el, "provide-devices", "all-devices", d.all,
            (("deviceID", d.device_ids), ("occurrence-id", d.occurrence_ids),
             ("class", d.classes)),
        )  # fmt: skip
    for local, name in _PR_BOOLEANS.items():
        value = getattr(t, name)
        if value is not None and local != "provide-note":
            etree.SubElement(el, _pr(local)).text = format_bool(value)
    if t.user_input is not None:
        etree.SubElement(el, _pr("provide-user-input")).text = _pick(
            t.user_input, _USER_INPUTS, "provide-user-input"
        )
    if t.note is not None:
        etree.SubElement(el, _pr("provide-note")).text = format_bool(t.note)
    for attr in t.unknown_attributes:
        if not attr.ns or not attr.name:
            raise DocumentError("provide-unknown-attribute needs ns and name")
        attr_el = etree.SubElement(el, _pr("provide-unknown-attribute"))
        attr_el.set("ns", attr.ns)
        attr_el.set("name", attr.name)
        attr_el.text = format_bool(attr.value)
    if t.all_attributes:
        etree.SubElement(el, _pr("provide-all-attributes"))
    for local, name in _EXT_BOOLEANS.items():
        value = getattr(t, name)
        if value is not None:
            etree.SubElement(el, clark(EXT_NS, local), nsmap={"pre": EXT_NS}).text = format_bool(
                value
            )
    for data in t.extensions:
        el.append(element_from_bytes(data))


def build(ruleset: Ruleset) -> bytes:
    """Serialise ``ruleset`` (``application/auth-policy+xml``)."""
    root = new_root(_cp("ruleset"), {"cr": CP_NS, "pr": PR_NS})
    seen: set[str] = set()
    for rule in ruleset.rules:
        check_ncname(rule.id, "rule id")
        if rule.id in seen:
            raise DocumentError(f"duplicate rule id {rule.id}")
        seen.add(rule.id)
        rule_el = etree.SubElement(root, _cp("rule"))
        rule_el.set("id", rule.id)
        _build_conditions(rule_el, rule.conditions)
        if rule.actions != Actions():
            actions = etree.SubElement(rule_el, _cp("actions"))
            if rule.actions.sub_handling is not None:
                etree.SubElement(actions, _pr("sub-handling")).text = _pick(
                    rule.actions.sub_handling, _SUB_HANDLINGS, "sub-handling"
                )
            for data in rule.actions.extensions:
                actions.append(element_from_bytes(data))
        _build_transformations(rule_el, rule.transformations)
    return serialize(root)


# --- evaluation -----------------------------------------------------------------------


def _domain_of(uri: str) -> str | None:
    key = presentity_key(uri)
    if key[0] == "sip":
        return key[2]
    _, at, host = uri.rpartition("@")
    if not at:
        return None
    return host.split(";", 1)[0].split(":", 1)[0].lower() or None


def _same_domain(a: str | None, b: str) -> bool:
    return a is not None and a == b.strip().lower().rstrip(".")


def _identity_matches(identity: Identity, watcher: WatcherIdentity) -> bool:
    if not watcher.authenticated or not watcher.uri:
        return False  # only authenticated identities can be matched (RFC 4745 7.1)
    uri = watcher.uri
    key = presentity_key(uri)
    if any(presentity_key(one) == key for one in identity.ones):
        return True
    domain = _domain_of(uri)
    for many in identity.manys:
        if many.domain is not None and not _same_domain(domain, many.domain):
            continue
        excluded = any(
            (exc.id is not None and presentity_key(exc.id) == key)
            or (exc.domain is not None and _same_domain(domain, exc.domain))
            for exc in many.excepts
        )
        if not excluded:
            return True
    return False


def _validity_holds(validity: tuple[tuple[datetime, datetime], ...], now: datetime) -> bool:
    moment = as_utc(now)
    return any(as_utc(start) <= moment < as_utc(end) for start, end in validity)


def _sphere_holds(condition: str, sphere: str | None) -> bool:
    if sphere is None:
        return False
    return sphere.strip().lower() in {value.lower() for value in condition.split()}


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(a) | set(b)))


def _combine(rules: list[Rule]) -> Permissions:
    sub: SubHandling | None = None
    flags = dict.fromkeys(_BOOL_FLAGS, False)
    user_input: UserInputLevel = "false"
    services = ServiceSelector()
    persons = PersonSelector()
    devices = DeviceSelector()
    unknown: dict[tuple[str, str], bool] = {}
    all_attributes = False
    for rule in rules:
        a, t = rule.actions, rule.transformations
        if a.sub_handling is not None and (
            sub is None or SUB_HANDLING_ORDER[a.sub_handling] > SUB_HANDLING_ORDER[sub]
        ):
            sub = a.sub_handling
        for name in _BOOL_FLAGS:
            flags[name] = flags[name] or getattr(t, name) is True
        if (
            t.user_input is not None
            and USER_INPUT_ORDER[t.user_input] > USER_INPUT_ORDER[user_input]
        ):
            user_input = t.user_input
        if t.services is not None:
            s = t.services
            services = ServiceSelector(
                services.all or s.all,
                _union(services.uris, s.uris),
                _union(services.schemes, tuple(x.lower() for x in s.schemes)),
                _union(services.occurrence_ids, s.occurrence_ids),
                _union(services.classes, s.classes),
            )
        if t.persons is not None:
            p = t.persons
            persons = PersonSelector(
                persons.all or p.all,
                _union(persons.occurrence_ids, p.occurrence_ids),
                _union(persons.classes, p.classes),
            )
        if t.devices is not None:
            d = t.devices
            devices = DeviceSelector(
                devices.all or d.all,
                _union(devices.device_ids, d.device_ids),
                _union(devices.occurrence_ids, d.occurrence_ids),
                _union(devices.classes, d.classes),
            )
        for attr in t.unknown_attributes:
            key = (attr.ns, attr.name)
            unknown[key] = unknown.get(key, False) or attr.value
        all_attributes = all_attributes or t.all_attributes
    return Permissions(
        sub,
        services,
        persons,
        devices,
        user_input=user_input,
        unknown_attributes=frozenset(key for key, value in unknown.items() if value),
        all_attributes=all_attributes,
        matched_rules=tuple(rule.id for rule in rules),
        **flags,
    )


def evaluate(
    ruleset: Ruleset,
    watcher: WatcherIdentity,
    *,
    sphere: str | None,
    now: datetime,
) -> Permissions | None:
    """Combine every rule whose conditions hold for ``watcher``; None if none does.

    ``sphere`` is the presentity's current sphere (see :func:`current_sphere`);
    ``now`` the evaluation time (naive datetimes are taken as UTC).
    """
    identity_hits = {
        rule.id: _identity_matches(rule.conditions.identity, watcher)
        for rule in ruleset.rules
        if rule.conditions.identity is not None
    }
    someone_matched = any(identity_hits.values())
    matching: list[Rule] = []
    for rule in ruleset.rules:
        c = rule.conditions
        if c.extensions:
            continue  # an unknown condition is false
        if c.identity is not None and not identity_hits[rule.id]:
            continue
        if c.sphere is not None and not _sphere_holds(c.sphere, sphere):
            continue
        if c.validity is not None and not _validity_holds(c.validity, now):
            continue
        if c.anonymous_request and not watcher.anonymous:
            continue
        if c.other_identity and someone_matched:
            continue
        matching.append(rule)
    if not matching:
        return None
    return _combine(matching)


# --- transformation -------------------------------------------------------------------


def _keep_extensions(extensions: tuple[bytes, ...], p: Permissions) -> tuple[bytes, ...]:
    kept: list[bytes] = []
    for data in extensions:
        name = extension_name(data)
        if name[0] == PROVENANCE_NS:
            if p.provenance:
                kept.append(data)
        elif p.all_attributes or name in p.unknown_attributes:
            kept.append(data)
    return tuple(kept)


def _allowed(p: Permissions, flag: str) -> bool:
    return p.all_attributes or bool(getattr(p, flag))


def _user_input(value: UserInput | None, p: Permissions) -> UserInput | None:
    level = "full" if p.all_attributes else p.user_input
    if value is None or level == "false":
        return None
    if level == "bare":
        return UserInput(value.value, None, None, value.id)
    if level == "thresholds":
        return UserInput(value.value, value.idle_threshold, None, value.id)
    return value


def _strip_notes(value: _T, p: Permissions) -> _T:
    """``value`` without its inner rpid:note children unless notes are allowed."""
    if value is None or _allowed(p, "note") or not getattr(value, "notes", ()):
        return value
    return cast(_T, replace(cast(Any, value), notes=()))


def _keep(value: _T | None, p: Permissions, flag: str) -> _T | None:
    return _strip_notes(value, p) if _allowed(p, flag) else None


def _service_selected(t: PresenceTuple, s: ServiceSelector) -> bool:
    if s.all or t.id in s.occurrence_ids:
        return True
    if t.class_ is not None and t.class_ in s.classes:
        return True
    if t.contact is not None:
        uri = t.contact.uri
        if s.schemes and uri.partition(":")[0].strip().lower() in s.schemes:
            return True
        key = presentity_key(uri)
        if any(presentity_key(x) == key for x in s.uris):
            return True
    return False


def _transform_tuple(t: PresenceTuple, p: Permissions) -> PresenceTuple:
    return replace(
        t,
        notes=t.notes if _allowed(p, "note") else (),
        device_ids=t.device_ids if _allowed(p, "device_id") else (),
        class_=t.class_ if _allowed(p, "class_") else None,
        user_input=_user_input(t.user_input, p),
        status_icon=t.status_icon if _allowed(p, "status_icon") else None,
        relationship=_keep(t.relationship, p, "relationship"),
        service_class=_strip_notes(t.service_class, p)
        if p.all_attributes or (RPID_NS, "service-class") in p.unknown_attributes
        else None,
        location=t.location if p.location else None,
        status_extensions=_keep_extensions(t.status_extensions, p),
        extensions=_keep_extensions(t.extensions, p),
    )


def _person_selected(person: Person, s: PersonSelector) -> bool:
    return (
        s.all
        or person.id in s.occurrence_ids
        or (person.class_ is not None and person.class_ in s.classes)
    )


def _transform_person(person: Person, p: Permissions) -> Person:
    return replace(
        person,
        activities=_keep(person.activities, p, "activities"),
        class_=person.class_ if _allowed(p, "class_") else None,
        mood=_keep(person.mood, p, "mood"),
        place_is=_keep(person.place_is, p, "place_is"),
        place_type=_keep(person.place_type, p, "place_type"),
        privacy=_keep(person.privacy, p, "privacy"),
        sphere=person.sphere if _allowed(p, "sphere") else None,
        status_icon=person.status_icon if _allowed(p, "status_icon") else None,
        time_offset=person.time_offset if _allowed(p, "time_offset") else None,
        user_input=_user_input(person.user_input, p),
        location=person.location if p.location else None,
        notes=person.notes if _allowed(p, "note") else (),
        extensions=_keep_extensions(person.extensions, p),
    )


def _device_selected(device: Device, s: DeviceSelector) -> bool:
    return (
        s.all
        or device.id in s.occurrence_ids
        or device.device_id.lower() in {x.lower() for x in s.device_ids}
        or (device.class_ is not None and device.class_ in s.classes)
    )


def _transform_device(device: Device, p: Permissions) -> Device:
    return replace(
        device,
        class_=device.class_ if _allowed(p, "class_") else None,
        user_input=_user_input(device.user_input, p),
        location=device.location if p.location else None,
        notes=device.notes if _allowed(p, "note") else (),
        extensions=_keep_extensions(device.extensions, p),
    )


def transform(doc: PresenceDocument, permissions: Permissions | None) -> PresenceDocument:
    """The document one watcher may see.

    Only ``allow`` reveals anything; any other outcome (and no permissions at
    all) gives :func:`polite_block_document`. Under ``allow``, services,
    persons and devices are selected by provide-services/persons/devices, and
    each attribute survives only with its provide-* permission: notes with
    provide-note, locations with provide-location, extension elements with
    provide-unknown-attribute (or provide-all-attributes), provenance with
    provide-provenance. A result with nothing left is the neutral document too,
    so that "nothing visible" and "offline" look the same.
    """
    p = permissions
    if p is None or p.sub_handling != "allow":
        return polite_block_document(doc.entity)
    tuples = tuple(_transform_tuple(t, p) for t in doc.tuples if _service_selected(t, p.services))
    persons = tuple(_transform_person(x, p) for x in doc.persons if _person_selected(x, p.persons))
    devices = tuple(_transform_device(d, p) for d in doc.devices if _device_selected(d, p.devices))
    notes = doc.notes if _allowed(p, "note") else ()
    extensions = _keep_extensions(doc.extensions, p)
    if not (tuples or persons or devices or notes or extensions):
        return polite_block_document(doc.entity)
    return PresenceDocument(doc.entity, tuples, persons, devices, notes, extensions)


def polite_block_document(entity: str) -> PresenceDocument:
    """The neutral document: one closed tuple, no person details (see pidf.neutral_document)."""
    return neutral_document(entity)


def current_sphere(doc: PresenceDocument) -> str | None:
    """The presentity's sphere (home, work, ...) from the first person that states one."""
    for person in doc.persons:
        if person.sphere is not None and person.sphere.value is not None:
            return person.sphere.value
    return None
