"""The S-CSCF: registrar with IMS AKA and SIP Digest, reg event notifier (Pi),
initial filter criteria toward the Presence Server (ISC), and routing.

Originating requests arrive from a P-CSCF through the Service-Route
(``sip:orig@scscf...``); they are sent on to the target's home I-CSCF.
Terminating requests arrive from an I-CSCF; their iFCs send presence
requests to the PS with the served user's identity asserted, others go to
the registered contacts through the stored Path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import secrets
import ssl
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...diameter import DiameterError, DiameterMessage, Result, answer_for, cx
from ...diameter import base as dbase
from ...security.aka import encode_nonce
from ...sip import (
    Request,
    Response,
    SipParseError,
    SipURI,
    TelURI,
    normalize_name,
    parse_name_addr,
    parse_uri,
)
from ...sip.checks import check_uri_scheme
from ...sip.dialog import Dialog, dialog_id_of_request
from ...sip.digest import (
    Challenge,
    Credentials,
    DigestError,
    NonceManager,
    NonceStatus,
    parse_credentials,
    verify,
)
from ...sip.proxy import preprocess_route, relay_response, validate
from ...storage import StoreError, open_store
from ...transport import IncomingRequest
from ...transport.resolve import ResolveError
from ..common import NodeStartError, SipNode
from .registrar import (
    SESSION_ORIGINATING,
    SESSION_TERMINATING_REGISTERED,
    SESSION_TERMINATING_UNREGISTERED,
    Binding,
    ContactEvent,
    PendingAuth,
    Registration,
    RegSubscription,
    Scheme,
    build_reginfo,
    matching_ifcs,
)

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
AKA_SCHEME = "Digest-AKAv1-MD5"
DIGEST_SCHEME = "SIP Digest"


class ScscfConfig(BaseModel):
    """The S-CSCF node."""

    model_config = _MODEL

    name: str = "scscf.home1.net"
    """SIP host name and Diameter Origin-Host."""
    domain: str = "home1.net"
    """Home network domain (realm)."""
    sip: tuple[str, ...] = ("udp:127.0.0.1:6060", "tcp:127.0.0.1:6060")
    advertise: str | None = None
    server_name: str = "sip:scscf.home1.net:6060"
    """The name the HSS knows this S-CSCF by (Server-Name)."""
    hss: str = "127.0.0.1:3868"
    hss_name: str = "hss.home1.net"
    icscf: str = "sip:icscf.home1.net:4060;transport=tcp"
    """The home I-CSCF, where originating requests for home users go."""
    peer_networks: dict[str, str] = Field(default_factory=dict)
    """Other home networks: domain -> their I-CSCF URI (a DNS stand-in)."""
    min_expires: int = Field(60, ge=1)
    """Shortest registration accepted (seconds); below it: 423."""
    max_expires: int = Field(3600, ge=1)
    """Longest registration granted (seconds)."""
    auth_timeout: float = Field(30.0, gt=0)
    """Seconds a challenge stays valid."""
    stop_grace: float = Field(1.0, ge=0)
    """Seconds a stopping S-CSCF waits for the answers to what it sent or relays."""
    reg_event_expires: int = Field(3600, ge=60)
    """Default expiry of reg-event subscriptions (seconds)."""
    reg_watchers: tuple[str, ...] = ("sip:pcscf.home1.net", "sip:pna.home1.net")
    """Network identities (P-Asserted-Identity) allowed to watch any user's reg event."""
    hss_timeout: float = Field(5.0, gt=0)
    store: str = "memory"
    """Where registrations survive a restart: ``memory`` or ``sqlite:PATH``."""


