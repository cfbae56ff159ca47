"""The sans-IO Diameter codec, framer and base commands (RFC 6733)."""

from __future__ import annotations

import struct

import pytest
from diameter.message import Message as LibMessage
from diameter.message import MessageHeader as LibHeader
from diameter.message import constants as lib_constants
from diameter.message.avp import Avp as LibAvp

from presence_ims.diameter import base
from presence_ims.diameter.codec import (
    APP_BASE,
    APP_CX,
    APP_SH,
    AVP_EXPERIMENTAL_RESULT,
    AVP_HOST_IP_ADDRESS,
    AVP_ORIGIN_HOST,
    AVP_PROXY_INFO,
    AVP_PUBLIC_IDENTITY,
    AVP_RESULT_CODE,
    AVP_SESSION_ID,
    AVP_USER_NAME,
    AVP_VENDOR_ID,
    VENDOR_3GPP,
    Avp,
    DiameterError,
    DiameterFramer,
    DiameterMessage,
    ExperimentalResult,
    Result,
    SessionIdGenerator,
    address_avp,
    answer_for,
    command_name,
    decode,
    dump,
    encode,
    grouped_avp,
    int32_avp,
    octets_avp,
    uint32_avp,
    uint64_avp,
    utf8_avp,
    vendor_specific_application_id,
)


def sample_request(hop_by_hop: int = 0x1234, session: str = "icscf.home1.net;1;2") -> DiameterMessage:
    return DiameterMessage(
        command_code=300,
        application_id=APP_CX,
        request=True,
        avps=(
            utf8_avp(AVP_SESSION_ID, session),
            vendor_specific_application_id(APP_CX),
            utf8_avp(AVP_ORIGIN_HOST, "icscf.home1.net"),
            utf8_avp(296, "home1.net"),
            utf8_avp(283, "home1.net"),
            utf8_avp(AVP_USER_NAME, "alice@home1.net"),
            utf8_avp(AVP_PUBLIC_IDENTITY, "sip:alice@home1.net", VENDOR_3GPP),
        ),
        hop_by_hop=hop_by_hop,
        end_to_end=0xABCDEF01,
    )


# --- encoding ---------------------------------------------------------------


def test_header_fields_on_the_wire() -> None:
    data = encode(sample_request())
    version_length, flags_code, app, hbh, e2e = struct.unpack("!IIIII", data[:20])
    assert version_length >> 24 == 1
    assert version_length & 0xFFFFFF == len(data)
    assert flags_code >> 24 == 0xC0  # R and P
    assert flags_code & 0xFFFFFF == 300
    assert (app, hbh, e2e) == (APP_CX, 0x1234, 0xABCDEF01)
    assert len(data) % 4 == 0


def test_avp_padding_and_vendor_flag() -> None:
    avp = utf8_avp(AVP_PUBLIC_IDENTITY, "sip:a@b", VENDOR_3GPP)  # 7 bytes of data
    message = DiameterMessage(300, APP_CX, True, (avp,))
    data = encode(message)[20:]
    code, flags_length, vendor = struct.unpack("!III", data[:12])
    assert code == 601
    assert flags_length >> 24 == 0xC0  # V and M
    assert flags_length & 0xFFFFFF == 12 + 7
    assert vendor == VENDOR_3GPP
    assert len(data) == 20  # 19 rounded up to 4
    assert data[19:] == b"\x00"


def test_round_trip_keeps_every_field() -> None:
    message = DiameterMessage(
        command_code=306,
        application_id=APP_SH,
        request=False,
        avps=(
            utf8_avp(AVP_SESSION_ID, "hss;9;9"),
            uint32_avp(AVP_RESULT_CODE, 2001),
            int32_avp(703, -5, VENDOR_3GPP),
            uint64_avp(287, 2**63 + 5),
            octets_avp(702, b"\x00\xff<xml/>", VENDOR_3GPP),
            address_avp(AVP_HOST_IP_ADDRESS, "::1"),
            grouped_avp(
                AVP_EXPERIMENTAL_RESULT,
                (uint32_avp(AVP_VENDOR_ID, VENDOR_3GPP), uint32_avp(298, 5001)),
            ),
            Avp(99999, b"unknown", vendor_id=7, mandatory=False),
        ),
        hop_by_hop=1,
        end_to_end=2,
        proxiable=False,
        error=True,
        retransmit=True,
    )
    decoded = decode(encode(message))
    assert decoded == message
    assert decoded.avps[2].as_int32() == -5
    assert decoded.avps[3].as_uint64() == 2**63 + 5
    assert decoded.avps[5].as_address() == "::1"
    assert decoded.experimental_result == ExperimentalResult(VENDOR_3GPP, 5001)
    assert decoded.result_code == 2001


