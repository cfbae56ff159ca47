"""The protected Gm channel: a UE and a P-CSCF endpoint talking SIP over emulated ESP.

Both run on 127.0.0.1 (port 0), each with an ESP transport whose SA database
holds the four sec-agree SAs of its side (``security/ipsec.py``).  Every ESP
packet is seen through the transports' ``tap``; what the endpoints are given is
recorded by a proxy between transport and endpoint, so "not delivered" is
checked below the transaction layer, which would absorb a retransmission anyway.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import shutil
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from presence_ims.security import SADatabase, SecurityMechanism, udp_wrap
from presence_ims.security.ipsec import (
    SecAgreeSaSet,
    allocate_spis,
    install,
    make_sa_set,
    remove,
    wireshark_esp_sa,
)
from presence_ims.sip import Headers, Request, parse_datagram, parse_uri
from presence_ims.sip.transaction import Address, TimerConfig
from presence_ims.transport import IncomingRequest, SipEndpoint
from presence_ims.transport.esp import EspTcpTransport, EspUdpTransport

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
IK = bytes.fromhex("f769bcd751044604127672711c6d3441")  # TS 35.208 set 1
CK = bytes.fromhex("b40ba9a3c58b2a05bbf0d987b21bf8cb")
PAIRS = [
    (alg, ealg)
    for alg in ("hmac-md5-96", "hmac-sha-1-96")
    for ealg in ("null", "aes-cbc", "des-ede3-cbc")
]
PIDF = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:alice@home1.net">'
    b'<tuple id="t1"><status><basic>open</basic></status></tuple></presence>\n'
)
EspTransport = EspUdpTransport | EspTcpTransport


@dataclass
class Packet:
    """One ESP packet as a tap saw it."""

    node: str
    direction: str
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes

    @property
    def spi(self) -> int:
        return int(struct.unpack_from(">I", self.data)[0])


class Recorder:
    """Sits between a transport and its endpoint and records what is handed over."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.delivered: list[tuple[bytes, Address]] = []
        self.failed: list[tuple[Address, str]] = []

    def datagram_received(self, data: bytes, source: Address) -> None:
        self.delivered.append((data, source))
        self.endpoint.datagram_received(data, source)

    def stream_received(self, data: bytes, source: Address) -> None:
        self.delivered.append((data, source))
        self.endpoint.stream_received(data, source)

    def stream_closed(self, source: Address) -> None:
        self.endpoint.stream_closed(source)

    def send_failed(self, destination: Address, reason: str, transaction: object) -> None:
        self.failed.append((destination, reason))
        self.endpoint.send_failed(destination, reason, transaction)

    def delivered_bytes(self) -> bytes:
        return b"".join(data for data, _ in self.delivered)


@dataclass
class Side:
    """One node of the pair: endpoint, transport, SAs and what its handler saw."""

    node: str
    endpoint: SipEndpoint
    transport: EspTransport
    sadb: SADatabase
    recorder: Recorder
    inbound: asyncio.Queue[Packet]
    sa_set: SecAgreeSaSet | None = None
    received: list[IncomingRequest] = field(default_factory=list)

    def address(self, port: int | None = None) -> Address:
        """Where the other side sends requests: our port-s (or the given port)."""
        t = self.transport
        return Address(t.name, HOST, t.port_s if port is None else port)


@dataclass
class Gm:
    ue: Side
    pcscf: Side
    wire: list[Packet]
    clock: list[float]

    def sent_by(self, node: str) -> list[Packet]:
        return [p for p in self.wire if p.node == node and p.direction == "out"]


def new_request(method: str, dest: Address, body: bytes = b"", **extra: str) -> Request:
    headers = Headers(
        [
            ("From", f"<sip:alice@home1.net>;tag={secrets.token_hex(4)}"),
            ("To", "<sip:alice@home1.net>"),
            ("Call-ID", f"{secrets.token_hex(8)}@{HOST}"),
            ("CSeq", f"1 {method}"),
            *((name.replace("_", "-"), value) for name, value in extra.items()),
        ]
    )
    return Request(headers, body, method, parse_uri(f"sip:alice@{dest.host}:{dest.port}"))


def publish(dest: Address) -> Request:
    return new_request(
        "PUBLISH", dest, PIDF, Event="presence", Expires="3600", Content_Type="application/pidf+xml"
    )


def echo(side: Side) -> Callable[[IncomingRequest], None]:
    def handle(incoming: IncomingRequest) -> None:
        side.received.append(incoming)
        incoming.respond(200)

    return handle


