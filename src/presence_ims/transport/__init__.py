"""asyncio transports around the sans-IO SIP core, and the endpoint nodes use."""

from ..sip.transaction import Address
from .base import Receiver, Stats, Transport
from .endpoint import IncomingRequest, SipEndpoint
from .tcp import StreamTransport
from .udp import UdpTransport

__all__ = [
    "Address",
    "IncomingRequest",
    "Receiver",
    "SipEndpoint",
    "Stats",
    "StreamTransport",
    "Transport",
    "UdpTransport",
]
