"""The UE: registration (IMS AKA + sec-agree over emulated ESP, or SIP Digest),
re-registration, its own reg-event subscription, then PUA and watcher.

    ue = UserEquipment(UeConfig(impi="alice@home1.net", impu="sip:alice@home1.net", ...))
    await ue.start()
    await ue.register()
    await ue.agent.publish(body)
"""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..logging import get_logger
from ..security import ipsec
from ..security.aka import AkaMacFailure, AkaSyncFailure, SqnTracker, decode_nonce, ue_authenticate
from ..security.esp import SADatabase
from ..security.milenage import Milenage
from ..security.secagree import SecurityMechanism, format_mechanisms, parse_mechanisms
from ..sip import Headers, Request, Response, parse_uri
from ..sip.digest import Challenge, Credentials, DigestError, compute_response, parse_challenge
from ..sip.transaction import Address, TimerConfig
from ..transport import SipEndpoint
from ..ua import ClientSubscription, UserAgent

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class UeConfig(BaseModel):
    """A UE's identity, credentials and where its P-CSCF is."""

    model_config = _MODEL

    impi: str
    """Private identity (``alice@home1.net``)."""
    impu: str
    """Public identity to register (``sip:alice@home1.net``)."""
    domain: str = "home1.net"
    """Home network domain (registrar and digest realm)."""
    pcscf: str = "127.0.0.1:5060"
    """The P-CSCF's unprotected address HOST:PORT."""
    transport: Literal["udp", "tcp"] = "udp"
    host: str = "127.0.0.1"
    """Local address to bind."""
    auth: Literal["aka", "digest"] = "aka"
    """IMS AKA with sec-agree (default) or SIP Digest (like an ordinary SIP phone)."""
    secagree: bool = True
    """Offer sec-agree with IMS AKA (off: AKA without IPsec, needs allow_aka_without_ipsec)."""
    k: str | None = None
    op: str | None = None
    opc: str | None = None
    password: str | None = None
    """SIP Digest password."""
    algorithms: tuple[tuple[str, str], ...] = (
        ("hmac-sha-1-96", "aes-cbc"),
        ("hmac-md5-96", "aes-cbc"),
        ("hmac-sha-1-96", "des-ede3-cbc"),
    )
    """(alg, ealg) pairs offered in Security-Client, preferred first."""
    expires: int = Field(600, ge=60)
    """Requested registration lifetime (seconds)."""
    display: str | None = None
    subscribe_reg: bool = True
    """Subscribe to our own reg event after registering (TS 24.229 5.1.1.3)."""
    t1: float = Field(0.5, gt=0)
    """SIP timer T1 (seconds); retransmissions and timeouts derive from it."""


@dataclass(slots=True)
class Registration:
    status: int
    impus: list[str]
    service_route: list[str]
    expires: int
    protected: bool


