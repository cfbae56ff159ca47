"""Composition of several publications into one presence document (RFC 4479 section 3.4).

A presentity's state arrives from several sources: the UE (Peu), the PNA for
network elements (Pen) and the PEA for external sources (Pex). ``compose``
merges their current publications deterministically and records, for every
element of the result, which publication it came from:

* tuples are merged by id: for the same id the source class with the higher
  priority wins, then the newest ``received_at``, then the smallest etag;
* the persons of all publications become one composed person, attribute by
  attribute (activities from one source, location from another...), each by
  the same rule;
* devices are merged by id like tuples;
* presence-level notes come from the winning publication that has any;
  presence-level extension elements are merged by element name.

Provenance elements (our namespace) found in publications are dropped: only
the PS asserts provenance, with :func:`with_provenance`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal

from lxml import etree

from .pidf import Device, Person, PresenceDocument, PresenceTuple
from .rpid import Note
from .xml import DocumentError, canonical, clark, extension_name, parse_xml

__all__ = [
    "DEFAULT_POLICY",
    "PERSON_ATTRIBUTES",
    "PROVENANCE_NS",
    "ComposePolicy",
    "ComposedPresence",
    "Provenance",
    "Publication",
    "compose",
    "read_provenance",
    "with_provenance",
]

PROVENANCE_NS = "urn:presence-ims:params:xml:ns:provenance"

SourceClass = Literal["ue", "network", "external"]
Interface = Literal["Peu", "Pen", "Pex"]


@dataclass(frozen=True, slots=True)
class Publication:
    """One source's current publication for a presentity."""

    etag: str
    """Entity tag of the publication (RFC 3903)."""
    source_id: str
    """Who published (an IMPU, a PNA or PEA instance...)."""
    source_class: SourceClass
    """ue | network | external."""
    interface: Interface
    """Peu | Pen | Pex."""
    asserted_identity: str | None
    """The identity asserted for the publisher (P-Asserted-Identity, TLS peer)."""
    received_at: float
    """When the PS accepted it (seconds, the PS clock)."""
    document: PresenceDocument
    """The published document."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where one composed element came from."""

    source_id: str
    """Publisher."""
    source_class: SourceClass
    """ue | network | external."""
    interface: Interface
    """Peu | Pen | Pex."""
    asserted_identity: str | None
    """Asserted identity of the publisher."""
    received_at: float
    """When the PS accepted the publication."""


