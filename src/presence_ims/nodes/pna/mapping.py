"""From network facts to PIDF: the Pen mapping table (docs/interfaces/pen.md).

=================================  ==============================================
fact                               PIDF / RPID / GEOPRIV
=================================  ==============================================
ims registered (Pi, else Ph)       tuple ``pna-ims`` basic open, contact = first
                                   registered contact (Pi), timestamp (no note)
ims not registered                 tuple ``pna-ims`` basic closed
cs attached and reachable (Pc/Ph)  tuple ``pna-cs`` basic open, contact = tel: IMPU
cs detached / not reachable        tuple ``pna-cs`` basic closed
cs busy (in a call)                person ``pna`` activities ``on-the-phone``
LAI / RAI / cell (Pc, Pg, Ph)      ``gp:geopriv`` in the tuple's status, method
                                   ``Cell``, location-info ``pna:cell``
ps attached and reachable (Pg/Ph)  tuple ``pna-ps`` basic open (note: ready/standby)
ps detached / not reachable        tuple ``pna-ps`` basic closed
IP sessions (Pk)                   tuple ``pna-pdp`` open while one is up, one
                                   ``pna:ip-session`` per session, note
no more IP sessions                tuple ``pna-pdp`` closed
position (Pl)                      person ``pna`` ``gp:geopriv`` (gml:Point, or
                                   gs:Circle with a radius), method, usage-rules
                                   retransmission-allowed false, retention-expiry
=================================  ==============================================

Every location-like value (cells as well as positions) travels inside
``gp:geopriv``, so the PS shows it only to watchers whose rules grant
``provide-location``.  Ids start with ``pna-`` (``pna`` for the person) and
never clash with a UE's.  Timestamps are when a fact last changed, so an
unchanged state builds byte-identical bodies (and is not published again).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from lxml import etree

from ...documents import pidf
from ...documents.geopriv import GML_NS, WGS84_3D, Geopriv, Point, UsageRules
from ...documents.rpid import Activities, Note
from ...documents.xml import canonical, clark, format_datetime
from .state import DomainFact, PdpFact, UserFacts

__all__ = ["GS_NS", "PNA_NS", "build_document", "is_positive"]

PNA_NS: Final = "urn:presence-ims:params:xml:ns:pna"
"""Namespace of the PNA's extension elements (``cell``, ``ip-session``)."""
GS_NS: Final = "http://www.opengis.net/pidflo/1.0"
"""RFC 5491 shapes (``gs:Circle``)."""
_UOM_METRE: Final = "urn:ogc:def:uom:EPSG::9001"


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def _note(text: str) -> Note:
    return Note(text, "en")


def _cell_geopriv(domain: str, fact: DomainFact, retention: float) -> Geopriv | None:
    if fact.area is None and fact.cell is None:
        return None
    el = etree.Element(clark(PNA_NS, "cell"), nsmap={"pna": PNA_NS})
    el.set("domain", domain)
    if fact.area is not None:
        el.set("lai" if domain == "cs" else "rai", fact.area)
    if fact.cell is not None:
        el.set("cell", fact.cell)
    rules = UsageRules(retransmission_allowed=False, retention_expiry=_dt(fact.since + retention))
    return Geopriv(usage_rules=rules, method="Cell", location_extensions=(canonical(el),))


def _domain_tuple(
    ident: str, domain: str, fact: DomainFact, contact: str | None, retention: float
) -> pidf.PresenceTuple:
    open_ = fact.attached and fact.reachable
    if not fact.attached:
        text = "detached"
    elif not fact.reachable:
        text = "attached, not reachable"
    elif domain == "cs":
        text = "attached, in a call" if fact.busy else "attached, idle"
    else:
        text = "attached, ready" if fact.busy else "attached, standby"
    label = "circuit-switched" if domain == "cs" else "packet-switched"
    return pidf.PresenceTuple(
        ident,
        "open" if open_ else "closed",
        contact=pidf.Contact(contact) if contact and fact.attached else None,
        notes=(_note(f"{label}: {text}"),),
        timestamp=_dt(fact.since),
        location=_cell_geopriv(domain, fact, retention) if fact.attached else None,
    )


