"""Listen specifications: ``udp:127.0.0.1:5060``, ``tls:[::1]:5061``."""

from __future__ import annotations

from dataclasses import dataclass

TRANSPORTS = ("udp", "tcp", "tls")


@dataclass(frozen=True, slots=True)
class ListenSpec:
    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def parse_listen(spec: str) -> ListenSpec:
    """Parse TRANSPORT:HOST:PORT; raises ValueError with a clear message."""
    try:
        transport, rest = spec.split(":", 1)
        host, port_text = rest.rsplit(":", 1)
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad listen address {spec!r}: expected TRANSPORT:HOST:PORT") from None
    transport = transport.lower()
    if transport not in TRANSPORTS:
        raise ValueError(f"bad transport {transport!r} in {spec!r}: udp, tcp or tls")
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {spec!r}")
    return ListenSpec(transport, host.strip("[]"), port)
