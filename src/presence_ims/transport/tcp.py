"""SIP over TCP and TLS: a listener plus a table of connections, reused both ways.

Each connection has a flow id; responses go back on the connection the request
came in on (RFC 3261 18.2.2) and requests to a peer reuse any open connection
to that peer's address before opening a new one.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl as ssl_module
from typing import Any, cast

from ..sip.transaction import Address
from .base import Receiver

_flow_ids = itertools.count(1)
CONNECT_TIMEOUT = 5.0


class _Conn(asyncio.Protocol):
    def __init__(self, owner: StreamTransport, *, outbound_key: tuple[str, int] | None) -> None:
        self.owner = owner
        self.flow = next(_flow_ids)
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = None
        self.outbound_key = outbound_key

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they quack the same
        self.transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Address(self.owner.name, host, port, self.flow)
        self.owner._register(self)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self.owner.receiver.stream_received(data, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._unregister(self)
        if self.peer is not None:
            self.owner.receiver.stream_closed(self.peer)


class StreamTransport:
    """TCP (``ssl=None``) or TLS listener and connection pool of one endpoint."""

    def __init__(
        self,
        receiver: Receiver,
        host: str,
        port: int,
        *,
        name: str = "tcp",
        server_ssl: ssl_module.SSLContext | None = None,
        client_ssl: ssl_module.SSLContext | None = None,
        listen: bool = True,
    ) -> None:
        self.receiver = receiver
        self.name = name
        self.via_transport = "TLS" if server_ssl or client_ssl else "TCP"
        self.host = host
        self.port = port
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._listen = listen
        self._server: asyncio.base_events.Server | None = None
        self._by_flow: dict[int, _Conn] = {}
        self._by_addr: dict[tuple[str, int], _Conn] = {}
        self._connecting: dict[tuple[str, int], list[tuple[bytes, Address, object]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if not self._listen:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Conn(self, outbound_key=None), self.host, self.port, ssl=self._server_ssl
        )
        self.port = self._server.sockets[0].getsockname()[1]

    # -- connection table ---------------------------------------------------------
    def _register(self, conn: _Conn) -> None:
        self._by_flow[conn.flow] = conn
        assert conn.peer is not None
        key = conn.outbound_key or (conn.peer.host, conn.peer.port)
        self._by_addr.setdefault(key, conn)

    def _unregister(self, conn: _Conn) -> None:
        self._by_flow.pop(conn.flow, None)
        for key, value in list(self._by_addr.items()):
            if value is conn:
                del self._by_addr[key]

    def peer_names(self, flow: int | None) -> list[str]:
        """Names in the verified certificate of the peer on this connection (TLS only)."""
        conn = self._by_flow.get(flow) if flow is not None else None
        if conn is None or conn.transport is None:
            return []
        ssl_object = conn.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return []
        from ..security.pki import peer_names

        return peer_names(ssl_object.getpeercert())

    @property
    def connections(self) -> int:
        return len(self._by_flow)

    def close_flow(self, flow: int | None) -> None:
        conn = self._by_flow.get(flow) if flow is not None else None
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    # -- sending --------------------------------------------------------------------
    def send(self, data: bytes, destination: Address, transaction: object = None) -> None:
        conn = self._by_flow.get(destination.flow) if destination.flow is not None else None
        if conn is None:
            conn = self._by_addr.get((destination.host, destination.port))
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
            return
        key = (destination.host, destination.port)
        pending = self._connecting.get(key)
        if pending is not None:
            pending.append((data, destination, transaction))
            return
        self._connecting[key] = [(data, destination, transaction)]
        task = asyncio.get_running_loop().create_task(self._connect(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, key: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            kwargs: dict[str, Any] = {}
            if self._client_ssl is not None:
                kwargs = {"ssl": self._client_ssl, "server_hostname": key[0]}
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, conn = await loop.create_connection(
                    lambda: _Conn(self, outbound_key=key), key[0], key[1], **kwargs
                )
        except Exception as exc:  # OSError, TimeoutError, SSLError ... all mean "not sent"
            for _, dest, txn in self._connecting.pop(key, []):
                self.receiver.send_failed(dest, f"connect failed: {exc}", txn)
            return
        queued = self._connecting.pop(key, [])
        assert conn.transport is not None
        for data, _, _ in queued:
            conn.transport.write(data)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._by_flow.values()):
            if conn.transport is not None:
                conn.transport.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
