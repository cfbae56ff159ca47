"""Header names, the Headers multimap and the typed views of header values."""

from __future__ import annotations

import pytest

from presence_ims.sip import (
    ContactStar,
    CSeq,
    Headers,
    NameAddr,
    Request,
    SipParseError,
    SipURI,
    TelURI,
    Via,
    canonical_name,
    normalize_name,
    parse_contact,
    parse_cseq,
    parse_datagram,
    parse_header_params,
    parse_media_type,
    parse_name_addr,
    parse_token_params,
    parse_tokens,
    parse_via,
    split_list,
    validate_request,
)
from presence_ims.sip.headers import parse_hostport, parse_semicolon_params, parse_uint


def request(*header_lines: str, body: bytes = b"") -> Request:
    head = "\r\n".join(
        (
            "PUBLISH sip:alice@home1.net SIP/2.0",
            "Via: SIP/2.0/UDP pc.home1.net;branch=z9hG4bK1",
            "From: <sip:alice@home1.net>;tag=1",
            "To: <sip:alice@home1.net>",
            "Call-ID: c1@home1.net",
            "CSeq: 1 PUBLISH",
            *header_lines,
            f"Content-Length: {len(body)}",
        )
    )
    msg = parse_datagram(head.encode() + b"\r\n\r\n" + body)
    assert isinstance(msg, Request)
    validate_request(msg)
    return msg


# -- names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compact", "full"),
    [
        ("i", "call-id"),
        ("m", "contact"),
        ("f", "from"),
        ("t", "to"),
        ("v", "via"),
        ("l", "content-length"),
        ("c", "content-type"),
        ("k", "supported"),
        ("s", "subject"),
        ("o", "event"),
        ("u", "allow-events"),
        ("e", "content-encoding"),
    ],
)
def test_compact_forms(compact: str, full: str) -> None:
    assert normalize_name(compact) == full
    assert normalize_name(compact.upper()) == full
    h = Headers([(compact, "x")])
    assert h.get(full) == "x"
    assert h.get(canonical_name(full)) == "x"
    assert full in h and compact in h and compact.upper() in h
    assert list(h) == [(compact, "x")]  # the spelling received is kept


def test_canonical_names() -> None:
    assert canonical_name("call-id") == "Call-ID"
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("sip-etag") == "SIP-ETag"
    assert canonical_name("sip-if-match") == "SIP-If-Match"
    assert canonical_name("p-asserted-identity") == "P-Asserted-Identity"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("max-forwards") == "Max-Forwards"
    assert canonical_name("x-unknown-thing") == "X-Unknown-Thing"


def test_case_insensitive_lookup_and_order() -> None:
    h = Headers([("Via", "v1"), ("x-A", "1"), ("VIA", "v2"), ("X-a", "2"), ("Subject", "s")])
    assert h.get("via") == "v1"
    assert h.get_lines("v") == ["v1", "v2"]
    assert h.get_lines("X-A") == ["1", "2"]
    assert h.count("x-a") == 2
    assert h.get("missing") is None
    assert "SUBJECT" in h and "s" in h
    assert 42 not in h
    assert list(h) == [("Via", "v1"), ("x-A", "1"), ("VIA", "v2"), ("X-a", "2"), ("Subject", "s")]
    assert len(h) == 5


def test_add_prepend_set_remove() -> None:
    h = Headers([("Via", "a"), ("To", "t"), ("Via", "b"), ("CSeq", "1 X")])
    h.add("via", "c")  # after the last Via, canonical spelling for a lower-case name
    assert list(h)[3] == ("Via", "c")
    h.prepend("Via", "z")
    assert h.get_lines("via") == ["z", "a", "b", "c"]
    assert next(iter(h)) == ("Via", "z")
    h.prepend("Record-Route", "<sip:p;lr>")  # absent: appended
    assert list(h)[-1] == ("Record-Route", "<sip:p;lr>")
    h.set("via", "only")
    assert h.get_lines("via") == ["only"]
    assert next(iter(h)) == ("Via", "only")
    h.set("X-New", "1")
    assert list(h)[-1] == ("X-New", "1")
    h.set_all("Route", ["<sip:a;lr>", "<sip:b;lr>"])
    assert h.get_lines("route") == ["<sip:a;lr>", "<sip:b;lr>"]
    h.set_all("To", ["t1", "t2"])
    assert [n for n, _ in h][1:3] == ["To", "To"]
    assert h.remove("route") == 2
    assert h.remove("route") == 0
    assert "route" not in h
    copy = h.copy()
    copy.add("X-Copy", "1")
    assert "x-copy" not in h and copy != h
    assert Headers([("v", "x")]) == Headers([("Via", "x")])  # compares normalised names
    assert Headers([("Via", "x")]) != Headers([("Via", "y")])


