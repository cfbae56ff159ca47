"""The four sec-agree SAs of TS 33.203 section 7.1, for the UE and for the P-CSCF."""

from __future__ import annotations

import random
import struct
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from presence_ims.security import (
    EspError,
    SADatabase,
    SecurityError,
    SecurityMechanism,
    derive_keys,
    udp_unwrap,
    udp_wrap,
)
from presence_ims.security.ipsec import (
    SPI_MIN,
    Role,
    SecAgreeSaSet,
    allocate_spis,
    extend,
    install,
    make_sa_set,
    remove,
    wireshark_esp_sa,
)
from presence_ims.sip.transaction import Address
from presence_ims.transport.esp import EspUdpTransport

h = bytes.fromhex
IK = h("f769bcd751044604127672711c6d3441")  # TS 35.208 set 1
CK = h("b40ba9a3c58b2a05bbf0d987b21bf8cb")
UE, PC = "10.0.0.1", "10.0.0.2"
PAIRS = [
    (alg, ealg)
    for alg in ("hmac-md5-96", "hmac-sha-1-96")
    for ealg in ("null", "aes-cbc", "des-ede3-cbc")
]


def mechs(
    alg: str = "hmac-sha-1-96", ealg: str | None = "aes-cbc"
) -> tuple[SecurityMechanism, SecurityMechanism]:
    client = SecurityMechanism(
        "ipsec-3gpp", alg=alg, ealg=ealg, spi_c=1111, spi_s=2222, port_c=5062, port_s=5064
    )
    server = SecurityMechanism(
        "ipsec-3gpp", alg=alg, ealg=ealg, spi_c=3333, spi_s=4444, port_c=5066, port_s=5068
    )
    return client, server


def both(
    alg: str = "hmac-sha-1-96", ealg: str | None = "aes-cbc", expires_at: float | None = 100.0
) -> tuple[SecAgreeSaSet, SecAgreeSaSet]:
    client, server = mechs(alg, ealg)

    def view(role: Role) -> SecAgreeSaSet:
        return make_sa_set(
            role=role,
            ue_host=UE,
            pcscf_host=PC,
            client=client,
            server=server,
            ik=IK,
            ck=CK,
            expires_at=expires_at,
        )

    return view("ue"), view("pcscf")


def flows(sas: tuple[object, ...]) -> set[tuple[int, tuple[str, int], tuple[str, int]]]:
    return {(sa.spi, sa.src, sa.dst) for sa in sas}  # type: ignore[attr-defined]


def test_ue_view_matches_ts33203() -> None:
    ue, _ = both()
    assert ue.role == "ue"
    assert (ue.local_host, ue.local_port_c, ue.local_port_s) == (UE, 5062, 5064)
    assert (ue.peer_host, ue.peer_port_c, ue.peer_port_s) == (PC, 5066, 5068)
    # inbound: P-CSCF port-c -> UE port-s (UE spi-s), P-CSCF port-s -> UE port-c (UE spi-c)
    assert [(sa.spi, sa.src, sa.dst) for sa in ue.inbound] == [
        (2222, (PC, 5066), (UE, 5064)),
        (1111, (PC, 5068), (UE, 5062)),
    ]
    # outbound: UE port-c -> P-CSCF port-s (P-CSCF spi-s), UE port-s -> P-CSCF port-c (spi-c)
    assert [(sa.spi, sa.src, sa.dst) for sa in ue.outbound] == [
        (4444, (UE, 5062), (PC, 5068)),
        (3333, (UE, 5064), (PC, 5066)),
    ]
    assert ue.inbound_spis == {1111, 2222}


def test_pcscf_view_matches_ts33203() -> None:
    _, pc = both()
    assert pc.role == "pcscf"
    assert (pc.local_host, pc.local_port_c, pc.local_port_s) == (PC, 5066, 5068)
    assert (pc.peer_host, pc.peer_port_c, pc.peer_port_s) == (UE, 5062, 5064)
    assert [(sa.spi, sa.src, sa.dst) for sa in pc.inbound] == [
        (4444, (UE, 5062), (PC, 5068)),
        (3333, (UE, 5064), (PC, 5066)),
    ]
    assert [(sa.spi, sa.src, sa.dst) for sa in pc.outbound] == [
        (2222, (PC, 5066), (UE, 5064)),
        (1111, (PC, 5068), (UE, 5062)),
    ]
    assert pc.inbound_spis == {3333, 4444}