Factory = Callable[..., Awaitable[Gm]]


@pytest.fixture
async def gm() -> AsyncIterator[Factory]:
    made: list[Gm] = []

    async def make(
        kind: str = "udp",
        alg: str = "hmac-sha-1-96",
        ealg: str = "aes-cbc",
        *,
        expires_at: float | None = None,
        timers: TimerConfig | None = None,
    ) -> Gm:
        wire: list[Packet] = []
        clock = [0.0]
        sides: list[Side] = []
        for node in ("ue", "pcscf"):
            endpoint = SipEndpoint(node=node, interface="Gm", timers=timers)
            recorder = Recorder(endpoint)
            sadb = SADatabase()
            inbound: asyncio.Queue[Packet] = asyncio.Queue()

            def tap(
                direction: str,
                src: tuple[str, int],
                dst: tuple[str, int],
                data: bytes,
                node: str = node,
                inbound: asyncio.Queue[Packet] = inbound,
            ) -> None:
                packet = Packet(node, direction, src, dst, data)
                wire.append(packet)
                if direction == "in":
                    inbound.put_nowait(packet)

            cls = EspUdpTransport if kind == "udp" else EspTcpTransport
            transport = cls(recorder, HOST, 0, 0, sadb, tap=tap, clock=lambda: clock[0])
            await transport.start()
            endpoint.add_transport(transport)
            side = Side(node, endpoint, transport, sadb, recorder, inbound)
            endpoint.on_request(echo(side))
            sides.append(side)
        ue, pcscf = sides
        rng = random.Random(1)
        ue_spis, pc_spis = allocate_spis(rng), allocate_spis(rng)
        client = SecurityMechanism(
            "ipsec-3gpp",
            alg=alg,
            ealg=ealg,
            spi_c=ue_spis[0],
            spi_s=ue_spis[1],
            port_c=ue.transport.port_c,
            port_s=ue.transport.port_s,
        )
        server = SecurityMechanism(
            "ipsec-3gpp",
            alg=alg,
            ealg=ealg,
            spi_c=pc_spis[0],
            spi_s=pc_spis[1],
            port_c=pcscf.transport.port_c,
            port_s=pcscf.transport.port_s,
        )
        for side, role in ((ue, "ue"), (pcscf, "pcscf")):
            side.sa_set = make_sa_set(
                role=role,  # type: ignore[arg-type]
                ue_host=HOST,
                pcscf_host=HOST,
                client=client,
                server=server,
                ik=IK,
                ck=CK,
                expires_at=expires_at,
            )
            install(side.sadb, side.sa_set)
        pair = Gm(ue, pcscf, wire, clock)
        made.append(pair)
        return pair

    yield make
    for pair in made:
        for side in (pair.ue, pair.pcscf):
            await side.endpoint.close()


async def exchange(pair: Gm) -> list[Request]:
    """OPTIONS and PUBLISH from the UE to the P-CSCF and from the P-CSCF to the UE."""
    sent: list[Request] = []
    for src, dst in ((pair.ue, pair.pcscf), (pair.pcscf, pair.ue)):
        dest = dst.address()
        for request in (new_request("OPTIONS", dest), publish(dest)):
            response = await src.endpoint.request(request, dest)
            assert response.status == 200, response.reason
            assert response.call_id == request.call_id
            sent.append(request)
    return sent


# -- the exchange, for every algorithm pair, over UDP and TCP ---------------------------


