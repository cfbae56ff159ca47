"""Sending PUBLISH to the Presence Server for an agent (Pen for the PNA, Pex for the PEA).

:class:`PublishClient` runs a sans-IO :class:`~.publisher.Publisher` over a
:class:`~presence_ims.transport.SipEndpoint`: it sends what the publisher says
is due, feeds the answers back and sleeps until the next deadline.  Requests
go straight to the PS over the network-domain transport (mutual TLS: the PS
knows the agent by its certificate) with the agent's identity in From and
P-Asserted-Identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from ...sip import Headers, Request, Response, SipParseError, parse_uri
from ...sip.transaction import Address
from ...transport import SipEndpoint
from .publisher import PublicationView, Publisher, PublishRequest

__all__ = ["PublishClient", "build_publish"]

PIDF = "application/pidf+xml"


def build_publish(request: PublishRequest, identity: str, node: str) -> Request:
    """The SIP PUBLISH (RFC 3903) for one :class:`PublishRequest`."""
    h = Headers()
    h.add("From", f"<{identity}>;tag={secrets.token_hex(6)}")
    h.add("To", f"<{request.presentity}>")
    h.add("Call-ID", f"{secrets.token_hex(10)}@{node}")
    h.add("CSeq", "1 PUBLISH")
    h.add("P-Asserted-Identity", f"<{identity}>")
    h.add("Event", "presence")
    h.add("Expires", str(request.expires))
    if request.etag is not None:
        h.add("SIP-If-Match", request.etag)
    if request.body is not None:
        h.add("Content-Type", PIDF)
    return Request(h, request.body or b"", "PUBLISH", parse_uri(request.presentity))


def _int_header(response: Response, name: str) -> int | None:
    value = response.headers.get(name)
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


class PublishClient:
    """One agent's publications toward the PS."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        destination: Address,
        publisher: Publisher,
        *,
        identity: str,
        interface: str,
        node: str,
        logger: Any,
        count: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.destination = destination
        """Where the PS is (transport, host, port)."""
        self.publisher = publisher
        self.identity = identity
        """Our SIP identity (``sip:pna.home1.net``)."""
        self.interface = interface
        self.node = node
        self.log = logger
        self._count = count or (lambda _name: None)
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self.on_result: Callable[[PublishRequest, int], None] | None = None
        """Called after every answer (tests and tools)."""

    # -- the agent's side ----------------------------------------------------------------
    def update(self, presentity: str, body: bytes | None, *, create: bool = True) -> bool:
        """Want ``body`` published for ``presentity`` (None: remove); see :meth:`Publisher.update`."""
        scheduled = self.publisher.update(presentity, body, self.clock(), create=create)
        if scheduled:
            self._wake.set()
        return scheduled

    def view(self, presentity: str) -> PublicationView | None:
        return self.publisher.view(presentity)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Stop, then remove every publication (Expires 0), waiting at most ``timeout``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        removals = self.publisher.close()
        if removals:
            sends = [asyncio.create_task(self._send(r, final=True)) for r in removals]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*sends, return_exceptions=True)
            for task in sends:
                task.cancel()
        for task in list(self._sends):
            task.cancel()
        await asyncio.gather(*self._sends, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            for request in self.publisher.poll(self.clock()):
                task = asyncio.create_task(self._send(request))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
            deadline = self.publisher.next_deadline()
            self._wake.clear()
            delay = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _send(self, request: PublishRequest, *, final: bool = False) -> None:
        message = build_publish(request, self.identity, self.node)
        call_id = message.headers.get("call-id")
        try:
            response = await self.endpoint.request(message, self.destination)
        except (OSError, SipParseError) as exc:
            self.log.warning(
                "publish_failed", interface=self.interface, presentity=request.presentity,
                kind=request.kind, reason=str(exc),
            )
            response = None
        status = response.status if response is not None else 503
        if not final:
            self.publisher.on_response(
                request,
                status,
                self.clock(),
                etag=response.headers.get("sip-etag") if response is not None else None,
                expires=_int_header(response, "expires") if response is not None else None,
                min_expires=_int_header(response, "min-expires") if response is not None else None,
            )
        ok = 200 <= status < 300
        self._count(f"{self.interface}.{'published' if ok else 'failed'}")
        log = self.log.info if ok else self.log.warning
        log(
            "publish",
            interface=self.interface,
            presentity=request.presentity,
            kind=request.kind,
            status=status,
            reason=response.reason if response is not None else None,
            call_id=call_id,
        )
        if self.on_result is not None:
            self.on_result(request, status)
        self._wake.set()