@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
def test_sets_interlock(alg: str, ealg: str) -> None:
    ue, pc = both(alg, ealg)
    assert set(ue.outbound) == set(pc.inbound)
    assert set(pc.outbound) == set(ue.inbound)
    assert len(set(ue.sas)) == 4
    # each SPI is chosen by the receiver: the inbound SPIs come from one's own offer
    assert ue.inbound_spis == {1111, 2222}
    assert pc.inbound_spis == {3333, 4444}


@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
def test_keys_per_algorithm(alg: str, ealg: str) -> None:
    ue, pc = both(alg, ealg)
    auth_key, enc_key = derive_keys(IK, CK, alg, ealg)
    expected_auth = IK if alg == "hmac-md5-96" else IK + bytes(4)
    expected_enc = {"null": b"", "aes-cbc": CK, "des-ede3-cbc": CK + CK[:8]}[ealg]
    assert (auth_key, enc_key) == (expected_auth, expected_enc)
    for sa in ue.sas + pc.sas:
        assert (sa.auth_alg, sa.enc_alg) == (alg, ealg)
        assert (sa.auth_key, sa.enc_key) == (expected_auth, expected_enc)
        assert sa.expires_at == 100.0
    assert (ue.alg, ue.ealg, ue.expires_at) == (alg, ealg, 100.0)


def test_absent_ealg_means_null() -> None:
    ue, _ = both(ealg=None)
    assert ue.ealg == "null"
    assert all(sa.enc_alg == "null" and sa.enc_key == b"" for sa in ue.sas)


def test_packets_flow_between_installed_sets() -> None:
    ue, pc = both()
    ue_db, pc_db = SADatabase(), SADatabase()
    install(ue_db, ue)
    install(pc_db, pc)
    # a request UE port-c -> P-CSCF port-s, and its response back
    src, dst = (UE, 5062), (PC, 5068)
    packet = ue_db.protect(src, dst, udp_wrap(5062, 5068, b"OPTIONS"), now=0.0)
    got = pc_db.unprotect(packet, 0.0, source=src)
    assert got.sa.spi == 4444 and udp_unwrap(got.payload) == (5062, 5068, b"OPTIONS")
    back = pc_db.protect(dst, src, udp_wrap(5068, 5062, b"200"), now=0.0)
    assert ue_db.unprotect(back, 0.0, source=dst).sa.spi == 1111
    # a request P-CSCF port-c -> UE port-s and its response
    packet = pc_db.protect((PC, 5066), (UE, 5064), b"NOTIFY", now=0.0)
    assert ue_db.unprotect(packet, 0.0, source=(PC, 5066)).sa.spi == 2222
    packet = ue_db.protect((UE, 5064), (PC, 5066), b"200", now=0.0)
    assert pc_db.unprotect(packet, 0.0, source=(UE, 5064)).sa.spi == 3333


def test_install_and_remove() -> None:
    ue, _ = both()
    db = SADatabase()
    install(db, ue)
    assert len(db) == 4
    assert db.lookup(1111) == ue.inbound[1]
    assert db.lookup_outbound((UE, 5062), (PC, 5068)) == ue.outbound[0]
    assert set(remove(db, ue)) == set(ue.sas)
    assert len(db) == 0
    assert remove(db, ue) == []


def test_install_is_all_or_nothing() -> None:
    ue, _ = both()
    db = SADatabase()
    other = replace(ue.inbound[0], spi=7777, src=("10.9.9.9", 1), dst=(UE, 5064))
    db.add_inbound(replace(other, spi=1111))  # clashes with the UE's spi-c
    with pytest.raises(EspError) as info:
        install(db, ue)
    assert info.value.kind == "invalid_sa"
    assert db.lookup(2222) is None
    assert db.lookup_outbound((UE, 5062), (PC, 5068)) is None
    assert len(db) == 1


def test_remove_leaves_other_sets_alone() -> None:
    ue, _ = both()
    db = SADatabase()
    install(db, ue)
    client, server = mechs()
    newer = make_sa_set(
        role="ue",
        ue_host=UE,
        pcscf_host=PC,
        client=replace(client, spi_c=5555, spi_s=6666),
        server=server,
        ik=CK,  # new keys: a different set on the same outbound flows
        ck=IK,
        expires_at=None,
    )
    for sa in newer.outbound:
        db.add_outbound(sa)  # replaces ue's outbound SAs
    removed = remove(db, ue)
    assert set(removed) == set(ue.inbound)
    assert db.lookup_outbound((UE, 5062), (PC, 5068)) == newer.outbound[0]


