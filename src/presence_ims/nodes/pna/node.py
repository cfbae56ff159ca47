"""The Presence Network Agent: the asyncio shell around :class:`~.state.PnaCore`.

Inputs, each logged with its reference interface and counted as accepted or
refused (``counters["Pk.accepted"]``, ``counters["Pk.refused"]``,
``counters["Pk.refused.bad_authenticator"]`` ...):

* **Pi**: a SUBSCRIBE for the ``reg`` event (RFC 3680) per watched IMPU at
  the S-CSCF, P-Asserted-Identity ``<sip:pna.DOMAIN>``; refreshed at 80 % of
  the granted expiry, subscribed again after a terminating NOTIFY or a
  failure.  NOTIFYs are taken only from the S-CSCF's TLS identity.
* **Ph**: a Diameter Sh client to the HSS (Origin-Host ``pna.DOMAIN``): UDR
  and SNR (with Send-Data-Indication) per IMPU after every (re)connection and
  before the subscriptions expire; PNRs are answered.
* **Pc/Pg**: the element feed (JSON lines over TCP, :mod:`presence_ims.elements.feed`).
* **Pk**: RADIUS accounting over UDP (:mod:`presence_ims.elements.radius`),
  one secret per GGSN address, duplicates answered from a cache.
* **Pl**: MLP reports over HTTP (``POST /mlp``, HTTP Basic for the GMLC).

Output: **Pen**, PUBLISH to the PS through :class:`~.pen.PublishClient`
(mutual TLS, the PS knows the PNA by its certificate).  After every accepted
input the presentity's document is rebuilt (:mod:`.mapping`); the publisher
sends it only when the bytes changed, debounced.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ...diameter import APP_BASE, APP_SH, DiameterError, DiameterMessage, Result, answer_for
from ...diameter import sh as dsh
from ...diameter.base import (
    DIAMETER_ERROR_USER_UNKNOWN,
    DIAMETER_SUCCESS,
    DIAMETER_UNABLE_TO_COMPLY,
    SH_APPLICATION,
)
from ...diameter.cx import Routing
from ...documents import pidf, reginfo
from ...documents.xml import DocumentError
from ...elements import feed as efeed
from ...elements import mlp as emlp
from ...elements import radius as eradius
from ...elements.errors import ElementError
from ...logging import get_logger
from ...sip import SipParseError, method_of, parse_uri
from ...sip.transaction import Address
from ...transport import IncomingRequest, SipEndpoint, StreamTransport
from ...transport.diameter import DiameterClient
from ...transport.resolve import ResolveError, Resolver
from ...ua import ClientSubscription, Notification, UserAgent
from ..common import NodeStartError
from .config import PnaSection
from .errors import PnaError
from .mapping import build_document, is_positive
from .pen import PublishClient
from .publisher import Publisher
from .state import PnaCore, UserDirectory

__all__ = ["PnaNetwork", "PnaNode"]

REGINFO = "application/reginfo+xml"
_MAX_RETRY = 60.0


@dataclass(frozen=True, slots=True)
class PnaNetwork:
    """What the PNA needs to know about its network (derived from the network settings)."""

    domain: str
    """Home network domain (Diameter realm)."""
    name: str
    """Our host name and Diameter Origin-Host (``pna.home1.net``)."""
    host: str
    """Address every listener binds."""
    transport: str
    """Network-side SIP transport: tls or tcp."""
    hosts: dict[str, str]
    """Host table for the network's names."""
    scscf_uri: str
    """Where reg SUBSCRIBEs go (Pi)."""
    scscf_name: str
    """The S-CSCF's certificate name (NOTIFYs must come from it over TLS)."""
    ps_uri: str
    """Where PUBLISHes go (Pen)."""
    hss_host: str
    hss_port: int
    hss_name: str
    """The HSS's Diameter identity and certificate name."""


class _PiAgent(UserAgent):
    """The reg-event watcher: every request goes to the S-CSCF."""

    def contact(self) -> str:
        t = self.endpoint.transports[self.transport]
        param = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"<sip:pna@{t.host}:{t.port}{param}>"


class _RadiusProtocol(asyncio.DatagramProtocol):
    def __init__(self, node: PnaNode) -> None:
        self.node = node
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.node.radius_datagram(data, addr, self.transport)