@dataclass(frozen=True, slots=True)
class ComposePolicy:
    """Priorities of source classes, optionally per element kind.

    Kinds: ``tuple``, ``device``, ``note``, ``extension``, ``person`` and
    ``person/<attribute>`` (``person/activities``, ``person/location``...,
    attribute names as in :data:`PERSON_ATTRIBUTES`). A kind not listed falls
    back to ``person`` (for person attributes) and then to ``priorities``.
    Unknown source classes have priority 0.
    """

    priorities: Mapping[str, int]
    """Source class -> priority (higher wins)."""
    per_kind: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Element kind -> source class -> priority."""

    def priority(self, kind: str, source_class: str) -> int:
        table = self.per_kind.get(kind)
        if table is None and kind.startswith("person/"):
            table = self.per_kind.get("person")
        if table is None:
            table = self.priorities
        return table.get(source_class, 0)


_NETWORK_FIRST = {"network": 30, "ue": 20, "external": 10}
DEFAULT_POLICY = ComposePolicy(
    priorities={"ue": 30, "network": 20, "external": 10},
    per_kind={
        "tuple": _NETWORK_FIRST,
        "device": _NETWORK_FIRST,
        "person/location": _NETWORK_FIRST,
    },
)
"""The user speaks for themselves (activities, mood, notes...); the network is
trusted for service/device state and location; external sources come last."""


@dataclass(frozen=True, slots=True)
class ComposedPresence:
    """The composed document and where each of its elements came from."""

    document: PresenceDocument
    """The composed document."""
    provenance: Mapping[str, Provenance]
    """Element key -> provenance. Keys: ``tuple/<id>``, ``device/<id>``,
    ``person/<attribute>`` (``person/extension:{ns}name`` for extensions),
    ``note``, ``extension/{ns}name``."""


PERSON_ATTRIBUTES: tuple[str, ...] = (
    "activities", "class", "mood", "place-is", "place-type", "privacy", "sphere",
    "status-icon", "time-offset", "user-input", "location", "note", "timestamp",
)  # fmt: skip
"""Person attributes merged one by one (element names; ``note`` is the dm:note list)."""

_ATTRIBUTE_FIELD: dict[str, str] = {
    "activities": "activities",
    "class": "class_",
    "mood": "mood",
    "place-is": "place_is",
    "place-type": "place_type",
    "privacy": "privacy",
    "sphere": "sphere",
    "status-icon": "status_icon",
    "time-offset": "time_offset",
    "user-input": "user_input",
    "location": "location",
    "note": "notes",
    "timestamp": "timestamp",
}


_PERSON_FIELDS_MERGED = {f.name for f in fields(Person)} == {
    *_ATTRIBUTE_FIELD.values(), "id", "extensions"
}
"""Every field of a person is an attribute merged one by one (or its id or extensions):
a single person then composes into itself (see :func:`_compose_one`)."""


def _provenance(pub: Publication) -> Provenance:
    return Provenance(
        pub.source_id, pub.source_class, pub.interface, pub.asserted_identity, pub.received_at
    )


def _rank(pub: Publication, kind: str, policy: ComposePolicy) -> tuple[int, float, str, str]:
    """Sort key: the smallest wins."""
    return (-policy.priority(kind, pub.source_class), -pub.received_at, pub.etag, pub.source_id)


def _strip_provenance(extensions: tuple[bytes, ...]) -> tuple[bytes, ...]:
    return tuple(x for x in extensions if extension_name(x)[0] != PROVENANCE_NS)


def _unique(ident: str, taken: set[str]) -> str:
    candidate, n = ident, 1
    while candidate in taken:
        n += 1
        candidate = f"{ident}-{n}"
    taken.add(candidate)
    return candidate


def _merge_by_id(
    items: list[tuple[Publication, PresenceTuple | Device]], kind: str, policy: ComposePolicy
) -> dict[str, tuple[Publication, PresenceTuple | Device]]:
    best: dict[str, tuple[Publication, PresenceTuple | Device]] = {}
    for pub, item in items:
        current = best.get(item.id)
        if current is None or _rank(pub, kind, policy) < _rank(current[0], kind, policy):
            best[item.id] = (pub, item)
    return best


def _compose_person(
    pubs: list[Publication], policy: ComposePolicy, provenance: dict[str, Provenance]
) -> Person | None:
    # (publication, position in the input, person) for every person
    persons = [
        (pub, index, person) for pub in pubs for index, person in enumerate(pub.document.persons)
    ]
    if not persons:
        return None

    def key(entry: tuple[Publication, int, Person], kind: str) -> tuple[object, ...]:
        return (*_rank(entry[0], kind, policy), entry[1])

    base = min(persons, key=lambda e: key(e, "person"))
    values: dict[str, object] = {}
    for attribute, field_name in _ATTRIBUTE_FIELD.items():
        kind = f"person/{attribute}"
        having = [e for e in persons if getattr(e[2], field_name) not in (None, ())]
        if not having:
            continue
        winner = min(having, key=lambda e, k=kind: key(e, k))  # type: ignore[misc]
        values[field_name] = getattr(winner[2], field_name)
        provenance[kind] = _provenance(winner[0])
    # extension elements, grouped by element name; the winner's elements of that name
    by_name: dict[tuple[str, str], list[tuple[Publication, int, bytes]]] = {}
    for pub, index, person in persons:
        for data in _strip_provenance(person.extensions):
            by_name.setdefault(extension_name(data), []).append((pub, index, data))
    extensions: list[bytes] = []
    for name in sorted(by_name):
        entries = by_name[name]
        top = min(entries, key=lambda e: (*_rank(e[0], "person/extension", policy), e[1]))
        extensions.extend(data for pub, index, data in entries if pub is top[0] and index == top[1])
        provenance[f"person/extension:{{{name[0]}}}{name[1]}"] = _provenance(top[0])
    return Person(id=base[2].id, extensions=tuple(extensions), **values)  # type: ignore[arg-type]


def compose(
    entity: str,
    publications: Iterable[Publication],
    policy: ComposePolicy = DEFAULT_POLICY,
) -> ComposedPresence:
    """Compose ``publications`` for ``entity``; the order of the input does not matter."""
    pubs = list(publications)
    if len(pubs) == 1:
        single = _compose_one(entity, pubs[0])
        if single is not None:
            return single
    provenance: dict[str, Provenance] = {}
    taken: set[str] = set()

    tuple_items: list[tuple[Publication, PresenceTuple | Device]] = [
        (pub, t) for pub in pubs for t in pub.document.tuples
    ]
    tuples: list[PresenceTuple] = []
    for ident, (pub, item) in sorted(_merge_by_id(tuple_items, "tuple", policy).items()):
        assert isinstance(item, PresenceTuple)
        final = _unique(ident, taken)
        tuples.append(
            replace(
                item,
                id=final,
                extensions=_strip_provenance(item.extensions),
                status_extensions=_strip_provenance(item.status_extensions),
            )
        )
        provenance[f"tuple/{final}"] = _provenance(pub)

    device_items: list[tuple[Publication, PresenceTuple | Device]] = [
        (pub, d) for pub in pubs for d in pub.document.devices
    ]
    devices: list[Device] = []
    for ident, (pub, item) in sorted(_merge_by_id(device_items, "device", policy).items()):
        assert isinstance(item, Device)
        final = _unique(ident, taken)
        devices.append(replace(item, id=final, extensions=_strip_provenance(item.extensions)))
        provenance[f"device/{final}"] = _provenance(pub)

    person = _compose_person(pubs, policy, provenance)
    persons: tuple[Person, ...] = ()
    if person is not None:
        persons = (replace(person, id=_unique(person.id, taken)),)

    notes: tuple[Note, ...] = ()
    with_notes = [pub for pub in pubs if pub.document.notes]
    if with_notes:
        top = min(with_notes, key=lambda pub: _rank(pub, "note", policy))
        notes = top.document.notes
        provenance["note"] = _provenance(top)

    by_name: dict[tuple[str, str], list[tuple[Publication, bytes]]] = {}
    for pub in pubs:
        for data in _strip_provenance(pub.document.extensions):
            by_name.setdefault(extension_name(data), []).append((pub, data))
    extensions: list[bytes] = []
    for name in sorted(by_name):
        entries = by_name[name]
        winner = min(entries, key=lambda e: _rank(e[0], "extension", policy))[0]
        extensions.extend(data for pub, data in entries if pub is winner)
        provenance[f"extension/{{{name[0]}}}{name[1]}"] = _provenance(winner)

    document = PresenceDocument(
        entity,
        tuple(tuples),
        persons,
        tuple(devices),
        notes,
        tuple(extensions),
    )
    return ComposedPresence(document, provenance)


def _by_extension_name(extensions: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """Extensions without provenance, grouped by element name in name order (stable)."""
    kept = _strip_provenance(extensions)
    if len(kept) < 2:
        return kept
    return tuple(sorted(kept, key=extension_name))


def _compose_one(entity: str, pub: Publication) -> ComposedPresence | None:
    """What :func:`compose` makes of a single publication, without the merging.

    With one source every element wins by default: the result is the document
    with its tuples and devices in id order, its persons' attributes on one person,
    provenance elements dropped and extension elements grouped by name, exactly as
    the general path orders them. Documents it does not cover (repeated ids, more
    than one person) return None and take the general path.
    """
    doc = pub.document
    if len(doc.persons) > 1 or not _PERSON_FIELDS_MERGED:
        return None
    tuple_ids = [t.id for t in doc.tuples]
    device_ids = [d.id for d in doc.devices]
    if len(set(tuple_ids)) != len(tuple_ids) or len(set(device_ids)) != len(device_ids):
        return None
    source = _provenance(pub)
    provenance: dict[str, Provenance] = {}
    taken: set[str] = set()
    tuples: list[PresenceTuple] = []
    for t in sorted(doc.tuples, key=lambda t: t.id):
        final = _unique(t.id, taken)
        extensions = _strip_provenance(t.extensions)
        status_extensions = _strip_provenance(t.status_extensions)
        if (final != t.id or extensions != t.extensions
                or status_extensions != t.status_extensions):
            t = replace(t, id=final, extensions=extensions, status_extensions=status_extensions)
        tuples.append(t)
        provenance[f"tuple/{final}"] = source
    devices: list[Device] = []
    for d in sorted(doc.devices, key=lambda d: d.id):
        final = _unique(d.id, taken)
        extensions = _strip_provenance(d.extensions)
        if final != d.id or extensions != d.extensions:
            d = replace(d, id=final, extensions=extensions)
        devices.append(d)
        provenance[f"device/{final}"] = source
    persons: tuple[Person, ...] = ()
    if doc.persons:
        person = doc.persons[0]
        for attribute, field_name in _ATTRIBUTE_FIELD.items():
            if getattr(person, field_name) not in (None, ()):
                provenance[f"person/{attribute}"] = source
        extensions = _by_extension_name(person.extensions)
        for data in extensions:
            ns, name = extension_name(data)
            provenance[f"person/extension:{{{ns}}}{name}"] = source
        final = _unique(person.id, taken)
        if final != person.id or extensions != person.extensions:
            person = replace(person, id=final, extensions=extensions)
        persons = (person,)
    if doc.notes:
        provenance["note"] = source
    extensions = _by_extension_name(doc.extensions)
    for data in extensions:
        ns, name = extension_name(data)
        provenance[f"extension/{{{ns}}}{name}"] = source
    document = PresenceDocument(
        entity, tuple(tuples), persons, tuple(devices), doc.notes, extensions
    )
    return ComposedPresence(document, provenance)


# --- provenance elements --------------------------------------------------------------

_T_PROVENANCE = clark(PROVENANCE_NS, "provenance")


def _provenance_element(prov: Provenance, element: str | None) -> bytes:
    if not math.isfinite(prov.received_at):
        raise DocumentError("provenance received-at must be finite")
    el = etree.Element(_T_PROVENANCE, nsmap={"pv": PROVENANCE_NS})
    if element is not None:
        el.set("element", element)
    el.set("source-id", prov.source_id)
    el.set("source-class", prov.source_class)
    el.set("interface", prov.interface)
    if prov.asserted_identity is not None:
        el.set("asserted-identity", prov.asserted_identity)
    el.set("received-at", repr(float(prov.received_at)))
    return canonical(el)


def with_provenance(composed: ComposedPresence) -> PresenceDocument:
    """The composed document with a ``pv:provenance`` element on each tuple, device and
    person attribute (used when a rule grants provide-provenance)."""
    doc = composed.document
    prov = composed.provenance
    tuples = tuple(
        replace(t, extensions=(*t.extensions, _provenance_element(prov[f"tuple/{t.id}"], None)))
        if f"tuple/{t.id}" in prov
        else t
        for t in doc.tuples
    )
    devices = tuple(
        replace(d, extensions=(*d.extensions, _provenance_element(prov[f"device/{d.id}"], None)))
        if f"device/{d.id}" in prov
        else d
        for d in doc.devices
    )
    person_marks = tuple(
        _provenance_element(value, key.removeprefix("person/"))
        for key, value in sorted(prov.items())
        if key.startswith("person/")
    )
    persons = tuple(replace(p, extensions=(*p.extensions, *person_marks)) for p in doc.persons)
    return replace(doc, tuples=tuples, devices=devices, persons=persons)


def read_provenance(extensions: tuple[bytes, ...]) -> list[tuple[str | None, Provenance]]:
    """The (element, provenance) pairs of the provenance elements among ``extensions``."""
    found: list[tuple[str | None, Provenance]] = []
    for data in extensions:
        if extension_name(data) != (PROVENANCE_NS, "provenance"):
            continue
        el = parse_xml(data)
        source_class = el.get("source-class")
        interface = el.get("interface")
        if source_class not in ("ue", "network", "external") or interface not in (
            "Peu",
            "Pen",
            "Pex",
        ):
            raise DocumentError("bad provenance element")
        try:
            received = float(el.get("received-at") or "")
        except ValueError:
            raise DocumentError("bad provenance received-at") from None
        found.append(
            (
                el.get("element"),
                Provenance(
                    el.get("source-id") or "",
                    source_class,  # type: ignore[arg-type]
                    interface,  # type: ignore[arg-type]
                    el.get("asserted-identity"),
                    received,
                ),
            )
        )
    return found
