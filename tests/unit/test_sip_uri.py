"""SIP, SIPS and tel URIs: parsing, byte-exact serialisation, RFC 3261 19.1.4 comparison."""

from __future__ import annotations

import pytest

from presence_ims.sip import AbsoluteURI, SipParseError, SipURI, TelURI, parse_uri, uri_equal


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


def tel(text: str) -> TelURI:
    uri = parse_uri(text)
    assert isinstance(uri, TelURI)
    return uri


def eq(a: str, b: str) -> bool:
    """Equivalence, checked both ways (the relation must be symmetric)."""
    forward = uri_equal(parse_uri(a), parse_uri(b))
    backward = uri_equal(parse_uri(b), parse_uri(a))
    assert forward == backward, f"asymmetric comparison of {a} and {b}"
    return forward


# -- parsing ------------------------------------------------------------------


def test_sip_uri_all_parts() -> None:
    u = sip("sip:alice:secret@atlanta.com:5070;transport=tcp;lr;maddr=239.255.255.1?subject=hi&x=y")
    assert u.scheme == "sip"
    assert u.user == "alice"
    assert u.password == "secret"
    assert u.host == "atlanta.com"
    assert u.port == 5070
    assert u.params == (("transport", "tcp"), ("lr", None), ("maddr", "239.255.255.1"))
    assert u.headers == (("subject", "hi"), ("x", "y"))
    assert u.transport == "tcp"
    assert u.lr is True
    assert u.param("lr") == ""
    assert u.param("MADDR") == "239.255.255.1"
    assert u.param("ttl") is None
    assert u.effective_port == 5070
    assert u.aor == "sip:alice@atlanta.com"


def test_sips_default_port_and_scheme_case() -> None:
    u = sip("SIPS:bob@Biloxi.COM")
    assert u.scheme == "sips"
    assert u.port is None
    assert u.effective_port == 5061
    assert sip("sip:bob@biloxi.com").effective_port == 5060
    assert u.aor == "sips:bob@biloxi.com"


def test_host_only_and_ipv4() -> None:
    u = sip("sip:192.0.2.4:5060")
    assert u.user is None and u.host == "192.0.2.4" and u.port == 5060
    assert sip("sip:registrar.biloxi.com").host == "registrar.biloxi.com"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:alice@[2001:db8::10]:5070;transport=tcp", "[2001:db8::10]", 5070),
        ("sips:[::1]:5061", "[::1]", 5061),
        ("sip:[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]", None),
    ],
)
def test_ipv6_hosts(text: str, host: str, port: int | None) -> None:
    u = sip(text)
    assert u.host == host
    assert u.port == port
    assert str(u) == text


def test_escapes_are_kept_as_written_and_unescaped_on_demand() -> None:
    u = sip("sip:%61lice%20smith@atlanta.com")
    assert u.user == "%61lice%20smith"
    assert u.user_unescaped == "alice smith"
    assert str(u) == "sip:%61lice%20smith@atlanta.com"


