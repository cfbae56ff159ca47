"""The P-CSCF: the UEs' only entry point (Gm), sec-agree and the protected channel.

- REGISTER: sec-agree (RFC 3329, TS 33.203): the Security-Client offer is
  negotiated (aes-cbc + hmac-sha-1-96 preferred, ``ealg=null`` refused unless
  ``allow_null_encryption``), ik/ck are taken out of the S-CSCF's 401 and the
  four SAs set up, Security-Server sent; the second REGISTER must come over
  the SA with a Security-Verify equal to what was sent (else 494).  Clients
  without sec-agree register with SIP Digest (TS 33.203 Annex N) over plain
  UDP/TCP; IMS AKA without IPsec only with ``allow_aka_without_ipsec``.
- Other requests from a registered UE: accepted only on the channel its
  registration set up (the SA, or its source address for Digest clients);
  P-Asserted-Identity inserted from the registered IMPUs, any PAI the UE sent
  removed, the Service-Route applied, P-Charging-Vector added.
- Requests from the network to a UE go out over its SA (or its address).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..security import ipsec
from ..security.esp import EspError, SADatabase
from ..security.secagree import (
    SecAgreeError,
    SecurityMechanism,
    format_mechanisms,
    negotiate,
    parse_mechanisms,
    verify_matches,
)
from ..sip import Request, Response, SipParseError, SipURI, parse_name_addr, parse_uri
from ..sip.checks import check_uri_scheme
from ..sip.digest import DigestError, parse_challenge, parse_credentials
from ..sip.proxy import preprocess_route, validate
from ..sip.transaction import Address
from ..transport import IncomingRequest
from ..transport.resolve import ResolveError, host_key
from .common import NodeStartError, SipNode

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
SEC_AGREE = "sec-agree"
PROTECTED = frozenset({"esp-udp", "esp-tcp"})
"""Transports whose every message was authenticated by an SA."""


class PcscfConfig(BaseModel):
    """The P-CSCF node."""

    model_config = _MODEL

    name: str = "pcscf.home1.net"
    domain: str = "home1.net"
    sip: tuple[str, ...] = ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    """Gm listen addresses for UEs (unprotected)."""
    network: str = "tcp:127.0.0.1:5067"
    """Mw listen address toward the I-/S-CSCF (tcp or tls)."""
    protected_host: str = "127.0.0.1"
    """Address of the protected ports (where the SAs end)."""
    port_c: int = Field(5062, ge=0, le=65535)
    """Protected client port (requests to UEs leave from it)."""
    port_s: int = Field(5064, ge=0, le=65535)
    """Protected server port (UEs send their requests to it)."""
    icscf: str = "sip:icscf.home1.net:4060;transport=tcp"
    """Where REGISTERs go."""
    advertise: str | None = None
    allow_null_encryption: bool = False
    """Accept ealg=null SAs (integrity only). Off: refuse them with 494."""
    allow_aka_without_ipsec: bool = False
    """Let clients without sec-agree (SIPp) register with IMS AKA over plain UDP/TCP."""
    sa_grace: float = Field(30.0, ge=0)
    """Seconds an SA outlives its registration (TS 33.203)."""
    auth_sa_lifetime: float = Field(60.0, gt=0)
    """Lifetime of the temporary SAs set up by a 401 (seconds)."""
    visited_network_id: str | None = None
    """P-Visited-Network-ID value (default: the domain)."""


@dataclass(slots=True)
class SecAgree:
    client: SecurityMechanism
    """The chosen offer of the UE's Security-Client."""
    client_all: list[SecurityMechanism]
    server: SecurityMechanism
    """What we sent in Security-Server."""
    ue_host: str
    sa_set: ipsec.SecAgreeSaSet | None = None


@dataclass(slots=True)
class UeRegistration:
    impi: str
    impus: list[str]
    contact: str
    contact_host: str
    contact_port: int
    service_route: list[str]
    expires_at: float
    source: Address
    """Where the UE's requests come from (the unprotected address, or its port-c)."""
    secagree: SecAgree | None = None
    aka_without_ipsec: bool = False
    icid: str = field(default_factory=lambda: secrets.token_hex(8))


