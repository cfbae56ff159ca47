"""SIP over UDP: one socket both receives and sends, so the source port is the SIP port."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any

from ..sip.transaction import Address
from .base import Receiver

RCVBUF_BYTES = 4 * 1024 * 1024
"""The default 256 KiB receive buffer drops datagrams under load (docs/performance.md)."""


SOURCE_CACHE_SIZE = 4096
"""Source addresses remembered per socket (an :class:`Address` is immutable: one per peer will do)."""

MAX_DATAGRAM = 65536
"""Receive buffer for one datagram: no UDP datagram is larger (65,507 bytes of payload over IPv4)."""


READS_PER_TURN = 64
"""Datagrams read per readiness event at most, so that one busy socket does not
starve the rest of the event loop (timers, other sockets)."""

SEND_BACKLOG_MAX = 4096
"""Datagrams queued while the socket's send buffer is full; beyond that a send fails."""


def bind_udp(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to (host, port), with :data:`RCVBUF_BYTES` of
    receive and send buffer (OSError when it cannot be bound)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RCVBUF_BYTES)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _Protocol:
    """What the transport does with each datagram read: the endpoint's ``datagram_received``
    with an :class:`Address` per source (cached)."""

    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner
        self._sources: dict[tuple[Any, ...], Address] = {}

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        owner = self.owner
        source = self._sources.get(addr)
        if source is None or source.transport != owner.name:
            if len(self._sources) >= SOURCE_CACHE_SIZE:
                self._sources.clear()
            source = self._sources[addr] = Address(owner.name, addr[0], addr[1])
        owner.receiver.datagram_received(data, source)


class UdpTransport:
    """A bound UDP socket feeding an endpoint.

    The socket is served with ``loop.add_reader`` rather than asyncio's datagram
    transport: each readiness event reads every waiting datagram (up to
    :data:`READS_PER_TURN`), as Kamailio's UDP receivers loop on ``recvfrom``, instead
    of one event loop turn per datagram; and a datagram is sent with one ``sendto``,
    queued only while the kernel's send buffer is full (docs/performance.md).
    """

    via_transport = "UDP"

    def __init__(self, receiver: Receiver, host: str, port: int, *, name: str = "udp") -> None:
        self.receiver = receiver
        self.name = name
        self.host = host
        self.port = port
        self.errors = 0
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._protocol: _Protocol | None = None
        self._backlog: deque[tuple[bytes, tuple[str, int], Address, object]] = deque()

    async def start(self) -> None:
        await self._open(bind_udp(self.host, self.port))

    def _make_protocol(self) -> _Protocol:
        return _Protocol(self)

    async def _open(self, sock: socket.socket) -> None:
        """Serve the bound socket ``sock`` on the running loop."""
        sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._protocol = self._make_protocol()
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._loop.add_reader(sock.fileno(), self._read_ready)

    def _read_ready(self) -> None:
        sock = self._sock
        protocol = self._protocol
        if sock is None or protocol is None:
            return
        recvfrom = sock.recvfrom
        deliver = protocol.datagram_received
        for _ in range(READS_PER_TURN):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error reported on the socket (port unreachable ...)
                self.errors += 1
                continue
            deliver(data, addr)

    def send(self, data: bytes, destination: Address, transaction: object = None) -> None:
        sock = self._sock
        if sock is None:
            self.receiver.send_failed(destination, "UDP transport closed", transaction)
            return
        addr = (destination.host, destination.port)
        if self._backlog:
            self._queue(data, addr, destination, transaction)
            return
        try:
            sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._queue(data, addr, destination, transaction)
        except (OSError, ValueError, OverflowError) as exc:
            self._failed(destination, f"UDP send failed: {exc}", transaction)

    def _failed(self, destination: Address, reason: str, transaction: object) -> None:
        """A datagram that will not leave: counted, and reported to the transaction."""
        self.errors += 1
        self.receiver.send_failed(destination, reason, transaction)

    def _queue(
        self, data: bytes, addr: tuple[str, int], destination: Address, transaction: object
    ) -> None:
        if len(self._backlog) >= SEND_BACKLOG_MAX:
            self._failed(destination, "UDP send buffer full", transaction)
            return
        if not self._backlog and self._loop is not None and self._sock is not None:
            self._loop.add_writer(self._sock.fileno(), self._write_ready)
        self._backlog.append((data, addr, destination, transaction))

    def _write_ready(self) -> None:
        sock = self._sock
        backlog = self._backlog
        while backlog and sock is not None:
            data, addr, destination, transaction = backlog[0]
            try:
                sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except (OSError, ValueError, OverflowError) as exc:
                self._failed(destination, f"UDP send failed: {exc}", transaction)
            backlog.popleft()
        if self._loop is not None and sock is not None:
            self._loop.remove_writer(sock.fileno())

    async def close(self) -> None:
        """Close the socket (the port can be bound again when this returns); datagrams
        still queued for a full send buffer are dropped."""
        sock, loop = self._sock, self._loop
        self._sock = None
        if sock is None:
            return
        if loop is not None:
            loop.remove_reader(sock.fileno())
            if self._backlog:
                loop.remove_writer(sock.fileno())
        self._backlog.clear()
        sock.close()
