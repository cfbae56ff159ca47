"""ESP framing, algorithms, anti-replay window and the SA database (RFC 4303)."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from presence_ims.security import (
    EspError,
    EspReceiver,
    EspSender,
    SADatabase,
    SecurityAssociation,
    derive_keys,
    udp_unwrap,
    udp_wrap,
)

h = bytes.fromhex
IK = h("f769bcd751044604127672711c6d3441")  # TS 35.208 set 1
CK = h("b40ba9a3c58b2a05bbf0d987b21bf8cb")
UE_C = ("10.0.0.1", 5062)
PCSCF_S = ("10.0.0.2", 5064)
PAIRS = [
    (alg, ealg)
    for alg in ("hmac-md5-96", "hmac-sha-1-96")
    for ealg in ("null", "aes-cbc", "des-ede3-cbc")
]
SIP = b"REGISTER sip:home1.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5062\r\n\r\n"


def make_sa(
    alg: str = "hmac-sha-1-96",
    ealg: str = "aes-cbc",
    spi: int = 0x1111,
    expires_at: float | None = None,
    src: tuple[str, int] = UE_C,
    dst: tuple[str, int] = PCSCF_S,
) -> SecurityAssociation:
    auth_key, enc_key = derive_keys(IK, CK, alg, ealg)
    return SecurityAssociation(spi, alg, ealg, auth_key, enc_key, src, dst, expires_at)


def pair(**kwargs: object) -> tuple[EspSender, EspReceiver]:
    sa = make_sa(**kwargs)  # type: ignore[arg-type]
    return EspSender(sa), EspReceiver(sa)


def kind_of(receiver: EspReceiver, packet: bytes, now: float = 0.0) -> str:
    with pytest.raises(EspError) as info:
        receiver.unprotect(packet, now)
    return info.value.kind


# -- keys ---------------------------------------------------------------------


def test_derive_keys_ts33203() -> None:
    assert derive_keys(IK, CK, "hmac-md5-96", "null") == (IK, b"")
    assert derive_keys(IK, CK, "hmac-sha-1-96", "aes-cbc") == (IK + bytes(4), CK)
    assert derive_keys(IK, CK, "hmac-md5-96", "des-ede3-cbc") == (IK, CK + CK[:8])


@pytest.mark.parametrize(
    ("ik", "ck", "alg", "ealg"),
    [
        (IK, CK, "hmac-sha-256", "null"),
        (IK, CK, "hmac-md5-96", "aes-gcm"),
        (IK[:8], CK, "hmac-md5-96", "null"),
        (IK, CK + b"x", "hmac-md5-96", "null"),
    ],
)
def test_derive_keys_rejects(ik: bytes, ck: bytes, alg: str, ealg: str) -> None:
    with pytest.raises(EspError) as info:
        derive_keys(ik, ck, alg, ealg)
    assert info.value.kind == "invalid_sa"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spi": 0},
        {"spi": 1 << 32},
        {"auth_key": bytes(16)},  # SHA-1 needs 20
        {"enc_key": bytes(24)},  # AES-128 needs 16
        {"auth_alg": "hmac-sha-256"},
    ],
)
def test_security_association_validates(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "spi": 5,
        "auth_alg": "hmac-sha-1-96",
        "enc_alg": "aes-cbc",
        "auth_key": IK + bytes(4),
        "enc_key": CK,
        "src": UE_C,
        "dst": PCSCF_S,
    }
    fields.update(kwargs)
    with pytest.raises(EspError) as info:
        SecurityAssociation(**fields)  # type: ignore[arg-type]
    assert info.value.kind == "invalid_sa"


def test_repr_hides_keys() -> None:
    text = repr(make_sa())
    assert IK.hex() not in text and CK.hex() not in text and "spi=4369" in text


# -- round trips and framing ----------------------------------------------------


@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
@pytest.mark.parametrize("size", [0, 1, 2, 3, 13, 14, 15, 16, 17, 1300])
def test_round_trip(alg: str, ealg: str, size: int) -> None:
    sender, receiver = pair(alg=alg, ealg=ealg)
    payload = bytes(i % 251 for i in range(size))
    packet = sender.protect(payload, next_header=17)
    iv_len = {"null": 0, "aes-cbc": 16, "des-ede3-cbc": 8}[ealg]
    block = {"null": 4, "aes-cbc": 16, "des-ede3-cbc": 8}[ealg]
    assert (len(packet) - 8 - iv_len - 12) % block == 0
    assert packet[:8] == struct.pack(">II", 0x1111, 1)
    assert receiver.unprotect(packet, now=0.0) == (payload, 17)


@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
def test_sequence_numbers_count_from_one(alg: str, ealg: str) -> None:
    sender, receiver = pair(alg=alg, ealg=ealg)
    for expected in range(1, 6):
        packet = sender.protect(SIP, next_header=4)
        assert struct.unpack_from(">I", packet, 4)[0] == expected
        assert receiver.unprotect(packet, 0.0) == (SIP, 4)


def test_null_encryption_leaves_payload_visible() -> None:
    sender, _ = pair(ealg="null")
    assert SIP in sender.protect(SIP)
    sender, _ = pair(ealg="aes-cbc")
    assert SIP[:16] not in sender.protect(SIP)


def test_random_iv_differs_between_packets() -> None:
    sender, _ = pair(ealg="aes-cbc")
    assert sender.protect(SIP)[8:24] != sender.protect(SIP)[8:24]


def test_bad_iv_length_and_next_header() -> None:
    sender, _ = pair(ealg="aes-cbc")
    with pytest.raises(EspError):
        sender.protect(SIP, iv=bytes(8))
    with pytest.raises(EspError):
        sender.protect(SIP, next_header=256)


def _independent_packet(
    alg: str, ealg: str, spi: int, seq: int, iv: bytes, payload: bytes, nh: int
) -> bytes:
    """Build an ESP packet from the RFC text with cryptography's primitives only."""
    block = {"null": 4, "aes-cbc": 16, "des-ede3-cbc": 8}[ealg]
    pad = (block - (len(payload) + 2) % block) % block
    plaintext = payload + bytes(range(1, pad + 1)) + bytes([pad, nh])
    if ealg == "aes-cbc":
        enc = Cipher(algorithms.AES(CK), modes.CBC(iv)).encryptor()
        body = enc.update(plaintext) + enc.finalize()
    elif ealg == "des-ede3-cbc":
        enc = Cipher(TripleDES(CK + CK[:8]), modes.CBC(iv)).encryptor()
        body = enc.update(plaintext) + enc.finalize()
    else:
        body = plaintext
    signed = struct.pack(">II", spi, seq) + iv + body
    if alg == "hmac-sha-1-96":
        mac = c_hmac.HMAC(IK + b"\0\0\0\0", hashes.SHA1())
    else:
        mac = c_hmac.HMAC(IK, hashes.MD5())
    mac.update(signed)
    return signed + mac.finalize()[:12]


