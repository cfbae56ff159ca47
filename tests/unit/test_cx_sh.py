"""Cx (TS 29.229) and Sh (TS 29.329) typed commands and their XML documents:
every command encodes, decodes and parses back to the same fields."""

from __future__ import annotations

from typing import Any

import pytest

from presence_ims.diameter import cx, sh
from presence_ims.diameter.base import (
    DIAMETER_FIRST_REGISTRATION,
    DIAMETER_SUCCESS,
)
from presence_ims.diameter.codec import (
    APP_CX,
    APP_SH,
    AVP_AUTH_SESSION_STATE,
    AVP_PUBLIC_IDENTITY,
    AVP_SESSION_ID,
    VENDOR_3GPP,
    DiameterError,
    DiameterMessage,
    Result,
    decode,
    encode,
)

ICSCF = cx.Routing("icscf.home1.net", "home1.net", "home1.net")
SCSCF = cx.Routing("scscf.home1.net", "home1.net", "home1.net")
PNA = cx.Routing("pna.home1.net", "home1.net", "home1.net")
HSS_TO_SCSCF = cx.Routing("hss.home1.net", "home1.net", "home1.net", "scscf.home1.net")
HSS_TO_PNA = cx.Routing("hss.home1.net", "home1.net", "home1.net", "pna.home1.net")
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
AUTN = bytes.fromhex("55f328b43577b9b94a9ffac354dfafb3")


def wire(message: DiameterMessage) -> DiameterMessage:
    """Through the bytes and back."""
    return decode(encode(message))


def request_round_trip(request: Any) -> DiameterMessage:
    message = wire(request.to_message(hop_by_hop=7, end_to_end=8))
    assert message.request and message.proxiable
    assert (message.hop_by_hop, message.end_to_end) == (7, 8)
    assert message.session_id == request.session_id
    assert message.get_uint32(AVP_AUTH_SESSION_STATE) == 1
    assert type(request).from_message(message) == request
    return message


def answer_round_trip(answer: Any, request: DiameterMessage) -> DiameterMessage:
    message = wire(answer.to_message(request))
    assert not message.request
    assert message.session_id == request.session_id
    assert message.hop_by_hop == request.hop_by_hop
    assert message.auth_application_id == request.application_id
    assert type(answer).from_message(message) == answer
    return message


# --- Cx ---------------------------------------------------------------------------


def test_uar_uaa() -> None:
    uar = cx.UserAuthorizationRequest(
        "icscf.home1.net;1;1",
        ICSCF,
        "alice@home1.net",
        "sip:alice@home1.net",
        "home1.net",
        cx.UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
        uar_flags=1,
    )
    request = request_round_trip(uar)
    assert request.name == "UAR" and request.application_id == APP_CX
    uaa = cx.UserAuthorizationAnswer(
        "hss.home1.net",
        "home1.net",
        Result(DIAMETER_FIRST_REGISTRATION, True),
        server_capabilities=cx.ServerCapabilities((1,), (2, 3), ("sip:scscf.home1.net:6060",)),
    )
    answer = answer_round_trip(uaa, request)
    assert answer.experimental_result is not None
    assert answer.experimental_result.code == 2001
    assert uaa.selected_server_name == "sip:scscf.home1.net:6060"
    named = cx.UserAuthorizationAnswer(
        "hss.home1.net", "home1.net", Result(2002, True), server_name="sip:s2.home1.net"
    )
    answer_round_trip(named, request)
    assert named.selected_server_name == "sip:s2.home1.net"


def test_mar_maa_aka() -> None:
    mar = cx.MultimediaAuthRequest(
        "scscf.home1.net;1;2",
        SCSCF,
        "alice@home1.net",
        "sip:alice@home1.net",
        "sip:scscf.home1.net:6060",
        cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA),
        number_auth_items=2,
    )
    request = request_round_trip(mar)
    items = tuple(
        cx.SipAuthDataItem(
            cx.AUTH_SCHEME_AKA,
            item_number=n,
            authenticate=RAND + AUTN,
            authorization=bytes.fromhex("a54211d5e3ba50bf"),
            confidentiality_key=bytes(range(16)),
            integrity_key=bytes(range(16, 32)),
        )
        for n in (1, 2)
    )
    maa = cx.MultimediaAuthAnswer(
        "hss.home1.net",
        "home1.net",
        Result(DIAMETER_SUCCESS),
        "alice@home1.net",
        "sip:alice@home1.net",
        items,
    )
    answer = answer_round_trip(maa, request)
    assert answer.get_uint32(607, VENDOR_3GPP) == 2
    assert items[0].rand == RAND and items[0].autn == AUTN and items[0].auts is None