def _pdp_tuple(fact: PdpFact) -> pidf.PresenceTuple:
    extensions = []
    for s in fact.sessions:
        el = etree.Element(clark(PNA_NS, "ip-session"), nsmap={"pna": PNA_NS})
        el.set("session-id", s.session_id)
        if s.address is not None:
            el.set("address", s.address)
        el.set("ggsn", s.nas)
        el.set("since", format_datetime(_dt(s.started_at)))
        extensions.append(canonical(el))
    if fact.sessions:
        addresses = ", ".join(s.address or "?" for s in fact.sessions)
        text = f"IP session (PDP context): {addresses}"
    else:
        text = "no IP session"
    return pidf.PresenceTuple(
        "pna-pdp",
        "open" if fact.sessions else "closed",
        notes=(_note(text),),
        timestamp=_dt(fact.since),
        extensions=tuple(extensions),
    )


def _position(facts: UserFacts, retention: float) -> Geopriv | None:
    loc = facts.location
    if loc is None:
        return None
    lat, lon = round(loc.latitude, 7), round(loc.longitude, 7)
    rules = UsageRules(
        retransmission_allowed=False, retention_expiry=_dt(loc.measured_at + retention)
    )
    if loc.radius is None:
        if loc.altitude is None:
            point = Point(lat, lon)
        else:
            point = Point(lat, lon, loc.altitude, WGS84_3D)
        return Geopriv(point=point, usage_rules=rules, method=loc.method)
    circle = etree.Element(clark(GS_NS, "Circle"), nsmap={"gs": GS_NS, "gml": GML_NS})
    circle.set("srsName", "urn:ogc:def:crs:EPSG::4326")
    etree.SubElement(circle, clark(GML_NS, "pos")).text = f"{lat!r} {lon!r}"
    radius = etree.SubElement(circle, clark(GS_NS, "radius"))
    radius.set("uom", _UOM_METRE)
    radius.text = f"{loc.radius:g}"
    return Geopriv(usage_rules=rules, method=loc.method, location_extensions=(canonical(circle),))


def build_document(
    presentity: str,
    facts: UserFacts,
    *,
    tel: str | None = None,
    retention: float = 900.0,
) -> pidf.PresenceDocument | None:
    """The PIDF the PNA publishes for ``presentity`` (None when it knows nothing)."""
    tuples: list[pidf.PresenceTuple] = []
    ims = facts.ims
    if ims is not None:
        contact = pidf.Contact(ims.contacts[0]) if ims.registered and ims.contacts else None
        tuples.append(
            pidf.PresenceTuple(
                "pna-ims",
                "open" if ims.registered else "closed",
                contact=contact,
                timestamp=_dt(ims.since),
            )
        )
    if facts.cs is not None:
        tuples.append(_domain_tuple("pna-cs", "cs", facts.cs, tel, retention))
    if facts.ps is not None:
        tuples.append(_domain_tuple("pna-ps", "ps", facts.ps, None, retention))
    if facts.pdp is not None:
        tuples.append(_pdp_tuple(facts.pdp))
    persons: tuple[pidf.Person, ...] = ()
    on_phone = facts.cs is not None and facts.cs.attached and bool(facts.cs.busy)
    location = _position(facts, retention)
    if on_phone or location is not None:
        stamps = [facts.cs.since] if on_phone and facts.cs is not None else []
        if facts.location is not None:
            stamps.append(facts.location.measured_at)
        persons = (
            pidf.Person(
                "pna",
                activities=Activities(("on-the-phone",)) if on_phone else None,
                location=location,
                timestamp=_dt(max(stamps)),
            ),
        )
    if not tuples and not persons:
        return None
    return pidf.PresenceDocument(presentity, tuple(tuples), persons)


def is_positive(doc: pidf.PresenceDocument | None) -> bool:
    """Worth a new publication: something is open or a person attribute is known.

    A document with only closed tuples updates an existing publication but
    does not create one (every provisioned user is "not registered" at start).
    """
    if doc is None:
        return False
    return bool(doc.persons) or any(t.basic == "open" for t in doc.tuples)
