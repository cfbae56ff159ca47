"""Requests, responses, serialisation and make_response (RFC 3261 8.2.6)."""

from __future__ import annotations

import pytest

from presence_ims.sip import (
    CSeq,
    Headers,
    Request,
    Response,
    SipParseError,
    SipURI,
    make_response,
    parse_datagram,
    parse_uri,
    reason_phrase,
    validate_request,
)
from presence_ims.sip.message import sanitize_reason

PIDF = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:alice@home1.net">\n'
    b'  <tuple id="t1"><status><basic>open</basic></status></tuple>\n'
    b"</presence>\n"
)


def publish() -> Request:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP ue.home1.net:5060;branch=z9hG4bK776asdhds;rport"),
            ("Via", "SIP/2.0/UDP p.home1.net;branch=z9hG4bK2"),
            ("Max-Forwards", "70"),
            ("From", '"Alice" <sip:alice@home1.net>;tag=1928301774'),
            ("To", "<sip:alice@home1.net>"),
            ("Call-ID", "a84b4c76e66710@ue.home1.net"),
            ("CSeq", "314159 PUBLISH"),
            ("Event", "presence"),
            ("Content-Type", "application/pidf+xml"),
            ("Content-Length", "999"),
        ]
    )
    return Request(headers, PIDF, "PUBLISH", parse_uri("sip:alice@home1.net"))


def test_request_serialize_rewrites_content_length() -> None:
    req = publish()
    wire = req.serialize()
    assert wire.startswith(b"PUBLISH sip:alice@home1.net SIP/2.0\r\n")
    assert b"Content-Length: 999" not in wire
    head, _, body = wire.partition(b"\r\n\r\n")
    assert body == PIDF
    assert head.endswith(f"Content-Length: {len(PIDF)}".encode())
    assert bytes(req) == wire
    # header order kept, one line per field
    assert head.split(b"\r\n")[1:4] == [
        b"Via: SIP/2.0/UDP ue.home1.net:5060;branch=z9hG4bK776asdhds;rport",
        b"Via: SIP/2.0/UDP p.home1.net;branch=z9hG4bK2",
        b"Max-Forwards: 70",
    ]


def test_request_round_trip_through_parser() -> None:
    req = publish()
    again = parse_datagram(req.serialize())
    assert isinstance(again, Request)
    validate_request(again)
    assert again.method == "PUBLISH"
    assert str(again.uri) == "sip:alice@home1.net"
    assert again.body == PIDF
    assert again.serialize() == req.serialize()
    assert again.cseq == CSeq(314159, "PUBLISH")
    assert again.call_id == "a84b4c76e66710@ue.home1.net"


def test_typed_shortcuts_raise_sip_parse_error_when_missing() -> None:
    req = Request(Headers(), b"", "OPTIONS", None)
    for attr in ("call_id", "cseq", "via", "from_", "to", "ruri"):
        with pytest.raises(SipParseError):
            getattr(req, attr)
    assert req.vias == []
    assert req.contacts == []
    assert req.header("subject") is None


def test_copy_is_independent() -> None:
    req = publish()
    dup = req.copy()
    dup.headers.add("X-Extra", "1")
    dup.method = "OPTIONS"
    assert "x-extra" not in req.headers
    assert req.method == "PUBLISH"
    assert dup.body == req.body and dup.uri == req.uri
    resp = Response(Headers([("CSeq", "1 X")]), b"", 202, "Accepted")
    rdup = resp.copy()
    rdup.headers.set("CSeq", "2 X")
    assert resp.cseq.seq == 1
    assert rdup.status == 202 and rdup.reason == "Accepted"


def test_repr_and_start_lines() -> None:
    req = publish()
    assert repr(req) == "<Request PUBLISH sip:alice@home1.net>"
    assert req.start_line() == "PUBLISH sip:alice@home1.net SIP/2.0"
    resp = Response(Headers(), b"", 486, "Busy Here")
    assert repr(resp) == "<Response 486 Busy Here>"
    assert resp.serialize() == b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n"


