"""The protected Gm transport: SIP over ESP emulated in software (TS 33.203, RFC 4303).

After sec-agree, UE and P-CSCF each have a protected client port (``port_c``,
requests leave from it and their responses come back to it) and a protected
server port (``port_s``, requests arrive on it).  Every packet between them is
an ESP packet (``security/esp.py``) whose payload is an 8-byte UDP header
carrying the real ports followed by the SIP bytes (next header 17).

Receiving, a packet is delivered only when all of these hold, and is otherwise
dropped, counted in :attr:`drops` by kind and logged at info with interface Gm:

1. it is long enough (``short``) and its SPI names an inbound SA of the
   :class:`SADatabase` (``unknown_spi``);
2. that SA's source is the packet's source address and port (``wrong_source``)
   and its destination port is the local port it arrived on (``wrong_port``);
3. the SA is alive (``expired``), the sequence number is fresh (``replay``),
   the ICV verifies (``bad_icv``) and the padding is right (``bad_padding``);
4. the payload is UDP (``next_header``), well formed (``bad_udp``) and its
   ports are the outer ones (``wrong_port``).

Sending, the local port is the one that has an outbound SA to the destination
(``port_c`` -> peer ``port_s`` for requests, ``port_s`` -> peer ``port_c`` for
responses); without one the endpoint hears ``send_failed``.  A re-registration
sets up new SAs on new client ports (TS 33.203 section 7.4): ``add_client_port``
opens one beside the old, requests leave from the newest client port that has
an SA, and ``remove_client_port`` closes the old one once its SAs are gone.

:class:`EspUdpTransport` carries each ESP packet in a UDP datagram between the
protected ports.  :class:`EspTcpTransport` carries them over TCP connections
between the same ports, each packet prefixed by its length (2 bytes, big
endian); any dropped packet closes the connection, since the SIP stream on it
can no longer be trusted.

Which messages the P-CSCF accepts on which port is the P-CSCF's business: the
transport only guarantees that what it delivers was authenticated by an SA.
SA lifetimes use ``clock()`` (the event loop's clock unless given).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import socket
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import structlog

from ..security.esp import (
    NEXT_HEADER_UDP,
    EspError,
    SADatabase,
    udp_unwrap,
    udp_wrap,
)
from ..sip.transaction import Address
from .base import Receiver
from .udp import RCVBUF_BYTES

__all__ = ["EspTcpTransport", "EspUdpTransport", "Tap"]

Endpoint = tuple[str, int]
Tap = Callable[[str, Endpoint, Endpoint, bytes], None]
"""``tap(direction, src, dst, packet)``: sees every ESP packet, ``"in"`` or ``"out"``."""

INTERFACE: Final = "Gm"
CONNECT_TIMEOUT: Final = 5.0
MAX_CHUNK: Final = 65000
"""SIP bytes per ESP packet on TCP (the packet must fit the 2-byte length prefix)."""

_LENGTH = struct.Struct(">H")
_NULL_LOGGER: Any = structlog.get_logger("presence_ims.transport.esp")
_flow_ids = itertools.count(1)


class _Drop(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _norm(host: str) -> str:
    """IP text in the form the SAs use (``ipsec.make_sa_set`` normalises the same way)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host


def _wildcard(host: str) -> bool:
    return _norm(host) in ("0.0.0.0", "::")


