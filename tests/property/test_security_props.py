"""Property tests for the security cores and the Digest parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence_ims.security import (
    AkaError,
    AkaSyncFailure,
    EspError,
    EspReceiver,
    EspSender,
    Milenage,
    SecAgreeError,
    SecurityAssociation,
    SecurityMechanism,
    SqnTracker,
    decode_nonce,
    derive_keys,
    format_mechanisms,
    generate_vector,
    parse_mechanisms,
    resync_sqn,
    udp_unwrap,
    ue_authenticate,
)
from presence_ims.sip.digest import (
    Challenge,
    Credentials,
    DigestError,
    parse_challenge,
    parse_credentials,
)

IK = bytes(range(16))
CK = bytes(range(16, 32))
PAIRS = [
    (a, e) for a in ("hmac-md5-96", "hmac-sha-1-96") for e in ("null", "aes-cbc", "des-ede3-cbc")
]


def _sa(alg: str, ealg: str) -> SecurityAssociation:
    auth_key, enc_key = derive_keys(IK, CK, alg, ealg)
    return SecurityAssociation(0x1234, alg, ealg, auth_key, enc_key, ("a", 1), ("b", 2))


# -- ESP ------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
@given(data=st.binary(max_size=200))
def test_unprotect_raises_only_esp_error(alg: str, ealg: str, data: bytes) -> None:
    receiver = EspReceiver(_sa(alg, ealg))
    try:
        receiver.unprotect(data, now=0.0)
    except EspError:
        pass


@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
@given(prefix=st.binary(min_size=8, max_size=8), data=st.binary(max_size=120))
def test_unprotect_with_valid_spi_raises_only_esp_error(
    alg: str, ealg: str, prefix: bytes, data: bytes
) -> None:
    receiver = EspReceiver(_sa(alg, ealg))
    try:
        receiver.unprotect(b"\x00\x00\x12\x34" + prefix[4:] + data, now=0.0)
    except EspError as exc:
        assert exc.kind in {"short", "replay", "bad_icv"}


@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=5), nh=st.integers(0, 255))
def test_protect_unprotect_round_trip(alg: str, ealg: str, payloads: list[bytes], nh: int) -> None:
    sa = _sa(alg, ealg)
    sender, receiver = EspSender(sa), EspReceiver(sa)
    for payload in payloads:
        assert receiver.unprotect(sender.protect(payload, nh), 0.0) == (payload, nh)


@given(order=st.lists(st.integers(1, 40), max_size=80))
def test_replay_window_matches_a_model(order: list[int]) -> None:
    """RFC 4303 3.4.3: accept iff never seen and within ``window`` of the highest."""
    window = 16
    sa = _sa("hmac-sha-1-96", "null")
    sender, receiver = EspSender(sa), EspReceiver(sa, window=window)
    packets = {i: sender.protect(b"%d" % i) for i in range(1, 41)}
    seen: set[int] = set()
    highest = 0
    for i in order:
        expected = i not in seen and i > highest - window
        try:
            receiver.unprotect(packets[i], 0.0)
            accepted = True
        except EspError as exc:
            assert exc.kind == "replay"
            accepted = False
        assert accepted == expected
        if accepted:
            seen.add(i)
            highest = max(highest, i)


@given(st.binary(max_size=40))
def test_udp_unwrap_raises_only_esp_error(data: bytes) -> None:
    try:
        udp_unwrap(data)
    except EspError:
        pass


# -- AKA --------------------------------------------------------------------------


@given(st.text(max_size=80))
def test_decode_nonce_raises_only_aka_error(text: str) -> None:
    try:
        rand, autn = decode_nonce(text)
    except AkaError:
        return
    assert len(rand) == 16 and len(autn) == 16


@settings(max_examples=50)
@given(
    k=st.binary(min_size=16, max_size=16),
    opc=st.binary(min_size=16, max_size=16),
    rand=st.binary(min_size=16, max_size=16),
    accepted=st.integers(32, 2**40),
    offered=st.integers(0, 2**40),
)
def test_ue_and_hss_agree(k: bytes, opc: bytes, rand: bytes, accepted: int, offered: int) -> None:
    m = Milenage(k, opc=opc)
    tracker = SqnTracker(delta=2**43)
    tracker.accept(accepted)
    v = generate_vector(m, offered, b"\x80\x00", rand)
    fresh = tracker.check(offered)
    try:
        result = ue_authenticate(m, v.rand, v.autn, tracker)
    except AkaSyncFailure as exc:
        assert not fresh
        assert resync_sqn(m, rand, exc.auts) == accepted
    else:
        assert fresh and result.res == v.xres and tracker.highest >= accepted


# -- sec-agree ---------------------------------------------------------------------


@given(st.text(max_size=120))
def test_parse_mechanisms_raises_only_secagree_error(text: str) -> None:
    try:
        parse_mechanisms(text)
    except SecAgreeError:
        pass


_KNOWN = {"alg", "ealg", "prot", "mod", "spi-c", "spi-s", "port-c", "port-s", "q"}
_tokens = st.from_regex(r"[a-z0-9][a-z0-9\-.]{0,11}", fullmatch=True)
_mechanism = st.builds(
    SecurityMechanism,
    name=_tokens,
    alg=st.none() | st.sampled_from(["hmac-md5-96", "hmac-sha-1-96"]),
    ealg=st.none() | st.sampled_from(["null", "aes-cbc", "des-ede3-cbc"]),
    prot=st.none() | st.just("esp"),
    mod=st.none() | st.just("trans"),
    spi_c=st.none() | st.integers(1, 2**32 - 1),
    spi_s=st.none() | st.integers(1, 2**32 - 1),
    port_c=st.none() | st.integers(1, 65535),
    port_s=st.none() | st.integers(1, 65535),
    q=st.none() | st.integers(0, 1000).map(lambda n: n / 1000),
    params=st.dictionaries(
        _tokens.filter(lambda t: t not in _KNOWN),
        st.none() | _tokens | st.from_regex(r'"[a-z ,;=]{0,8}"', fullmatch=True),
        max_size=3,
    ).map(lambda d: tuple(sorted(d.items()))),
)


@given(st.lists(_mechanism, min_size=1, max_size=4))
def test_secagree_format_parse_round_trip(mechanisms: list[SecurityMechanism]) -> None:
    assert parse_mechanisms(format_mechanisms(mechanisms)) == mechanisms


# -- Digest -------------------------------------------------------------------------


_auth_param_chars = st.sampled_from([*'Digest realm="nonce=,\\ \t', "qop", "nc", "uri"])


@given(st.text(max_size=200) | st.lists(_auth_param_chars, max_size=40).map("".join))
def test_parse_challenge_raises_only_digest_error(text: str) -> None:
    try:
        parse_challenge(text)
    except DigestError:
        pass


@given(st.text(max_size=200) | st.lists(_auth_param_chars, max_size=40).map("".join))
def test_parse_credentials_raises_only_digest_error(text: str) -> None:
    try:
        parse_credentials(text)
    except DigestError:
        pass


_qtext = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"),
    max_size=30,
)


@given(
    realm=_qtext,
    nonce=_qtext,
    opaque=st.none() | _qtext,
    stale=st.booleans(),
    qop=st.lists(st.sampled_from(["auth", "auth-int"]), max_size=2).map(tuple),
    ik=_qtext,
)
def test_challenge_round_trip(
    realm: str, nonce: str, opaque: str | None, stale: bool, qop: tuple[str, ...], ik: str
) -> None:
    c = Challenge(
        realm=realm, nonce=nonce, opaque=opaque, stale=stale, qop=qop, extra=(("ik", ik),)
    )
    assert parse_challenge(c.to_header()) == c


@given(username=_qtext, uri=_qtext, cnonce=_qtext, nc=st.integers(1, 2**32 - 1), auts=_qtext)
def test_credentials_round_trip(username: str, uri: str, cnonce: str, nc: int, auts: str) -> None:
    c = Credentials(
        username=username,
        realm="home1.net",
        uri=uri,
        nonce="abc",
        response="0" * 32,
        algorithm="AKAv1-MD5",
        cnonce=cnonce,
        qop="auth",
        nc=f"{nc:08x}",
        extra=(("auts", auts),),
    )
    assert parse_credentials(c.to_header()) == c