@pytest.mark.parametrize("kind", ["udp", "tcp"])
@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
async def test_requests_both_ways(gm: Factory, kind: str, alg: str, ealg: str) -> None:
    pair = await gm(kind, alg, ealg)
    ue, pc = pair.ue, pair.pcscf
    sent = await exchange(pair)

    # each handler got exactly the requests sent to it, byte for byte below the Via
    for side, requests in ((pc, sent[:2]), (ue, sent[2:])):
        assert [i.request.method for i in side.received] == ["OPTIONS", "PUBLISH"]
        for incoming, request in zip(side.received, requests, strict=True):
            got = incoming.request
            assert got.call_id == request.call_id
            assert got.body == request.body
            assert got.via.branch == request.via.branch
            wrote = parse_datagram(request.serialize())  # as the sender wrote it
            assert [(n.lower(), v) for n, v in got.headers if n.lower() != "via"] == [
                (n.lower(), v) for n, v in wrote.headers if n.lower() != "via"
            ]
            assert incoming.source.transport == f"esp-{kind}"
    assert pc.received[1].request.body == PIDF
    assert ue.received[1].request.headers.get("event") == "presence"

    # what the transports handed over is exactly what the other side wrote
    if kind == "udp":
        assert [d for d, _ in pc.recorder.delivered if not d.startswith(b"SIP/2.0")] == [
            r.serialize() for r in sent[:2]
        ]
        assert [d for d, _ in ue.recorder.delivered if not d.startswith(b"SIP/2.0")] == [
            r.serialize() for r in sent[2:]
        ]
    else:
        stream = pc.recorder.delivered_bytes()
        assert all(r.serialize() in stream for r in sent[:2])
        stream = ue.recorder.delivered_bytes()
        assert all(r.serialize() in stream for r in sent[2:])

    # requests leave from port-c, arrive on port-s, responses go back port-s -> port-c
    ut, pt = ue.transport, pc.transport
    ue_req = pc.received[0]
    assert ue_req.source.port == ut.port_c
    assert (ue_req.request.via.host, ue_req.request.via.port) == (HOST, ut.port_s)
    assert ue_req.request.via.transport == ("UDP" if kind == "udp" else "TCP")
    if kind == "udp":
        assert ue_req.request.via.rport == ut.port_c
    assert pair.ue.received[0].source.port == pt.port_c

    # the SPIs on the wire are the receivers' choices (TS 33.203 7.1)
    client, server = ue.sa_set, pc.sa_set
    assert client is not None and server is not None
    spi_of = {(sa.src, sa.dst): sa.spi for sa in client.sas}
    assert len(pair.wire) >= 8
    for packet in pair.sent_by("ue") + pair.sent_by("pcscf"):
        assert packet.spi == spi_of[(packet.src, packet.dst)]
    flows = {(p.src[1], p.dst[1]) for p in pair.sent_by("ue") + pair.sent_by("pcscf")}
    assert flows == {
        (ut.port_c, pt.port_s),
        (pt.port_s, ut.port_c),
        (pt.port_c, ut.port_s),
        (ut.port_s, pt.port_c),
    }

    # the SIP text is on the wire only without encryption
    wire = b"".join(p.data for p in pair.wire)
    secrets_ = [sent[0].call_id.encode(), b"OPTIONS sip:", PIDF[:40], b"SIP/2.0 200"]
    if ealg == "null":
        assert all(s in wire for s in secrets_)
    else:
        assert not any(s in wire for s in secrets_)
    assert ut.drops == {} and pt.drops == {}


# -- what is dropped (UDP) ----------------------------------------------------------------


async def next_inbound(side: Side) -> Packet:
    """The next packet that reached ``side``, once its transport has fully handled it."""
    return await asyncio.wait_for(side.inbound.get(), 5)


def fresh_request_packet(pair: Gm, request: Request) -> bytes:
    """A new, validly protected UE port-c -> P-CSCF port-s packet (next sequence number)."""
    ut, pt = pair.ue.transport, pair.pcscf.transport
    payload = udp_wrap(ut.port_c, pt.port_s, request.serialize())
    return pair.ue.sadb.protect((HOST, ut.port_c), (HOST, pt.port_s), payload, now=0.0)


async def test_replay_is_dropped(gm: Factory) -> None:
    pair = await gm("udp")
    ue, pc = pair.ue, pair.pcscf
    dest = pc.address()
    assert (await ue.endpoint.request(new_request("OPTIONS", dest), dest)).status == 200
    [first] = [p for p in pair.sent_by("ue") if p.dst[1] == pc.transport.port_s]
    delivered = len(pc.recorder.delivered)
    while not pc.inbound.empty():
        pc.inbound.get_nowait()

    assert isinstance(ue.transport, EspUdpTransport)
    with capture_logs() as logs:
        ue.transport.send_raw(first.data, ue.transport.port_c, (HOST, pc.transport.port_s))
        await next_inbound(pc)
    assert pc.transport.drops == {"replay": 1}
    assert len(pc.recorder.delivered) == delivered
    assert len(pc.received) == 1
    [log] = [e for e in logs if e["event"] == "esp_dropped"]
    assert log["log_level"] == "info" and log["interface"] == "Gm" and log["kind"] == "replay"


