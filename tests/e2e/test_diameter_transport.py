"""Diameter over real sockets on 127.0.0.1: a client against the HSS node,
server-initiated RTR/PNR, watchdog, disconnect, garbage, mutual TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from presence_ims.diameter import cx, sh
from presence_ims.diameter.base import (
    CX_APPLICATION,
    DIAMETER_FIRST_REGISTRATION,
    DIAMETER_SUCCESS,
    SH_APPLICATION,
    ApplicationId,
)
from presence_ims.diameter.codec import (
    APP_CX,
    DiameterError,
    DiameterMessage,
    Result,
    encode,
)
from presence_ims.nodes.hss import HssConfig, HssNode, IfcConfig, SubscriberConfig
from presence_ims.security.aka import SqnTracker, ue_authenticate
from presence_ims.security.milenage import Milenage
from presence_ims.transport.diameter import DiameterClient, DiameterPeer, DiameterServer

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
SCSCF_NAME = "sip:scscf.home1.net:6060"
ROUTING = cx.Routing("scscf.home1.net", "home1.net", "home1.net")
TIMEOUT = 5.0

pytestmark = pytest.mark.timeout(30)


def hss_config(tmp_path: Path) -> HssConfig:
    alice = SubscriberConfig(
        impi="alice@home1.net",
        impus=(("sip:alice@home1.net", "tel:+15551234"),),
        k=K,
        op=OP,
        ifc=(IfcConfig(server_name="sip:ps.home1.net:5070"),),
    )
    return HssConfig(
        listen_port=0,
        subscribers=(alice,),
        scscf_name=SCSCF_NAME,
        sqn_store=tmp_path / "sqn.json",
    )


class Inbox:
    """A client handler that queues server-initiated requests and answers them."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[DiameterMessage] = asyncio.Queue()

    async def __call__(self, request: DiameterMessage, peer: DiameterPeer) -> DiameterMessage:
        await self.requests.put(request)
        return cx.answer_message(request, "scscf.home1.net", "home1.net", Result(DIAMETER_SUCCESS))

    async def next(self) -> DiameterMessage:
        async with asyncio.timeout(TIMEOUT):
            return await self.requests.get()


