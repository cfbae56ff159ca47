"""Datagram parsing, stream framing, validation and the RFC 4475 torture messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from presence_ims.sip import (
    ParserLimits,
    Request,
    Response,
    SipFramingError,
    SipParseError,
    SipURI,
    StreamFramer,
    parse_datagram,
    validate_request,
    validate_response,
)

RFC4475 = Path(__file__).resolve().parents[1] / "data" / "rfc4475"
EXPECTED: dict[str, dict[str, Any]] = json.loads((RFC4475 / "expected.json").read_text())

PIDF = (
    b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:alice@home1.net">'
    b"<tuple id=\"a\"><status><basic>open</basic></status></tuple></presence>"
)


def message(
    start: str = "PUBLISH sip:alice@home1.net SIP/2.0",
    *extra: str,
    body: bytes = b"",
    length: int | None = None,
    call_id: str = "c1@ue.home1.net",
    cseq: str = "1 PUBLISH",
) -> bytes:
    lines = [
        start,
        "Via: SIP/2.0/UDP ue.home1.net:5060;branch=z9hG4bK74bf9;rport",
        "Max-Forwards: 70",
        "From: <sip:alice@home1.net>;tag=9fxced76sl",
        "To: <sip:alice@home1.net>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq}",
        *extra,
    ]
    if length is not None or body:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_request(data: bytes) -> Request:
    msg = parse_datagram(data)
    assert isinstance(msg, Request)
    validate_request(msg)
    return msg


# -- datagrams ------------------------------------------------------------------


def test_request_datagram() -> None:
    req = parse_request(message(body=PIDF))
    assert req.method == "PUBLISH"
    assert req.uri == SipURI("sip", "home1.net", "alice")
    assert req.version == "SIP/2.0"
    assert req.body == PIDF
    assert req.headers.get("max-forwards") == "70"


def test_response_datagram() -> None:
    resp = parse_datagram(message("SIP/2.0 200 OK", length=0))
    assert isinstance(resp, Response)
    validate_response(resp)
    assert resp.status == 200 and resp.reason == "OK"
    empty_reason = parse_datagram(message("SIP/2.0 100 ", length=0))
    assert isinstance(empty_reason, Response) and empty_reason.reason == ""
    spaced = parse_datagram(message("SIP/2.0 486 Busy  Here ", length=0))
    assert isinstance(spaced, Response) and spaced.reason == "Busy  Here "


def test_leading_crlf_is_skipped() -> None:
    req = parse_request(b"\r\n\r\n\r\n" + message(length=0))
    assert req.method == "PUBLISH"


def test_body_framed_by_content_length_and_extra_octets_ignored() -> None:
    data = message(body=b"0123456789", length=4) + b"trailing junk"
    req = parse_request(data)
    assert req.body == b"0123"
    # RFC 3261 18.3: octets past Content-Length in a datagram are discarded
    req2 = parse_request(message(length=0) + b"INVITE sip:x@y SIP/2.0\r\n\r\n")
    assert req2.body == b""


def test_missing_content_length_on_udp_takes_the_rest() -> None:
    req = parse_request(message() + b"rest of datagram")
    assert req.body == b"rest of datagram"


def test_content_length_larger_than_datagram() -> None:
    with pytest.raises(SipParseError) as info:
        parse_datagram(message(body=b"abc", length=10))
    assert info.value.status == 400
    assert "Content-Length" in info.value.reason
    assert isinstance(info.value.partial, Request)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (("Content-Length: 0", "Content-Length: 4"), "conflicting Content-Length"),
        (("Content-Length: 0, 4",), "conflicting Content-Length"),
        (("Content-Length: -1",), "malformed Content-Length"),
        (("Content-Length: abc",), "malformed Content-Length"),
        (("l: \u0661",), "malformed Content-Length"),
    ],
)
def test_bad_content_length(extra: tuple[str, ...], reason: str) -> None:
    with pytest.raises(SipFramingError) as info:
        parse_datagram(message("OPTIONS sip:a@b SIP/2.0", *extra, cseq="1 OPTIONS"))
    assert reason in info.value.reason
    assert isinstance(info.value.partial, Request)
    # equal duplicates are fine
    parse_request(message("OPTIONS sip:a@b SIP/2.0", "Content-Length: 0", "l: 0", cseq="1 OPTIONS"))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not terminated"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n", "not terminated"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia x\r\n\r\n", "without a colon"),
        (b"OPTIONS sip:a@b SIP/2.0\r\n: x\r\n\r\n", "without a colon"),
        (b"OPTIONS sip:a@b SIP/2.0\r\n Via: x\r\n\r\n", "continuation line"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVi a: x\r\n\r\n", "malformed header name"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia\x00: x\r\n\r\n", "malformed header name"),
        (b"OPTIONS  sip:a@b SIP/2.0\r\n\r\n", "malformed request line"),
        (b"OPTIONS sip:a@b\r\n\r\n", "malformed request line"),
        (b"OPTIONS sip:a@b SIP/2.0 \r\n\r\n", "malformed request line"),
        (b"OPTIONS <sip:a@b> SIP/2.0\r\n\r\n", "malformed Request-URI"),
        (b"OPTIONS sip:a@b:99999 SIP/2.0\r\n\r\n", "malformed Request-URI"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "status code out of range"),
        (b"SIP/2.0 099 Low\r\n\r\n", "status code out of range"),
        (b"SIP/2.0 700 High\r\n\r\n", "status code out of range"),
        (b"SIP/2.0 20 OK\r\n\r\n", "status code out of range"),
        (b"SIP/2.0 OK\r\n\r\n", "malformed status line"),
    ],
)
def test_malformed_heads(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    assert reason in info.value.reason


def test_partial_lets_a_server_answer_a_bad_request_line() -> None:
    data = message("OPTIONS <sip:a@b> SIP/2.0", cseq="1 OPTIONS")
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    partial = info.value.partial
    assert isinstance(partial, Request)
    assert partial.method == "OPTIONS"
    assert partial.headers.get("call-id") == "c1@ue.home1.net"
    # a malformed response is never answered: nothing to route back
    with pytest.raises(SipParseError) as resp_info:
        parse_datagram(b"SIP/2.0 999 x\r\nCall-ID: c\r\n\r\n")
    assert resp_info.value.partial is None


def test_size_limit_gives_513() -> None:
    limits = ParserLimits(max_message_size=1000)
    big = message(body=b"x" * 1000)
    with pytest.raises(SipParseError) as info:
        parse_datagram(big, limits)
    assert info.value.status == 513
    assert parse_datagram(message(body=b"x" * 500), limits).body == b"x" * 500


def test_header_count_limit() -> None:
    limits = ParserLimits(max_header_fields=10)
    with pytest.raises(SipParseError) as info:
        parse_datagram(message("OPTIONS sip:a@b SIP/2.0", *[f"X-H{i}: {i}" for i in range(5)]), limits)
    assert "too many header fields" in info.value.reason


# -- StreamFramer -------------------------------------------------------------------


def stream_messages() -> list[bytes]:
    return [
        message(body=PIDF, call_id="s1"),
        message("OPTIONS sip:bob@home1.net SIP/2.0", length=0, call_id="s2", cseq="2 OPTIONS"),
        message("SIP/2.0 200 OK", body=b"v=0\r\n", call_id="s3", cseq="3 INVITE"),
    ]


def drain(framer: StreamFramer) -> list[bytes]:
    out: list[bytes] = []
    while (msg := framer.next_message()) is not None:
        out.append(msg.serialize())
    return out


def test_stream_fed_whole() -> None:
    msgs = stream_messages()
    framer = StreamFramer()
    framer.feed(b"".join(msgs))
    assert drain(framer) == msgs
    assert framer.buffered == 0


def test_stream_fed_byte_by_byte() -> None:
    msgs = stream_messages()
    framer = StreamFramer()
    out: list[bytes] = []
    for byte in b"".join(msgs):
        framer.feed(bytes((byte,)))
        out.extend(drain(framer))
    assert out == msgs


def test_stream_keepalive_crlf_between_messages() -> None:
    msgs = stream_messages()
    framer = StreamFramer()
    framer.feed(b"\r\n\r\n" + msgs[0] + b"\r\n\r\n\r\n" + msgs[1])
    assert drain(framer) == msgs[:2]


def test_stream_body_split_across_reads() -> None:
    msg = stream_messages()[0]
    framer = StreamFramer()
    cut = msg.index(b"\r\n\r\n") + 10  # head complete, body incomplete
    framer.feed(msg[:cut])
    assert framer.next_message() is None
    framer.feed(msg[cut:] + msg[:5])
    assert drain(framer) == [msg]
    assert framer.buffered == 5


def test_stream_without_content_length_is_a_framing_error() -> None:
    framer = StreamFramer()
    framer.feed(message("OPTIONS sip:a@b SIP/2.0", cseq="1 OPTIONS"))
    with pytest.raises(SipFramingError) as info:
        framer.next_message()
    assert "missing Content-Length" in info.value.reason
    assert isinstance(info.value.partial, Request)
    assert framer.closed
    # a framer that lost its position refuses everything after
    framer.feed(stream_messages()[1])
    with pytest.raises(SipFramingError):
        framer.next_message()


def test_stream_size_limits_give_513() -> None:
    limits = ParserLimits(max_message_size=200)
    framer = StreamFramer(limits)
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: " + b"y" * 300)
    with pytest.raises(SipFramingError) as info:
        framer.next_message()
    assert info.value.status == 513
    framer2 = StreamFramer(ParserLimits(max_message_size=400))
    framer2.feed(message(length=100000))
    with pytest.raises(SipFramingError) as info2:
        framer2.next_message()
    assert info2.value.status == 513


def test_stream_bad_head_poisons_the_framer() -> None:
    framer = StreamFramer()
    framer.feed(b"GARBAGE\r\nno colon here\r\n\r\n")
    with pytest.raises(SipParseError):
        framer.next_message()
    assert framer.closed


# -- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_mandatory_header(missing: str) -> None:
    data = message("OPTIONS sip:a@b SIP/2.0", length=0, cseq="1 OPTIONS")
    lines = [ln for ln in data.split(b"\r\n") if not ln.startswith(missing.encode() + b":")]
    msg = parse_datagram(b"\r\n".join(lines))
    assert isinstance(msg, Request)
    with pytest.raises(SipParseError) as info:
        validate_request(msg)
    assert info.value.reason == f"missing {missing} header"
    assert info.value.status == 400
    assert info.value.partial is msg


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (("Call-ID: second",), "more than one Call-ID header"),
        (("To: <sip:x@y>",), "more than one To header"),
        (("f: <sip:x@y>;tag=2",), "more than one From header"),
        (("Max-Forwards: 10",), "more than one Max-Forwards header"),
        (("CSeq: 2 OPTIONS",), "more than one CSeq header"),
        (("Max-Forwards: 256",), "Max-Forwards"),
        (("Contact: <sip:a@b",), "malformed Contact header"),
        (("Route: <sip:a@b",), "malformed Route header"),
        (("Record-Route: <sip:a@b>;;",), "Record-Route"),
        (("Path: junk junk",), "Path"),
        (("Require: a b",), "malformed Require header"),
        (("Proxy-Require: @",), "malformed Proxy-Require header"),
        (("Expires: soon",), "malformed Expires header"),
        (("Via: SIP/2.0/UDP h;branch=",), "Via"),
    ],
)
def test_validation_defects(extra: tuple[str, ...], reason: str) -> None:
    msg = parse_datagram(message("OPTIONS sip:a@b SIP/2.0", *extra, length=0, cseq="1 OPTIONS"))
    assert isinstance(msg, Request)
    with pytest.raises(SipParseError) as info:
        validate_request(msg)
    assert reason in info.value.reason
    assert info.value.partial is msg


def test_call_id_with_space_and_cseq_mismatch() -> None:
    bad_cid = parse_datagram(message("OPTIONS sip:a@b SIP/2.0", call_id="a b", cseq="1 OPTIONS"))
    assert isinstance(bad_cid, Request)
    with pytest.raises(SipParseError, match="malformed Call-ID"):
        validate_request(bad_cid)
    mismatch = parse_datagram(message("OPTIONS sip:a@b SIP/2.0", cseq="1 INVITE"))
    assert isinstance(mismatch, Request)
    with pytest.raises(SipParseError, match="CSeq method does not match"):
        validate_request(mismatch)
    # ACK carries the INVITE's CSeq method
    parse_request(message("ACK sip:a@b SIP/2.0", cseq="1 INVITE"))


def test_version_and_request_uri_headers() -> None:
    v = parse_datagram(message("OPTIONS sip:a@b SIP/3.0", cseq="1 OPTIONS"))
    assert isinstance(v, Request)
    with pytest.raises(SipParseError) as info:
        validate_request(v)
    assert info.value.status == 505
    hdrs = parse_datagram(message("OPTIONS sip:a@b?Route=x SIP/2.0", cseq="1 OPTIONS"))
    assert isinstance(hdrs, Request)
    with pytest.raises(SipParseError, match="must not contain headers"):
        validate_request(hdrs)
    resp = parse_datagram(message("SIP/3.0 200 OK", length=0))
    assert isinstance(resp, Response)
    with pytest.raises(SipParseError):
        validate_response(resp)


def test_version_is_case_insensitive() -> None:
    # RFC 3261 7.1: the SIP-Version string is case-insensitive
    parse_request(message("OPTIONS sip:a@b sip/2.0", cseq="1 OPTIONS"))
    resp = parse_datagram(message("Sip/2.0 200 OK", length=0))
    assert isinstance(resp, Response) and resp.status == 200
    validate_response(resp)


# -- RFC 4475 torture messages ------------------------------------------------------

# Requests the parser itself must reject, with the status a server answers.
PARSER_REJECTS = {
    "badinv01": 400,
    "clerr": 400,
    "ncl": 400,
    "scalar02": 400,
    "quotbal": 400,
    "ltgtruri": 400,
    "lwsruri": 400,
    "lwsstart": 400,
    "trws": 400,
    "escruri": 400,
    "regbadct": 400,
    "badaspec": 400,
    "baddn": 400,
    "badvers": 505,
    "mismatch01": 400,
    "mismatch02": 400,
    "insuf": 400,
    "multi01": 400,
    "mcl01": 400,
}


def outcome(data: bytes) -> tuple[Request | Response | None, SipParseError | None]:
    try:
        msg = parse_datagram(data)
        if isinstance(msg, Request):
            validate_request(msg)
        else:
            assert isinstance(msg, Response)
            validate_response(msg)
    except SipParseError as exc:
        return None, exc
    assert isinstance(msg, Request | Response)
    return msg, None


def test_vendored_messages_are_complete() -> None:
    assert len(EXPECTED) == 49
    assert sorted(p.stem for p in RFC4475.glob("*.sip")) == sorted(EXPECTED)
    assert (RFC4475 / ".gitattributes").read_text().split() == ["*.sip", "-text"]
    assert all(b"\r\n" in (RFC4475 / f"{t}.sip").read_bytes() for t in EXPECTED)


def test_parser_rejects_table_agrees_with_expected_json() -> None:
    for tag, status in PARSER_REJECTS.items():
        assert str(status) in EXPECTED[tag]["pass"], tag
    for tag, exp in EXPECTED.items():
        is_request = not (RFC4475 / f"{tag}.sip").read_bytes().startswith(b"SIP/")
        statuses = [p for p in exp["pass"] if p.isdigit()]
        if exp["kind"] == "invalid" and is_request and statuses:
            assert tag in PARSER_REJECTS, tag


@pytest.mark.parametrize("tag", sorted(EXPECTED))
def test_rfc4475(tag: str) -> None:
    exp = EXPECTED[tag]
    data = (RFC4475 / f"{tag}.sip").read_bytes()
    msg, error = outcome(data)
    if data.startswith(b"SIP/"):
        # responses: never answered; the invalid ones must not get through
        assert exp["pass"] == ["none"]
        if exp["kind"] == "invalid":
            assert error is not None, f"{tag}: a malformed response was accepted"
        else:
            assert error is None, f"{tag}: {error and error.reason}"
            assert isinstance(msg, Response)
        return
    if tag in PARSER_REJECTS:
        assert error is not None, f"{tag}: accepted a malformed request"
        assert error.status == PARSER_REJECTS[tag]
        assert str(error.status) in exp["pass"]
        assert isinstance(error.partial, Request), "a request error keeps what it could parse"
        assert error.reason and "\r" not in error.reason and "\n" not in error.reason
    else:
        assert error is None, f"{tag}: {error and error.reason}"
        assert isinstance(msg, Request)


def test_rfc4475_details() -> None:
    def req(tag: str) -> Request:
        msg, error = outcome((RFC4475 / f"{tag}.sip").read_bytes())
        assert error is None and isinstance(msg, Request)
        return msg

    dbl = req("dblreq")
    assert dbl.method == "REGISTER" and dbl.body == b""
    esc02 = req("esc02")
    assert esc02.method == "RE%47IST%45R"
    assert len(esc02.headers.get_lines("contact")) == 2  # C%6Fntact is another header
    assert esc02.headers.get("c%6fntact") == "<sip:alias2@host2.example.com>"
    semi = req("semiuri")
    assert isinstance(semi.uri, SipURI) and semi.uri.user == "user;par=u%40example.net"
    assert "multipart/mixed" in (semi.headers.get("accept") or "")
    transports = req("transports")
    assert [v.transport for v in transports.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert transports.call_id == "transports.kijh4akdnaqjkwendsasfdj"
    longreq = req("longreq")
    assert len(longreq.vias) == 34
    mpart = req("mpart01")
    assert len(mpart.body) == int(mpart.headers.get("content-length") or "")
    assert b"\n" in mpart.body.replace(b"\r\n", b"")
    inv = req("inv2543")
    assert inv.body.startswith(b"v=0") and inv.via.branch is None
    escnull = req("escnull")
    assert escnull.to.uri == SipURI("sip", "example.com", "null-%00-null")
    unreason, _ = outcome((RFC4475 / "unreason.sip").read_bytes())
    assert isinstance(unreason, Response) and unreason.status == 200
    assert unreason.reason.startswith("= 2**3 * 5**2 ")
    assert len(unreason.body) == 154
