"""Dialogs (RFC 3261 section 12) and the proxy functions of section 16.

Requests and responses are literal SIP text; the UAC and UAS sides of one
dialog are wired together by hand (no transport).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import pytest

from presence_ims.sip import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipURI,
    parse_datagram,
)
from presence_ims.sip.checks import Rejection
from presence_ims.sip.dialog import Dialog, dialog_id_of_request
from presence_ims.sip.proxy import (
    loop_hash,
    next_hop,
    prepare_forward,
    preprocess_route,
    proxy_branch,
    relay_response,
    validate,
)


def request(
    method: str = "SUBSCRIBE",
    uri: str = "sip:alice@home1.net",
    headers: Iterable[str] = (),
    *,
    to_tag: str | None = None,
    cseq: int = 1,
    vias: Iterable[str] = ("SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bKua1",),
    max_forwards: int | None = 70,
    contact: str | None = "<sip:bob@192.0.2.20:5070;transport=udp>",
) -> Request:
    lines = [f"{method} {uri} SIP/2.0"]
    lines += [f"Via: {v}" for v in vias]
    if max_forwards is not None:
        lines.append(f"Max-Forwards: {max_forwards}")
    lines += [
        'From: "Bob" <sip:bob@home1.net>;tag=bobtag',
        "To: <sip:alice@home1.net>" + (f";tag={to_tag}" if to_tag else ""),
    ]
    lines += ["Call-ID: dlg-1@192.0.2.20", f"CSeq: {cseq} {method}"]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines += [*headers, "Content-Length: 0", "", ""]
    msg = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(msg, Request)
    return msg


def response(text_headers: Iterable[str], status: int = 200) -> Response:
    lines = [
        f"SIP/2.0 {status} OK",
        "Via: SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bKua1",
        'From: "Bob" <sip:bob@home1.net>;tag=bobtag',
        "To: <sip:alice@home1.net>;tag=pstag",
        "Call-ID: dlg-1@192.0.2.20",
        "CSeq: 1 SUBSCRIBE",
        *text_headers,
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(msg, Response)
    return msg


# -- dialogs ------------------------------------------------------------------------------------------


def test_uas_dialog_from_already_parsed_headers_is_the_same() -> None:
    req = request(headers=["Record-Route: <sip:pcscf.home1.net;lr>"], cseq=3)
    parsed = Dialog.from_uas_request(
        req, "pstag", from_=req.from_, to=req.to, contacts=req.contacts
    )
    assert parsed == Dialog.from_uas_request(req, "pstag")
    with pytest.raises(SipParseError):
        Dialog.from_uas_request(req, "t", contacts=[*req.contacts, *req.contacts])


def test_uas_dialog_from_a_subscribe() -> None:
    req = request(
        headers=[
            "Record-Route: <sip:pcscf.home1.net;lr>, <sip:scscf.home1.net:6060;lr>",
            "Record-Route: <sip:as.home1.net;lr;orig>",
        ],
        cseq=17,
    )
    dialog = Dialog.from_uas_request(req, "pstag")
    assert dialog.call_id == "dlg-1@192.0.2.20"
    assert (dialog.local_tag, dialog.remote_tag) == ("pstag", "bobtag")
    assert dialog.id == ("dlg-1@192.0.2.20", "pstag", "bobtag")
    assert dialog.local_uri == "<sip:alice@home1.net>"
    assert dialog.remote_uri == '"Bob" <sip:bob@home1.net>'
    assert dialog.remote_target == "sip:bob@192.0.2.20:5070;transport=udp"
    # the UAS keeps the Record-Route order
    assert dialog.route_set == [
        "<sip:pcscf.home1.net;lr>",
        "<sip:scscf.home1.net:6060;lr>",
        "<sip:as.home1.net;lr;orig>",
    ]
    assert (dialog.local_cseq, dialog.remote_cseq) == (0, 17)
    assert dialog.secure is False


def test_uas_dialog_secure_for_a_sips_request_uri() -> None:
    dialog = Dialog.from_uas_request(request(uri="sips:alice@home1.net"), "t")
    assert dialog.secure is True


@pytest.mark.parametrize("contact", [None, "*", "<sip:a@192.0.2.1>, <sip:b@192.0.2.2>"])
def test_uas_dialog_needs_exactly_one_contact(contact: str | None) -> None:
    with pytest.raises(SipParseError, match="exactly one Contact"):
        Dialog.from_uas_request(request(contact=contact), "t")


def test_uas_builds_in_dialog_requests() -> None:
    req = request(headers=["Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>"])
    dialog = Dialog.from_uas_request(req, "pstag")
    notify = dialog.build_request(
        "NOTIFY",
        headers=[("Event", "presence"), ("Subscription-State", "active;expires=60")],
        body=b"<x/>",
        contact="<sip:ps.home1.net:5065>",
    )
    assert notify.method == "NOTIFY"
    assert str(notify.uri) == "sip:bob@192.0.2.20:5070;transport=udp"
    assert notify.headers.get_all("route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert notify.headers.get("from") == "<sip:alice@home1.net>;tag=pstag"
    assert notify.headers.get("to") == '"Bob" <sip:bob@home1.net>;tag=bobtag'
    assert notify.call_id == "dlg-1@192.0.2.20"
    assert str(notify.cseq) == "1 NOTIFY"
    assert notify.headers.get("contact") == "<sip:ps.home1.net:5065>"
    assert notify.headers.get("subscription-state") == "active;expires=60"
    assert notify.body == b"<x/>"
    assert str(dialog.build_request("NOTIFY").cseq) == "2 NOTIFY"
    assert dialog.local_cseq == 2
    # what it writes parses back (a Via is the transaction layer's job)
    wire = notify.copy()
    wire.headers.prepend("Via", "SIP/2.0/UDP ps.home1.net:5065;branch=z9hG4bKn1")
    back = parse_datagram(wire.serialize())
    assert isinstance(back, Request)
    assert back.headers.get("content-length") == "4"
    assert back.to.tag == "bobtag" and back.from_.tag == "pstag"


def test_uac_dialog_from_a_2xx() -> None:
    sub = request(cseq=5)
    ok = response(
        [
            "Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>",
            "Contact: <sip:ps.home1.net:5065;transport=tcp>",
        ]
    )
    dialog = Dialog.from_uac_response(sub, ok)
    assert dialog.id == ("dlg-1@192.0.2.20", "bobtag", "pstag")
    assert dialog.local_uri == '"Bob" <sip:bob@home1.net>'
    assert dialog.remote_uri == "<sip:alice@home1.net>"
    assert dialog.remote_target == "sip:ps.home1.net:5065;transport=tcp"
    # the UAC reverses the Record-Route
    assert dialog.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert (dialog.local_cseq, dialog.remote_cseq) == (5, None)
    refresh = dialog.build_request("SUBSCRIBE", headers=[("Expires", "0")])
    assert str(refresh.cseq) == "6 SUBSCRIBE"
    assert str(refresh.uri) == "sip:ps.home1.net:5065;transport=tcp"
    assert refresh.headers.get_all("route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert refresh.to.tag == "pstag" and refresh.from_.tag == "bobtag"


def test_uac_dialog_needs_a_contact_in_the_2xx() -> None:
    with pytest.raises(SipParseError, match="without Contact"):
        Dialog.from_uac_response(request(), response([]))


def test_both_sides_of_a_dialog_agree() -> None:
    """The UAC's in-dialog request finds the UAS dialog, and the other way round."""
    sub = request(headers=["Record-Route: <sip:proxy.example;lr>"])
    uas = Dialog.from_uas_request(sub, "pstag")
    ok = response(["Record-Route: <sip:proxy.example;lr>", "Contact: <sip:ps.home1.net:5065>"])
    uac = Dialog.from_uac_response(sub, ok)
    to_uas = uac.build_request("SUBSCRIBE")
    assert dialog_id_of_request(to_uas) == uas.id
    assert uas.accept_remote_cseq(to_uas)
    to_uac = uas.build_request("NOTIFY")
    assert dialog_id_of_request(to_uac) == uac.id
    assert uac.accept_remote_cseq(to_uac)
    assert uac.remote_cseq == 1


