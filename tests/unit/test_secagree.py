"""Security-Client/Server/Verify values (RFC 3329, TS 33.203 Annex H)."""

from __future__ import annotations

import pytest

from presence_ims.security import (
    SecAgreeError,
    SecurityError,
    SecurityMechanism,
    format_mechanisms,
    negotiate,
    parse_mechanisms,
    verify_matches,
)

CLIENT = (
    "ipsec-3gpp; alg=hmac-sha-1-96; ealg=aes-cbc; prot=esp; mod=trans; "
    "spi-c=1111; spi-s=2222; port-c=5062; port-s=5064"
)


def offer(alg: str, ealg: str | None, q: float | None = None) -> SecurityMechanism:
    return SecurityMechanism(
        "ipsec-3gpp", alg=alg, ealg=ealg, spi_c=1, spi_s=2, port_c=5062, port_s=5064, q=q
    )


def test_parse_ts33203_example() -> None:
    [m] = parse_mechanisms(CLIENT)
    assert m == SecurityMechanism(
        name="ipsec-3gpp",
        alg="hmac-sha-1-96",
        ealg="aes-cbc",
        prot="esp",
        mod="trans",
        spi_c=1111,
        spi_s=2222,
        port_c=5062,
        port_s=5064,
    )


def test_parse_several_with_q_and_unknown_params() -> None:
    value = (
        'ipsec-3gpp;q=0.1;alg=hmac-md5-96;spi-c=1;spi-s=2;port-c=3;port-s=4;Foo;bar="x, y;z", '
        "IPSEC-3GPP ; ALG = HMAC-SHA-1-96 ; spi-c=4294967295 ; spi-s=1 ; port-c=65535 ; port-s=1,"
        " digest;d-alg=md5;d-qop=auth, tls;q=0.2"
    )
    a, b, c, d = parse_mechanisms(value)
    assert (a.q, a.alg, a.ealg, a.effective_ealg) == (0.1, "hmac-md5-96", None, "null")
    assert a.params == (("bar", '"x, y;z"'), ("foo", None))
    assert a.param("BAR") == '"x, y;z"' and a.param("foo") is None and a.param("zz") is None
    assert (b.name, b.alg, b.spi_c, b.port_c) == ("ipsec-3gpp", "hmac-sha-1-96", 2**32 - 1, 65535)
    assert (c.name, c.params) == ("digest", (("d-alg", "md5"), ("d-qop", "auth")))
    assert (d.name, d.q) == ("tls", 0.2)


def test_round_trip_through_text() -> None:
    mechanisms = parse_mechanisms(CLIENT + ', ipsec-3gpp;q=0.5;alg=hmac-md5-96;x="1";y')
    text = format_mechanisms(mechanisms)
    assert parse_mechanisms(text) == mechanisms
    assert text.startswith("ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;prot=esp;mod=trans;")
    assert "q=0.5" in text


@pytest.mark.parametrize(
    "value",
    [
        "",
        " , ",
        "ipsec-3gpp; spi-c=abc",
        "ipsec-3gpp; spi-c=-1",
        "ipsec-3gpp; spi-c=0",
        "ipsec-3gpp; spi-c=4294967296",
        "ipsec-3gpp; spi-s=99999999999",
        "ipsec-3gpp; port-c=0",
        "ipsec-3gpp; port-s=65536",
        "ipsec-3gpp; port-s=5 064",
        "ipsec-3gpp; port-s=",
        "ipsec-3gpp; alg",
        "ipsec-3gpp; alg=a; alg=b",
        "ipsec-3gpp; q=2",
        "ipsec-3gpp; q=0.1234",
        "ipsec-3gpp; =x",
        'ipsec-3gpp; x="unterminated',
        "ipsec 3gpp",
        "ipsec-3gpp; x=a b",
    ],
)
def test_malformed(value: str) -> None:
    with pytest.raises(SecAgreeError):
        parse_mechanisms(value)


def test_error_is_a_security_error() -> None:
    with pytest.raises(SecurityError) as info:
        parse_mechanisms("ipsec-3gpp; port-c=x")
    assert "port-c" in info.value.reason


