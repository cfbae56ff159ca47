"""The Presence Server core, sans-IO: requests in, replies/NOTIFYs/store changes out.

No sockets and no clock: every request is literal SIP text parsed with
:func:`presence_ims.sip.parse_datagram`, every call gets an explicit ``now``.
The tests follow issue 3: RFC 3903 publication, RFC 6665/3856 subscriptions,
watcher information (RFC 3857/3858), pres-rules re-evaluation, RFC 6446 rate
control, timers, restart, shutdown, publisher policy, aliases, anonymity.
"""

from __future__ import annotations

import itertools
import json
import re
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import pytest

from presence_ims.documents import pidf, winfo
from presence_ims.documents.compose import PROVENANCE_NS, read_provenance
from presence_ims.documents.presrules import (
    Actions,
    Conditions,
    Identity,
    PersonSelector,
    Rule,
    Ruleset,
    ServiceSelector,
    Transformations,
)
from presence_ims.documents.rpid import Activities, Note, Sphere
from presence_ims.nodes.ps.core import (
    ANONYMOUS_URI,
    CoreConfig,
    Origin,
    Outcome,
    OutgoingNotify,
    PresenceCore,
    aor_key,
)
from presence_ims.nodes.ps.model import PublicationRecord, SubscriptionRecord
from presence_ims.sip import Request, parse_datagram

ALICE = "sip:alice@home1.net"
ALICE_TEL = "tel:+15550001"
BOB = "sip:bob@home1.net"
CAROL = "sip:carol@home2.net"
DAVE = "sip:dave@home1.net"
T0 = 1_800_000_000.0
"""A wall-clock instant (2027) used as the start of every scenario."""

OPEN = Origin("Pw", "ue", "open", trusted=False, destination={"transport": "udp"})
"""The lab's open trust mode: From is the identity."""
SCSCF = Origin("Peu", "ue", "scscf", trusted=True)
"""The S-CSCF over ISC: P-Asserted-Identity is believed."""
PNA = Origin(
    "Pen", "network", "pna", trusted=True,
    may_publish=lambda presentity: presentity.endswith("@home1.net"),
)  # fmt: skip
PEA = Origin("Pex", "external", "pea", trusted=True, allowed_elements=frozenset({"person"}))

_counter = itertools.count(1)
BURST: tuple[Literal["open", "closed"], ...] = ("closed", "open", "closed")


# -- building requests ---------------------------------------------------------------------


def sip_request(method: str, uri: str, headers: Iterable[str], body: bytes = b"") -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{next(_counter)}",
        "Max-Forwards: 70",
        *headers,
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    message = parse_datagram("\r\n".join(lines).encode() + body)
    assert isinstance(message, Request)
    return message


def presence(
    entity: str = ALICE,
    basic: Literal["open", "closed"] = "open",
    *,
    tuple_id: str = "t1",
    note: str | None = None,
    activity: str | None = None,
    sphere: str | None = None,
    tuples: bool = True,
) -> bytes:
    notes = (Note(note),) if note else ()
    persons: tuple[pidf.Person, ...] = ()
    if activity or sphere:
        persons = (
            pidf.Person(
                "p1",
                activities=Activities((activity,)) if activity else None,
                sphere=Sphere(sphere) if sphere else None,
            ),
        )
    services = (pidf.PresenceTuple(tuple_id, basic, notes=notes),) if tuples else ()
    return pidf.build(pidf.PresenceDocument(entity, services, persons))


def publish_request(
    body: bytes | None = None,
    *,
    uri: str = ALICE,
    sender: str = ALICE,
    etag: str | None = None,
    expires: int | None = None,
    event: str | None = "presence",
    content_type: str | None = "application/pidf+xml",
    pai: str | None = None,
    extra: Iterable[str] = (),
) -> Request:
    headers = [
        f"From: <{sender}>;tag=pub{next(_counter)}",
        f"To: <{uri}>",
        f"Call-ID: pub-{next(_counter)}@192.0.2.10",
        "CSeq: 1 PUBLISH",
    ]
    if event is not None:
        headers.append(f"Event: {event}")
    if etag is not None:
        headers.append(f"SIP-If-Match: {etag}")
    if expires is not None:
        headers.append(f"Expires: {expires}")
    if pai is not None:
        headers.append(f"P-Asserted-Identity: <{pai}>")
    if body and content_type is not None:
        headers.append(f"Content-Type: {content_type}")
    headers.extend(extra)
    return sip_request("PUBLISH", uri, headers, body or b"")


class Watcher:
    """The subscriber's side of one subscription, as text requests."""

    def __init__(
        self,
        aor: str,
        resource: str = ALICE,
        *,
        event: str = "presence",
        contact: str | None = None,
        display: str | None = None,
    ) -> None:
        self.aor = aor
        self.resource = resource
        self.event = event
        self.contact = contact or f"sip:{aor.split(':', 1)[1].split('@')[0]}@192.0.2.20:5070"
        self.display = display
        self.call_id = f"sub-{next(_counter)}@192.0.2.20"
        self.from_tag = f"w{next(_counter)}"
        self.cseq = 0
        self.to_tag: str | None = None

    def request(
        self,
        expires: int | None = 3600,
        *,
        headers: Iterable[str] = (),
        contact: str | None = None,
        contacts: Iterable[str] | None = None,
        cseq: int | None = None,
        to_tag: str | None = None,
    ) -> Request:
        self.cseq = cseq if cseq is not None else self.cseq + 1
        name = f'"{self.display}" ' if self.display else ""
        tag = to_tag if to_tag is not None else self.to_tag
        lines = [
            f"From: {name}<{self.aor}>;tag={self.from_tag}",
            f"To: <{self.resource}>" + (f";tag={tag}" if tag else ""),
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} SUBSCRIBE",
            f"Event: {self.event}",
        ]
        for c in [contact or self.contact] if contacts is None else contacts:
            lines.append(f"Contact: <{c}>")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        lines.extend(headers)
        return sip_request("SUBSCRIBE", self.resource, lines)

    def subscribe(
        self,
        core: PresenceCore,
        now: float,
        origin: Origin = OPEN,
        expires: int | None = 3600,
        **kwargs: Any,
    ) -> Outcome:
        out = core.subscribe(self.request(expires, **kwargs), origin, now)
        if out.reply is not None and out.reply.to_tag and self.to_tag is None:
            self.to_tag = out.reply.to_tag
        return out


def allow(rid: str, *who: str, **transformations: Any) -> Rule:
    if not transformations:
        transformations = {
            "services": ServiceSelector(all=True),
            "persons": PersonSelector(all=True),
            "all_attributes": True,
        }
    return Rule(
        rid,
        Conditions(identity=Identity(ones=who)),
        Actions("allow"),
        Transformations(**transformations),
    )


def handling(rid: str, value: Any, *who: str) -> Rule:
    return Rule(rid, Conditions(identity=Identity(ones=who)), Actions(value))


def make_core(**config: Any) -> PresenceCore:
    aliases = config.pop("aliases", {ALICE_TEL: ALICE})
    known: Callable[[str], bool] | None = config.pop("known_user", None)
    return PresenceCore(
        CoreConfig(**config),
        contact="<sip:ps.home1.net:5065;transport=udp>",
        aliases=aliases,
        known_user=known,
        secret=b"k" * 32,
    )


def header(out: Outcome, name: str) -> str | None:
    assert out.reply is not None
    for key, value in out.reply.headers:
        if key.lower() == name.lower():
            return value
    return None


def status(out: Outcome) -> int:
    assert out.reply is not None
    return out.reply.status


def state_of(notify: OutgoingNotify) -> str | None:
    return notify.request.headers.get("subscription-state")


def doc_of(notify: OutgoingNotify) -> pidf.PresenceDocument:
    assert notify.request.headers.get("content-type") == "application/pidf+xml"
    return pidf.parse(notify.request.body)


def basics(notify: OutgoingNotify) -> dict[str, str | None]:
    return {t.id: t.basic for t in doc_of(notify).tuples}


def winfo_of(notify: OutgoingNotify) -> winfo.WatcherInfo:
    assert notify.request.headers.get("content-type") == "application/watcherinfo+xml"
    return winfo.parse(notify.request.body)


def only(notifies: list[OutgoingNotify], sub_id: str | None = None) -> OutgoingNotify:
    chosen = [n for n in notifies if sub_id is None or n.subscription_id == sub_id]
    assert len(chosen) == 1, chosen
    return chosen[0]


def sub_id_of(out: Outcome) -> str:
    assert out.save_subscriptions, "nothing saved"
    return out.save_subscriptions[0].id