def test_mar_resync_carries_rand_and_auts() -> None:
    auts = bytes(range(14))
    mar = cx.MultimediaAuthRequest(
        "scscf.home1.net;1;3",
        SCSCF,
        "alice@home1.net",
        "sip:alice@home1.net",
        "sip:scscf.home1.net:6060",
        cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA, authorization=RAND + auts),
    )
    parsed = cx.MultimediaAuthRequest.from_message(request_round_trip(mar))
    assert parsed.auth_data_item.rand == RAND
    assert parsed.auth_data_item.auts == auts


def test_mar_maa_sip_digest() -> None:
    mar = cx.MultimediaAuthRequest(
        "scscf.home1.net;1;4",
        SCSCF,
        "bob@home1.net",
        "sip:bob@home1.net",
        "sip:scscf.home1.net:6060",
        cx.SipAuthDataItem(cx.AUTH_SCHEME_DIGEST),
    )
    request = request_round_trip(mar)
    digest = cx.SipDigestAuthenticate("home1.net", "0" * 32, "auth", "MD5")
    maa = cx.MultimediaAuthAnswer(
        "hss.home1.net",
        "home1.net",
        Result(DIAMETER_SUCCESS),
        "bob@home1.net",
        "sip:bob@home1.net",
        (cx.SipAuthDataItem(cx.AUTH_SCHEME_DIGEST, item_number=1, digest=digest),),
    )
    answer = answer_round_trip(maa, request)
    parsed = cx.MultimediaAuthAnswer.from_message(answer)
    assert parsed.items[0].digest == digest


def test_sar_saa_with_profile() -> None:
    sar = cx.ServerAssignmentRequest(
        "scscf.home1.net;1;5",
        SCSCF,
        "sip:scscf.home1.net:6060",
        cx.ServerAssignmentType.REGISTRATION,
        ("sip:alice@home1.net",),
        "alice@home1.net",
        user_data_already_available=False,
    )
    request = request_round_trip(sar)
    profile = cx.build_ims_subscription(sample_subscription())
    saa = cx.ServerAssignmentAnswer(
        "hss.home1.net", "home1.net", Result(DIAMETER_SUCCESS), "alice@home1.net", profile
    )
    answer_round_trip(saa, request)
    assert saa.subscription() == sample_subscription()


def test_lir_lia() -> None:
    lir = cx.LocationInfoRequest(
        "icscf.home1.net;1;6",
        ICSCF,
        "sip:alice@home1.net",
        originating_request=True,
        authorization_type=cx.UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
    )
    request = request_round_trip(lir)
    lia = cx.LocationInfoAnswer(
        "hss.home1.net", "home1.net", Result(DIAMETER_SUCCESS), "sip:scscf.home1.net:6060"
    )
    answer_round_trip(lia, request)
    refused = cx.LocationInfoAnswer("hss.home1.net", "home1.net", Result(5003, True))
    assert cx.LocationInfoAnswer.from_message(wire(refused.to_message(request))).result == Result(
        5003, True
    )


def test_rtr_rta() -> None:
    rtr = cx.RegistrationTerminationRequest(
        "hss.home1.net;1;7",
        HSS_TO_SCSCF,
        cx.DeregistrationReason(cx.ReasonCode.PERMANENT_TERMINATION, "operator"),
        "alice@home1.net",
        ("sip:alice@home1.net", "tel:+15551234"),
    )
    request = request_round_trip(rtr)
    assert request.destination_host == "scscf.home1.net"
    rta = cx.RegistrationTerminationAnswer("scscf.home1.net", "home1.net", Result(2001))
    answer_round_trip(rta, request)


def test_cx_parsers_reject_wrong_or_incomplete_messages() -> None:
    lir = cx.LocationInfoRequest("s;1", ICSCF, "sip:alice@home1.net").to_message()
    with pytest.raises(DiameterError):
        cx.UserAuthorizationRequest.from_message(lir)
    with pytest.raises(DiameterError):
        cx.LocationInfoAnswer.from_message(lir)  # a request, not an answer
    stripped = DiameterMessage(
        lir.command_code,
        lir.application_id,
        True,
        tuple(a for a in lir.avps if a.code != AVP_PUBLIC_IDENTITY),
    )
    with pytest.raises(DiameterError, match="missing"):
        cx.LocationInfoRequest.from_message(stripped)
    no_session = DiameterMessage(
        lir.command_code, lir.application_id, True, tuple(a for a in lir.avps if a.code != AVP_SESSION_ID)
    )
    with pytest.raises(DiameterError):
        cx.LocationInfoRequest.from_message(no_session)
    answer = DiameterMessage(302, APP_CX, False, ())
    with pytest.raises(DiameterError):
        cx.LocationInfoAnswer.from_message(answer)


# --- Sh ------------------------------------------------------------------------------


