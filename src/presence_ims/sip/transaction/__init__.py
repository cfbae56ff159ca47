"""RFC 3261 section 17 transactions, sans-IO."""

from .events import (
    Address,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransactionFailed,
    StrayResponse,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransactionTransportError,
    Transmit,
)
from .layer import (
    TransactionLayer,
    client_key,
    new_branch,
    response_address,
    server_key,
    stamp_via,
)
from .machines import (
    ICT_TABLE,
    IST_TABLE,
    NICT_TABLE,
    NIST_TABLE,
    CompletedNist,
    Input,
    State,
    build_ack,
)
from .timers import DEFAULT_TIMERS, TimerConfig

__all__ = [
    "DEFAULT_TIMERS",
    "ICT_TABLE",
    "IST_TABLE",
    "NICT_TABLE",
    "NIST_TABLE",
    "Address",
    "CompletedNist",
    "Event",
    "Input",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransactionFailed",
    "State",
    "StrayResponse",
    "TimerConfig",
    "TransactionKey",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransactionTransportError",
    "Transmit",
    "build_ack",
    "client_key",
    "new_branch",
    "response_address",
    "server_key",
    "stamp_via",
]