def test_extend_keeps_window_and_remove_still_works() -> None:
    ue, pc = both(expires_at=10.0)
    ue_db, pc_db = SADatabase(), SADatabase()
    install(ue_db, ue)
    install(pc_db, pc)
    packet = ue_db.protect((UE, 5062), (PC, 5068), b"x", now=0.0)
    pc_db.unprotect(packet, 0.0)
    longer = extend(pc_db, pc, 1000.0)
    assert longer.expires_at == 1000.0
    assert all(sa.expires_at == 1000.0 for sa in pc_db.all())
    with pytest.raises(EspError) as info:
        pc_db.unprotect(packet, 50.0)  # alive at 50 now, and the window remembers seq 1
    assert info.value.kind == "replay"
    assert len(remove(pc_db, pc)) == 4  # the old set still names the extended SAs
    with pytest.raises(EspError) as info:
        extend(pc_db, pc, 5.0)
    assert info.value.kind == "no_sa"


def test_ipv6_hosts_are_normalised() -> None:
    client, server = mechs()
    ue = make_sa_set(
        role="ue",
        ue_host="[2001:DB8::0001]",
        pcscf_host="2001:db8:0:0::2",
        client=client,
        server=server,
        ik=IK,
        ck=CK,
        expires_at=None,
    )
    assert ue.local_host == "2001:db8::1" and ue.peer_host == "2001:db8::2"
    assert ue.outbound[0].dst == ("2001:db8::2", 5068)


@pytest.mark.parametrize(
    ("change_client", "change_server", "hosts"),
    [
        ({"name": "digest"}, {}, (UE, PC)),
        ({}, {"alg": "hmac-sha-256"}, (UE, PC)),
        ({"alg": "hmac-md5-96"}, {}, (UE, PC)),  # client offer is not what the server chose
        ({"ealg": "null"}, {}, (UE, PC)),
        ({}, {"prot": "ah"}, (UE, PC)),
        ({"mod": "tun"}, {}, (UE, PC)),
        ({"spi_c": None}, {}, (UE, PC)),
        ({}, {"port_s": None}, (UE, PC)),
        ({"spi_s": 1111}, {}, (UE, PC)),
        ({}, {"port_c": 5068}, (UE, PC)),
        ({}, {}, ("ue.home1.net", PC)),
        ({}, {}, (UE, "::1")),
    ],
)
def test_refuses_what_cannot_make_sas(
    change_client: dict[str, object], change_server: dict[str, object], hosts: tuple[str, str]
) -> None:
    client, server = mechs()
    with pytest.raises(EspError) as info:
        make_sa_set(
            role="ue",
            ue_host=hosts[0],
            pcscf_host=hosts[1],
            client=replace(client, **change_client),  # type: ignore[arg-type]
            server=replace(server, **change_server),  # type: ignore[arg-type]
            ik=IK,
            ck=CK,
            expires_at=None,
        )
    assert info.value.kind == "invalid_sa"
    assert isinstance(info.value, SecurityError)


def test_refuses_bad_role_and_keys() -> None:
    client, server = mechs()
    with pytest.raises(EspError):
        make_sa_set(
            role="scscf",  # type: ignore[arg-type]
            ue_host=UE,
            pcscf_host=PC,
            client=client,
            server=server,
            ik=IK,
            ck=CK,
            expires_at=None,
        )
    with pytest.raises(EspError):
        make_sa_set(
            role="ue",
            ue_host=UE,
            pcscf_host=PC,
            client=client,
            server=server,
            ik=IK[:8],
            ck=CK,
            expires_at=None,
        )


def test_allocate_spis_avoids_reserved_and_used() -> None:
    rng = random.Random(7)
    used: set[int] = set()
    for _ in range(200):
        spi_c, spi_s = allocate_spis(rng, used)
        assert SPI_MIN <= spi_c <= 0xFFFFFFFF and SPI_MIN <= spi_s <= 0xFFFFFFFF
        assert spi_c != spi_s
        assert spi_c not in used and spi_s not in used
        used |= {spi_c, spi_s}
    assert len(used) == 400


class _Scripted(random.Random):
    """Returns the given values from randrange, in order."""

    def __init__(self, values: list[int]) -> None:
        super().__init__(0)
        self.values = list(values)
        self.calls: list[tuple[int, int]] = []

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        assert stop is not None
        self.calls.append((start, stop))
        return self.values.pop(0)