def test_strict_router_in_the_route_set() -> None:
    dialog = Dialog(
        call_id="c",
        local_tag="l",
        remote_tag="r",
        local_uri="<sip:ps.home1.net>",
        remote_uri="<sip:bob@home1.net>",
        remote_target="sip:bob@192.0.2.20:5070",
        route_set=["<sip:strict.example;maddr=192.0.2.99>", "<sip:loose.example;lr>"],
    )
    req = dialog.build_request("NOTIFY")
    # RFC 3261 12.2.1.1: the strict router becomes the Request-URI,
    # the remote target the last Route
    assert str(req.uri) == "sip:strict.example;maddr=192.0.2.99"
    assert req.headers.get_all("route") == [
        "<sip:loose.example;lr>",
        "<sip:bob@192.0.2.20:5070>",
    ]
    assert dialog.route_set == ["<sip:strict.example;maddr=192.0.2.99>", "<sip:loose.example;lr>"]
    assert isinstance(dialog.next_hop(), SipURI)
    assert str(dialog.next_hop()) == "sip:strict.example;maddr=192.0.2.99"


def test_next_hop_without_route_set_is_the_remote_target() -> None:
    dialog = Dialog("c", "l", "r", "<sip:a@x>", "<sip:b@x>", "sip:b@192.0.2.20:5070")
    assert str(dialog.next_hop()) == "sip:b@192.0.2.20:5070"
    req = dialog.build_request("NOTIFY")
    assert str(req.uri) == "sip:b@192.0.2.20:5070"
    assert req.headers.get_all("route") == []