def published(core: PresenceCore, now: float = T0, **kwargs: Any) -> str:
    body = kwargs.pop("body", None) or presence()
    out = core.publish(publish_request(body, **kwargs), OPEN, now)
    assert status(out) == 200, out.reply
    etag = header(out, "SIP-ETag")
    assert etag
    return etag


# -- RFC 3903: PUBLISH -------------------------------------------------------------------------


def test_initial_publish_creates_event_state() -> None:
    core = make_core()
    out = core.publish(publish_request(presence(note="at my desk")), OPEN, T0)
    assert status(out) == 200
    etag = header(out, "SIP-ETag")
    assert etag is not None and len(etag) == 16
    assert header(out, "Expires") == "3600"
    [record] = out.save_publications
    assert record.etag == etag
    assert record.presentity == ALICE
    assert record.event == "presence"
    assert (record.source_id, record.source_class, record.interface) == (ALICE, "ue", "Peu")
    assert record.asserted_identity == ALICE
    assert (record.received_at, record.expires_at) == (T0, T0 + 3600)
    assert record.content_type == "application/pidf+xml"
    assert pidf.parse(record.body).tuples[0].notes == (Note("at my desk"),)
    assert core.pubs_of == {ALICE: {etag}}
    assert core.composed(ALICE).document.tuples[0].basic == "open"
    assert core.next_deadline() == T0 + 3600


def test_publish_expires_is_clamped_to_the_maximum() -> None:
    core = make_core(max_expires=7200)
    out = core.publish(publish_request(presence(), expires=100000), OPEN, T0)
    assert header(out, "Expires") == "7200"
    assert out.save_publications[0].expires_at == T0 + 7200


def test_refresh_makes_a_new_etag_keeps_the_state_and_notifies_nobody() -> None:
    core = make_core(default_sub_handling="allow")
    etag1 = published(core, body=presence(note="first"))
    bob = Watcher(BOB)
    bob.subscribe(core, T0 + 1)
    out = core.publish(publish_request(None, etag=etag1, expires=120), OPEN, T0 + 10)
    assert status(out) == 200
    etag2 = header(out, "SIP-ETag")
    assert etag2 and etag2 != etag1
    assert header(out, "Expires") == "120"
    assert out.delete_publications == [etag1]
    [record] = out.save_publications
    assert record.expires_at == T0 + 130
    assert record.received_at == T0  # the state did not change
    assert pidf.parse(record.body).tuples[0].notes == (Note("first"),)
    assert out.notifies == []
    assert core.pubs_of[ALICE] == {etag2}
    # the old tag is gone
    stale = core.publish(publish_request(None, etag=etag1), OPEN, T0 + 11)
    assert (status(stale), stale.reply and stale.reply.reason) == (412, "Unknown entity tag")


def test_modify_replaces_the_state_and_notifies_the_watchers() -> None:
    core = make_core(default_sub_handling="allow")
    etag1 = published(core)
    bob = Watcher(BOB)
    first = bob.subscribe(core, T0 + 1)
    sub = sub_id_of(first)
    assert basics(only(first.notifies, sub)) == {"t1": "open"}
    out = core.publish(publish_request(presence(basic="closed"), etag=etag1), OPEN, T0 + 20)
    assert status(out) == 200
    etag2 = header(out, "SIP-ETag")
    assert etag2 not in (None, etag1)
    assert out.save_publications[0].received_at == T0 + 20
    notify = only(out.notifies, sub)
    assert basics(notify) == {"t1": "closed"}
    assert state_of(notify) == "active;expires=3581"


def test_remove_deletes_the_state_and_watchers_see_the_neutral_document() -> None:
    core = make_core(default_sub_handling="allow")
    etag = published(core)
    bob = Watcher(BOB)
    sub = sub_id_of(bob.subscribe(core, T0 + 1))
    out = core.publish(publish_request(None, etag=etag, expires=0), OPEN, T0 + 5)
    assert status(out) == 200
    assert header(out, "Expires") == "0"
    assert header(out, "SIP-ETag") is None
    assert out.delete_publications == [etag]
    assert out.save_publications == []
    assert ALICE not in core.pubs_of and etag not in core.publications
    notify = only(out.notifies, sub)
    document = doc_of(notify)
    assert document.entity == ALICE
    assert [(t.id, t.basic) for t in document.tuples] == [(pidf.NEUTRAL_TUPLE_ID, "closed")]
    assert document.persons == ()


@pytest.mark.parametrize("refresh", [False, True])
def test_publish_below_min_expires_is_423_with_min_expires(refresh: bool) -> None:
    core = make_core(min_expires=60)
    etag = published(core) if refresh else None
    body = None if refresh else presence()
    out = core.publish(publish_request(body, etag=etag, expires=59), OPEN, T0 + 1)
    assert status(out) == 423
    assert header(out, "Min-Expires") == "60"
    assert out.save_publications == [] and out.delete_publications == []
    assert core.pubs_of == ({ALICE: {etag}} if etag else {})


def test_publish_at_min_expires_is_accepted() -> None:
    core = make_core(min_expires=60)
    out = core.publish(publish_request(presence(), expires=60), OPEN, T0)
    assert (status(out), header(out, "Expires")) == (200, "60")


@pytest.mark.parametrize(
    ("event", "reason", "allow_events"),
    [
        ("dialog", "Bad Event", "presence, presence.winfo"),
        (None, "Event header missing", "presence, presence.winfo"),
        ("presence.winfo", "PUBLISH is only taken for presence", "presence"),
    ],
)
def test_publish_unknown_event_is_489_with_allow_events(
    event: str | None, reason: str, allow_events: str
) -> None:
    core = make_core()
    out = core.publish(publish_request(presence(), event=event), OPEN, T0)
    assert out.reply is not None
    assert (out.reply.status, out.reply.reason) == (489, reason)
    assert header(out, "Allow-Events") == allow_events
    assert core.publications == {}


@pytest.mark.parametrize("content_type", ["text/plain", "application/xpidf+xml", None])
def test_publish_unsupported_body_type_is_415_with_accept(content_type: str | None) -> None:
    core = make_core()
    out = core.publish(publish_request(presence(), content_type=content_type), OPEN, T0)
    assert status(out) == 415
    assert header(out, "Accept") == "application/pidf+xml"
    assert core.publications == {}


def test_publish_content_type_parameters_are_accepted() -> None:
    core = make_core()
    request = publish_request(presence(), content_type="application/pidf+xml;charset=UTF-8")
    assert status(core.publish(request, OPEN, T0)) == 200


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({}, "Initial PUBLISH without a body"),
        ({"body": presence(), "expires": 0}, "Removal without SIP-If-Match"),
        ({"body": presence(entity=BOB)}, "PIDF entity does not match presentity"),
    ],
)
def test_publish_bad_requests_are_400(kwargs: dict[str, Any], reason: str) -> None:
    core = make_core()
    body = kwargs.pop("body", None)
    out = core.publish(publish_request(body, **kwargs), OPEN, T0)
    assert out.reply is not None
    assert (out.reply.status, out.reply.reason) == (400, reason)
    assert core.publications == {}


@pytest.mark.parametrize(
    ("body", "defect"),
    [
        (b"<presence", "XML"),
        (b'<presence xmlns="urn:example:not-pidf" entity="sip:alice@home1.net"/>', "presence"),
        (
            b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@home1.net">'
            b'<tuple id="t1"><status><basic>maybe</basic></status></tuple></presence>',
            "basic",
        ),
    ],
)
def test_publish_invalid_pidf_is_400_naming_the_defect(body: bytes, defect: str) -> None:
    core = make_core()
    out = core.publish(publish_request(body), OPEN, T0)
    assert out.reply is not None
    assert out.reply.status == 400
    assert out.reply.reason and defect.lower() in out.reply.reason.lower()
    assert core.stats["publish_bad_body"] == 1
    assert core.publications == {}


_EXTENDED = (
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:x="urn:example:caps" '
    b'entity="sip:alice@home1.net"><tuple id="t1"><status><basic>open</basic></status>'
    b"<x:caps><x:audio/></x:caps></tuple></presence>"
)
"""A body outside the shapes ``pidf.validate`` checks in its own walk (an extension)."""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (  # refused by parse's own checks behind validate's walk
            _EXTENDED.replace(b"<x:caps>", b'<x:caps mustUnderstand="true">'),
            "unsupported mustUnderstand extension: {urn:example:caps}caps",
        ),
        (presence().replace(b'id="t1"', b'id="1"'), "tuple id is not an XML ID: '1'"),
        (presence(entity=BOB), "PIDF entity does not match presentity"),
    ],
)
def test_unwatched_publish_refuses_what_parse_refuses(body: bytes, reason: str) -> None:
    core = make_core()
    out = core.publish(publish_request(body), OPEN, T0)
    assert out.reply is not None
    assert (out.reply.status, out.reply.reason) == (400, reason)
    with pytest.raises(pidf.DocumentError):
        pidf.parse(body, ALICE)
    assert core.publications == {}