@pytest.fixture
async def hss(tmp_path: Path) -> AsyncIterator[HssNode]:
    node = HssNode(hss_config(tmp_path))
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def connect(port: int, inbox: Inbox | None = None, **kwargs: object) -> DiameterClient:
    return await DiameterClient.connect(
        "127.0.0.1",
        port,
        "scscf.home1.net",
        "home1.net",
        (CX_APPLICATION, SH_APPLICATION),
        handler=inbox,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_cx_and_sh_flow_against_the_hss(hss: HssNode) -> None:
    inbox = Inbox()
    client = await connect(hss.port, inbox, watchdog_interval=None)
    try:
        assert client.remote.origin_host == "hss.home1.net"
        assert set(client.peer.applications) == {CX_APPLICATION, SH_APPLICATION}

        uar = cx.UserAuthorizationRequest(
            "scscf;1;1", ROUTING, "alice@home1.net", "sip:alice@home1.net", "home1.net"
        )
        uaa = cx.UserAuthorizationAnswer.from_message(await client.request(uar.to_message()))
        assert uaa.result == Result(DIAMETER_FIRST_REGISTRATION, True)
        assert uaa.selected_server_name == SCSCF_NAME

        mar = cx.MultimediaAuthRequest(
            "scscf;1;2",
            ROUTING,
            "alice@home1.net",
            "sip:alice@home1.net",
            SCSCF_NAME,
            cx.SipAuthDataItem(cx.AUTH_SCHEME_AKA),
        )
        maa = cx.MultimediaAuthAnswer.from_message(await client.request(mar.to_message()))
        (vector,) = maa.items
        assert vector.rand is not None and vector.autn is not None
        ue = ue_authenticate(Milenage(bytes.fromhex(K), op=bytes.fromhex(OP)), vector.rand, vector.autn, SqnTracker())
        assert ue.res == vector.authorization

        snr = sh.SubscribeNotificationsRequest(
            "scscf;1;3",
            ROUTING,
            sh.UserIdentity("sip:alice@home1.net"),
            sh.SubsReqType.SUBSCRIBE,
            (sh.DataReference.IMS_USER_STATE, sh.DataReference.LOCATION_INFORMATION),
        )
        sna = sh.SubscribeNotificationsAnswer.from_message(await client.request(snr.to_message()))
        assert sna.result == Result(DIAMETER_SUCCESS)

        sar = cx.ServerAssignmentRequest(
            "scscf;1;4",
            ROUTING,
            SCSCF_NAME,
            cx.ServerAssignmentType.REGISTRATION,
            ("sip:alice@home1.net",),
            "alice@home1.net",
        )
        saa = cx.ServerAssignmentAnswer.from_message(await client.request(sar.to_message()))
        profile = saa.subscription()
        assert profile is not None
        assert profile.service_profiles[0].ifcs[0].application_server.server_name == "sip:ps.home1.net:5070"
        # The registration changed the IMS user state: the HSS pushes it.
        pnr = sh.PushNotificationRequest.from_message(await inbox.next())
        assert pnr.sh_data().ims_user_state == sh.ImsUserState.REGISTERED

        lir = cx.LocationInfoRequest("scscf;1;5", ROUTING, "tel:+15551234")
        lia = cx.LocationInfoAnswer.from_message(await client.request(lir.to_message()))
        assert (lia.result, lia.server_name) == (Result(DIAMETER_SUCCESS), SCSCF_NAME)

        udr = sh.UserDataRequest(
            "scscf;1;6",
            ROUTING,
            sh.UserIdentity("sip:alice@home1.net"),
            (sh.DataReference.S_CSCF_NAME,),
        )
        uda = sh.UserDataAnswer.from_message(await client.request(udr.to_message()))
        assert uda.sh_data() == sh.ShData(scscf_name=SCSCF_NAME)

        location = sh.LocationInformation(cell_global_id="00f110abcd")
        answers = await hss.update_user_data("sip:alice@home1.net", ps_location=location)
        pushed = sh.PushNotificationRequest.from_message(await inbox.next())
        assert pushed.sh_data().ps_location == location
        assert [Result.of(a) for a in answers] == [Result(DIAMETER_SUCCESS)]

        dwa = await client.watchdog()
        assert dwa.name == "DWA" and dwa.result_code == DIAMETER_SUCCESS

        answers = await hss.deregister("alice@home1.net")
        rtr = cx.RegistrationTerminationRequest.from_message(await inbox.next())
        assert rtr.public_identities == ("sip:alice@home1.net", "tel:+15551234")
        assert {a.name for a in answers} == {"RTA", "PNA"}
        assert hss.logic.registration("sip:alice@home1.net").state == sh.ImsUserState.NOT_REGISTERED
    finally:
        await client.close()
    assert client.is_closed
    counts = hss.server.counters.by_command
    assert counts["rx DPR"] == 1 and counts["tx DPA"] == 1
    assert counts["rx DWR"] == 1
    assert client.counters.by_command["rx DPA"] == 1
    assert hss.server.counters.errors == 0


async def test_garbage_closes_only_that_connection(hss: HssNode) -> None:
    healthy = await connect(hss.port, watchdog_interval=None)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", hss.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: hss\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            assert await reader.read() == b""  # the server closed it
        writer.close()
        await writer.wait_closed()
        assert hss.server.counters.closed_on_error == 1

        # A well-framed message whose AVPs are garbage is refused the same way.
        reader, writer = await asyncio.open_connection("127.0.0.1", hss.port)
        bad_avp = struct.pack("!II", 263, (0x40 << 24) | 3)
        header = struct.pack("!IIIII", (1 << 24) | 28, (0x80 << 24) | 257, 0, 1, 1)
        writer.write(header + bad_avp)
        async with asyncio.timeout(TIMEOUT):
            assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        assert hss.server.counters.closed_on_error == 2

        # The server still serves the old client and a new one.
        lir = cx.LocationInfoRequest("scscf;2;1", ROUTING, "sip:alice@home1.net").to_message()
        assert (await healthy.request(lir)).name == "LIA"
        fresh = await connect(hss.port, watchdog_interval=None)
        assert (await fresh.request(lir)).name == "LIA"
        await fresh.close()
    finally:
        await healthy.close()


async def test_request_before_capabilities_exchange_closes(hss: HssNode) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hss.port)
    lir = cx.LocationInfoRequest("x;1;1", ROUTING, "sip:alice@home1.net").to_message()
    writer.write(encode(lir.with_ids(1, 1)))
    async with asyncio.timeout(TIMEOUT):
        assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()


async def test_no_common_application_is_refused(hss: HssNode) -> None:
    with pytest.raises(DiameterError, match="5010"):
        await DiameterClient.connect(
            "127.0.0.1", hss.port, "ocs.home1.net", "home1.net", (ApplicationId(4),)
        )


async def test_connect_failure_is_a_diameter_error() -> None:
    server = DiameterServer("127.0.0.1", 0, "x.home1.net", "home1.net", (APP_CX,), None)
    await server.start()
    port = server.port
    await server.stop()
    with pytest.raises(DiameterError, match="cannot connect"):
        await connect(port)


