"""Malformed SIP and Diameter thrown at every node of a running network.

The echo node has its own torture test (``tests/e2e/test_echo_torture.py``);
this one aims at the nodes that hold state: the P-CSCF on Gm (UDP and TCP,
where anyone can send), and the I-CSCF, S-CSCF, P-CSCF (Mw), PS and HSS over
the network's mutual TLS, as a peer with a valid certificate that goes wrong
would.  Messages are valid IMS requests and responses mutated by a seeded
generator (bytes flipped, lines dropped or doubled, header values replaced by
hostile ones, truncation on UDP).

A third test does the same to the other input surfaces: XCAP (Ut), the PEA's
API (Pex) and MLP (Pl) over HTTP, RADIUS accounting (Pk) and the element feed
(Pc/Pg): only 4xx answers or closed connections, every refusal counted.

What must hold: no handler of any node raises (``handler_error``,
``callback_error`` and ``interface_of_error`` stay 0, so no 500 is ever sent,
and nothing escapes to the event loop), every answer is a SIP
response, the malformed input is counted, and afterwards the network still
works end to end: alice registers with IMS AKA, publishes, bob is told.

No sleeps: after every message a probe (OPTIONS) goes out on the same socket
or connection; its answer proves that the node has handled what came before.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import ssl
import struct
from pathlib import Path
from typing import Any

import pytest

from netharness import RunningNetwork, running_network
from presence_ims.documents import pidf
from presence_ims.elements import radius as eradius
from presence_ims.sip import SipParseError, parse_datagram

pytestmark = pytest.mark.slow

SEED = 4475
HOSTILE = [
    "", " ", "<", ">", '"', "%", "%zz", ";;;", ",,,", "a" * 3000, "\x7f", "\u00e9\u00e8",
    "-1", "99999999999999999999", "1 2 3", "sip:", "<sip:@>", "tel:", "<sip:a@b;lr", "*",
    "Digest", 'Digest nonce="', "SIP/2.0/UDP", "SIP/2.0/UDP 127.0.0.1;branch=", "0 INVITE",
    "4294967296 SUBSCRIBE", "presence;id=", "active;expires=x", "terminated;reason=",
    "ipsec-3gpp; spi-c=x; port-c=99999", "application/pidf+xml;charset=\"", "\t",
]

TEMPLATES = {
    "REGISTER": (
        "REGISTER sip:{domain} SIP/2.0\r\n"
        "Via: SIP/2.0/{t} 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@{domain}>;tag={tag}\r\n"
        "To: <sip:alice@{domain}>\r\n"
        "Call-ID: {callid}\r\n"
        "CSeq: 1 REGISTER\r\n"
        "Contact: <sip:alice@127.0.0.1:{port}>;expires=600\r\n"
        "Authorization: Digest username=\"alice@{domain}\", realm=\"{domain}\", nonce=\"\", "
        "uri=\"sip:{domain}\", response=\"\", algorithm=AKAv1-MD5\r\n"
        "Security-Client: ipsec-3gpp; alg=hmac-sha-1-96; ealg=aes-cbc; spi-c=1111; spi-s=2222; "
        "port-c={port}; port-s={port}\r\n"
        "Require: sec-agree\r\nProxy-Require: sec-agree\r\nSupported: path\r\n"
        "Content-Length: 0\r\n\r\n"
    ),
    "SUBSCRIBE": (
        "SUBSCRIBE sip:alice@{domain} SIP/2.0\r\n"
        "Via: SIP/2.0/{t} 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "Route: <sip:orig@scscf.{domain};lr>\r\n"
        "From: <sip:bob@{domain}>;tag={tag}\r\n"
        "To: <sip:alice@{domain}>\r\n"
        "Call-ID: {callid}\r\n"
        "CSeq: 7 SUBSCRIBE\r\n"
        "Contact: <sip:bob@127.0.0.1:{port}>\r\n"
        "P-Asserted-Identity: <sip:bob@{domain}>\r\n"
        "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: 600\r\n"
        "Content-Length: 0\r\n\r\n"
    ),
    "PUBLISH": (
        "PUBLISH sip:alice@{domain} SIP/2.0\r\n"
        "Via: SIP/2.0/{t} 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@{domain}>;tag={tag}\r\n"
        "To: <sip:alice@{domain}>\r\n"
        "Call-ID: {callid}\r\n"
        "CSeq: 1 PUBLISH\r\n"
        "P-Asserted-Identity: <sip:alice@{domain}>\r\n"
        "Event: presence\r\nExpires: 600\r\nSIP-If-Match: {tag}\r\n"
        "Content-Type: application/pidf+xml\r\n"
        "Content-Length: {length}\r\n\r\n{body}"
    ),
    "NOTIFY": (
        "NOTIFY sip:pna@127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/{t} 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@{domain}>;tag={tag}\r\n"
        "To: <sip:bob@{domain}>;tag={tag}x\r\n"
        "Call-ID: {callid}\r\n"
        "CSeq: 3 NOTIFY\r\n"
        "Event: reg\r\nSubscription-State: active;expires=60\r\n"
        "Content-Type: application/reginfo+xml\r\n"
        "Content-Length: {length}\r\n\r\n{body}"
    ),
    "INVITE": (
        "INVITE sip:alice@{domain} SIP/2.0\r\n"
        "Via: SIP/2.0/{t} 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:bob@{domain}>;tag={tag}\r\n"
        "To: <sip:alice@{domain}>\r\n"
        "Call-ID: {callid}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:bob@127.0.0.1:{port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ),
    "RESPONSE": (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/{t} 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "From: <sip:bob@{domain}>;tag={tag}\r\n"
        "To: <sip:alice@{domain}>;tag={tag}y\r\n"
        "Call-ID: {callid}\r\n"
        "CSeq: 2 NOTIFY\r\n"
        "Content-Length: 0\r\n\r\n"
    ),
}

PIDF = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@{domain}">'
    '<tuple id="t1"><status><basic>open</basic></status></tuple></presence>'
)
REGINFO = (
    '<?xml version="1.0"?><reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">'
    '<registration aor="sip:alice@{domain}" id="a" state="active"/></reginfo>'
)


def message(kind: str, *, domain: str, port: int, transport: str) -> bytes:
    body = (PIDF if kind == "PUBLISH" else REGINFO).format(domain=domain)
    text = TEMPLATES[kind].format(
        domain=domain, port=port, t=transport, branch=secrets.token_hex(6), tag=secrets.token_hex(4),
        callid=f"{secrets.token_hex(8)}@fuzz", body=body, length=len(body.encode()),
    )
    return text.encode()


def mutate(rng: random.Random, data: bytes, *, stream: bool) -> bytes:
    """One to three mutations; on a stream the framing (Content-Length and body size) is kept."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(6 if stream else 8)
        index = rng.randrange(len(lines))
        if lines[index].lower().startswith(b"content-length") and stream:
            continue
        if choice == 0:  # a header value replaced by a hostile one
            name = lines[index].partition(b":")[0] if index else lines[index]
            lines[index] = name + b": " + rng.choice(HOSTILE).encode("utf-8", "surrogatepass")
        elif choice == 1 and len(lines) > 1:  # a line dropped
            del lines[index]
        elif choice == 2:  # a line doubled
            lines.insert(index, lines[index])
        elif choice == 3:  # bytes of the head flipped (not into CR or LF on a stream)
            line = bytearray(lines[index] or b" ")
            for _ in range(rng.randint(1, 4)):
                value = rng.randrange(256)
                if stream and value in (10, 13):
                    value = 0x7E
                line[rng.randrange(len(line))] = value
            lines[index] = bytes(line)
        elif choice == 4:  # the start line mangled
            lines[0] = rng.choice([b"", b"SIP/2.0", b"REGISTER", b"FOO sip:x SIP/3.0", b"\x00" * 8,
                                   lines[0].replace(b"SIP/2.0", b"SIP/2.1"), lines[0].lower()])
        elif choice == 5 and body:  # the body's bytes changed, same length
            b = bytearray(body)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(32, 127)
            body = bytes(b)
        elif choice == 6:  # truncated (UDP only)
            whole = b"\r\n".join(lines) + sep + body
            return whole[: rng.randrange(len(whole))]
        elif choice == 7:  # Content-Length wrong (UDP only)
            lines = [ln for ln in lines if not ln.lower().startswith(b"content-length")]
            lines.append(b"Content-Length: " + str(rng.choice([-1, 0, 5, 100000])).encode())
    return b"\r\n".join(lines) + sep + body