def test_make_response_copies_the_rfc_headers() -> None:
    req = publish()
    req.headers.add("Record-Route", "<sip:ps.home1.net;lr>")
    resp = make_response(req, 200, to_tag="abc", headers=[("SIP-ETag", "e1"), ("Expires", "3600")])
    assert resp.status == 200 and resp.reason == "OK"
    assert resp.headers.get_lines("via") == req.headers.get_lines("via")
    assert resp.headers.get("from") == req.headers.get("from")
    assert resp.headers.get("to") == "<sip:alice@home1.net>;tag=abc"
    assert resp.to.tag == "abc"
    assert resp.call_id == req.call_id
    assert resp.cseq == req.cseq
    assert resp.headers.get("sip-etag") == "e1"
    assert "record-route" not in resp.headers  # only a UAS that forms a dialog copies it
    assert "event" not in resp.headers
    assert resp.body == b""
    assert [name for name, _ in resp.headers][:6] == ["Via", "Via", "From", "To", "Call-ID", "CSeq"]


def test_make_response_keeps_an_existing_to_tag_and_100_has_none() -> None:
    req = publish()
    req.headers.set("To", "<sip:alice@home1.net>;tag=existing")
    assert make_response(req, 200, to_tag="new").to.tag == "existing"
    fresh = publish()
    assert make_response(fresh, 100, to_tag="x").to.tag is None
    assert make_response(fresh, 180, to_tag="x").to.tag == "x"
    assert make_response(fresh, 200).to.tag is None


def test_make_response_with_unparseable_headers() -> None:
    # a 400 must be buildable from a request whose headers do not parse
    req = Request(
        Headers([("Via", "SIP/2.0/UDP h;;,;"), ("From", "garbage <"), ("CSeq", "x")]),
        b"",
        "OPTIONS",
        None,
    )
    resp = make_response(req, 400, "malformed From header")
    assert resp.headers.get("via") == "SIP/2.0/UDP h;;,;"
    assert resp.headers.get("from") == "garbage <"
    assert resp.reason == "malformed From header"
    assert resp.serialize().startswith(b"SIP/2.0 400 malformed From header\r\n")


def test_reason_phrases() -> None:
    assert reason_phrase(200) == "OK"
    assert reason_phrase(489) == "Bad Event"
    assert reason_phrase(412) == "Conditional Request Failed"
    assert reason_phrase(299) == "OK"
    assert reason_phrase(499) == "Client Error"
    assert reason_phrase(699) == "Global Failure"
    assert make_response(publish(), 423).reason == "Interval Too Brief"


def test_reason_is_sanitised() -> None:
    assert sanitize_reason("bad\r\nInjected: header") == "bad Injected: header"
    assert sanitize_reason("   ") == "Bad Request"
    assert len(sanitize_reason("x" * 500)) == 120
    resp = make_response(publish(), 400, "line\r\nbreak")
    assert b"\r\nbreak" not in resp.serialize().split(b"\r\n\r\n")[0].split(b"\r\n")[0]
    assert resp.reason == "line break"


def test_request_uri_of_every_kind() -> None:
    for text in ("sip:alice@home1.net", "tel:+358504821437", "pres:alice@home1.net"):
        req = Request(Headers(), b"", "OPTIONS", parse_uri(text))
        assert req.start_line() == f"OPTIONS {text} SIP/2.0"
        assert str(req.ruri) == text
    assert isinstance(publish().ruri, SipURI)


def test_non_utf8_header_bytes_survive() -> None:
    raw = (
        b"MESSAGE sip:bob@home1.net SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:bob@home1.net>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n"
        b"Subject: caf\xe9 \xff\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_datagram(raw)
    assert msg.serialize() == raw


def test_method_of_requests_responses_and_a_response_without_cseq() -> None:
    from presence_ims.sip import method_of, parse_datagram

    req = parse_datagram(
        b"PUBLISH sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 3 PUBLISH\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert method_of(req) == "PUBLISH"
    ok = parse_datagram(b"SIP/2.0 200 OK\r\nCSeq: 7 NOTIFY\r\nContent-Length: 0\r\n\r\n")
    assert method_of(ok) == "NOTIFY"
    # a 400 built for a request that had no CSeq: no method, and no exception
    bad = parse_datagram(b"SIP/2.0 400 Missing CSeq\r\nContent-Length: 0\r\n\r\n")
    assert method_of(bad) == ""
