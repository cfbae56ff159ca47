"""What a SIP transport is to the endpoint: two small protocols and counters."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from ..sip.transaction import Address


class Receiver(Protocol):
    """The endpoint side of a transport: where received bytes go."""

    def datagram_received(self, data: bytes, source: Address) -> None: ...

    def stream_received(self, data: bytes, source: Address) -> None: ...

    def stream_closed(self, source: Address) -> None: ...

    def send_failed(self, destination: Address, reason: str, transaction: object) -> None: ...


class Transport(Protocol):
    """A local SIP transport (a UDP socket, a TCP/TLS listener and its connections ...)."""

    @property
    def name(self) -> str:
        """Key used in :class:`Address.transport` (``udp``, ``tcp``, ``tls``, ``esp-udp`` ...)."""
        ...

    @property
    def via_transport(self) -> str:
        """Transport token written in Via (``UDP``, ``TCP``, ``TLS``)."""
        ...

    @property
    def host(self) -> str:
        """Address advertised in Via and Contact."""
        ...

    @property
    def port(self) -> int:
        """Bound port (read after start when started on port 0)."""
        ...

    def send(self, data: bytes, destination: Address, transaction: object = None) -> None:
        """Send (or queue) one message; failures come back through ``Receiver.send_failed``."""
        ...

    async def close(self) -> None: ...


class Stats(Counter[str]):
    """Per-node counters (``rx_request``, ``parse_error:Gm`` ...)."""

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.items()))
