"""Digest authentication for SIP: MD5 (RFC 2617) and AKAv1-MD5 (RFC 3310)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from presence_ims.sip.digest import (
    Challenge,
    Credentials,
    DigestError,
    NonceManager,
    NonceStatus,
    compute_response,
    parse_challenge,
    parse_credentials,
    verify,
)

SECRET = b"0123456789abcdef0123456789abcdef"


# -- known answers ---------------------------------------------------------------


def test_rfc2617_mufasa() -> None:
    """RFC 2617 section 3.5."""
    response = compute_response(
        username="Mufasa",
        realm="testrealm@host.com",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        nc="00000001",
        cnonce="0a4f113b",
        qop="auth",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc2617_mufasa_from_header() -> None:
    creds = parse_credentials(
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'qop=auth, nc=00000001, cnonce="0a4f113b", '
        'response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert verify(creds, password="Circle Of Life", method="GET")
    assert not verify(creds, password="Circle of Life", method="GET")
    assert not verify(creds, password="Circle Of Life", method="POST")


def test_rfc3310_akav1_md5_check_value() -> None:
    """TS 35.208 set 1 RES as the raw password (REFERENCE.md)."""
    res = bytes.fromhex("a54211d5e3ba50bf")
    nonce = "I1U8vpY3qJ0hiuZNrke/NVXzKLQ1d7m5Sp/6w1Tfr7M="  # base64(RAND || AUTN)
    response = compute_response(
        username="user1_private@home1.net",
        realm="home1.net",
        password=res,
        method="REGISTER",
        uri="sip:home1.net",
        nonce=nonce,
        nc="00000001",
        cnonce="0a4f113b",
        qop="auth",
        algorithm="AKAv1-MD5",
    )
    assert response == "d631c17126f6ad3a5984ced4459958df"
    creds = Credentials(
        username="user1_private@home1.net",
        realm="home1.net",
        uri="sip:home1.net",
        nonce=nonce,
        response=response.upper(),
        algorithm="AKAv1-MD5",
        cnonce="0a4f113b",
        qop="auth",
        nc="00000001",
    )
    assert verify(parse_credentials(creds.to_header()), password=res, method="REGISTER")
    assert not verify(creds, password=res.hex(), method="REGISTER")  # hex text is wrong


def _md5(text: str | bytes) -> str:
    return hashlib.md5(text.encode() if isinstance(text, str) else text).hexdigest()


def test_compute_without_qop_matches_rfc2069_formula() -> None:
    expected = _md5(f"{_md5('u:r:p')}:n:{_md5('REGISTER:sip:x')}")
    got = compute_response(
        username="u", realm="r", password="p", method="REGISTER", uri="sip:x", nonce="n"
    )
    assert got == expected


def test_md5_sess_and_auth_int_match_rfc2617_formulas() -> None:
    base: dict[str, Any] = {
        "username": "u",
        "realm": "r",
        "password": "p",
        "method": "M",
        "uri": "sip:x",
    }
    ha1_sess = _md5(f"{_md5('u:r:p')}:n:c")
    ha2 = _md5("M:sip:x")
    assert compute_response(
        **base, nonce="n", algorithm="MD5-sess", nc="00000001", cnonce="c", qop="auth"
    ) == _md5(f"{ha1_sess}:n:00000001:c:auth:{ha2}")
    ha2_int = _md5(f"M:sip:x:{_md5(b'body')}")
    assert compute_response(
        **base, nonce="n", nc="00000001", cnonce="c", qop="auth-int", body=b"body"
    ) == _md5(f"{_md5('u:r:p')}:n:00000001:c:auth-int:{ha2_int}")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithm": "SHA-256"},
        {"qop": "auth-conf", "nc": "00000001", "cnonce": "c"},
        {"qop": "auth"},
        {"algorithm": "MD5-sess"},
    ],
)
def test_compute_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(DigestError):
        compute_response(
            username="u", realm="r", password="p", method="M", uri="u", nonce="n", **kwargs
        )


# -- parsing ---------------------------------------------------------------------


def test_parse_scscf_aka_challenge() -> None:
    value = (
        'Digest realm="home1.net", nonce="I1U8vpY3qJ0hiuZNrke/NVXzKLQ1d7m5Sp/6w1Tfr7M=", '
        'algorithm=AKAv1-MD5, qop="auth", ik="f769bcd751044604127672711c6d3441", '
        'ck="b40ba9a3c58b2a05bbf0d987b21bf8cb"'
    )
    c = parse_challenge(value)
    assert (c.realm, c.algorithm, c.qop) == ("home1.net", "AKAv1-MD5", ("auth",))
    assert c.param("IK") == "f769bcd751044604127672711c6d3441"
    assert c.param("ck") == "b40ba9a3c58b2a05bbf0d987b21bf8cb"
    forwarded = c.without_params("ik", "ck")
    assert forwarded.extra == () and "ik=" not in forwarded.to_header()
    assert parse_challenge(c.to_header()) == c


def test_challenge_defaults_and_flags() -> None:
    c = parse_challenge(
        'digest  nonce="abc",realm="r",stale=TRUE,qop="auth,auth-int",'
        'domain="sip:a sip:b",opaque="o"'
    )
    assert c == Challenge(
        realm="r",
        nonce="abc",
        qop=("auth", "auth-int"),
        stale=True,
        domain="sip:a sip:b",
        opaque="o",
    )
    assert c.algorithm == "MD5"
    assert 'qop="auth,auth-int"' in c.to_header() and "stale=TRUE" in c.to_header()
    assert parse_challenge(c.to_header()) == c


def test_parse_initial_ims_register_credentials() -> None:
    """TS 24.229 5.1.1.2: empty nonce and response, integrity-protected param."""
    creds = parse_credentials(
        'Digest username="user1_private@home1.net", realm="home1.net", nonce="", '
        'uri="sip:home1.net", response="", integrity-protected="no"'
    )
    assert (creds.nonce, creds.response, creds.algorithm) == ("", "", "MD5")
    assert creds.param("integrity-protected") == "no"
    marked = creds.with_params(integrity_protected="yes")
    assert marked.param("integrity-protected") == "yes" and len(marked.extra) == 1
    assert parse_credentials(marked.to_header()) == marked


def test_parse_resync_credentials_with_auts() -> None:
    creds = parse_credentials(
        'Digest username="alice@home1.net",realm="home1.net",nonce="n",uri="sip:home1.net",'
        'response="0123456789abcdef0123456789ABCDEF",algorithm=AKAv1-MD5,'
        'auts="CjkyMzRfOiwg5CfkJ2UK=",qop=auth,nc=00000001,cnonce="abc"'
    )
    assert creds.param("auts") == "CjkyMzRfOiwg5CfkJ2UK="
    assert creds.nc_value == 1
    assert parse_credentials(creds.to_header()) == creds


def test_quoted_string_escapes() -> None:
    c = parse_challenge(r'Digest realm="a \"quoted\" realm\\", nonce="x,y"')
    assert c.realm == 'a "quoted" realm\\'
    assert c.nonce == "x,y"
    assert parse_challenge(c.to_header()) == c


def test_whitespace_and_empty_list_elements() -> None:
    c = parse_challenge('Digest  ,realm = "r" ,  , nonce\t=\t"n" ,')
    assert (c.realm, c.nonce) == ("r", "n")


@pytest.mark.parametrize(
    "value",
    [
        "",
        'Basic realm="r"',
        'Digestrealm="r", nonce="n"',
        'Digest realm="r"',  # no nonce
        'Digest nonce="n"',  # no realm
        'Digest realm="r", nonce="n", realm="r2"',
        'Digest realm="r", nonce="n',
        'Digest realm="r" nonce="n"',
        'Digest realm="r", nonce="n", stale=maybe',
        'Digest realm="r", nonce="n", algorithm="MD 5"',
        'Digest realm="r", nonce=',
        'Digest realm="r", nonce',
        'Digest realm="r\nx", nonce="n"',
        'Digest realm="r", nonce="n", qop="au th"',
        "Digest =x",
    ],
)
def test_malformed_challenges(value: str) -> None:
    with pytest.raises(DigestError):
        parse_challenge(value)


@pytest.mark.parametrize(
    "value",
    [
        'Digest realm="r", uri="u"',  # no username
        'Digest username="a", uri="u"',  # no realm
        'Digest username="a", realm="r"',  # no uri
        'Digest username="a", realm="r", uri="u", nc=1',
        'Digest username="a", realm="r", uri="u", nc=0000000g',
        'Digest username="a", realm="r", uri="u", response="xyz"',
        'Digest username="a", realm="r", uri="u", qop=auth',  # no cnonce / nc
        'Digest username="a", realm="r", uri="u", qop=auth, cnonce="c"',
    ],
)
def test_malformed_credentials(value: str) -> None:
    with pytest.raises(DigestError):
        parse_credentials(value)


def test_header_too_long() -> None:
    with pytest.raises(DigestError):
        parse_challenge('Digest realm="' + "a" * 10_000 + '", nonce="n"')


def test_to_header_rejects_unsafe_tokens() -> None:
    with pytest.raises(DigestError):
        Challenge(realm="r", nonce="n", algorithm="MD5, qop=evil").to_header()
    with pytest.raises(DigestError):
        Credentials(username="u", realm="r", uri="u", qop="auth int").to_header()


def test_verify_unsupported_algorithm_raises() -> None:
    creds = Credentials(username="u", realm="r", uri="u", nonce="n", algorithm="SHA-512-256")
    with pytest.raises(DigestError):
        verify(creds, password="p", method="REGISTER")


# -- nonces -------------------------------------------------------------------------


def test_nonce_valid_then_replayed() -> None:
    nm = NonceManager(SECRET, lifetime=30.0)
    nonce = nm.issue(now=1000.0)
    assert nm.check(nonce, "00000001", now=1001.0) is NonceStatus.VALID
    assert nm.check(nonce, "00000001", now=1002.0) is NonceStatus.REPLAYED
    assert nm.check(nonce, 2, now=1002.0) is NonceStatus.VALID
    assert nm.check(nonce, 5, now=1003.0) is NonceStatus.VALID  # gaps are allowed
    assert nm.check(nonce, 4, now=1003.0) is NonceStatus.REPLAYED


def test_nonce_without_qop_is_single_use() -> None:
    nm = NonceManager(SECRET, lifetime=30.0)
    nonce = nm.issue(now=0.0)
    assert nm.check(nonce, None, now=1.0) is NonceStatus.VALID
    assert nm.check(nonce, None, now=2.0) is NonceStatus.REPLAYED


def test_nonce_stale_after_lifetime() -> None:
    nm = NonceManager(SECRET, lifetime=30.0)
    nonce = nm.issue(now=0.0)
    assert nm.check(nonce, 1, now=30.0) is NonceStatus.VALID
    assert nm.check(nonce, 2, now=30.5) is NonceStatus.STALE


def test_nonce_invalid() -> None:
    nm = NonceManager(SECRET, lifetime=30.0)
    nonce = nm.issue(now=0.0, extra=b"10.0.0.1")
    other = NonceManager(b"another secret of 32 bytes......", lifetime=30.0)
    assert other.check(nonce, 1, now=1.0) is NonceStatus.INVALID
    assert nm.check(nonce, 1, now=1.0, extra=b"10.0.0.2") is NonceStatus.INVALID
    assert nm.check(nonce[:-2] + ("AA" if nonce[-2:] != "AA" else "BB"), 1, 1.0) is (
        NonceStatus.INVALID
    )
    assert nm.check("", 1, now=1.0) is NonceStatus.INVALID
    assert nm.check("not base64 ***", 1, now=1.0) is NonceStatus.INVALID
    assert nm.check("é" * 20, 1, now=1.0) is NonceStatus.INVALID
    assert nm.check(nonce + "=", 1, now=1.0) is NonceStatus.INVALID  # another spelling
    assert nm.check(nonce, "1", now=1.0, extra=b"10.0.0.1") is NonceStatus.INVALID  # bad nc
    assert nm.check(nonce, 0, now=1.0, extra=b"10.0.0.1") is NonceStatus.INVALID
    assert nm.check(nonce, 1, now=1.0, extra=b"10.0.0.1") is NonceStatus.VALID


def test_nonces_are_unique() -> None:
    nm = NonceManager(SECRET, lifetime=30.0)
    assert len({nm.issue(now=5.0) for _ in range(100)}) == 100


def test_nonce_tracking_is_bounded() -> None:
    nm = NonceManager(SECRET, lifetime=10.0, max_tracked=3)
    nonces = [nm.issue(now=0.0) for _ in range(5)]
    for n in nonces:
        assert nm.check(n, 1, now=1.0) is NonceStatus.VALID
    assert len(nm._seen) <= 3
    late = nm.issue(now=20.0)
    assert nm.check(late, 1, now=21.0) is NonceStatus.VALID
    assert len(nm._seen) == 1  # the expired ones were pruned


def test_nonce_manager_rejects_weak_settings() -> None:
    with pytest.raises(DigestError):
        NonceManager(b"short", lifetime=30.0)
    with pytest.raises(DigestError):
        NonceManager(SECRET, lifetime=0)