def test_no_remote_tag_means_a_to_without_tag() -> None:
    dialog = Dialog("c", "l", "", "<sip:a@x>", "<sip:b@x>", "sip:b@192.0.2.20")
    assert dialog.build_request("NOTIFY").headers.get("to") == "<sip:b@x>"


def test_remote_cseq_checks() -> None:
    dialog = Dialog("c", "l", "r", "<sip:a@x>", "<sip:b@x>", "sip:b@192.0.2.20", remote_cseq=None)
    assert dialog.accept_remote_cseq(request(cseq=10, to_tag="l"))
    assert dialog.remote_cseq == 10
    assert not dialog.accept_remote_cseq(request(cseq=9, to_tag="l"))
    assert not dialog.accept_remote_cseq(request(cseq=10, to_tag="l"))
    assert dialog.remote_cseq == 10
    assert dialog.accept_remote_cseq(request(cseq=11, to_tag="l"))
    assert dialog.remote_cseq == 11


def test_target_refresh() -> None:
    dialog = Dialog("c", "l", "r", "<sip:a@x>", "<sip:b@x>", "sip:b@192.0.2.20")
    dialog.refresh_target(request(contact="<sip:bob@198.51.100.9:6000;transport=tcp>"))
    assert dialog.remote_target == "sip:bob@198.51.100.9:6000;transport=tcp"
    dialog.refresh_target(request(contact=None))
    assert dialog.remote_target == "sip:bob@198.51.100.9:6000;transport=tcp"
    dialog.refresh_target(response(["Contact: <sip:bob@203.0.113.1>"]))
    assert dialog.remote_target == "sip:bob@203.0.113.1"


def test_dialog_persistence_round_trip() -> None:
    dialog = Dialog.from_uas_request(
        request(headers=["Record-Route: <sip:p1.example;lr>"], uri="sips:alice@home1.net"), "t"
    )
    dialog.build_request("NOTIFY")
    data = json.loads(json.dumps(dialog.to_dict()))
    assert data == {
        "call_id": "dlg-1@192.0.2.20",
        "local_tag": "t",
        "remote_tag": "bobtag",
        "local_uri": "<sip:alice@home1.net>",
        "remote_uri": '"Bob" <sip:bob@home1.net>',
        "remote_target": "sip:bob@192.0.2.20:5070;transport=udp",
        "route_set": ["<sip:p1.example;lr>"],
        "local_cseq": 1,
        "remote_cseq": 1,
        "secure": True,
    }
    restored = Dialog.from_dict(data)
    assert restored == dialog
    assert str(restored.build_request("NOTIFY").cseq) == "2 NOTIFY"
    assert dialog.local_cseq == 1  # independent copies


def test_dialog_id_of_request() -> None:
    assert dialog_id_of_request(request(to_tag="pstag")) == ("dlg-1@192.0.2.20", "pstag", "bobtag")
    assert dialog_id_of_request(request()) == ("dlg-1@192.0.2.20", "", "bobtag")


# -- proxy: validation (16.3) ---------------------------------------------------------------------------


OWN = {("scscf.home1.net", 6060)}


def own_via(host: str, port: int | None) -> bool:
    return (host, port) in OWN


def own_uri(uri: SipURI) -> bool:
    return uri.host == "scscf.home1.net" and uri.port in (None, 6060)


@pytest.mark.parametrize(
    ("method", "mf", "expected"),
    [
        ("SUBSCRIBE", 0, Rejection(483, "Too Many Hops")),
        ("PUBLISH", 0, Rejection(483, "Too Many Hops")),
        ("ACK", 0, None),
        ("SUBSCRIBE", 1, None),
        ("SUBSCRIBE", None, None),
    ],
)
def test_max_forwards(method: str, mf: int | None, expected: Rejection | None) -> None:
    assert validate(request(method, max_forwards=mf)) == expected


