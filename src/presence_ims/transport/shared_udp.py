"""SIP over one UDP socket read by several worker processes (the PS's workers, D13).

Every worker reads the shared socket; a datagram another worker owns (``route``)
goes to that worker's inbox, a Unix datagram socket, with its source address in
front. Everything a worker sends leaves from the shared socket, so peers see one
address and port (RFC 3581: a response leaves from where its request came in).

Inbox datagrams: ``D<host> <port>\\n<SIP message>`` (a handed-over datagram) or
``C<json>\\n<content>`` (a control message from the parent process, given to
``on_control`` with its content).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Sequence
from typing import Any

from ..sip.transaction import Address
from .base import Receiver
from .udp import MAX_DATAGRAM, RCVBUF_BYTES, UdpTransport, _Protocol

INBOX_READS_PER_TURN = 256
"""Inbox datagrams read per readiness callback before the loop serves others."""


def inbox_pair() -> tuple[socket.socket, socket.socket]:
    """(sending end, receiving end) of a worker's inbox; both non-blocking."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for sock, option in ((sender, socket.SO_SNDBUF), (receiver, socket.SO_RCVBUF)):
        sock.setsockopt(socket.SOL_SOCKET, option, RCVBUF_BYTES)
        sock.setblocking(False)
    return sender, receiver


INBOX_MAX = MAX_DATAGRAM + 4096
"""Largest inbox datagram: a handed-over SIP datagram with its source in front, or a
control message carrying a document of up to 64 KiB (the XCAP limit) with its header."""


def control_message(payload: dict[str, Any], content: bytes | None = None) -> bytes:
    """``C<json>\\n<content>``: the content travels as it is (JSON would escape it into
    up to six times its size); ValueError when the whole does not fit an inbox datagram."""
    head = dict(payload, has_content=content is not None)
    message = b"C" + json.dumps(head).encode() + b"\n" + (content or b"")
    if len(message) > INBOX_MAX:
        raise ValueError(f"control message of {len(message)} bytes (at most {INBOX_MAX})")
    return message


class _SharedProtocol(_Protocol):
    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        owner: SharedUdpTransport = self.owner  # type: ignore[assignment]
        worker = owner.route(data)
        if worker == owner.index:
            super().datagram_received(data, addr)
        else:
            owner.hand_over(worker, data, addr)


class SharedUdpTransport(UdpTransport):
    """One worker's UDP transport: the shared socket, its own inbox, the others' inboxes.

    Sending is :class:`UdpTransport`'s, on the shared socket.
    """

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
        on_control: Callable[[dict[str, Any], bytes | None], None] | None = None,
        name: str = "udp",
    ) -> None:
        bound = sock.getsockname()
        super().__init__(receiver, host or bound[0], bound[1], name=name)
        self.index = index
        self.route = route
        self.on_control = on_control
        self._sock = sock
        self._inbox = inbox
        self._outboxes = list(outboxes)
        self.handed_over = 0
        self.hand_over_dropped = 0
        self._inbox_served = False

    def _make_protocol(self) -> _Protocol:
        return _SharedProtocol(self)

    async def start(self) -> None:
        assert self._sock is not None
        await self._open(self._sock)
        asyncio.get_running_loop().add_reader(self._inbox.fileno(), self._read_inbox)
        self._inbox_served = True

    # -- handing over -------------------------------------------------------------------
    def hand_over(self, worker: int, data: bytes, addr: tuple[Any, ...]) -> None:
        head = f"D{addr[0]} {addr[1]}\n".encode()
        try:
            self._outboxes[worker].send(head + data)
            self.handed_over += 1
        except OSError:  # the other worker's inbox is full (or gone): a lost datagram
            self.hand_over_dropped += 1
            stats = getattr(self.receiver, "stats", None)
            if stats is not None:  # the endpoint's counters (``hand_over_dropped``)
                stats["hand_over_dropped"] += 1

    def _read_inbox(self) -> None:
        inbox = self._inbox
        for _ in range(INBOX_READS_PER_TURN):
            try:
                data = inbox.recv(INBOX_MAX)
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
                head, _, content = data[1:].partition(b"\n")
                try:
                    message = json.loads(head)
                except ValueError:
                    self.errors += 1
                    continue
                self.on_control(message, content if message.get("has_content") else None)

    async def close(self) -> None:
        if self._inbox_served and self._loop is not None:
            self._loop.remove_reader(self._inbox.fileno())
            self._inbox_served = False
        await super().close()
