"""asyncio Diameter peers over TCP or TLS (RFC 6733 sections 2, 5).

- :class:`DiameterPeer` is one connection: it frames and decodes the byte
  stream (:class:`~presence_ims.diameter.codec.DiameterFramer`), answers
  the base commands itself (CER with CEA on the accepting side, DWR with DWA,
  DPR with DPA), matches answers to requests by hop-by-hop id and hands every
  other request to ``async handler(request, peer) -> answer``.
- :class:`DiameterClient` connects, performs CER/CEA, runs the DWR watchdog
  and accepts requests from the server (RTR, PNR) for its own handler.
  Reconnecting is the caller's business.
- :class:`DiameterServer` listens, keeps the connected peers by Origin-Host
  and can send requests to one of them (the HSS sends RTR and PNR over the
  connection the S-CSCF or PNA opened).

A message that cannot be framed or decoded closes its connection (logged
and counted); a server keeps serving the others.  Every message is logged at
debug level with ``node``, ``interface``, ``command``, ``session_id`` and
``direction``.  Every task belongs to a peer, client or server, which cancels
and awaits it on close/stop.  Mutual TLS is configured by the caller in the
``ssl.SSLContext`` passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl as _ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from presence_ims.diameter.base import (
    CMD_CAPABILITIES_EXCHANGE,
    CMD_DEVICE_WATCHDOG,
    CMD_DISCONNECT_PEER,
    DIAMETER_APPLICATION_UNSUPPORTED,
    DIAMETER_COMMAND_UNSUPPORTED,
    DIAMETER_NO_COMMON_APPLICATION,
    DIAMETER_SUCCESS,
    DIAMETER_UNABLE_TO_COMPLY,
    DISCONNECT_REBOOTING,
    ApplicationId,
    Capabilities,
    as_application,
    build_cea,
    build_cer,
    build_dpa,
    build_dpr,
    build_dwa,
    build_dwr,
    common_applications,
    parse_capabilities,
)
from presence_ims.diameter.codec import (
    APP_BASE,
    APP_CX,
    APP_SH,
    DEFAULT_MAX_MESSAGE_SIZE,
    DiameterError,
    DiameterFramer,
    DiameterMessage,
    Result,
    answer_for,
    decode,
    encode,
)

__all__ = [
    "DEFAULT_INTERFACES",
    "DiameterClient",
    "DiameterCounters",
    "DiameterPeer",
    "DiameterServer",
    "RequestHandler",
]

RequestHandler = Callable[[DiameterMessage, "DiameterPeer"], Awaitable[DiameterMessage | None]]
"""``async handler(request, peer) -> answer``; None means "not handled" (3001)."""

DEFAULT_INTERFACES: Final[Mapping[int, str]] = {APP_BASE: "base", APP_CX: "Cx", APP_SH: "Sh"}
"""Reference interface label per application id (a PNA passes Sh -> "Ph",
a presence proxy Cx -> "Px")."""

DEFAULT_REQUEST_TIMEOUT: Final = 10.0
"""Seconds a request waits for its answer."""
_READ_SIZE: Final = 65536
_CLOSE_TIMEOUT: Final = 2.0


@dataclass(slots=True)
class DiameterCounters:
    """Message and error counts of a client or server (all its connections)."""

    rx: int = 0
    """Messages received and decoded."""
    tx: int = 0
    """Messages sent."""
    errors: int = 0
    """Garbage, protocol violations, handler failures, watchdog failures."""
    connections: int = 0
    """Connections opened (accepted or connected)."""
    closed_on_error: int = 0
    """Connections closed because of garbage or a protocol violation."""
    by_command: dict[str, int] = field(default_factory=dict)
    """Counts per ``"rx UAR"`` / ``"tx UAA"``."""

    def count(self, direction: str, message: DiameterMessage) -> None:
        """Count one message in ``direction`` ("rx" or "tx")."""
        if direction == "rx":
            self.rx += 1
        else:
            self.tx += 1
        key = f"{direction} {message.name}"
        self.by_command[key] = self.by_command.get(key, 0) + 1


def _safe_session(message: DiameterMessage) -> str | None:
    try:
        return message.session_id
    except DiameterError:
        return None


def _strip_scope(address: str) -> str:
    return address.split("%", 1)[0]


class DiameterPeer:
    """One Diameter connection, either side."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        local: Capabilities,
        handler: RequestHandler | None,
        accepting: bool,
        counters: DiameterCounters,
        logger: Any,
        interfaces: Mapping[int, str] = DEFAULT_INTERFACES,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        on_capabilities: Callable[[DiameterPeer], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.local = local
        """Our capabilities (Origin-Host, realm, applications)."""
        self.remote: Capabilities | None = None
        """The peer's capabilities once CER/CEA is done."""
        self.applications: tuple[ApplicationId, ...] = ()
        """Applications both sides support."""
        self._handler = handler
        self._accepting = accepting
        self._counters = counters
        self._interfaces = interfaces
        self._framer = DiameterFramer(max_message_size)
        self._on_capabilities = on_capabilities
        self._pending: dict[int, asyncio.Future[DiameterMessage]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._run_task: asyncio.Task[Any] | None = None
        self._closing = False
        self._closed = asyncio.Event()
        self._hop_by_hop = random.getrandbits(32)
        self._end_to_end = ((int(time.time()) & 0xFFF) << 20) | random.getrandbits(20)
        peername = writer.get_extra_info("peername")
        self.address: str = f"{peername[0]}:{peername[1]}" if peername else "?"
        """Remote transport address ``ip:port``."""
        self._log = logger.bind(peer_address=self.address)

    # -- identity ------------------------------------------------------------

    @property
    def remote_host(self) -> str | None:
        """The peer's Origin-Host, once known."""
        return None if self.remote is None else self.remote.origin_host

    @property
    def is_closed(self) -> bool:
        """True once the connection is gone."""
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Wait until the connection is gone."""
        await self._closed.wait()

    def local_address(self) -> str:
        """Our IP address on this connection (for Host-IP-Address)."""
        sockname = self._writer.get_extra_info("sockname")
        return _strip_scope(str(sockname[0])) if sockname else "127.0.0.1"

    # -- sending ---------------------------------------------------------------

    def _next_ids(self) -> tuple[int, int]:
        self._hop_by_hop = (self._hop_by_hop + 1) & 0xFFFFFFFF
        self._end_to_end = (self._end_to_end + 1) & 0xFFFFFFFF
        return self._hop_by_hop, self._end_to_end

    def _log_message(self, direction: str, message: DiameterMessage) -> None:
        self._counters.count(direction, message)
        self._log.debug(
            f"diameter_{direction}",
            interface=self._interfaces.get(message.application_id, message.interface),
            command=message.name,
            session_id=_safe_session(message),
            hop_by_hop=message.hop_by_hop,
            direction=direction,
            peer=self.remote_host,
        )

    async def _send(self, message: DiameterMessage) -> None:
        if self._closing or self.is_closed:
            raise DiameterError("connection closed")
        data = encode(message)
        self._log_message("tx", message)
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError, RuntimeError) as exc:
            raise DiameterError(f"send failed: {exc}") from exc

    async def request(
        self, message: DiameterMessage, timeout: float = DEFAULT_REQUEST_TIMEOUT  # noqa: ASYNC109
    ) -> DiameterMessage:
        """Send a request and wait for its answer.

        A new hop-by-hop id is assigned (and an end-to-end id when the message
        has none).  Raises :class:`DiameterError` on timeout or when the
        connection closes first."""
        if not message.request:
            raise DiameterError("request() needs a request")
        hop_by_hop, end_to_end = self._next_ids()
        message = message.with_ids(hop_by_hop, message.end_to_end or end_to_end)
        future: asyncio.Future[DiameterMessage] = asyncio.get_running_loop().create_future()
        self._pending[hop_by_hop] = future
        try:
            await self._send(message)
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError as exc:
            raise DiameterError(f"{message.name}: no answer within {timeout} s") from exc
        finally:
            self._pending.pop(hop_by_hop, None)

    # -- receiving -------------------------------------------------------------

    async def run(self) -> None:
        """Read and dispatch until the connection ends; then tear down."""
        self._run_task = asyncio.current_task()
        try:
            while not self._closing:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    break
                try:
                    frames = self._framer.feed(data)
                except DiameterError as exc:
                    self._garbage(exc)
                    return
                for frame in frames:
                    try:
                        message = decode(frame)
                    except DiameterError as exc:
                        self._garbage(exc)
                        return
                    self._log_message("rx", message)
                    try:
                        if not await self._dispatch(message):
                            return
                    except DiameterError as exc:
                        self._log.info("diameter_send_failed", reason=exc.reason)
                        return
        except (ConnectionError, OSError) as exc:
            self._log.info("diameter_connection_lost", reason=str(exc), peer=self.remote_host)
        finally:
            await self._teardown()

    def _garbage(self, exc: DiameterError) -> None:
        self._counters.errors += 1
        self._counters.closed_on_error += 1
        self._log.warning("diameter_garbage", reason=exc.reason, peer=self.remote_host)

    async def _dispatch(self, message: DiameterMessage) -> bool:
        """Handle one message; False stops reading (DPR, failed CE)."""
        if not message.request:
            future = self._pending.get(message.hop_by_hop)
            if future is None or future.done():
                self._counters.errors += 1
                self._log.warning(
                    "diameter_unexpected_answer", command=message.name, hop_by_hop=message.hop_by_hop
                )
            else:
                future.set_result(message)
            return True
        code = message.command_code
        if code == CMD_CAPABILITIES_EXCHANGE:
            return await self._on_cer(message)
        if self.remote is None:
            self._counters.errors += 1
            self._counters.closed_on_error += 1
            self._log.warning("diameter_request_before_cer", command=message.name)
            return False
        if code == CMD_DEVICE_WATCHDOG:
            await self._send(build_dwa(message, self.local.origin_host, self.local.origin_realm))
            return True
        if code == CMD_DISCONNECT_PEER:
            await self._send(build_dpa(message, self.local.origin_host, self.local.origin_realm))
            self._log.info("diameter_peer_disconnected", peer=self.remote_host)
            return False
        task = asyncio.create_task(self._serve(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _on_cer(self, message: DiameterMessage) -> bool:
        if not self._accepting or self.remote is not None:
            # A client does not expect CER; a second CER is a protocol error.
            answer = answer_for(
                message,
                origin_host=self.local.origin_host,
                origin_realm=self.local.origin_realm,
                result_code=DIAMETER_UNABLE_TO_COMPLY,
            )
            await self._send(answer)
            return True
        try:
            remote = parse_capabilities(message)
        except DiameterError as exc:
            self._counters.errors += 1
            self._counters.closed_on_error += 1
            self._log.warning("diameter_bad_cer", reason=exc.reason)
            return False
        common = common_applications(self.local.applications, remote.applications)
        if not common:
            await self._send(build_cea(message, self.local_capabilities(), DIAMETER_NO_COMMON_APPLICATION))
            self._log.warning("diameter_no_common_application", peer=remote.origin_host)
            return False
        self.remote = remote
        self.applications = common
        await self._send(build_cea(message, self.local_capabilities(), DIAMETER_SUCCESS))
        self._log.info("diameter_peer_up", peer=remote.origin_host)
        if self._on_capabilities is not None:
            self._on_capabilities(self)
        return True

    def local_capabilities(self) -> Capabilities:
        """Our capabilities, Host-IP-Address defaulting to this socket's address."""
        if self.local.host_ip_addresses:
            return self.local
        return _with_addresses(self.local, (self.local_address(),))

    async def _serve(self, request: DiameterMessage) -> None:
        app_ids = {app.application_id for app in self.applications}
        try:
            if request.application_id not in app_ids:
                answer: DiameterMessage | None = self._error_answer(
                    request, DIAMETER_APPLICATION_UNSUPPORTED
                )
            elif self._handler is None:
                answer = None
            else:
                answer = await self._handler(request, self)
            if answer is None:
                answer = self._error_answer(request, DIAMETER_COMMAND_UNSUPPORTED)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._counters.errors += 1
            self._log.error("diameter_handler_failed", command=request.name, error=repr(exc))
            answer = self._error_answer(request, DIAMETER_UNABLE_TO_COMPLY)
        with contextlib.suppress(DiameterError):
            await self._send(answer)

    def _error_answer(self, request: DiameterMessage, code: int) -> DiameterMessage:
        return answer_for(
            request,
            origin_host=self.local.origin_host,
            origin_realm=self.local.origin_realm,
            result=Result(code),
        )

    # -- closing ---------------------------------------------------------------

    async def close(self, *, dpr: bool = True, grace: float = _CLOSE_TIMEOUT) -> None:
        """Send DPR (when the peer is up) and wait up to ``grace`` seconds for
        DPA and for the connection to go; then force it."""
        if self.is_closed:
            return
        if dpr and self.remote is not None and not self._closing:
            with contextlib.suppress(DiameterError):
                dpr_message = build_dpr(
                    self.local.origin_host, self.local.origin_realm, DISCONNECT_REBOOTING
                )
                await self.request(dpr_message, timeout=grace)
        self._closing = True
        self._writer.close()
        try:
            async with asyncio.timeout(grace):
                await self._closed.wait()
        except TimeoutError:
            if self._run_task is not None and not self._run_task.done():
                self._run_task.cancel()
            await self._closed.wait()

    async def _teardown(self) -> None:
        self._closing = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DiameterError("connection closed"))
        self._pending.clear()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._closed.set()
        self._log.debug("diameter_connection_closed", peer=self.remote_host)


def _with_addresses(caps: Capabilities, addresses: tuple[str, ...]) -> Capabilities:
    return Capabilities(
        origin_host=caps.origin_host,
        origin_realm=caps.origin_realm,
        host_ip_addresses=addresses,
        vendor_id=caps.vendor_id,
        product_name=caps.product_name,
        applications=caps.applications,
        supported_vendor_ids=caps.supported_vendor_ids,
        origin_state_id=caps.origin_state_id,
        firmware_revision=caps.firmware_revision,
    )


def _local_capabilities(
    origin_host: str,
    origin_realm: str,
    apps: Iterable[ApplicationId | int],
    host_ip_addresses: Iterable[str],
    product_name: str,
) -> Capabilities:
    applications = tuple(as_application(app) for app in apps)
    return Capabilities(
        origin_host=origin_host,
        origin_realm=origin_realm,
        host_ip_addresses=tuple(host_ip_addresses),
        vendor_id=0,
        product_name=product_name,
        applications=applications,
        supported_vendor_ids=tuple(sorted({a.vendor_id for a in applications if a.vendor_id})),
        origin_state_id=int(time.time()) & 0xFFFFFFFF,
    )


class DiameterClient:
    """A Diameter client connection: CER/CEA, watchdog, requests both ways."""

    def __init__(
        self,
        peer: DiameterPeer,
        counters: DiameterCounters,
        logger: Any,
        watchdog_interval: float | None,
    ) -> None:
        self._peer = peer
        self.counters = counters
        """Message and error counts."""
        self._log = logger
        self._watchdog_interval = watchdog_interval
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        origin_host: str,
        origin_realm: str,
        apps: Iterable[ApplicationId | int],
        ssl: _ssl.SSLContext | None = None,
        *,
        handler: RequestHandler | None = None,
        server_hostname: str | None = None,
        watchdog_interval: float | None = 30.0,
        timeout: float = 5.0,  # noqa: ASYNC109
        node: str | None = None,
        logger: Any = None,
        interfaces: Mapping[int, str] = DEFAULT_INTERFACES,
        host_ip_addresses: Iterable[str] = (),
        product_name: str = "presence-ims",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> DiameterClient:
        """Connect, exchange capabilities and start the watchdog.

        ``handler`` receives requests the server sends (RTR, PNR).  Raises
        :class:`DiameterError` when the connection or the CER/CEA fails."""
        log = (logger or structlog.get_logger()).bind(node=node or origin_host)
        counters = DiameterCounters()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl, server_hostname=server_hostname if ssl else None
                )
        except (OSError, TimeoutError, _ssl.SSLError) as exc:
            raise DiameterError(f"cannot connect to {host}:{port}: {exc}") from exc
        counters.connections += 1
        local = _local_capabilities(
            origin_host, origin_realm, apps, host_ip_addresses, product_name
        )
        peer = DiameterPeer(
            reader,
            writer,
            local=local,
            handler=handler,
            accepting=False,
            counters=counters,
            logger=log,
            interfaces=interfaces,
            max_message_size=max_message_size,
        )
        client = cls(peer, counters, log, watchdog_interval)
        client._spawn(peer.run())
        try:
            cea = await peer.request(build_cer(peer.local_capabilities()), timeout=timeout)
            result = Result.of(cea)
            if result.code != DIAMETER_SUCCESS:
                raise DiameterError(f"CEA refused with {result.code}")
            remote = parse_capabilities(cea)
            common = common_applications(local.applications, remote.applications)
            if not common:
                raise DiameterError("no common application with the server")
        except DiameterError:
            await client._shutdown(dpr=False)
            raise
        peer.remote = remote
        peer.applications = common
        log.info("diameter_peer_up", peer=remote.origin_host)
        if watchdog_interval is not None:
            client._spawn(client._watchdog_loop(watchdog_interval))
        return client

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def peer(self) -> DiameterPeer:
        """The underlying connection."""
        return self._peer

    @property
    def remote(self) -> Capabilities:
        """The server's capabilities from its CEA."""
        if self._peer.remote is None:
            raise DiameterError("capabilities exchange not done")
        return self._peer.remote

    @property
    def is_closed(self) -> bool:
        """True once the connection is gone."""
        return self._peer.is_closed

    async def wait_closed(self) -> None:
        """Wait until the connection is gone (closed by either side)."""
        await self._peer.wait_closed()

    async def request(
        self, message: DiameterMessage, timeout: float = DEFAULT_REQUEST_TIMEOUT  # noqa: ASYNC109
    ) -> DiameterMessage:
        """Send a request, return its answer (DiameterError on timeout/close)."""
        return await self._peer.request(message, timeout=timeout)

    async def watchdog(
        self, timeout: float = DEFAULT_REQUEST_TIMEOUT  # noqa: ASYNC109
    ) -> DiameterMessage:
        """Send one DWR now and return the DWA."""
        local = self._peer.local
        dwr = build_dwr(local.origin_host, local.origin_realm, origin_state_id=local.origin_state_id)
        return await self._peer.request(dwr, timeout=timeout)

    async def _watchdog_loop(self, interval: float) -> None:
        while not self._peer.is_closed:
            await asyncio.sleep(interval)
            try:
                await self.watchdog(timeout=interval)
            except DiameterError as exc:
                if self._peer.is_closed:
                    return
                self.counters.errors += 1
                self._log.warning("diameter_watchdog_failed", reason=exc.reason)
                await self._peer.close(dpr=False)
                return

    async def close(self, grace: float = _CLOSE_TIMEOUT) -> None:
        """Send DPR, wait for DPA, close and await every task."""
        await self._shutdown(dpr=True, grace=grace)

    async def _shutdown(self, *, dpr: bool, grace: float = _CLOSE_TIMEOUT) -> None:
        await self._peer.close(dpr=dpr, grace=grace)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> DiameterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class DiameterServer:
    """A listening Diameter node (the HSS side of Cx and Sh)."""

    def __init__(
        self,
        host: str,
        port: int,
        origin_host: str,
        origin_realm: str,
        apps: Iterable[ApplicationId | int],
        handler: RequestHandler | None,
        ssl: _ssl.SSLContext | None = None,
        *,
        node: str | None = None,
        logger: Any = None,
        interfaces: Mapping[int, str] = DEFAULT_INTERFACES,
        host_ip_addresses: Iterable[str] = (),
        product_name: str = "presence-ims",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._local = _local_capabilities(
            origin_host, origin_realm, apps, host_ip_addresses, product_name
        )
        self._handler = handler
        self._ssl = ssl
        self._log = (logger or structlog.get_logger()).bind(node=node or origin_host)
        self._interfaces = interfaces
        self._max_message_size = max_message_size
        self._server: asyncio.Server | None = None
        self._connections: set[DiameterPeer] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._by_host: dict[str, DiameterPeer] = {}
        self.counters = DiameterCounters()
        """Message and error counts over every connection."""

    @property
    def port(self) -> int:
        """The bound TCP port (useful after starting on port 0)."""
        if self._server is None or not self._server.sockets:
            raise DiameterError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def peers(self) -> Mapping[str, DiameterPeer]:
        """Connected peers that completed CER/CEA, by Origin-Host."""
        return dict(self._by_host)

    async def start(self) -> None:
        """Start listening."""
        if self._server is not None:
            raise DiameterError("server already started")
        self._server = await asyncio.start_server(
            self._on_connection, self._host, self._requested_port, ssl=self._ssl
        )
        self._log.info("diameter_listening", host=self._host, port=self.port)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.counters.connections += 1
        peer = DiameterPeer(
            reader,
            writer,
            local=self._local,
            handler=self._handler,
            accepting=True,
            counters=self.counters,
            logger=self._log,
            interfaces=self._interfaces,
            max_message_size=self._max_message_size,
            on_capabilities=self._register,
        )
        self._connections.add(peer)
        try:
            await peer.run()
        finally:
            self._connections.discard(peer)
            host = peer.remote_host
            if host is not None and self._by_host.get(host) is peer:
                del self._by_host[host]
            if task is not None:
                self._tasks.discard(task)

    def _register(self, peer: DiameterPeer) -> None:
        host = peer.remote_host
        if host is not None:
            self._by_host[host] = peer

    async def request(
        self,
        peer_origin_host: str,
        message: DiameterMessage,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,  # noqa: ASYNC109
    ) -> DiameterMessage:
        """Send a request to the connected peer with that Origin-Host.

        Raises :class:`DiameterError` when no such peer is connected
        (DIAMETER_UNABLE_TO_DELIVER in spirit), on timeout or close."""
        peer = self._by_host.get(peer_origin_host)
        if peer is None or peer.is_closed:
            raise DiameterError(f"no connection to {peer_origin_host}")
        return await peer.request(message, timeout=timeout)

    async def stop(self, grace: float = _CLOSE_TIMEOUT) -> None:
        """Stop listening, DPR every peer, close and await every task."""
        if self._server is None:
            return
        self._server.close()
        await asyncio.gather(
            *(peer.close(grace=grace) for peer in list(self._connections)),
            return_exceptions=True,
        )
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self._log.info("diameter_stopped")

    async def __aenter__(self) -> DiameterServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
