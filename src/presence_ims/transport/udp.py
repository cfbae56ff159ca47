"""SIP over UDP: one socket both receives and sends, so the source port is the SIP port."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from ..sip.transaction import Address
from .base import Receiver

RCVBUF_BYTES = 4 * 1024 * 1024
"""The default 256 KiB receive buffer drops datagrams under load (docs/performance.md)."""


SOURCE_CACHE_SIZE = 4096
"""Source addresses remembered per socket (an :class:`Address` is immutable: one per peer will do)."""

MAX_DATAGRAM = 65536
"""Receive buffer for one datagram: no UDP datagram is larger (65,507 bytes of payload over IPv4)."""


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner
        self.closed = asyncio.get_running_loop().create_future()
        self._sources: dict[tuple[Any, ...], Address] = {}

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        owner = self.owner
        source = self._sources.get(addr)
        if source is None or source.transport != owner.name:
            if len(self._sources) >= SOURCE_CACHE_SIZE:
                self._sources.clear()
            source = self._sources[addr] = Address(owner.name, addr[0], addr[1])
        owner.receiver.datagram_received(data, source)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        self.owner.errors += 1


class UdpTransport:
    """A bound UDP socket feeding an endpoint."""

    via_transport = "UDP"

    def __init__(self, receiver: Receiver, host: str, port: int, *, name: str = "udp") -> None:
        self.receiver = receiver
        self.name = name
        self.host = host
        self.port = port
        self.errors = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Protocol | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RCVBUF_BYTES)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        await self._open(sock)

    def _make_protocol(self) -> _Protocol:
        return _Protocol(self)

    async def _open(self, sock: socket.socket) -> None:
        """Serve the bound socket ``sock`` on the running loop."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(self._make_protocol, sock=sock)
        if isinstance(loop, asyncio.SelectorEventLoop) and hasattr(transport, "max_size"):
            # asyncio's selector transport receives each datagram into a new buffer of
            # ``max_size`` (256 KiB), which costs about 15 us per datagram here, more than
            # the rest of the read (docs/performance.md); 64 KiB holds any datagram.
            transport.max_size = MAX_DATAGRAM
        self._transport = transport
        self._protocol = protocol
        self.port = sock.getsockname()[1]

    def send(self, data: bytes, destination: Address, transaction: object = None) -> None:
        if self._transport is None or self._transport.is_closing():
            self.receiver.send_failed(destination, "UDP transport closed", transaction)
            return
        try:
            self._transport.sendto(data, (destination.host, destination.port))
        except (OSError, ValueError) as exc:
            self.receiver.send_failed(destination, f"UDP send failed: {exc}", transaction)

    async def close(self) -> None:
        """Close the socket and wait until it is released (the port can be bound again)."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            if self._protocol is not None:
                await self._protocol.closed
