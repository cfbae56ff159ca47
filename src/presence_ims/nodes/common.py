"""What the CSCFs share: listening, routing, stateful forwarding, the Diameter link.

Each CSCF is a :class:`SipNode`: it owns a :class:`SipEndpoint`, knows the
URIs that name itself (for Route processing), resolves next hops through the
network's host table, and forwards requests statefully (RFC 3261 section 16)
with :meth:`SipNode.forward`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from ..diameter import DiameterError, DiameterMessage
from ..logging import get_logger
from ..sip import Request, Response, SipParseError, SipURI
from ..sip.headers import NameAddr
from ..sip.message import make_response
from ..sip.proxy import next_hop, prepare_forward, proxy_branch, relay_response
from ..sip.transaction import Address
from ..transport import IncomingRequest, SipEndpoint
from ..transport.diameter import DiameterClient
from ..transport.resolve import ResolveError, Resolver
from ..transport.spec import parse_listen


class NodeStartError(Exception):
    """A node cannot start: one clear line for the user (port taken, bad config ...)."""


class DiameterLink:
    """A Diameter client that connects on first use and reconnects after a failure."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        origin_host: str,
        origin_realm: str,
        apps: Iterable[int],
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        handler: Any = None,
        node: str,
        logger: Any = None,
    ) -> None:
        self.host, self.port = host, port
        self.origin_host, self.origin_realm = origin_host, origin_realm
        self.apps = tuple(apps)
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.handler = handler
        self.node = node
        self.log = logger or get_logger(node=node)
        self._client: DiameterClient | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> DiameterClient:
        async with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = await DiameterClient.connect(
                    self.host,
                    self.port,
                    self.origin_host,
                    self.origin_realm,
                    self.apps,
                    ssl=self.ssl_context,
                    server_hostname=self.server_hostname,
                    handler=self.handler,
                    node=self.node,
                    logger=self.log,
                )
            return self._client

    async def request(self, message: DiameterMessage, timeout: float = 5.0) -> DiameterMessage:  # noqa: ASYNC109
        """Send a request (connecting if needed); one retry on a fresh connection."""
        for attempt in (1, 2):
            try:
                client = await self.client()
                return await client.request(message, timeout=timeout)
            except DiameterError as exc:
                self.log.warning("diameter_request_failed", attempt=attempt, reason=exc.reason)
                if self._client is not None and not self._client.is_closed and attempt == 1:
                    raise
                self._client = None
                if attempt == 2:
                    raise
        raise DiameterError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            await self._client.close()
        self._client = None