class Scscf(SipNode):
    role = "scscf"

    def __init__(
        self,
        config: ScscfConfig,
        *,
        hosts: dict[str, str] | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        diameter_ssl: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            name=config.name,
            listen=config.sip,
            hosts=hosts,
            advertise=config.advertise,
            server_ssl=server_ssl,
            client_ssl=client_ssl,
            interface="Mw",
        )
        self.config = config
        self.hss = self.cx_link(
            config.hss,
            hss_name=config.hss_name,
            realm=config.domain,
            diameter_ssl=diameter_ssl,
            handler=self._diameter_request,
        )
        self.nonces = NonceManager(secrets.token_bytes(32), config.auth_timeout)
        self.pending: dict[str, PendingAuth] = {}
        self.registrations: dict[str, Registration] = {}
        """By IMPI."""
        self.by_impu: dict[str, str] = {}
        """IMPU (lower case) -> IMPI."""
        self.profiles: dict[str, cx.ImsSubscription] = {}
        """Profiles of unregistered users fetched for terminating requests (by IMPU)."""
        self.reg_subs: dict[str, RegSubscription] = {}
        self.reg_by_dialog: dict[tuple[str, str, str], str] = {}
        self._as_addresses: set[tuple[str, int]] = set()
        """Addresses of application servers requests were sent to (for ISC labels)."""
        self.endpoint.interface_resolver = self._interface_of
        self._digest_ha1: dict[str, str] = {}
        """H(A1) of digest users registered here, for re-REGISTERs with a fresh nonce count."""
        self._sessions = itertools.count(1)
        self._sweeper: asyncio.Task[None] | None = None
        self.clock = time.time
        self.store = open_store(config.store)

    async def start(self) -> None:
        try:
            await self.store.open()
            saved = await self.store.load("registration")
        except StoreError as exc:
            raise NodeStartError(f"scscf store: {exc}") from None
        now = self.clock()
        for value in saved.values():
            try:
                reg = Registration.from_dict(value)
            except (KeyError, TypeError, ValueError, DiameterError) as exc:
                self.log.warning("stored_registration_unreadable", reason=str(exc))
                continue
            for uri in [u for u, b in reg.bindings.items() if b.expires_at <= now]:
                del reg.bindings[uri]
            if reg.bindings:
                self._index(reg)
        if self.registrations:
            self.log.info("registrations_restored", count=len(self.registrations))
        await self.start_sip()
        self._sweeper = asyncio.create_task(self._sweep_loop())
        # connect early so the HSS can send RTR, but do not fail the start without it
        try:
            await self.hss.client()
        except DiameterError as exc:
            self.log.warning("hss_not_reachable_yet", reason=exc.reason)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        # final NOTIFYs out (deactivated: subscribe again when we are back) and what is being
        # relayed answered (one second at most), then no more SIP (requests in progress are
        # cancelled), then the store is flushed and closed
        for sub in list(self.reg_subs.values()):
            self._end_reg_subscription(sub, "deactivated")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.stop_grace):
                await self.endpoint.drain()
        await self.stop_sip()
        try:
            await self.store.close()
        except StoreError as exc:
            self.log.error("store_close_failed", reason=str(exc))
        await self.hss.close()

    # -- helpers ----------------------------------------------------------------------------
    def _interface_of(self, peer: Any, msg: Any, direction: str) -> str:
        """ISC toward/from the PS, Pi with the PNA, Mw otherwise (for the logs)."""
        if (peer.host, peer.port) in self._as_addresses:
            return "ISC"
        t: Any = self.endpoint.transports.get(peer.transport)
        names = t.peer_names(peer.flow) if hasattr(t, "peer_names") else []
        if any(n.startswith("ps.") for n in names):
            return "ISC"
        if any(n.startswith("pna.") for n in names):
            return "Pi"
        return "Mw"

    def _routing(self, destination_host: str | None = None) -> cx.Routing:
        return cx.Routing(self.config.name, self.config.domain, self.config.domain, destination_host)

    def _session(self) -> str:
        return f"{self.config.name};scscf;{next(self._sessions)}"

    async def _cx(self, message: DiameterMessage) -> DiameterMessage:
        return await self.hss.request(message, timeout=self.config.hss_timeout)

    def service_route(self) -> str:
        return f"<{self.uri('orig')}>"

    def record_route(self, leg: str) -> str:
        """Record-Route for the originating (``mo``) or terminating (``mt``) leg.

        The two differ so that a request passing this S-CSCF twice in one dialog
        (watcher and presentity served here) is not taken for a loop.
        """
        return f"<{self.uri(leg)}>"

    def registration_of(self, impu: str) -> Registration | None:
        impi = self.by_impu.get(_aor(impu))
        return self.registrations.get(impi) if impi else None

    # -- dispatch ----------------------------------------------------------------------------
    async def handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method == "ACK":
            return
        rejection = validate(request, is_own_via=self.is_own_via) or check_uri_scheme(request)
        if rejection is not None:
            incoming.respond(rejection.status, rejection.reason, headers=rejection.headers)
            return
        fwd = request.copy()
        popped = preprocess_route(fwd, self.is_own)
        try:
            if request.method == "REGISTER":
                await self._register(incoming, fwd)
            elif request.method == "SUBSCRIBE" and (fwd.event and fwd.event.value.lower() == "reg"):
                await self._reg_subscribe(incoming, fwd)
            elif request.to.tag and self._reg_dialog(request) is not None:
                await self._reg_subscribe(incoming, fwd)
            elif request.to.tag or fwd.headers.get_all("route"):
                # in-dialog (Record-Route) or someone else's route set: loose routing;
                # a NOTIFY can create the dialog (RFC 6665 4.3): record-route it again
                again = str(popped) if popped is not None and request.method == "NOTIFY" else None
                await self.forward(incoming, fwd, record_route=again)
            elif popped is not None and isinstance(popped.uri, SipURI) and popped.uri.user == "orig":
                await self._originating(incoming, fwd)
            else:
                await self._terminating(incoming, fwd)
        except DiameterError as exc:
            self.log.warning("hss_failed", reason=exc.reason, method=request.method)
            if not incoming.responded:
                incoming.respond(480, "HSS unreachable")

    # -- registrar ---------------------------------------------------------------------------
    async def _register(self, incoming: IncomingRequest, req: Request) -> None:
        impu = str(req.to.uri)
        creds = _credentials(req, self.config.domain)
        impi = creds.username if creds else _derive_impi(req)
        now = self.clock()
        expires = _requested_expiry(req)
        if expires is not None and 0 < expires < self.config.min_expires:
            incoming.respond(423, None, headers=(("Min-Expires", str(self.config.min_expires)),))
            return
        integrity = (creds.param("integrity-protected") or "") if creds else ""
        reg = self.registrations.get(impi)
        if integrity == "yes" and reg is not None and reg.scheme == "aka" and _aor(impu) in self.by_impu:
            # re-registration over an existing SA (TS 24.229 5.4.1.2.1): no new challenge
            await self._complete(incoming, req, impi, impu, "aka", now)
            return
        if creds is None or not creds.response or creds.nonce not in self.pending:
            if creds is not None and creds.response and creds.nonce and creds.algorithm.lower() == "md5":
                status = self.nonces.check(creds.nonce, creds.nc, now)
                if status is NonceStatus.VALID and reg is not None and reg.scheme == "digest":
                    ha1 = self._digest_ha1.get(impi)
                    if ha1 and verify(creds, password="", method="REGISTER", ha1=ha1):
                        await self._complete(incoming, req, impi, impu, "digest", now)
                        return
            await self._challenge(incoming, req, impi, impu, creds, now)
            return
        pending = self.pending[creds.nonce]
        if pending.impi != impi:
            incoming.respond(403, "Credentials for another user")
            return
        if pending.scheme == "aka" and creds.param("auts"):
            await self._challenge(incoming, req, impi, impu, creds, now, resync=creds.param("auts"))
            return
        ok = False
        try:
            if pending.scheme == "aka":
                ok = verify(creds, password=pending.xres, method="REGISTER")
            else:
                status = self.nonces.check(creds.nonce, creds.nc, now)
                ok = status is NonceStatus.VALID and verify(
                    creds, password="", method="REGISTER", ha1=pending.ha1
                )
        except DigestError as exc:
            incoming.respond(400, f"Bad credentials: {exc.reason}")
            return
        if not ok:
            self.pending.pop(creds.nonce, None)
            self.endpoint.stats["auth_failed"] += 1
            self.log.info("auth_failed", impi=impi, scheme=pending.scheme)
            incoming.respond(403, "Authentication failed")
            return
        self.pending.pop(creds.nonce, None)
        if pending.scheme == "digest":
            self._digest_ha1[impi] = pending.ha1
        await self._complete(incoming, req, impi, impu, pending.scheme, now)

    async def _challenge(
        self,
        incoming: IncomingRequest,
        req: Request,
        impi: str,
        impu: str,
        creds: Credentials | None,
        now: float,
        *,
        resync: str | None = None,
    ) -> None:
        wants_aka = (
            creds is not None
            and (creds.algorithm.lower() == "akav1-md5" or creds.param("integrity-protected") is not None)
        ) or resync is not None
        scheme_name = AKA_SCHEME if wants_aka else DIGEST_SCHEME
        authorization = None
        if resync is not None and creds is not None:
            try:
                auts = base64.b64decode(resync, validate=True)
                old = self.pending.get(creds.nonce)
                rand = old.rand if old else base64.b64decode(creds.nonce)[:16]
            except (ValueError, TypeError):
                incoming.respond(400, "malformed auts")
                return
            authorization = rand + auts
            self.pending.pop(creds.nonce, None)
        mar = cx.MultimediaAuthRequest(
            session_id=self._session(),
            routing=self._routing(),
            user_name=impi,
            public_identity=impu,
            server_name=self.config.server_name,
            auth_data_item=cx.SipAuthDataItem(scheme=scheme_name, authorization=authorization),
            number_auth_items=1,
        )
        maa = cx.MultimediaAuthAnswer.from_message(await self._cx(mar.to_message()))
        if not maa.result.is_success:
            code = maa.result.code
            if code == dbase.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED and scheme_name == DIGEST_SCHEME:
                # the user has only AKA: challenge with it
                retry = Credentials(impi, self.config.domain, str(req.uri), algorithm="AKAv1-MD5")
                await self._challenge(incoming, req, impi, impu, retry, now)
                return
            self.log.info("mar_refused", impi=impi, result=code)
            incoming.respond(403, "Forbidden")
            return
        if not maa.items:
            incoming.respond(403, "No authentication vector")
            return
        item = maa.items[0]
        expires_at = now + self.config.auth_timeout
        if item.digest is not None:
            nonce = self.nonces.issue(now)
            self.pending[nonce] = PendingAuth(
                impi, impu, "digest", nonce, expires_at, ha1=item.digest.ha1, realm=item.digest.realm
            )
            challenge = Challenge(item.digest.realm, nonce, algorithm="MD5", qop=("auth",))
        else:
            if item.rand is None or item.autn is None or item.authorization is None:
                incoming.respond(403, "Incomplete authentication vector")
                return
            nonce = encode_nonce(item.rand, item.autn)
            self.pending[nonce] = PendingAuth(
                impi, impu, "aka", nonce, expires_at,
                xres=item.authorization, ck=item.confidentiality_key or b"",
                ik=item.integrity_key or b"", rand=item.rand, realm=self.config.domain,
            )
            challenge = Challenge(
                self.config.domain, nonce, algorithm="AKAv1-MD5", qop=("auth",)
            ).with_params(
                ik=(item.integrity_key or b"").hex(), ck=(item.confidentiality_key or b"").hex()
            )
        self.log.info("challenge", impi=impi, scheme=self.pending[nonce].scheme)
        incoming.respond(401, "Unauthorized", headers=(("WWW-Authenticate", challenge.to_header()),))

    async def _complete(
        self, incoming: IncomingRequest, req: Request, impi: str, impu: str, scheme: Scheme, now: float
    ) -> None:
        reg = self.registrations.get(impi)
        first = reg is None
        if reg is None or reg.profile is None:
            sar = cx.ServerAssignmentRequest(
                session_id=self._session(),
                routing=self._routing(),
                server_name=self.config.server_name,
                assignment_type=cx.ServerAssignmentType.REGISTRATION,
                public_identities=(impu,),
                user_name=impi,
            )
            saa = cx.ServerAssignmentAnswer.from_message(await self._cx(sar.to_message()))
            if not saa.result.is_success:
                incoming.respond(403, "Server assignment refused")
                return
            profile = saa.subscription()
            impus = _implicit_set(profile, impu)
            reg = Registration(impi, impus, scheme, profile)
            self._index(reg)
        reg.scheme = scheme
        events: dict[str, ContactEvent] = {}
        gone: dict[str, ContactEvent] = {}
        paths = [str(p) for p in req.name_addrs("path")]
        header_expires = req.expires
        if req.contact_star:
            for uri in list(reg.bindings):
                gone[uri] = "unregistered"
            reg.bindings.clear()
        for contact in req.contacts:
            uri = str(contact.uri)
            value = contact.param("expires")
            expires = int(value) if value and value.isdigit() else header_expires
            expires = self.config.max_expires if expires is None else min(expires, self.config.max_expires)
            if expires == 0:
                if reg.bindings.pop(uri, None) is not None:
                    gone[uri] = "unregistered"
                continue
            old = reg.bindings.get(uri)
            params = "".join(f";{n}" + (f"={v}" if v is not None else "") for n, v in contact.params if n.lower() != "expires")
            reg.bindings[uri] = Binding(
                uri, now + expires, paths, req.call_id, req.cseq.seq,
                old.registered_at if old else now, params,
            )
            events[uri] = "refreshed" if old else "registered"
        active = reg.active(now)
        headers: list[tuple[str, str]] = []
        for b in active:
            headers.append(("Contact", f"<{b.contact}>{b.params};expires={int(b.expires_at - now)}"))
        if active:
            headers.append(("Service-Route", self.service_route()))
            headers.append(("P-Associated-URI", ", ".join(f"<{u}>" for u in reg.impus)))
            for p in req.headers.get_all("path"):
                headers.append(("Path", p))
        incoming.respond(200, "OK", headers=headers)
        self._persist(reg)
        await self._flush()
        self.log.info(
            "registered" if active else "deregistered",
            impi=impi, impu=impu, scheme=scheme, contacts=len(active), first=first,
        )
        if not active:
            await self._drop_registration(reg, "USER_DEREGISTRATION")
        self._notify_reg(reg, now, events=events, terminated=gone)

    def _index(self, reg: Registration) -> None:
        self.registrations[reg.impi] = reg
        for u in reg.impus:
            self.by_impu[_aor(u)] = reg.impi

    def _persist(self, reg: Registration) -> None:
        if reg.impi in self.registrations:
            self.store.put("registration", reg.impi, reg.to_dict())
        else:
            self.store.delete("registration", reg.impi)

    async def _drop_registration(self, reg: Registration, reason: str = "USER_DEREGISTRATION") -> None:
        self.registrations.pop(reg.impi, None)
        self.store.delete("registration", reg.impi)
        for u in reg.impus:
            self.by_impu.pop(_aor(u), None)
        kind = getattr(cx.ServerAssignmentType, reason)
        sar = cx.ServerAssignmentRequest(
            session_id=self._session(),
            routing=self._routing(),
            server_name=self.config.server_name,
            assignment_type=kind,
            public_identities=(reg.impus[0],),
            user_name=reg.impi,
        )
        try:
            await self._cx(sar.to_message())
        except DiameterError as exc:
            self.log.warning("sar_failed", reason=exc.reason)

    async def _flush(self) -> None:
        try:
            await self.store.flush()
        except StoreError as exc:
            self.log.error("store_flush_failed", reason=str(exc))

    # -- Cx requests from the HSS (RTR) -----------------------------------------------------------
    async def _diameter_request(self, request: DiameterMessage, peer: Any = None) -> DiameterMessage:
        if request.command_code == 304:  # RTR: network-initiated de-registration
            rtr = cx.RegistrationTerminationRequest.from_message(request)
            impis = [rtr.user_name] if rtr.user_name else [
                self.by_impu.get(_aor(u), "") for u in rtr.public_identities
            ]
            now = self.clock()
            for impi in impis:
                reg = self.registrations.pop(impi or "", None)
                if reg is None:
                    continue
                self.store.delete("registration", reg.impi)
                for u in reg.impus:
                    self.by_impu.pop(_aor(u), None)
                gone: dict[str, ContactEvent] = {uri: "deactivated" for uri in reg.bindings}
                reg.bindings.clear()
                self.log.info("network_deregistration", impi=impi)
                self._notify_reg(reg, now, terminated=gone, final=True)
            answer = cx.RegistrationTerminationAnswer(
                self.config.name, self.config.domain, Result(dbase.DIAMETER_SUCCESS)
            )
            return answer.to_message(request)
        return answer_for(
            request,
            origin_host=self.config.name,
            origin_realm=self.config.domain,
            result_code=dbase.DIAMETER_COMMAND_UNSUPPORTED,
        )

    # -- reg event (RFC 3680): the Pi interface toward the PNA ------------------------------------
    def _reg_dialog(self, request: Request) -> RegSubscription | None:
        try:
            sub_id = self.reg_by_dialog.get(dialog_id_of_request(request))
        except SipParseError:
            return None
        return self.reg_subs.get(sub_id) if sub_id else None

    async def _reg_subscribe(self, incoming: IncomingRequest, req: Request) -> None:
        now = self.clock()
        expires = req.expires if req.expires is not None else self.config.reg_event_expires
        if 0 < expires < self.config.min_expires:
            incoming.respond(423, None, headers=(("Min-Expires", str(self.config.min_expires)),))
            return
        expires = min(expires, self.config.max_expires)
        contact_hdr = f"<{self.uri(lr=False)}>"
        if req.to.tag:
            sub = self._reg_dialog(req)
            if sub is None:
                incoming.respond(481, "Subscription does not exist")
                return
            if not sub.dialog.accept_remote_cseq(req):
                incoming.respond(500, "CSeq out of order")
                return
            incoming.local_tag = sub.dialog.local_tag
            incoming.respond(200, headers=(("Expires", str(expires)), ("Contact", contact_hdr)))
            if expires == 0:
                self._end_reg_subscription(sub, "timeout")
            else:
                sub.expires_at = now + expires
                self._send_reg_notify(sub, now)
            return
        impu = _aor(str(req.ruri))
        watcher = _asserted(req)
        if watcher is None:
            incoming.respond(403, "No asserted identity")
            return
        reg = self.registration_of(impu)
        own = reg is not None and _aor(watcher) in {_aor(u) for u in reg.impus}
        if not own and _aor(watcher) not in {_aor(w) for w in self.config.reg_watchers}:
            incoming.respond(403, "Not allowed to watch this registration")
            return
        if not own and not self._peer_is(incoming, watcher):
            self.log.warning("reg_watcher_not_authenticated", watcher=watcher, source=str(incoming.source))
            incoming.respond(403, "Network identity not backed by the peer's certificate")
            return
        if reg is None and not impu.endswith("@" + self.config.domain) and not impu.startswith("tel:"):
            incoming.respond(404, "Not a user of this network")
            return
        if not req.contacts:
            incoming.respond(400, "SUBSCRIBE without Contact")
            return
        tag = secrets.token_hex(8)
        dialog = Dialog.from_uas_request(req, tag)
        sub = RegSubscription(
            secrets.token_hex(10), impu, watcher, dialog, now + expires, contact=contact_hdr,
            ends_with_registration=reg is not None and (own or _in_path(watcher, reg)),
        )
        incoming.local_tag = tag
        incoming.respond(200, headers=(("Expires", str(expires)), ("Contact", contact_hdr)))
        if expires == 0:
            self._send_reg_notify(sub, now, final_reason="timeout")
            return
        self.reg_subs[sub.id] = sub
        self.reg_by_dialog[dialog.id] = sub.id
        self.log.info("reg_subscription", impu=impu, watcher=watcher, interface="Pi" if "pna" in watcher else "Gm")
        self._send_reg_notify(sub, now)

    def _peer_is(self, incoming: IncomingRequest, identity: str) -> bool:
        """A network identity (``sip:pna.home1.net``) must be the TLS peer it came from.

        Without TLS between the nodes (``network.tls = false``) there is no
        certificate to check and the network position is trusted.
        """
        t: Any = self.endpoint.transports.get(incoming.source.transport)
        if not hasattr(t, "peer_names") or incoming.source.transport != "tls":
            return True
        host = _aor(identity).split(":", 1)[-1].split("@")[-1]
        return host in t.peer_names(incoming.source.flow)

    def _notify_reg(
        self,
        reg: Registration,
        now: float,
        *,
        events: dict[str, ContactEvent] | None = None,
        terminated: dict[str, ContactEvent] | None = None,
        final: bool = False,
    ) -> None:
        impus = {_aor(u) for u in reg.impus}
        gone = not reg.active(now)
        for sub in list(self.reg_subs.values()):
            if sub.impu not in impus:
                continue
            if gone and sub.ends_with_registration:
                self._forget_reg(sub)
                self._send_reg_notify(
                    sub, now, reg=reg, events=events, terminated=terminated, final_reason="noresource"
                )
            else:
                self._send_reg_notify(sub, now, reg=reg, events=events, terminated=terminated)

    def _send_reg_notify(
        self,
        sub: RegSubscription,
        now: float,
        *,
        reg: Registration | None = None,
        events: dict[str, ContactEvent] | None = None,
        terminated: dict[str, ContactEvent] | None = None,
        final_reason: str | None = None,
    ) -> None:
        reg = reg or self.registration_of(sub.impu)
        impus = reg.impus if reg is not None else [sub.impu]
        bindings = reg.active(now) if reg is not None else []
        body = build_reginfo(impus, bindings, version=sub.version, now=now, events=events, terminated=terminated)
        sub.version += 1
        state = (
            f"terminated;reason={final_reason}"
            if final_reason
            else f"active;expires={max(0, int(sub.expires_at - now))}"
        )
        request = sub.dialog.build_request(
            "NOTIFY",
            headers=[("Event", "reg"), ("Subscription-State", state), ("Content-Type", "application/reginfo+xml")],
            body=body,
            contact=sub.contact,
        )
        try:
            destination = self.destination_for(sub.dialog.next_hop())  # type: ignore[arg-type]
        except Exception as exc:
            self.log.warning("reg_notify_unroutable", reason=str(exc))
            return

        def done(response: Response) -> None:
            if response.status in (408, 481) or response.status >= 500:
                self._forget_reg(sub)

        self.endpoint.start_request(request, destination, done)

    def _forget_reg(self, sub: RegSubscription) -> None:
        self.reg_subs.pop(sub.id, None)
        self.reg_by_dialog.pop(sub.dialog.id, None)

    def _end_reg_subscription(self, sub: RegSubscription, reason: str) -> None:
        self._forget_reg(sub)
        self._send_reg_notify(sub, self.clock(), final_reason=reason)

    # -- routing ---------------------------------------------------------------------------------------
    async def _originating(self, incoming: IncomingRequest, req: Request) -> None:
        served = _asserted(req)
        if served is None or self.registration_of(served) is None:
            incoming.respond(403, "Originating user not registered here")
            return
        reg = self.registration_of(served)
        ifcs = matching_ifcs(
            reg.profile if reg else None, served, method=req.method, headers=_header_map(req),
            request_uri=str(req.uri), session_case=SESSION_ORIGINATING,
        )
        record = self.record_route("mo") if req.method in ("SUBSCRIBE", "INVITE", "REFER") else None
        if ifcs:
            await self._to_as(incoming, req, ifcs[0], record)
            return
        target = req.ruri
        domain = target.host.lower() if isinstance(target, SipURI) else self.config.domain
        if isinstance(target, TelURI) or domain == self.config.domain:
            next_uri = self.config.icscf
        elif domain in self.config.peer_networks:
            next_uri = self.config.peer_networks[domain]
        else:
            incoming.respond(404, "Unknown destination network")
            return
        req.headers.prepend("Route", f"<{next_uri}{'' if ';lr' in next_uri else ';lr'}>")
        await self.forward(incoming, req, record_route=record)

    async def _terminating(self, incoming: IncomingRequest, req: Request) -> None:
        target = req.ruri
        served = target.aor if isinstance(target, SipURI | TelURI) else str(target)
        reg = self.registration_of(served)
        profile = reg.profile if reg else await self._unregistered_profile(served)
        if reg is None and profile is None:
            incoming.respond(404, "Not Found")
            return
        case = SESSION_TERMINATING_REGISTERED if reg else SESSION_TERMINATING_UNREGISTERED
        ifcs = matching_ifcs(
            profile, served, method=req.method, headers=_header_map(req), request_uri=str(req.uri),
            session_case=case,
        )
        record = self.record_route("mt") if req.method in ("SUBSCRIBE", "INVITE", "REFER") else None
        if ifcs:
            await self._to_as(incoming, req, ifcs[0], record)
            return
        if reg is None:
            incoming.respond(480, "Temporarily Unavailable")
            return
        bindings = reg.active(self.clock())
        if not bindings:
            incoming.respond(480, "Temporarily Unavailable")
            return
        binding = max(bindings, key=lambda b: b.registered_at)
        req.uri = parse_uri(binding.contact)
        for p in reversed(binding.path):
            req.headers.prepend("Route", p)
        await self.forward(incoming, req, record_route=record)

    async def _to_as(self, incoming: IncomingRequest, req: Request, ifc: cx.InitialFilterCriteria, record: str | None) -> None:
        server = ifc.application_server.server_name
        uri = server if ";lr" in server else f"{server};lr"
        as_uri = parse_uri(server)
        if isinstance(as_uri, SipURI):
            try:
                a = self.destination_for(as_uri)
                self._as_addresses.add((a.host, a.port))
            except ResolveError:
                pass
        req.headers.prepend("Route", f"<{uri}>")
        self.log.debug("isc_forward", interface="ISC", method=req.method, server=server,
                       call_id=req.headers.get("call-id"))
        response = await self.forward(incoming, req, record_route=record, relay=False)
        if response.status in (408, 503) and ifc.application_server.default_handling == 1:
            incoming.respond(response.status, "Application server unavailable")
            return
        incoming.send(relay_response(response))

    async def _unregistered_profile(self, impu: str) -> cx.ImsSubscription | None:
        cached = self.profiles.get(_aor(impu))
        if cached is not None:
            return cached
        sar = cx.ServerAssignmentRequest(
            session_id=self._session(),
            routing=self._routing(),
            server_name=self.config.server_name,
            assignment_type=cx.ServerAssignmentType.UNREGISTERED_USER,
            public_identities=(impu,),
        )
        saa = cx.ServerAssignmentAnswer.from_message(await self._cx(sar.to_message()))
        if not saa.result.is_success:
            return None
        profile = saa.subscription()
        if profile is not None:
            self.profiles[_aor(impu)] = profile
        return profile

    # -- expiry ----------------------------------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.sweep(self.clock())
            except Exception:  # keep sweeping whatever one pass hit
                self.log.exception("sweep_failed")

    async def sweep(self, now: float) -> None:
        for nonce, p in list(self.pending.items()):
            if p.expires_at <= now:
                del self.pending[nonce]
        for reg in list(self.registrations.values()):
            gone: dict[str, ContactEvent] = {}
            for uri, b in list(reg.bindings.items()):
                if b.expires_at <= now:
                    del reg.bindings[uri]
                    gone[uri] = "expired"
            if gone:
                self.log.info("bindings_expired", impi=reg.impi, contacts=len(gone))
                if not reg.bindings:
                    await self._drop_registration(reg, "TIMEOUT_DEREGISTRATION")
                else:
                    self._persist(reg)
                self._notify_reg(reg, now, terminated=gone)
        await self._flush()
        for sub in list(self.reg_subs.values()):
            if sub.expires_at <= now:
                self._end_reg_subscription(sub, "timeout")


