"""What the transaction layer reports to its user and asks its transport to send."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..message import Message, Request, Response

RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "esp-tcp", "ws", "wss", "sctp"})


@dataclass(frozen=True, slots=True)
class Address:
    """Where a message came from or goes to.

    ``transport`` names the local transport (``udp``, ``tcp``, ``tls``, or a
    protected transport such as ``esp-udp``); ``flow`` identifies a stream
    connection so that responses reuse it (RFC 3261 section 18.2.2).
    """

    transport: str
    """Name of the transport, lower case."""
    host: str
    port: int
    flow: int | None = field(default=None, compare=False, hash=False)
    """Connection id of a stream transport (``None``: any, or connect anew)."""

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


TransactionKey = tuple[str, ...]
"""Opaque key of one transaction, unique within a layer."""


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send this message to this address."""

    message: Message
    destination: Address
    transaction: TransactionKey | None = None
    """The transaction it belongs to, so a transport failure can be reported to it."""
    data: bytes | None = field(default=None, compare=False)
    """``message`` already serialised (a server transaction's response), or ``None``."""


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the transaction user.

    ``transaction`` is the server transaction to answer through, or ``None``
    for requests that have none (ACK for a 2xx).
    """

    request: Request
    source: Address
    transaction: TransactionKey | None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response matched to a client transaction (provisional or final)."""

    response: Response
    transaction: TransactionKey
    source: Address


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matches no client transaction (a proxy may forward it)."""

    response: Response
    source: Address


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B or F fired: no final response came (the TU acts as for a 408)."""

    transaction: TransactionKey
    request: Request


@dataclass(frozen=True, slots=True)
class TransactionTransportError:
    """The transport could not deliver a message of this transaction (acts as a 503)."""

    transaction: TransactionKey
    request: Request
    reason: str


@dataclass(frozen=True, slots=True)
class ServerTransactionFailed:
    """A server transaction ended without its final response being delivered (Timer H, transport)."""

    transaction: TransactionKey
    request: Request | None
    """The request; ``None`` when a non-INVITE transaction had already answered and
    kept only its response (Completed over UDP, see ``CompletedNist``)."""
    reason: str


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """A transaction reached its Terminated state and was removed."""

    transaction: TransactionKey


Event = (
    RequestReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimedOut
    | TransactionTransportError
    | ServerTransactionFailed
    | TransactionTerminated
)