def probe(domain: str, port: int, transport: str, n: int) -> tuple[bytes, bytes]:
    call_id = f"probe-{n}-{secrets.token_hex(4)}".encode()
    text = (
        f"OPTIONS sip:{domain} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:prober@{domain}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{domain}>\r\n"
        f"Call-ID: {call_id.decode()}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return text.encode(), call_id


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)


def check_answer(data: bytes, answers: list[int]) -> bytes | None:
    """Whatever a node sends must parse as SIP; a response's Call-ID (None for a request)."""
    try:
        msg = parse_datagram(data)
    except SipParseError as exc:
        raise AssertionError(f"a node sent something that is not SIP: {exc}: {data[:200]!r}") from None
    status = getattr(msg, "status", None)
    if status is None:
        return None  # a request forwarded our way (the Via or Contact of a mutant named us)
    answers.append(status)
    return (msg.headers.get("call-id") or "").encode("utf-8", "surrogateescape")


async def fuzz_udp(port: int, domain: str, count: int, rng: random.Random, answers: list[int]) -> None:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(UdpClient, local_addr=("127.0.0.1", 0))
    try:
        mine = transport.get_extra_info("sockname")[1]
        for n in range(count):
            kind = rng.choice(sorted(TEMPLATES))
            transport.sendto(mutate(rng, message(kind, domain=domain, port=mine, transport="UDP"), stream=False),
                             ("127.0.0.1", port))
            data, call_id = probe(domain, mine, "UDP", n)
            transport.sendto(data, ("127.0.0.1", port))
            async with asyncio.timeout(5):
                while check_answer(await proto.queue.get(), answers) != call_id:
                    pass
    finally:
        transport.close()


