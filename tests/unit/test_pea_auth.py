"""Pex input: signature checks of external submissions (sans-IO)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from presence_ims.nodes.pea import source_policies
from presence_ims.nodes.pea.auth import Authenticator, SourcePolicy, signing_input
from presence_ims.nodes.pea.client import SigningKey, signed_headers
from presence_ims.nodes.pea.config import DEMO_ED25519_SEED, DEMO_HMAC_KEY, PeaSection, PeaSource
from presence_ims.nodes.pea.errors import PeaError

NOW = 1_700_000_000.0
SEED = bytes(range(32))
PUBLIC = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
HMAC_SOURCE = SourcePolicy("cal", "hmac-sha256", b"0123456789abcdef", ("sip:bob@*",), frozenset({"activities"}))
ED_SOURCE = SourcePolicy("iot", "ed25519", PUBLIC, ("sip:alice@home1.net",), frozenset({"location"}))
HMAC_KEY = SigningKey.hmac("cal", "0123456789abcdef")
ED_KEY = SigningKey.ed25519("iot", SEED)
BODY = b'{"presentity":"sip:bob@home1.net","activities":["meeting"]}'
PATH = "/v1/presence"


def auth() -> Authenticator:
    return Authenticator([HMAC_SOURCE, ED_SOURCE], max_skew=300)


def kind(a: Authenticator, headers: dict[str, str], body: bytes = BODY, now: float = NOW, path: str = PATH) -> str:
    with pytest.raises(PeaError) as info:
        a.authenticate(headers, "POST", path, body, now)
    assert info.value.status == 401
    return info.value.kind


def test_signing_input_is_as_documented() -> None:
    data = signing_input("post", "/v1/presence?x=1", "cal", "1700000000", "n" * 16, b"{}")
    digest = hashlib.sha256(b"{}").hexdigest()
    assert data == f"PEA-SIG-1\nPOST\n/v1/presence?x=1\ncal\n1700000000\n{'n' * 16}\n{digest}".encode()


def test_hmac_and_ed25519_submissions_verify() -> None:
    a = auth()
    h = signed_headers(HMAC_KEY, "POST", PATH, BODY, now=NOW)
    expected = hmac.new(b"0123456789abcdef", signing_input("POST", PATH, "cal", h["X-PEA-Timestamp"],
                        h["X-PEA-Nonce"], BODY), hashlib.sha256).digest()  # fmt: skip
    assert h["X-PEA-Signature"] == "hmac-sha256=" + base64.b64encode(expected).decode()
    assert a.authenticate(h, "POST", PATH, BODY, NOW + 10) is HMAC_SOURCE
    lower = {k.lower(): v for k, v in signed_headers(ED_KEY, "POST", PATH, BODY, now=NOW).items()}
    assert a.authenticate(lower, "POST", PATH, BODY, NOW) is ED_SOURCE  # header names are case-blind


def test_every_refusal() -> None:
    a = auth()
    good = signed_headers(HMAC_KEY, "POST", PATH, BODY, now=NOW)
    assert kind(a, {}) == "unsigned"
    assert kind(a, {k: v for k, v in good.items() if k != "X-PEA-Nonce"}) == "unsigned"
    assert kind(a, {**good, "X-PEA-Source": "eve"}) == "unknown_source"
    assert kind(a, {**good, "X-PEA-Timestamp": "soon"}) == "bad_timestamp"
    assert kind(a, signed_headers(HMAC_KEY, "POST", PATH, BODY, now=NOW - 301)) == "stale"
    assert kind(a, signed_headers(HMAC_KEY, "POST", PATH, BODY, now=NOW + 301)) == "stale"
    assert kind(a, {**good, "X-PEA-Nonce": "short"}) == "bad_nonce"
    assert kind(a, {**good, "X-PEA-Signature": "md5=AAAA"}) == "bad_signature"
    assert kind(a, {**good, "X-PEA-Signature": "hmac-sha256=!!!"}) == "bad_signature"
    assert kind(a, {**good, "X-PEA-Signature": "ed25519=" + good["X-PEA-Signature"].split("=", 1)[1]}) == "wrong_algorithm"
    assert kind(a, good, body=BODY + b" ") == "bad_signature"  # body changed
    assert kind(a, good, path="/v1/other") == "bad_signature"  # bound to the path
    forged = signed_headers(SigningKey.hmac("cal", "guessed-secret!!"), "POST", PATH, BODY, now=NOW)
    assert kind(a, forged) == "bad_signature"
    other_ed = signed_headers(SigningKey.ed25519("iot", bytes(32)), "POST", PATH, BODY, now=NOW)
    assert kind(a, other_ed) == "bad_signature"
    # none of the refusals used up the genuine nonce
    assert a.authenticate(good, "POST", PATH, BODY, NOW) is HMAC_SOURCE
    assert kind(a, good) == "replayed"
    assert kind(a, good, now=NOW + 299) == "replayed"


def test_replay_window_is_bounded_by_the_skew() -> None:
    a = auth()
    h = signed_headers(HMAC_KEY, "POST", PATH, BODY, now=NOW, nonce="n" * 20)
    a.authenticate(h, "POST", PATH, BODY, NOW)
    # past the window the same nonce is refused anyway, as stale
    assert kind(a, h, now=NOW + 301) == "stale"
    # the cache forgets nonces whose timestamps are stale
    for i in range(1100):
        hi = signed_headers(HMAC_KEY, "POST", PATH, BODY, now=NOW + 400, nonce=f"{i:016d}")
        a.authenticate(hi, "POST", PATH, BODY, NOW + 400)
    assert ("cal", "n" * 20) not in a._nonces


def test_scope() -> None:
    assert HMAC_SOURCE.may_set("sip:bob@home1.net")
    assert not HMAC_SOURCE.may_set("sip:alice@home1.net")


def test_configured_and_demo_sources() -> None:
    section = PeaSection(sources=(PeaSource(id="web", key="a-long-enough-secret", presentities=("sip:*@{domain}",)),))
    policies = {p.id: p for p in source_policies(section, "home1.net", demo=True)}
    assert set(policies) == {"web", "calendar-bob", "iot-alice"}
    assert policies["web"].presentities == ("sip:*@home1.net",)
    assert policies["calendar-bob"].key == DEMO_HMAC_KEY.encode()
    assert {p.id for p in source_policies(section, "home1.net", demo=False)} == {"web"}
    # the demo Ed25519 key pair matches
    a = Authenticator(policies.values())
    h = signed_headers(SigningKey.ed25519("iot-alice", DEMO_ED25519_SEED), "POST", PATH, BODY, now=NOW)
    assert a.authenticate(h, "POST", PATH, BODY, NOW).id == "iot-alice"
    with pytest.raises(ValueError):
        PeaSource(id="x", algorithm="ed25519", key="not a key at all", presentities=("*",))
    with pytest.raises(ValueError):
        PeaSection(sources=(PeaSource(id="a", key="k" * 16, presentities=("*",)),) * 2)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["X-PEA-Source", "X-PEA-Timestamp", "X-PEA-Nonce", "X-PEA-Signature", "x"]),
                       st.text(max_size=80), max_size=5), st.binary(max_size=64))
def test_any_headers_authenticate_or_raise_pea_error(headers: dict[str, str], body: bytes) -> None:
    try:
        auth().authenticate(headers, "POST", PATH, body, NOW)
    except PeaError as exc:
        assert exc.status == 401
    else:
        raise AssertionError("random headers must never authenticate")
