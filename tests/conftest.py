"""Shared fixtures and helpers of the test suite.

``shared_dir()`` finds the project's shared folder (``/work/shared`` beside the
checkout, or ``$PRESENCE_IMS_SHARED``); tests that need it skip when it is
absent.  The RFC 4475 torture messages are vendored under ``tests/data`` so
that they always run.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from presence_ims.transport.udp import bind_udp

# Nodes log every message at debug level; with structlog unconfigured all of it
# would be printed.  Tests print warnings and errors only.  The level is checked by
# a processor, not by the bound logger, so that structlog.testing.capture_logs
# (which swaps the processors) still sees every level, even for loggers bound early.


def _warnings_only(_logger: Any, method: str, event: Any) -> Any:
    if method in ("debug", "info"):
        raise structlog.DropEvent
    return event


structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(0),
    processors=[_warnings_only, structlog.processors.add_log_level,
                structlog.dev.ConsoleRenderer(colors=False)],
    cache_logger_on_first_use=False,
)

TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"
RFC4475_DIR = DATA_DIR / "rfc4475"


@pytest.fixture(autouse=True)
def _structlog_config_restored() -> Iterator[None]:
    """A test that runs a CLI command in process gets structlog configured the way the
    command configures it (printing to the stderr pytest captures for that test, closed
    afterwards): later tests must log as configured above, not to a closed file."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def shared_dir() -> Path | None:
    """The shared folder (``$PRESENCE_IMS_SHARED`` or ``<checkout>/../shared``), None when absent."""
    env = os.environ.get("PRESENCE_IMS_SHARED")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return path if path.is_dir() else None


def rfc4475_expected() -> dict[str, dict[str, Any]]:
    """``expected.json`` of the vendored RFC 4475 messages: tag -> expectation."""
    data: dict[str, dict[str, Any]] = json.loads((RFC4475_DIR / "expected.json").read_text())
    return data


def rfc4475_message(tag: str) -> bytes:
    """The bytes of one RFC 4475 torture message, exactly as in the RFC's archive."""
    return (RFC4475_DIR / f"{tag}.sip").read_bytes()


@pytest.fixture
def shared() -> Path:
    """The shared folder; skips the test when there is none."""
    path = shared_dir()
    if path is None:
        pytest.skip("no shared folder (set PRESENCE_IMS_SHARED)")
    return path


class UdpClient:
    """A bare UDP socket on 127.0.0.1 for tests: send raw bytes, await what comes back.

    It reads every waiting datagram when the socket is readable, as the nodes' UDP
    transport does (asyncio's datagram transport reads one per loop turn, and would
    overflow its receive buffer when a node answers a burst of requests at once).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.sock = sock
        self.port = sock.getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error from an earlier send
                continue
            self.queue.put_nowait((data, addr))

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sock.sendto(data, addr)

    async def recv(self, within: float = 5.0) -> bytes:
        """The next datagram; raises TimeoutError when none comes ``within`` seconds."""
        async with asyncio.timeout(within):
            data, _ = await self.queue.get()
        return data

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


@pytest.fixture
async def udp_client() -> AsyncIterator[Callable[[], Awaitable[UdpClient]]]:
    """Factory of :class:`UdpClient` sockets, closed after the test."""
    made: list[UdpClient] = []

    async def make() -> UdpClient:
        client = UdpClient(bind_udp("127.0.0.1", 0))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