class PnaNode:
    """The PNA node (``role = "pna"``)."""

    role = "pna"

    def __init__(
        self,
        config: PnaSection,
        network: PnaNetwork,
        directory: UserDirectory,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.network = network
        self.identity = f"sip:{network.name}"
        """Our SIP identity (From, P-Asserted-Identity)."""
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.clock = clock
        self.log = get_logger(node="pna")
        self.counters: Counter[str] = Counter()
        """Accepted and refused inputs per interface, PUBLISH outcomes (``Pen.published``)."""
        self.directory = directory
        self.core = PnaCore(
            directory,
            stale_after=config.stale_after,
            location_retention=config.location_retention,
        )
        self.resolver = Resolver(network.hosts, default_transport=network.transport)
        self.endpoint = SipEndpoint(
            node="pna", interface="Pi", interface_resolver=self._interface_of, logger=self.log
        )
        self.publisher = Publisher(
            expires=config.publish_expires, debounce=config.debounce, retry=config.retry
        )
        self.pen: PublishClient | None = None
        self.pi: _PiAgent | None = None
        self.feed = efeed.FeedVerifier(
            (efeed.FeedElement(k, v.type, v.secret.encode()) for k, v in config.feed_elements.items()),
            max_skew=config.feed_max_skew,
        )
        self.ports: dict[str, int] = {}
        """Bound ports: sip, feed, radius, mlp (the real ones when configured as 0)."""
        self.sh: DiameterClient | None = None
        self.reg_subscriptions: dict[str, ClientSubscription] = {}
        """Live reg-event subscriptions by presentity."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._feed_server: asyncio.Server | None = None
        self._feed_writers: set[asyncio.StreamWriter] = set()
        self._radius: asyncio.DatagramTransport | None = None
        self._radius_seen: dict[tuple[str, int, int, bytes], tuple[float, bytes]] = {}
        self._mlp: web.AppRunner | None = None
        self._expiry_wake = asyncio.Event()
        self.pi_ready = asyncio.Event()
        """Set once every watched IMPU's reg-event subscription delivered its first NOTIFY."""
        self.ph_ready = asyncio.Event()
        """Set once the first round of UDR/SNR over Ph is done."""
        self._pi_seen: set[str] = set()
        self._session_n = 0
        self._session_high = int(clock())

    # -- counting and logging ---------------------------------------------------------
    def accept(self, interface: str, log_event: str, **fields: Any) -> None:
        self.counters[f"{interface}.accepted"] += 1
        self.log.info(log_event, interface=interface, outcome="accepted", **fields)

    def refuse(self, interface: str, kind: str, reason: str, **fields: Any) -> None:
        self.counters[f"{interface}.refused"] += 1
        self.counters[f"{interface}.refused.{kind}"] += 1
        self.log.warning("input_refused", interface=interface, kind=kind, reason=reason, **fields)

    def _interface_of(self, peer: Address, msg: Any, direction: str) -> str:
        method = method_of(msg)
        return "Pen" if method == "PUBLISH" else "Pi"

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        net = self.network
        cfg = self.config
        t = net.transport
        try:
            sip = await self.endpoint.listen(
                t,
                net.host,
                cfg.sip_port,
                ssl=self.server_ssl if t == "tls" else None,
                client_ssl=self.client_ssl if t == "tls" else None,
            )
        except (OSError, ValueError) as exc:
            await self.endpoint.close()
            raise NodeStartError(f"pna cannot listen on {t}:{net.host}:{cfg.sip_port}: {getattr(exc, 'strerror', None) or exc}") from None
        self.ports["sip"] = sip.port
        try:
            ps = self.resolver.resolve(parse_uri(net.ps_uri))
            scscf = self.resolver.resolve(parse_uri(net.scscf_uri))
        except (ResolveError, SipParseError) as exc:
            await self.endpoint.close()
            raise NodeStartError(f"pna: {exc}") from None
        self.pen = PublishClient(
            self.endpoint,
            Address(t, ps.host, ps.port),
            self.publisher,
            identity=self.identity,
            interface="Pen",
            node="pna",
            logger=self.log,
            count=self._count,
            clock=self.clock,
        )
        self.pi = _PiAgent(self.endpoint, self.identity, transport=t, outbound=Address(t, scscf.host, scscf.port))
        self.endpoint.on_request(self._on_sip_request)
        try:
            await self._start_feed()
            await self._start_radius()
            await self._start_mlp()
        except OSError as exc:
            await self.stop()
            raise NodeStartError(f"pna cannot listen: {exc.strerror or exc}") from None
        self.pen.start()
        self._spawn(self._expiry_loop())
        if cfg.pi:
            for presentity in self.directory.presentities:
                self._spawn(self._watch_reg(presentity))
        if cfg.ph:
            self._spawn(self._ph_loop())
        self.log.info(
            "pna_started",
            users=len(self.directory.presentities),
            sip=self.ports["sip"],
            feed=self.ports.get("feed"),
            radius=self.ports.get("radius"),
            mlp=self.ports.get("mlp"),
        )

    async def stop(self) -> None:
        # taken before the tasks are cancelled: each one forgets its subscription as it ends
        reg_subscriptions = list(self.reg_subscriptions.values())
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._unsubscribe_all(reg_subscriptions)
        if self.pen is not None:
            await self.pen.close()
        if self.sh is not None and not self.sh.is_closed:
            with contextlib.suppress(DiameterError, OSError):
                await self.sh.close(grace=1.0)
        if self._feed_server is not None:
            self._feed_server.close()
            for writer in list(self._feed_writers):
                writer.close()
            with contextlib.suppress(Exception):
                await self._feed_server.wait_closed()
            self._feed_server = None
        if self._radius is not None:
            self._radius.close()
            self._radius = None
        if self._mlp is not None:
            await self._mlp.cleanup()
            self._mlp = None
        await self.endpoint.close()
        self.log.info("pna_stopped")

    async def ready(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until Pi and Ph (when enabled) are up; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            if self.config.pi and self.directory.presentities:
                await self.pi_ready.wait()
            if self.config.ph and self.directory.presentities:
                await self.ph_ready.wait()

    def describe(self) -> list[tuple[str, str, str]]:
        """Rows for the ``up`` banner."""
        net = self.network
        h = net.host
        d = net.domain
        rows = [
            (f"PNA {d}", "Pi (reg event), Pen", f"{net.transport} {h}:{self.ports.get('sip')}"),
            (f"PNA {d}", "Ph (Sh client to the HSS)", f"{net.transport} -> {net.hss_host}:{net.hss_port}"),
            (f"PNA {d}", "Pc/Pg (element feed, JSON lines)", f"tcp {h}:{self.ports.get('feed')}"),
            (f"PNA {d}", "Pk (RADIUS accounting)", f"udp {h}:{self.ports.get('radius')}"),
            (f"PNA {d}", "Pl (MLP)", f"http://{h}:{self.ports.get('mlp')}/mlp"),
        ]
        return rows

    def _count(self, name: str) -> None:
        self.counters[name] += 1

    # -- publishing -------------------------------------------------------------------------------
    def republish(self, presentity: str) -> None:
        """Rebuild ``presentity``'s document and hand it to the publisher."""
        entry = self.directory.entry(presentity)
        doc = build_document(
            presentity,
            self.core.facts(presentity),
            tel=entry.tel if entry is not None else None,
            retention=self.config.location_retention,
        )
        body = pidf.build(doc) if doc is not None else None
        if self.pen is not None:
            self.pen.update(presentity, body, create=is_positive(doc))
        self._expiry_wake.set()

    async def _expiry_loop(self) -> None:
        while True:
            deadline = self.core.next_expiry()
            self._expiry_wake.clear()
            delay = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._expiry_wake.wait()
            for presentity in self.core.expire(self.clock()):
                self.log.info("facts_expired", presentity=presentity)
                self.republish(presentity)

    # -- Pi ----------------------------------------------------------------------------------------
    def _on_sip_request(self, incoming: IncomingRequest) -> Any:
        request = incoming.request
        if request.method == "NOTIFY" and self.network.transport == "tls":
            t = self.endpoint.transports.get(incoming.source.transport)
            names = t.peer_names(incoming.source.flow) if isinstance(t, StreamTransport) else []
            if self.network.scscf_name not in names:
                self.refuse("Pi", "untrusted_peer", "NOTIFY not from the S-CSCF", source=str(incoming.source))
                incoming.respond(403, "Not the S-CSCF")
                return None
        if self.pi is None:
            incoming.respond(503)
            return None
        return self.pi._handle(incoming)

    async def _watch_reg(self, presentity: str) -> None:
        """Keep one reg-event subscription alive for ``presentity``."""
        assert self.pi is not None
        cfg = self.config
        delay = cfg.retry
        headers = [("P-Asserted-Identity", f"<{self.identity}>")]
        while True:
            try:
                sub = await self.pi.subscribe(
                    presentity, event="reg", expires=cfg.reg_expires, headers=headers, accept=REGINFO
                )
            except (SipParseError, OSError) as exc:
                self.log.warning("pi_subscribe_failed", interface="Pi", presentity=presentity, reason=str(exc))
                sub = None
            response = sub.response if sub is not None else None
            if sub is None or response is None or not 200 <= response.status < 300:
                status = response.status if response is not None else None
                self.counters["Pi.subscribe_failed"] += 1
                self.log.warning("pi_subscribe_failed", interface="Pi", presentity=presentity, status=status)
                await asyncio.sleep(delay)
                delay = min(_MAX_RETRY, delay * 2)
                continue
            delay = cfg.retry
            self.reg_subscriptions[presentity] = sub
            self.log.info("pi_subscribed", interface="Pi", presentity=presentity, expires=response.expires)
            try:
                wait = await self._follow_reg(presentity, sub, response.expires or cfg.reg_expires)
            finally:
                self.reg_subscriptions.pop(presentity, None)
            if wait:
                await asyncio.sleep(wait)

    async def _follow_reg(self, presentity: str, sub: ClientSubscription, granted: int) -> float:
        """Read NOTIFYs and refresh until the subscription ends; the delay before subscribing again."""
        assert self.pi is not None
        refresh_at = self.clock() + granted * 0.8
        while True:
            try:
                async with asyncio.timeout(max(0.0, refresh_at - self.clock())):
                    note = await sub.notifications.get()
            except TimeoutError:
                try:
                    response = await self.pi.refresh(sub, self.config.reg_expires)
                except (SipParseError, OSError) as exc:
                    self.log.warning("pi_refresh_failed", interface="Pi", presentity=presentity, reason=str(exc))
                    return self.config.retry
                if not 200 <= response.status < 300:
                    self.log.warning("pi_refresh_failed", interface="Pi", presentity=presentity, status=response.status)
                    return 0.0 if response.status == 481 else self.config.retry
                refresh_at = self.clock() + (response.expires or self.config.reg_expires) * 0.8
                continue
            self._on_reg_notify(presentity, note)
            if note.state == "terminated":
                reason = note.params.get("reason", "")
                self.log.info("pi_terminated", interface="Pi", presentity=presentity, reason=reason)
                if reason in ("rejected", "noresource"):
                    return _MAX_RETRY
                if reason == "probation":
                    retry_after = note.params.get("retry-after", "")
                    return float(retry_after) if retry_after.isdigit() else self.config.retry
                return 0.0

    def _on_reg_notify(self, presentity: str, note: Notification) -> None:
        if not note.body:
            if note.state != "terminated":
                self.refuse("Pi", "no_body", "reg NOTIFY without reginfo", presentity=presentity)
            return
        ctype = (note.content_type or "").split(";")[0].strip().lower()
        if ctype != REGINFO:
            self.refuse("Pi", "content_type", f"unexpected {ctype!r}", presentity=presentity)
            return
        try:
            info = reginfo.parse(note.body)
            self.core.on_reginfo(presentity, info, self.clock())
        except DocumentError as exc:
            self.refuse("Pi", "bad_reginfo", exc.reason, presentity=presentity)
            return
        except PnaError as exc:
            self.refuse("Pi", exc.kind, exc.reason, presentity=presentity)
            return
        fact = self.core.facts(presentity).ims_pi
        self._pi_seen.add(presentity)
        if len(self._pi_seen) >= len(self.directory.presentities):
            self.pi_ready.set()
        self.accept(
            "Pi",
            "reg_notify",
            presentity=presentity,
            version=info.version,
            registered=fact.registered if fact else None,
            contacts=len(fact.contacts) if fact else 0,
        )
        self.republish(presentity)

    async def _unsubscribe_all(self, subs: list[ClientSubscription]) -> None:
        """End the reg-event subscriptions at the S-CSCF (Expires: 0), one second at most."""
        self.reg_subscriptions.clear()
        if self.pi is None or not subs:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await asyncio.gather(
                    *(self.pi.unsubscribe(s) for s in subs if s.dialog is not None),
                    return_exceptions=True,
                )

    # -- Ph -------------------------------------------------------------------------------------------
    def _session_id(self) -> str:
        self._session_n += 1
        return f"{self.network.name};{self._session_high};{self._session_n}"

    def _routing(self) -> Routing:
        return Routing(self.network.name, self.network.domain, self.network.domain, self.network.hss_name)

    async def _ph_loop(self) -> None:
        net = self.network
        delay = self.config.retry
        while True:
            try:
                client = await DiameterClient.connect(
                    net.hss_host,
                    net.hss_port,
                    net.name,
                    net.domain,
                    [SH_APPLICATION],
                    ssl=self.client_ssl if net.transport == "tls" else None,
                    server_hostname=net.hss_name,
                    handler=self._on_diameter_request,
                    node="pna",
                    logger=self.log,
                    interfaces={APP_BASE: "base", APP_SH: "Ph"},
                )
            except DiameterError as exc:
                self.counters["Ph.connect_failed"] += 1
                self.log.warning("ph_connect_failed", interface="Ph", reason=exc.reason)
                await asyncio.sleep(delay)
                delay = min(_MAX_RETRY, delay * 2)
                continue
            self.sh = client
            delay = self.config.retry
            try:
                while not client.is_closed:
                    renew_at = await self._sh_refresh_all(client)
                    self.ph_ready.set()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(1.0, renew_at - self.clock())):
                            await client.wait_closed()
            except DiameterError as exc:
                self.log.warning("ph_failed", interface="Ph", reason=exc.reason)
            finally:
                if not client.is_closed:
                    with contextlib.suppress(DiameterError, OSError):
                        await client.close(grace=1.0)
                self.sh = None
            await asyncio.sleep(delay)

    async def _sh_refresh_all(self, client: DiameterClient) -> float:
        """UDR and SNR for every presentity; when the subscriptions need renewing."""
        renew_at = self.clock() + self.config.sh_expiry * 0.8
        for presentity in self.directory.presentities:
            identity = dsh.UserIdentity(public_identity=presentity)
            udr = dsh.UserDataRequest(
                self._session_id(),
                self._routing(),
                identity,
                (
                    dsh.DataReference.IMS_PUBLIC_IDENTITY,
                    dsh.DataReference.IMS_USER_STATE,
                    dsh.DataReference.S_CSCF_NAME,
                ),
            )
            uda = dsh.UserDataAnswer.from_message(await client.request(udr.to_message()))
            self._on_sh_answer(presentity, "UDA", uda.result, uda.sh_data())
            snr = dsh.SubscribeNotificationsRequest(
                self._session_id(),
                self._routing(),
                identity,
                dsh.SubsReqType.SUBSCRIBE,
                (
                    dsh.DataReference.IMS_USER_STATE,
                    dsh.DataReference.S_CSCF_NAME,
                    dsh.DataReference.LOCATION_INFORMATION,
                    dsh.DataReference.USER_STATE,
                ),
                send_data_indication=True,
                expiry_time=int(self.clock()) + self.config.sh_expiry,
            )
            sna = dsh.SubscribeNotificationsAnswer.from_message(await client.request(snr.to_message()))
            self._on_sh_answer(presentity, "SNA", sna.result, sna.sh_data())
            if sna.result.is_success and sna.expiry_time is not None:
                granted = max(60.0, sna.expiry_time - self.clock())
                renew_at = min(renew_at, self.clock() + granted * 0.8)
        return renew_at

    def _on_sh_answer(self, presentity: str, command: str, result: Result, data: dsh.ShData | None) -> None:
        if not result.is_success:
            self.refuse("Ph", f"result_{result.code}", f"{command} {result.code}", presentity=presentity)
            return
        if data is None:
            return
        self.core.on_sh(presentity, data, self.clock())
        self.accept(
            "Ph", "sh_data", command=command, presentity=presentity,
            ims_user_state=data.ims_user_state, cs_user_state=data.cs_user_state,
            ps_user_state=data.ps_user_state, public_identities=len(data.public_identities),
        )
        self.republish(presentity)

    async def _on_diameter_request(self, request: DiameterMessage, peer: Any) -> DiameterMessage | None:
        if request.application_id != APP_SH or request.command_code != dsh.CMD_PUSH_NOTIFICATION:
            return None
        net = self.network

        def answer(result: Result) -> DiameterMessage:
            return answer_for(request, origin_host=net.name, origin_realm=net.domain, result=result)

        if peer.remote_host != net.hss_name:
            self.refuse("Ph", "untrusted_peer", f"PNR from {peer.remote_host}")
            return answer(Result(DIAMETER_UNABLE_TO_COMPLY))
        try:
            pnr = dsh.PushNotificationRequest.from_message(request)
            data = pnr.sh_data()
        except DiameterError as exc:
            self.refuse("Ph", "malformed", exc.reason)
            return answer(Result(DIAMETER_UNABLE_TO_COMPLY))
        ident = pnr.user_identity
        who = ident.public_identity or (ident.msisdn or b"").decode("ascii", "replace")
        presentity = self.directory.resolve(who)
        if presentity is None:
            self.refuse("Ph", "unknown_user", f"PNR for {who[:60]!r}")
            return answer(Result(DIAMETER_ERROR_USER_UNKNOWN, True))
        self.core.on_sh(presentity, data, self.clock())
        self.accept(
            "Ph", "sh_pnr", presentity=presentity, session_id=pnr.session_id,
            ims_user_state=data.ims_user_state, cs_user_state=data.cs_user_state,
            ps_user_state=data.ps_user_state,
        )
        self.republish(presentity)
        return dsh.PushNotificationAnswer(net.name, net.domain, Result(DIAMETER_SUCCESS)).to_message(request)

    # -- Pc / Pg -----------------------------------------------------------------------------------------
    async def _start_feed(self) -> None:
        server = await asyncio.start_server(
            self._on_feed_connection, self.network.host, self.config.feed_port, limit=efeed.MAX_LINE
        )
        self._feed_server = server
        self.ports["feed"] = server.sockets[0].getsockname()[1]

    async def _on_feed_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._feed_writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        self.refuse("Pc/Pg", "malformed", "line without newline at end of stream", source=source)
                    return
                except asyncio.LimitOverrunError:
                    self.refuse("Pc/Pg", "too_long", "line too long; closing", source=source)
                    writer.write(efeed.encode_ack(efeed.FeedAck(None, False, "too_long")))
                    return
                ack = self.feed_line(line, source)
                writer.write(efeed.encode_ack(ack))
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self._feed_writers.discard(writer)
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    def _claimed_interface(self, line: bytes) -> str:
        with contextlib.suppress(ValueError, UnicodeDecodeError, RecursionError):
            value = json.loads(line)
            if isinstance(value, dict):
                element = self.feed.elements.get(value.get("element"))  # type: ignore[arg-type]
                kind = element.type if element is not None else value.get("type")
                if kind in ("msc", "sgsn"):
                    return efeed.interface_of(kind)
        return "Pc/Pg"

    def feed_line(self, line: bytes, source: str = "-") -> efeed.FeedAck:
        """Handle one feed line; the acknowledgement to send back."""
        now = self.clock()
        try:
            event = self.feed.verify(line, now)
        except ElementError as exc:
            self.refuse(self._claimed_interface(line), exc.kind, exc.reason, source=source)
            return efeed.FeedAck(self.feed.peek_seq(line), False, exc.kind)
        try:
            presentity = self.core.on_feed(event, now)
        except PnaError as exc:
            self.refuse(event.interface, exc.kind, exc.reason, element=event.element, seq=event.seq)
            return efeed.FeedAck(event.seq, False, exc.kind)
        self.accept(
            event.interface, "feed_event", element=event.element, seq=event.seq,
            presentity=presentity, what=event.event, area=event.area, cell=event.cell,
        )
        self.republish(presentity)
        return efeed.FeedAck(event.seq, True)

    # -- Pk ------------------------------------------------------------------------------------------------
    async def _start_radius(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _RadiusProtocol(self), local_addr=(self.network.host, self.config.radius_port)
        )
        self._radius = transport
        self.ports["radius"] = transport.get_extra_info("sockname")[1]

    def radius_datagram(self, data: bytes, addr: tuple[str, int], transport: asyncio.DatagramTransport) -> None:
        """One UDP datagram on the accounting port."""
        now = self.clock()
        source = f"{addr[0]}:{addr[1]}"
        secret_text = self.config.radius_clients.get(addr[0])
        if secret_text is None:
            self.refuse("Pk", "unknown_client", "no shared secret for this address", source=source)
            return
        if len(data) >= 20:
            key = (addr[0], addr[1], data[1], bytes(data[4:20]))
            cached = self._radius_seen.get(key)
            if cached is not None and cached[0] > now:
                self.counters["Pk.duplicate"] += 1
                self.log.info("radius_duplicate", interface="Pk", source=source, identifier=data[1])
                transport.sendto(cached[1], addr)
                return
        secret = secret_text.encode()
        try:
            request = eradius.parse_accounting_request(data, secret)
        except ElementError as exc:
            self.refuse("Pk", exc.kind, exc.reason, source=source)
            return
        record = request.record
        try:
            changed = self.core.on_accounting(record, now)
        except PnaError as exc:
            self.refuse("Pk", exc.kind, exc.reason, source=source, session_id=record.session_id)
            return
        self.accept(
            "Pk", "radius_accounting", source=source, status=record.status,
            session_id=record.session_id, calling_station_id=record.calling_station_id,
            framed_ip=record.framed_ip, nas=record.nas, presentities=changed,
        )
        for presentity in changed:
            self.republish(presentity)
        response = eradius.build_accounting_response(request, secret)
        transport.sendto(response, addr)
        if len(self._radius_seen) > 4096:
            self._radius_seen = {k: v for k, v in self._radius_seen.items() if v[0] > now}
        self._radius_seen[(addr[0], addr[1], request.identifier, request.authenticator)] = (now + 30.0, response)

    # -- Pl -----------------------------------------------------------------------------------------------------
    async def _start_mlp(self) -> None:
        app = web.Application(client_max_size=emlp.MAX_SIZE)
        app.router.add_post("/mlp", self._on_mlp)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.network.host, self.config.mlp_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._mlp = runner
        for address in runner.addresses:
            self.ports["mlp"] = int(address[1])
            break

    def _mlp_authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), self.config.mlp_user.encode())
        ok_password = hmac.compare_digest(password.encode(), self.config.mlp_password.encode())
        return ok_user and ok_password

    async def _on_mlp(self, request: web.Request) -> web.Response:
        source = request.remote or "?"
        xml = "application/xml"
        if not self._mlp_authorised(request.headers.get("Authorization")):
            self.refuse("Pl", "unauthenticated", "GMLC credentials missing or wrong", source=source)
            return web.Response(
                status=401, headers={"WWW-Authenticate": 'Basic realm="pna-mlp"'},
                body=emlp.build_result(3, "UNAUTHORIZED APPLICATION"), content_type=xml,
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.refuse("Pl", "too_large", "MLP document too large", source=source)
            return web.Response(status=413, body=emlp.build_result(105, "FORMAT ERROR"), content_type=xml)
        try:
            report = emlp.parse_report(body)
        except ElementError as exc:
            self.refuse("Pl", exc.kind, exc.reason, source=source)
            return web.Response(status=400, body=emlp.build_result(105, "FORMAT ERROR"), content_type=xml)
        now = self.clock()
        accepted = 0
        last_kind = "position_error"
        for position in report.positions:
            try:
                presentity = self.core.on_position(position, now)
            except PnaError as exc:
                last_kind = exc.kind
                self.refuse("Pl", exc.kind, exc.reason, source=source, msid=position.msid)
                continue
            accepted += 1
            self.accept(
                "Pl", "mlp_report", source=source, kind=report.kind, req_id=report.req_id,
                presentity=presentity, method=position.method, radius=position.radius,
            )
            self.republish(presentity)
        if accepted:
            return web.Response(status=200, body=emlp.build_result(0, "OK"), content_type=xml)
        if last_kind == "unknown_user":
            return web.Response(status=200, body=emlp.build_result(4, "UNKNOWN SUBSCRIBER"), content_type=xml)
        return web.Response(status=200, body=emlp.build_result(6, "POSITION METHOD FAILURE"), content_type=xml)