@pytest.mark.parametrize("body", [presence(activity="busy", note="n"), _EXTENDED])
def test_unwatched_publish_keeps_no_model_and_composes_it_when_watched(body: bytes) -> None:
    core = make_core(default_sub_handling="allow")
    etag = published(core, body=body)
    assert core._docs == {}  # checked, not built: nobody watches alice
    out = Watcher(BOB).subscribe(core, T0 + 1)
    assert doc_of(only(out.notifies)).tuples == pidf.parse(body).tuples
    assert etag in core._docs  # built once composed, kept while watched
    modified = published(core, T0 + 2, etag=etag, body=presence("sip:alice@home1.net", "closed"))
    assert core._docs.keys() == {modified}  # watched: the model is built at once


def test_entity_tags_are_fresh_random_hex() -> None:
    core = make_core()
    etags = [core._new_etag() for _ in range(200)]  # more than one batch
    assert len(set(etags)) == 200
    assert all(len(e) == 16 and int(e, 16) >= 0 for e in etags)
    assert len({e[:4] for e in etags}) > 100  # not a counter


def test_412_cases() -> None:
    core = make_core()
    etag = published(core, expires=100)
    bob_etag = published(core, uri=BOB, sender=BOB, body=presence(entity=BOB))
    unknown = core.publish(publish_request(None, etag="0123456789abcdef"), OPEN, T0)
    assert status(unknown) == 412
    # a tag of another presentity
    other = core.publish(publish_request(None, etag=bob_etag), OPEN, T0)
    assert status(other) == 412
    # a tag that expired, even before the timer ran
    late = core.publish(publish_request(None, etag=etag), OPEN, T0 + 100)
    assert status(late) == 412
    # RFC 3903 order: the entity tag is checked before Expires
    both = core.publish(publish_request(None, etag="feedfeedfeedfeed", expires=1), OPEN, T0)
    assert status(both) == 412


def test_publication_expiry_removes_it_and_notifies() -> None:
    core = make_core(default_sub_handling="allow")
    etag = published(core, expires=300)
    bob = Watcher(BOB)
    sub = sub_id_of(bob.subscribe(core, T0 + 1))
    assert core.on_timer(T0 + 299).notifies == []
    assert etag in core.publications
    out = core.on_timer(T0 + 300)
    assert out.delete_publications == [etag]
    assert etag not in core.publications
    assert basics(only(out.notifies, sub)) == {pidf.NEUTRAL_TUPLE_ID: "closed"}
    assert core.stats["publication_expired"] == 1
    # the timer of a refreshed publication does not remove the new one
    etag2 = published(core, T0 + 400, expires=300)
    refreshed = core.publish(publish_request(None, etag=etag2, expires=600), OPEN, T0 + 500)
    etag3 = header(refreshed, "SIP-ETag")
    assert core.on_timer(T0 + 700).delete_publications == []
    assert etag3 in core.publications


def test_several_publications_are_composed_into_one_document() -> None:
    core = make_core(default_sub_handling="allow")
    published(core, body=presence(tuple_id="phone"))
    published(core, T0 + 1, body=presence(tuple_id="laptop", basic="closed"))
    pna = core.publish(
        publish_request(presence(tuple_id="net", activity="meeting"), sender="sip:pna.home1.net"),
        PNA,
        T0 + 2,
    )
    assert status(pna) == 200
    out = Watcher(BOB).subscribe(core, T0 + 3)
    document = doc_of(only(out.notifies))
    assert {t.id: t.basic for t in document.tuples} == {
        "phone": "open", "laptop": "closed", "net": "open",
    }  # fmt: skip
    assert document.persons[0].activities == Activities(("meeting",))
    assert len(core.pubs_of[ALICE]) == 3


# -- publisher policy (Origin) ---------------------------------------------------------------


def test_trusted_publisher_identity_is_the_asserted_identity_not_from() -> None:
    core = make_core()
    request = publish_request(presence(), sender="sip:forged@evil.example", pai=ALICE)
    out = core.publish(request, SCSCF, T0)
    assert status(out) == 200
    [record] = out.save_publications
    assert record.asserted_identity == ALICE
    assert record.source_id == ALICE
    assert record.interface == "Peu"


def test_trusted_ue_publisher_without_pai_is_403() -> None:
    core = make_core()
    out = core.publish(publish_request(presence()), SCSCF, T0)
    assert out.reply is not None
    assert (out.reply.status, out.reply.reason) == (403, "No asserted identity")


def test_ue_may_only_publish_its_own_presence() -> None:
    core = make_core()
    through_core = core.publish(publish_request(presence(), pai=BOB), SCSCF, T0)
    assert through_core.reply is not None
    assert (through_core.reply.status, through_core.reply.reason) == (
        403, "Asserted identity is not the presentity",
    )  # fmt: skip
    open_mode = core.publish(publish_request(presence(), sender=BOB), OPEN, T0)
    assert status(open_mode) == 403
    assert core.stats["publish_forbidden"] == 2
    assert core.publications == {}


def test_malformed_pai_is_400() -> None:
    core = make_core()
    request = publish_request(presence(), extra=["P-Asserted-Identity: <sip:alice@home1.net"])
    out = core.publish(request, SCSCF, T0)
    assert out.reply is not None
    assert (out.reply.status, out.reply.reason) == (400, "malformed P-Asserted-Identity header")


def test_network_publisher_policy() -> None:
    core = make_core()
    out = core.publish(publish_request(presence(), sender="sip:pna.home1.net"), PNA, T0)
    assert status(out) == 200
    [record] = out.save_publications
    assert (record.source_id, record.source_class, record.interface) == ("pna", "network", "Pen")
    assert record.asserted_identity == "sip:pna.home1.net"
    foreign = core.publish(
        publish_request(presence(entity=CAROL), uri=CAROL, sender="sip:pna.home1.net"), PNA, T0
    )
    assert foreign.reply is not None
    assert (foreign.reply.status, foreign.reply.reason) == (
        403, "Publisher may not publish for this presentity",
    )  # fmt: skip


def test_network_publisher_asserted_identity_comes_from_pai() -> None:
    core = make_core()
    request = publish_request(presence(), sender=ALICE, pai="sip:pna.home1.net")
    out = core.publish(request, PNA, T0)
    assert out.save_publications[0].asserted_identity == "sip:pna.home1.net"


def test_external_publisher_may_only_publish_allowed_elements() -> None:
    core = make_core()
    with_tuple = publish_request(presence(activity="busy"), sender="sip:pea.home1.net")
    out = core.publish(with_tuple, PEA, T0)
    assert out.reply is not None
    assert (out.reply.status, out.reply.reason) == (403, "Publisher may not publish tuple")
    person_only = publish_request(presence(activity="busy", tuples=False), sender="sip:pea.x")
    ok = core.publish(person_only, PEA, T0)
    assert status(ok) == 200
    assert ok.save_publications[0].interface == "Pex"
    assert ok.save_publications[0].source_class == "external"


def test_entity_tag_of_another_publisher_is_412() -> None:
    core = make_core()
    out = core.publish(publish_request(presence(), sender="sip:pna.home1.net"), PNA, T0)
    pna_etag = header(out, "SIP-ETag")
    mine = core.publish(publish_request(None, etag=pna_etag, pai=ALICE), SCSCF, T0 + 1)
    assert mine.reply is not None
    assert (mine.reply.status, mine.reply.reason) == (412, "Entity tag of another publisher")
    again = core.publish(publish_request(None, etag=pna_etag, sender="x:pna"), PNA, T0 + 1)
    assert status(again) == 200


# -- aliases and known users ---------------------------------------------------------------------


def test_tel_alias_publishes_and_watches_the_sip_presentity() -> None:
    core = make_core(default_sub_handling="allow")
    out = core.publish(
        publish_request(presence(entity=ALICE_TEL), uri="tel:+1-555-0001", pai=ALICE_TEL),
        SCSCF,
        T0,
    )
    assert status(out) == 200
    assert out.save_publications[0].presentity == ALICE
    bob = Watcher(BOB, resource=ALICE_TEL)
    sub = bob.subscribe(core, T0 + 1)
    assert status(sub) == 200
    assert sub.save_subscriptions[0].presentity == ALICE
    document = doc_of(only(sub.notifies))
    assert document.entity == ALICE_TEL  # as the watcher named it
    assert [t.basic for t in document.tuples] == ["open"]
    assert aor_key("tel:+1-555-0001") == ALICE_TEL


