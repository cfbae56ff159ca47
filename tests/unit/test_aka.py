"""IMS AKA: vectors, nonce encoding, the UE's checks and resynchronisation."""

from __future__ import annotations

import base64

import pytest

from presence_ims.security import (
    AkaError,
    AkaMacFailure,
    AkaSyncFailure,
    AuthVector,
    Milenage,
    SqnTracker,
    aka_debug,
    decode_nonce,
    encode_nonce,
    generate_vector,
    next_sqn,
    resync_sqn,
    ue_authenticate,
)

h = bytes.fromhex

# TS 35.208 test set 1 (REFERENCE.md)
K1 = h("465b5ce8b199b49faa5f0a2ee238a6bc")
OP1 = h("cdc202d5123e20f62b6d676ac72cb318")
OPC1 = h("cd63cb71954a9f4e48a5994e37a02baf")
RAND1 = h("23553cbe9637a89d218ae64dae47bf35")
SQN1 = 0xFF9BB4D0B607
AMF1 = h("b9b9")


@pytest.fixture
def m1() -> Milenage:
    return Milenage(K1, opc=OPC1)


def test_vector_set1(m1: Milenage) -> None:
    v = generate_vector(m1, SQN1, AMF1, RAND1)
    assert v == AuthVector(
        rand=RAND1,
        autn=h("55f328b43577b9b94a9ffac354dfafb3"),
        xres=h("a54211d5e3ba50bf"),
        ck=h("b40ba9a3c58b2a05bbf0d987b21bf8cb"),
        ik=h("f769bcd751044604127672711c6d3441"),
    )


def test_vector_rejects_bad_sqn_and_inputs(m1: Milenage) -> None:
    with pytest.raises(AkaError):
        generate_vector(m1, -1, AMF1, RAND1)
    with pytest.raises(AkaError):
        generate_vector(m1, 1 << 48, AMF1, RAND1)
    with pytest.raises(AkaError):
        generate_vector(m1, 1, AMF1, RAND1[:8])
    with pytest.raises(AkaError):
        generate_vector(m1, 1, b"\x00", RAND1)


def test_nonce_round_trip(m1: Milenage) -> None:
    v = generate_vector(m1, SQN1, AMF1, RAND1)
    nonce = encode_nonce(v.rand, v.autn)
    assert base64.b64decode(nonce) == RAND1 + v.autn
    assert decode_nonce(nonce) == (RAND1, v.autn)


def test_nonce_with_server_data_is_accepted() -> None:
    """RFC 3310 3.2: nonce = base64(RAND || AUTN || server specific data)."""
    nonce = base64.b64encode(bytes(range(32)) + b"server-data").decode()
    assert decode_nonce(nonce) == (bytes(range(16)), bytes(range(16, 32)))


@pytest.mark.parametrize(
    "nonce",
    ["", "!!!!", "abc", base64.b64encode(bytes(31)).decode(), "é" * 44, "QUJD\n"],
)
def test_bad_nonce(nonce: str) -> None:
    with pytest.raises(AkaError):
        decode_nonce(nonce)


def test_encode_nonce_checks_lengths() -> None:
    with pytest.raises(AkaError):
        encode_nonce(bytes(15), bytes(16))


def test_ue_accepts_fresh_vector(m1: Milenage) -> None:
    v = generate_vector(m1, SQN1, AMF1, RAND1)
    tracker = SqnTracker(delta=1 << 43)  # set 1's SQN is far above a new USIM's 0
    result = ue_authenticate(Milenage(K1, op=OP1), v.rand, v.autn, tracker)
    assert (result.res, result.ck, result.ik, result.sqn) == (v.xres, v.ck, v.ik, SQN1)
    assert tracker.highest == SQN1


def test_jump_beyond_delta_is_a_sync_failure(m1: Milenage) -> None:
    """Annex C.2.1: with the default delta 2^28, set 1's SQN is too far ahead."""
    v = generate_vector(m1, SQN1, AMF1, RAND1)
    with pytest.raises(AkaSyncFailure) as info:
        ue_authenticate(m1, v.rand, v.autn, SqnTracker())
    assert resync_sqn(m1, RAND1, info.value.auts) == 0


def test_wrong_mac_raises(m1: Milenage) -> None:
    v = generate_vector(m1, 64, AMF1, RAND1)
    tracker = SqnTracker()
    bad = v.autn[:15] + bytes([v.autn[15] ^ 1])
    with pytest.raises(AkaMacFailure):
        ue_authenticate(m1, v.rand, bad, tracker)
    assert tracker.highest == 0  # nothing recorded


def test_wrong_key_is_a_mac_failure(m1: Milenage) -> None:
    v = generate_vector(m1, 64, AMF1, RAND1)
    with pytest.raises(AkaMacFailure):
        ue_authenticate(Milenage(bytes(16), opc=OPC1), v.rand, v.autn, SqnTracker())


def test_replay_raises_sync_failure_and_resync_recovers_sqn_ms(m1: Milenage) -> None:
    tracker = SqnTracker()
    sqn = next_sqn(0)
    first = generate_vector(m1, sqn, AMF1, RAND1)
    ue_authenticate(m1, first.rand, first.autn, tracker)

    # the same vector again (a replay): SQN is not fresh
    with pytest.raises(AkaSyncFailure) as info:
        ue_authenticate(m1, first.rand, first.autn, tracker)
    auts = info.value.auts
    assert len(auts) == 14
    # the HSS recovers SQN_MS from AUTS and continues above it
    sqn_ms = resync_sqn(m1, first.rand, auts)
    assert sqn_ms == tracker.highest == sqn
    fresh = generate_vector(m1, next_sqn(sqn_ms), AMF1, h("00" * 15 + "01"))
    assert ue_authenticate(m1, fresh.rand, fresh.autn, tracker).sqn == next_sqn(sqn_ms)