def test_typed_accessors_reject_wrong_shapes() -> None:
    with pytest.raises(DiameterError):
        Avp(268, b"\x00\x01").as_uint32()
    with pytest.raises(DiameterError):
        Avp(1, b"\xff\xfe").as_str()
    with pytest.raises(DiameterError):
        Avp(257, b"\x00\x01\x7f").as_address()
    with pytest.raises(DiameterError):
        Avp(257, b"\x00\x09abcd").as_address()  # unknown family
    with pytest.raises(DiameterError):
        Avp(297, b"\x00\x00\x01").as_grouped()


def test_builders_reject_bad_values() -> None:
    with pytest.raises(DiameterError):
        uint32_avp(268, -1)
    with pytest.raises(DiameterError):
        uint32_avp(268, 2**32)
    with pytest.raises(DiameterError):
        utf8_avp(1, b"bytes")  # type: ignore[arg-type]
    with pytest.raises(DiameterError):
        octets_avp(1, "text")  # type: ignore[arg-type]
    with pytest.raises(DiameterError):
        address_avp(257, "not-an-address")
    with pytest.raises(DiameterError):
        encode(DiameterMessage(1 << 24, 0, True))
    with pytest.raises(DiameterError):
        encode(DiameterMessage(300, 0, True, hop_by_hop=-1))


def test_well_known_accessors() -> None:
    message = sample_request()
    assert message.session_id == "icscf.home1.net;1;2"
    assert message.origin_host == "icscf.home1.net"
    assert message.origin_realm == "home1.net"
    assert message.destination_realm == "home1.net"
    assert message.destination_host is None
    assert message.user_name == "alice@home1.net"
    assert message.public_identity == "sip:alice@home1.net"
    assert message.public_identities == ("sip:alice@home1.net",)
    assert message.auth_application_id == APP_CX
    assert message.name == "UAR"
    assert message.interface == "Cx"
    with pytest.raises(DiameterError):
        message.require_str(602, VENDOR_3GPP)


def test_command_names() -> None:
    assert command_name(303, True) == "MAR"
    assert command_name(309, False) == "PNA"
    assert command_name(272, True) == "Credit-Control-Request"
    assert command_name(9999, False) == "Command-9999-Answer"


def test_dump_is_readable() -> None:
    text = dump(sample_request())
    assert text.startswith("UAR app=16777216")
    assert "  Public-Identity: sip:alice@home1.net" in text
    assert "    Auth-Application-Id: 16777216" in text


# --- decoding failures ---------------------------------------------------------


def test_decode_rejects_short_and_bad_headers() -> None:
    good = encode(sample_request())
    with pytest.raises(DiameterError):
        decode(good[:19])
    with pytest.raises(DiameterError):
        decode(b"\x02" + good[1:])  # version 2
    with pytest.raises(DiameterError):
        decode(good[:-4])  # length field no longer matches
    with pytest.raises(DiameterError):
        decode(good + b"\x00\x00\x00\x00")
    request_with_e = bytearray(good)
    request_with_e[4] |= 0x20
    with pytest.raises(DiameterError):
        decode(bytes(request_with_e))


def _message_with_avp_bytes(avp_bytes: bytes) -> bytes:
    length = 20 + len(avp_bytes)
    header = struct.pack("!IIIII", (1 << 24) | length, (0x80 << 24) | 300, APP_CX, 1, 2)
    return header + avp_bytes


def test_decode_rejects_bad_avp_lengths() -> None:
    # AVP length 4, below the 8-byte header.
    with pytest.raises(DiameterError):
        decode(_message_with_avp_bytes(struct.pack("!II", 263, (0x40 << 24) | 4)))
    # Vendor flag with length 8 (the vendor id needs 12).
    with pytest.raises(DiameterError):
        decode(_message_with_avp_bytes(struct.pack("!III", 601, (0xC0 << 24) | 8, 10415)))
    # Length runs past the message.
    with pytest.raises(DiameterError):
        decode(_message_with_avp_bytes(struct.pack("!II", 263, (0x40 << 24) | 64) + b"abcd"))
    # A trailing 4 bytes that cannot be an AVP header.
    valid = struct.pack("!II", 263, (0x40 << 24) | 12) + b"abcd"
    with pytest.raises(DiameterError):
        decode(_message_with_avp_bytes(valid + b"\x00\x00\x00\x00"))


def test_decode_validates_grouped_avps() -> None:
    # Experimental-Result is Grouped in the dictionary; its content is garbage.
    inner = b"\x00\x00\x01\x0a\x40\x00\x00\x02"  # inner AVP of length 2
    avp = struct.pack("!II", AVP_EXPERIMENTAL_RESULT, (0x40 << 24) | (8 + len(inner))) + inner
    with pytest.raises(DiameterError):
        decode(_message_with_avp_bytes(avp))