def _in_path(watcher: str, reg: Registration) -> bool:
    """The watcher is a node on the Path of one of the registration's bindings (its P-CSCF)."""
    try:
        who = parse_uri(_aor(watcher))
    except SipParseError:
        return False
    if not isinstance(who, SipURI):
        return False
    for binding in reg.bindings.values():
        for hop in binding.path:
            try:
                uri = parse_name_addr(hop, "Path").uri
            except SipParseError:
                continue
            if isinstance(uri, SipURI) and uri.host.lower() == who.host.lower():
                return True
    return False


def _aor(uri: str) -> str:
    text = uri.strip()
    if text.startswith("<") and ">" in text:
        text = text[1 : text.index(">")]
    scheme, _, rest = text.partition(":")
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    if scheme.lower() in ("sip", "sips"):
        user, at, host = rest.rpartition("@")
        host = host.split(":", 1)[0].lower()
        return f"sip:{user}@{host}" if at else f"sip:{host}"
    return f"{scheme.lower()}:{rest}"


def _credentials(req: Request, realm: str) -> Credentials | None:
    for value in req.headers.get_all("authorization"):
        try:
            creds = parse_credentials(value)
        except DigestError:
            continue
        if creds.realm.lower() == realm.lower() or not creds.realm:
            return creds
    return None