@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
def test_known_answer(alg: str, ealg: str) -> None:
    iv = {"null": b"", "aes-cbc": bytes(range(16)), "des-ede3-cbc": bytes(range(8))}[ealg]
    sender = EspSender(make_sa(alg, ealg, spi=0xC0FFEE))
    sender.protect(b"first")  # the known packet is the second: seq 2
    packet = sender.protect(SIP, next_header=17, iv=iv)
    assert packet == _independent_packet(alg, ealg, 0xC0FFEE, 2, iv, SIP, 17)


def test_known_answer_fixed_bytes() -> None:
    """Pinned framing: SPI, sequence, payload, padding 01 02 03, pad length, next header."""
    sender = EspSender(make_sa("hmac-sha-1-96", "null", spi=1000))
    packet = sender.protect(b"abc", next_header=17)
    assert packet[:16] == h("000003e8000000016162630102030311")
    assert len(packet) == 16 + 12


# -- tampering, SPI, padding, expiry -------------------------------------------


@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
def test_tampering_any_byte_fails(alg: str, ealg: str) -> None:
    sender, _ = pair(alg=alg, ealg=ealg)
    sender.protect(SIP)
    packet = sender.protect(SIP)  # seq 2: no single bit flip makes it 0
    for index in range(len(packet)):
        forged = bytearray(packet)
        forged[index] ^= 0x01
        receiver = EspReceiver(make_sa(alg, ealg))
        expected = "unknown_spi" if index < 4 else "bad_icv"
        assert kind_of(receiver, bytes(forged)) == expected, index
        assert receiver.highest == 0  # nothing learnt from a forgery


def test_wrong_spi() -> None:
    sender = EspSender(make_sa(spi=7))
    receiver = EspReceiver(make_sa(spi=8))
    assert kind_of(receiver, sender.protect(SIP)) == "unknown_spi"


@pytest.mark.parametrize("ealg", ["null", "aes-cbc", "des-ede3-cbc"])
def test_short_packets(ealg: str) -> None:
    _, receiver = pair(ealg=ealg)
    for size in range(0, 8 + 12 + 4):
        assert kind_of(receiver, bytes(size)) == "short"