def test_refresh_through_another_impu_of_the_same_user_is_the_same_publisher() -> None:
    core = make_core()
    out = core.publish(publish_request(presence(), pai=ALICE_TEL), SCSCF, T0)
    etag = header(out, "SIP-ETag")
    refresh = core.publish(publish_request(None, etag=etag, pai=ALICE), SCSCF, T0 + 10)
    assert status(refresh) == 200


def test_unknown_presentity_is_404() -> None:
    asked: list[str] = []

    def known(uri: str) -> bool:
        asked.append(uri)
        return uri == ALICE

    core = make_core(known_user=known)
    assert (
        status(core.publish(publish_request(presence(), pai=ALICE_TEL, uri=ALICE_TEL), SCSCF, T0))
        == 200
    )
    out = core.publish(publish_request(presence(entity=DAVE), uri=DAVE, sender=DAVE), OPEN, T0)
    assert out.reply is not None
    assert (out.reply.status, out.reply.reason) == (404, "No such presentity")
    sub = Watcher(BOB, resource=DAVE).subscribe(core, T0)
    assert status(sub) == 404
    assert sub.notifies == [] and core.subscriptions == {}
    assert asked == [ALICE, DAVE, DAVE]  # the alias was resolved first


# -- RFC 6665 / RFC 3856: SUBSCRIBE -----------------------------------------------------------