def test_decode_caps_nesting_depth() -> None:
    avp = utf8_avp(AVP_SESSION_ID, "x")
    for _ in range(20):
        avp = grouped_avp(AVP_PROXY_INFO, (avp,))
    with pytest.raises(DiameterError, match="deep"):
        decode(encode(DiameterMessage(300, APP_CX, True, (avp,))))


def test_decode_reads_a_message_python_diameter_built() -> None:
    """An independent encoder: python-diameter's own message and AVP classes."""
    header = LibHeader(
        command_code=300,
        application_id=APP_CX,
        hop_by_hop_identifier=77,
        end_to_end_identifier=88,
    )
    header.is_request = True
    header.is_proxyable = True
    lib = LibMessage(
        header,
        [
            LibAvp.new(lib_constants.AVP_SESSION_ID, value="icscf.home1.net;5;6"),
            LibAvp.new(lib_constants.AVP_ORIGIN_HOST, value=b"icscf.home1.net"),
            LibAvp.new(lib_constants.AVP_USER_NAME, value="bob@home1.net"),
            LibAvp.new(
                lib_constants.AVP_TGPP_PUBLIC_IDENTITY,
                lib_constants.VENDOR_TGPP,
                value="sip:bob@home1.net",
            ),
            LibAvp.new(
                lib_constants.AVP_TGPP_USER_AUTHORIZATION_TYPE,
                lib_constants.VENDOR_TGPP,
                value=lib_constants.E_USER_AUTHORIZATION_TYPE_DE_REGISTRATION,
            ),
        ],
    )
    message = decode(lib.as_bytes())
    assert message.name == "UAR"
    assert (message.hop_by_hop, message.end_to_end) == (77, 88)
    assert message.session_id == "icscf.home1.net;5;6"
    assert message.origin_host == "icscf.home1.net"
    assert message.user_name == "bob@home1.net"
    assert message.public_identity == "sip:bob@home1.net"
    assert message.get_uint32(623, VENDOR_3GPP) == 1
    # And python-diameter reads what we encode.
    back = LibMessage.from_bytes(encode(sample_request()))
    assert back.header.hop_by_hop_identifier == 0x1234
    found = back.find_avps((lib_constants.AVP_TGPP_PUBLIC_IDENTITY, lib_constants.VENDOR_TGPP))
    assert found[0].value == "sip:alice@home1.net"


# --- answers ---------------------------------------------------------------------


def test_answer_copies_session_and_identifiers() -> None:
    proxy_info = grouped_avp(AVP_PROXY_INFO, (utf8_avp(280, "dra.home1.net"),))
    request = sample_request()
    request = DiameterMessage(
        request.command_code,
        request.application_id,
        True,
        (*request.avps, proxy_info),
        request.hop_by_hop,
        request.end_to_end,
    )
    answer = answer_for(
        request,
        origin_host="hss.home1.net",
        origin_realm="home1.net",
        experimental_result_code=2001,
    )
    assert not answer.request
    assert answer.avps[0] == request.avps[0]
    assert (answer.command_code, answer.application_id) == (300, APP_CX)
    assert (answer.hop_by_hop, answer.end_to_end) == (request.hop_by_hop, request.end_to_end)
    assert answer.origin_host == "hss.home1.net"
    assert answer.origin_realm == "home1.net"
    assert answer.experimental_result == ExperimentalResult(VENDOR_3GPP, 2001)
    assert answer.result_code is None
    assert answer.find(AVP_PROXY_INFO) == proxy_info
    assert not answer.error
    assert Result.of(answer) == Result(2001, True)
    assert answer.name == "UAA"


def test_protocol_error_answers_set_the_e_flag() -> None:
    answer = answer_for(
        sample_request(), origin_host="h", origin_realm="r", result=Result(3001)
    )
    assert answer.error
    assert answer.result == 3001
    assert not answer.is_success
    with pytest.raises(DiameterError):
        answer_for(answer, origin_host="h", origin_realm="r", result_code=2001)


def test_result_of_an_answer_without_result() -> None:
    with pytest.raises(DiameterError):
        Result.of(DiameterMessage(300, APP_CX, False, ()))


def test_session_ids_are_unique_and_well_formed() -> None:
    generator = SessionIdGenerator("scscf.home1.net", 1700000000)
    first, second = generator.next(), generator.next("reg")
    assert first == "scscf.home1.net;1700000000;1"
    assert second == "scscf.home1.net;1700000000;2;reg"


# --- framing -----------------------------------------------------------------------


def test_framer_whole_message() -> None:
    data = encode(sample_request())
    assert DiameterFramer().feed(data) == [data]


