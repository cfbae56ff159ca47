"""Two SipEndpoints on 127.0.0.1 (port 0) talking over real UDP, TCP and TLS sockets."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from presence_ims.sip import Headers, Request, Response, parse_datagram, parse_uri
from presence_ims.sip.transaction import Address, TimerConfig
from presence_ims.transport import IncomingRequest, SipEndpoint, StreamTransport, UdpTransport

pytestmark = pytest.mark.timeout(30)

PIDF = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:alice@home1.net">\n'
    b'  <tuple id="sg89ae"><status><basic>open</basic></status>'
    b"<contact priority=\"0.8\">sip:alice@home1.net</contact></tuple>\n"
    b"</presence>\n"
)


@dataclass
class Uas:
    """What the UAS handler saw."""

    endpoint: SipEndpoint
    received: list[IncomingRequest] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


def new_request(method: str, dest: Address, body: bytes = b"", **extra: str) -> Request:
    headers = Headers(
        [
            ("From", f"<sip:alice@home1.net>;tag={secrets.token_hex(4)}"),
            ("To", "<sip:alice@home1.net>"),
            ("Call-ID", f"{secrets.token_hex(8)}@127.0.0.1"),
            ("CSeq", f"1 {method}"),
            *((name.replace("_", "-"), value) for name, value in extra.items()),
        ]
    )
    return Request(headers, body, method, parse_uri(f"sip:alice@{dest.host}:{dest.port}"))


def publish(dest: Address) -> Request:
    return new_request(
        "PUBLISH",
        dest,
        PIDF,
        Event="presence",
        Expires="3600",
        Content_Type="application/pidf+xml",
    )


async def start(
    kind: str,
    node: str,
    *,
    timers: TimerConfig | None = None,
    server_ssl: ssl.SSLContext | None = None,
    client_ssl: ssl.SSLContext | None = None,
) -> SipEndpoint:
    ep = SipEndpoint(node=node, timers=timers)
    await ep.listen(kind, "127.0.0.1", 0, ssl=server_ssl, client_ssl=client_ssl)
    return ep


def echo_handler(uas: Uas) -> Callable[[IncomingRequest], None]:
    def handle(incoming: IncomingRequest) -> None:
        uas.received.append(incoming)
        uas.arrived.set()
        if incoming.request.method == "PUBLISH":
            incoming.respond(200, headers=[("SIP-ETag", "etag-1"), ("Expires", "3600")])
        else:
            incoming.respond(200)

    return handle


@pytest.fixture
async def endpoints() -> AsyncIterator[Callable[..., Awaitable[SipEndpoint]]]:
    made: list[SipEndpoint] = []

    async def make(kind: str, node: str, **kw: Any) -> SipEndpoint:
        ep = await start(kind, node, **kw)
        made.append(ep)
        return ep

    yield make
    for ep in made:
        await ep.close()


async def pair(
    endpoints: Callable[..., Awaitable[SipEndpoint]], kind: str, **kw: Any
) -> tuple[SipEndpoint, Uas]:
    uac = await endpoints(kind, "uac", **kw)
    uas = Uas(await endpoints(kind, "uas", **kw))
    uas.endpoint.on_request(echo_handler(uas))
    return uac, uas


# -- OPTIONS and PUBLISH over UDP and TCP --------------------------------------------


@pytest.mark.parametrize("kind", ["udp", "tcp"])
async def test_options_and_publish(endpoints: Callable[..., Awaitable[SipEndpoint]], kind: str) -> None:
    uac, uas = await pair(endpoints, kind)
    dest = uas.endpoint.address(kind)
    assert dest.port != 0

    options = new_request("OPTIONS", dest)
    resp = await uac.request(options, dest)
    assert resp.status == 200
    assert resp.to.tag
    assert resp.call_id == options.call_id

    pub = publish(dest)
    resp = await uac.request(pub, dest)
    assert resp.status == 200
    assert resp.headers.get("SIP-ETag") == "etag-1"
    assert resp.expires == 3600
    assert resp.cseq.method == "PUBLISH"

    assert [i.request.method for i in uas.received] == ["OPTIONS", "PUBLISH"]
    got = uas.received[1].request
    # what the UAS really received
    assert got.body == PIDF
    assert got.headers.get("content-length") == str(len(PIDF))
    ct = got.content_type
    assert ct is not None and ct.mime == "application/pidf+xml"
    assert got.event is not None and got.event.value == "presence"
    assert got.expires == 3600
    assert got.max_forwards == 70
    assert got.call_id == pub.call_id
    assert len(got.vias) == 1
    via = got.via
    uac_t = uac.transports[kind]
    assert via.transport == kind.upper()
    assert via.is_rfc3261
    assert (via.host, via.port) == ("127.0.0.1", uac_t.port)
    source = uas.received[1].source
    assert source.transport == kind and source.host == "127.0.0.1"
    if kind == "udp":
        # one socket sends and receives: the source port is the SIP port; rport is filled in
        assert source.port == uac_t.port
        assert via.rport == uac_t.port
        assert via.received == "127.0.0.1"
    else:
        assert via.rport is None
        assert source.flow is not None
    # every server transaction answered through the layer, nothing left hanging in the UAC
    assert uac.stats["rx_response"] >= 2
    assert uas.endpoint.stats["rx_request"] == 2


async def test_udp_retransmission_gets_through_a_lost_datagram(
    endpoints: Callable[..., Awaitable[SipEndpoint]],
) -> None:
    uac, uas = await pair(endpoints, "udp", timers=TimerConfig(t1=0.05, t2=0.4))
    seen: list[bytes] = []
    deliver = uas.endpoint.datagram_received

    def lossy(data: bytes, source: Address) -> None:
        seen.append(data)
        if len(seen) == 1:
            return  # the first datagram is lost
        deliver(data, source)

    uas.endpoint.datagram_received = lossy  # type: ignore[method-assign]
    dest = uas.endpoint.address("udp")
    resp = await uac.request(publish(dest), dest)
    assert resp.status == 200
    assert len(seen) >= 2
    assert parse_datagram(seen[0]).serialize() == parse_datagram(seen[1]).serialize()  # same request
    assert len(uas.received) == 1  # retransmissions after the first are absorbed
    assert uac.stats["tx_request"] >= 2


async def test_tcp_connection_reuse(endpoints: Callable[..., Awaitable[SipEndpoint]]) -> None:
    uac, uas = await pair(endpoints, "tcp")
    dest = uas.endpoint.address("tcp")
    first = await uac.request(new_request("OPTIONS", dest), dest)
    second = await uac.request(publish(dest), dest)
    # two more at once, before anything is sent, share the connection too
    third, fourth = await asyncio.gather(
        uac.request(new_request("OPTIONS", dest), dest),
        uac.request(new_request("MESSAGE", dest, b"hi", Content_Type="text/plain"), dest),
    )
    assert [r.status for r in (first, second, third, fourth)] == [200] * 4
    flows = {i.source.flow for i in uas.received}
    ports = {i.source.port for i in uas.received}
    assert len(uas.received) == 4 and len(flows) == 1 and len(ports) == 1
    uac_tcp = uac.transports["tcp"]
    uas_tcp = uas.endpoint.transports["tcp"]
    assert isinstance(uac_tcp, StreamTransport) and isinstance(uas_tcp, StreamTransport)
    # the responses came back on the UAC's connection: the UAS never dialled the UAC's listener
    assert uac_tcp.connections == 1
    assert uas_tcp.connections == 1


async def test_tcp_concurrent_first_requests_share_one_connect(
    endpoints: Callable[..., Awaitable[SipEndpoint]],
) -> None:
    uac, uas = await pair(endpoints, "tcp")
    dest = uas.endpoint.address("tcp")
    responses = await asyncio.gather(*(uac.request(new_request("OPTIONS", dest), dest) for _ in range(5)))
    assert [r.status for r in responses] == [200] * 5
    assert len({i.source.flow for i in uas.received}) == 1


# -- TLS ---------------------------------------------------------------------------------


@dataclass
class Pki:
    server: ssl.SSLContext
    client: ssl.SSLContext
    wrong_client: ssl.SSLContext


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA, a certificate for 127.0.0.1 signed by it, and a second, unrelated CA."""
    ca_key, ca_cert = _ca("presence-ims test CA")
    _, other_ca = _ca("someone else's CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("ps.home1.net"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    d: Path = tmp_path_factory.mktemp("pki")
    (d / "node.pem").write_bytes(_pem(cert))
    (d / "node.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "node.pem", d / "node.key")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=_pem(ca_cert).decode())
    wrong = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    wrong.load_verify_locations(cadata=_pem(other_ca).decode())
    return Pki(server, client, wrong)


async def test_tls(endpoints: Callable[..., Awaitable[SipEndpoint]], pki: Pki) -> None:
    uac, uas = await pair(endpoints, "tls", server_ssl=pki.server, client_ssl=pki.client)
    dest = uas.endpoint.address("tls")
    assert dest.reliable
    resp = await uac.request(publish(dest), dest)
    assert resp.status == 200
    resp2 = await uac.request(new_request("OPTIONS", dest), dest)
    assert resp2.status == 200
    got = uas.received[0].request
    assert got.via.transport == "TLS"
    assert got.body == PIDF
    assert len({i.source.flow for i in uas.received}) == 1


async def test_tls_refuses_a_certificate_from_an_unknown_ca(
    endpoints: Callable[..., Awaitable[SipEndpoint]], pki: Pki
) -> None:
    uac, uas = await pair(endpoints, "tls", server_ssl=pki.server, client_ssl=pki.wrong_client)
    dest = uas.endpoint.address("tls")
    resp = await uac.request(new_request("OPTIONS", dest), dest)
    assert resp.status == 503  # made locally: the handshake failed
    assert uas.received == []


# -- errors --------------------------------------------------------------------------------


def raw(method: str, client_port: int, *lines: str, version: str = "SIP/2.0") -> bytes:
    head = [
        f"{method} sip:echo@127.0.0.1 {version}",
        f"Via: SIP/2.0/UDP 127.0.0.1:{client_port};branch=z9hG4bK{secrets.token_hex(6)};rport",
        "From: <sip:tester@127.0.0.1>;tag=t1",
        "To: <sip:echo@127.0.0.1>",
        f"Call-ID: {secrets.token_hex(6)}",
        *lines,
        "Content-Length: 0",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("lines", "version", "status", "reason"),
    [
        ((), "SIP/2.0", 400, "missing CSeq header"),
        (("CSeq: 1 OPTIONS", "Contact: <sip:broken"), "SIP/2.0", 400, "malformed Contact header"),
        (("CSeq: 1 INVITE",), "SIP/2.0", 400, "CSeq method does not match the request method"),
        (("CSeq: 1 OPTIONS", "Max-Forwards: 300"), "SIP/2.0", 400, "Max-Forwards value out of range"),
        (("CSeq: 1 OPTIONS",), "SIP/3.0", 505, "SIP version not supported"),
    ],
)
async def test_malformed_request_gets_a_reason_naming_the_defect(
    endpoints: Callable[..., Awaitable[SipEndpoint]],
    udp_client: Callable[[], Awaitable[Any]],
    lines: tuple[str, ...],
    version: str,
    status: int,
    reason: str,
) -> None:
    uas = Uas(await endpoints("udp", "uas"))
    uas.endpoint.on_request(echo_handler(uas))
    client = await udp_client()
    data = raw("OPTIONS", client.port, *lines, version=version)
    client.send(data, ("127.0.0.1", uas.endpoint.transports["udp"].port))
    answer = parse_datagram(await client.recv())
    assert isinstance(answer, Response)
    assert answer.status == status
    assert answer.reason == reason
    assert answer.call_id == parse_datagram(data).call_id
    assert answer.to.tag  # a stateless answer still carries a To tag
    assert uas.received == []
    assert uas.endpoint.stats["parse_error:-"] == 1


async def test_tcp_framing_error_answers_and_closes(endpoints: Callable[..., Awaitable[SipEndpoint]]) -> None:
    uas = Uas(await endpoints("tcp", "uas"))
    uas.endpoint.on_request(echo_handler(uas))
    reader, writer = await asyncio.open_connection("127.0.0.1", uas.endpoint.transports["tcp"].port)
    try:
        data = raw("OPTIONS", 5060, "CSeq: 1 OPTIONS").replace(b"Content-Length: 0\r\n", b"")
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(5):
            received = await reader.read()  # until the UAS closes the connection
        answer = parse_datagram(received)
        assert isinstance(answer, Response)
        assert answer.status == 400
        assert answer.reason == "missing Content-Length on a stream transport"
    finally:
        writer.close()
    assert uas.received == []


async def test_handler_that_raises_yields_500_and_the_endpoint_keeps_answering(
    endpoints: Callable[..., Awaitable[SipEndpoint]],
) -> None:
    uac = await endpoints("udp", "uac")
    uas = await endpoints("udp", "uas")
    calls: list[str] = []

    async def async_handler(incoming: IncomingRequest) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async boom")

    def handler(incoming: IncomingRequest) -> Awaitable[None] | None:
        kind = incoming.request.headers.get("X-Kind")
        calls.append(kind or "")
        if kind == "sync":
            raise ValueError("boom")
        if kind == "async":
            return async_handler(incoming)
        if kind == "late":
            incoming.respond(202)
            raise ValueError("after the answer")
        incoming.respond(200)
        return None

    uas.on_request(handler)
    dest = uas.address("udp")
    sync = await uac.request(new_request("OPTIONS", dest, X_Kind="sync"), dest)
    aio = await uac.request(new_request("OPTIONS", dest, X_Kind="async"), dest)
    late = await uac.request(new_request("OPTIONS", dest, X_Kind="late"), dest)
    fine = await uac.request(new_request("OPTIONS", dest), dest)
    assert (sync.status, aio.status, late.status, fine.status) == (500, 500, 202, 200)
    assert calls == ["sync", "async", "late", ""]
    assert uas.stats["handler_error"] == 3


async def test_no_handler_answers_501(endpoints: Callable[..., Awaitable[SipEndpoint]]) -> None:
    uac = await endpoints("udp", "uac")
    uas = await endpoints("udp", "uas")
    dest = uas.address("udp")
    assert (await uac.request(new_request("OPTIONS", dest), dest)).status == 501


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(("kind", "statuses"), [("udp", {408, 503}), ("tcp", {503})])
async def test_request_to_a_closed_port_is_answered_locally(
    endpoints: Callable[..., Awaitable[SipEndpoint]], kind: str, statuses: set[int]
) -> None:
    uac = await endpoints(kind, "uac", timers=TimerConfig(t1=0.01, t2=0.04, t4=0.05))
    port = free_port(socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    dest = Address(kind, "127.0.0.1", port)
    req = new_request("OPTIONS", dest)
    resp = await uac.request(req, dest)
    assert resp.status in statuses
    assert resp.call_id == req.call_id
    assert len(uac.layer) == 0  # the client transaction is gone


async def test_request_on_a_transport_the_endpoint_lacks(
    endpoints: Callable[..., Awaitable[SipEndpoint]],
) -> None:
    uac = await endpoints("udp", "uac")
    resp = await uac.request(new_request("OPTIONS", Address("tcp", "127.0.0.1", 9)), Address("tcp", "127.0.0.1", 9))
    assert resp.status == 503


async def test_transports_report_their_bound_ports(endpoints: Callable[..., Awaitable[SipEndpoint]]) -> None:
    ep = await endpoints("udp", "n")
    udp = ep.transports["udp"]
    assert isinstance(udp, UdpTransport) and udp.port > 0
    assert ep.address() == Address("udp", "127.0.0.1", udp.port)
    tcp = await ep.listen("tcp", "127.0.0.1", 0)
    assert tcp.port > 0 and ep.address("tcp").port == tcp.port
    with pytest.raises(ValueError):
        await ep.listen("sctp", "127.0.0.1", 0)
    with pytest.raises(ValueError):
        await ep.listen("tls", "127.0.0.1", 0)  # no certificate


async def test_a_timer_the_loop_runs_early_still_fires(
    endpoints: Callable[..., Awaitable[SipEndpoint]],
) -> None:
    """uvloop runs call_at callbacks up to a millisecond early by loop.time(): the deadline
    must be handled then, not re-armed for the same instant over and over."""
    ep = await endpoints("udp", "uac", timers=TimerConfig(t1=10.0, t2=40.0))
    dest = Address("udp", "127.0.0.1", free_port(socket.SOCK_DGRAM))
    req = new_request("OPTIONS", dest)
    req.headers.prepend("Via", ep.via_for(dest))
    ep.layer.send_request(req, dest, ep._now())
    ep._flush()
    due = ep._timer_at
    assert due is not None and due > ep._now()  # Timer E, 10 s away
    assert ep.stats["tx_request"] == 1
    ep._on_timer()  # the loop calls back early
    assert ep.stats["tx_request"] == 2  # Timer E fired: the request went out again
    assert ep._timer_at is not None and ep._timer_at > due


def test_branches_are_new_branch_shaped_and_unique_across_blocks() -> None:
    """The endpoint's branches: magic cookie and 64 random bits, as ``new_branch()``,
    none repeated over several random blocks."""
    import re

    from presence_ims.transport.endpoint import _new_branch

    per_block = _new_branch.BLOCK // _new_branch.SIZE
    branches = [_new_branch() for _ in range(3 * per_block + 5)]
    assert len(set(branches)) == len(branches)
    assert all(re.fullmatch(r"z9hG4bK[0-9a-f]{16}", b) for b in branches)