def test_subscribe_allowed_creates_the_dialog_and_sends_the_current_state() -> None:
    core = make_core()
    published(core, body=presence(note="hello"))
    core.set_rules(ALICE, Ruleset((allow("r1", BOB),)), T0)
    bob = Watcher(BOB, display="Bob")
    out = bob.subscribe(
        core, T0 + 1, headers=["Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>"]
    )
    assert out.reply is not None
    assert out.reply.status == 200
    # 48 random bits, then the presentity's hash: the worker that owns it (D13)
    assert out.reply.to_tag and re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]{8}", out.reply.to_tag)
    assert int(out.reply.to_tag[-8:], 16) == zlib.crc32(ALICE.encode())
    assert header(out, "Expires") == "3600"
    assert header(out, "Contact") == "<sip:ps.home1.net:5065;transport=udp>"
    [sub] = out.save_subscriptions
    assert (sub.state, sub.event, sub.presentity, sub.watcher) == ("active", "presence", ALICE, BOB)
    assert sub.watcher_display == "Bob"
    assert sub.authenticated and not sub.anonymous
    assert sub.expires_at == T0 + 3601
    assert sub.destination == {"transport": "udp"}
    notify = only(out.notifies)
    assert notify.subscription_id == sub.id and not notify.terminal
    request = notify.request
    assert request.method == "NOTIFY"
    assert str(request.uri) == bob.contact
    assert request.headers.get_all("route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert request.call_id == bob.call_id
    assert request.from_.tag == out.reply.to_tag
    assert str(request.from_.uri) == ALICE
    assert request.to.tag == bob.from_tag
    assert str(request.to.uri) == BOB
    assert str(request.cseq) == "1 NOTIFY"
    assert request.headers.get("event") == "presence"
    assert state_of(notify) == "active;expires=3600"
    assert request.headers.get("contact") == "<sip:ps.home1.net:5065;transport=udp>"
    document = doc_of(notify)
    assert document.tuples[0].notes == (Note("hello"),)


def test_subscribe_without_rule_is_pending_and_appears_in_winfo() -> None:
    core = make_core()  # default confirm
    published(core)
    owner = Watcher(ALICE, event="presence.winfo")
    winfo_sub = sub_id_of(owner.subscribe(core, T0))
    carol = Watcher(CAROL)
    out = carol.subscribe(core, T0 + 5)
    assert status(out) == 202
    watcher_sub = out.save_subscriptions[0]
    assert watcher_sub.state == "pending"
    notify = only(out.notifies, watcher_sub.id)
    assert state_of(notify) == "pending;expires=3600"
    assert notify.request.body == b""
    assert notify.request.headers.get("content-type") is None
    info = winfo_of(only(out.notifies, winfo_sub))
    assert (info.version, info.state) == (1, "partial")
    [wl] = info.lists
    assert (wl.resource, wl.package) == (ALICE, "presence")
    [entry] = wl.watchers
    assert (entry.status, entry.event, entry.uri) == ("pending", "subscribe", CAROL)
    assert entry.expiration == 3600 and entry.duration_subscribed == 0


def test_blocked_subscribe_is_403_and_leaves_nothing() -> None:
    core = make_core()
    core.set_rules(ALICE, Ruleset((handling("b", "block", CAROL),)), T0)
    out = Watcher(CAROL).subscribe(core, T0)
    assert out.reply is not None
    assert (out.reply.status, out.reply.reason) == (403, "Forbidden")
    assert out.notifies == [] and core.subscriptions == {} and out.save_subscriptions == []
    assert core.stats["subscribe_blocked"] == 1


def test_polite_block_looks_like_a_real_subscription_with_neutral_state() -> None:
    core = make_core()
    published(core, body=presence(note="secret", activity="busy"))
    core.set_rules(ALICE, Ruleset((allow("ok", BOB), handling("pb", "polite-block", CAROL))), T0)
    real = Watcher(BOB).subscribe(core, T0 + 1)
    polite = Watcher(CAROL).subscribe(core, T0 + 1)
    assert status(polite) == status(real) == 200
    assert [k for k, _ in polite.reply.headers] == [k for k, _ in real.reply.headers]  # type: ignore[union-attr]
    notify = only(polite.notifies)
    real_notify = only(real.notifies)
    assert [k for k, _ in notify.request.headers] == [k for k, _ in real_notify.request.headers]
    assert state_of(notify) == "active;expires=3600"
    document = doc_of(notify)
    assert document == pidf.neutral_document(ALICE)
    assert polite.save_subscriptions[0].polite_block
    # a change of presence reaches the politely blocked watcher too, still neutral
    change = core.publish(publish_request(presence(basic="closed")), OPEN, T0 + 2)
    sub_id = polite.save_subscriptions[0].id
    assert doc_of(only(change.notifies, sub_id)) == pidf.neutral_document(ALICE)


def test_event_id_is_echoed() -> None:
    core = make_core(default_sub_handling="allow")
    out = Watcher(BOB, event="presence;id=7").subscribe(core, T0)
    assert only(out.notifies).request.headers.get("event") == "presence;id=7"
    assert out.save_subscriptions[0].event_id == "7"


def test_fetch_sends_one_terminating_notify_and_keeps_nothing() -> None:
    core = make_core(default_sub_handling="allow")
    published(core)
    out = Watcher(BOB).subscribe(core, T0, expires=0)
    assert status(out) == 200
    assert header(out, "Expires") == "0"
    notify = only(out.notifies)
    assert notify.terminal
    assert state_of(notify) == "terminated;reason=timeout"
    assert basics(notify) == {"t1": "open"}
    assert core.subscriptions == {} and out.save_subscriptions == []
    assert core.stats["fetch"] == 1


def test_fetch_while_pending_carries_no_state() -> None:
    core = make_core()
    published(core)
    out = Watcher(CAROL).subscribe(core, T0, expires=0)
    assert status(out) == 202
    notify = only(out.notifies)
    assert state_of(notify) == "terminated;reason=timeout"
    assert notify.request.body == b""
    assert core.subscriptions == {}


def test_refresh_extends_the_subscription_and_sends_the_state() -> None:
    core = make_core(default_sub_handling="allow")
    bob = Watcher(BOB)
    first = bob.subscribe(core, T0, expires=600)
    sub = sub_id_of(first)
    out = bob.subscribe(core, T0 + 300, expires=3600)
    assert out.reply is not None
    assert (out.reply.status, out.reply.to_tag) == (200, bob.to_tag)
    assert header(out, "Expires") == "3600"
    notify = only(out.notifies, sub)
    assert state_of(notify) == "active;expires=3600"
    assert str(notify.request.cseq) == "2 NOTIFY"
    assert core.subscriptions[sub].expires_at == T0 + 3900
    assert core.stats["resubscribe"] == 1
    # the first expiry time no longer ends it
    assert core.on_timer(T0 + 600).notifies == []
    assert sub in core.subscriptions
    ended = core.on_timer(T0 + 3900)
    assert state_of(only(ended.notifies, sub)) == "terminated;reason=timeout"


def test_refresh_updates_the_remote_target() -> None:
    core = make_core(default_sub_handling="allow")
    bob = Watcher(BOB)
    bob.subscribe(core, T0)
    out = bob.subscribe(core, T0 + 10, contact="sip:bob@198.51.100.7:5090")
    assert str(only(out.notifies).request.uri) == "sip:bob@198.51.100.7:5090"


def test_refresh_of_a_pending_subscription_is_202() -> None:
    core = make_core()
    carol = Watcher(CAROL)
    carol.subscribe(core, T0)
    out = carol.subscribe(core, T0 + 10)
    assert status(out) == 202
    assert state_of(only(out.notifies)) == "pending;expires=3600"


def test_unsubscribe_ends_with_a_final_notify_and_winfo_timeout() -> None:
    core = make_core(default_sub_handling="allow")
    published(core)
    owner = Watcher(ALICE, event="presence.winfo")
    winfo_sub = sub_id_of(owner.subscribe(core, T0))
    bob = Watcher(BOB)
    sub = sub_id_of(bob.subscribe(core, T0 + 1))
    out = bob.subscribe(core, T0 + 50, expires=0)
    assert status(out) == 200
    assert header(out, "Expires") == "0"
    final = only(out.notifies, sub)
    assert final.terminal
    assert state_of(final) == "terminated;reason=timeout"
    assert final.request.body == b""
    assert out.delete_subscriptions == [sub]
    assert sub not in core.subscriptions and not core.watchers_of
    [entry] = winfo_of(only(out.notifies, winfo_sub)).lists[0].watchers
    assert (entry.status, entry.event, entry.uri) == ("terminated", "timeout", BOB)
    assert entry.duration_subscribed == 49
    # the dialog is gone
    again = bob.subscribe(core, T0 + 60)
    assert out.reply is not None
    assert (status(again), again.reply and again.reply.reason) == (
        481, "Subscription does not exist",
    )  # fmt: skip


def test_in_dialog_subscribe_for_an_unknown_dialog_is_481() -> None:
    core = make_core(default_sub_handling="allow")
    bob = Watcher(BOB)
    bob.subscribe(core, T0)
    stranger = Watcher(BOB)
    stranger.to_tag = "notatagofours"
    assert status(stranger.subscribe(core, T0 + 1)) == 481
    # the right dialog but another event package
    other = bob.request(headers=())
    other.headers.set("Event", "presence.winfo")
    assert status(core.subscribe(other, OPEN, T0 + 2)) == 481


def test_in_dialog_subscribe_with_an_old_cseq_is_500() -> None:
    core = make_core(default_sub_handling="allow")
    bob = Watcher(BOB)
    sub = sub_id_of(bob.subscribe(core, T0))
    bob.subscribe(core, T0 + 1, cseq=5)
    for cseq in (5, 4):
        out = bob.subscribe(core, T0 + 2, cseq=cseq)
        assert out.reply is not None
        assert (out.reply.status, out.reply.reason) == (500, "CSeq out of order")
        assert out.notifies == []
    assert core.subscriptions[sub].dialog.remote_cseq == 5


@pytest.mark.parametrize(
    ("accept", "result"),
    [
        ("application/watcherinfo+xml", 406),
        ("application/pidf+xml;q=0.5", 200),
        ("*/*", 200),
        ("text/plain, application/pidf+xml", 200),
    ],
)
def test_accept_must_allow_the_package_type(accept: str, result: int) -> None:
    core = make_core(default_sub_handling="allow")
    out = Watcher(BOB).subscribe(core, T0, headers=[f"Accept: {accept}"])
    assert status(out) == result
    if result == 406:
        assert header(out, "Accept") == "application/pidf+xml"
        assert core.subscriptions == {}


def test_subscribe_needs_exactly_one_contact() -> None:
    core = make_core(default_sub_handling="allow")
    none = Watcher(BOB).subscribe(core, T0, contacts=[])
    assert (status(none), none.reply and none.reply.reason) == (400, "SUBSCRIBE without Contact")
    two = Watcher(BOB).subscribe(core, T0, contacts=["sip:a@192.0.2.1", "sip:b@192.0.2.2"])
    assert two.reply is not None
    assert (two.reply.status, two.reply.reason) == (
        400, "dialog-creating request needs exactly one Contact",
    )  # fmt: skip
    assert core.subscriptions == {}


def test_subscribe_errors_423_and_489() -> None:
    core = make_core(default_sub_handling="allow")
    short = Watcher(BOB).subscribe(core, T0, expires=30)
    assert (status(short), header(short, "Min-Expires")) == (423, "60")
    reg = Watcher(BOB, event="reg").subscribe(core, T0)
    assert (status(reg), header(reg, "Allow-Events")) == (489, "presence, presence.winfo")
    malformed = Watcher(BOB).subscribe(core, T0, expires=None, headers=["Expires: soon"])
    assert (status(malformed), malformed.reply and malformed.reply.reason) == (
        400, "malformed Expires header",
    )  # fmt: skip
    assert core.subscriptions == {}


def test_subscribe_without_expires_gets_the_default() -> None:
    core = make_core(default_sub_handling="allow", default_subscribe_expires=1800)
    out = Watcher(BOB).subscribe(core, T0, expires=None)
    assert header(out, "Expires") == "1800"
    assert state_of(only(out.notifies)) == "active;expires=1800"


def test_forked_subscribes_get_distinct_tags_and_subscriptions() -> None:
    core = make_core(default_sub_handling="allow")
    bob = Watcher(BOB)
    first = core.subscribe(bob.request(), OPEN, T0)
    second = core.subscribe(bob.request(cseq=1), OPEN, T0)
    assert first.reply and second.reply
    assert first.reply.to_tag != second.reply.to_tag
    assert len(core.subscriptions) == 2
    assert len(core.by_dialog) == 2


def test_notify_cseq_grows_across_notifies() -> None:
    core = make_core(default_sub_handling="allow")
    etag = published(core)
    bob = Watcher(BOB)
    sub = sub_id_of(bob.subscribe(core, T0))
    seqs = []
    for i, basic in enumerate(BURST):
        out = core.publish(publish_request(presence(basic=basic), etag=etag), OPEN, T0 + i + 1)
        etag = header(out, "SIP-ETag") or ""
        seqs.append(only(out.notifies, sub).request.cseq.seq)
    assert seqs == [2, 3, 4]


def test_subscription_expiry_sends_timeout_and_updates_winfo() -> None:
    core = make_core(default_sub_handling="allow")
    owner = Watcher(ALICE, event="presence.winfo")
    winfo_sub = sub_id_of(owner.subscribe(core, T0, expires=7200))
    bob = Watcher(BOB)
    sub = sub_id_of(bob.subscribe(core, T0, expires=600))
    assert core.on_timer(T0 + 599).notifies == []
    out = core.on_timer(T0 + 600)
    final = only(out.notifies, sub)
    assert final.terminal and state_of(final) == "terminated;reason=timeout"
    assert out.delete_subscriptions == [sub]
    [entry] = winfo_of(only(out.notifies, winfo_sub)).lists[0].watchers
    assert (entry.status, entry.event) == ("terminated", "timeout")
    assert core.stats["subscription_expired"] == 1
    assert winfo_sub in core.subscriptions


# -- identity, anonymity ------------------------------------------------------------------------


def test_anonymous_watcher_is_hidden_in_winfo_but_rules_use_its_identity() -> None:
    core = make_core()
    published(core)
    core.set_rules(ALICE, Ruleset((allow("bob", BOB),)), T0)
    owner = Watcher(ALICE, event="presence.winfo")
    winfo_sub = sub_id_of(
        owner.subscribe(core, T0, origin=SCSCF, headers=[f"P-Asserted-Identity: <{ALICE}>"])
    )
    anon = Watcher("sip:anonymous@anonymous.invalid", display="Anonymous")
    out = anon.subscribe(
        core, T0 + 1, origin=SCSCF,
        headers=["Privacy: id", f'P-Asserted-Identity: "Bob" <{BOB}>'],
    )  # fmt: skip
    assert status(out) == 200  # bob's rule applied to the asserted identity
    sub = out.save_subscriptions[0]
    assert (sub.watcher, sub.authenticated, sub.anonymous) == (BOB, True, True)
    assert sub.watcher_display is None
    assert basics(only(out.notifies, sub.id)) == {"t1": "open"}
    info = winfo_of(only(out.notifies, winfo_sub))
    [entry] = info.lists[0].watchers
    assert entry.uri == ANONYMOUS_URI == "sip:anonymous@anonymous.invalid"
    assert entry.display_name is None
    assert BOB not in only(out.notifies, winfo_sub).request.body.decode()
    assert "bob" not in entry.id


def test_privacy_header_with_several_values() -> None:
    core = make_core(default_sub_handling="allow")
    out = Watcher(BOB).subscribe(
        core, T0, origin=SCSCF, headers=["Privacy: header;id", f"P-Asserted-Identity: <{BOB}>"]
    )
    assert out.save_subscriptions[0].anonymous


def test_trusted_request_without_pai_is_an_unauthenticated_watcher() -> None:
    core = make_core()
    published(core)
    core.set_rules(ALICE, Ruleset((allow("carol", CAROL),)), T0)
    out = Watcher(CAROL).subscribe(core, T0, origin=SCSCF)
    sub = out.save_subscriptions[0]
    assert (sub.watcher, sub.authenticated) == (CAROL, False)
    assert status(out) == 202  # an identity rule never matches an unauthenticated watcher
    with_pai = Watcher(CAROL).subscribe(
        core, T0, origin=SCSCF, headers=[f"P-Asserted-Identity: <{CAROL}>"]
    )
    assert status(with_pai) == 200


def test_winfo_ids_are_opaque_and_unlinkable() -> None:
    core = make_core()
    owner = Watcher(ALICE, event="presence.winfo")
    winfo_sub = sub_id_of(owner.subscribe(core, T0))
    ids = set()
    for _ in range(2):
        out = Watcher(CAROL).subscribe(core, T0)
        [entry] = winfo_of(only(out.notifies, winfo_sub)).lists[0].watchers
        assert "carol" not in entry.id and "home2" not in entry.id
        ids.add(entry.id)
    assert len(ids) == 2


# -- watcher information (RFC 3857/3858) ----------------------------------------------------------


def test_winfo_full_then_partial_documents() -> None:
    core = make_core(default_sub_handling="allow")
    bob_sub = sub_id_of(Watcher(BOB, display="Bob").subscribe(core, T0))
    owner = Watcher(ALICE, event="presence.winfo")
    out = owner.subscribe(core, T0 + 10)
    assert status(out) == 200
    assert header(out, "Expires") == "3600"
    winfo_sub = out.save_subscriptions[0]
    assert winfo_sub.state == "active"
    notify = only(out.notifies)
    assert notify.request.headers.get("event") == "presence.winfo"
    assert state_of(notify) == "active;expires=3600"
    full = winfo_of(notify)
    assert (full.version, full.state) == (0, "full")
    [entry] = full.lists[0].watchers
    assert (entry.status, entry.event, entry.uri, entry.display_name) == (
        "active", "approved", BOB, "Bob",
    )  # fmt: skip
    assert entry.id == core.subscriptions[bob_sub].winfo_id
    assert entry.duration_subscribed == 10 and entry.expiration == 3590
    # a new watcher: partial, only the change, next version
    carol = Watcher(CAROL).subscribe(core, T0 + 20)
    partial = winfo_of(only(carol.notifies, winfo_sub.id))
    assert (partial.version, partial.state) == (1, "partial")
    assert [w.uri for w in partial.lists[0].watchers] == [CAROL]
    # a refresh of the winfo subscription sends the full list again
    again = owner.subscribe(core, T0 + 30)
    full2 = winfo_of(only(again.notifies))
    assert (full2.version, full2.state) == (2, "full")
    assert sorted(w.uri for w in full2.lists[0].watchers) == [BOB, CAROL]


def test_winfo_fetch() -> None:
    core = make_core()
    Watcher(CAROL).subscribe(core, T0)
    out = Watcher(ALICE, event="presence.winfo").subscribe(core, T0 + 1, expires=0)
    notify = only(out.notifies)
    assert notify.terminal and state_of(notify) == "terminated;reason=timeout"
    info = winfo_of(notify)
    assert info.state == "full"
    assert [(w.uri, w.status) for w in info.lists[0].watchers] == [(CAROL, "pending")]
    assert not core.winfo_of


@pytest.mark.parametrize(
    ("watcher", "origin", "headers"),
    [
        (BOB, OPEN, []),
        (ALICE, SCSCF, []),  # trusted but no asserted identity: not authenticated
        (ALICE, SCSCF, [f"P-Asserted-Identity: <{BOB}>"]),
    ],
)
def test_only_the_presentity_may_watch_its_watchers(
    watcher: str, origin: Origin, headers: list[str]
) -> None:
    core = make_core()
    out = Watcher(watcher, event="presence.winfo").subscribe(
        core, T0, origin=origin, headers=headers
    )
    assert out.reply is not None
    assert (out.reply.status, out.reply.reason) == (
        403,
        "Only the presentity may watch its watchers",
    )
    assert core.winfo_of == {} and out.notifies == []


def test_winfo_through_the_tel_alias() -> None:
    core = make_core()
    out = Watcher(ALICE, resource=ALICE_TEL, event="presence.winfo").subscribe(
        core, T0, origin=SCSCF, headers=[f"P-Asserted-Identity: <{ALICE_TEL}>"]
    )
    assert status(out) == 200
    assert winfo_of(only(out.notifies)).lists[0].resource == ALICE_TEL


# -- rules (RFC 5025): a change re-evaluates every live subscription ---------------------------


def test_rule_change_approves_a_pending_watcher() -> None:
    core = make_core()
    published(core)
    winfo_sub = sub_id_of(Watcher(ALICE, event="presence.winfo").subscribe(core, T0))
    carol = sub_id_of(Watcher(CAROL).subscribe(core, T0 + 1))
    out = core.set_rules(ALICE, Ruleset((allow("c", CAROL),)), T0 + 10)
    notify = only(out.notifies, carol)
    assert state_of(notify) == "active;expires=3591"
    assert basics(notify) == {"t1": "open"}
    assert core.subscriptions[carol].state == "active"
    assert carol in {s.id for s in out.save_subscriptions}
    [entry] = winfo_of(only(out.notifies, winfo_sub)).lists[0].watchers
    assert (entry.status, entry.event) == ("active", "approved")


def test_rule_change_to_block_terminates_with_rejected() -> None:
    core = make_core()
    core.set_rules(ALICE, Ruleset((allow("c", CAROL),)), T0)
    winfo_sub = sub_id_of(Watcher(ALICE, event="presence.winfo").subscribe(core, T0))
    carol = sub_id_of(Watcher(CAROL).subscribe(core, T0 + 1))
    out = core.set_rules(ALICE, Ruleset((handling("c", "block", CAROL),)), T0 + 2)
    final = only(out.notifies, carol)
    assert final.terminal and state_of(final) == "terminated;reason=rejected"
    assert out.delete_subscriptions == [carol]
    assert carol not in core.subscriptions
    [entry] = winfo_of(only(out.notifies, winfo_sub)).lists[0].watchers
    assert (entry.status, entry.event) == ("terminated", "rejected")


def test_withdrawn_approval_makes_the_watcher_pending_again() -> None:
    core = make_core()
    published(core)
    core.set_rules(ALICE, Ruleset((allow("c", CAROL),)), T0)
    carol = sub_id_of(Watcher(CAROL).subscribe(core, T0 + 1))
    out = core.set_rules(ALICE, None, T0 + 2)
    notify = only(out.notifies, carol)
    assert state_of(notify) == "pending;expires=3599"
    assert notify.request.body == b""
    assert core.subscriptions[carol].state == "pending"
    assert ALICE not in core.rules


def test_rule_change_to_polite_block_sends_the_neutral_document() -> None:
    core = make_core()
    published(core, body=presence(note="in the office"))
    core.set_rules(ALICE, Ruleset((allow("c", CAROL),)), T0)
    carol = sub_id_of(Watcher(CAROL).subscribe(core, T0 + 1))
    out = core.set_rules(ALICE, Ruleset((handling("c", "polite-block", CAROL),)), T0 + 2)
    notify = only(out.notifies, carol)
    assert state_of(notify) == "active;expires=3599"
    assert doc_of(notify) == pidf.neutral_document(ALICE)


def test_three_watchers_three_rules_three_documents() -> None:
    core = make_core()
    published(core, body=presence(note="lunch", activity="meal"))
    core.set_rules(
        ALICE,
        Ruleset(
            (
                allow("bob", BOB),
                allow("carol", CAROL, services=ServiceSelector(all=True)),
                allow("dave", DAVE, persons=PersonSelector(all=True), activities=True),
            )
        ),
        T0,
    )
    docs = {}
    for who in (BOB, CAROL, DAVE):
        docs[who] = doc_of(only(Watcher(who).subscribe(core, T0 + 1).notifies))
    assert docs[BOB].tuples[0].notes == (Note("lunch"),)
    assert docs[BOB].persons[0].activities == Activities(("meal",))
    assert [(t.id, t.notes) for t in docs[CAROL].tuples] == [("t1", ())]
    assert docs[CAROL].persons == ()
    assert docs[DAVE].tuples == ()
    assert docs[DAVE].persons[0].activities == Activities(("meal",))
    # a rule change filters the live subscriptions differently at once
    out = core.set_rules(
        ALICE,
        Ruleset((allow("carol", CAROL, note=True, services=ServiceSelector(all=True)),)),
        T0 + 5,
    )
    carol_sub = next(s.id for s in core.subscriptions.values() if s.watcher == CAROL)
    assert doc_of(only(out.notifies, carol_sub)).tuples[0].notes == (Note("lunch"),)
    assert {core.subscriptions[n.subscription_id].watcher for n in out.notifies} == {
        BOB,
        CAROL,
        DAVE,
    }


def test_set_rules_through_the_tel_alias() -> None:
    core = make_core()
    core.set_rules(ALICE_TEL, Ruleset((allow("b", BOB),)), T0)
    assert ALICE in core.rules
    assert status(Watcher(BOB).subscribe(core, T0)) == 200


def test_default_sub_handling_allow_shows_everything_but_provenance() -> None:
    core = make_core(default_sub_handling="allow")
    published(core, body=presence(note="n", activity="busy"))
    document = doc_of(only(Watcher(CAROL).subscribe(core, T0).notifies))
    assert document.tuples[0].notes == (Note("n"),)
    assert document.persons[0].activities == Activities(("busy",))
    assert not any(read_provenance(t.extensions) for t in document.tuples)


def test_validity_condition_is_evaluated_at_now() -> None:
    core = make_core()
    published(core)
    start = datetime.fromtimestamp(T0 + 100, tz=UTC)
    end = datetime.fromtimestamp(T0 + 200, tz=UTC)
    rule = Rule(
        "window",
        Conditions(identity=Identity(ones=(BOB,)), validity=((start, end),)),
        Actions("allow"),
        Transformations(services=ServiceSelector(all=True)),
    )
    core.set_rules(ALICE, Ruleset((rule,)), T0)
    assert status(Watcher(BOB).subscribe(core, T0 + 50)) == 202
    assert status(Watcher(BOB).subscribe(core, T0 + 150)) == 200


def test_sphere_condition_follows_the_published_sphere() -> None:
    core = make_core()
    rule = Rule(
        "work", Conditions(identity=Identity(ones=(BOB,)), sphere="work"), Actions("allow"),
        Transformations(services=ServiceSelector(all=True)),
    )  # fmt: skip
    core.set_rules(ALICE, Ruleset((rule,)), T0)
    published(core, body=presence(sphere="home"))
    assert status(Watcher(BOB).subscribe(core, T0)) == 202
    published(core, T0 + 1, body=presence(sphere="work"))
    assert status(Watcher(BOB).subscribe(core, T0 + 2)) == 200


# -- provenance ---------------------------------------------------------------------------------------


def _provenance_sources(document: pidf.PresenceDocument) -> set[str]:
    found = set()
    for t in document.tuples:
        for _, prov in read_provenance(t.extensions):
            found.add(prov.source_id)
    return found


def _two_sources(core: PresenceCore) -> None:
    published(core, body=presence(tuple_id="phone"))
    pna = core.publish(
        publish_request(presence(tuple_id="net"), sender="sip:pna.home1.net"), PNA, T0 + 1
    )
    assert status(pna) == 200


def test_owner_sees_provenance() -> None:
    core = make_core()
    _two_sources(core)
    out = Watcher(ALICE).subscribe(
        core, T0 + 2, origin=SCSCF, headers=[f"P-Asserted-Identity: <{ALICE}>"]
    )
    document = doc_of(only(out.notifies))
    assert _provenance_sources(document) == {ALICE, "pna"}
    assert PROVENANCE_NS.encode() in only(out.notifies).request.body
    [(_, prov)] = read_provenance(next(t for t in document.tuples if t.id == "net").extensions)
    assert (prov.source_class, prov.interface, prov.received_at) == ("network", "Pen", T0 + 1)


def test_owner_provenance_can_be_turned_off() -> None:
    core = make_core(expose_provenance_to_owner=False)
    _two_sources(core)
    out = Watcher(ALICE).subscribe(core, T0 + 2)
    assert status(out) == 200
    assert PROVENANCE_NS.encode() not in only(out.notifies).request.body
    assert {t.id for t in doc_of(only(out.notifies)).tuples} == {"phone", "net"}


def test_provenance_only_with_provide_provenance() -> None:
    core = make_core()
    _two_sources(core)
    core.set_rules(
        ALICE,
        Ruleset(
            (
                allow("bob", BOB, services=ServiceSelector(all=True), provenance=True),
                allow("carol", CAROL, services=ServiceSelector(all=True)),
            )
        ),
        T0,
    )
    bob = doc_of(only(Watcher(BOB).subscribe(core, T0 + 2).notifies))
    carol = doc_of(only(Watcher(CAROL).subscribe(core, T0 + 2).notifies))
    assert _provenance_sources(bob) == {ALICE, "pna"}
    assert _provenance_sources(carol) == set()
    assert {t.id for t in carol.tuples} == {"phone", "net"}


# -- RFC 6446 rate control, NOTIFY transactions ---------------------------------------------------------


def test_min_notify_interval_coalesces_a_burst_into_the_latest_state() -> None:
    core = make_core(default_sub_handling="allow", min_notify_interval=5.0)
    etag = published(core)
    sub = sub_id_of(Watcher(BOB).subscribe(core, T0))
    for i, basic in enumerate(BURST, start=1):
        out = core.publish(
            publish_request(presence(basic=basic, note=str(i)), etag=etag), OPEN, T0 + i
        )
        assert status(out) == 200 and out.notifies == []
        etag = header(out, "SIP-ETag") or ""
    assert core.stats["notify_coalesced"] == 3
    assert core.next_deadline() == T0 + 5
    assert core.on_timer(T0 + 4.9).notifies == []
    out = core.on_timer(T0 + 5)
    notify = only(out.notifies, sub)
    assert basics(notify) == {"t1": "closed"}
    assert doc_of(notify).tuples[0].notes == (Note("3"),)
    assert out.save_subscriptions[0].id == sub
    # nothing more is pending
    assert core.on_timer(T0 + 20).notifies == []
    # after a quiet period the next change goes out at once
    out = core.publish(publish_request(presence(basic="open"), etag=etag), OPEN, T0 + 30)
    assert basics(only(out.notifies, sub)) == {"t1": "open"}


def test_a_change_during_an_inflight_notify_waits_for_its_end() -> None:
    core = make_core(default_sub_handling="allow")
    etag = published(core)
    sub = sub_id_of(Watcher(BOB).subscribe(core, T0))
    core.notify_sent(sub)
    for i, basic in enumerate(BURST, start=1):
        out = core.publish(publish_request(presence(basic=basic), etag=etag), OPEN, T0 + i)
        assert out.notifies == []
        etag = header(out, "SIP-ETag") or ""
    assert core.on_timer(T0 + 10).notifies == []  # still in flight
    done = core.notify_done(sub, 200, T0 + 11)
    assert basics(only(done.notifies, sub)) == {"t1": "closed"}
    core.notify_sent(sub)
    assert core.notify_done(sub, 200, T0 + 12).notifies == []


@pytest.mark.parametrize(
    ("status_code", "event"), [(481, "giveup"), (408, "timeout"), (503, "giveup")]
)
def test_failed_notify_ends_the_subscription(status_code: int, event: str) -> None:
    core = make_core(default_sub_handling="allow")
    winfo_sub = sub_id_of(Watcher(ALICE, event="presence.winfo").subscribe(core, T0))
    sub = sub_id_of(Watcher(BOB).subscribe(core, T0))
    core.notify_sent(sub)
    out = core.notify_done(sub, status_code, T0 + 1)
    assert sub not in core.subscriptions
    assert out.delete_subscriptions == [sub]
    assert [n.subscription_id for n in out.notifies] == [winfo_sub]  # no NOTIFY on a dead dialog
    [entry] = winfo_of(out.notifies[0]).lists[0].watchers
    assert (entry.status, entry.event) == ("terminated", event)
    assert core.stats[f"notify_failed_{status_code}"] == 1
    # publishing later does not touch it
    assert published(core, T0 + 2)


def test_491_on_notify_keeps_the_subscription() -> None:
    core = make_core(default_sub_handling="allow")
    sub = sub_id_of(Watcher(BOB).subscribe(core, T0))
    core.notify_sent(sub)
    out = core.notify_done(sub, 491, T0 + 1)
    assert out.delete_subscriptions == [] and sub in core.subscriptions


def test_notify_done_for_a_finished_subscription_is_harmless() -> None:
    core = make_core()
    assert core.notify_done("nosuchsubscription", 481, T0).notifies == []


# -- restart and shutdown -------------------------------------------------------------------------------


def _roundtrip(records: Iterable[Any]) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(r.to_dict())) for r in records]