async def read_message(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


async def fuzz_stream(
    port: int, domain: str, count: int, rng: random.Random, answers: list[int],
    tls: ssl.SSLContext | None = None, server_hostname: str | None = None,
) -> int:
    """Mutated messages on one connection, a new one whenever the node closes it; the reconnects."""
    transport = "TLS" if tls else "TCP"
    reconnects = 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls, server_hostname=server_hostname)
    try:
        for n in range(count):
            mine = writer.get_extra_info("sockname")[1]
            kind = rng.choice(sorted(TEMPLATES))
            data, call_id = probe(domain, mine, transport, n)
            writer.write(mutate(rng, message(kind, domain=domain, port=mine, transport=transport), stream=True))
            writer.write(data)
            try:
                async with asyncio.timeout(5):
                    while check_answer(await read_message(reader), answers) != call_id:
                        pass
            except (asyncio.IncompleteReadError, ConnectionError):
                # the node closed the connection on a framing error (its right): start again
                writer.close()
                reconnects += 1
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=tls, server_hostname=server_hostname
                )
    finally:
        writer.close()
    return reconnects


def diameter_garbage(rng: random.Random) -> bytes:
    """Diameter-looking frames: bad versions, lengths, flags, AVPs cut short."""
    command = rng.choice([257, 280, 300, 301, 303, 306, 308, 999999])
    avps = secrets.token_bytes(rng.randrange(0, 64))
    length = 20 + len(avps)
    version = rng.choice([1, 1, 1, 2, 0])
    flags = rng.choice([0x80, 0x00, 0xC0, 0xFF])
    header = struct.pack("!I", (version << 24) | length) + struct.pack("!I", (flags << 24) | command)
    header += struct.pack("!III", rng.choice([0, 16777216, 16777217]), rng.randrange(2**32), rng.randrange(2**32))
    return header + avps


def code_errors(net: RunningNetwork) -> dict[str, int]:
    out = {}
    for role, node in net.nodes.items():
        endpoint = getattr(node, "endpoint", None)
        if endpoint is not None:
            stats = endpoint.stats
            out[role] = stats["handler_error"] + stats["callback_error"] + stats["interface_of_error"]
    return out


async def network_still_works(net: RunningNetwork) -> None:
    bob = await net.ue("bob")
    sub = await bob.agent.subscribe("sip:alice@home1.net")
    assert sub.response is not None and sub.response.status == 200
    alice = await net.ue("alice")
    doc = pidf.PresenceDocument("sip:alice@home1.net", (pidf.PresenceTuple("after-fuzz", "open"),))
    r = await alice.agent.publish(pidf.build(doc))
    assert r.status == 200
    async with asyncio.timeout(10):
        while True:
            note = await sub.next()
            if note.body and any(t.id == "after-fuzz" for t in pidf.parse(note.body).tuples):
                break