def test_proxy_require() -> None:
    req = request(headers=["Proxy-Require: sec-agree, foo"])
    assert validate(req) == Rejection(420, "Bad Extension", (("Unsupported", "sec-agree, foo"),))
    assert validate(req, supported=frozenset({"sec-agree"})) == Rejection(
        420, "Bad Extension", (("Unsupported", "foo"),)
    )
    assert validate(req, supported=frozenset({"sec-agree", "foo"})) is None


def _forwarded_by_us(original: Request) -> Request:
    """``original`` as it comes back after we forwarded it (our Via on top)."""
    out = prepare_forward(original, record_route="<sip:scscf.home1.net:6060;lr>")
    out.headers.prepend("Via", f"SIP/2.0/TCP scscf.home1.net:6060;branch={proxy_branch(original)}")
    return out


def test_a_request_that_comes_back_unchanged_has_looped() -> None:
    original = request(headers=["Route: <sip:scscf.home1.net:6060;lr>"])
    looped = _forwarded_by_us(original)
    assert validate(looped, is_own_via=own_via) == Rejection(482, "Loop Detected")
    # without knowing its own Via the proxy cannot tell
    assert validate(looped) is None


def test_a_spiral_is_not_a_loop() -> None:
    original = request(headers=["Route: <sip:scscf.home1.net:6060;lr>"])
    spiral = _forwarded_by_us(original)
    spiral.uri = SipURI(scheme="sip", user="alice", host="ps.home1.net", port=5065)
    assert validate(spiral, is_own_via=own_via) is None
    route_changed = _forwarded_by_us(original)
    route_changed.headers.set_all("Route", ["<sip:scscf.home1.net:6060;lr;orig>"])
    assert validate(route_changed, is_own_via=own_via) is None


def test_loop_check_skips_other_vias() -> None:
    original = request()
    branch = proxy_branch(original)
    elsewhere = original.copy()
    elsewhere.headers.prepend("Via", f"SIP/2.0/TCP other.example:6060;branch={branch}")
    assert validate(elsewhere, is_own_via=own_via) is None
    # one of our Vias whose branch is not one of our proxy branches (no '.')
    ours_as_ua = original.copy()
    ours_as_ua.headers.prepend("Via", "SIP/2.0/TCP scscf.home1.net:6060;branch=z9hG4bKabc")
    assert validate(ours_as_ua, is_own_via=own_via) is None


def test_loop_found_below_the_top_via() -> None:
    original = request()
    looped = _forwarded_by_us(original)
    looped.headers.prepend("Via", "SIP/2.0/TCP icscf.home1.net:4060;branch=z9hG4bKi.1")
    assert validate(looped, is_own_via=own_via) == Rejection(482, "Loop Detected")


def test_proxy_branch_shape() -> None:
    req = request()
    a, b = proxy_branch(req), proxy_branch(req)
    pattern = r"z9hG4bK([0-9a-f]{12})\.[0-9a-f]{12}"
    ma, mb = re.fullmatch(pattern, a), re.fullmatch(pattern, b)
    assert ma and mb
    assert ma.group(1) == mb.group(1) == loop_hash(req)
    assert a != b


def test_loop_hash_covers_what_makes_a_request_distinct() -> None:
    base = request()
    h = loop_hash(base)
    assert loop_hash(base.copy()) == h
    assert loop_hash(prepare_forward(base, record_route="<sip:x;lr>")) == h
    via = base.copy()
    via.headers.prepend("Via", "SIP/2.0/UDP other.example;branch=z9hG4bKzz")
    assert loop_hash(via) == h
    assert loop_hash(request(uri="sip:bob@home1.net")) != h
    assert loop_hash(request(cseq=2)) != h
    assert loop_hash(request(to_tag="x")) != h
    assert loop_hash(request(headers=["Route: <sip:p.example;lr>"])) != h
    assert loop_hash(request(headers=["Proxy-Require: foo"])) != h


# -- proxy: routing (16.4), forwarding (16.6), responses (16.7) --------------------------------------------------


def test_preprocess_pops_our_own_route_and_returns_it() -> None:
    req = request(headers=["Route: <sip:scscf.home1.net:6060;lr;orig>, <sip:ps.home1.net:5065;lr>"])
    popped = preprocess_route(req, own_uri)
    assert isinstance(popped, NameAddr)
    assert popped.uri.param("orig") == ""  # type: ignore[union-attr]
    assert str(popped) == "<sip:scscf.home1.net:6060;lr;orig>"
    assert req.headers.get_all("route") == ["<sip:ps.home1.net:5065;lr>"]
    assert str(req.uri) == "sip:alice@home1.net"