def test_restore_resumes_live_subscriptions_and_drops_expired_state() -> None:
    core = make_core()
    rules = Ruleset((allow("b", BOB), allow("c", CAROL)))
    core.set_rules(ALICE, rules, T0)
    live_etag = published(core, body=presence(note="still here"), expires=7200)
    short_etag = published(core, body=presence(tuple_id="t9"), expires=100)
    bob = Watcher(BOB)
    bob_out = bob.subscribe(core, T0, expires=7200)
    bob_sub = sub_id_of(bob_out)
    carol_sub = sub_id_of(Watcher(CAROL).subscribe(core, T0, expires=100))
    winfo_sub = sub_id_of(Watcher(ALICE, event="presence.winfo").subscribe(core, T0, expires=7200))
    last_cseq = core.subscriptions[bob_sub].dialog.local_cseq

    pubs = [PublicationRecord.from_dict(d) for d in _roundtrip(core.publications.values())]
    subs = [SubscriptionRecord.from_dict(d) for d in _roundtrip(core.subscriptions.values())]
    restarted = make_core()
    out = restarted.restore(pubs, subs, {ALICE_TEL: rules}, T0 + 500)

    assert set(out.delete_publications) == {short_etag}
    assert set(out.delete_subscriptions) == {carol_sub}
    assert set(restarted.publications) == {live_etag}
    assert set(restarted.subscriptions) == {bob_sub, winfo_sub}
    assert ALICE in restarted.rules
    notify = only(out.notifies, bob_sub)
    assert state_of(notify) == "active;expires=6700"
    assert [(t.id, t.notes) for t in doc_of(notify).tuples] == [("t1", (Note("still here"),))]
    assert notify.request.cseq.seq == last_cseq + 1
    assert notify.request.to.tag == bob.from_tag and notify.request.from_.tag == bob.to_tag
    info = winfo_of(only(out.notifies, winfo_sub))
    assert (info.state, info.version) == ("full", 1)
    assert {s.id for s in out.save_subscriptions} == {bob_sub, winfo_sub}
    assert restarted.stats["restored"] == 1
    # the timers were re-armed
    assert restarted.next_deadline() == T0 + 7200
    # the restored dialog still answers in-dialog requests
    refresh = bob.subscribe(restarted, T0 + 600, expires=3600)
    assert status(refresh) == 200
    assert str(only(refresh.notifies).request.cseq) == f"{last_cseq + 2} NOTIFY"