def _signed_with_plaintext(ealg: str, plaintext: bytes, seq: int = 1) -> bytes:
    """A packet with a valid ICV around an arbitrary (possibly bad) plaintext."""
    iv = bytes(16 if ealg == "aes-cbc" else 8 if ealg == "des-ede3-cbc" else 0)
    if ealg == "aes-cbc":
        enc = Cipher(algorithms.AES(CK), modes.CBC(iv)).encryptor()
        body = enc.update(plaintext) + enc.finalize()
    elif ealg == "des-ede3-cbc":
        enc = Cipher(TripleDES(CK + CK[:8]), modes.CBC(iv)).encryptor()
        body = enc.update(plaintext) + enc.finalize()
    else:
        body = plaintext
    signed = struct.pack(">II", 0x1111, seq) + iv + body
    mac = c_hmac.HMAC(IK + bytes(4), hashes.SHA1())
    mac.update(signed)
    return signed + mac.finalize()[:12]


@pytest.mark.parametrize("ealg", ["null", "aes-cbc", "des-ede3-cbc"])
@pytest.mark.parametrize(
    "tail",
    [
        b"\x01\x03\x03\x11",  # padding 01 03, should be 01 02
        b"\x00\x00\x02\x11",  # zero padding
        b"\xff\x11",  # pad length beyond the plaintext
    ],
    ids=["wrong-byte", "zeros", "too-long"],
)
def test_bad_padding_with_valid_icv(ealg: str, tail: bytes) -> None:
    block = {"null": 4, "aes-cbc": 16, "des-ede3-cbc": 8}[ealg]
    head = b"x" * ((-len(tail)) % block)
    plaintext = head + tail
    if tail == b"\xff\x11":
        plaintext = b"y" * (block - 2) + tail
    receiver = EspReceiver(make_sa("hmac-sha-1-96", ealg))
    assert kind_of(receiver, _signed_with_plaintext(ealg, plaintext)) == "bad_padding"
    assert receiver.highest == 1  # authentic, so the window moved (RFC 4303 3.4.3)


def test_unaligned_ciphertext_with_valid_icv() -> None:
    receiver = EspReceiver(make_sa("hmac-sha-1-96", "null"))
    assert kind_of(receiver, _signed_with_plaintext("null", b"abc\x00\x11")) == "bad_padding"


def test_expired_sa() -> None:
    sa = make_sa(expires_at=100.0)
    sender, receiver = EspSender(sa), EspReceiver(sa)
    packet = sender.protect(SIP)
    assert kind_of(receiver, packet, now=100.0) == "expired"
    assert receiver.unprotect(packet, now=99.9) == (SIP, 17)


def test_sequence_number_exhaustion() -> None:
    sender, receiver = pair()
    sender.seq = 2**32 - 2
    last = sender.protect(SIP)
    assert struct.unpack_from(">I", last, 4)[0] == 2**32 - 1
    assert receiver.unprotect(last, 0.0) == (SIP, 17)
    with pytest.raises(EspError) as info:
        sender.protect(SIP)
    assert info.value.kind == "seq_exhausted"


# -- anti-replay window ---------------------------------------------------------


def _packets(n: int) -> tuple[list[bytes], EspReceiver]:
    sender, receiver = pair(ealg="null")
    return [b""] + [sender.protect(b"p%d" % i) for i in range(1, n + 1)], receiver


def test_replay_rejected() -> None:
    pkts, receiver = _packets(3)
    receiver.unprotect(pkts[1], 0.0)
    assert kind_of(receiver, pkts[1]) == "replay"
    receiver.unprotect(pkts[3], 0.0)
    receiver.unprotect(pkts[2], 0.0)  # late but inside the window
    assert kind_of(receiver, pkts[2]) == "replay"
    assert kind_of(receiver, pkts[3]) == "replay"


def test_window_edges() -> None:
    """Window 64 with right edge 100 covers 37..100: 37 once, 36 never."""
    pkts, receiver = _packets(100)
    receiver.unprotect(pkts[100], 0.0)
    assert receiver.unprotect(pkts[37], 0.0) == (b"p37", 17)  # oldest slot
    assert kind_of(receiver, pkts[37]) == "replay"
    assert kind_of(receiver, pkts[36]) == "replay"  # one left of the window
    assert receiver.unprotect(pkts[99], 0.0) == (b"p99", 17)


