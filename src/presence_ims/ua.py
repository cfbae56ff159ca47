"""A small SIP user agent for presence: PUBLISH, SUBSCRIBE, and NOTIFY reception.

The UE node builds on it (adding registration and the protected channel);
tests and the benchmarks use it directly against the Presence Server.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from .sip import Headers, Request, Response, SipParseError, parse_uri
from .sip.dialog import Dialog, dialog_id_of_request
from .sip.transaction import Address
from .transport import IncomingRequest, SipEndpoint


@dataclass(slots=True, eq=False)
class Notification:
    """One NOTIFY received in a subscription."""

    request: Request
    state: str
    """Subscription-State value (``active``, ``pending``, ``terminated``)."""
    params: dict[str, str]
    """Subscription-State parameters (expires, reason ...)."""
    body: bytes
    content_type: str | None


@dataclass(slots=True, eq=False)
class ClientSubscription:
    """A subscription we hold as subscriber."""

    call_id: str
    local_tag: str
    resource: str
    event: str
    request: Request
    dialog: Dialog | None = None
    notifications: asyncio.Queue[Notification] = field(default_factory=asyncio.Queue)
    terminated: bool = False
    response: Response | None = None

    async def next(self, wait: float = 5.0) -> Notification:
        """The next NOTIFY; TimeoutError when none comes within ``wait`` seconds."""
        async with asyncio.timeout(wait):
            return await self.notifications.get()


class UserAgent:
    """PUA and watcher on top of a :class:`SipEndpoint`."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        aor: str,
        *,
        transport: str = "udp",
        display: str | None = None,
        outbound: Address | None = None,
        route: list[str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.aor = aor
        self.transport = transport
        self.display = display
        self.outbound = outbound
        """Where requests go first (the P-CSCF or the PS); None: resolve the Request-URI."""
        self.route = route or []
        """Preloaded Route set (the Service-Route after registration)."""
        self.extra_headers: list[tuple[str, str]] = []
        """Headers added to every out-of-dialog request (P-Preferred-Identity, Privacy ...)."""
        self.subscriptions: dict[tuple[str, str], ClientSubscription] = {}
        self.on_other_request: Callable[[IncomingRequest], None] | None = None
        endpoint.on_request(self._handle)

    # -- building -------------------------------------------------------------------------
    def contact(self) -> str:
        t = self.endpoint.transports[self.transport]
        user = self.aor.split(":", 1)[1].split("@", 1)[0]
        kind = t.via_transport.lower()
        param = "" if kind == "udp" else f";transport={kind}"
        return f"<sip:{user}@{t.host}:{t.port}{param}>"

    def new_request(
        self, method: str, target: str, *, to: str | None = None, headers: list[tuple[str, str]] | None = None,
        body: bytes = b"", content_type: str | None = None,
    ) -> Request:
        h = Headers()
        for r in self.route:
            h.add("Route", r)
        display = f'"{self.display}" ' if self.display else ""
        h.add("From", f"{display}<{self.aor}>;tag={secrets.token_hex(6)}")
        h.add("To", f"<{to or target}>")
        h.add("Call-ID", f"{secrets.token_hex(10)}@{self.endpoint.node}")
        h.add("CSeq", f"1 {method}")
        h.add("Contact", self.contact())
        for name, value in [*self.extra_headers, *(headers or [])]:
            h.add(name, value)
        if content_type:
            h.add("Content-Type", content_type)
        return Request(h, body, method, parse_uri(target))

    def destination(self, request: Request) -> Address:
        if self.outbound is not None:
            return self.outbound
        from .transport.resolve import Resolver

        routes = request.name_addrs("route")
        uri = routes[0].uri if routes else request.ruri
        return Resolver(default_transport=self.transport).resolve(uri)

    async def send(self, request: Request) -> Response:
        return await self.endpoint.request(request, self.destination(request))

    # -- PUBLISH (RFC 3903) --------------------------------------------------------------------
    async def publish(
        self, body: bytes | None, *, presentity: str | None = None, expires: int | None = 3600,
        etag: str | None = None, content_type: str = "application/pidf+xml",
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        extra = [("Event", "presence")]
        if expires is not None:
            extra.append(("Expires", str(expires)))
        if etag:
            extra.append(("SIP-If-Match", etag))
        extra.extend(headers or [])
        target = presentity or self.aor
        request = self.new_request(
            "PUBLISH", target, headers=extra, body=body or b"",
            content_type=content_type if body else None,
        )
        return await self.send(request)

    # -- SUBSCRIBE (RFC 6665) -------------------------------------------------------------------
    async def subscribe(
        self, resource: str, *, event: str = "presence", expires: int = 3600,
        headers: list[tuple[str, str]] | None = None, accept: str | None = None,
    ) -> ClientSubscription:
        extra = [("Event", event), ("Expires", str(expires))]
        if accept:
            extra.append(("Accept", accept))
        extra.extend(headers or [])
        request = self.new_request("SUBSCRIBE", resource, headers=extra)
        frm = request.from_
        sub = ClientSubscription(request.call_id, frm.tag or "", resource, event, request.copy())
        self.subscriptions[(sub.call_id, sub.local_tag)] = sub
        response = await self.send(request)
        sub.response = response
        if 200 <= response.status < 300:
            created = Dialog.from_uac_response(sub.request, response)
            if sub.dialog is not None:
                # a NOTIFY came first and made the dialog; the 2xx carries the route set
                created.remote_cseq = sub.dialog.remote_cseq
                created.local_cseq = max(created.local_cseq, sub.dialog.local_cseq)
            sub.dialog = created
        elif sub.dialog is None:
            sub.terminated = True
            self.subscriptions.pop((sub.call_id, sub.local_tag), None)
        return sub

    async def refresh(self, sub: ClientSubscription, expires: int = 3600) -> Response:
        if sub.dialog is None:
            raise SipParseError("subscription has no dialog")
        request = sub.dialog.build_request(
            "SUBSCRIBE",
            headers=[("Event", sub.event), ("Expires", str(expires))],
            contact=self.contact(),
        )
        response = await self.endpoint.request(request, self._dialog_destination(sub.dialog))
        return response

    async def unsubscribe(self, sub: ClientSubscription) -> Response:
        return await self.refresh(sub, expires=0)

    def _dialog_destination(self, dialog: Dialog) -> Address:
        if self.outbound is not None:
            return self.outbound
        from .transport.resolve import Resolver

        return Resolver(default_transport=self.transport).resolve(dialog.next_hop())

    # -- incoming -----------------------------------------------------------------------------------
    def _handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method == "NOTIFY":
            self._on_notify(incoming)
        elif request.method == "ACK":
            return
        elif self.on_other_request is not None:
            self.on_other_request(incoming)
        else:
            incoming.respond(405, headers=(("Allow", "NOTIFY"),))

    def _on_notify(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        call_id, local_tag, remote_tag = dialog_id_of_request(request)
        sub = self.subscriptions.get((call_id, local_tag))
        if sub is None:
            incoming.respond(481, "Subscription does not exist", add_tag=False)
            return
        if sub.dialog is None:
            # NOTIFY before the 2xx: it creates the dialog (RFC 6665 4.1.2.4)
            sub.dialog = Dialog(
                call_id=call_id,
                local_tag=local_tag,
                remote_tag=remote_tag,
                local_uri=str(sub.request.from_.without_param("tag")),
                remote_uri=str(request.from_.without_param("tag")),
                remote_target=str(request.contacts[0].uri) if request.contacts else sub.resource,
                route_set=[str(r) for r in request.name_addrs("record-route")],
                local_cseq=sub.request.cseq.seq,
                remote_cseq=request.cseq.seq,
            )
        elif not sub.dialog.accept_remote_cseq(request):
            incoming.respond(500, "CSeq out of order", add_tag=False)
            return
        value = request.headers.get("subscription-state") or ""
        state, *params = [p.strip() for p in value.split(";")]
        pmap = {}
        for p in params:
            k, _, v = p.partition("=")
            pmap[k.strip().lower()] = v.strip()
        incoming.respond(200, add_tag=False)
        ctype = request.headers.get("content-type")
        sub.notifications.put_nowait(
            Notification(request, state.lower(), pmap, request.body, ctype)
        )
        if state.lower() == "terminated":
            sub.terminated = True
            self.subscriptions.pop((call_id, local_tag), None)