def test_preprocess_leaves_a_foreign_route() -> None:
    req = request(headers=["Route: <sip:ps.home1.net:5065;lr>"])
    assert preprocess_route(req, own_uri) is None
    assert req.headers.get_all("route") == ["<sip:ps.home1.net:5065;lr>"]
    assert preprocess_route(request(), own_uri) is None


def test_preprocess_undoes_a_strict_routers_rewrite() -> None:
    # a strict router put our Record-Route URI in the Request-URI and the real
    # target at the end of the Route header
    req = request(
        uri="sip:scscf.home1.net:6060",
        headers=["Route: <sip:ps.home1.net:5065;lr>", "Route: <sip:alice@home1.net>"],
    )
    assert preprocess_route(req, own_uri) is None
    assert str(req.uri) == "sip:alice@home1.net"
    assert req.headers.get_all("route") == ["<sip:ps.home1.net:5065;lr>"]


def test_preprocess_strict_fix_up_then_own_route() -> None:
    req = request(
        uri="sip:scscf.home1.net",
        headers=["Route: <sip:scscf.home1.net:6060;lr>, <sip:alice@home1.net;user=phone>"],
    )
    popped = preprocess_route(req, own_uri)
    assert popped is not None and str(popped) == "<sip:scscf.home1.net:6060;lr>"
    assert str(req.uri) == "sip:alice@home1.net;user=phone"
    assert req.headers.get_all("route") == []


def test_request_uri_naming_us_without_routes_is_left_alone() -> None:
    req = request(uri="sip:scscf.home1.net:6060")
    assert preprocess_route(req, own_uri) is None
    assert str(req.uri) == "sip:scscf.home1.net:6060"


def test_prepare_forward_copies_decrements_and_record_routes() -> None:
    req = request(max_forwards=70, headers=["Record-Route: <sip:pcscf.home1.net;lr>"])
    out = prepare_forward(req, record_route="<sip:scscf.home1.net:6060;lr>")
    assert out is not req
    assert out.headers.get("max-forwards") == "69"
    assert out.headers.get_all("record-route") == [
        "<sip:scscf.home1.net:6060;lr>",
        "<sip:pcscf.home1.net;lr>",
    ]
    # the original is untouched (its server transaction still needs it)
    assert req.headers.get("max-forwards") == "70"
    assert req.headers.get_all("record-route") == ["<sip:pcscf.home1.net;lr>"]
    plain = prepare_forward(req)
    assert plain.headers.get_all("record-route") == ["<sip:pcscf.home1.net;lr>"]


def test_prepare_forward_adds_max_forwards_70_when_missing() -> None:
    # RFC 3261 16.6 step 3: add one, whose value SHOULD be 70
    out = prepare_forward(request(max_forwards=None))
    assert out.headers.get("max-forwards") == "70"
    assert out.headers.count("max-forwards") == 1


def test_next_hop() -> None:
    routed = next_hop(request(headers=["Route: <sip:icscf.home1.net:4060;lr;transport=tcp>"]))
    assert isinstance(routed, NameAddr)
    assert str(routed.uri) == "sip:icscf.home1.net:4060;lr;transport=tcp"
    direct = next_hop(request(uri="sip:alice@192.0.2.30:5080"))
    assert isinstance(direct, SipURI)
    assert (direct.host, direct.port) == ("192.0.2.30", 5080)
    with pytest.raises(SipParseError, match="cannot route to tel:\\+15550001"):
        next_hop(request(uri="tel:+15550001"))


def test_relay_response_removes_only_our_via() -> None:
    lines = [
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/TCP scscf.home1.net:6060;branch=z9hG4bKs.1, "
        "SIP/2.0/UDP pcscf.home1.net;branch=z9hG4bKp",
        "Via: SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bKua1",
        "From: <sip:bob@home1.net>;tag=a",
        "To: <sip:alice@home1.net>;tag=b",
        "Call-ID: x",
        "CSeq: 1 SUBSCRIBE",
        "Content-Length: 0",
        "",
        "",
    ]
    resp = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(resp, Response)
    out = relay_response(resp)
    assert out.headers.get_all("via") == [
        "SIP/2.0/UDP pcscf.home1.net;branch=z9hG4bKp",
        "SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bKua1",
    ]
    assert len(resp.headers.get_all("via")) == 3  # the original is untouched
    assert (out.status, out.reason) == (200, "OK")