class _EspBase:
    """The SA logic shared by both transports: open inbound, seal outbound, count drops."""

    via_transport: str

    def __init__(
        self,
        receiver: Receiver,
        host: str,
        port_c: int,
        port_s: int,
        sadb: SADatabase,
        *,
        name: str,
        bind_host: str | None,
        logger: Any,
        clock: Callable[[], float] | None,
        tap: Tap | None,
    ) -> None:
        if port_c == port_s and port_c != 0:
            raise ValueError(f"port-c and port-s must differ (both {port_c})")
        self.receiver = receiver
        self.name = name
        self.host = host
        """Address advertised in Via and used as the local end of the SAs."""
        self.bind_host = bind_host or host
        """Address the sockets bind to (``host`` unless given)."""
        self._client_ports = [port_c]  # oldest first; the last one is port_c
        self.port_s = port_s
        """Protected server port (bound; read after :meth:`start` when 0 was asked)."""
        self.sadb = sadb
        self.drops: Counter[str] = Counter()
        """Dropped inbound packets by kind (see the module docstring)."""
        self.log: Any = (logger or _NULL_LOGGER).bind(interface=INTERFACE, transport=name)
        self.tap = tap
        self._clock = clock

    @property
    def port(self) -> int:
        """The port written in Via and Contact: the protected server port."""
        return self.port_s

    @property
    def port_c(self) -> int:
        """The newest protected client port (read after :meth:`start` when 0 was asked)."""
        return self._client_ports[-1]

    @property
    def client_ports(self) -> tuple[int, ...]:
        """Every protected client port open now, oldest first (see ``add_client_port``)."""
        return tuple(self._client_ports)

    def _now(self) -> float:
        if self._clock is None:
            self._clock = asyncio.get_running_loop().time
        return self._clock()

    def _local(self, port: int) -> Endpoint:
        return (_norm(self.host), port)

    def _is_local(self, end: Endpoint, local_port: int) -> bool:
        """Whether an SA's ``dst`` is us, on the port the packet arrived on."""
        host, port = end
        if port != local_port:
            return False
        return _wildcard(self.bind_host) or host in (_norm(self.host), _norm(self.bind_host))

    def _open(self, packet: bytes, source: Endpoint, local_port: int) -> bytes:
        """The SIP bytes of an inbound packet, or :class:`_Drop`."""
        if len(packet) < 8:
            raise _Drop("short", f"{len(packet)} bytes is too short for ESP")
        (spi,) = struct.unpack_from(">I", packet)
        sa = self.sadb.lookup(spi)
        if sa is None:
            raise _Drop("unknown_spi", f"no inbound SA with SPI {spi}")
        if sa.src != source:
            raise _Drop("wrong_source", f"SPI {spi} belongs to {sa.src[0]}:{sa.src[1]}")
        if not self._is_local(sa.dst, local_port):
            raise _Drop("wrong_port", f"SPI {spi} is for {sa.dst[0]}:{sa.dst[1]}, not {local_port}")
        try:
            inbound = self.sadb.unprotect(packet, self._now(), source=source)
            if inbound.next_header != NEXT_HEADER_UDP:
                raise _Drop("next_header", f"next header {inbound.next_header}, not UDP")
            inner_src, inner_dst, data = udp_unwrap(inbound.payload)
        except EspError as exc:
            raise _Drop(exc.kind, exc.reason) from None
        if (inner_src, inner_dst) != (source[1], local_port):
            raise _Drop(
                "wrong_port",
                f"inner ports {inner_src}->{inner_dst} are not {source[1]}->{local_port}",
            )
        return data

    def _dropped(self, kind: str, reason: str, source: Endpoint, local_port: int) -> None:
        self.drops[kind] += 1
        self.log.info(
            "esp_dropped",
            kind=kind,
            reason=reason,
            source=f"{source[0]}:{source[1]}",
            local_port=local_port,
        )

    def _route(self, destination: Endpoint) -> int | None:
        """Our port that has an outbound SA to ``destination``, newest client port first."""
        for port in (*reversed(self._client_ports), self.port_s):
            if self.sadb.lookup_outbound(self._local(port), destination) is not None:
                return port
        return None

    def _seal(self, data: bytes, local_port: int, destination: Endpoint) -> bytes:
        """One ESP packet carrying ``data`` (raises :class:`EspError`)."""
        payload = udp_wrap(local_port, destination[1], data)
        return self.sadb.protect(self._local(local_port), destination, payload, self._now())

    def _no_sa(self, destination: Endpoint) -> str:
        return (
            f"no SA to {destination[0]}:{destination[1]} "
            f"from {self.host} ports {'/'.join(map(str, self._client_ports))}/{self.port_s}"
        )


# -- UDP ------------------------------------------------------------------------------