def test_older_sqn_raises_sync_failure(m1: Milenage) -> None:
    tracker = SqnTracker()
    new = generate_vector(m1, 10 << 5, AMF1, RAND1)
    ue_authenticate(m1, new.rand, new.autn, tracker)
    old = generate_vector(m1, 9 << 5, AMF1, RAND1)
    with pytest.raises(AkaSyncFailure) as info:
        ue_authenticate(m1, old.rand, old.autn, tracker)
    assert resync_sqn(m1, old.rand, info.value.auts) == 10 << 5


def test_auts_layout(m1: Milenage) -> None:
    """AUTS = (SQN_MS xor AK*) || f1*(K, RAND, SQN_MS, AMF=0000)."""
    tracker = SqnTracker()
    tracker.accept(SQN1)
    v = generate_vector(m1, SQN1, AMF1, RAND1)  # a replay of the accepted SQN
    with pytest.raises(AkaSyncFailure) as info:
        ue_authenticate(m1, v.rand, v.autn, tracker)
    sqn_ms = SQN1.to_bytes(6, "big")
    ak_star = h("451e8beca43b")
    expected = bytes(a ^ b for a, b in zip(sqn_ms, ak_star, strict=True))
    expected += m1.f1star(RAND1, sqn_ms, b"\x00\x00")
    assert info.value.auts == expected


def test_resync_vector_from_hostap() -> None:
    """TS 35.208 set 20 with SQN_MS = 1 (hostap's milenage_auts test)."""
    m = Milenage(h("90dca4eda45b53cf0f12d7c9c3bc6a89"), opc=h("cb9cccc4b9258e6dca4760379fb82581"))
    rand = h("9fddc72092c6ad036b6e464789315b78")
    assert resync_sqn(m, rand, h("4f2039392ddd4bb4316ed4a14688")) == 1


def test_resync_rejects_bad_mac_and_length(m1: Milenage) -> None:
    tracker = SqnTracker()
    tracker.accept(SQN1)
    v = generate_vector(m1, SQN1, AMF1, RAND1)
    with pytest.raises(AkaSyncFailure) as info:
        ue_authenticate(m1, v.rand, v.autn, tracker)
    auts = bytearray(info.value.auts)
    auts[-1] ^= 0x80
    with pytest.raises(AkaMacFailure):
        resync_sqn(m1, RAND1, bytes(auts))
    with pytest.raises(AkaMacFailure):  # AUTS bound to its RAND
        resync_sqn(m1, bytes(16), info.value.auts)
    with pytest.raises(AkaError):
        resync_sqn(m1, RAND1, bytes(13))


def test_sqn_tracker_ind_slots() -> None:
    """Annex C.2.2: SEQ must exceed SEQ_MS of its own IND slot."""
    t = SqnTracker()
    assert not t.check(0)  # SEQ 0 never fresh
    assert t.check((5 << 5) | 3)
    t.accept((5 << 5) | 3)
    assert not t.check((5 << 5) | 3)  # same SEQ, same slot
    assert not t.check((4 << 5) | 3)  # older SEQ, same slot
    assert t.check((4 << 5) | 7)  # older SEQ, an unused slot: out-of-order vectors
    assert t.check((6 << 5) | 3)
    assert t.highest == (5 << 5) | 3


def test_sqn_tracker_delta_and_age_limit() -> None:
    t = SqnTracker(delta=100, age_limit=10)
    t.accept(50 << 5)
    assert t.check(150 << 5)  # exactly delta above
    assert not t.check(151 << 5)  # beyond delta (wrap-around protection)
    assert t.check((40 << 5) | 1)  # exactly L below, other slot
    assert not t.check((39 << 5) | 1)  # older than L
    assert not t.check(1 << 48)
    assert not t.check(-1)


def test_sqn_tracker_rejects_bad_limits() -> None:
    with pytest.raises(AkaError):
        SqnTracker(delta=0)
    with pytest.raises(AkaError):
        SqnTracker(age_limit=-1)


def test_next_sqn() -> None:
    assert next_sqn(0) == 32
    assert next_sqn((7 << 5) | 4) == (8 << 5) | 4
    assert next_sqn((7 << 5) | 4, ind=9) == (8 << 5) | 9
    with pytest.raises(AkaError):
        next_sqn(0, ind=32)
    with pytest.raises(AkaError):
        next_sqn((1 << 48) - 1)


def test_aka_debug_set1() -> None:
    out = aka_debug(K1, RAND1, SQN1, AMF1, op=OP1)
    assert out == {
        "opc": "cd63cb71954a9f4e48a5994e37a02baf",
        "mac_a": "4a9ffac354dfafb3",
        "mac_s": "01cfaf9ec4e871e9",
        "res": "a54211d5e3ba50bf",
        "ck": "b40ba9a3c58b2a05bbf0d987b21bf8cb",
        "ik": "f769bcd751044604127672711c6d3441",
        "ak": "aa689c648370",
        "ak_star": "451e8beca43b",
    }
    assert aka_debug(K1, RAND1, SQN1.to_bytes(6, "big"), AMF1, opc=OPC1) == out


def test_aka_debug_bad_input() -> None:
    with pytest.raises(AkaError):
        aka_debug(K1, RAND1, SQN1, AMF1)  # neither OP nor OPc
    with pytest.raises(AkaError):
        aka_debug(K1, RAND1, b"\x00", AMF1, opc=OPC1)
