"""The I-CSCF: the home network's entry point (Mw) and the presence proxy of Px.

REGISTER: UAR to the HSS, then forward to the S-CSCF it names.  Any other
request for a user of this network (a watcher's SUBSCRIBE from here or from
another home network, a PUBLISH): LIR to the HSS (interface Px, TS 23.141:
the presence proxy finds the presentity's serving node) and forward to that
S-CSCF.  404 for unknown users, 480 for unregistered ones without services.
"""

from __future__ import annotations

import itertools
import ssl
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..diameter import DiameterError, Result, cx
from ..diameter import base as dbase
from ..sip import Request, SipURI, TelURI
from ..sip.checks import check_uri_scheme
from ..sip.proxy import preprocess_route, validate
from ..transport import IncomingRequest
from .common import NodeStartError, SipNode

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class IcscfConfig(BaseModel):
    """The I-CSCF node."""

    model_config = _MODEL

    name: str = "icscf.home1.net"
    """SIP host name and Diameter Origin-Host."""
    domain: str = "home1.net"
    """Home network domain (Diameter realm)."""
    sip: tuple[str, ...] = ("udp:127.0.0.1:4060", "tcp:127.0.0.1:4060")
    """SIP listen addresses."""
    hss: str = "127.0.0.1:3868"
    """HSS Diameter address HOST:PORT."""
    hss_name: str = "hss.home1.net"
    """The HSS's Diameter identity (TLS server name)."""
    default_scscf: str = "sip:scscf.home1.net:6060;transport=tcp"
    """S-CSCF chosen when the HSS returns capabilities instead of a name."""
    advertise: str | None = None
    hss_timeout: float = Field(5.0, gt=0)
    """Seconds to wait for a Cx answer."""


class Icscf(SipNode):
    role = "icscf"

    def __init__(
        self,
        config: IcscfConfig,
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
            config.hss, hss_name=config.hss_name, realm=config.domain, diameter_ssl=diameter_ssl
        )
        self._sessions = itertools.count(1)

    async def start(self) -> None:
        await self.start_sip()

    async def stop(self) -> None:
        await self.hss.close()
        await self.stop_sip()

    def _routing(self) -> cx.Routing:
        return cx.Routing(self.config.name, self.config.domain, self.config.domain)

    def _session(self) -> str:
        return f"{self.config.name};icscf;{next(self._sessions)}"

    # -- requests ---------------------------------------------------------------------------
    async def handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method == "ACK":
            return
        rejection = validate(request, is_own_via=self.is_own_via) or check_uri_scheme(request)
        if rejection is not None:
            incoming.respond(rejection.status, rejection.reason, headers=rejection.headers)
            return
        fwd = request.copy()
        preprocess_route(fwd, self.is_own)
        if request.method == "REGISTER":
            await self._register(incoming, fwd)
            return
        if fwd.headers.get_all("route"):
            # someone else's route set (an in-dialog request): just pass it on
            await self.forward(incoming, fwd)
            return
        await self._terminating(incoming, fwd)

    async def _register(self, incoming: IncomingRequest, fwd: Request) -> None:
        to = fwd.to.uri
        impi = _impi(fwd)
        expires = fwd.expires
        contacts_expire_zero = fwd.contacts and all(c.param("expires") == "0" for c in fwd.contacts)
        dereg = expires == 0 or bool(contacts_expire_zero) or fwd.contact_star
        uar = cx.UserAuthorizationRequest(
            session_id=self._session(),
            routing=self._routing(),
            user_name=impi,
            public_identity=str(to),
            visited_network_identifier=fwd.headers.get("p-visited-network-id") or self.config.domain,
            authorization_type=(
                cx.UserAuthorizationType.DE_REGISTRATION if dereg else cx.UserAuthorizationType.REGISTRATION
            ),
        )
        try:
            answer = cx.UserAuthorizationAnswer.from_message(
                await self.hss.request(uar.to_message(), timeout=self.config.hss_timeout)
            )
        except DiameterError as exc:
            self.log.warning("uar_failed", reason=exc.reason, impi=impi)
            incoming.respond(480, "HSS unreachable")
            return
        if not answer.result.is_success:
            status, reason = _cx_error(answer.result, registering=True)
            self.log.info("register_refused", impi=impi, result=answer.result.code, status=status)
            incoming.respond(status, reason)
            return
        server = answer.selected_server_name or self.config.default_scscf
        await self._to_scscf(incoming, fwd, server)

    async def _terminating(self, incoming: IncomingRequest, fwd: Request) -> None:
        uri = fwd.ruri
        if isinstance(uri, SipURI) and uri.user is None:
            incoming.respond(404, "No user in Request-URI")
            return
        identity = uri.aor if isinstance(uri, SipURI | TelURI) else str(uri)
        lir = cx.LocationInfoRequest(
            session_id=self._session(), routing=self._routing(), public_identity=identity
        )
        try:
            answer = cx.LocationInfoAnswer.from_message(
                await self.hss.request(lir.to_message(), timeout=self.config.hss_timeout)
            )
        except DiameterError as exc:
            self.log.warning("lir_failed", reason=exc.reason, impu=identity)
            incoming.respond(480, "HSS unreachable")
            return
        self.log.info(
            "px_located",
            interface="Px",
            impu=identity,
            result=answer.result.code,
            server=answer.server_name,
            method=fwd.method,
            call_id=fwd.headers.get("call-id"),
        )
        if not answer.result.is_success:
            status, reason = _cx_error(answer.result, registering=False)
            incoming.respond(status, reason)
            return
        server = answer.server_name
        if server is None and answer.server_capabilities is not None:
            names = answer.server_capabilities.server_names
            server = names[0] if names else None
        await self._to_scscf(incoming, fwd, server or self.config.default_scscf)

    async def _to_scscf(self, incoming: IncomingRequest, fwd: Request, server: str) -> None:
        uri = server if ";lr" in server else f"{server};lr"
        fwd.headers.prepend("Route", f"<{uri}>")
        await self.forward(incoming, fwd)


def _impi(request: Request) -> str:
    """The private identity: Authorization username, else derived from the IMPU (TS 33.203)."""
    from ..sip.digest import DigestError, parse_credentials

    for value in request.headers.get_all("authorization"):
        try:
            creds = parse_credentials(value)
        except DigestError:
            continue
        if creds.username:
            return creds.username
    uri = request.to.uri
    if isinstance(uri, SipURI):
        return f"{uri.user_unescaped}@{uri.host}" if uri.user else uri.host
    return str(uri)


def _cx_error(result: Result, *, registering: bool) -> tuple[int, str]:
    code = result.code
    if result.experimental:
        if code == dbase.DIAMETER_ERROR_USER_UNKNOWN:
            return (403, "Unknown user") if registering else (404, "Not Found")
        if code == dbase.DIAMETER_ERROR_IDENTITIES_DONT_MATCH:
            return 403, "Identities do not match"
        if code == dbase.DIAMETER_ERROR_ROAMING_NOT_ALLOWED:
            return 403, "Roaming not allowed"
        if code == dbase.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED:
            return 480, "Temporarily Unavailable"
    if code == dbase.DIAMETER_AUTHORIZATION_REJECTED:
        return 403, "Forbidden"
    return 480, f"HSS answered {code}"


def build(config: IcscfConfig, **kwargs: Any) -> Icscf:
    return Icscf(config, **kwargs)


__all__ = ["Icscf", "IcscfConfig", "NodeStartError"]
