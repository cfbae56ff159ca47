"""S-CSCF registrar helpers: reginfo documents (RFC 3680) and iFC evaluation (TS 29.228).

``build_reginfo`` output is read back with :func:`documents.reginfo.parse` and
checked against the reginfo schema; ``matching_ifcs`` gets the header map the
S-CSCF node builds from a parsed request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest

from presence_ims.diameter.cx import (
    ApplicationServer,
    ImsSubscription,
    InitialFilterCriteria,
    PublicIdentity,
    ServicePointTrigger,
    ServiceProfile,
    TriggerPoint,
)
from presence_ims.documents import reginfo, validate
from presence_ims.nodes.hss.logic import ifc_from_config
from presence_ims.nodes.hss.model import IfcConfig
from presence_ims.nodes.scscf.registrar import (
    SESSION_ORIGINATING,
    SESSION_ORIGINATING_UNREGISTERED,
    SESSION_TERMINATING_REGISTERED,
    SESSION_TERMINATING_UNREGISTERED,
    Binding,
    Registration,
    contact_id,
    matching_ifcs,
    reg_id,
)
from presence_ims.nodes.scscf.registrar import build_reginfo as build
from presence_ims.sip import Request, normalize_name, parse_datagram

ALICE = "sip:alice@home1.net"
ALICE_TEL = "tel:+15550001"
ANON = "sip:anon-a1@home1.net"
PS = "sip:ps.home1.net:5065;transport=tls"
NOW = 1_800_000_000.0


def binding(contact: str, expires_in: float, registered_for: float = 0.0) -> Binding:
    return Binding(
        contact=contact,
        expires_at=NOW + expires_in,
        path=["<sip:term@pcscf.home1.net;lr>"],
        call_id="reg-1",
        cseq=3,
        registered_at=NOW - registered_for,
        params=';+sip.instance="<urn:uuid:1>"',
    )


# -- reginfo -----------------------------------------------------------------------------------------


def test_reginfo_for_an_implicit_set_with_two_contacts() -> None:
    ue = "sip:alice@192.0.2.20:5062;transport=udp"
    phone = "sip:alice@198.51.100.4:5060"
    body = build(
        [ALICE, ALICE_TEL],
        [binding(ue, 600, registered_for=30), binding(phone, 3600.9)],
        version=3,
        now=NOW,
        events={phone: "created"},
    )
    validate.validate(body)  # the reginfo schema
    info = reginfo.parse(body)
    assert (info.version, info.state) == (3, "full")
    assert [(r.aor, r.id, r.state) for r in info.registrations] == [
        (ALICE, reg_id(ALICE), "active"),
        (ALICE_TEL, reg_id(ALICE_TEL), "active"),
    ]
    for registration in info.registrations:
        aor = registration.aor
        assert [
            (c.id, c.state, c.event, c.uri, c.expires, c.duration_registered)
            for c in registration.contacts
        ] == [
            (contact_id(aor, ue), "active", "registered", ue, 600, 30),
            (contact_id(aor, phone), "active", "created", phone, 3600, 0),
        ]


def test_reginfo_after_deregistration() -> None:
    ue = "sip:alice@192.0.2.20:5062"
    body = build([ALICE], [], version=7, now=NOW, terminated={ue: "unregistered"})
    validate.validate(body)
    [registration] = reginfo.parse(body).registrations
    assert registration.state == "terminated"
    [contact] = registration.contacts
    assert (contact.id, contact.state, contact.event, contact.uri, contact.expires) == (
        contact_id(ALICE, ue),
        "terminated",
        "unregistered",
        ue,
        0,
    )


def test_reginfo_one_contact_expired_another_still_active() -> None:
    old, new = "sip:alice@192.0.2.20:5062", "sip:alice@192.0.2.21:5062"
    body = build([ALICE], [binding(new, 100)], version=0, now=NOW, terminated={old: "expired"})
    validate.validate(body)
    [registration] = reginfo.parse(body).registrations
    assert registration.state == "active"
    assert [(c.uri, c.state, c.event) for c in registration.contacts] == [
        (new, "active", "registered"),
        (old, "terminated", "expired"),
    ]


def test_reginfo_of_a_binding_past_its_expiry_says_zero_not_negative() -> None:
    body = build([ALICE], [binding("sip:a@192.0.2.1", -5)], version=1, now=NOW)
    validate.validate(body)
    [contact] = reginfo.parse(body).registrations[0].contacts
    assert contact.expires == 0


def test_reginfo_without_anything() -> None:
    body = build([ALICE], [], version=0, now=NOW)
    validate.validate(body)
    [registration] = reginfo.parse(body).registrations
    assert (registration.state, registration.contacts) == ("terminated", ())


def test_reginfo_ids() -> None:
    assert reg_id(ALICE) == reg_id(ALICE) != reg_id(ALICE_TEL)
    assert reg_id(ALICE).startswith("reg") and len(reg_id(ALICE)) == 13
    c = "sip:alice@192.0.2.20"
    assert contact_id(ALICE, c) != contact_id(ALICE_TEL, c) != contact_id(ALICE, c + ":5062")
    assert contact_id(ALICE, c).startswith("c") and len(contact_id(ALICE, c)) == 11


# -- initial filter criteria ---------------------------------------------------------------------------------


def sip_request(method: str, uri: str = ALICE, headers: Iterable[str] = ()) -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/TCP scscf.home1.net:6060;branch=z9hG4bK1",
        "From: <sip:bob@home1.net>;tag=1",
        f"To: <{uri}>",
        "Call-ID: ifc-1",
        f"CSeq: 1 {method}",
        *headers,
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(msg, Request)
    return msg


def header_map(req: Request) -> dict[str, list[str]]:
    """What the S-CSCF node hands to matching_ifcs (normalised names)."""
    out: dict[str, list[str]] = {}
    for name, value in req.headers:
        out.setdefault(normalize_name(name), []).append(value)
    return out


def matches(
    profile: ImsSubscription | None,
    method: str,
    *headers: str,
    case: int = SESSION_TERMINATING_REGISTERED,
    impu: str = ALICE,
    uri: str = ALICE,
) -> list[int]:
    req = sip_request(method, uri, headers)
    found = matching_ifcs(
        profile,
        impu,
        method=req.method,
        headers=header_map(req),
        request_uri=str(req.uri),
        session_case=case,
    )
    return [ifc.priority for ifc in found]


def ifc(
    priority: int, cnf: bool | None, *spts: ServicePointTrigger, part: int | None = None
) -> InitialFilterCriteria:
    tp = None if cnf is None else TriggerPoint(cnf, spts)
    return InitialFilterCriteria(
        priority, ApplicationServer(f"sip:as{priority}.home1.net"), tp, profile_part_indicator=part
    )


def spt(
    group: int | tuple[int, ...] = 0, *, negated: bool = False, **kind: str | int
) -> ServicePointTrigger:
    groups = group if isinstance(group, tuple) else (group,)
    return ServicePointTrigger(groups=groups, negated=negated, **kind)  # type: ignore[arg-type]


def profile(
    *ifcs: InitialFilterCriteria, identities: Iterable[str] = (ALICE, ALICE_TEL)
) -> ImsSubscription:
    return ImsSubscription(
        "alice@home1.net",
        (
            ServiceProfile(tuple(PublicIdentity(i) for i in identities), ifcs),
            ServiceProfile((PublicIdentity(ANON),), (ifc(99, None),)),
        ),
    )


PRESENCE_IFC = ifc_from_config(IfcConfig(priority=10, server_name=PS, session_cases=(1, 2)))
"""The iFC the network configuration gives every subscriber (see config.subscribers_with_ifc)."""


def test_the_configured_presence_ifc() -> None:
    p = profile(PRESENCE_IFC)
    assert PRESENCE_IFC.application_server.server_name == PS
    assert matches(p, "PUBLISH", "Event: presence") == [10]
    assert matches(p, "SUBSCRIBE", "Event: presence.winfo") == [10]
    assert matches(p, "SUBSCRIBE", "Event: presence;id=12") == [10]  # parameters are not matched
    assert matches(p, "SUBSCRIBE", "o: presence") == [10]  # compact form of Event
    assert matches(p, "SUBSCRIBE", "Event: Presence") == [10]
    assert matches(p, "SUBSCRIBE", "Event: presence", case=SESSION_TERMINATING_UNREGISTERED) == [10]
    assert matches(p, "SUBSCRIBE", "Event: reg") == []
    assert matches(p, "SUBSCRIBE", "Event: xpresence") == []  # the whole value must match
    assert matches(p, "SUBSCRIBE") == []  # no Event header
    assert matches(p, "MESSAGE", "Event: presence") == []
    assert matches(p, "PUBLISH", "Event: presence", case=SESSION_ORIGINATING) == []
    assert matches(p, "PUBLISH", "Event: presence", impu=ALICE_TEL) == [10]
    assert matches(p, "PUBLISH", "Event: presence", impu=ANON) == [99]
    assert matches(p, "PUBLISH", "Event: presence", impu="sip:mallory@home1.net") == []
    assert matches(None, "PUBLISH", "Event: presence") == []


def test_results_are_ordered_by_priority() -> None:
    p = profile(ifc(30, None), PRESENCE_IFC, ifc(1, True, spt(method="PUBLISH")))
    assert matches(p, "PUBLISH", "Event: presence") == [1, 10, 30]
    assert matches(p, "SUBSCRIBE", "Event: presence") == [10, 30]


def test_cnf_is_an_and_of_ored_groups() -> None:
    # (PUBLISH or SUBSCRIBE) and (Event presence or Event dialog)
    p = profile(
        ifc(
            1,
            True,
            spt(0, method="PUBLISH"),
            spt(0, method="SUBSCRIBE"),
            spt(1, header="Event", content="presence"),
            spt(1, header="Event", content="dialog"),
        )
    )
    assert matches(p, "PUBLISH", "Event: presence") == [1]
    assert matches(p, "SUBSCRIBE", "Event: dialog") == [1]
    assert matches(p, "PUBLISH", "Event: reg") == []
    assert matches(p, "NOTIFY", "Event: presence") == []


def test_dnf_is_an_or_of_anded_groups() -> None:
    # (PUBLISH and Event presence) or (SUBSCRIBE and originating)
    p = profile(
        ifc(
            1,
            False,
            spt(0, method="PUBLISH"),
            spt(0, header="Event", content="presence"),
            spt(1, method="SUBSCRIBE"),
            spt(1, session_case=SESSION_ORIGINATING),
        )
    )
    assert matches(p, "PUBLISH", "Event: presence") == [1]
    assert matches(p, "PUBLISH", "Event: dialog") == []
    assert matches(p, "SUBSCRIBE", "Event: dialog", case=SESSION_ORIGINATING) == [1]
    assert matches(p, "SUBSCRIBE", "Event: presence") == []  # terminating


def test_an_spt_in_two_groups() -> None:
    # DNF (PUBLISH and Event) or (PUBLISH and originating): the method counts in both
    p = profile(
        ifc(
            1,
            False,
            spt((0, 1), method="PUBLISH"),
            spt(0, header="Event", content="presence"),
            spt(1, session_case=SESSION_ORIGINATING),
        )
    )
    assert matches(p, "PUBLISH", "Event: dialog", case=SESSION_ORIGINATING) == [1]
    assert matches(p, "PUBLISH", "Event: presence") == [1]
    assert matches(p, "PUBLISH", "Event: dialog") == []


def test_negated_conditions() -> None:
    # CNF: PUBLISH and not originating
    cnf = profile(
        ifc(
            1,
            True,
            spt(0, method="PUBLISH"),
            spt(1, negated=True, session_case=SESSION_ORIGINATING),
        )
    )
    assert matches(cnf, "PUBLISH") == [1]
    assert matches(cnf, "PUBLISH", case=SESSION_ORIGINATING) == []
    # DNF: SUBSCRIBE without an Event header
    dnf = profile(ifc(2, False, spt(0, method="SUBSCRIBE"), spt(0, negated=True, header="Event")))
    assert matches(dnf, "SUBSCRIBE") == [2]
    assert matches(dnf, "SUBSCRIBE", "Event: presence") == []
    # a negated content match is true when the header is absent too
    neg = profile(ifc(3, True, spt(0, negated=True, header="Event", content="presence.*")))
    assert matches(neg, "SUBSCRIBE", "Event: reg") == [3]
    assert matches(neg, "SUBSCRIBE") == [3]
    assert matches(neg, "SUBSCRIBE", "Event: presence.winfo") == []


def test_header_presence_and_request_uri_conditions() -> None:
    p = profile(
        ifc(1, True, spt(0, header="P-Asserted-Identity")),
        ifc(2, True, spt(0, request_uri=r"^sip:alice@home1\.net")),
    )
    assert matches(p, "PUBLISH", "P-Asserted-Identity: <sip:alice@home1.net>") == [1, 2]
    assert matches(p, "PUBLISH") == [2]
    assert matches(p, "PUBLISH", uri="sip:alice@home1.net;user=phone") == [2]  # a search
    assert matches(p, "PUBLISH", uri=ALICE_TEL) == []


def test_every_session_case() -> None:
    cases = (
        SESSION_ORIGINATING,
        SESSION_TERMINATING_REGISTERED,
        SESSION_TERMINATING_UNREGISTERED,
        SESSION_ORIGINATING_UNREGISTERED,
    )
    assert cases == (0, 1, 2, 3)
    p = profile(*(ifc(c, True, spt(0, session_case=c)) for c in cases))
    for c in cases:
        assert matches(p, "SUBSCRIBE", case=c) == [c]


def test_profile_part_indicator_limits_an_ifc_to_registered_or_unregistered_users() -> None:
    # TS 29.228 B.2.2: ProfilePartIndicator 0 = registered part, 1 = unregistered part
    p = profile(ifc(1, None, part=0), ifc(2, None, part=1), ifc(3, None))
    assert matches(p, "SUBSCRIBE", case=SESSION_TERMINATING_REGISTERED) == [1, 3]
    assert matches(p, "SUBSCRIBE", case=SESSION_ORIGINATING) == [1, 3]
    assert matches(p, "SUBSCRIBE", case=SESSION_TERMINATING_UNREGISTERED) == [2, 3]
    assert matches(p, "SUBSCRIBE", case=SESSION_ORIGINATING_UNREGISTERED) == [2, 3]
    configured = ifc_from_config(
        IfcConfig(server_name=PS, session_cases=(), profile_part="unregistered")
    )
    assert configured.profile_part_indicator == 1
    assert matches(profile(configured), "PUBLISH", "Event: presence") == []


@pytest.mark.parametrize("value", ["presence", "presence.winfo", "PRESENCE"])
def test_event_regex_from_the_hss_configuration(value: str) -> None:
    custom = ifc_from_config(IfcConfig(server_name=PS, event=r"presence(\.winfo)?", methods=()))
    assert custom.trigger_point is not None
    assert [s.header for s in custom.trigger_point.spts] == ["Event"]
    assert matches(profile(custom), "OPTIONS", f"Event: {value}") == [0]


# -- persistence ------------------------------------------------------------------------------------


def test_registration_round_trip_through_json() -> None:
    reg = Registration(
        "alice@home1.net",
        [ALICE, ALICE_TEL],
        "aka",
        profile(PRESENCE_IFC, ifc(20, False, spt(0, negated=True, session_case=0), part=1)),
    )
    for b in (binding("sip:alice@192.0.2.20:5062", 600), binding("sip:alice@198.51.100.4", 60)):
        reg.bindings[b.contact] = b
    back = Registration.from_dict(json.loads(json.dumps(reg.to_dict())))
    assert back == reg
    assert list(back.bindings) == ["sip:alice@192.0.2.20:5062", "sip:alice@198.51.100.4"]
    assert matches(back.profile, "PUBLISH", "Event: presence") == [10]
    assert matches(back.profile, "PUBLISH", case=SESSION_TERMINATING_UNREGISTERED) == [20]


def test_registration_without_profile_round_trip() -> None:
    reg = Registration("bob@home1.net", ["sip:bob@home1.net"], "digest")
    data = json.loads(json.dumps(reg.to_dict()))
    assert data == {
        "impi": "bob@home1.net",
        "impus": ["sip:bob@home1.net"],
        "scheme": "digest",
        "profile": None,
        "bindings": [],
    }
    assert Registration.from_dict(data) == reg