class _Side(asyncio.DatagramProtocol):
    """One of the two UDP sockets."""

    def __init__(self, owner: EspUdpTransport) -> None:
        self.owner = owner
        self.local_port = 0
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner._on_datagram(self.local_port, data, (_norm(addr[0]), addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        self.owner.errors += 1


def _same(side: _Side) -> _Side:
    return side


class EspUdpTransport(_EspBase):
    """SIP over ESP over UDP: two sockets, the protected client and server ports."""

    via_transport = "UDP"

    def __init__(
        self,
        receiver: Receiver,
        host: str,
        port_c: int,
        port_s: int,
        sadb: SADatabase,
        *,
        name: str = "esp-udp",
        bind_host: str | None = None,
        logger: Any = None,
        clock: Callable[[], float] | None = None,
        tap: Tap | None = None,
    ) -> None:
        super().__init__(
            receiver,
            host,
            port_c,
            port_s,
            sadb,
            name=name,
            bind_host=bind_host,
            logger=logger,
            clock=clock,
            tap=tap,
        )
        self.errors = 0
        """ICMP errors reported on the sockets."""
        self._sides: dict[int, _Side] = {}

    async def start(self) -> None:
        """Bind both sockets; ``port_c`` and ``port_s`` then hold the bound ports."""
        if self._clock is None:
            self._clock = asyncio.get_running_loop().time
        side_c = await self._bind(self.port_c)
        try:
            side_s = await self._bind(self.port_s)
        except OSError:
            assert side_c.transport is not None
            side_c.transport.close()
            raise
        self._client_ports = [side_c.local_port]
        self.port_s = side_s.local_port
        self._sides = {side_c.local_port: side_c, side_s.local_port: side_s}

    async def _bind(self, port: int) -> _Side:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.bind_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RCVBUF_BYTES)
            sock.bind((self.bind_host, port))
        except OSError:
            sock.close()
            raise
        side = _Side(self)
        side.local_port = sock.getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(
            functools.partial(_same, side), sock=sock
        )
        side.transport = transport
        return side

    async def add_client_port(self, port: int = 0) -> int:
        """Open another protected client port and make it ``port_c``; the bound port.

        For a re-registration, which sets up new SAs on a new client port (TS
        33.203 section 7.4) while the old SAs still carry traffic.  Requests
        leave from the newest client port that has an SA to their destination.
        """
        if not self._sides:
            raise RuntimeError("start the transport first")
        side = await self._bind(port)
        self._sides[side.local_port] = side
        self._client_ports.append(side.local_port)
        return side.local_port

    async def remove_client_port(self, port: int) -> None:
        """Close a client port opened before (its SAs are gone); not the only one."""
        if port not in self._client_ports or len(self._client_ports) == 1:
            raise ValueError(f"{port} is not a client port that can be closed")
        self._client_ports.remove(port)
        side = self._sides.pop(port)
        if side.transport is not None:
            side.transport.close()
            side.transport = None

    def _on_datagram(self, local_port: int, packet: bytes, source: Endpoint) -> None:
        if self.tap is not None:
            self.tap("in", source, self._local(local_port), packet)
        try:
            data = self._open(packet, source, local_port)
        except _Drop as drop:
            self._dropped(drop.kind, drop.reason, source, local_port)
            return
        self.receiver.datagram_received(data, Address(self.name, source[0], source[1]))

    def send(self, data: bytes, destination: Address, transaction: object = None) -> None:
        """Protect ``data`` on the outbound SA to ``destination`` and send it from its port."""
        dst = (_norm(destination.host), destination.port)
        local_port = self._route(dst)
        if local_port is None:
            self.receiver.send_failed(destination, self._no_sa(dst), transaction)
            return
        side = self._sides.get(local_port)
        if side is None or side.transport is None or side.transport.is_closing():
            self.receiver.send_failed(destination, "ESP transport closed", transaction)
            return
        try:
            packet = self._seal(data, local_port, dst)
        except EspError as exc:
            self.receiver.send_failed(destination, f"ESP: {exc}", transaction)
            return
        if self.tap is not None:
            self.tap("out", self._local(local_port), dst, packet)
        try:
            side.transport.sendto(packet, dst)
        except (OSError, ValueError) as exc:
            self.receiver.send_failed(destination, f"UDP send failed: {exc}", transaction)

    def send_raw(self, packet: bytes, local_port: int, destination: Endpoint) -> None:
        """Send bytes unchanged from one of our ports (fault injection in tests and tools).

        Nothing is protected: the receiving side drops whatever no SA authenticates.
        """
        side = self._sides[local_port]
        assert side.transport is not None
        side.transport.sendto(packet, destination)

    async def close(self) -> None:
        for side in self._sides.values():
            if side.transport is not None:
                side.transport.close()
                side.transport = None
        self._sides = {}


# -- TCP ------------------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One TCP connection between a protected port of ours and one of the peer's."""

    def __init__(self, owner: EspTcpTransport) -> None:
        self.owner = owner
        self.flow = next(_flow_ids)
        self.transport: asyncio.Transport | None = None
        self.peer: Endpoint = ("", 0)
        self.local_port = 0
        self.address = Address(owner.name, "", 0, self.flow)
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = (_norm(host), port)
        self.local_port = transport.get_extra_info("sockname")[1]
        self.address = Address(self.owner.name, self.peer[0], self.peer[1], self.flow)
        self.owner._register(self)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= _LENGTH.size and self.transport is not None:
            (length,) = _LENGTH.unpack_from(buffer)
            if len(buffer) < _LENGTH.size + length:
                return
            packet = bytes(buffer[_LENGTH.size : _LENGTH.size + length])
            del buffer[: _LENGTH.size + length]
            if not self.owner._on_packet(self, packet):
                self.transport.close()
                self.transport = None
                buffer.clear()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.owner._unregister(self)
        self.owner.receiver.stream_closed(self.address)

    def alive(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


class EspTcpTransport(_EspBase):
    """SIP over ESP over TCP between the protected ports.

    Listens on ``port_s``; connects from ``port_c`` (bound with SO_REUSEADDR,
    so one client port serves connections to many peers) to the peer's
    ``port_s``.  Connections are reused in both directions; a response goes
    back on the connection its request came in on.
    """

    via_transport = "TCP"

    def __init__(
        self,
        receiver: Receiver,
        host: str,
        port_c: int,
        port_s: int,
        sadb: SADatabase,
        *,
        name: str = "esp-tcp",
        bind_host: str | None = None,
        logger: Any = None,
        clock: Callable[[], float] | None = None,
        tap: Tap | None = None,
    ) -> None:
        super().__init__(
            receiver,
            host,
            port_c,
            port_s,
            sadb,
            name=name,
            bind_host=bind_host,
            logger=logger,
            clock=clock,
            tap=tap,
        )
        self._server: asyncio.base_events.Server | None = None
        self._reservations: dict[int, socket.socket] = {}
        self._by_flow: dict[int, _Conn] = {}
        self._by_route: dict[tuple[int, Endpoint], _Conn] = {}
        self._connecting: dict[tuple[int, Endpoint], list[tuple[bytes, Address, object]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._family = socket.AF_INET6 if ":" in self.bind_host else socket.AF_INET

    async def start(self) -> None:
        """Reserve ``port_c`` and listen on ``port_s``; both are then read back."""
        loop = asyncio.get_running_loop()
        if self._clock is None:
            self._clock = loop.time
        reservation = self._reserve(self.port_c)
        try:
            self._server = await loop.create_server(
                lambda: _Conn(self), self.bind_host, self.port_s, reuse_address=True
            )
        except OSError:
            reservation.close()
            raise
        port_c = reservation.getsockname()[1]
        self._reservations = {port_c: reservation}
        self._client_ports = [port_c]
        self.port_s = self._server.sockets[0].getsockname()[1]

    def _reserve(self, port: int) -> socket.socket:
        """A bound, never listening socket that holds a client port.

        Each outgoing connection binds the same port too (SO_REUSEADDR lets
        sockets share a port that nobody listens on), so one client port serves
        connections to many peers.
        """
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.bind_host, port))
        except OSError:
            sock.close()
            raise
        return sock

    async def add_client_port(self, port: int = 0) -> int:
        """Reserve another protected client port and make it ``port_c``; the bound port.

        See :meth:`EspUdpTransport.add_client_port` (re-registration).
        """
        if self._server is None:
            raise RuntimeError("start the transport first")
        sock = self._reserve(port)
        bound = int(sock.getsockname()[1])
        self._reservations[bound] = sock
        self._client_ports.append(bound)
        return bound

    async def remove_client_port(self, port: int) -> None:
        """Release a client port and close its connections; not the only one."""
        if port not in self._client_ports or len(self._client_ports) == 1:
            raise ValueError(f"{port} is not a client port that can be closed")
        self._client_ports.remove(port)
        self._reservations.pop(port).close()
        for conn in list(self._by_flow.values()):
            if conn.local_port == port and conn.transport is not None:
                conn.transport.close()

    @property
    def connections(self) -> int:
        return len(self._by_flow)

    def _register(self, conn: _Conn) -> None:
        self._by_flow[conn.flow] = conn
        self._by_route[(conn.local_port, conn.peer)] = conn

    def _unregister(self, conn: _Conn) -> None:
        self._by_flow.pop(conn.flow, None)
        key = (conn.local_port, conn.peer)
        if self._by_route.get(key) is conn:
            del self._by_route[key]

    def _on_packet(self, conn: _Conn, packet: bytes) -> bool:
        """Deliver one inbound packet; False when it was dropped (the connection closes)."""
        if self.tap is not None:
            self.tap("in", conn.peer, self._local(conn.local_port), packet)
        try:
            data = self._open(packet, conn.peer, conn.local_port)
        except _Drop as drop:
            self._dropped(drop.kind, drop.reason, conn.peer, conn.local_port)
            return False
        self.receiver.stream_received(data, conn.address)
        return True

    def send(self, data: bytes, destination: Address, transaction: object = None) -> None:
        """Protect and write ``data`` on a connection to ``destination`` (opened if needed)."""
        dst = (_norm(destination.host), destination.port)
        conn = self._by_flow.get(destination.flow) if destination.flow is not None else None
        if conn is not None and conn.alive():
            self._write(conn, data, destination, transaction)
            return
        local_port = self._route(dst)
        if local_port is None:
            self.receiver.send_failed(destination, self._no_sa(dst), transaction)
            return
        conn = self._by_route.get((local_port, dst))
        if conn is not None and conn.alive():
            self._write(conn, data, destination, transaction)
            return
        if local_port not in self._reservations or self._server is None:
            self.receiver.send_failed(
                destination, f"no connection from {dst[0]}:{dst[1]} to port-s", transaction
            )
            return
        key = (local_port, dst)
        pending = self._connecting.get(key)
        if pending is not None:
            pending.append((data, destination, transaction))
            return
        self._connecting[key] = [(data, destination, transaction)]
        task = asyncio.get_running_loop().create_task(self._connect(local_port, dst))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _write(self, conn: _Conn, data: bytes, destination: Address, transaction: object) -> None:
        frames: list[bytes] = []
        try:
            for start in range(0, max(len(data), 1), MAX_CHUNK):
                packet = self._seal(data[start : start + MAX_CHUNK], conn.local_port, conn.peer)
                if self.tap is not None:
                    self.tap("out", self._local(conn.local_port), conn.peer, packet)
                frames.append(_LENGTH.pack(len(packet)) + packet)
        except EspError as exc:
            self.receiver.send_failed(destination, f"ESP: {exc}", transaction)
            return
        assert conn.transport is not None
        conn.transport.write(b"".join(frames))

    async def _connect(self, local_port: int, dst: Endpoint) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind((self.bind_host, local_port))
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.sock_connect(sock, dst)
                _, conn = await loop.create_connection(lambda: _Conn(self), sock=sock)
        except (OSError, TimeoutError) as exc:
            sock.close()
            for _, destination, transaction in self._connecting.pop((local_port, dst), []):
                self.receiver.send_failed(destination, f"connect failed: {exc}", transaction)
            return
        except asyncio.CancelledError:
            sock.close()
            raise
        for data, destination, transaction in self._connecting.pop((local_port, dst), []):
            if conn.alive():
                self._write(conn, data, destination, transaction)
            else:
                self.receiver.send_failed(destination, "connection closed", transaction)

    def close_flow(self, flow: int | None) -> None:
        """Close the connection with this flow id (as ``StreamTransport.close_flow``)."""
        conn = self._by_flow.get(flow) if flow is not None else None
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    def close_peer(self, host: str) -> int:
        """Close every connection with ``host`` (its SAs were removed); how many."""
        host = _norm(host)
        conns = [c for c in self._by_flow.values() if c.peer[0] == host]
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        return len(conns)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._by_flow.values()):
            if conn.transport is not None:
                conn.transport.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        for sock in self._reservations.values():
            sock.close()
        self._reservations = {}