def test_restore_drops_a_publication_whose_body_no_longer_parses() -> None:
    core = make_core()
    record = PublicationRecord(
        "abad1dea", ALICE, "presence", ALICE, "ue", "Peu", ALICE, T0, T0 + 1000,
        "application/pidf+xml", b"<not-pidf/>",
    )  # fmt: skip
    out = core.restore([record], [], {}, T0)
    assert out.delete_publications == ["abad1dea"]
    assert core.publications == {}


def test_restore_drops_terminated_subscriptions() -> None:
    core = make_core(default_sub_handling="allow")
    out = Watcher(BOB).subscribe(core, T0)
    record = SubscriptionRecord.from_dict(_roundtrip(out.save_subscriptions)[0])
    record.state = "terminated"
    restarted = make_core()
    result = restarted.restore([], [record], {}, T0 + 1)
    assert result.delete_subscriptions == [record.id]
    assert result.notifies == [] and restarted.subscriptions == {}


def test_shutdown_deactivates_every_subscription() -> None:
    core = make_core(default_sub_handling="allow")
    subs = {sub_id_of(Watcher(w).subscribe(core, T0)) for w in (BOB, CAROL)}
    subs.add(sub_id_of(Watcher(ALICE, event="presence.winfo").subscribe(core, T0)))
    out = core.shutdown(T0 + 10)
    finals = [n for n in out.notifies if n.terminal]
    assert {n.subscription_id for n in finals} == subs
    assert {state_of(n) for n in finals} == {"terminated;reason=deactivated"}
    assert set(out.delete_subscriptions) == subs
    assert core.subscriptions == {} and core.watchers_of == {} and core.winfo_of == {}