def test_udr_uda() -> None:
    udr = sh.UserDataRequest(
        "pna.home1.net;1;1",
        PNA,
        sh.UserIdentity("sip:alice@home1.net"),
        (sh.DataReference.IMS_USER_STATE, sh.DataReference.REPOSITORY_DATA),
        service_indications=(b"presence",),
        identity_sets=(sh.IdentitySet.ALL_IDENTITIES,),
        server_name="sip:ps.home1.net",
        requested_domain=1,
        current_location=0,
    )
    request = request_round_trip(udr)
    assert request.application_id == APP_SH and request.name == "UDR"
    data = sh.build_sh_data(sh.ShData(ims_user_state=sh.ImsUserState.REGISTERED))
    uda = sh.UserDataAnswer("hss.home1.net", "home1.net", Result(DIAMETER_SUCCESS), data)
    answer_round_trip(uda, request)
    assert uda.sh_data() == sh.ShData(ims_user_state=1)


def test_snr_sna() -> None:
    snr = sh.SubscribeNotificationsRequest(
        "pna.home1.net;1;2",
        PNA,
        sh.UserIdentity(msisdn=b"15551234"),
        sh.SubsReqType.SUBSCRIBE,
        (sh.DataReference.IMS_USER_STATE, sh.DataReference.S_CSCF_NAME),
        send_data_indication=True,
        expiry_time=1_800_000_000,
        user_name="alice@home1.net",
    )
    request = request_round_trip(snr)
    sna = sh.SubscribeNotificationsAnswer(
        "hss.home1.net",
        "home1.net",
        Result(DIAMETER_SUCCESS),
        sh.build_sh_data(sh.ShData(scscf_name="sip:scscf.home1.net:6060")),
        expiry_time=1_800_000_000,
    )
    answer_round_trip(sna, request)
    assert sna.sh_data() == sh.ShData(scscf_name="sip:scscf.home1.net:6060")


def test_expiry_time_beyond_2036() -> None:
    snr = sh.SubscribeNotificationsRequest(
        "pna.home1.net;1;3",
        PNA,
        sh.UserIdentity("sip:alice@home1.net"),
        sh.SubsReqType.UNSUBSCRIBE,
        (sh.DataReference.IMS_USER_STATE,),
        expiry_time=2_200_000_000,  # after the NTP era rollover
    )
    request_round_trip(snr)


def test_pnr_pna() -> None:
    data = sh.build_sh_data(sh.ShData(ims_user_state=sh.ImsUserState.NOT_REGISTERED))
    pnr = sh.PushNotificationRequest(
        "hss.home1.net;1;4", HSS_TO_PNA, sh.UserIdentity("sip:alice@home1.net"), data, "alice@home1.net"
    )
    request = request_round_trip(pnr)
    assert pnr.sh_data().ims_user_state == 0
    pna = sh.PushNotificationAnswer("pna.home1.net", "home1.net", Result(DIAMETER_SUCCESS))
    answer_round_trip(pna, request)


def test_sh_parsers_reject_incomplete_messages() -> None:
    with pytest.raises(DiameterError):
        sh.UserIdentity().to_avp()
    with pytest.raises(DiameterError):
        sh.UserDataRequest("s", PNA, sh.UserIdentity("sip:a@b"), ()).to_message()
    pnr = sh.PushNotificationRequest("s", HSS_TO_PNA, sh.UserIdentity("sip:a@b"), b"<Sh-Data/>")
    message = pnr.to_message()
    no_data = DiameterMessage(309, APP_SH, True, tuple(a for a in message.avps if a.code != 702))
    with pytest.raises(DiameterError):
        sh.PushNotificationRequest.from_message(no_data)
    with pytest.raises(DiameterError):
        sh.UserDataRequest.from_message(message)


# --- XML documents -------------------------------------------------------------------


def sample_subscription() -> cx.ImsSubscription:
    presence_ifc = cx.InitialFilterCriteria(
        priority=0,
        application_server=cx.ApplicationServer("sip:ps.home1.net:5070", 0, "info"),
        trigger_point=cx.TriggerPoint(
            True,
            (
                cx.ServicePointTrigger(groups=(0,), method="PUBLISH"),
                cx.ServicePointTrigger(groups=(0,), method="SUBSCRIBE"),
                cx.ServicePointTrigger(groups=(1,), header="Event", content="presence.*"),
                cx.ServicePointTrigger(groups=(2,), session_case=1, negated=True),
                cx.ServicePointTrigger(groups=(2, 3), request_uri="sip:.*@home1.net"),
            ),
        ),
        profile_part_indicator=0,
    )
    always = cx.InitialFilterCriteria(1, cx.ApplicationServer("sip:as.home1.net", 1))
    return cx.ImsSubscription(
        "alice@home1.net",
        (
            cx.ServiceProfile(
                (
                    cx.PublicIdentity("sip:alice@home1.net"),
                    cx.PublicIdentity("tel:+15551234", barred=True),
                ),
                (presence_ifc, always),
            ),
            cx.ServiceProfile((cx.PublicIdentity("sip:anon-1@home1.net", identity_type=0),)),
        ),
    )