def test_pop_first_value_of_list_header() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
                 ("Via", "SIP/2.0/UDP c;branch=z9hG4bK3")])
    assert h.pop_first_value("via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.get_lines("via") == ["SIP/2.0/UDP b;branch=z9hG4bK2", "SIP/2.0/UDP c;branch=z9hG4bK3"]
    assert h.pop_first_value("via") == "SIP/2.0/UDP b;branch=z9hG4bK2"
    assert h.pop_first_value("via") == "SIP/2.0/UDP c;branch=z9hG4bK3"
    assert h.pop_first_value("via") is None
    # a non-list header pops whole
    h2 = Headers([("Subject", "a, b")])
    assert h2.pop_first_value("subject") == "a, b"


def test_unknown_headers_byte_exact_through_parse_and_serialize() -> None:
    lines = [
        "X-CUSTOM-hdr: a ,  b;c=\"d,e\"  ;;  ,",
        "x-lower: <weird>\tvalue",
        "P-Unknown-Thing: ünïcödé, \"quoted \\\" value\"",
        "Security-Client: ipsec-3gpp; alg=hmac-sha-1-96; spi-c=1111; spi-s=2222; port-c=5062; port-s=5064",
        "SIP-ETag: dx200xyz",
        "SIP-If-Match: kwj449x",
    ]
    msg = request(*lines)
    wire = msg.serialize()
    for line in lines:
        assert line.encode() + b"\r\n" in wire
    # and the order of all header lines is kept
    names = [n for n, _ in msg.headers]
    assert names[-7:-1] == ["X-CUSTOM-hdr", "x-lower", "P-Unknown-Thing", "Security-Client",
                            "SIP-ETag", "SIP-If-Match"]


def test_line_folding_becomes_one_space() -> None:
    msg = request("Subject: I know you're there,\r\n   pretty sure\r\n\t you are")
    assert msg.headers.get("subject") == "I know you're there, pretty sure you are"
    assert b"Subject: I know you're there, pretty sure you are\r\n" in msg.serialize()


def test_header_value_whitespace_is_trimmed() -> None:
    msg = request("X-Pad:    value with inner  spaces   ")
    assert msg.headers.get("x-pad") == "value with inner  spaces"


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ("single", ["single"]),
        ("", []),
        ("  ", []),
        (",a,,b,", ["a", "b"]),
        ('"Doe, John" <sip:j@x>, <sip:k@y>', ['"Doe, John" <sip:j@x>', "<sip:k@y>"]),
        ("<sip:a@x;p=1,2>;q=0.1, <sip:b@y>", ["<sip:a@x;p=1,2>;q=0.1", "<sip:b@y>"]),
        ('"a \\" , b" <sip:c@d>, e', ['"a \\" , b" <sip:c@d>', "e"]),
        ('Digest realm="x,y", nonce="1"', ['Digest realm="x,y"', 'nonce="1"']),
    ],
)
def test_split_list(value: str, parts: list[str]) -> None:
    assert split_list(value) == parts


