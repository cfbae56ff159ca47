"""The UDP transport on real sockets: bursts, a full send buffer, failed sends, close."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from presence_ims.sip.transaction import Address
from presence_ims.transport import UdpTransport
from presence_ims.transport.udp import READS_PER_TURN, SEND_BACKLOG_MAX


class Recorder:
    """The endpoint side of a transport, recording what reaches it."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Address]] = []
        self.failures: list[tuple[Address, str, object]] = []
        self.arrived = asyncio.Event()
        self.expect = 0

    def datagram_received(self, data: bytes, source: Address) -> None:
        self.datagrams.append((data, source))
        if len(self.datagrams) >= self.expect:
            self.arrived.set()

    def stream_received(self, data: bytes, source: Address) -> None:
        raise AssertionError("a UDP transport has no streams")

    def stream_closed(self, source: Address) -> None:
        raise AssertionError("a UDP transport has no streams")

    def send_failed(self, destination: Address, reason: str, transaction: object) -> None:
        self.failures.append((destination, reason, transaction))


@pytest.fixture
async def udp() -> AsyncIterator[tuple[UdpTransport, Recorder]]:
    recorder = Recorder()
    transport = UdpTransport(recorder, "127.0.0.1", 0)
    await transport.start()
    try:
        yield transport, recorder
    finally:
        await transport.close()


def peer() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_a_burst_waiting_in_the_socket_arrives_whole_and_in_order(
    udp: tuple[UdpTransport, Recorder],
) -> None:
    transport, recorder = udp
    count = 3 * READS_PER_TURN + 7  # more than one turn's worth of reads
    recorder.expect = count
    with peer() as sender:
        for n in range(count):  # all sent before the loop gets to read any of them
            sender.sendto(b"datagram %d" % n, ("127.0.0.1", transport.port))
        async with asyncio.timeout(5):
            await recorder.arrived.wait()
        port = sender.getsockname()[1]
    assert [d for d, _ in recorder.datagrams] == [b"datagram %d" % n for n in range(count)]
    # one Address per source, carrying the transport's name
    assert {s for _, s in recorder.datagrams} == {Address("udp", "127.0.0.1", port)}


async def test_the_loop_runs_between_turns_of_a_long_burst(
    udp: tuple[UdpTransport, Recorder],
) -> None:
    """A socket that always has something to read does not starve the rest of the loop."""
    transport, recorder = udp
    count = 4 * READS_PER_TURN
    recorder.expect = count
    seen_at_tick: list[int] = []

    async def ticker() -> None:
        while len(recorder.datagrams) < count:
            seen_at_tick.append(len(recorder.datagrams))
            await asyncio.sleep(0)

    with peer() as sender:
        for n in range(count):
            sender.sendto(b"x%d" % n, ("127.0.0.1", transport.port))
        async with asyncio.timeout(5):
            await asyncio.gather(ticker(), recorder.arrived.wait())
    # the ticker ran while the burst was being read, at most one turn's reads apart
    partial = [n for n in seen_at_tick if 0 < n < count]
    assert partial, seen_at_tick
    assert all(b - a <= READS_PER_TURN for a, b in itertools.pairwise(seen_at_tick))


async def test_sends_reach_the_peer_from_the_bound_port(udp: tuple[UdpTransport, Recorder]) -> None:
    transport, _ = udp
    with peer() as receiver:
        receiver.settimeout(5)
        dest = Address("udp", "127.0.0.1", receiver.getsockname()[1])
        transport.send(b"hello", dest)
        data, source = receiver.recvfrom(100)
    assert data == b"hello"
    assert source == ("127.0.0.1", transport.port)  # responses leave from the SIP port


async def test_a_send_the_kernel_refuses_is_reported_with_its_reason(
    udp: tuple[UdpTransport, Recorder],
) -> None:
    transport, recorder = udp
    bad = Address("udp", "127.0.0.1", 70000)  # no such port
    transport.send(b"x", bad, "tx-1")
    assert len(recorder.failures) == 1
    destination, reason, transaction = recorder.failures[0]
    assert (destination, transaction) == (bad, "tx-1")
    assert reason.startswith("UDP send failed:")
    assert transport.errors == 1


class FullBuffer:
    """A socket whose send buffer is full for the first ``busy`` sends."""

    def __init__(self, real: socket.socket, busy: int) -> None:
        self.real = real
        self.busy = busy
        self.sent: list[tuple[bytes, Any]] = []
        self.five = asyncio.Event()

    def fileno(self) -> int:
        return self.real.fileno()

    def sendto(self, data: bytes, addr: Any) -> int:
        if self.busy > 0:
            self.busy -= 1
            raise BlockingIOError
        self.sent.append((data, addr))
        if len(self.sent) >= 5:
            self.five.set()
        return len(data)


async def test_a_full_send_buffer_queues_in_order_until_the_socket_is_writable(
    udp: tuple[UdpTransport, Recorder],
) -> None:
    transport, recorder = udp
    real = transport._sock
    assert real is not None
    full = FullBuffer(real, busy=2)
    transport._sock = full  # type: ignore[assignment]
    dest = Address("udp", "127.0.0.1", 5060)
    try:
        for n in range(5):
            transport.send(b"m%d" % n, dest)
        # the first send met a full buffer: it and everything after it wait, in order
        assert full.sent == []
        async with asyncio.timeout(5):
            await full.five.wait()
        assert [d for d, _ in full.sent] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert recorder.failures == []
        # once drained, a send goes straight out again
        transport.send(b"m5", dest)
        assert full.sent[-1] == (b"m5", ("127.0.0.1", 5060))
    finally:
        transport._sock = real


async def test_the_send_queue_is_bounded(udp: tuple[UdpTransport, Recorder]) -> None:
    transport, recorder = udp
    real = transport._sock
    assert real is not None
    transport._sock = FullBuffer(real, busy=10**9)  # type: ignore[assignment]
    dest = Address("udp", "127.0.0.1", 5060)
    try:
        for _ in range(SEND_BACKLOG_MAX + 3):
            transport.send(b"m", dest, "tx")
        assert [r for _, r, _ in recorder.failures] == ["UDP send buffer full"] * 3
    finally:
        transport._sock = real
        await transport.close()  # drops the queue and stops waiting for writability


async def test_close_releases_the_port_and_later_sends_fail() -> None:
    recorder = Recorder()
    transport = UdpTransport(recorder, "127.0.0.1", 0)
    await transport.start()
    port = transport.port
    await transport.close()
    await transport.close()  # twice is fine
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # the port is free
    dest = Address("udp", "127.0.0.1", 5060)
    transport.send(b"late", dest, "tx")
    assert recorder.failures == [(dest, "UDP transport closed", "tx")]