class RegistrationError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class UserEquipment:
    def __init__(self, config: UeConfig, *, node: str = "ue") -> None:
        self.config = config
        self.log = get_logger(node=node, impu=config.impu)
        self.endpoint = SipEndpoint(
            node=node, interface="Gm", logger=self.log, timers=TimerConfig(t1=config.t1)
        )
        host, _, port = config.pcscf.rpartition(":")
        self.pcscf = Address(config.transport, host, int(port))
        self.sadb = SADatabase()
        self.esp: Any = None
        self.sa_set: ipsec.SecAgreeSaSet | None = None
        self.server_mech: SecurityMechanism | None = None
        self.client_mechs: list[SecurityMechanism] = []
        self.tracker = SqnTracker()
        self.milenage: Milenage | None = None
        if config.k:
            k = bytes.fromhex(config.k)
            self.milenage = Milenage(
                k, op=bytes.fromhex(config.op) if config.op else None,
                opc=bytes.fromhex(config.opc) if config.opc else None,
            )
        self.agent: UserAgent = None  # type: ignore[assignment]
        self.registration: Registration | None = None
        self.reg_sub: ClientSubscription | None = None
        self.call_id = f"{secrets.token_hex(10)}@ue"
        self.cseq = 0
        self._refresher: asyncio.Task[None] | None = None
        self._reg_watcher: asyncio.Task[None] | None = None
        self.network_deregistered = asyncio.Event()
        self.reg_event_active = asyncio.Event()
        """Set when the first NOTIFY of our reg-event subscription arrived."""
        """Set when the network ends our registration (reg event: deactivated, rejected ...)."""
        self._digest_nc = 0
        self._digest_challenge: Challenge | None = None

    @property
    def esp_name(self) -> str:
        return "esp-tcp" if self.config.transport == "tcp" else "esp-udp"

    @property
    def protected(self) -> bool:
        return self.sa_set is not None

    async def start(self) -> None:
        await self.endpoint.listen(self.config.transport, self.config.host, 0)
        if self.config.auth == "aka" and self.config.secagree:
            from ..transport.esp import EspTcpTransport, EspUdpTransport

            kind = EspTcpTransport if self.config.transport == "tcp" else EspUdpTransport
            self.esp = kind(self.endpoint, self.config.host, 0, 0, self.sadb, name=self.esp_name)
            await self.esp.start()
            self.endpoint.add_transport(self.esp)
        self.agent = UserAgent(self.endpoint, self.config.impu, transport=self.config.transport,
                               display=self.config.display, outbound=self.pcscf)

    async def stop(self, *, deregister: bool = True) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._reg_watcher is not None:
            self._reg_watcher.cancel()
        if deregister and self.registration is not None:
            try:
                async with asyncio.timeout(5):
                    await self.deregister()
            except (TimeoutError, RegistrationError) as exc:
                self.log.warning("deregister_failed", reason=str(exc))
        await self.endpoint.close()

    # -- registration ------------------------------------------------------------------------------
    def _contact(self) -> str:
        user = self.config.impu.split(":", 1)[1].split("@", 1)[0]
        if self.esp is not None:
            param = ";transport=tcp" if self.config.transport == "tcp" else ""
            return f"<sip:{user}@{self.config.host}:{self.esp.port_s}{param}>"
        t = self.endpoint.transports[self.config.transport]
        param = "" if self.config.transport == "udp" else f";transport={self.config.transport}"
        return f"<sip:{user}@{t.host}:{t.port}{param}>"

    def _offers(self) -> list[SecurityMechanism]:
        if not self.client_mechs:
            rng = random.SystemRandom()
            spi_c, spi_s = ipsec.allocate_spis(rng)
            self.client_mechs = [
                SecurityMechanism(
                    "ipsec-3gpp", alg=alg, ealg=ealg, prot="esp", mod="trans",
                    spi_c=spi_c, spi_s=spi_s, port_c=self.esp.port_c, port_s=self.esp.port_s,
                )
                for alg, ealg in self.config.algorithms
            ]
        return self.client_mechs

    def _register_request(self, expires: int, authorization: str | None) -> Request:
        self.cseq += 1
        h = Headers()
        h.add("From", f"<{self.config.impu}>;tag={secrets.token_hex(6)}")
        h.add("To", f"<{self.config.impu}>")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self.cseq} REGISTER")
        h.add("Contact", f"{self._contact()};expires={expires}")
        h.add("Expires", str(expires))
        if authorization:
            h.add("Authorization", authorization)
        if self.esp is not None:
            h.add("Require", "sec-agree")
            h.add("Proxy-Require", "sec-agree")
            h.add("Supported", "path, sec-agree")
            h.add("Security-Client", format_mechanisms(self._offers()))
            if self.server_mech is not None and self.protected:
                h.add("Security-Verify", format_mechanisms([self.server_mech]))
        else:
            h.add("Supported", "path")
        return Request(h, b"", "REGISTER", parse_uri(f"sip:{self.config.domain}"))

    def _register_destination(self) -> Address:
        if self.protected and self.sa_set is not None:
            return Address(self.esp_name, self.sa_set.peer_host, self.sa_set.peer_port_s)
        return self.pcscf

    async def _send_register(self, request: Request) -> Response:
        return await self.endpoint.request(request, self._register_destination())

    async def register(self, expires: int | None = None) -> Registration:
        """Register (challenge, answer, SA set-up); raises RegistrationError on failure."""
        exp = self.config.expires if expires is None else expires
        response = await self._send_register(self._register_request(exp, self._initial_authorization()))
        for _ in range(3):
            if response.status != 401:
                break
            authorization = self._answer_challenge(response)
            response = await self._send_register(self._register_request(exp, authorization))
        if response.status != 200:
            raise RegistrationError(response.status, response.reason)
        return self._registered(response, exp)

    def _initial_authorization(self) -> str | None:
        """AKA: the Authorization of an unchallenged REGISTER (TS 24.229 5.1.1.2.1), so
        that the S-CSCF knows the IMPI and, over the SAs, takes it as integrity-protected."""
        if self.config.auth != "aka":
            return None
        return Credentials(
            self.config.impi, self.config.domain, f"sip:{self.config.domain}", algorithm="AKAv1-MD5",
        ).to_header()

    def _answer_challenge(self, response: Response) -> str:
        for value in response.headers.get_all("www-authenticate"):
            try:
                challenge = parse_challenge(value)
            except DigestError:
                continue
            if challenge.algorithm.lower() == "akav1-md5":
                return self._answer_aka(response, challenge)
            self._digest_challenge = challenge
            return self._answer_digest(challenge, "REGISTER", f"sip:{self.config.domain}")
        raise RegistrationError(401, "no usable challenge")

    def _answer_aka(self, response: Response, challenge: Challenge) -> str:
        if self.milenage is None:
            raise RegistrationError(401, "AKA challenge but no AKA key configured")
        rand, autn = decode_nonce(challenge.nonce)
        uri = f"sip:{self.config.domain}"
        base = Credentials(
            self.config.impi, challenge.realm, uri, nonce=challenge.nonce, algorithm="AKAv1-MD5",
            qop="auth" if "auth" in challenge.qop else None,
            cnonce=secrets.token_hex(8) if challenge.qop else None,
            nc="00000001" if challenge.qop else None,
        )
        try:
            result = ue_authenticate(self.milenage, rand, autn, self.tracker)
        except AkaSyncFailure as exc:
            import base64

            self.log.info("aka_resync")
            resp = compute_response(
                username=base.username, realm=base.realm, password=b"", method="REGISTER", uri=uri,
                nonce=base.nonce, nc=base.nc, cnonce=base.cnonce, qop=base.qop, algorithm="AKAv1-MD5",
            )
            from dataclasses import replace

            return replace(base, response=resp).with_params(auts=base64.b64encode(exc.auts).decode()).to_header()
        except AkaMacFailure as exc:
            raise RegistrationError(401, f"network authentication failed: {exc}") from None
        servers = [m for v in response.headers.get_all("security-server") for m in parse_mechanisms(v)]
        if self.esp is not None:
            if not servers:
                raise RegistrationError(401, "P-CSCF sent no Security-Server")
            chosen = servers[0]
            client = next(
                (m for m in self._offers() if (m.alg, m.effective_ealg) == (chosen.alg, chosen.effective_ealg)),
                None,
            )
            if client is None:
                raise RegistrationError(494, "P-CSCF chose a mechanism we did not offer")
            host = self.pcscf.host
            self.server_mech = chosen
            if self.sa_set is not None:
                ipsec.remove(self.sadb, self.sa_set)
            self.sa_set = ipsec.make_sa_set(
                role="ue", ue_host=self.config.host, pcscf_host=host, client=client, server=chosen,
                ik=result.ik, ck=result.ck, expires_at=None,
            )
            ipsec.install(self.sadb, self.sa_set)
            self.log.info("sa_created", alg=chosen.alg, ealg=chosen.effective_ealg)
        resp = compute_response(
            username=base.username, realm=base.realm, password=result.res, method="REGISTER", uri=uri,
            nonce=base.nonce, nc=base.nc, cnonce=base.cnonce, qop=base.qop, algorithm="AKAv1-MD5",
        )
        from dataclasses import replace

        return replace(base, response=resp).to_header()

    def _answer_digest(self, challenge: Challenge, method: str, uri: str) -> str:
        if self.config.password is None:
            raise RegistrationError(401, "digest challenge but no password configured")
        self._digest_nc += 1
        qop = "auth" if "auth" in challenge.qop else None
        cnonce = secrets.token_hex(8) if qop else None
        nc = f"{self._digest_nc:08x}" if qop else None
        resp = compute_response(
            username=self.config.impi, realm=challenge.realm, password=self.config.password,
            method=method, uri=uri, nonce=challenge.nonce, nc=nc, cnonce=cnonce, qop=qop,
        )
        return Credentials(
            self.config.impi, challenge.realm, uri, nonce=challenge.nonce, response=resp,
            algorithm="MD5", cnonce=cnonce, opaque=challenge.opaque, qop=qop, nc=nc,
        ).to_header()

    def _registered(self, response: Response, expires: int) -> Registration:
        impus = [str(na.uri) for na in response.name_addrs("p-associated-uri")]
        routes = [str(na) for na in response.name_addrs("service-route")]
        granted = expires
        for c in response.contacts:
            v = c.param("expires")
            if v and v.isdigit():
                granted = int(v)
        self.registration = Registration(200, impus, routes, granted, self.protected)
        self.agent.route = routes
        if self.protected and self.sa_set is not None:
            self.agent.outbound = Address(self.esp_name, self.sa_set.peer_host, self.sa_set.peer_port_s)
            self.agent.transport = self.esp_name
        if granted > 0 and (self._refresher is None or self._refresher.done()):
            self._refresher = asyncio.create_task(self._refresh_loop())
        if granted > 0 and self.config.subscribe_reg and self._reg_watcher is None:
            self._reg_watcher = asyncio.create_task(self._watch_reg())
        self.log.info("registered", impus=impus, expires=granted, protected=self.protected)
        return self.registration

    async def _refresh_loop(self) -> None:
        while self.registration is not None:
            await asyncio.sleep(max(5.0, self.registration.expires * 0.5))
            try:
                await self.register()
            except RegistrationError as exc:
                self.log.warning("reregister_failed", reason=str(exc))

    async def deregister(self) -> Response:
        auth = self._initial_authorization()
        if self.config.auth == "digest" and self._digest_challenge is not None:
            auth = self._answer_digest(self._digest_challenge, "REGISTER", f"sip:{self.config.domain}")
        response = await self._send_register(self._register_request(0, auth))
        if response.status == 401 and self.config.auth == "digest":
            response = await self._send_register(self._register_request(0, self._answer_challenge(response)))
        self.registration = None
        if self._refresher is not None:
            self._refresher.cancel()
        return response

    async def _watch_reg(self) -> None:
        from ..documents import reginfo
        from ..documents.xml import DocumentError

        try:
            sub = await self.subscribe_reg()
        except Exception as exc:
            self.log.warning("reg_subscribe_failed", reason=str(exc))
            return
        if sub.response is None or sub.response.status >= 300:
            self.log.warning("reg_subscribe_refused", status=sub.response.status if sub.response else None)
            return
        while not sub.terminated:
            try:
                n = await sub.next(wait=3600)
            except TimeoutError:
                continue
            self.reg_event_active.set()
            if not n.body:
                continue
            try:
                info = reginfo.parse(n.body)
            except DocumentError as exc:
                self.log.warning("reginfo_unreadable", reason=exc.reason)
                continue
            for registration in info.registrations:
                if registration.aor.lower() != self.config.impu.lower() or registration.state != "terminated":
                    continue
                events = {c.event for c in registration.contacts}
                if events & {"deactivated", "rejected"}:
                    self.log.warning("deregistered_by_network", events=sorted(events))
                    self.registration = None
                    self.network_deregistered.set()

    async def subscribe_reg(self) -> ClientSubscription:
        """Subscribe to our own reg event (TS 24.229 5.1.1.3)."""
        self.reg_sub = await self.agent.subscribe(self.config.impu, event="reg", expires=600)
        return self.reg_sub