def test_framer_byte_by_byte() -> None:
    data = encode(sample_request())
    framer = DiameterFramer()
    frames = []
    for i in range(len(data)):
        frames += framer.feed(data[i : i + 1])
        if i < len(data) - 1:
            assert frames == []
    assert frames == [data]
    assert framer.buffered == 0


def test_framer_several_messages_and_a_partial_one() -> None:
    one, two, three = (encode(sample_request(h)) for h in (1, 2, 3))
    framer = DiameterFramer()
    assert framer.feed(one + two + three[:7]) == [one, two]
    assert framer.buffered == 7
    assert framer.feed(three[7:]) == [three]
    assert [decode(f).hop_by_hop for f in (one, two, three)] == [1, 2, 3]


def test_framer_size_cap() -> None:
    data = encode(sample_request())
    with pytest.raises(DiameterError, match="cap"):
        DiameterFramer(max_message_size=len(data) - 4).feed(data[:4])


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x01\x00\x00\x08" + b"\x00" * 4,  # length below 20
        b"\x01\x00\x00\x15" + b"\x00" * 17,  # not a multiple of 4
        b"\x00",
    ],
)
def test_framer_rejects_garbage_and_stays_failed(garbage: bytes) -> None:
    framer = DiameterFramer()
    with pytest.raises(DiameterError):
        framer.feed(garbage)
    with pytest.raises(DiameterError, match="already failed"):
        framer.feed(encode(sample_request()))


# --- base protocol -------------------------------------------------------------------


def caps(host: str = "scscf.home1.net", apps: tuple[base.ApplicationId, ...] = (base.CX_APPLICATION,)) -> base.Capabilities:
    return base.Capabilities(
        origin_host=host,
        origin_realm="home1.net",
        host_ip_addresses=("127.0.0.1", "::1"),
        vendor_id=0,
        product_name="presence-ims",
        applications=apps,
        supported_vendor_ids=(VENDOR_3GPP,),
        origin_state_id=42,
        firmware_revision=1,
    )


def test_cer_cea_round_trip() -> None:
    cer = decode(encode(base.build_cer(caps(), hop_by_hop=5, end_to_end=6)))
    assert cer.request and not cer.proxiable
    assert base.parse_capabilities(cer) == caps()
    hss = caps("hss.home1.net", (base.CX_APPLICATION, base.SH_APPLICATION))
    cea = decode(encode(base.build_cea(cer, hss)))
    assert cea.result_code == base.DIAMETER_SUCCESS
    assert cea.hop_by_hop == 5
    assert base.parse_capabilities(cea) == hss


def test_common_applications() -> None:
    local = (base.CX_APPLICATION, base.SH_APPLICATION)
    assert base.common_applications(local, (base.ApplicationId(APP_CX),)) == (base.CX_APPLICATION,)
    assert base.common_applications(local, (base.ApplicationId(4),)) == ()
    relay = (base.ApplicationId(base.RELAY_APPLICATION_ID),)
    assert base.common_applications(local, relay) == local
    assert base.as_application(APP_SH) == base.SH_APPLICATION
    assert base.as_application(4) == base.ApplicationId(4, 0)


def test_cer_needs_an_address() -> None:
    with pytest.raises(DiameterError):
        base.build_cer(base.Capabilities("h", "r", (), 0, "p"))
    with pytest.raises(DiameterError):
        base.parse_capabilities(sample_request())


def test_watchdog_and_disconnect() -> None:
    dwr = decode(encode(base.build_dwr("a.home1.net", "home1.net", origin_state_id=3)))
    assert dwr.name == "DWR" and dwr.application_id == APP_BASE
    dwa = base.build_dwa(dwr, "hss.home1.net", "home1.net")
    assert dwa.name == "DWA" and dwa.result_code == base.DIAMETER_SUCCESS
    dpr = decode(encode(base.build_dpr("a.home1.net", "home1.net", base.DISCONNECT_BUSY)))
    assert base.disconnect_cause(dpr) == base.DISCONNECT_BUSY
    dpa = base.build_dpa(dpr, "hss.home1.net", "home1.net")
    assert dpa.name == "DPA" and dpa.hop_by_hop == dpr.hop_by_hop
    assert base.is_base_command(dpr) and not base.is_base_command(sample_request())


def test_result_names() -> None:
    assert base.result_name(2001) == "DIAMETER_SUCCESS"
    assert base.result_name(2001, experimental=True) == "DIAMETER_FIRST_REGISTRATION"
    assert base.result_name(5106, experimental=True) == "DIAMETER_ERROR_SUBS_DATA_ABSENT"
    assert base.result_name(5003) == "DIAMETER_AUTHORIZATION_REJECTED"
    assert base.result_name(5003, experimental=True) == "DIAMETER_ERROR_IDENTITY_NOT_REGISTERED"
    assert base.result_name(1234) == "1234"