def test_get_all_splits_list_headers_only() -> None:
    msg = request(
        "Route: <sip:p1.home1.net;lr>, <sip:p2.home1.net;lr>",
        "Route: <sip:p3.home1.net;lr>",
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "Supported: path, gruu",
        "k: outbound",
    )
    assert msg.headers.get_all("route") == [
        "<sip:p1.home1.net;lr>",
        "<sip:p2.home1.net;lr>",
        "<sip:p3.home1.net;lr>",
    ]
    assert msg.headers.get_all("date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert msg.tokens("supported") == ["path", "gruu", "outbound"]


# -- Via ------------------------------------------------------------------------


def test_via_typed_view() -> None:
    v = parse_via("SIP/2.0/udp pc.home1.net:5062;branch=z9hG4bKnashds8;received=192.0.2.1;rport=5062")
    assert v.transport == "UDP"
    assert v.host == "pc.home1.net"
    assert v.port == 5062
    assert v.branch == "z9hG4bKnashds8"
    assert v.received == "192.0.2.1"
    assert v.rport == 5062
    assert v.sent_by == ("pc.home1.net", 5062)
    assert v.is_rfc3261
    assert str(v) == "SIP/2.0/UDP pc.home1.net:5062;branch=z9hG4bKnashds8;received=192.0.2.1;rport=5062"


def test_via_rport_rfc3581() -> None:
    asked = parse_via("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1")
    assert asked.rport is True
    assert parse_via("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1").rport is None
    filled = asked.with_param("received", "192.0.2.9").with_param("rport", "61000")
    assert filled.rport == 61000
    assert str(filled) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=192.0.2.9;rport=61000"
    for bad in ("rport=x", "rport=70000", "rport=-1"):
        with pytest.raises(SipParseError):
            parse_via(f"SIP/2.0/UDP h;branch=z9hG4bK1;{bad}")


def test_via_lws_and_ipv6() -> None:
    v = parse_via("SIP / 2.0 / TCP   [2001:db8::9] : 5070 ;branch = z9hG4bKx ; received=2001:db8::1")
    assert v.transport == "TCP"
    assert v.host == "[2001:db8::9]"
    assert v.port == 5070
    assert v.branch == "z9hG4bKx"
    # RFC 3261 via-received is an IPv6address without brackets
    assert v.received == "2001:db8::1"
    assert parse_via("SIP/2.0/UDP h;received=[2001:db8::1]").received == "[2001:db8::1]"


def test_via_without_magic_cookie_and_2543() -> None:
    assert not parse_via("SIP/2.0/UDP h;branch=1234").is_rfc3261
    assert not parse_via("SIP/2.0/UDP h").is_rfc3261
    assert parse_via("SIP/2.0/UDP h").branch is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 UDP h",
        "SIP/3.0/UDP h",
        "SIP/2.0/UDP h:99999",
        "SIP/2.0/UDP h;branch",
        "SIP/2.0/UDP h;branch=",
        "SIP/2.0/UDP 192.0.2.15;;,;,,",
        "SIP/2.0/UDP h;received=::1x",
        "SIP/2.0/UDP h;foo=::1",
        "SIP/2.0/UDP h junk",
    ],
)
def test_malformed_via(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(value)


def test_via_list_typed_view() -> None:
    msg = request("Via: SIP/2.0/TCP p2;branch=z9hG4bK2, SIP/2.0/TLS p3;branch=z9hG4bK3")
    assert [v.host for v in msg.vias] == ["pc.home1.net", "p2", "p3"]
    assert msg.via.host == "pc.home1.net"
    assert isinstance(msg.via, Via)


# -- From / To / Contact / routes ---------------------------------------------------


def test_from_to_tags_and_display_names() -> None:
    msg = request()
    assert msg.from_.tag == "1"
    assert msg.to.tag is None
    assert isinstance(msg.to.uri, SipURI)
    na = parse_name_addr('"Alice \\"A\\" Smith" <sip:alice@home1.net>;tag=9fxced76sl')
    assert na.display == '"Alice \\"A\\" Smith"'
    assert na.display_name == 'Alice "A" Smith'
    assert na.tag == "9fxced76sl"
    assert str(na) == '"Alice \\"A\\" Smith" <sip:alice@home1.net>;tag=9fxced76sl'
    tokens = parse_name_addr("Bob  Smith<sip:bob@home1.net>")
    assert tokens.display == "Bob  Smith"
    addr_spec = parse_name_addr("sip:bob@home1.net;tag=x")  # addr-spec: params are header params
    assert addr_spec.tag == "x"
    assert addr_spec.uri == SipURI("sip", "home1.net", "bob")
    assert parse_name_addr("<tel:+4930123;phone-context=+49>").uri == TelURI(
        "+4930123", (("phone-context", "+49"),)
    )
    tagged = parse_name_addr("<sip:a@b>").with_param("tag", "t1")
    assert str(tagged) == "<sip:a@b>;tag=t1"
    assert tagged.without_param("tag").tag is None
    assert tagged.has_param("TAG")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "<sip:a@b",
        "sip:a@b>",
        '"unterminated <sip:a@b>',
        "<sip:a@b> junk",
        "Bob <sip:a@b>;;tag=1",
        "Bob <sip:a b@c>",
        "sip:a@b?x=y",
        "sip:user@example.com, sip:other@example.com",
        "J Rosenberg \\\"<sip:jdrosen@example.com>",
        "<nonscheme>",
    ],
)
def test_malformed_name_addr(value: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_name_addr(value, "To")
    assert "To" in info.value.reason


def test_contact_expires_q_and_star() -> None:
    msg = request(
        'm: <sip:alice@192.0.2.4:5062;transport=tcp>;expires=600;q=0.7;+sip.instance="<urn:uuid:1>",'
        " \"Alice's desk\" <sip:alice@desk.home1.net>;q=1.0"
    )
    first, second = msg.contacts
    assert first.param("expires") == "600"
    assert first.param("q") == "0.7"
    assert first.param("+sip.instance") == "<urn:uuid:1>"
    assert isinstance(first.uri, SipURI) and first.uri.transport == "tcp"
    assert second.display_name == "Alice's desk"
    assert second.param("q") == "1.0"
    assert not msg.contact_star
    star = request("Contact: *", "Expires: 0")
    assert star.contact_star
    assert star.contacts == []
    assert star.expires == 0
    assert isinstance(parse_contact(" * "), ContactStar)
    assert str(parse_contact("*")) == "*"
    assert isinstance(parse_contact("<sip:a@b>"), NameAddr)


def test_route_record_route_path_service_route() -> None:
    msg = request(
        "Route: <sip:pcscf.home1.net:5070;lr>, <sip:scscf.home1.net;lr>",
        "Record-Route: <sip:ps.home1.net;lr;transport=tcp>",
        "Path: <sip:term@pcscf.home1.net;lr>",
        "Service-Route: <sip:orig@scscf.home1.net;lr>",
    )
    routes = msg.name_addrs("route")
    assert [str(r.uri) for r in routes] == ["sip:pcscf.home1.net:5070;lr", "sip:scscf.home1.net;lr"]
    assert all(isinstance(r.uri, SipURI) and r.uri.lr for r in routes)
    rr = msg.name_addrs("Record-Route")[0]
    assert isinstance(rr.uri, SipURI) and rr.uri.transport == "tcp"
    assert str(msg.name_addrs("path")[0].uri) == "sip:term@pcscf.home1.net;lr"
    assert str(msg.name_addrs("service-route")[0].uri) == "sip:orig@scscf.home1.net;lr"


def test_identity_headers() -> None:
    msg = request(
        'P-Asserted-Identity: "Alice" <sip:alice@home1.net>, <tel:+358504821437>',
        "Privacy: id;header",
        "P-Associated-URI: <sip:alice-work@home1.net>, <tel:+358504821437>",
    )
    pai = msg.name_addrs("p-asserted-identity")
    assert pai[0].display_name == "Alice"
    assert isinstance(pai[1].uri, TelURI) and pai[1].uri.digits == "+358504821437"
    assert parse_semicolon_params(msg.headers.get("privacy") or "", "Privacy") == {
        "id": None,
        "header": None,
    }
    assoc = msg.name_addrs("P-Associated-URI")
    assert [str(a.uri) for a in assoc] == ["sip:alice-work@home1.net", "tel:+358504821437"]


def test_p_charging_vector() -> None:
    quoted = parse_semicolon_params(
        'icid-value="AyretyU0dm+6O2IrT5tAFrbHLso=023551024"; orig-ioi=home1.net', "P-Charging-Vector"
    )
    assert quoted == {"icid-value": "AyretyU0dm+6O2IrT5tAFrbHLso=023551024", "orig-ioi": "home1.net"}
    plain = parse_semicolon_params(
        "icid-value=1234bc9876e;icid-generated-at=192.0.6.8;ORIG-IOI=home1.net", "P-Charging-Vector"
    )
    assert plain == {
        "icid-value": "1234bc9876e",
        "icid-generated-at": "192.0.6.8",
        "orig-ioi": "home1.net",
    }
    with pytest.raises(SipParseError):
        parse_semicolon_params("icid-value=a b", "P-Charging-Vector")


# -- CSeq, numbers, tokens, Event ------------------------------------------------------


def test_cseq() -> None:
    assert parse_cseq("4711 INVITE") == CSeq(4711, "INVITE")
    assert parse_cseq("  1\tPUBLISH ") == CSeq(1, "PUBLISH")
    assert str(CSeq(2, "SUBSCRIBE")) == "2 SUBSCRIBE"
    assert parse_cseq(str(2**31 - 1) + " X").seq == 2**31 - 1
    for bad in ("", "INVITE", "1", "x INVITE", "-1 INVITE", "1 INV ITE", f"{2**31} INVITE",
                "1 INVITE junk", "1 INV@ITE"):
        with pytest.raises(SipParseError):
            parse_cseq(bad)


def test_max_forwards_and_expires() -> None:
    msg = request("Max-Forwards: 70", "Expires: 3600")
    assert msg.max_forwards == 70
    assert msg.expires == 3600
    assert request().max_forwards is None
    assert request().expires is None
    assert parse_uint(" 255 ", "Max-Forwards", 255) == 255
    for bad, maximum in (("256", 255), ("-1", 255), ("x", 255), ("", 255), ("1 2", 255),
                         ("\u0661", 255), (str(2**32), 2**32 - 1)):
        with pytest.raises(SipParseError):
            parse_uint(bad, "Max-Forwards", maximum)


def test_event_and_subscription_state() -> None:
    msg = request("Event: presence.winfo;id=42")
    ev = msg.event
    assert ev is not None
    assert ev.value == "presence.winfo"
    assert ev.package == "presence"
    assert ev.param("id") == "42"
    assert str(ev) == "presence.winfo;id=42"
    ss = parse_token_params("terminated;reason=timeout;retry-after=30", "Subscription-State")
    assert ss.value == "terminated"
    assert ss.param("reason") == "timeout"
    assert ss.param("retry-after") == "30"
    active = parse_token_params('active ; expires=600 ; x="a;b"', "Subscription-State")
    assert active.value == "active" and active.param("expires") == "600"
    assert active.param("x") == "a;b"
    assert request().event is None
    for bad in ("", ";id=1", "pres ence", "presence;", "presence;id=a b"):
        with pytest.raises(SipParseError) as info:
            parse_token_params(bad, "Event")
        assert "Event" in info.value.reason


def test_sip_etag_and_if_match_are_plain_tokens() -> None:
    msg = request("SIP-ETag: dx200xyz", "sip-if-match: kwj449x")
    assert msg.headers.get("SIP-ETag") == "dx200xyz"
    assert msg.headers.get("SIP-If-Match") == "kwj449x"
    assert parse_tokens(msg.headers.get("sip-if-match") or "", "SIP-If-Match") == ["kwj449x"]


def test_security_client_passes_through_as_text() -> None:
    value = (
        "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=3929102;spi-s=0293020;"
        "port-c=3333;port-s=5059;prot=esp;mod=trans"
    )
    msg = request(f"Security-Client: {value}, digest;d-qop=auth")
    assert msg.headers.get_all("security-client") == [value, "digest;d-qop=auth"]
    assert f"Security-Client: {value}, digest;d-qop=auth\r\n".encode() in msg.serialize()


def test_parse_tokens() -> None:
    assert parse_tokens("100rel, timer ,path", "Require") == ["100rel", "timer", "path"]
    with pytest.raises(SipParseError):
        parse_tokens("a b", "Require")


def test_content_type() -> None:
    msg = request("c: Application/PIDF+XML ; charset=UTF-8")
    ct = msg.content_type
    assert ct is not None
    assert ct.mime == "application/pidf+xml"
    assert ct.params == (("charset", "UTF-8"),)
    assert str(ct) == "Application/PIDF+XML;charset=UTF-8"
    assert request().content_type is None
    for bad in ("text", "text/", "/plain", "text/plain;", "text /plain junk"):
        with pytest.raises(SipParseError):
            parse_media_type(bad)


def test_header_params_grammar() -> None:
    assert parse_header_params("a;b=c;d=\"e;f\"", "X") == (("a", None), ("b", "c"), ("d", '"e;f"'))
    assert parse_header_params(" a = [2001:db8::1] ", "X") == (("a", "[2001:db8::1]"),)
    for bad in ("", ";", "a;", "a=", "a=b c", 'a="x'):
        with pytest.raises(SipParseError):
            parse_header_params(bad, "X")


def test_hostport() -> None:
    assert parse_hostport("pcscf.home1.net:5060") == ("pcscf.home1.net", 5060)
    assert parse_hostport("[::1]") == ("[::1]", None)
    with pytest.raises(SipParseError):
        parse_hostport("bad host")