async def test_flipped_byte_is_dropped_and_moves_no_window(gm: Factory) -> None:
    pair = await gm("udp")
    ue, pc = pair.ue, pair.pcscf
    ut = ue.transport
    assert isinstance(ut, EspUdpTransport)
    request = new_request(
        "OPTIONS", pc.address(), Via=f"SIP/2.0/UDP {HOST}:{ut.port_s};branch=z9hG4bKflip"
    )
    request.headers.add("Max-Forwards", "70")
    packet = fresh_request_packet(pair, request)
    flipped = bytearray(packet)
    flipped[len(packet) // 2] ^= 0x01
    ut.send_raw(bytes(flipped), ut.port_c, (HOST, pc.transport.port_s))
    await next_inbound(pc)
    assert pc.transport.drops == {"bad_icv": 1}
    assert pc.recorder.delivered == []

    # the genuine packet with the same sequence number still gets through
    ut.send_raw(packet, ut.port_c, (HOST, pc.transport.port_s))
    await next_inbound(pc)
    assert [d for d, _ in pc.recorder.delivered] == [request.serialize()]
    assert pc.transport.drops == {"bad_icv": 1}


async def test_packets_from_elsewhere_are_dropped(gm: Factory) -> None:
    pair = await gm("udp")
    ue, pc = pair.ue, pair.pcscf
    dest = pc.address()
    assert (await ue.endpoint.request(new_request("OPTIONS", dest), dest)).status == 200
    [genuine] = [p for p in pair.sent_by("ue") if p.dst[1] == pc.transport.port_s]
    while not pc.inbound.empty():
        pc.inbound.get_nowait()
    delivered = len(pc.recorder.delivered)

    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stranger.bind((HOST, 0))
        # a valid packet, but from an address that has no SA
        stranger.sendto(genuine.data, (HOST, pc.transport.port_s))
        await next_inbound(pc)
        # an SPI nobody has
        stranger.sendto(struct.pack(">II", 0xDEADBEEF, 1) + bytes(40), (HOST, pc.transport.port_s))
        await next_inbound(pc)
        # too short to be ESP
        stranger.sendto(b"\r\n\r\n", (HOST, pc.transport.port_s))
        await next_inbound(pc)
    finally:
        stranger.close()
    # from the right peer, but to the wrong one of our ports
    ut = ue.transport
    assert isinstance(ut, EspUdpTransport)
    packet = fresh_request_packet(pair, new_request("OPTIONS", dest))
    ut.send_raw(packet, ut.port_c, (HOST, pc.transport.port_c))
    await next_inbound(pc)

    assert pc.transport.drops == {"wrong_source": 1, "unknown_spi": 1, "short": 1, "wrong_port": 1}
    assert len(pc.recorder.delivered) == delivered


async def test_inner_ports_must_match_outer(gm: Factory) -> None:
    pair = await gm("udp")
    ue, pc = pair.ue, pair.pcscf
    ut, pt = ue.transport, pc.transport
    assert isinstance(ut, EspUdpTransport)
    request = new_request("OPTIONS", pc.address())
    payload = udp_wrap(ut.port_s, pt.port_s, request.serialize())  # claims the wrong source port
    packet = ue.sadb.protect((HOST, ut.port_c), (HOST, pt.port_s), payload, now=0.0)
    ut.send_raw(packet, ut.port_c, (HOST, pt.port_s))
    await next_inbound(pc)
    assert pt.drops == {"wrong_port": 1}
    assert pc.recorder.delivered == []


async def test_removed_sas_fail_sends_and_drop_receipts(gm: Factory) -> None:
    pair = await gm("udp")
    ue, pc = pair.ue, pair.pcscf
    assert pc.sa_set is not None
    assert len(remove(pc.sadb, pc.sa_set)) == 4

    # the P-CSCF cannot send: the endpoint hears send_failed and answers itself 503
    dest = ue.address()
    response = await pc.endpoint.request(new_request("OPTIONS", dest), dest)
    assert response.status == 503
    [(where, reason)] = pc.recorder.failed
    assert where.port == ue.transport.port_s and reason.startswith("no SA to")
    assert ue.recorder.delivered == []

    # what the UE still sends is dropped
    ue.endpoint.start_request(new_request("OPTIONS", pc.address()), pc.address(), lambda r: None)
    await next_inbound(pc)
    assert pc.transport.drops == {"unknown_spi": 1}
    assert pc.recorder.delivered == []


async def test_expired_sas(gm: Factory) -> None:
    pair = await gm("udp", expires_at=100.0)
    ue, pc = pair.ue, pair.pcscf
    dest = pc.address()
    assert (await ue.endpoint.request(new_request("OPTIONS", dest), dest)).status == 200
    pair.clock[0] = 100.0
    ue.endpoint.start_request(new_request("OPTIONS", dest), dest, lambda r: None)
    assert ue.recorder.failed and "expired" in ue.recorder.failed[0][1]
    # the P-CSCF drops a packet the UE protected before its own SA ran out
    ut = ue.transport
    assert isinstance(ut, EspUdpTransport)
    packet = fresh_request_packet(pair, new_request("OPTIONS", dest))
    ut.send_raw(packet, ut.port_c, (HOST, pc.transport.port_s))
    await next_inbound(pc)
    assert pc.transport.drops == {"expired": 1}
    assert len(pc.received) == 1


async def test_retransmissions_are_new_esp_packets(gm: Factory) -> None:
    """A SIP retransmission gets a new sequence number: anti-replay never eats it."""
    pair = await gm("udp", timers=TimerConfig(t1=0.05, t2=0.4))
    ue, pc = pair.ue, pair.pcscf
    deliver = pc.recorder.datagram_received
    lost: list[bytes] = []

    def lose_first(data: bytes, source: Address) -> None:
        if not lost:
            lost.append(data)
            return
        deliver(data, source)

    pc.recorder.datagram_received = lose_first  # type: ignore[method-assign]
    dest = pc.address()
    assert (await ue.endpoint.request(publish(dest), dest)).status == 200
    seqs = [struct.unpack_from(">I", p.data, 4)[0] for p in pair.sent_by("ue")]
    assert len(seqs) >= 2 and seqs == sorted(set(seqs))
    assert pc.transport.drops == {}


# -- TCP ------------------------------------------------------------------------------------


async def test_tcp_reuses_connections(gm: Factory) -> None:
    pair = await gm("tcp")
    await exchange(pair)
    await exchange(pair)
    ut, pt = pair.ue.transport, pair.pcscf.transport
    assert isinstance(ut, EspTcpTransport) and isinstance(pt, EspTcpTransport)
    # one connection UE port-c -> P-CSCF port-s and one P-CSCF port-c -> UE port-s
    assert ut.connections == 2 and pt.connections == 2
    assert len({i.source.flow for i in pair.pcscf.received}) == 1


async def test_tcp_stranger_is_dropped_and_disconnected(gm: Factory) -> None:
    pair = await gm("tcp")
    pc = pair.pcscf
    await exchange(pair)
    [genuine] = [p for p in pair.sent_by("ue") if p.dst[1] == pc.transport.port_s][:1]
    while not pc.inbound.empty():
        pc.inbound.get_nowait()
    delivered = len(pc.recorder.delivered)
    reader, writer = await asyncio.open_connection(HOST, pc.transport.port_s)
    try:
        writer.write(struct.pack(">H", len(genuine.data)) + genuine.data)
        await writer.drain()
        await next_inbound(pc)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the P-CSCF
    finally:
        writer.close()
    assert pc.transport.drops == {"wrong_source": 1}
    assert len(pc.recorder.delivered) == delivered


async def test_tcp_removed_sas_fail_sends(gm: Factory) -> None:
    pair = await gm("tcp")
    ue, pc = pair.ue, pair.pcscf
    await exchange(pair)
    assert pc.sa_set is not None
    remove(pc.sadb, pc.sa_set)
    dest = ue.address()
    response = await pc.endpoint.request(new_request("OPTIONS", dest), dest)
    assert response.status == 503
    assert pc.recorder.failed[0][1].startswith("no SA to")
    # over the open connection the UE still writes on, the P-CSCF drops and disconnects
    ue.endpoint.start_request(new_request("OPTIONS", pc.address()), pc.address(), lambda r: None)
    await next_inbound(pc)
    assert pc.transport.drops == {"unknown_spi": 1}


# -- re-registration: new SAs on new client ports ------------------------------------------


@pytest.mark.parametrize("kind", ["udp", "tcp"])
async def test_new_client_ports_take_over(gm: Factory, kind: str) -> None:
    pair = await gm(kind)
    ue, pc = pair.ue, pair.pcscf
    await exchange(pair)
    ut, pt = ue.transport, pc.transport
    old_ue_c, old_pc_c = ut.port_c, pt.port_c
    old_ue, old_pc = ue.sa_set, pc.sa_set
    assert old_ue is not None and old_pc is not None

    # TS 33.203 7.4: new client ports and SPIs, the server ports stay
    new_ue_c, new_pc_c = await ut.add_client_port(), await pt.add_client_port()
    assert ut.port_c == new_ue_c != old_ue_c and ut.client_ports == (old_ue_c, new_ue_c)
    rng = random.Random(2)
    ue_spis = allocate_spis(rng, old_ue.inbound_spis)
    pc_spis = allocate_spis(rng, old_pc.inbound_spis)
    client = SecurityMechanism(
        "ipsec-3gpp",
        alg=old_ue.alg,
        ealg=old_ue.ealg,
        spi_c=ue_spis[0],
        spi_s=ue_spis[1],
        port_c=new_ue_c,
        port_s=ut.port_s,
    )
    server = SecurityMechanism(
        "ipsec-3gpp",
        alg=old_ue.alg,
        ealg=old_ue.ealg,
        spi_c=pc_spis[0],
        spi_s=pc_spis[1],
        port_c=new_pc_c,
        port_s=pt.port_s,
    )
    new_sets = {}
    for side, role in ((ue, "ue"), (pc, "pcscf")):
        new_sets[role] = make_sa_set(
            role=role,  # type: ignore[arg-type]
            ue_host=HOST,
            pcscf_host=HOST,
            client=client,
            server=server,
            ik=CK,  # a new authentication gives new keys
            ck=IK,
            expires_at=None,
        )
        install(side.sadb, new_sets[role])

    ue.received.clear()
    pc.received.clear()
    await exchange(pair)
    assert {i.source.port for i in pc.received} == {new_ue_c}
    assert {i.source.port for i in ue.received} == {new_pc_c}

    # the old SAs go, and their ports with them: traffic carries on, on the new SAs only
    remove(ue.sadb, old_ue)
    remove(pc.sadb, old_pc)
    await ut.remove_client_port(old_ue_c)
    await pt.remove_client_port(old_pc_c)
    with pytest.raises(ValueError):
        await ut.remove_client_port(new_ue_c)
    ue.received.clear()
    pc.received.clear()
    before = len(pair.wire)
    await exchange(pair)
    assert len(pc.received) == 2 and len(ue.received) == 2
    new_spis = {sa.spi for sa in new_sets["ue"].sas}
    assert {p.spi for p in pair.wire[before:]} == new_spis
    assert ut.drops == {} and pt.drops == {}


# -- an independent decoder: tshark ------------------------------------------------------


def pcap(packets: list[Packet]) -> bytes:
    """A pcap file: Ethernet / IPv4 (protocol 50, ESP) / ESP, one record per packet.

    This is how ESP in transport mode looks on a real link; the inner UDP header
    the transport puts in every payload gives tshark the ports.
    """
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n, p in enumerate(packets):
        ip = struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(p.data),
            n,
            0,
            64,
            50,
            0,
            socket.inet_aton(p.src[0]),
            socket.inet_aton(p.dst[0]),
        )
        frame = bytes(6) + bytes(5) + b"\x01" + b"\x08\x00" + ip + p.data
        out.append(struct.pack("<IIII", n, 0, len(frame), len(frame)) + frame)
    return b"".join(out)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize(("alg", "ealg"), PAIRS)