class Pcscf(SipNode):
    role = "pcscf"

    def __init__(
        self,
        config: PcscfConfig,
        *,
        hosts: dict[str, str] | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            name=config.name,
            listen=[*config.sip, config.network],
            hosts=hosts,
            advertise=config.advertise,
            server_ssl=server_ssl,
            client_ssl=client_ssl,
            default_transport=config.network.split(":", 1)[0],
            interface="Gm",
        )
        self.config = config
        self.sadb = SADatabase()
        self.esp: Any = None
        self.esp_tcp: Any = None
        self.rng = random.SystemRandom()
        self.pending: dict[tuple[str, int], SecAgree] = {}
        """Sec-agree started by a first REGISTER, by the UE's (host, port-c)."""
        self.by_impu: dict[str, UeRegistration] = {}
        self.by_source: dict[tuple[str, int], UeRegistration] = {}
        self.by_contact: dict[tuple[str, int], UeRegistration] = {}
        self.endpoint.interface_resolver = self._interface_of
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.reg_watch: dict[str, str] = {}
        """Our reg-event subscriptions: Call-ID -> IMPU."""
        self.reg_watch_ready = asyncio.Event()
        """Set each time one of our reg-event subscriptions is accepted."""
        self.clock = time.time

    async def start(self) -> None:
        await self.start_sip()
        from ..transport.esp import EspTcpTransport, EspUdpTransport

        esp = EspUdpTransport(
            self.endpoint,
            self.config.protected_host,
            self.config.port_c,
            self.config.port_s,
            self.sadb,
            name="esp-udp",
        )
        try:
            await esp.start()
            # ESP over TCP on the same port numbers, for UEs that use TCP
            esp_tcp = EspTcpTransport(
                self.endpoint, self.config.protected_host, esp.port_c, esp.port_s, self.sadb,
                name="esp-tcp",
            )
            await esp_tcp.start()
        except OSError as exc:
            await self.endpoint.close()
            raise NodeStartError(
                f"pcscf cannot bind protected ports {self.config.port_c}/{self.config.port_s}: "
                f"{exc.strerror or exc}"
            ) from None
        self.esp = esp
        self.esp_tcp = esp_tcp
        self.endpoint.add_transport(esp)
        self.endpoint.add_transport(esp_tcp)
        self._sweeper = asyncio.create_task(self._sweep_loop())
        self.log.info("protected_ports", port_c=esp.port_c, port_s=esp.port_s)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.stop_sip()

    @property
    def port_c(self) -> int:
        return int(self.esp.port_c) if self.esp else self.config.port_c

    @property
    def port_s(self) -> int:
        return int(self.esp.port_s) if self.esp else self.config.port_s

    def _interface_of(self, peer: Address, msg: Any, direction: str) -> str:
        if peer.transport in PROTECTED:
            return "Gm"
        net = self.config.network.split(":", 1)[0]
        return "Mw" if peer.transport == net and peer.transport not in {s.split(':')[0] for s in self.config.sip} else "Gm"

    def net_uri(self, user: str | None = None) -> str:
        return self.uri(user, transport=self.config.network.split(":", 1)[0])

    def gm_uri(self, transport: str = "udp") -> str:
        t = self.endpoint.transports.get(transport) or self.endpoint.transports.get("udp")
        assert t is not None
        param = "" if t.name == "udp" else f";transport={t.name}"
        # the address UEs reach us at: ordinary SIP clients cannot resolve our network names
        host = self.config.advertise or (t.host if t.host not in ("0.0.0.0", "::") else self.name)
        return f"sip:{host}:{t.port}{param};lr"

    # -- dispatch --------------------------------------------------------------------------
    async def handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method == "ACK":
            return
        rejection = validate(request, supported=frozenset({SEC_AGREE}), is_own_via=self.is_own_via)
        rejection = rejection or check_uri_scheme(request)
        if rejection is not None:
            incoming.respond(rejection.status, rejection.reason, headers=rejection.headers)
            return
        if self._from_network(incoming.source):
            if request.method == "NOTIFY" and self._reg_notify(incoming):
                return
            await self._toward_ue(incoming)
        elif request.method == "REGISTER":
            await self._register(incoming)
        else:
            await self._from_ue(incoming)

    def _from_network(self, source: Address) -> bool:
        net = self.config.network.split(":", 1)[0]
        t = self.endpoint.transports.get(net)
        gm_names = {s.split(":", 1)[0] for s in self.config.sip}
        if source.transport in PROTECTED:
            return False
        if source.transport == net and net not in gm_names:
            return True
        return t is not None and net in gm_names and False

    # -- REGISTER ------------------------------------------------------------------------------
    async def _register(self, incoming: IncomingRequest) -> None:
        req = incoming.request
        source = incoming.source
        protected = source.transport in PROTECTED
        fwd = req.copy()
        fwd.headers.remove("route")
        secagree: SecAgree | None = None
        offers: list[SecurityMechanism] = []
        try:
            for value in req.headers.get_all("security-client"):
                offers.extend(parse_mechanisms(value))
        except SecAgreeError as exc:
            incoming.respond(400, f"Bad Security-Client: {exc.reason}")
            return
        wants_secagree = SEC_AGREE in req.tokens("require") or SEC_AGREE in req.tokens("proxy-require") or bool(offers)
        if protected:
            secagree = self.pending.get((source.host, source.port))
            reg = self.by_source.get((source.host, source.port))
            if secagree is None and reg is not None:
                secagree = reg.secagree
            if secagree is None:
                incoming.respond(403, "No security association for this REGISTER")
                return
            try:
                verify = [m for v in req.headers.get_all("security-verify") for m in parse_mechanisms(v)]
            except SecAgreeError as exc:
                incoming.respond(400, f"Bad Security-Verify: {exc.reason}")
                return
            if not verify_matches(verify, [secagree.server]):
                self.endpoint.stats["secagree_downgrade"] += 1
                self.log.warning("secagree_downgrade", source=str(source))
                incoming.respond(494, "Security-Verify does not match Security-Server",
                                 headers=(("Security-Server", format_mechanisms([secagree.server])),))
                return
            if offers and sorted(m.to_header() for m in offers) != sorted(m.to_header() for m in secagree.client_all):
                incoming.respond(494, "Security-Client changed")
                return
            _set_integrity(fwd, "yes")
        elif wants_secagree:
            chosen = negotiate(offers, allow_null_encryption=self.config.allow_null_encryption)
            if chosen is None:
                self.endpoint.stats["secagree_refused"] += 1
                self.log.warning("secagree_refused", offers=[m.to_header() for m in offers])
                incoming.respond(494, "No acceptable security mechanism",
                                 headers=(("Security-Server", self._server_offer_text()),))
                return
            spi_c, spi_s = ipsec.allocate_spis(self.rng, self.sadb_spis())
            server = SecurityMechanism(
                "ipsec-3gpp", alg=chosen.alg, ealg=chosen.effective_ealg, prot="esp", mod="trans",
                spi_c=spi_c, spi_s=spi_s, port_c=self.port_c, port_s=self.port_s,
            )
            secagree = SecAgree(chosen, offers, server, source.host)
            _set_integrity(fwd, "no")
        for name in ("security-client", "security-verify", "proxy-require", "require"):
            if name in ("proxy-require", "require"):
                kept = [t for t in fwd.headers.get_all(name) if t.strip().lower() != SEC_AGREE]
                fwd.headers.remove(name)
                if kept:
                    fwd.headers.add(name, ", ".join(kept))
            else:
                fwd.headers.remove(name)
        fwd.headers.remove("p-asserted-identity")
        fwd.headers.remove("p-preferred-identity")
        fwd.headers.add("Path", f"<{self.net_uri('term')}>")
        fwd.headers.add("P-Visited-Network-ID", self.config.visited_network_id or self.config.domain)
        fwd.headers.set("P-Charging-Vector", f"icid-value={secrets.token_hex(8)}")
        fwd.headers.prepend("Route", f"<{self.config.icscf}{'' if ';lr' in self.config.icscf else ';lr'}>")
        response = await self.forward(incoming, fwd, relay=False)
        upstream = _relay(response)
        if upstream.status == 401:
            challenged = self._on_challenge(incoming, upstream, secagree, protected)
            if challenged is None:
                return
            upstream = challenged
        elif upstream.status == 200:
            self._on_registered(incoming, req, upstream, secagree)
        upstream.headers.remove("p-charging-vector")
        incoming.send(upstream)

    def sadb_spis(self) -> set[int]:
        spis: set[int] = set()
        for reg in self.by_source.values():
            if reg.secagree and reg.secagree.sa_set:
                spis |= reg.secagree.sa_set.inbound_spis
        for p in self.pending.values():
            spis |= {p.server.spi_c or 0, p.server.spi_s or 0}
        return spis

    def _server_offer_text(self) -> str:
        ealgs = ["aes-cbc", "des-ede3-cbc"] + (["null"] if self.config.allow_null_encryption else [])
        mechs = [
            SecurityMechanism("ipsec-3gpp", alg=alg, ealg=ealg, prot="esp", mod="trans",
                              spi_c=1000, spi_s=1001, port_c=self.port_c, port_s=self.port_s)
            for ealg in ealgs for alg in ("hmac-sha-1-96", "hmac-md5-96")
        ]
        return format_mechanisms(mechs)

    def _on_challenge(
        self, incoming: IncomingRequest, response: Response, secagree: SecAgree | None, protected: bool
    ) -> Response | None:
        values = response.headers.get_all("www-authenticate")
        out_values = []
        aka = False
        ik = ck = b""
        for value in values:
            try:
                challenge = parse_challenge(value)
            except DigestError:
                out_values.append(value)
                continue
            if challenge.algorithm.lower() == "akav1-md5":
                aka = True
                try:
                    ik = bytes.fromhex(challenge.param("ik") or "")
                    ck = bytes.fromhex(challenge.param("ck") or "")
                except ValueError:
                    ik = ck = b""
                challenge = challenge.without_params("ik", "ck")
            out_values.append(challenge.to_header())
        response.headers.set_all("WWW-Authenticate", out_values)
        if not aka:
            return response
        if secagree is None and not protected:
            if self.config.allow_aka_without_ipsec:
                self.endpoint.stats["aka_without_ipsec"] += 1
                self.log.warning(
                    "aka_without_ipsec",
                    detail="IMS AKA over an unprotected channel (allow_aka_without_ipsec is set)",
                    source=str(incoming.source),
                )
                return response
            incoming.respond(494, "IMS AKA requires sec-agree",
                             headers=(("Security-Server", self._server_offer_text()),))
            return None
        if secagree is None:
            return response
        if len(ik) != 16 or len(ck) != 16:
            incoming.respond(500, "Challenge without usable ik/ck")
            return None
        try:
            sa_set = ipsec.make_sa_set(
                role="pcscf",
                ue_host=secagree.ue_host,
                pcscf_host=self.config.protected_host,
                client=secagree.client,
                server=secagree.server,
                ik=ik,
                ck=ck,
                expires_at=self.clock() + self.config.auth_sa_lifetime,
            )
        except EspError as exc:
            incoming.respond(494, f"Cannot set up security associations: {exc.reason}")
            return None
        if secagree.sa_set is not None:
            ipsec.remove(self.sadb, secagree.sa_set)
        # the UE's protected ports are its own now: SAs left by an earlier UE on the
        # same address and ports (a restarted phone, a reused port) would be chosen
        # for its traffic and it could not read a packet (unknown SPI)
        stale = self.sadb.delete_for_peer(
            secagree.ue_host, ports=(secagree.client.port_c or 0, secagree.client.port_s or 0)
        )
        if stale:
            self.log.info("stale_sas_removed", ue=secagree.ue_host, count=len(stale))
        secagree.sa_set = sa_set
        try:
            ipsec.install(self.sadb, sa_set)
        except EspError as exc:
            incoming.respond(494, f"Cannot set up security associations: {exc.reason}")
            return None
        self.pending[(secagree.ue_host, secagree.client.port_c or 0)] = secagree
        response.headers.add("Security-Server", format_mechanisms([secagree.server]))
        self.log.info(
            "sa_created", ue=secagree.ue_host, alg=sa_set.alg, ealg=sa_set.ealg,
            spis=sorted(sa_set.inbound_spis), temporary=True,
        )
        return response

    def _on_registered(
        self, incoming: IncomingRequest, req: Request, response: Response, secagree: SecAgree | None
    ) -> None:
        now = self.clock()
        contacts = response.contacts
        ours = [c for c in contacts if _same_contact(c, req)]
        expires = 0
        if ours:
            value = ours[0].param("expires")
            expires = int(value) if value and value.isdigit() else (response.expires or 0)
        impus = [str(na.uri) for na in response.name_addrs("p-associated-uri")] or [str(req.to.uri)]
        source = incoming.source
        if expires <= 0:
            self._user_deregistered(impus, secagree, now)
            return
        contact_uri = ours[0].uri if ours else (req.contacts[0].uri if req.contacts else None)
        if not isinstance(contact_uri, SipURI):
            return
        creds_user = _impi_of(req)
        key_source = (source.host, source.port)
        if secagree is not None and secagree.sa_set is not None:
            expires_at = now + expires + self.config.sa_grace
            secagree.sa_set = ipsec.extend(self.sadb, secagree.sa_set, expires_at)
            self.pending.pop((secagree.ue_host, secagree.client.port_c or 0), None)
            key_source = (secagree.ue_host, secagree.client.port_c or 0)
        reg = UeRegistration(
            impi=creds_user,
            impus=impus,
            contact=str(contact_uri),
            contact_host=self._contact_address(contact_uri.host),
            contact_port=contact_uri.port or 5060,
            service_route=[str(na) for na in response.name_addrs("service-route")],
            expires_at=now + expires,
            source=source,
            secagree=secagree if secagree and secagree.sa_set else None,
            aka_without_ipsec=secagree is None and self.config.allow_aka_without_ipsec,
        )
        previous = self.by_impu.get(_key(impus[0]))
        first = previous is None or previous.expires_at <= now  # new, or after a de-registration
        for impu in impus:
            self.by_impu[_key(impu)] = reg
        self.by_source[key_source] = reg
        self.by_contact[(reg.contact_host, reg.contact_port)] = reg
        self.by_contact[(host_key(contact_uri.host), reg.contact_port)] = reg
        if first and reg.service_route:
            self._spawn(self._subscribe_reg(reg))
        self.log.info(
            "ue_registered", impu=impus[0], protected=reg.secagree is not None,
            contact=reg.contact, expires=expires,
        )

    def _user_deregistered(self, impus: list[str], secagree: SecAgree | None, now: float) -> None:
        """A de-REGISTER got its 200 (TS 24.229 5.2.5.1, TS 33.203 7.4).

        The UE's requests are refused from now on; requests toward it (the final
        reg-event NOTIFY of the S-CSCF, final presence NOTIFYs) still pass over its
        SAs for ``sa_grace`` seconds, then the sweep forgets the registration and
        takes the SAs down, as after a network-initiated de-registration.
        """
        reg = next((r for r in (self.by_impu.get(_key(u)) for u in impus) if r is not None), None)
        if reg is None:
            return
        reg.expires_at = min(reg.expires_at, now)
        sa = reg.secagree or secagree
        if sa is not None and sa.sa_set is not None:
            sa.sa_set = ipsec.extend(self.sadb, sa.sa_set, now + self.config.sa_grace)
        self.log.info("ue_deregistered", impu=impus[0])

    def _contact_address(self, name: str) -> str:
        """The address of a contact's host: hosts table or literal, else DNS once (cached);
        a name that does not resolve stays as written (requests toward it still find the UE)."""
        try:
            return self.resolver.host(name)
        except ResolveError:
            return host_key(name)

    def _drop(self, reg: UeRegistration) -> None:
        """Forget a registration whose grace period is over (entries of a newer one stay)."""
        for impu in reg.impus:
            if self.by_impu.get(_key(impu)) is reg:
                del self.by_impu[_key(impu)]
        for index in (self.by_source, self.by_contact):
            for k, v in list(index.items()):
                if v is reg:
                    del index[k]
        if reg.secagree is not None and reg.secagree.sa_set is not None:
            ipsec.remove(self.sadb, reg.secagree.sa_set)
        self.log.info("ue_registration_removed", impu=reg.impus[0])

    # -- reg event: learning of network-initiated de-registration (RFC 3680) -------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe_reg(self, reg: UeRegistration) -> None:
        """SUBSCRIBE to the reg event of a UE just registered, at its S-CSCF."""
        from ..sip import Headers, Request

        route = parse_name_addr(reg.service_route[0], "Service-Route").uri
        if not isinstance(route, SipURI):
            return
        scscf = route.without_param("lr")
        scscf = SipURI(scscf.scheme, scscf.host, None, None, scscf.port, scscf.params)
        h = Headers()
        tag = secrets.token_hex(6)
        call_id = f"{secrets.token_hex(10)}@{self.name}"
        me = f"sip:{self.name}"
        h.add("From", f"<{me}>;tag={tag}")
        h.add("To", f"<{reg.impus[0]}>")
        h.add("Call-ID", call_id)
        h.add("CSeq", "1 SUBSCRIBE")
        h.add("Contact", f"<{self.net_uri('reg').replace(';lr', '')}>")
        h.add("Event", "reg")
        h.add("Expires", "3600")
        h.add("P-Asserted-Identity", f"<{me}>")
        request = Request(h, b"", "SUBSCRIBE", parse_uri(reg.impus[0]))
        try:
            destination = self.destination_for(scscf)
        except Exception as exc:
            self.log.warning("reg_subscribe_unroutable", reason=str(exc))
            return
        self.reg_watch[call_id] = reg.impus[0]
        response = await self.endpoint.request(request, destination)
        if response.status >= 300:
            self.reg_watch.pop(call_id, None)
            self.log.warning("reg_subscribe_refused", status=response.status, impu=reg.impus[0])
        else:
            self.reg_watch_ready.set()

    def _reg_notify(self, incoming: IncomingRequest) -> bool:
        """A reg-event NOTIFY for one of our own subscriptions (True when it was ours)."""
        from ..documents import reginfo
        from ..documents.xml import DocumentError

        req = incoming.request
        impu = self.reg_watch.get(req.call_id)
        if impu is None:
            return False
        incoming.respond(200, add_tag=False)
        state = (req.headers.get("subscription-state") or "").split(";")[0].strip().lower()
        if state == "terminated":
            self.reg_watch.pop(req.call_id, None)
        if not req.body:
            return True
        try:
            info = reginfo.parse(req.body)
        except DocumentError as exc:
            self.log.warning("reginfo_unreadable", reason=exc.reason)
            return True
        for registration in info.registrations:
            if _key(registration.aor) != _key(impu):
                continue
            if registration.state == "terminated":
                events = {c.event for c in registration.contacts}
                reg = self.by_impu.get(_key(impu))
                if reg is not None and events & {"deactivated", "rejected", "expired", "unregistered"}:
                    # refuse the UE's requests from now on; the SAs stay for the grace
                    # period so that the final NOTIFYs still reach the UE (TS 33.203 7.4)
                    self.log.info("network_deregistration", impu=impu, events=sorted(events), interface="Mw")
                    reg.expires_at = min(reg.expires_at, self.clock())
                    self.reg_watch.pop(req.call_id, None)
        return True

    # -- requests from a UE -------------------------------------------------------------------------
    def registration_for(self, source: Address) -> UeRegistration | None:
        reg = self.by_source.get((source.host, source.port))
        if reg is None:
            return None
        if reg.secagree is not None and source.transport not in PROTECTED:
            return None  # a sec-agree UE must use its SA
        return reg

    async def _from_ue(self, incoming: IncomingRequest) -> None:
        req = incoming.request
        reg = self.registration_for(incoming.source)
        if reg is None or reg.expires_at <= self.clock():
            protected_user = self.by_source.get((incoming.source.host, incoming.source.port))
            self.endpoint.stats["unregistered_request"] += 1
            reason = "Use the security association" if protected_user else "Not registered"
            self.log.info("ue_request_refused", reason=reason, source=str(incoming.source),
                          method=req.method, call_id=req.headers.get("call-id"))
            incoming.respond(403, reason)
            return
        fwd = req.copy()
        # routes the UE preloaded up to and including ours are consumed
        while True:
            routes = fwd.headers.get_all("route")
            if not routes:
                break
            top = parse_name_addr(routes[0], "Route")
            if isinstance(top.uri, SipURI) and self.is_own(top.uri):
                fwd.headers.pop_first_value("route")
                continue
            break
        in_dialog = bool(req.to.tag)
        if not in_dialog:
            fwd.headers.set_all("Route", reg.service_route)
        asserted = self._asserted_identity(req, reg)
        fwd.headers.remove("p-asserted-identity")
        fwd.headers.remove("p-preferred-identity")
        fwd.headers.add("P-Asserted-Identity", f"<{asserted}>")
        fwd.headers.set("P-Charging-Vector", f"icid-value={secrets.token_hex(8)}")
        record = None
        if req.method in ("SUBSCRIBE", "INVITE", "REFER") and not in_dialog:
            fwd.headers.prepend("Record-Route", f"<{self.gm_uri(incoming.source.transport if incoming.source.transport in ('udp', 'tcp') else 'udp')}>")
            record = f"<{self.net_uri()}>"
        if not fwd.headers.get_all("route"):
            incoming.respond(403, "No route for this request")
            return

        def clean(resp: Response) -> Response:
            resp.headers.remove("p-charging-vector")
            return resp

        await self.forward(incoming, fwd, record_route=record, on_response=clean)

    def _asserted_identity(self, req: Request, reg: UeRegistration) -> str:
        for value in req.headers.get_all("p-preferred-identity"):
            try:
                uri = str(parse_name_addr(value, "P-Preferred-Identity").uri)
            except SipParseError:
                continue
            if _key(uri) in {_key(i) for i in reg.impus}:
                return uri
        return reg.impus[0]

    # -- requests toward a UE ---------------------------------------------------------------------------
    async def _toward_ue(self, incoming: IncomingRequest) -> None:
        req = incoming.request
        fwd = req.copy()
        while True:
            top = preprocess_route(fwd, self.is_own)
            if top is None:
                break
            if req.method == "NOTIFY":
                # RFC 6665 4.3: a NOTIFY can create the dialog (it may overtake the 2xx)
                fwd.headers.prepend("Record-Route", str(top))
        if fwd.headers.get_all("route"):
            await self.forward(incoming, fwd)
            return
        target = fwd.ruri
        if not isinstance(target, SipURI):
            incoming.respond(404, "Not a UE contact")
            return
        # no DNS here: a registered contact is indexed by its address and by its name as written
        host = self.resolver.static(target.host) or host_key(target.host)
        reg = self.by_contact.get((host, target.port or 5060))
        if reg is None or reg.expires_at + self.config.sa_grace <= self.clock():
            incoming.respond(480, "UE not registered here")
            return
        if "id" in {p.strip().lower() for p in (req.headers.get("privacy") or "").split(";")}:
            fwd.headers.remove("p-asserted-identity")
        fwd.headers.remove("p-charging-vector")
        if reg.secagree is not None and reg.secagree.sa_set is not None:
            transport = reg.source.transport if reg.source.transport in PROTECTED else "esp-udp"
            destination = Address(transport, reg.secagree.ue_host, reg.secagree.sa_set.peer_port_s)
        elif reg.source.transport in ("udp", "tcp", "tls"):
            # where its REGISTER came from: the same as its Contact for a UE with an address of
            # its own, the NAT's mapping for one behind a NAT (a phone on the host of a
            # docker-compose network, whose Contact names an address only it can reach)
            destination = reg.source
        else:
            destination = Address("udp", reg.contact_host, reg.contact_port)
        await self.forward(incoming, fwd, destination=destination)

    # -- expiry --------------------------------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.sweep(self.clock())

    def sweep(self, now: float) -> None:
        removed = self.sadb.expire(now)
        if removed:
            self.log.info("sa_expired", count=len(removed))
        for key, p in list(self.pending.items()):
            if p.sa_set is not None and (p.sa_set.expires_at or now + 1) <= now:
                del self.pending[key]
        for reg in {id(r): r for r in self.by_source.values()}.values():
            if reg.expires_at + self.config.sa_grace <= now:
                self._drop(reg)


def _set_integrity(req: Request, value: str) -> None:
    lines = req.headers.get_all("authorization")
    if not lines:
        return
    out = []
    for line in lines:
        try:
            creds = parse_credentials(line)
        except DigestError:
            out.append(line)
            continue
        out.append(creds.with_params(integrity_protected=value).to_header())
    req.headers.set_all("Authorization", out)


def _relay(response: Response) -> Response:
    from ..sip.proxy import relay_response

    return relay_response(response)


def _key(uri: str) -> str:
    try:
        parsed = parse_uri(uri.strip("<>"))
    except SipParseError:
        return uri.lower()
    return parsed.aor.lower() if hasattr(parsed, "aor") else str(parsed).lower()


def _same_contact(contact: Any, req: Request) -> bool:
    from ..sip import uri_equal

    return any(uri_equal(contact.uri, c.uri) for c in req.contacts)


def _impi_of(req: Request) -> str:
    for value in req.headers.get_all("authorization"):
        try:
            return parse_credentials(value).username
        except DigestError:
            continue
    uri = req.to.uri
    if isinstance(uri, SipURI):
        return f"{uri.user}@{uri.host}"
    return str(uri)
