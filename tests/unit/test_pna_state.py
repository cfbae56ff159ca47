"""The PNA core: facts from each interface, staleness, and the PIDF mapping (sans-IO)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from presence_ims.diameter.sh import LocationInformation, ShData
from presence_ims.documents import pidf, validate
from presence_ims.documents.reginfo import Contact, RegInfo, Registration
from presence_ims.elements.feed import FeedEvent
from presence_ims.elements.mlp import Position
from presence_ims.elements.radius import AccountingRecord
from presence_ims.nodes.hss.model import SubscriberConfig
from presence_ims.nodes.pna.errors import PnaError
from presence_ims.nodes.pna.mapping import PNA_NS, build_document, is_positive
from presence_ims.nodes.pna.state import PnaCore, UserDirectory

ALICE = "sip:alice@home1.net"
T0 = 1_700_000_000.0


def directory() -> UserDirectory:
    subs = [
        SubscriberConfig(
            impi="alice@home1.net",
            impus=(("sip:alice@home1.net", "tel:+15550001"),),
            anonymous_impu="sip:anon-a1@home1.net",
            digest_password="x",
            auth_schemes=("digest",),
        ),
        SubscriberConfig(
            impi="bob@home1.net",
            impus=(("sip:bob@home1.net",),),
            msisdn="15550002",
            digest_password="y",
            auth_schemes=("digest",),
        ),
    ]
    return UserDirectory.from_subscribers(subs)


def core(**kwargs: object) -> PnaCore:
    return PnaCore(directory(), **kwargs)  # type: ignore[arg-type]


def doc_of(c: PnaCore, presentity: str = ALICE) -> pidf.PresenceDocument | None:
    entry = c.directory.entry(presentity)
    return build_document(presentity, c.facts(presentity), tel=entry.tel if entry else None)


def tuple_of(doc: pidf.PresenceDocument | None, ident: str) -> pidf.PresenceTuple | None:
    assert doc is not None
    return next((t for t in doc.tuples if t.id == ident), None)


def feed(event: str, user: str = ALICE, kind: str = "sgsn", **kw: str) -> FeedEvent:
    return FeedEvent("e1", kind, 1, 0, user, event, kw.get("area"), kw.get("cell"))  # type: ignore[arg-type]


def test_directory_resolves_every_identity_of_a_user() -> None:
    d = directory()
    assert d.presentities == (ALICE, "sip:bob@home1.net")
    for ident in ("sip:alice@home1.net", "sips:alice@HOME1.net;transport=tls", "tel:+15550001",
                  "tel:+1-555-0001", "15550001", "+15550001"):  # fmt: skip
        assert d.resolve(ident) == ALICE, ident
    assert d.resolve("15550002") == "sip:bob@home1.net"
    assert d.resolve("sip:anon-a1@home1.net") is None  # the anonymous IMPU is never linked
    assert d.resolve("sip:carol@home2.net") is None
    assert d.entry(ALICE).tel == "tel:+15550001"  # type: ignore[union-attr]
    only_bob = UserDirectory.from_subscribers([], users=None)
    assert only_bob.presentities == ()


def reg(state: str, *contacts: tuple[str, str], version: int = 0, doc: str = "full") -> RegInfo:
    cs = tuple(Contact(f"c{i}", s, "registered", uri) for i, (uri, s) in enumerate(contacts))  # type: ignore[arg-type]
    return RegInfo(version, doc, (Registration(ALICE, "r1", state, cs),  # type: ignore[arg-type]
                                  Registration("tel:+15550001", "r2", state, cs)))  # type: ignore[arg-type]


def test_pi_registration_maps_to_the_ims_tuple() -> None:
    c = core()
    c.on_reginfo(ALICE, reg("terminated"), T0)
    t = tuple_of(doc_of(c), "pna-ims")
    assert t is not None and t.basic == "closed" and t.contact is None
    assert not is_positive(doc_of(c))  # "not registered" alone creates no publication
    c.on_reginfo(ALICE, reg("active", ("sip:alice@192.0.2.1:5060", "active")), T0 + 10)
    t = tuple_of(doc_of(c), "pna-ims")
    assert t is not None and t.basic == "open" and t.contact == pidf.Contact("sip:alice@192.0.2.1:5060")
    assert t.timestamp == datetime.fromtimestamp(T0 + 10, UTC)
    assert is_positive(doc_of(c))
    # a refresh that changes nothing keeps the timestamp: the body is byte-identical
    body = pidf.build(doc_of(c))  # type: ignore[arg-type]
    c.on_reginfo(ALICE, reg("active", ("sip:alice@192.0.2.1:5060", "active"), version=1), T0 + 99)
    assert pidf.build(doc_of(c)) == body  # type: ignore[arg-type]
    # partial state: the contact goes
    c.on_reginfo(ALICE, reg("active", ("sip:alice@192.0.2.1:5060", "terminated"), doc="partial"), T0 + 120)
    assert tuple_of(doc_of(c), "pna-ims").basic == "closed"  # type: ignore[union-attr]
    with pytest.raises(PnaError) as info:
        c.on_reginfo(ALICE, RegInfo(0, "full", (Registration("sip:eve@home1.net", "x", "active"),)), T0)
    assert info.value.kind == "foreign_aor"


def test_ph_states_and_locations() -> None:
    c = core()
    c.on_sh(ALICE, ShData(ims_user_state=1), T0)
    assert tuple_of(doc_of(c), "pna-ims").basic == "open"  # type: ignore[union-attr]
    c.on_reginfo(ALICE, reg("terminated"), T0 + 1)  # Pi knows better (it has contacts)
    assert tuple_of(doc_of(c), "pna-ims").basic == "closed"  # type: ignore[union-attr]
    c.on_sh(ALICE, ShData(cs_user_state=0, cs_location=LocationInformation(location_area_id="262-01-7", cell_global_id="ab12")), T0 + 2)
    d = doc_of(c)
    cs = tuple_of(d, "pna-cs")
    assert cs is not None and cs.basic == "open" and cs.contact == pidf.Contact("tel:+15550001")
    assert cs.location is not None and cs.location.method == "Cell"
    assert b'lai="262-01-7"' in cs.location.location_extensions[0]
    assert d is not None and d.persons[0].activities.values == ("on-the-phone",)  # type: ignore[union-attr]
    c.on_sh(ALICE, ShData(ps_user_state=1), T0 + 3)  # attached, not reachable for paging
    assert tuple_of(doc_of(c), "pna-ps").basic == "closed"  # type: ignore[union-attr]
    c.on_sh(ALICE, ShData(ps_user_state=5, cs_user_state=3), T0 + 4)  # "not provided": no change
    assert tuple_of(doc_of(c), "pna-ps").basic == "closed"  # type: ignore[union-attr]
    assert tuple_of(doc_of(c), "pna-cs").basic == "open"  # type: ignore[union-attr]


def test_feed_events() -> None:
    c = core()
    assert c.on_feed(feed("attach", area="26201-1", cell="10"), T0) == ALICE
    ps = c.facts(ALICE).ps
    assert ps is not None and (ps.attached, ps.busy, ps.area, ps.cell) == (True, False, "26201-1", "10")
    c.on_feed(feed("location", cell="11"), T0 + 1)
    assert c.facts(ALICE).ps.cell == "11" and c.facts(ALICE).ps.area == "26201-1"  # type: ignore[union-attr]
    c.on_feed(feed("busy"), T0 + 2)
    assert "ready" in tuple_of(doc_of(c), "pna-ps").notes[0].text  # type: ignore[union-attr]
    c.on_feed(feed("detach"), T0 + 3)
    ps = c.facts(ALICE).ps
    assert ps is not None and not ps.attached and ps.area is None and ps.cell is None
    t = tuple_of(doc_of(c), "pna-ps")
    assert t is not None and t.basic == "closed" and t.location is None
    c.on_feed(feed("attach", user="15550001", kind="msc"), T0 + 4)
    assert c.facts(ALICE).cs is not None
    with pytest.raises(PnaError) as info:
        c.on_feed(feed("attach", user="sip:mallory@home1.net"), T0)
    assert info.value.kind == "unknown_user"


def test_accounting_sessions() -> None:
    c = core()
    start = AccountingRecord("start", "s1", "15550001", framed_ip="10.0.0.7", nas_identifier="ggsn1")
    assert c.on_accounting(start, T0) == [ALICE]
    c.on_accounting(AccountingRecord("start", "s2", None, user_name=ALICE, framed_ip="10.0.0.8", nas_identifier="ggsn2"), T0 + 1)
    pdp = tuple_of(doc_of(c), "pna-pdp")
    assert pdp is not None and pdp.basic == "open" and len(pdp.extensions) == 2
    assert all(PNA_NS.encode() in x for x in pdp.extensions)
    c.on_accounting(AccountingRecord("interim", "s1", "15550001", nas_identifier="ggsn1"), T0 + 2)
    assert c.facts(ALICE).pdp.since == T0 + 1  # type: ignore[union-attr]  # nothing changed
    assert c.on_accounting(AccountingRecord("off", nas_identifier="ggsn2"), T0 + 3) == [ALICE]
    assert [s.session_id for s in c.facts(ALICE).pdp.sessions] == ["s1"]  # type: ignore[union-attr]
    c.on_accounting(AccountingRecord("stop", "s1", "15550001", nas_identifier="ggsn1"), T0 + 4)
    assert tuple_of(doc_of(c), "pna-pdp").basic == "closed"  # type: ignore[union-attr]
    with pytest.raises(PnaError):
        c.on_accounting(AccountingRecord("start", "s9", "19999999"), T0)


def test_positions() -> None:
    c = core(stale_after={"Pl": 600.0})
    with pytest.raises(PnaError) as info:
        c.on_position(Position("15550001", error="5 ABSENT SUBSCRIBER"), T0)
    assert info.value.kind == "position_error"
    old = datetime.fromtimestamp(T0 - 601, UTC)
    with pytest.raises(PnaError) as info:
        c.on_position(Position("15550001", latitude=1.0, longitude=2.0, time=old), T0)
    assert info.value.kind == "stale"
    c.on_position(Position("15550001", latitude=52.52, longitude=13.405, method="GPS"), T0)
    person = doc_of(c).persons[0]  # type: ignore[union-attr]
    assert person.id == "pna" and person.location is not None
    assert person.location.point is not None and person.location.point.latitude == 52.52
    assert person.location.usage_rules.retransmission_allowed is False
    assert person.location.usage_rules.retention_expiry == datetime.fromtimestamp(T0 + 900, UTC)
    c.on_position(Position("15550001", latitude=52.52, longitude=13.405, radius=40.0), T0 + 1)
    geo = doc_of(c).persons[0].location  # type: ignore[union-attr]
    assert geo is not None and geo.point is None and b"gs:Circle" in geo.location_extensions[0]
    assert b">40<" in geo.location_extensions[0]


def test_stale_facts_expire_per_interface() -> None:
    c = core(stale_after={"Pg": 10.0, "Pk": 100.0})
    assert c.next_expiry() is None
    c.on_feed(feed("attach"), T0)
    c.on_accounting(AccountingRecord("start", "s1", "15550001", framed_ip="10.0.0.7"), T0)
    assert c.next_expiry() == T0 + 10
    assert c.expire(T0 + 9.9) == []
    assert c.expire(T0 + 10) == [ALICE]
    assert c.facts(ALICE).ps is None and c.facts(ALICE).pdp is not None
    assert tuple_of(doc_of(c), "pna-ps") is None
    assert c.expire(T0 + 100) == [ALICE]
    assert doc_of(c) is None  # nothing known any more: the publication is removed
    assert c.next_expiry() is None


def test_documents_are_valid_pidf_and_stable() -> None:
    c = core()
    c.on_reginfo(ALICE, reg("active", ("sip:alice@192.0.2.1", "active")), T0)
    c.on_feed(feed("attach", kind="msc", area="1", cell="2"), T0)
    c.on_feed(feed("busy", kind="msc"), T0)
    c.on_feed(feed("attach", area="3", cell="4"), T0)
    c.on_accounting(AccountingRecord("start", "s1", "15550001", framed_ip="10.0.0.7"), T0)
    c.on_position(Position("15550001", latitude=-1.5, longitude=2.25, altitude=30.0), T0)
    doc = doc_of(c)
    assert doc is not None
    assert [t.id for t in doc.tuples] == ["pna-ims", "pna-cs", "pna-ps", "pna-pdp"]
    body = pidf.build(doc)
    assert pidf.parse(body) == doc
    assert pidf.build(doc_of(c)) == body  # type: ignore[arg-type]
    assert validate.errors(body) == []  # PIDF + data model + RPID + GEOPRIV schemas