async def test_tshark_decodes_the_capture(gm: Factory, tmp_path: Path, alg: str, ealg: str) -> None:
    pair = await gm("udp", alg, ealg)
    await exchange(pair)
    sent = pair.sent_by("ue") + pair.sent_by("pcscf")
    sent.sort(key=pair.wire.index)
    path = tmp_path / "gm.pcap"
    path.write_bytes(pcap(sent))
    assert pair.ue.sa_set is not None
    args: list[str] = [
        "-r",
        str(path),
        "-o",
        "esp.enable_encryption_decode:TRUE",
        "-o",
        "esp.enable_authentication_check:TRUE",
    ]
    for sa in pair.ue.sa_set.sas:
        args += ["-o", f"uat:esp_sa:{wireshark_esp_sa(sa)}"]
    args += ["-T", "fields", "-e", "esp.icv_good", "-e", "sip.Method", "-e", "sip.Status-Code"]
    proc = await asyncio.create_subprocess_exec(
        "tshark",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 25)
    assert proc.returncode == 0, stderr.decode()
    rows = [line.split("\t") for line in stdout.decode().splitlines()]
    assert len(rows) == len(sent) == 8
    assert all(row[0] == "1" for row in rows)  # every ICV verified by tshark
    methods = [row[1] for row in rows if row[1]]
    statuses = [row[2] for row in rows if row[2]]
    assert methods == ["OPTIONS", "PUBLISH", "OPTIONS", "PUBLISH"]
    assert statuses == ["200"] * 4