class SipNode:
    """Base of the CSCFs: endpoint, own URIs, resolver, stateful forwarding."""

    role = "node"

    def __init__(
        self,
        *,
        name: str,
        listen: Iterable[str],
        hosts: dict[str, str] | None = None,
        advertise: str | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        default_transport: str = "tcp",
        interface: str = "Mw",
    ) -> None:
        self.name = name
        """Host name of the node (``scscf.home1.net``)."""
        self.listen_specs = [parse_listen(s) for s in listen]
        self.advertise = advertise
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.log = get_logger(node=self.role, net=name.split(".", 1)[-1])
        self.endpoint = SipEndpoint(node=self.role, interface=interface, logger=self.log)
        self.resolver = Resolver(hosts, default_transport=default_transport)
        self.default_transport = default_transport
        self._own_ports: set[int] = set()
        self._own_hosts: set[str] = {name.lower()}

    def cx_link(
        self,
        hss: str,
        *,
        hss_name: str,
        realm: str,
        diameter_ssl: ssl.SSLContext | None,
        handler: Any = None,
    ) -> DiameterLink:
        """The Cx link of a CSCF to the HSS at ``HOST:PORT`` (connects on first use)."""
        from ..diameter import APP_CX

        host, _, port = hss.rpartition(":")
        return DiameterLink(
            self.resolver.host(host),
            int(port),
            origin_host=self.name,
            origin_realm=realm,
            apps=[APP_CX],
            ssl_context=diameter_ssl,
            server_hostname=hss_name,
            handler=handler,
            node=self.role,
            logger=self.log,
        )

    async def start_sip(self) -> None:
        for spec in self.listen_specs:
            try:
                t = await self.endpoint.listen(
                    spec.transport,
                    spec.host,
                    spec.port,
                    ssl=self.server_ssl if spec.transport == "tls" else None,
                    client_ssl=self.client_ssl if spec.transport == "tls" else None,
                    advertise=self.advertise,
                )
            except (OSError, ValueError) as exc:
                await self.endpoint.close()
                reason = getattr(exc, "strerror", None) or exc
                raise NodeStartError(f"{self.role} cannot listen on {spec}: {reason}") from None
            self._own_ports.add(t.port)
            self._own_hosts.add(spec.host.lower())
            if self.advertise:
                self._own_hosts.add(self.advertise.lower())
            self.log.info("listening", transport=spec.transport, host=spec.host, port=t.port)
        self.endpoint.on_request(self.handle)

    async def stop_sip(self) -> None:
        await self.endpoint.close()

    def handle(self, incoming: IncomingRequest) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- identity of this node ------------------------------------------------------------
    def transport_for(self, name: str) -> Any:
        return self.endpoint.transports.get(name)

    def uri(self, user: str | None = None, *, transport: str | None = None, lr: bool = True) -> str:
        """A SIP URI naming this node (for Record-Route, Path, Service-Route, Contact)."""
        t_name = transport or self.default_transport
        t = self.endpoint.transports.get(t_name) or next(iter(self.endpoint.transports.values()))
        userpart = f"{user}@" if user else ""
        params = "" if t.name == "udp" else f";transport={t.name}"
        return f"sip:{userpart}{self.name}:{t.port}{params}{';lr' if lr else ''}"

    def is_own(self, uri: SipURI) -> bool:
        """Does ``uri`` name this node?  Names are looked up in the hosts table only (no DNS)."""
        host = uri.host.lower()
        if host not in self._own_hosts and self.resolver.static(host) not in self._own_hosts:
            return False
        return uri.port is None or uri.port in self._own_ports

    def is_own_via(self, host: str, port: int | None) -> bool:
        return host.lower() in self._own_hosts and (port is None or port in self._own_ports)

    # -- forwarding ---------------------------------------------------------------------------
    def destination_for(self, target: NameAddr | SipURI) -> Address:
        uri = target.uri if isinstance(target, NameAddr) else target
        if not isinstance(uri, SipURI):
            raise ResolveError(f"cannot route to {uri}")
        address = self.resolver.resolve(uri)
        if address.transport not in self.endpoint.transports:
            fallback = self.default_transport if self.default_transport in self.endpoint.transports else next(iter(self.endpoint.transports))
            address = Address(fallback, address.host, address.port)
        return address

    async def forward(
        self,
        incoming: IncomingRequest,
        request: Request,
        *,
        destination: Address | None = None,
        record_route: str | None = None,
        on_response: Callable[[Response], Response | None] | None = None,
        relay: bool = True,
    ) -> Response:
        """Forward statefully and relay the responses upstream (RFC 3261 16.6/16.7).

        ``request`` is the already processed copy (Route popped, Request-URI
        set); ``on_response`` may rewrite the final response before relaying
        (the P-CSCF strips ik/ck there) or return None to suppress it.
        """
        out = prepare_forward(request, record_route=record_route)
        try:
            target = destination or self.destination_for(next_hop(out))
        except (ResolveError, SipParseError) as exc:
            self.log.info("unroutable", reason=str(exc), call_id=request.headers.get("call-id"))
            response = make_response(incoming.request, 404, f"Unroutable: {exc}")
            if relay:
                incoming.respond(404, "Unroutable")
            return response

        def provisional(resp: Response) -> None:
            if relay and resp.status > 100:
                incoming.send(relay_response(resp))

        response = await self.endpoint.request(
            out, target, on_provisional=provisional, branch=proxy_branch(incoming.request)
        )
        upstream: Response | None = relay_response(response)
        if on_response is not None and upstream is not None:
            upstream = on_response(upstream)
        if relay and upstream is not None:
            incoming.send(upstream)
        return response
