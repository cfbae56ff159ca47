"""The UAS request checks of RFC 3261 8.2.1-8.2.3."""

from __future__ import annotations

from pathlib import Path

import pytest

from presence_ims.sip import Request, parse_datagram, validate_request
from presence_ims.sip.checks import (
    KNOWN_METHODS,
    Rejection,
    check_method,
    check_proxy_require,
    check_require,
    check_uri_scheme,
)

RFC4475 = Path(__file__).resolve().parents[1] / "data" / "rfc4475"
ALLOWED = frozenset({"OPTIONS", "PUBLISH", "SUBSCRIBE", "NOTIFY"})


def req(method: str = "OPTIONS", uri: str = "sip:ps.home1.net", *extra: str) -> Request:
    cseq_method = "INVITE" if method == "ACK" else method
    data = "\r\n".join(
        (
            f"{method} {uri} SIP/2.0",
            "Via: SIP/2.0/UDP ue.home1.net;branch=z9hG4bK1",
            "From: <sip:alice@home1.net>;tag=1",
            "To: <sip:ps.home1.net>",
            "Call-ID: checks-1",
            f"CSeq: 1 {cseq_method}",
            *extra,
            "Content-Length: 0",
            "",
            "",
        )
    ).encode()
    msg = parse_datagram(data)
    assert isinstance(msg, Request)
    validate_request(msg)
    return msg


def torture(tag: str) -> Request:
    msg = parse_datagram((RFC4475 / f"{tag}.sip").read_bytes())
    assert isinstance(msg, Request)
    validate_request(msg)
    return msg


def test_allowed_method_passes() -> None:
    assert check_method(req("PUBLISH"), ALLOWED) is None


def test_known_but_not_allowed_method_is_405_with_allow() -> None:
    rejection = check_method(req("INVITE"), ALLOWED)
    assert rejection == Rejection(
        405, "Method Not Allowed", (("Allow", "NOTIFY, OPTIONS, PUBLISH, SUBSCRIBE"),)
    )


def test_unknown_method_is_501_with_allow() -> None:
    rejection = check_method(req("FOO"), ALLOWED)
    assert rejection is not None
    assert rejection.status == 501
    assert rejection.headers[0][0] == "Allow"


def test_methods_are_case_sensitive() -> None:
    # RFC 3261 7.1: the method is case-sensitive; "options" is an unknown method
    rejection = check_method(req("options"), ALLOWED)
    assert rejection is not None and rejection.status == 501


def test_known_methods() -> None:
    assert {"INVITE", "ACK", "CANCEL", "PUBLISH", "SUBSCRIBE", "NOTIFY", "MESSAGE"} <= KNOWN_METHODS
    assert "RE%47IST%45R" not in KNOWN_METHODS


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("sip:ps.home1.net", None),
        ("sips:ps.home1.net", None),
        ("tel:+358504821437", None),
        ("pres:alice@home1.net", 416),
        ("http://example.com/", 416),
    ],
)
def test_uri_scheme(uri: str, status: int | None) -> None:
    rejection = check_uri_scheme(req("OPTIONS", uri))
    assert (rejection.status if rejection else None) == status


def test_uri_scheme_custom_set() -> None:
    assert check_uri_scheme(req("OPTIONS", "tel:+1234"), {"sip"}) == Rejection(
        416, "Unsupported URI Scheme"
    )
    assert check_uri_scheme(req("OPTIONS", "sips:a@b"), {"sips"}) is None


def test_require() -> None:
    assert check_require(req("OPTIONS", "sip:a@b", "Require: path"), {"path"}) is None
    assert check_require(req("OPTIONS", "sip:a@b", "Require: PATH"), {"path"}) is None
    rejection = check_require(req("OPTIONS", "sip:a@b", "Require: path, foo", "Require: bar"), {"path"})
    assert rejection == Rejection(420, "Bad Extension", (("Unsupported", "foo, bar"),))
    assert check_require(req("OPTIONS"), set()) is None


def test_require_is_ignored_for_ack_and_cancel() -> None:
    for method in ("ACK", "CANCEL"):
        assert check_require(req(method, "sip:a@b", "Require: foo"), set()) is None


def test_proxy_require() -> None:
    msg = req("OPTIONS", "sip:a@b", "Proxy-Require: sec-agree", "Require: other")
    assert check_proxy_require(msg, {"sec-agree"}) is None
    rejection = check_proxy_require(msg, set())
    assert rejection is not None and rejection.headers == (("Unsupported", "sec-agree"),)


# -- the RFC 4475 application-layer messages ---------------------------------------


def test_rfc4475_unknown_schemes_get_416() -> None:
    for tag in ("unkscm", "novelsc"):
        rejection = check_uri_scheme(torture(tag))
        assert rejection is not None and rejection.status == 416, tag


def test_rfc4475_bext01_gets_420_listing_the_options() -> None:
    rejection = check_require(torture("bext01"), set())
    assert rejection is not None and rejection.status == 420
    assert rejection.headers == (("Unsupported", "nothingSupportsThis, nothingSupportsThisEither"),)
    proxy = check_proxy_require(torture("bext01"), set())
    assert proxy is not None
    assert proxy.headers == (("Unsupported", "noProxiesSupportThis, norDoAnyProxiesSupportThis"),)


def test_rfc4475_unknown_methods_get_501() -> None:
    for tag in ("intmeth", "esc02"):
        rejection = check_method(torture(tag), ALLOWED)
        assert rejection is not None and rejection.status == 501, tag


def test_rfc4475_invite_at_a_non_invite_element_gets_405() -> None:
    for tag in ("invut", "sdp01", "wsinv", "inv2543"):
        rejection = check_method(torture(tag), ALLOWED)
        assert rejection is not None and rejection.status == 405, tag