def test_user_part_with_semicolon_and_telephone_subscriber() -> None:
    # RFC 4475 3.1.1.9: the user part is "user;par=u@example.net"
    u = sip("sip:user;par=u%40example.net@example.com")
    assert u.user == "user;par=u%40example.net"
    assert u.host == "example.com"
    assert u.params == ()
    t = sip("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert t.user == "+1-212-555-1212"
    assert t.password == "1234"
    assert t.param("user") == "phone"


def test_with_and_without_params() -> None:
    u = sip("sip:pcscf.home1.net;lr")
    v = u.with_param("transport", "tcp")
    assert str(v) == "sip:pcscf.home1.net;lr;transport=tcp"
    assert str(v.without_param("LR")) == "sip:pcscf.home1.net;transport=tcp"
    # replacing keeps a single copy
    assert str(v.with_param("transport", "udp")) == "sip:pcscf.home1.net;lr;transport=udp"
    assert str(sip("sip:a@b?x=1").without_headers()) == "sip:a@b"
    assert str(u) == "sip:pcscf.home1.net;lr"  # frozen: the original is unchanged


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sips:1212@gateway.com",
        "sip:alice@192.0.2.4",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:%61lice@AtLanTa.CoM;Transport=TCP",
        "sip:[2001:db8::10]:5070;Maddr=[2001:db8::1];ttl=15",
        "sip:j%40s0n@example.com;foo=%7Ebar",
        "sip:user@host.example.;lr",
        "sip:host;a;b=c;d",
        "tel:+1-201-555-0123",
        "tel:7042;phone-context=example.com",
        "tel:863-1234;phone-context=+1-914-555",
        "tel:+358-555-1234567;postd=pp22;isub=1411",
    ],
)
def test_str_round_trips_byte_exact(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_tel_uri() -> None:
    t = tel("tel:+1-201-555-0123;ext=22")
    assert t.scheme == "tel"
    assert t.is_global
    assert t.number == "+1-201-555-0123"
    assert t.digits == "+12015550123"
    assert t.param("EXT") == "22"
    assert t.aor == "tel:+12015550123"
    local = tel("tel:7042;phone-context=example.com")
    assert not local.is_global
    assert local.param("phone-context") == "example.com"
    assert tel("tel:(555)123.4567;phone-context=+1").digits == "5551234567"


def test_other_schemes_are_opaque() -> None:
    for text in ("pres:alice@home1.net", "im:bob@home1.net", "http://example.com/x?y=1"):
        u = parse_uri(text)
        assert isinstance(u, AbsoluteURI)
        assert str(u) == text
        assert u.aor == text
    assert parse_uri("PRES:alice@home1.net").scheme == "pres"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice@atlanta.com",
        ":alice@atlanta.com",
        "sip:",
        "sip:alice@",
        "sip:@atlanta.com",
        "sip:alice@atlanta.com:",
        "sip:alice@atlanta.com:99999",
        "sip:alice@atlanta.com:12a",
        "sip:alice@atla nta.com",
        "sip:alice@-atlanta.com",
        "sip:alice@atlanta.com;",
        "sip:alice@atlanta.com;;lr",
        "sip:alice@atlanta.com;=tcp",
        "sip:alice@atlanta.com;transport=t cp",
        "sip:alice@atlanta.com?",
        "sip:alice@atlanta.com?subject",
        "sip:alice@atlanta.com?=x",
        "sip:alice@atlanta.com?a=b&",
        "sip:alice@[2001:db8::1",
        "sip:alice@2001:db8::1",
        "sip:al ice@atlanta.com",
        "sip:alice<@atlanta.com",
        "sip:alice@atlanta.com>",
        "sip:alice@atl%41nta.com",
        "tel:",
        "tel:+",
        "tel:12 34",
        "tel:1234",  # local number without phone-context (RFC 3966 5.1.5)
        "tel:+1234;",
        "tel:+1234;=x",
        "pres:",
        "pres:alice <x>",
        "im:a\"b",
    ],
)
def test_malformed_uris_raise_sip_parse_error(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.reason
    assert info.value.status == 400


# -- RFC 3261 19.1.4 comparison -------------------------------------------------

# The RFC's own list of equivalent URIs.
RFC_EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]

# The RFC's own list of non-equivalent URIs.
RFC_NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
]


@pytest.mark.parametrize(("a", "b"), RFC_EQUIVALENT)
def test_rfc3261_equivalent_examples(a: str, b: str) -> None:
    assert eq(a, b)


@pytest.mark.parametrize(("a", "b"), RFC_NOT_EQUIVALENT)
def test_rfc3261_non_equivalent_examples(a: str, b: str) -> None:
    assert not eq(a, b)


def test_sip_and_sips_never_equivalent() -> None:
    assert not eq("sip:alice@atlanta.com", "sips:alice@atlanta.com")
    assert not eq("sip:alice@atlanta.com:5061", "sips:alice@atlanta.com:5061")


def test_scheme_is_case_insensitive() -> None:
    assert eq("SIP:alice@atlanta.com", "sip:alice@atlanta.com")
    assert eq("SiPs:alice@atlanta.com", "sips:alice@atlanta.com")


def test_userinfo_is_case_sensitive() -> None:
    assert not eq("sip:alice@atlanta.com", "sip:Alice@atlanta.com")
    assert not eq("sip:alice:pw@atlanta.com", "sip:alice:PW@atlanta.com")
    assert eq("sip:alice:pw@atlanta.com", "sip:alice:%70w@atlanta.com")
    assert not eq("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com")


def test_host_is_case_insensitive_and_never_resolved() -> None:
    assert eq("sip:alice@ATLANTA.com", "sip:alice@atlanta.COM")
    assert eq("sip:[2001:DB8::1]", "sip:[2001:db8::1]")
    assert not eq("sip:alice@atlanta.com", "sip:alice@atlanta.com.example")


