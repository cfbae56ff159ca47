"""The sans-IO HSS: Cx and Sh answers, registration state, PNR and RTR actions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from presence_ims.diameter import cx, sh
from presence_ims.diameter.base import (
    DIAMETER_AUTHENTICATION_REJECTED,
    DIAMETER_AUTHORIZATION_REJECTED,
    DIAMETER_COMMAND_UNSUPPORTED,
    DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED,
    DIAMETER_ERROR_IDENTITIES_DONT_MATCH,
    DIAMETER_ERROR_IDENTITY_NOT_REGISTERED,
    DIAMETER_ERROR_IN_ASSIGNMENT_TYPE,
    DIAMETER_ERROR_SUBS_DATA_ABSENT,
    DIAMETER_ERROR_USER_DATA_CANNOT_BE_NOTIFIED,
    DIAMETER_ERROR_USER_DATA_CANNOT_BE_READ,
    DIAMETER_ERROR_USER_UNKNOWN,
    DIAMETER_FIRST_REGISTRATION,
    DIAMETER_MISSING_AVP,
    DIAMETER_SUBSEQUENT_REGISTRATION,
    DIAMETER_SUCCESS,
    DIAMETER_UNABLE_TO_COMPLY,
    DIAMETER_UNREGISTERED_SERVICE,
)
from presence_ims.diameter.codec import (
    APP_CX,
    AVP_USER_NAME,
    DiameterError,
    DiameterMessage,
    Result,
    decode,
    encode,
)
from presence_ims.nodes.hss import (
    HssConfig,
    HssError,
    HssLogic,
    IfcConfig,
    MilenageVectorSource,
    SendRequest,
    SubscriberConfig,
)
from presence_ims.security.aka import AkaSyncFailure, SqnTracker, ue_authenticate
from presence_ims.security.milenage import Milenage

SCSCF_NAME = "sip:scscf.home1.net:6060"
PS = "sip:ps.home1.net:5070"
K1 = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP1 = "cdc202d5123e20f62b6d676ac72cb318"
NOW = 1_700_000_000.0

ALICE = SubscriberConfig(
    impi="alice@home1.net",
    impus=(("sip:alice@home1.net", "tel:+15551234"), ("sip:alice.work@home1.net",)),
    anonymous_impu="sip:anon-7f3a@home1.net",
    msisdn="15551234",
    k=K1,
    op=OP1,
    digest_password="alicepw",
    auth_schemes=("aka", "digest"),
    ifc=(IfcConfig(priority=0, server_name=PS),),
)
BOB = SubscriberConfig(
    impi="bob@home1.net",
    impus=(("sip:bob@home1.net",),),
    digest_password="bobpw",
    auth_schemes=("digest",),
)
CAROL = SubscriberConfig(
    impi="carol@home1.net", impus=(("sip:carol@home1.net",),), k=K1, opc=K1, barred=True
)
DAVE = SubscriberConfig(
    impi="dave@home1.net",
    impus=(("sip:dave@home1.net",),),
    k=K1,
    op=OP1,
    unregistered_services=False,
)
CONFIG = HssConfig(subscribers=(ALICE, BOB, CAROL, DAVE), scscf_name=SCSCF_NAME)

SCSCF = cx.Routing("scscf.home1.net", "home1.net", "home1.net")
ICSCF = cx.Routing("icscf.home1.net", "home1.net", "home1.net")
PNA = cx.Routing("pna.home1.net", "home1.net", "home1.net")


@dataclass(frozen=True)
class FakeVector:
    rand: bytes
    autn: bytes
    xres: bytes
    ck: bytes
    ik: bytes


class FakeVectors:
    """Numbered vectors; AUTS b"ok" * 7 resynchronises to SQN 1000."""

    def __init__(self) -> None:
        self.issued = 0
        self.resyncs: list[tuple[str, bytes, bytes]] = []

    def vector(self, sub: SubscriberConfig, now: float) -> FakeVector:
        self.issued += 1
        n = self.issued
        return FakeVector(bytes([n]) * 16, bytes([n + 100]) * 16, bytes([n]) * 8, b"c" * 16, b"i" * 16)

    def resync(self, sub: SubscriberConfig, rand: bytes, auts: bytes) -> int:
        self.resyncs.append((sub.impi, rand, auts))
        if auts != b"ok" * 7:
            raise HssError("MAC-S does not verify")
        return 1000


@pytest.fixture
def vectors() -> FakeVectors:
    return FakeVectors()


@pytest.fixture
def hss(vectors: FakeVectors) -> HssLogic:
    return HssLogic(CONFIG, vectors, session_high=1)


def roundtrip(logic: HssLogic, request: DiameterMessage, now: float = NOW, peer: str | None = None) -> tuple[DiameterMessage, list[SendRequest]]:
    """Send ``request`` through the bytes, into the logic, and the answer back."""
    answer, actions = logic.handle(decode(encode(request.with_ids(9, 10))), now, peer)
    decoded = decode(encode(answer))
    assert decoded.hop_by_hop == 9 and decoded.session_id == request.session_id
    return decoded, actions


def uar(impi: str, impu: str, kind: int = cx.UserAuthorizationType.REGISTRATION) -> DiameterMessage:
    return cx.UserAuthorizationRequest("icscf;1;1", ICSCF, impi, impu, "home1.net", kind).to_message()


def mar(impi: str, impu: str, item: cx.SipAuthDataItem, n: int = 1) -> DiameterMessage:
    return cx.MultimediaAuthRequest("scscf;1;2", SCSCF, impi, impu, SCSCF_NAME, item, n).to_message()


def sar(
    impu: str | None,
    kind: int,
    impi: str | None = "alice@home1.net",
    server: str = SCSCF_NAME,
    already: bool = False,
) -> DiameterMessage:
    impus = (impu,) if impu else ()
    return cx.ServerAssignmentRequest("scscf;1;3", SCSCF, server, kind, impus, impi, already).to_message()


def lir(impu: str) -> DiameterMessage:
    return cx.LocationInfoRequest("icscf;1;4", ICSCF, impu).to_message()


def udr(impu: str, *refs: int, **kwargs: object) -> DiameterMessage:
    return sh.UserDataRequest("pna;1;5", PNA, sh.UserIdentity(impu), refs, **kwargs).to_message()  # type: ignore[arg-type]


def snr(impu: str, *refs: int, **kwargs: object) -> DiameterMessage:
    subscribe = kwargs.pop("subs_req_type", sh.SubsReqType.SUBSCRIBE)
    return sh.SubscribeNotificationsRequest(
        "pna;1;6", PNA, sh.UserIdentity(impu), subscribe, refs, **kwargs  # type: ignore[arg-type]
    ).to_message()


def register(logic: HssLogic, impu: str = "sip:alice@home1.net") -> list[SendRequest]:
    answer, actions = roundtrip(logic, sar(impu, cx.ServerAssignmentType.REGISTRATION))
    assert answer.result_code == DIAMETER_SUCCESS
    return actions


def result(message: DiameterMessage) -> Result:
    return Result.of(message)


# --- UAR ---------------------------------------------------------------------------


def test_uar_first_registration_offers_the_scscf(hss: HssLogic) -> None:
    answer, actions = roundtrip(hss, uar("alice@home1.net", "sip:alice@home1.net"))
    uaa = cx.UserAuthorizationAnswer.from_message(answer)
    assert uaa.result == Result(DIAMETER_FIRST_REGISTRATION, True)
    assert uaa.server_name is None
    assert uaa.selected_server_name == SCSCF_NAME
    assert actions == []


def test_uar_subsequent_registration_names_the_assigned_scscf(hss: HssLogic) -> None:
    register(hss)
    answer, _ = roundtrip(hss, uar("alice@home1.net", "tel:+15551234"))  # same implicit set
    uaa = cx.UserAuthorizationAnswer.from_message(answer)
    assert uaa.result == Result(DIAMETER_SUCCESS and DIAMETER_SUBSEQUENT_REGISTRATION, True)
    assert uaa.server_name == SCSCF_NAME


@pytest.mark.parametrize(
    ("impi", "impu", "expected"),
    [
        ("nobody@home1.net", "sip:alice@home1.net", Result(DIAMETER_ERROR_USER_UNKNOWN, True)),
        ("alice@home1.net", "sip:nobody@home1.net", Result(DIAMETER_ERROR_USER_UNKNOWN, True)),
        ("alice@home1.net", "sip:bob@home1.net", Result(DIAMETER_ERROR_IDENTITIES_DONT_MATCH, True)),
        ("carol@home1.net", "sip:carol@home1.net", Result(DIAMETER_AUTHORIZATION_REJECTED)),
    ],
)
def test_uar_refusals(hss: HssLogic, impi: str, impu: str, expected: Result) -> None:
    answer, _ = roundtrip(hss, uar(impi, impu))
    assert result(answer) == expected
    assert answer.server_name is None


def test_uar_deregistration(hss: HssLogic) -> None:
    kind = cx.UserAuthorizationType.DE_REGISTRATION
    answer, _ = roundtrip(hss, uar("alice@home1.net", "sip:alice@home1.net", kind))
    assert result(answer) == Result(DIAMETER_ERROR_IDENTITY_NOT_REGISTERED, True)
    register(hss)
    answer, _ = roundtrip(hss, uar("alice@home1.net", "sip:alice@home1.net", kind))
    assert result(answer) == Result(DIAMETER_SUCCESS)
    assert answer.server_name == SCSCF_NAME


def test_uar_registration_and_capabilities(hss: HssLogic) -> None:
    kind = cx.UserAuthorizationType.REGISTRATION_AND_CAPABILITIES
    answer, _ = roundtrip(hss, uar("alice@home1.net", "sip:alice@home1.net", kind))
    uaa = cx.UserAuthorizationAnswer.from_message(answer)
    assert uaa.result == Result(DIAMETER_FIRST_REGISTRATION, True)
    assert uaa.server_capabilities == cx.ServerCapabilities(server_names=(SCSCF_NAME,))


# --- MAR ---------------------------------------------------------------------------


def test_mar_aka_returns_vectors(hss: HssLogic, vectors: FakeVectors) -> None:
    item = cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA)
    answer, _ = roundtrip(hss, mar("alice@home1.net", "sip:alice@home1.net", item, n=3))
    maa = cx.MultimediaAuthAnswer.from_message(answer)
    assert maa.result == Result(DIAMETER_SUCCESS)
    assert maa.user_name == "alice@home1.net"
    assert [i.item_number for i in maa.items] == [1, 2, 3]
    first = maa.items[0]
    assert first.scheme == cx.AUTH_SCHEME_AKA
    assert first.authenticate == b"\x01" * 16 + bytes([101]) * 16
    assert first.authorization == b"\x01" * 8
    assert (first.confidentiality_key, first.integrity_key) == (b"c" * 16, b"i" * 16)
    assert vectors.issued == 3
    pending = hss.registration("tel:+15551234")
    assert pending.state == sh.ImsUserState.AUTHENTICATION_PENDING
    assert pending.server_name == SCSCF_NAME


def test_mar_caps_the_number_of_vectors(hss: HssLogic, vectors: FakeVectors) -> None:
    item = cx.SipAuthDataItem(cx.AUTH_SCHEME_UNKNOWN)  # alice's first scheme is AKA
    answer, _ = roundtrip(hss, mar("alice@home1.net", "sip:alice@home1.net", item, n=50))
    assert len(cx.MultimediaAuthAnswer.from_message(answer).items) == CONFIG.max_auth_items


def test_mar_resync(hss: HssLogic, vectors: FakeVectors) -> None:
    rand = bytes(range(16))
    good = cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA, authorization=rand + b"ok" * 7)
    answer, _ = roundtrip(hss, mar("alice@home1.net", "sip:alice@home1.net", good))
    assert result(answer) == Result(DIAMETER_SUCCESS)
    assert vectors.resyncs == [("alice@home1.net", rand, b"ok" * 7)]
    bad = cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA, authorization=rand + b"no" * 7)
    answer, _ = roundtrip(hss, mar("alice@home1.net", "sip:alice@home1.net", bad))
    assert result(answer) == Result(DIAMETER_AUTHENTICATION_REJECTED)
    short = cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA, authorization=rand)
    answer, _ = roundtrip(hss, mar("alice@home1.net", "sip:alice@home1.net", short))
    assert answer.result_code == 5004


def test_mar_sip_digest_returns_ha1(hss: HssLogic) -> None:
    item = cx.SipAuthDataItem(cx.AUTH_SCHEME_DIGEST)
    answer, _ = roundtrip(hss, mar("bob@home1.net", "sip:bob@home1.net", item))
    maa = cx.MultimediaAuthAnswer.from_message(answer)
    assert maa.result == Result(DIAMETER_SUCCESS)
    (only,) = maa.items
    assert only.scheme == cx.AUTH_SCHEME_DIGEST
    expected = hashlib.md5(b"bob@home1.net:home1.net:bobpw").hexdigest()
    assert only.digest == cx.SipDigestAuthenticate("home1.net", expected, "auth", "MD5")
    assert only.authenticate is None and only.integrity_key is None


def test_mar_scheme_not_allowed(hss: HssLogic) -> None:
    aka = cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA)
    answer, _ = roundtrip(hss, mar("bob@home1.net", "sip:bob@home1.net", aka))
    assert result(answer) == Result(DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED, True)
    odd = cx.SipAuthDataItem("NASS-Bundled")
    answer, _ = roundtrip(hss, mar("alice@home1.net", "sip:alice@home1.net", odd))
    assert result(answer) == Result(DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED, True)


def test_mar_unknown_and_mismatched(hss: HssLogic) -> None:
    item = cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA)
    answer, _ = roundtrip(hss, mar("eve@home1.net", "sip:eve@home1.net", item))
    assert result(answer) == Result(DIAMETER_ERROR_USER_UNKNOWN, True)
    answer, _ = roundtrip(hss, mar("dave@home1.net", "sip:alice@home1.net", item))
    assert result(answer) == Result(DIAMETER_ERROR_IDENTITIES_DONT_MATCH, True)


def test_mar_with_milenage_vectors_the_ue_accepts(tmp_path: Path) -> None:
    """The real vector source against the UE side of AKA, resync included."""
    store = tmp_path / "sqn.json"
    source = MilenageVectorSource(CONFIG.subscribers, store, random_bytes=lambda n: b"\x5a" * n)
    logic = HssLogic(CONFIG, source)
    milenage = Milenage(bytes.fromhex(K1), op=bytes.fromhex(OP1))
    ue = SqnTracker()
    item = cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA)
    answer, _ = roundtrip(logic, mar("alice@home1.net", "sip:alice@home1.net", item))
    vector = cx.MultimediaAuthAnswer.from_message(answer).items[0]
    assert vector.rand is not None and vector.autn is not None
    accepted = ue_authenticate(milenage, vector.rand, vector.autn, ue)
    assert accepted.res == vector.authorization
    assert (accepted.ck, accepted.ik) == (vector.confidentiality_key, vector.integrity_key)
    assert json.loads(store.read_text()) ["alice@home1.net"] == accepted.sqn

    # The UE has moved far ahead (another network): the next vector is stale.
    ue.accept(accepted.sqn + (1000 << 5))
    answer, _ = roundtrip(logic, mar("alice@home1.net", "sip:alice@home1.net", item))
    stale = cx.MultimediaAuthAnswer.from_message(answer).items[0]
    assert stale.rand is not None and stale.autn is not None
    with pytest.raises(AkaSyncFailure) as failure:
        ue_authenticate(milenage, stale.rand, stale.autn, ue)
    resync = cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA, authorization=stale.rand + failure.value.auts)
    answer, _ = roundtrip(logic, mar("alice@home1.net", "sip:alice@home1.net", resync))
    fresh = cx.MultimediaAuthAnswer.from_message(answer).items[0]
    assert fresh.rand is not None and fresh.autn is not None
    assert ue_authenticate(milenage, fresh.rand, fresh.autn, ue).res == fresh.authorization

    # A restart continues from the stored SQN.
    again = MilenageVectorSource(CONFIG.subscribers, store)
    assert again.sqn("alice@home1.net") == source.sqn("alice@home1.net") > accepted.sqn
    # A forged AUTS is refused.
    forged = cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA, authorization=stale.rand + b"\x00" * 14)
    answer, _ = roundtrip(logic, mar("alice@home1.net", "sip:alice@home1.net", forged))
    assert result(answer) == Result(DIAMETER_AUTHENTICATION_REJECTED)


def test_vector_source_rejects_a_corrupt_store(tmp_path: Path) -> None:
    store = tmp_path / "sqn.json"
    store.write_text("[1, 2")
    with pytest.raises(HssError):
        MilenageVectorSource(CONFIG.subscribers, store)


# --- SAR ---------------------------------------------------------------------------


def test_sar_registration_returns_the_profile_with_the_presence_ifc(hss: HssLogic) -> None:
    answer, _ = roundtrip(hss, sar("sip:alice@home1.net", cx.ServerAssignmentType.REGISTRATION))
    saa = cx.ServerAssignmentAnswer.from_message(answer)
    assert saa.result == Result(DIAMETER_SUCCESS)
    assert saa.user_name == "alice@home1.net"
    profile = saa.subscription()
    assert profile is not None and profile.private_id == "alice@home1.net"
    (service,) = profile.service_profiles
    assert [p.identity for p in service.public_identities] == ["sip:alice@home1.net", "tel:+15551234"]
    (ifc,) = service.ifcs
    assert ifc.application_server == cx.ApplicationServer(PS, 0)
    assert ifc.trigger_point is not None and ifc.trigger_point.cnf
    spts = ifc.trigger_point.spts
    assert {s.method for s in spts if s.method} == {"PUBLISH", "SUBSCRIBE"}
    assert [(s.header, s.content) for s in spts if s.header] == [("Event", "presence.*")]
    for impu in ("sip:alice@home1.net", "tel:+15551234"):
        reg = hss.registration(impu)
        assert reg.state == sh.ImsUserState.REGISTERED
        assert (reg.server_name, reg.scscf_host) == (SCSCF_NAME, "scscf.home1.net")
    assert hss.registration("sip:alice.work@home1.net").state == sh.ImsUserState.NOT_REGISTERED


def test_sar_without_user_data_when_already_available(hss: HssLogic) -> None:
    kind = cx.ServerAssignmentType.RE_REGISTRATION
    answer, _ = roundtrip(hss, sar("sip:alice@home1.net", kind, already=True))
    assert result(answer) == Result(DIAMETER_SUCCESS)
    assert answer.cx_user_data is None


def test_sar_unregistered_user_then_deregistration(hss: HssLogic) -> None:
    answer, _ = roundtrip(hss, sar("sip:alice@home1.net", cx.ServerAssignmentType.UNREGISTERED_USER, impi=None))
    assert answer.cx_user_data is not None
    assert hss.registration("sip:alice@home1.net").state == sh.ImsUserState.REGISTERED_UNREG_SERVICES
    answer, _ = roundtrip(hss, sar(None, cx.ServerAssignmentType.USER_DEREGISTRATION))
    assert result(answer) == Result(DIAMETER_SUCCESS) and answer.cx_user_data is None
    assert hss.registration("sip:alice@home1.net").state == sh.ImsUserState.NOT_REGISTERED
    assert hss.registration("sip:alice@home1.net").server_name is None


def test_sar_store_server_name_and_auth_failure(hss: HssLogic) -> None:
    register(hss)
    kind = cx.ServerAssignmentType.USER_DEREGISTRATION_STORE_SERVER_NAME
    roundtrip(hss, sar("sip:alice@home1.net", kind))
    kept = hss.registration("sip:alice@home1.net")
    assert (kept.state, kept.server_name) == (sh.ImsUserState.NOT_REGISTERED, SCSCF_NAME)
    roundtrip(hss, mar("dave@home1.net", "sip:dave@home1.net", cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA)))
    assert hss.registration("sip:dave@home1.net").state == sh.ImsUserState.AUTHENTICATION_PENDING
    roundtrip(hss, sar("sip:dave@home1.net", cx.ServerAssignmentType.AUTHENTICATION_FAILURE, "dave@home1.net"))
    assert hss.registration("sip:dave@home1.net").state == sh.ImsUserState.NOT_REGISTERED


def test_sar_refusals(hss: HssLogic) -> None:
    kind = cx.ServerAssignmentType.REGISTRATION
    answer, _ = roundtrip(hss, sar("sip:nobody@home1.net", kind))
    assert result(answer) == Result(DIAMETER_ERROR_USER_UNKNOWN, True)
    answer, _ = roundtrip(hss, sar("sip:bob@home1.net", kind))
    assert result(answer) == Result(DIAMETER_ERROR_IDENTITIES_DONT_MATCH, True)
    answer, _ = roundtrip(hss, sar("sip:alice@home1.net", kind, impi=None))
    assert result(answer) == Result(DIAMETER_MISSING_AVP)
    answer, _ = roundtrip(hss, sar("sip:alice@home1.net", 42))
    assert result(answer) == Result(DIAMETER_ERROR_IN_ASSIGNMENT_TYPE, True)
    register(hss)
    answer, _ = roundtrip(
        hss, sar("sip:alice@home1.net", cx.ServerAssignmentType.NO_ASSIGNMENT, server="sip:other")
    )
    assert result(answer) == Result(DIAMETER_UNABLE_TO_COMPLY)


# --- LIR ---------------------------------------------------------------------------


def test_lir_registered(hss: HssLogic) -> None:
    register(hss)
    answer, _ = roundtrip(hss, lir("tel:+15551234"))
    lia = cx.LocationInfoAnswer.from_message(answer)
    assert lia.result == Result(DIAMETER_SUCCESS)
    assert lia.server_name == SCSCF_NAME


def test_lir_unregistered_with_and_without_unregistered_services(hss: HssLogic) -> None:
    answer, _ = roundtrip(hss, lir("sip:alice@home1.net"))
    lia = cx.LocationInfoAnswer.from_message(answer)
    assert lia.result == Result(DIAMETER_UNREGISTERED_SERVICE, True)
    assert lia.server_capabilities == cx.ServerCapabilities(server_names=(SCSCF_NAME,))
    answer, _ = roundtrip(hss, lir("sip:dave@home1.net"))
    assert result(answer) == Result(DIAMETER_ERROR_IDENTITY_NOT_REGISTERED, True)
    assert answer.server_name is None


def test_lir_unknown(hss: HssLogic) -> None:
    answer, _ = roundtrip(hss, lir("sip:nobody@home1.net"))
    assert result(answer) == Result(DIAMETER_ERROR_USER_UNKNOWN, True)


# --- Sh: UDR -------------------------------------------------------------------------


def sh_data(answer: DiameterMessage) -> sh.ShData:
    data = answer.sh_user_data
    assert data is not None
    return sh.parse_sh_data(data)


def test_udr_user_state_and_scscf_name(hss: HssLogic) -> None:
    refs = (sh.DataReference.IMS_USER_STATE, sh.DataReference.S_CSCF_NAME)
    answer, _ = roundtrip(hss, udr("sip:alice@home1.net", *refs))
    assert result(answer) == Result(DIAMETER_SUCCESS)
    assert sh_data(answer) == sh.ShData(ims_user_state=sh.ImsUserState.NOT_REGISTERED)
    register(hss)
    answer, _ = roundtrip(hss, udr("sip:alice@home1.net", *refs))
    assert sh_data(answer) == sh.ShData(scscf_name=SCSCF_NAME, ims_user_state=sh.ImsUserState.REGISTERED)


def test_udr_public_identities_never_link_the_anonymous_impu(hss: HssLogic) -> None:
    ref = sh.DataReference.IMS_PUBLIC_IDENTITY
    answer, _ = roundtrip(hss, udr("sip:alice@home1.net", ref))
    identities = sh_data(answer).public_identities
    assert identities == ("sip:alice@home1.net", "tel:+15551234", "sip:alice.work@home1.net")
    answer, _ = roundtrip(hss, udr("sip:anon-7f3a@home1.net", ref))
    assert sh_data(answer).public_identities == ("sip:anon-7f3a@home1.net",)
    implicit = (sh.IdentitySet.IMPLICIT_IDENTITIES,)
    answer, _ = roundtrip(hss, udr("tel:+15551234", ref, identity_sets=implicit))
    assert sh_data(answer).public_identities == ("sip:alice@home1.net", "tel:+15551234")


def test_udr_by_msisdn_and_ifcs(hss: HssLogic) -> None:
    message = sh.UserDataRequest(
        "pna;1;7",
        PNA,
        sh.UserIdentity(msisdn=b"15551234"),
        (sh.DataReference.MSISDN, sh.DataReference.INITIAL_FILTER_CRITERIA),
        server_name=PS,
    ).to_message()
    answer, _ = roundtrip(hss, message)
    data = sh_data(answer)
    assert data.msisdns == ("15551234",)
    assert [i.application_server.server_name for i in data.ifcs] == [PS]


def test_udr_refusals(hss: HssLogic) -> None:
    answer, _ = roundtrip(hss, udr("sip:nobody@home1.net", sh.DataReference.IMS_USER_STATE))
    assert result(answer) == Result(DIAMETER_ERROR_USER_UNKNOWN, True)
    answer, _ = roundtrip(hss, udr("sip:alice@home1.net", sh.DataReference.CHARGING_INFORMATION))
    assert result(answer) == Result(DIAMETER_ERROR_USER_DATA_CANNOT_BE_READ, True)
    answer, _ = roundtrip(hss, udr("sip:alice@home1.net", sh.DataReference.REPOSITORY_DATA))
    assert result(answer) == Result(DIAMETER_MISSING_AVP)


def test_sh_clients_can_be_restricted(vectors: FakeVectors) -> None:
    config = CONFIG.model_copy(update={"sh_allowed_hosts": ("pna.home1.net",)})
    logic = HssLogic(config, vectors)
    message = udr("sip:alice@home1.net", sh.DataReference.IMS_USER_STATE)
    answer, _ = roundtrip(logic, message, peer="as.evil.net")
    assert result(answer) == Result(DIAMETER_ERROR_USER_DATA_CANNOT_BE_READ, True)
    answer, _ = roundtrip(logic, snr("sip:alice@home1.net", sh.DataReference.IMS_USER_STATE), peer="as.evil.net")
    assert result(answer) == Result(DIAMETER_ERROR_USER_DATA_CANNOT_BE_NOTIFIED, True)
    answer, _ = roundtrip(logic, message, peer="pna.home1.net")
    assert result(answer) == Result(DIAMETER_SUCCESS)


# --- Sh: SNR and PNR -----------------------------------------------------------------


def pnr_of(action: SendRequest) -> sh.PushNotificationRequest:
    assert action.interface == "Sh"
    return sh.PushNotificationRequest.from_message(decode(encode(action.message)))


def test_snr_then_registration_pushes_the_new_state(hss: HssLogic) -> None:
    refs = (sh.DataReference.IMS_USER_STATE, sh.DataReference.S_CSCF_NAME)
    answer, _ = roundtrip(hss, snr("sip:alice@home1.net", *refs, send_data_indication=True))
    sna = sh.SubscribeNotificationsAnswer.from_message(answer)
    assert sna.result == Result(DIAMETER_SUCCESS)
    assert sna.expiry_time == int(NOW) + CONFIG.sh_max_expiry
    assert sna.sh_data() == sh.ShData(ims_user_state=sh.ImsUserState.NOT_REGISTERED)
    actions = register(hss)
    (action,) = actions
    assert action.peer == "pna.home1.net"
    pnr = pnr_of(action)
    assert pnr.routing.destination_host == "pna.home1.net"
    assert pnr.routing.origin_host == CONFIG.origin_host
    assert pnr.user_identity.public_identity == "sip:alice@home1.net"
    assert pnr.sh_data() == sh.ShData(scscf_name=SCSCF_NAME, ims_user_state=sh.ImsUserState.REGISTERED)
    # A re-registration changes nothing: no PNR.
    assert register(hss) == []
    # De-registration pushes NOT_REGISTERED.
    _, actions = roundtrip(hss, sar("sip:alice@home1.net", cx.ServerAssignmentType.USER_DEREGISTRATION))
    (action,) = actions
    assert pnr_of(action).sh_data() == sh.ShData(ims_user_state=sh.ImsUserState.NOT_REGISTERED)


def test_unsubscribe_and_expiry_stop_notifications(hss: HssLogic) -> None:
    ref = sh.DataReference.IMS_USER_STATE
    roundtrip(hss, snr("sip:alice@home1.net", ref))
    roundtrip(hss, snr("sip:alice@home1.net", ref, subs_req_type=sh.SubsReqType.UNSUBSCRIBE))
    assert hss.subscriptions() == ()
    assert register(hss) == []
    roundtrip(hss, sar(None, cx.ServerAssignmentType.USER_DEREGISTRATION))
    answer, _ = roundtrip(hss, snr("sip:alice@home1.net", ref, expiry_time=int(NOW) + 60))
    assert sh.SubscribeNotificationsAnswer.from_message(answer).expiry_time == int(NOW) + 60
    assert len(hss.subscriptions(NOW)) == 1
    _, actions = roundtrip(hss, sar("sip:alice@home1.net", cx.ServerAssignmentType.REGISTRATION), now=NOW + 61)
    assert actions == []
    assert hss.subscriptions() == ()


def test_snr_refusals(hss: HssLogic) -> None:
    answer, _ = roundtrip(hss, snr("sip:nobody@home1.net", sh.DataReference.IMS_USER_STATE))
    assert result(answer) == Result(DIAMETER_ERROR_USER_UNKNOWN, True)
    answer, _ = roundtrip(hss, snr("sip:alice@home1.net", sh.DataReference.MSISDN))
    assert result(answer) == Result(DIAMETER_ERROR_USER_DATA_CANNOT_BE_NOTIFIED, True)
    repo = sh.DataReference.REPOSITORY_DATA
    answer, _ = roundtrip(hss, snr("sip:alice@home1.net", repo, service_indications=(b"presence",)))
    assert result(answer) == Result(DIAMETER_ERROR_SUBS_DATA_ABSENT, True)
    answer, _ = roundtrip(hss, snr("sip:alice@home1.net", repo))
    assert result(answer) == Result(DIAMETER_MISSING_AVP)


def test_update_user_data_pushes_to_subscribers(hss: HssLogic) -> None:
    location = sh.DataReference.LOCATION_INFORMATION
    roundtrip(hss, snr("sip:alice@home1.net", location, sh.DataReference.USER_STATE))
    cell = sh.LocationInformation(cell_global_id="00f1100001", vlr_number="15550000")
    (action,) = hss.update_user_data("sip:alice@home1.net", NOW, cs_location=cell, cs_user_state=2)
    assert pnr_of(action).sh_data() == sh.ShData(cs_location=cell, cs_user_state=2)
    # Nobody subscribed to bob: nothing to send.
    assert hss.update_user_data("sip:bob@home1.net", NOW, ps_user_state=4) == []
    with pytest.raises(HssError):
        hss.update_user_data("sip:nobody@home1.net", NOW, ps_user_state=4)


def test_repository_data_sequence_and_notification(hss: HssLogic) -> None:
    assert hss.update_user_data("sip:alice@home1.net", NOW, service_indication="presence", service_data="a") == []
    repo = sh.DataReference.REPOSITORY_DATA
    answer, _ = roundtrip(hss, snr("sip:alice@home1.net", repo, service_indications=(b"presence",)))
    assert result(answer) == Result(DIAMETER_SUCCESS)
    (action,) = hss.update_user_data("sip:alice@home1.net", NOW, service_indication="presence", service_data="b")
    assert pnr_of(action).sh_data().repository_data == (sh.RepositoryData("presence", 1, "b"),)
    assert hss.update_user_data("sip:alice@home1.net", NOW, service_indication="other", service_data="c") == []
    answer, _ = roundtrip(hss, udr("sip:alice@home1.net", repo, service_indications=(b"presence", b"none")))
    assert sh_data(answer).repository_data == (sh.RepositoryData("presence", 1, "b"),)


# --- RTR --------------------------------------------------------------------------------


def test_deregister_sends_rtr_to_the_serving_scscf(hss: HssLogic) -> None:
    register(hss)
    roundtrip(hss, snr("sip:alice@home1.net", sh.DataReference.IMS_USER_STATE))
    actions = hss.deregister("alice@home1.net", NOW, info="contract ended")
    rtr_action, pnr_action = actions
    assert (rtr_action.peer, rtr_action.interface) == ("scscf.home1.net", "Cx")
    rtr = cx.RegistrationTerminationRequest.from_message(decode(encode(rtr_action.message)))
    assert rtr.routing.destination_host == "scscf.home1.net"
    assert rtr.user_name == "alice@home1.net"
    assert rtr.public_identities == ("sip:alice@home1.net", "tel:+15551234")
    assert rtr.reason == cx.DeregistrationReason(cx.ReasonCode.PERMANENT_TERMINATION, "contract ended")
    assert hss.registration("sip:alice@home1.net").state == sh.ImsUserState.NOT_REGISTERED
    assert pnr_of(pnr_action).sh_data().ims_user_state == sh.ImsUserState.NOT_REGISTERED
    assert rtr.session_id != pnr_of(pnr_action).session_id
    assert hss.deregister("alice@home1.net", NOW) == []
    with pytest.raises(HssError):
        hss.deregister("nobody@home1.net", NOW)


# --- robustness ----------------------------------------------------------------------------


def test_unsupported_and_malformed_requests_get_answers(hss: HssLogic) -> None:
    ppr = DiameterMessage(305, APP_CX, True, uar("alice@home1.net", "sip:alice@home1.net").avps)
    answer, _ = roundtrip(hss, ppr)
    assert answer.result_code == DIAMETER_COMMAND_UNSUPPORTED and answer.error
    broken = uar("alice@home1.net", "sip:alice@home1.net")
    broken = DiameterMessage(300, APP_CX, True, tuple(a for a in broken.avps if a.code != AVP_USER_NAME))
    answer, actions = roundtrip(hss, broken)
    assert answer.result_code == DIAMETER_MISSING_AVP and actions == []
    an_answer = DiameterMessage(300, APP_CX, False, broken.avps)
    with pytest.raises(DiameterError, match="requests"):
        hss.handle(an_answer, NOW)


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        SubscriberConfig(impi="x", impus=(("sip:x@h",),), k="00", op=OP1)
    with pytest.raises(ValidationError):
        SubscriberConfig(impi="x", impus=(("sip:x@h",),), k=K1, op=OP1, opc=OP1)
    with pytest.raises(ValidationError):
        SubscriberConfig(impi="x", impus=(("mailto:x@h",),), k=K1, op=OP1)
    with pytest.raises(ValidationError):
        SubscriberConfig(impi="x", impus=(("sip:x@h",),), auth_schemes=("digest",))
    with pytest.raises(ValidationError):
        SubscriberConfig(impi="x", impus=(), k=K1, op=OP1)
    with pytest.raises(ValidationError):
        HssConfig(subscribers=(ALICE, ALICE))
    with pytest.raises(ValidationError):
        IfcConfig(server_name="http://ps", event="presence")
    with pytest.raises(ValidationError):
        IfcConfig(server_name=PS, event="(")
    with pytest.raises(ValidationError):
        HssConfig(realm="home1.net", unknown_field=1)  # type: ignore[call-arg]
    assert ALICE.default_impu == "sip:alice@home1.net"
    assert ALICE.all_impus[-1] == "sip:anon-7f3a@home1.net"
