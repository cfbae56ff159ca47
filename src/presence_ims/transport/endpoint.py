"""``SipEndpoint``: the one SIP API nodes use.

It owns the transports of a node, the sans-IO :class:`TransactionLayer` and
one timer.  Bytes come in from transports, are parsed and validated (a
malformed request gets its 400/505/513 here, a malformed response is dropped),
fed to the layer, and the layer's events become handler calls and resolved
futures.  Everything the layer wants sent is serialised and written out.

    endpoint = SipEndpoint(node="ps", interface="ISC")
    await endpoint.listen("udp", "127.0.0.1", 0)
    endpoint.on_request(handler)            # async def handler(incoming): ...
    response = await endpoint.request(req, Address("udp", host, port))
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..sip import (
    Message,
    ParserLimits,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    make_response,
    parse_datagram,
    validate_request,
    validate_response,
)
from ..sip.headers import MAGIC_COOKIE, via_sent_by_lenient
from ..sip.transaction import (
    Address,
    RequestReceived,
    ResponseReceived,
    ServerTransactionFailed,
    StrayResponse,
    TimerConfig,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
    TransactionTransportError,
    Transmit,
)
from .base import Stats, Transport
from .tcp import StreamTransport
from .udp import UdpTransport

RequestHandler = Callable[["IncomingRequest"], Awaitable[None] | None]
StrayHandler = Callable[[Response, Address], Awaitable[None] | None]
InterfaceResolver = Callable[[Address, Message, str], str]

_NULL_LOGGER: Any = structlog.get_logger("presence_ims.sip")

_KEEPALIVE_BYTES = b"\r\n\x00 "


class _TagSource:
    """Random To tags: 48 bits each from ``os.urandom``, read 4 KiB at a time.

    The same bytes ``secrets.token_hex(6)`` returns (RFC 3261 19.3 wants tags
    cryptographically random), without a system call per request.  A forked
    child starts with a fresh block.
    """

    __slots__ = ("_block", "_offset")

    SIZE = 6
    BLOCK = 4096 // SIZE * SIZE

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._block = b""
        self._offset = 0

    def __call__(self) -> str:
        offset = self._offset
        end = offset + self.SIZE
        if end > len(self._block):
            self._block = os.urandom(self.BLOCK)
            offset, end = 0, self.SIZE
        self._offset = end
        return self._block[offset:end].hex()


_new_tag = _TagSource()
os.register_at_fork(after_in_child=_new_tag.reset)


class _BranchSource(_TagSource):
    """Branches: the magic cookie and 64 random bits, as ``new_branch()`` makes them
    (``secrets.token_hex(8)``), from the same kind of block (one per client transaction)."""

    __slots__ = ()

    SIZE = 8
    BLOCK = 4096 // SIZE * SIZE

    def __call__(self) -> str:
        return MAGIC_COOKIE + _TagSource.__call__(self)


_new_branch = _BranchSource()
os.register_at_fork(after_in_child=_new_branch.reset)


def _debug_enabled(log: Any) -> bool:
    """Whether ``log.debug`` may emit: False only for a logger whose class filters it out.

    structlog's filtering bound loggers fix their level in their class, so the
    answer holds for the logger's life; any other logger (a lazy proxy, a test
    double) counts as enabled and gets every argument as before.
    """
    check = getattr(type(log), "is_enabled_for", None)
    if check is None:
        return True
    return bool(check(log, logging.DEBUG))


@dataclass(slots=True, eq=False)
class IncomingRequest:
    """A request handed to a node, with the means to answer it."""

    request: Request
    source: Address
    transaction: TransactionKey | None
    endpoint: SipEndpoint
    interface: str
    responded: bool = False
    local_tag: str = field(default_factory=_new_tag)
    """The To tag this element adds when it answers (RFC 3261 8.2.6.2)."""

    def make_response(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        add_tag: bool = True,
    ) -> Response:
        return make_response(
            self.request,
            status,
            reason,
            to_tag=self.local_tag if add_tag else None,
            headers=headers,
            body=body,
        )

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        add_tag: bool = True,
    ) -> Response:
        """Build and send a response; returns it (for logs and tests)."""
        response = self.make_response(status, reason, headers=headers, body=body, add_tag=add_tag)
        self.send(response)
        return response

    def send(self, response: Response) -> None:
        if response.status >= 200:
            self.responded = True
        self.endpoint.send_response(self, response)


class SipEndpoint:
    """Transports + transaction layer + dispatch for one node."""

    def __init__(
        self,
        *,
        node: str,
        interface: str = "-",
        interface_resolver: InterfaceResolver | None = None,
        timers: TimerConfig | None = None,
        limits: ParserLimits | None = None,
        logger: Any = None,
        user_agent: str | None = None,
    ) -> None:
        self.node = node
        self.default_interface = interface
        self.interface_resolver = interface_resolver
        self.layer = TransactionLayer(timers or TimerConfig())
        self.limits = limits or ParserLimits()
        self.log = (logger or _NULL_LOGGER).bind(node=node)
        self.user_agent = user_agent
        self.stats = Stats()
        self.transports: dict[str, Transport] = {}
        self._framers: dict[tuple[str, int], StreamFramer] = {}
        self._handler: RequestHandler | None = None
        self._stray: StrayHandler | None = None
        self._pending: dict[TransactionKey, Callable[[Response], None]] = {}
        self._no_pending = asyncio.Event()
        """Set while no client transaction awaits its final response (see :meth:`drain`)."""
        self._no_pending.set()
        self._provisional: dict[TransactionKey, Callable[[Response], None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._flushing = False
        self._debug_log: Any = None
        self._debug_on = True
        self._event_handlers: dict[type[Any], Callable[[Any], None]] = {
            RequestReceived: self._on_request,
            ResponseReceived: self._on_response,
            TransactionTimedOut: self._on_failure,
            TransactionTransportError: self._on_failure,
            StrayResponse: self._on_stray,
            ServerTransactionFailed: self._on_server_failed,
            TransactionTerminated: self._on_terminated,
        }

    # -- set-up ----------------------------------------------------------------
    async def listen(
        self,
        transport: str,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        client_ssl: ssl_module.SSLContext | None = None,
        name: str | None = None,
        advertise: str | None = None,
    ) -> Transport:
        """Open a transport (``udp``, ``tcp`` or ``tls``) and return it (``.port`` is bound)."""
        self._loop = asyncio.get_running_loop()
        kind = transport.lower()
        t: Any
        if kind == "udp":
            t = UdpTransport(self, host, port, name=name or "udp")
        elif kind in ("tcp", "tls"):
            if kind == "tls" and ssl is None:
                raise ValueError("a TLS transport needs a server SSL context")
            t = StreamTransport(
                self, host, port, name=name or kind, server_ssl=ssl, client_ssl=client_ssl
            )
        else:
            raise ValueError(f"unknown transport {transport!r}")
        await t.start()
        if advertise:
            t.host = advertise
        self.add_transport(t)
        return t  # type: ignore[no-any-return]

    def add_transport(self, transport: Transport) -> None:
        """Attach a transport built elsewhere (the ESP-protected ones)."""
        self._loop = self._loop or asyncio.get_running_loop()
        self.transports[transport.name] = transport

    async def remove_transport(self, name: str) -> None:
        t = self.transports.pop(name, None)
        if t is not None:
            await t.close()

    def on_request(self, handler: RequestHandler) -> None:
        self._handler = handler

    def on_stray_response(self, handler: StrayHandler) -> None:
        self._stray = handler

    def address(self, transport: str = "udp") -> Address:
        t = self.transports[transport]
        return Address(t.name, t.host, t.port)

    async def drain(self) -> None:
        """Wait until every request sent (or relayed) has its final response or has failed.

        A node stopping gracefully waits for this, bounded, before :meth:`close`: a proxy
        still relaying responses (the 200 to a NOTIFY on its way back) would otherwise
        drop them, and the sender would end that subscription on its timeout.
        """
        await self._no_pending.wait()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._pending.clear()
        self._no_pending.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for t in list(self.transports.values()):
            await t.close()
        self.transports.clear()

    # -- sending -------------------------------------------------------------------
    def via_for(self, destination: Address, branch: str | None = None) -> str:
        t = self.transports[destination.transport]
        rport = ";rport" if not destination.reliable else ""
        return f"SIP/2.0/{t.via_transport} {t.host}:{t.port};branch={branch or _new_branch()}{rport}"

    def start_request(
        self,
        request: Request,
        destination: Address,
        on_final: Callable[[Response], None],
        *,
        on_provisional: Callable[[Response], None] | None = None,
        branch: str | None = None,
    ) -> TransactionKey | None:
        """Send ``request`` in a new client transaction; ``on_final`` gets its final response.

        A Via with a fresh branch is prepended.  A timeout (Timer B/F) or a
        transport failure yields a locally made 408 or 503 response, as RFC
        3261 8.1.3.1 tells the TU to treat them.  Callback style, for hot paths
        (NOTIFY fan-out); :meth:`request` is the awaitable form.
        """
        if destination.transport not in self.transports:
            on_final(make_response(request, 503, f"no {destination.transport} transport"))
            return None
        branch = branch or _new_branch()
        request.headers.prepend("Via", self.via_for(destination, branch))
        if "max-forwards" not in request.headers:
            request.headers.add("Max-Forwards", "70")
        if self.user_agent and "user-agent" not in request.headers:
            request.headers.add("User-Agent", self.user_agent)
        key = self.layer.send_request(request, destination, self._now(), branch=branch)
        self._pending[key] = on_final
        self._no_pending.clear()
        if on_provisional is not None:
            self._provisional[key] = on_provisional
        self._flush()
        return key

    async def request(
        self,
        request: Request,
        destination: Address,
        *,
        on_provisional: Callable[[Response], None] | None = None,
        branch: str | None = None,
    ) -> Response:
        """Send ``request`` and return its final response (see :meth:`start_request`)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Response] = loop.create_future()

        def done(response: Response) -> None:
            if not fut.done():
                fut.set_result(response)

        self.start_request(
            request, destination, done, on_provisional=on_provisional, branch=branch
        )
        return await fut

    def send_response(self, incoming: IncomingRequest, response: Response) -> None:
        if incoming.transaction is None:
            return
        if self.layer.send_response(incoming.transaction, response, self._now()):
            self._flush()

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        self.layer.send_stateless(message, destination)
        self._flush()

    # -- Receiver protocol (called by transports) ---------------------------------
    def datagram_received(self, data: bytes, source: Address) -> None:
        if (not data or data[0] in _KEEPALIVE_BYTES) and not data.strip(_KEEPALIVE_BYTES):
            return  # keep-alive
        try:
            msg = parse_datagram(data, self.limits)
        except SipParseError as exc:
            self._reject(exc, source)
            return
        self._dispatch(msg, source)

    def stream_received(self, data: bytes, source: Address) -> None:
        key = (source.transport, source.flow or 0)
        framer = self._framers.get(key)
        if framer is None:
            framer = self._framers[key] = StreamFramer(self.limits)
        framer.feed(data)
        while True:
            try:
                msg = framer.next_message()
            except SipParseError as exc:
                self._reject(exc, source)
                self._framers.pop(key, None)
                t = self.transports.get(source.transport)
                if isinstance(t, StreamTransport):
                    t.close_flow(source.flow)
                return
            if msg is None:
                return
            self._dispatch(msg, source)

    def stream_closed(self, source: Address) -> None:
        self._framers.pop((source.transport, source.flow or 0), None)

    def send_failed(self, destination: Address, reason: str, transaction: object) -> None:
        self.stats["tx_error"] += 1
        self.log.warning("sip_send_failed", destination=str(destination), reason=reason)
        if isinstance(transaction, tuple):
            self.layer.transport_error(transaction, self._now())
            self._drain()

    # -- internals ------------------------------------------------------------------
    def _now(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    def interface_of(self, peer: Address, msg: Message, direction: str) -> str:
        if self.interface_resolver is not None:
            try:
                return self.interface_resolver(peer, msg, direction)
            except Exception:  # a label for the logs must never stop a message
                self.stats["interface_of_error"] += 1
        return self.default_interface

    def _reject(self, exc: SipParseError, source: Address) -> None:
        partial = exc.partial
        interface = self.default_interface
        self.stats[f"parse_error:{interface}"] += 1
        if not isinstance(partial, Request):
            self.log.info(
                "sip_dropped", interface=interface, reason=exc.reason, source=str(source)
            )
            return
        self.log.info(
            "sip_rejected",
            interface=interface,
            status=exc.status,
            reason=exc.reason,
            method=partial.method,
            call_id=partial.headers.get("call-id"),
            source=str(source),
        )
        if partial.method == "ACK":
            return  # never answer an ACK
        destination = source
        if not source.reliable:
            top = partial.headers.get_all("via")
            sent_by = via_sent_by_lenient(top[0]) if top else None
            if sent_by is None:
                return  # nowhere to send it (RFC 3261 18.2.1)
            _, port, rport = sent_by
            destination = Address(source.transport, source.host, source.port if rport else (port or 5060))
        response = make_response(partial, exc.status, exc.reason, to_tag=_new_tag())
        self.layer.send_stateless(response, destination)
        self._flush()

    def _debug(self) -> bool:
        """Whether debug logs are emitted (their arguments are not worth computing otherwise)."""
        log = self.log
        if log is not self._debug_log:
            self._debug_log = log
            self._debug_on = _debug_enabled(log)
        return self._debug_on

    def _dispatch(self, msg: Message, source: Address) -> None:
        now = self._now()
        if isinstance(msg, Request):
            try:
                validate_request(msg)
            except SipParseError as exc:
                self._reject(exc, source)
                return
            self.stats["rx_request"] += 1
            if self._debug():
                self.log.debug(
                    "sip_rx",
                    interface=self.interface_of(source, msg, "in"),
                    method=msg.method,
                    call_id=msg.headers.get("call-id"),
                    source=str(source),
                )
            self.layer.receive_request(msg, source, now)
        else:
            assert isinstance(msg, Response)
            try:
                validate_response(msg)
            except SipParseError as exc:
                self.stats["rx_bad_response"] += 1
                self.log.info("sip_dropped", reason=exc.reason, source=str(source))
                return
            self.stats["rx_response"] += 1
            if self._debug():
                self.log.debug(
                    "sip_rx",
                    interface=self.interface_of(source, msg, "in"),
                    status=msg.status,
                    call_id=msg.headers.get("call-id"),
                    source=str(source),
                )
            self.layer.receive_response(msg, source, now)
        self._flush()

    def _flush(self) -> None:
        if self._flushing:
            self._drain()  # a handler answering inside a flush: the outer one arms the timer
            return
        self._flushing = True
        try:
            self._drain()
        finally:
            self._flushing = False
        self._arm_timer()

    def _drain(self) -> None:
        layer = self.layer
        handlers = self._event_handlers
        while True:
            transmits = layer.take_transmits()
            for tx in transmits:
                self._transmit(tx)
            event = layer.next_event()
            if event is not None:
                handlers[type(event)](event)
            elif not transmits:
                return

    def _transmit(self, tx: Transmit) -> None:
        msg, destination = tx.message, tx.destination
        t = self.transports.get(destination.transport)
        if t is None:
            self.send_failed(destination, "no such transport", tx.transaction)
            return
        data = tx.data if tx.data is not None else msg.serialize()
        if isinstance(msg, Request):
            self.stats["tx_request"] += 1
            if self._debug():
                self.log.debug(
                    "sip_tx",
                    interface=self.interface_of(destination, msg, "out"),
                    method=msg.method,
                    call_id=msg.headers.get("call-id"),
                    destination=str(destination),
                )
        else:
            assert isinstance(msg, Response)
            self.stats["tx_response"] += 1
            if self._debug():
                self.log.debug(
                    "sip_tx",
                    interface=self.interface_of(destination, msg, "out"),
                    status=msg.status,
                    call_id=msg.headers.get("call-id"),
                    destination=str(destination),
                )
        t.send(data, destination, tx.transaction)

    # -- layer events (one handler per event type, see ``_event_handlers``) -------------
    def _on_response(self, event: ResponseReceived) -> None:
        if event.response.status < 200:
            cb = self._provisional.get(event.transaction)
            if cb is not None:
                cb(event.response)
            return
        callback = self._pending.pop(event.transaction, None)
        self._provisional.pop(event.transaction, None)
        if not self._pending:
            self._no_pending.set()
        if callback is not None:
            self._call(callback, event.response)

    def _on_failure(self, event: TransactionTimedOut | TransactionTransportError) -> None:
        callback = self._pending.pop(event.transaction, None)
        self._provisional.pop(event.transaction, None)
        if not self._pending:
            self._no_pending.set()
        timed_out = isinstance(event, TransactionTimedOut)
        status = 408 if timed_out else 503
        reason = "Request Timeout" if timed_out else "Service Unavailable (transport error)"
        self.stats["tx_timeout" if timed_out else "tx_transport_error"] += 1
        self.log.info(
            "transaction_failed",
            method=event.request.method,
            call_id=event.request.headers.get("call-id"),
            status=status,
        )
        if callback is not None:
            self._call(callback, make_response(event.request, status, reason))

    def _on_stray(self, event: StrayResponse) -> None:
        if self._stray is not None:
            result = self._stray(event.response, event.source)
            if result is not None:
                self._spawn(result)
        else:
            self.stats["rx_stray_response"] += 1

    def _on_server_failed(self, event: ServerTransactionFailed) -> None:
        self.log.info("server_transaction_failed", reason=event.reason)

    def _on_terminated(self, event: TransactionTerminated) -> None:
        pass

    def _call(self, callback: Callable[[Response], None], response: Response) -> None:
        try:
            callback(response)
        except Exception:
            self.stats["callback_error"] += 1
            self.log.exception("response_callback_error", status=response.status)

    def _on_request(self, event: RequestReceived) -> None:
        if self._closed:
            return  # shutting down: no new work (the client retransmits or times out)
        request = event.request
        incoming = IncomingRequest(
            request,
            event.source,
            event.transaction,
            self,
            self.interface_of(event.source, request, "in"),
        )
        handler = self._handler
        if handler is None:
            if event.transaction is not None:
                incoming.respond(501, "No handler")
            return
        try:
            result = handler(incoming)
        except Exception:
            self._handler_crashed(incoming)
            return
        if result is not None:
            self._spawn(self._guard(result, incoming))

    async def _guard(self, awaitable: Awaitable[None], incoming: IncomingRequest) -> None:
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception:
            self._handler_crashed(incoming)

    def _handler_crashed(self, incoming: IncomingRequest) -> None:
        self.stats["handler_error"] += 1
        self.log.exception(
            "handler_error",
            interface=incoming.interface,
            method=incoming.request.method,
            call_id=incoming.request.headers.get("call-id"),
        )
        if not incoming.responded and incoming.transaction is not None:
            incoming.respond(500, "Internal error")

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        if self._closed:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            return
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _arm_timer(self) -> None:
        when = self.layer.get_timer()
        if when is None or self._closed:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        self._timer_at = when
        self._timer = loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        due = self._timer_at
        self._timer = None
        self._timer_at = None
        # A loop may run the callback a little before ``due`` by its own clock (uvloop
        # keeps milliseconds); the deadline has come all the same, or the timer would be
        # re-armed for the same instant again and again until the clock catches up.
        now = self._now()
        self.layer.handle_timer(max(now, due) if due is not None else now)
        self._flush()