def test_unreserved_escapes_are_equivalent_reserved_are_not() -> None:
    assert eq("sip:%61%6C%69%63%65@atlanta.com", "sip:alice@atlanta.com")
    assert eq("sip:alice@atlanta.com;foo=%62ar", "sip:alice@atlanta.com;foo=bar")
    assert eq("sip:a%7eb@h", "sip:a~b@h")
    # hex digits of an escape are case-insensitive
    assert eq("sip:a%3bb@h", "sip:a%3Bb@h")
    # an escaped reserved character is not the character itself
    assert not eq("sip:a%3Bb@h", "sip:a;b@h")
    assert not eq("sip:a%2Cb@h", "sip:a,b@h")
    assert not eq("sip:a%3Db@h", "sip:a=b@h")


def test_default_port_does_not_match_absent_port() -> None:
    assert not eq("sip:alice@atlanta.com", "sip:alice@atlanta.com:5060")
    assert not eq("sips:alice@atlanta.com", "sips:alice@atlanta.com:5061")
    assert eq("sip:alice@atlanta.com:5060", "sip:alice@atlanta.com:5060")
    assert not eq("sip:alice@atlanta.com:5060", "sip:alice@atlanta.com:5070")


@pytest.mark.parametrize(
    "param",
    ["transport=udp", "user=ip", "ttl=1", "method=INVITE", "maddr=239.255.255.1"],
)
def test_significant_param_in_one_uri_only_never_matches(param: str) -> None:
    # user, ttl, method, maddr and transport: present in only one URI never match,
    # even with their default value.
    assert not eq("sip:alice@atlanta.com", f"sip:alice@atlanta.com;{param}")


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("sip:h;transport=TCP", "sip:h;TRANSPORT=tcp", True),
        ("sip:h;transport=tcp", "sip:h;transport=udp", False),
        ("sip:h;user=phone", "sip:h;user=PHONE", True),
        ("sip:h;user=phone", "sip:h;user=ip", False),
        ("sip:h;ttl=1", "sip:h;ttl=2", False),
        ("sip:h;method=INVITE", "sip:h;method=invite", True),
        ("sip:h;method=INVITE", "sip:h;method=BYE", False),
        ("sip:h;maddr=239.255.255.1", "sip:h;maddr=239.255.255.2", False),
    ],
)
def test_significant_params_compare_values_case_insensitively(a: str, b: str, equal: bool) -> None:
    assert eq(a, b) is equal


def test_other_params_must_match_only_when_in_both() -> None:
    assert eq("sip:h;foo=bar", "sip:h;FOO=BAR")
    assert not eq("sip:h;foo=bar", "sip:h;foo=baz")
    assert eq("sip:h;foo=bar", "sip:h;baz=qux")
    assert eq("sip:h;lr", "sip:h")
    assert not eq("sip:h;foo", "sip:h;foo=bar")
    # order of parameters does not matter
    assert eq("sip:h;a=1;b=2", "sip:h;b=2;a=1")


def test_headers_are_never_ignored() -> None:
    assert not eq("sip:h?subject=x", "sip:h")
    assert not eq("sip:h?subject=x", "sip:h?subject=y")
    assert not eq("sip:h?subject=x", "sip:h?subject=x&priority=urgent")
    assert eq("sip:h?subject=x&priority=urgent", "sip:h?priority=urgent&subject=x")
    # header names are case-insensitive, values compare unescaped
    assert eq("sip:h?Subject=project%20x", "sip:h?subject=project%20%78")


# -- tel comparison (RFC 3966 section 4) -------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("tel:+1-201-555-0123", "tel:+12015550123", True),
        ("tel:+1(201)555.0123", "tel:+1-201-555-0123", True),
        ("tel:+12015550123", "tel:+12015550124", False),
        ("tel:7042;phone-context=example.com", "tel:7042;phone-context=EXAMPLE.com", True),
        ("tel:7042;phone-context=example.com", "tel:7042;phone-context=example.net", False),
        ("tel:7042;phone-context=+1", "tel:+17042", False),  # local vs global
        ("tel:+1234;ext=1;isub=2", "tel:+1234;isub=2;ext=1", True),  # order-free
        ("tel:+1234;ext=1", "tel:+1234", False),  # parameters must all match
        ("tel:+1234;EXT=a1", "tel:+1234;ext=A1", True),
        ("tel:ab12;phone-context=x.example", "tel:AB12;phone-context=x.example", True),
    ],
)
def test_tel_comparison(a: str, b: str, equal: bool) -> None:
    assert eq(a, b) is equal


def test_different_uri_kinds_never_equal() -> None:
    assert not eq("tel:+12015550123", "sip:+12015550123@example.com;user=phone")
    assert not eq("pres:alice@home1.net", "sip:alice@home1.net")
    assert eq("pres:alice@home1.net", "pres:alice@home1.net")
    assert not eq("pres:alice@home1.net", "im:alice@home1.net")