def _derive_impi(req: Request) -> str:
    uri = req.to.uri
    if isinstance(uri, SipURI) and uri.user:
        return f"{uri.user_unescaped}@{uri.host.lower()}"
    return str(uri)


def _requested_expiry(req: Request) -> int | None:
    values = []
    for c in req.contacts:
        v = c.param("expires")
        if v and v.isdigit():
            values.append(int(v))
    if values:
        return min(values)
    return req.expires


def _implicit_set(profile: cx.ImsSubscription | None, impu: str) -> list[str]:
    if profile is None:
        return [impu]
    for sp in profile.service_profiles:
        ids = [p.identity for p in sp.public_identities if not p.barred]
        if any(_aor(i) == _aor(impu) for i in ids):
            return ids
    return [impu]


def _asserted(req: Request) -> str | None:
    values = req.headers.get_all("p-asserted-identity")
    for v in values:
        try:
            uri = parse_name_addr(v, "P-Asserted-Identity").uri
        except SipParseError:
            continue
        if isinstance(uri, SipURI):
            return uri.aor
    if values:
        try:
            return str(parse_name_addr(values[0], "P-Asserted-Identity").uri)
        except SipParseError:
            return None
    return None


def _header_map(req: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in req.headers:
        out.setdefault(normalize_name(name), []).append(value)
    return out