def test_negotiate_prefers_encryption_then_sha1() -> None:
    offers = [
        offer("hmac-md5-96", None),
        offer("hmac-sha-1-96", "null"),
        offer("hmac-md5-96", "des-ede3-cbc"),
        offer("hmac-md5-96", "aes-cbc"),
        offer("hmac-sha-1-96", "des-ede3-cbc"),
        offer("hmac-sha-1-96", "aes-cbc"),
    ]
    for allow in (False, True):
        chosen = negotiate(offers, allow_null_encryption=allow)
        assert chosen == offer("hmac-sha-1-96", "aes-cbc")
    assert negotiate(offers[:3], allow_null_encryption=False) == offers[2]
    assert negotiate(offers[:2], allow_null_encryption=True) == offers[1]


def test_negotiate_null_only_when_allowed() -> None:
    offers = [offer("hmac-sha-1-96", None), offer("hmac-md5-96", "null")]
    assert negotiate(offers, allow_null_encryption=False) is None
    assert negotiate(offers, allow_null_encryption=True) == offers[0]


def test_negotiate_uses_q_as_tie_breaker() -> None:
    low, high = offer("hmac-sha-1-96", "aes-cbc", q=0.1), offer("hmac-sha-1-96", "aes-cbc", q=0.9)
    assert negotiate([low, high], allow_null_encryption=False) is high


@pytest.mark.parametrize(
    "value",
    [
        "digest;d-alg=md5",
        "ipsec-3gpp;alg=hmac-sha-256;ealg=aes-cbc;spi-c=1;spi-s=2;port-c=3;port-s=4",
        "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-gcm;spi-c=1;spi-s=2;port-c=3;port-s=4",
        "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;prot=ah;spi-c=1;spi-s=2;port-c=3;port-s=4",
        "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;mod=tun;spi-c=1;spi-s=2;port-c=3;port-s=4",
        "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=1;port-c=3;port-s=4",
        "ipsec-3gpp;ealg=aes-cbc;spi-c=1;spi-s=2;port-c=3;port-s=4",
    ],
)
def test_negotiate_skips_unusable(value: str) -> None:
    assert negotiate(parse_mechanisms(value), allow_null_encryption=True) is None


def test_verify_matches_exact_copy() -> None:
    server = parse_mechanisms(
        "ipsec-3gpp;q=0.1;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=3333;spi-s=4444;"
        "port-c=5066;port-s=5068"
    )
    verify = parse_mechanisms(
        "ipsec-3gpp; q=0.100; alg=hmac-sha-1-96; ealg=aes-cbc; prot=esp; mod=trans; "
        "spi-c=3333; spi-s=4444; port-c=5066; port-s=5068"
    )
    assert verify_matches(verify, server)


def test_verify_absent_ealg_equals_null() -> None:
    a = parse_mechanisms("ipsec-3gpp;alg=hmac-md5-96;spi-c=1;spi-s=2;port-c=3;port-s=4")
    b = parse_mechanisms("ipsec-3gpp;alg=hmac-md5-96;ealg=null;spi-c=1;spi-s=2;port-c=3;port-s=4")
    assert verify_matches(a, b)


@pytest.mark.parametrize(
    "change",
    [
        ("ealg=aes-cbc", "ealg=null"),  # the downgrade Kamailio users hit
        ("ealg=aes-cbc", "ealg=des-ede3-cbc"),
        ("alg=hmac-sha-1-96", "alg=hmac-md5-96"),
        ("spi-c=3333", "spi-c=3334"),
        ("port-s=5068", "port-s=5069"),
        ("q=0.1", "q=0.2"),
    ],
)
def test_verify_detects_downgrade(change: tuple[str, str]) -> None:
    text = (
        "ipsec-3gpp;q=0.1;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=3333;spi-s=4444;"
        "port-c=5066;port-s=5068"
    )
    server = parse_mechanisms(text)
    verify = parse_mechanisms(text.replace(*change))
    assert not verify_matches(verify, server)


def test_verify_list_order_and_length() -> None:
    a = offer("hmac-sha-1-96", "aes-cbc")
    b = offer("hmac-md5-96", "aes-cbc")
    assert verify_matches([a, b], [b, a])
    assert not verify_matches([a], [a, b])
    assert not verify_matches([a, a], [a, b])
    assert not verify_matches([], [a])