async def test_server_requests_timeouts_and_stop() -> None:
    release = asyncio.Event()

    async def slow(request: DiameterMessage, peer: DiameterPeer) -> DiameterMessage | None:
        await release.wait()
        return None

    server = DiameterServer("127.0.0.1", 0, "hss.home1.net", "home1.net", (APP_CX,), slow)
    await server.start()
    inbox = Inbox()
    client = await connect(server.port, inbox, watchdog_interval=None)
    lir = cx.LocationInfoRequest("s;1;1", ROUTING, "sip:alice@home1.net").to_message()
    with pytest.raises(DiameterError, match="no answer"):
        await client.request(lir, timeout=0.2)
    release.set()  # the late answer (3001) arrives for a request nobody waits for

    # The server reaches the client over its connection.
    assert set(server.peers) == {"scscf.home1.net"}
    rtr = cx.RegistrationTerminationRequest(
        "hss;1;1",
        cx.Routing("hss.home1.net", "home1.net", "home1.net", "scscf.home1.net"),
        cx.DeregistrationReason(cx.ReasonCode.SERVER_CHANGE),
    )
    rta = await server.request("scscf.home1.net", rtr.to_message())
    assert rta.name == "RTA" and rta.result_code == DIAMETER_SUCCESS
    assert (await inbox.next()).name == "RTR"
    with pytest.raises(DiameterError, match="no connection"):
        await server.request("pna.home1.net", rtr.to_message())

    # Stopping the server disconnects the client with DPR.
    await server.stop()
    async with asyncio.timeout(TIMEOUT):
        await client.wait_closed()
    assert client.counters.by_command["rx DPR"] == 1
    with pytest.raises(DiameterError):
        await client.request(lir)
    await client.close()


async def test_handler_failure_answers_unable_to_comply() -> None:
    async def broken(request: DiameterMessage, peer: DiameterPeer) -> DiameterMessage | None:
        raise RuntimeError("bug")

    async with DiameterServer("127.0.0.1", 0, "h.home1.net", "home1.net", (APP_CX,), broken) as server:
        client = await connect(server.port, watchdog_interval=None)
        lir = cx.LocationInfoRequest("s;1;1", ROUTING, "sip:alice@home1.net").to_message()
        answer = await client.request(lir)
        assert answer.result_code == 5012
        assert server.counters.errors == 1
        await client.close()


class WatchLogger:
    """A structlog-like logger that signals when a given message is received."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.seen = asyncio.Event()

    def bind(self, **fields: object) -> WatchLogger:
        return self

    def debug(self, event: str, **fields: object) -> None:
        if event == "diameter_rx" and fields.get("command") == self.command:
            self.seen.set()

    info = warning = error = debug


async def test_watchdog_loop_runs_on_its_own(hss: HssNode) -> None:
    watch = WatchLogger("DWA")
    client = await connect(hss.port, watchdog_interval=0.05, logger=watch)
    async with asyncio.timeout(TIMEOUT):
        await watch.seen.wait()
    assert client.counters.by_command["tx DWR"] >= 1
    await client.close()


# --- mutual TLS ---------------------------------------------------------------------------


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_identity(tmp_path: Path, name: str, ca_name: x509.Name, ca_key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(name, key, ca_name, ca_key, ca=False)
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_mutual_tls(tmp_path: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "home1.net CA")])
    ca_cert = _certificate("home1.net CA", ca_key, ca_name, ca_key, ca=True)
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = _write_identity(tmp_path, "hss.home1.net", ca_name, ca_key)
    client_cert, client_key = _write_identity(tmp_path, "scscf.home1.net", ca_name, ca_key)

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_path))
    server_ctx.load_cert_chain(server_cert, server_key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_path))
    client_ctx.load_cert_chain(client_cert, client_key)

    node = HssNode(hss_config(tmp_path), ssl=server_ctx)
    await node.start()
    try:
        client = await connect(
            node.port, watchdog_interval=None, ssl=client_ctx, server_hostname="hss.home1.net"
        )
        lir = cx.LocationInfoRequest("s;1;1", ROUTING, "sip:alice@home1.net").to_message()
        assert (await client.request(lir)).name == "LIA"
        await client.close()
        # Without a client certificate the handshake fails.
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_path))
        with pytest.raises(DiameterError):
            client = await connect(
                node.port, watchdog_interval=None, ssl=anonymous, server_hostname="hss.home1.net"
            )
            await client.request(lir)
    finally:
        await node.stop()