def test_allocate_spis_skips_clashes() -> None:
    rng = _Scripted([500, 500, 600, 700])
    assert allocate_spis(rng, {600}) == (500, 700)
    assert rng.calls[0] == (256, 2**32)  # never 0..255


def test_allocate_spis_gives_up() -> None:
    with pytest.raises(EspError) as info:
        allocate_spis(_Scripted([300] * 64), {300})
    assert info.value.kind == "invalid_sa"


@given(st.integers(min_value=0, max_value=2**32 - 1), st.sets(st.integers(256, 300), max_size=20))
def test_allocate_spis_property(seed: int, used: set[int]) -> None:
    spi_c, spi_s = allocate_spis(random.Random(seed), used)
    assert spi_c != spi_s
    assert {spi_c, spi_s}.isdisjoint(used)
    assert min(spi_c, spi_s) >= SPI_MIN


def test_wireshark_entries() -> None:
    ue, _ = both("hmac-sha-1-96", "aes-cbc")
    assert wireshark_esp_sa(ue.outbound[0]) == (
        f'"IPv4","{UE}","{PC}","0x0000115c","AES-CBC [RFC3602]","0x{CK.hex()}",'
        f'"HMAC-SHA-1-96 [RFC2404]","0x{IK.hex()}00000000"'
    )
    null, _ = both("hmac-md5-96", "null")
    assert wireshark_esp_sa(null.inbound[0]) == (
        f'"IPv4","{PC}","{UE}","0x000008ae","NULL","","HMAC-MD5-96 [RFC2403]","0x{IK.hex()}"'
    )
    des, _ = both("hmac-md5-96", "des-ede3-cbc")
    assert f'"TripleDES-CBC [RFC2451]","0x{(CK + CK[:8]).hex()}"' in wireshark_esp_sa(
        des.inbound[0]
    )


# -- the transport's inbound checks, fed directly (no sockets) ------------------------------


class _Sink:
    """A Receiver that records deliveries."""

    def __init__(self) -> None:
        self.delivered: list[tuple[bytes, Address]] = []

    def datagram_received(self, data: bytes, source: Address) -> None:
        self.delivered.append((data, source))

    def stream_received(self, data: bytes, source: Address) -> None:
        self.delivered.append((data, source))

    def stream_closed(self, source: Address) -> None:
        pass

    def send_failed(self, destination: Address, reason: str, transaction: object) -> None:
        raise AssertionError(reason)


def _pcscf_transport() -> tuple[EspUdpTransport, _Sink, SADatabase]:
    _, pc = both(expires_at=None)
    db = SADatabase()
    install(db, pc)
    sink = _Sink()
    return EspUdpTransport(sink, PC, 5066, 5068, db, clock=lambda: 0.0), sink, db


def test_transport_delivers_only_what_an_sa_authenticates() -> None:
    transport, sink, _ = _pcscf_transport()
    ue, _ = both(expires_at=None)
    ue_db = SADatabase()
    install(ue_db, ue)
    packet = ue_db.protect((UE, 5062), (PC, 5068), udp_wrap(5062, 5068, b"OPTIONS"), now=0.0)
    transport._on_datagram(5068, packet, (UE, 5062))
    assert sink.delivered == [(b"OPTIONS", Address("esp-udp", UE, 5062))]
    transport._on_datagram(5068, packet, (UE, 5062))
    assert transport.drops == {"replay": 1}
    other = ue_db.protect((UE, 5064), (PC, 5066), b"not udp", now=0.0, next_header=6)
    transport._on_datagram(5066, other, (UE, 5064))
    assert transport.drops == {"replay": 1, "next_header": 1}
    assert len(sink.delivered) == 1


@given(
    prefix=st.sampled_from([b"", struct.pack(">I", 4444), struct.pack(">I", 3333)]),
    body=st.binary(max_size=200),
    local_port=st.sampled_from([5066, 5068]),
    source=st.sampled_from([(UE, 5062), (UE, 5064), ("10.0.0.9", 5062)]),
)
def test_transport_never_delivers_or_raises_on_forged_packets(
    prefix: bytes, body: bytes, local_port: int, source: tuple[str, int]
) -> None:
    transport, sink, _ = _pcscf_transport()
    transport._on_datagram(local_port, prefix + body, source)
    assert sink.delivered == []
    assert sum(transport.drops.values()) == 1
