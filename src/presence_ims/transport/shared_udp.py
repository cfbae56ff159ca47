"""SIP over one UDP socket read by several worker processes (the PS's workers, D13).

Every worker reads the shared socket; a datagram another worker owns (``route``)
goes to that worker's inbox, a Unix datagram socket, with its source address in
front. Everything a worker sends leaves from the shared socket, so peers see one
address and port (RFC 3581: a response leaves from where its request came in).

Inbox datagrams: ``D<host> <port>\\n<SIP message>`` (a handed-over datagram) or
``C<json>`` (a control message from the parent process, given to ``on_control``).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Sequence
from typing import Any

from ..sip.transaction import Address
from .base import Receiver
from .udp import MAX_DATAGRAM, RCVBUF_BYTES, _Protocol

INBOX_READS_PER_TURN = 256
"""Inbox datagrams read per readiness callback before the loop serves others."""


def inbox_pair() -> tuple[socket.socket, socket.socket]:
    """(sending end, receiving end) of a worker's inbox; both non-blocking."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for sock, option in ((sender, socket.SO_SNDBUF), (receiver, socket.SO_RCVBUF)):
        sock.setsockopt(socket.SOL_SOCKET, option, RCVBUF_BYTES)
        sock.setblocking(False)
    return sender, receiver


def control_message(payload: dict[str, Any]) -> bytes:
    return b"C" + json.dumps(payload).encode()


def bind_shared(host: str, port: int) -> socket.socket:
    """The UDP socket the workers share (bound before they start)."""
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


class _SharedProtocol(_Protocol):
    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        owner: SharedUdpTransport = self.owner  # type: ignore[assignment]
        worker = owner.route(data)
        if worker == owner.index:
            super().datagram_received(data, addr)
        else:
            owner.hand_over(worker, data, addr)


class SharedUdpTransport:
    """One worker's UDP transport: the shared socket, its own inbox, the others' inboxes."""

    via_transport = "UDP"

    def __init__(
        self,
        receiver: Receiver,
        sock: socket.socket,
        *,
        index: int,
        inbox: socket.socket,
        outboxes: Sequence[socket.socket],
        route: Callable[[bytes], int],
        host: str | None = None,
        on_control: Callable[[dict[str, Any]], None] | None = None,
        name: str = "udp",
    ) -> None:
        self.receiver = receiver
        self.name = name
        self.index = index
        self.route = route
        self.on_control = on_control
        self._sock = sock
        self._inbox = inbox
        self._outboxes = list(outboxes)
        bound = sock.getsockname()
        self.host = host or bound[0]
        self.port = bound[1]
        self.errors = 0
        self.handed_over = 0
        self.hand_over_dropped = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _SharedProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _SharedProtocol(self), sock=self._sock  # type: ignore[arg-type]
        )
        if isinstance(loop, asyncio.SelectorEventLoop) and hasattr(transport, "max_size"):
            transport.max_size = MAX_DATAGRAM  # see UdpTransport.start
        self._transport = transport
        self._protocol = protocol
        loop.add_reader(self._inbox.fileno(), self._read_inbox)

    # -- handing over -------------------------------------------------------------------
    def hand_over(self, worker: int, data: bytes, addr: tuple[Any, ...]) -> None:
        head = f"D{addr[0]} {addr[1]}\n".encode()
        try:
            self._outboxes[worker].send(head + data)
            self.handed_over += 1
        except OSError:  # the other worker's inbox is full (or gone): a lost datagram
            self.hand_over_dropped += 1

    def _read_inbox(self) -> None:
        inbox = self._inbox
        for _ in range(INBOX_READS_PER_TURN):
            try:
                data = inbox.recv(MAX_DATAGRAM + 512)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.errors += 1
                return
            if data[:1] == b"D":
                newline = data.find(b"\n")
                host, _, port = data[1:newline].decode("ascii", "replace").rpartition(" ")
                try:
                    source = Address(self.name, host, int(port))
                except ValueError:
                    self.errors += 1
                    continue
                self.receiver.datagram_received(data[newline + 1 :], source)
            elif data[:1] == b"C" and self.on_control is not None:
                try:
                    message = json.loads(data[1:])
                except ValueError:
                    self.errors += 1
                    continue
                self.on_control(message)

    # -- Transport ------------------------------------------------------------------------
    def send(self, data: bytes, destination: Address, transaction: object = None) -> None:
        if self._transport is None or self._transport.is_closing():
            self.receiver.send_failed(destination, "UDP transport closed", transaction)
            return
        try:
            self._transport.sendto(data, (destination.host, destination.port))
        except (OSError, ValueError) as exc:
            self.receiver.send_failed(destination, f"UDP send failed: {exc}", transaction)

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._inbox.fileno())
            self._loop = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            if self._protocol is not None:
                await self._protocol.closed