def test_window_slides_and_forgets() -> None:
    pkts, receiver = _packets(300)
    receiver.unprotect(pkts[10], 0.0)
    receiver.unprotect(pkts[11], 0.0)
    receiver.unprotect(pkts[200], 0.0)  # jump wider than the window
    assert kind_of(receiver, pkts[11]) == "replay"
    assert kind_of(receiver, pkts[136]) == "replay"  # left of 137..200
    receiver.unprotect(pkts[137], 0.0)
    receiver.unprotect(pkts[138], 0.0)
    assert kind_of(receiver, pkts[138]) == "replay"
    receiver.unprotect(pkts[201], 0.0)  # slide by one: window 138..201
    assert kind_of(receiver, pkts[137]) == "replay"  # now left of the window
    assert kind_of(receiver, pkts[138]) == "replay"  # still remembered
    receiver.unprotect(pkts[139], 0.0)


def test_custom_window_size() -> None:
    sender, _ = pair(ealg="null")
    pkts = [sender.protect(b"x") for _ in range(10)]
    receiver = EspReceiver(make_sa(ealg="null"), window=4)
    receiver.unprotect(pkts[9], 0.0)  # seq 10: window 7..10
    receiver.unprotect(pkts[6], 0.0)  # seq 7
    assert kind_of(receiver, pkts[5]) == "replay"  # seq 6
    with pytest.raises(EspError):
        EspReceiver(make_sa(), window=0)


def test_forgery_does_not_move_the_window() -> None:
    """Checked before the ICV, updated only after it (RFC 4303 3.4.3)."""
    pkts, receiver = _packets(2)
    forged = bytearray(pkts[2])
    forged[4:8] = struct.pack(">I", 1000)
    assert kind_of(receiver, bytes(forged)) == "bad_icv"
    assert receiver.highest == 0
    receiver.unprotect(pkts[1], 0.0)
    receiver.unprotect(pkts[2], 0.0)


def test_sequence_zero_is_a_replay() -> None:
    pkts, receiver = _packets(1)
    zero = bytearray(pkts[1])
    zero[4:8] = bytes(4)
    assert kind_of(receiver, bytes(zero)) == "replay"


# -- SA database ----------------------------------------------------------------


UE_S = ("10.0.0.1", 5063)
PCSCF_C = ("10.0.0.2", 5065)


def _four_sas(db: SADatabase, expires_at: float | None = None) -> list[SecurityAssociation]:
    """The P-CSCF's view of TS 33.203's four SAs with one UE."""
    sas = [
        make_sa(spi=2001, src=UE_C, dst=PCSCF_S, expires_at=expires_at),  # in, P-CSCF spi-s
        make_sa(spi=2002, src=UE_S, dst=PCSCF_C, expires_at=expires_at),  # in, P-CSCF spi-c
        make_sa(spi=1001, src=PCSCF_S, dst=UE_C, expires_at=expires_at),  # out, UE spi-c
        make_sa(spi=1002, src=PCSCF_C, dst=UE_S, expires_at=expires_at),  # out, UE spi-s
    ]
    db.add_inbound(sas[0])
    db.add_inbound(sas[1])
    db.add_outbound(sas[2])
    db.add_outbound(sas[3])
    return sas


def test_database_protect_and_unprotect() -> None:
    pcscf, ue = SADatabase(), SADatabase()
    sas = _four_sas(pcscf)
    ue_out = EspSender(sas[0])
    got = pcscf.unprotect(ue_out.protect(SIP), 0.0, source=UE_C)
    assert (got.sa, got.payload, got.next_header) == (sas[0], SIP, 17)
    ue.add_inbound(sas[2])
    packet = pcscf.protect(PCSCF_S, UE_C, b"SIP/2.0 200 OK\r\n\r\n", 0.0)
    assert ue.unprotect(packet, 0.0).payload == b"SIP/2.0 200 OK\r\n\r\n"
    assert pcscf.lookup(2001) == sas[0]
    assert pcscf.lookup(1001) is None  # outbound SAs are not looked up by SPI
    assert pcscf.lookup_outbound(PCSCF_C, UE_S) == sas[3]
    assert len(pcscf) == 4