def test_opaque_id_depends_on_the_secret() -> None:
    a = make_core()
    b = PresenceCore(CoreConfig(), contact="<sip:ps>", secret=b"x" * 32)
    assert a.opaque_id(BOB) == a.opaque_id(BOB)
    assert a.opaque_id(BOB) != b.opaque_id(BOB)
    assert len(a.opaque_id(BOB)) == 20 and "bob" not in a.opaque_id(BOB)


@pytest.mark.parametrize(
    ("routes", "remote_tag"),
    [
        ([], "w1"),
        ([], ""),
        (["<sip:pcscf.home1.net;lr>", "<sip:scscf.home1.net;lr>"], "w1"),
        (["<sip:strict.home1.net>", "<sip:next.home1.net;lr>"], "w1"),
    ],
)
def test_notify_requests_are_what_the_dialog_builds(routes: list[str], remote_tag: str) -> None:
    """The core's NOTIFY builder (names pre-normalised, parsed targets kept) gives the
    same request as ``Dialog.build_request``, header for header and byte for byte."""
    from presence_ims.sip.dialog import Dialog

    core = make_core()

    def dialog() -> Dialog:
        return Dialog("c1@x", "ps1", remote_tag, "<sip:alice@home1.net>", "<sip:bob@home1.net>",
                      "sip:bob@192.0.2.7:5070;transport=udp", list(routes), local_cseq=4)

    headers = [("Event", "presence"), ("Subscription-State", "active;expires=60"),
               ("Content-Type", "application/pidf+xml")]
    ours, theirs = dialog(), dialog()
    for _ in range(2):  # the second time from the kept parsed target and route
        keyed = [(n.lower(), n, v) for n, v in headers]
        got = core._in_dialog_request(ours, "NOTIFY", keyed, b"<x/>")
        want = theirs.build_request("NOTIFY", headers=headers, body=b"<x/>", contact=core.contact)
        assert list(got.headers) == list(want.headers) and got.headers == want.headers
        assert str(got.uri) == str(want.uri)
        assert got.serialize() == want.serialize()
        assert ours.local_cseq == theirs.local_cseq


def _composed_body(core: PresenceCore, presentity: str, perms: Any, uri: str) -> bytes:
    """The body the general path builds: compose, provenance, transform, entity, build."""
    from presence_ims.documents import compose as composer
    from presence_ims.documents import presrules
    from presence_ims.nodes.ps.core import _with_entity

    composed = core.composed(presentity)
    if perms is not None and perms.provenance:
        document = composer.with_provenance(composed)
    else:
        document = composed.document
    return pidf.build(_with_entity(presrules.transform(document, perms), uri))


@pytest.mark.parametrize(
    "uri",
    ["sip:bob@home1.net", "sip:+1555;phone-context=x@home1.net;user=phone", "tel:+15550001",
     "sip:a&b@home1.net", "sip:o'hara@home1.net", "sip:x@[2001:db8::1]"],
)
def test_unpublished_presentity_body_is_the_composed_one(uri: str) -> None:
    """Without a publication the body comes from one template per permissions; it is
    byte for byte what composing, transforming and building gives, for every kind of
    permissions (owner with provenance, allow-all, a rule's, none)."""
    from presence_ims.documents import presrules
    from presence_ims.nodes.ps.core import _ALLOW_ALL

    core = make_core()
    rules = Ruleset((allow("r", BOB, services=ServiceSelector(all=True)),))
    watcher = presrules.WatcherIdentity(BOB, True, False)
    rule_perms = presrules.evaluate(rules, watcher, sphere=None, now=datetime.fromtimestamp(T0, tz=UTC))
    for perms in (presrules.owner_permissions(), _ALLOW_ALL, rule_perms, None):
        for presentity in ("sip:nobody@home1.net", "sip:other@home2.net"):
            want = _composed_body(core, presentity, perms, uri)
            got = core._unpublished_body(perms, uri)
            assert got is None or got == want  # None: the general path is taken
            if "&" not in uri and "'" not in uri:
                assert got == want


def test_unpublished_body_gives_way_to_publications_and_back() -> None:
    """The template is only used while nothing is published for the presentity."""
    core = make_core(default_sub_handling="allow")
    w = Watcher(BOB)
    first = only(w.subscribe(core, T0).notifies)
    assert first.request.body == _neutral_body_of(core)
    etag = published(core, body=presence(note="here"))
    assert core._unpublished  # the template exists, but is not used any more
    out = core.publish(publish_request(presence(note="moved"), etag=etag), OPEN, T0 + 1)
    body = only(out.notifies).request.body
    assert pidf.parse(body).tuples[0].notes == (Note("moved"),)
    removed = core.publish(
        publish_request(None, etag=header(out, "SIP-ETag"), expires=0), OPEN, T0 + 2)
    assert only(removed.notifies).request.body == first.request.body


def _neutral_body_of(core: PresenceCore) -> bytes:
    from presence_ims.nodes.ps.core import _ALLOW_ALL

    return _composed_body(core, "sip:nobody@home1.net", _ALLOW_ALL, ALICE)