def test_ims_subscription_round_trip() -> None:
    data = cx.build_ims_subscription(sample_subscription())
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert b"<Method>PUBLISH</Method>" in data
    assert b"<Header>Event</Header><Content>presence.*</Content>" in data
    assert cx.parse_ims_subscription(data) == sample_subscription()


def test_ims_subscription_accepts_identity_type_outside_extension() -> None:
    document = (
        b"<IMSSubscription><PrivateID>a@h</PrivateID><ServiceProfile><PublicIdentity>"
        b"<Identity>sip:a@h</Identity><IdentityType>1</IdentityType>"
        b"<BarringIndication>true</BarringIndication></PublicIdentity>"
        b"</ServiceProfile></IMSSubscription>"
    )
    parsed = cx.parse_ims_subscription(document)
    assert parsed.service_profiles[0].public_identities == (cx.PublicIdentity("sip:a@h", True, 1),)


@pytest.mark.parametrize(
    "document",
    [
        b"not xml",
        b"<Other/>",
        b"<IMSSubscription/>",
        b"<IMSSubscription><PrivateID>a</PrivateID></IMSSubscription>",
        b"<IMSSubscription><PrivateID>a</PrivateID><ServiceProfile/></IMSSubscription>",
        b"<IMSSubscription><PrivateID>a</PrivateID><ServiceProfile><PublicIdentity>"
        b"<Identity>sip:a@h</Identity><BarringIndication>maybe</BarringIndication>"
        b"</PublicIdentity></ServiceProfile></IMSSubscription>",
        b"<IMSSubscription><PrivateID>a</PrivateID><ServiceProfile><PublicIdentity>"
        b"<Identity>sip:a@h</Identity></PublicIdentity><InitialFilterCriteria>"
        b"<Priority>x</Priority></InitialFilterCriteria></ServiceProfile></IMSSubscription>",
        b'<?xml version="1.0"?><!DOCTYPE IMSSubscription [<!ENTITY e "x">]>'
        b"<IMSSubscription><PrivateID>&e;</PrivateID></IMSSubscription>",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<IMSSubscription><PrivateID>&x;</PrivateID></IMSSubscription>",
    ],
)
def test_ims_subscription_rejects_bad_documents(document: bytes) -> None:
    with pytest.raises(DiameterError):
        cx.parse_ims_subscription(document)


def test_xml_size_cap() -> None:
    with pytest.raises(DiameterError, match="larger"):
        cx.parse_xml(b"<a>" + b"x" * cx.MAX_XML_SIZE + b"</a>", "doc")


def test_sh_data_round_trip() -> None:
    data = sh.ShData(
        public_identities=("sip:alice@home1.net", "tel:+15551234"),
        msisdns=("15551234",),
        repository_data=(sh.RepositoryData("presence", 3, "<note>hi</note>"),),
        scscf_name="sip:scscf.home1.net:6060",
        ifcs=sample_subscription().service_profiles[0].ifcs,
        ims_user_state=sh.ImsUserState.REGISTERED,
        cs_location=sh.LocationInformation(vlr_number="15550000", cell_global_id="0a0b", age_of_location_information=5),
        ps_location=sh.LocationInformation(sgsn_number="15559999", routing_area_id="0102"),
        cs_user_state=2,
        ps_user_state=4,
    )
    document = sh.build_sh_data(data)
    assert b"<IMSUserState>1</IMSUserState>" in document
    assert b"<VLRNumber>15550000</VLRNumber>" in document
    assert sh.parse_sh_data(document) == data


def test_sh_data_rejects_fields_of_the_other_domain() -> None:
    with pytest.raises(DiameterError):
        sh.build_sh_data(sh.ShData(cs_location=sh.LocationInformation(sgsn_number="1")))


def test_sh_data_keeps_unknown_elements_aside() -> None:
    parsed = sh.parse_sh_data(b"<Sh-Data><CSRN>1</CSRN><PSUserState>5</PSUserState></Sh-Data>")
    assert parsed.extra == ("CSRN",)
    assert parsed.ps_user_state == 5


@pytest.mark.parametrize(
    "document",
    [
        b"<Sh-Data><Sh-IMS-Data><IMSUserState>on</IMSUserState></Sh-IMS-Data></Sh-Data>",
        b"<Sh-Data><RepositoryData><ServiceData/></RepositoryData></Sh-Data>",
        b"<Shdata/>",
        b"<Sh-Data>",
    ],
)
def test_sh_data_rejects_bad_documents(document: bytes) -> None:
    with pytest.raises(DiameterError):
        sh.parse_sh_data(document)