def test_database_counts_drops() -> None:
    db = SADatabase()
    sas = _four_sas(db, expires_at=50.0)
    packet = EspSender(sas[0]).protect(SIP)
    db.unprotect(packet, 0.0)
    for bad, kind in [
        (packet, "replay"),
        (b"\x00\x00", "short"),
        (struct.pack(">II", 9999, 1) + bytes(40), "unknown_spi"),
        (packet[:-1] + bytes([packet[-1] ^ 1]), "replay"),
    ]:
        with pytest.raises(EspError) as info:
            db.unprotect(bad, 0.0)
        assert info.value.kind == kind
    with pytest.raises(EspError):
        db.unprotect(EspSender(sas[0]).protect(SIP), 60.0)
    with pytest.raises(EspError):  # SPI bound to the UE's client port
        db.unprotect(EspSender(sas[1]).protect(SIP), 0.0, source=UE_C)
    with pytest.raises(EspError):
        db.protect(PCSCF_S, ("10.9.9.9", 1), SIP, 0.0)
    assert db.drops == {"replay": 2, "short": 1, "unknown_spi": 2, "expired": 1, "no_sa": 1}


def test_database_rejects_duplicate_inbound_spi() -> None:
    db = SADatabase()
    db.add_inbound(make_sa(spi=5))
    with pytest.raises(EspError):
        db.add_inbound(make_sa(spi=5, src=UE_S))


def test_database_same_outbound_spi_for_two_peers() -> None:
    """Peers choose outbound SPIs, so two UEs may pick the same one."""
    db = SADatabase()
    a = make_sa(spi=1111, src=PCSCF_S, dst=("10.0.0.7", 5062))
    b = make_sa(spi=1111, src=PCSCF_S, dst=("10.0.0.8", 5062))
    db.add_outbound(a)
    db.add_outbound(b)
    assert db.lookup_outbound(PCSCF_S, a.dst) == a
    assert db.lookup_outbound(PCSCF_S, b.dst) == b


def test_database_delete_and_delete_for_peer() -> None:
    db = SADatabase()
    sas = _four_sas(db)
    other = make_sa(spi=3001, src=("10.0.0.9", 5062), dst=PCSCF_S)
    db.add_inbound(other)
    assert db.delete(sas[1]) is True
    assert db.delete(sas[1]) is False
    removed = db.delete_for_peer("10.0.0.1", ports=[5062])
    assert set(removed) == {sas[0], sas[2]}
    assert set(db.all()) == {sas[3], other}
    assert db.delete_for_peer("10.0.0.1") == [sas[3]]
    assert db.all() == [other]


def test_database_expire_and_set_expiry() -> None:
    db = SADatabase()
    sas = _four_sas(db, expires_at=100.0)
    sender = EspSender(sas[0])
    db.unprotect(sender.protect(SIP), 0.0)
    kept = db.set_expiry(sas[0], 500.0)  # registration done: longer lifetime
    assert db.next_expiry() == 100.0
    assert db.expire(99.0) == []
    assert set(db.expire(100.0)) == set(sas[1:])
    assert db.all() == [kept]
    assert db.next_expiry() == 500.0
    # the window survived the lifetime change: the first packet is still a replay
    with pytest.raises(EspError) as info:
        db.unprotect(EspSender(sas[0]).protect(SIP), 200.0)
    assert info.value.kind == "replay"
    assert db.unprotect(sender.protect(SIP), 200.0).payload == SIP
    with pytest.raises(EspError):
        db.set_expiry(sas[1], None)


def test_database_protect_expired() -> None:
    db = SADatabase()
    _four_sas(db, expires_at=10.0)
    with pytest.raises(EspError) as info:
        db.protect(PCSCF_S, UE_C, SIP, 10.0)
    assert info.value.kind == "expired"


# -- UDP inner header ----------------------------------------------------------------


def test_udp_wrap_unwrap() -> None:
    datagram = udp_wrap(5062, 5064, SIP)
    assert datagram[:8] == struct.pack(">HHHH", 5062, 5064, 8 + len(SIP), 0)
    assert udp_unwrap(datagram) == (5062, 5064, SIP)


@pytest.mark.parametrize(
    "data",
    [b"", bytes(7), struct.pack(">HHHH", 1, 2, 20, 0) + b"abc", struct.pack(">HHHH", 1, 2, 4, 0)],
)
def test_udp_unwrap_rejects(data: bytes) -> None:
    with pytest.raises(EspError) as info:
        udp_unwrap(data)
    assert info.value.kind == "bad_udp"


def test_udp_wrap_rejects() -> None:
    with pytest.raises(EspError):
        udp_wrap(70000, 1, b"")
    with pytest.raises(EspError):
        udp_wrap(1, 1, bytes(65530))


def test_sip_over_esp_over_udp_end_to_end() -> None:
    sender, receiver = pair()
    packet = sender.protect(udp_wrap(UE_C[1], PCSCF_S[1], SIP), next_header=17)
    inner, nh = receiver.unprotect(packet, 0.0)
    assert nh == 17
    assert udp_unwrap(inner) == (5062, 5064, SIP)