async def test_gm_survives_malformed_input(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    rng = random.Random(SEED)
    answers: list[int] = []
    async with running_network(tmp_path) as net:
        domain = net.settings.domain
        port = net.settings.pcscf.port
        await fuzz_udp(port, domain, 600, rng, answers)
        await fuzz_stream(port, domain, 200, rng, answers)
        assert code_errors(net) == dict.fromkeys(code_errors(net), 0)
        assert 500 not in answers
        stats = net.nodes["pcscf"].endpoint.stats
        assert stats["parse_error:Gm"] > 50, stats  # counted, with the interface they came from
        assert 400 in answers
        await network_still_works(net)
        assert code_errors(net) == dict.fromkeys(code_errors(net), 0)
    assert not unhandled, unhandled


async def test_network_nodes_survive_a_peer_gone_wrong(tmp_path: Path) -> None:
    """A TLS peer with a valid certificate sending garbage (SIP to the CSCFs and the PS, Diameter to the HSS)."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    rng = random.Random(SEED + 1)
    answers: list[int] = []
    async with running_network(tmp_path, overrides={"pna": {"enabled": True}}) as net:
        s = net.settings
        await net.nodes["pna"].ready()
        tls = net.network.tls.client["icscf"]  # speaking as the I-CSCF: trusted, but wrong
        targets: list[tuple[str, int]] = [
            ("pcscf", s.pcscf.network_port), ("icscf", s.icscf.port), ("scscf", s.scscf.port),
            ("ps", s.ps.port), ("pna", s.pna.sip_port),
        ]
        for role, port in targets:
            await fuzz_stream(port, s.domain, 120, rng, answers, tls=tls, server_hostname=s.name(role))
        # the HSS: whole Diameter frames gone wrong, each on a new connection
        errors_before = net.nodes["hss"].counters.errors
        for _ in range(20):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", s.hss.port, ssl=tls, server_hostname=s.name("hss")
            )
            writer.write(diameter_garbage(rng))
            try:
                async with asyncio.timeout(5):
                    await reader.read(65536)  # its answer, or the end of the connection
            finally:
                writer.close()
        assert net.nodes["hss"].counters.errors > errors_before
        assert 500 not in answers
        assert code_errors(net) == dict.fromkeys(code_errors(net), 0)
        await network_still_works(net)
        assert code_errors(net) == dict.fromkeys(code_errors(net), 0)
    assert not unhandled, unhandled


HTTP_GARBAGE: list[tuple[str, str, dict[str, str], bytes]] = [
    ("GET", "/xcap-root/pres-rules/users/sip:alice@home1.net/index", {"Authorization": 'Digest username="'}, b""),
    ("GET", "/xcap-root/pres-rules/users/%ff%fe/index", {}, b""),
    ("PUT", "/xcap-root/pres-rules/users/sip:alice@home1.net/index", {"Content-Type": "application/auth-policy+xml"}, b"<a"),
    ("DELETE", "/xcap-root/../../etc/passwd", {}, b""),
    ("PATCH", "/xcap-root/", {}, b"x" * 70000),
    ("POST", "/v1/presence", {"Content-Type": "application/json"}, b"{"),
    ("POST", "/v1/presence", {"Content-Type": "application/json", "X-PEA-Source": "calendar-bob",
                              "X-PEA-Timestamp": "x", "X-PEA-Nonce": "", "X-PEA-Signature": "%%"}, b"{}"),
    ("POST", "/v1/presence", {"Content-Type": "text/plain"}, "\u00e9".encode() * 1000),
    ("GET", "/v1/presence?" + "a=" * 3000, {}, b""),
    ("POST", "/", {"Content-Type": "application/xml"}, b"<svc_result ver='3.0'><slia"),
    ("POST", "/", {"Content-Type": "application/xml"}, b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><a>&x;</a>"),
    ("POST", "/", {"Content-Type": "application/xml"}, b"\x00\x01\x02" * 100),
]


async def raw_http(port: int, request: bytes) -> int:
    """Send raw bytes to an HTTP server; its status (0 when it closes without one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(5):
            line = await reader.readline()
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    finally:
        writer.close()


async def test_http_radius_and_feed_inputs_survive_garbage(tmp_path: Path) -> None:
    """XCAP (Ut), the PEA's API (Pex), MLP (Pl), RADIUS (Pk) and the element feed (Pc/Pg)."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    rng = random.Random(SEED + 2)
    async with running_network(tmp_path, overrides={"pna": {"enabled": True}}) as net:
        pna, pea = net.nodes["pna"], net.nodes["pea"]
        await pna.ready()
        http_ports = [net.settings.ps.xcap_port, pea.port, pna.ports["mlp"]]
        statuses: list[int] = []
        for port in http_ports:
            for method, path, headers, body in HTTP_GARBAGE:
                head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                statuses.append(await raw_http(port, head.encode() + b"\r\n" + body))
            for _ in range(15):  # not HTTP at all
                statuses.append(await raw_http(port, secrets.token_bytes(rng.randrange(1, 400)) + b"\r\n\r\n"))
        assert statuses and all(s == 0 or 400 <= s < 500 for s in statuses), statuses
        assert any(400 <= s < 500 for s in statuses)

        # Pk: datagrams that are not (or not quite) RADIUS accounting, then a good one whose
        # Accounting-Response proves the garbage before it was read (UDP from one socket, in order)
        radius_before = pna.counters["Pk.refused"]
        radius_port = pna.ports["radius"]
        transport, proto = await loop.create_datagram_endpoint(UdpClient, local_addr=("127.0.0.1", 0))
        try:
            for _ in range(100):
                code = rng.choice([4, 4, 1, 5, 0, 255])
                attrs = secrets.token_bytes(rng.randrange(0, 60))
                length = rng.choice([20 + len(attrs), 4096, 3])
                packet = struct.pack("!BBH", code, rng.randrange(256), length) + secrets.token_bytes(16) + attrs
                transport.sendto(packet, ("127.0.0.1", radius_port))
            secret = b"demo-radius-secret"
            record = eradius.AccountingRecord("start", "s-fuzz", "15550001", framed_ip="10.0.0.9", nas_identifier="ggsn1")
            good = eradius.build_accounting_request(record, secret, 7)
            transport.sendto(good, ("127.0.0.1", radius_port))
            async with asyncio.timeout(5):
                answer = await proto.queue.get()
            assert eradius.verify_accounting_response(good, answer, secret)
        finally:
            transport.close()
        assert pna.counters["Pk.refused"] - radius_before == 100

        # Pc/Pg: lines that are not the feed's JSON, or not authenticated
        feed_port = pna.ports["feed"]
        for garbage in (b"{\n", b"[]\n", b'{"v": 1, "type": "hello"}\n', b'{"v": 99}\n',
                        secrets.token_bytes(300) + b"\n", b"x" * 100000 + b"\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", feed_port)
            try:
                writer.write(garbage)
                async with asyncio.timeout(5):
                    await reader.read(65536)  # its refusal, or the end of the connection
            finally:
                writer.close()
        refused = {k: v for k, v in pna.counters.items() if ".refused" in k}
        assert sum(v for k, v in refused.items() if k.startswith(("Pc", "Pg"))) >= 5, refused
        assert pea.counters["Pex.refused"] >= 1
        await network_still_works(net)
        assert code_errors(net) == dict.fromkeys(code_errors(net), 0)
    assert not unhandled, unhandled


async def test_ps_workers_survive_malformed_input(capfd: pytest.CaptureFixture[str]) -> None:
    """The PS in 2 worker processes (D13): whichever worker reads a mutant routes it
    (first line, To/From header) and the owner's stack answers it; none may die."""
    from presence_ims.nodes.ps.config import PsConfig
    from presence_ims.nodes.ps.workers import PsCluster
    from presence_ims.sip.transaction import Address
    from presence_ims.transport import SipEndpoint
    from presence_ims.ua import UserAgent

    rng = random.Random(SEED + 2)
    answers: list[int] = []
    ps = PsCluster(PsConfig(trust="open", sip=("udp:127.0.0.1:0",), workers=2), log_level="error")
    await ps.start()
    endpoint = SipEndpoint(node="after")
    publishers = SipEndpoint(node="publishers")
    try:
        await fuzz_udp(ps.port(), "home1.net", 600, rng, answers)
        assert 500 not in answers and 400 in answers
        assert ps.failed is not None and not ps.failed.done()
        # every worker still serves: presentities on both sides publish and are watched
        await endpoint.listen("udp", "127.0.0.1", 0)
        await publishers.listen("udp", "127.0.0.1", 0)
        address = Address("udp", "127.0.0.1", ps.port())
        watcher = UserAgent(endpoint, "sip:watcher@home1.net", outbound=address)
        for i in range(10):
            user = f"sip:user{i}@home1.net"
            body = pidf.build(pidf.PresenceDocument(user, (pidf.PresenceTuple("t", "open"),)))
            r = await UserAgent(publishers, user, outbound=address).publish(body)
            assert r.status == 200
            sub = await watcher.subscribe(user)
            note = await sub.next()
            assert note.state == "active" and pidf.parse(note.body).tuples[0].basic == "open"
        assert not ps.failed.done()
    finally:
        await endpoint.close()
        await publishers.close()
        await ps.stop()
    # the workers' stderr is this process's: nothing escaped to an event loop there
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception in callback" not in err, err[-3000:]
