"""The four transaction state machines of RFC 3261 section 17, as tables.

Each table maps ``(state, input)`` to ``(actions, next state)``; the actions
are names of methods of the transaction that run in order.  A pair missing
from a table means the input is ignored in that state.  Timers are inputs:
the layer feeds ``TIMER_x`` when a deadline passes.  RFC 6026 (the Accepted
states for INVITE) is applied.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import SipParseError
from ..headers import canonical_name
from ..message import Headers, Request, Response
from ..parser import parse_datagram
from .events import (
    Address,
    Event,
    ResponseReceived,
    ServerTransactionFailed,
    TransactionKey,
    TransactionTimedOut,
    TransactionTransportError,
    Transmit,
)
from .timers import TimerConfig


class State(enum.Enum):
    # Members are singletons: identity hashing is consistent with their equality and
    # spares Enum's Python-level __hash__ on every table and deadline lookup.
    __hash__ = object.__hash__

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class Input(enum.Enum):
    __hash__ = object.__hash__  # as for State

    PROVISIONAL = "1xx"
    FINAL_2XX = "2xx"
    FINAL_OTHER = "300-699"
    REQUEST = "request retransmission"
    ACK = "ack"
    TU_PROVISIONAL = "TU 1xx"
    TU_2XX = "TU 2xx"
    TU_FINAL = "TU 300-699"
    TIMER_A = "A"
    TIMER_B = "B"
    TIMER_D = "D"
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_J = "J"
    TIMER_K = "K"
    TIMER_L = "L"
    TIMER_M = "M"
    TRANSPORT_ERROR = "transport error"


S, I = State, Input  # noqa: E741 - short names keep the tables readable
Table = dict[tuple[State, Input], tuple[tuple[str, ...], State]]

# RFC 3261 Figure 5 (INVITE client transaction), with RFC 6026 Accepted.
ICT_TABLE: Table = {
    (S.CALLING, I.TIMER_A): (("retransmit", "backoff_a"), S.CALLING),
    (S.CALLING, I.TIMER_B): (("timeout",), S.TERMINATED),
    (S.CALLING, I.PROVISIONAL): (("pass_up", "stop_retransmits"), S.PROCEEDING),
    (S.CALLING, I.FINAL_2XX): (("pass_up", "stop_retransmits", "start_m"), S.ACCEPTED),
    (S.CALLING, I.FINAL_OTHER): (("pass_up", "send_ack", "stop_retransmits", "start_d"), S.COMPLETED),
    (S.CALLING, I.TRANSPORT_ERROR): (("transport_error",), S.TERMINATED),
    (S.PROCEEDING, I.PROVISIONAL): (("pass_up",), S.PROCEEDING),
    (S.PROCEEDING, I.FINAL_2XX): (("pass_up", "start_m"), S.ACCEPTED),
    (S.PROCEEDING, I.FINAL_OTHER): (("pass_up", "send_ack", "start_d"), S.COMPLETED),
    (S.PROCEEDING, I.TIMER_B): (("timeout",), S.TERMINATED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (("transport_error",), S.TERMINATED),
    (S.COMPLETED, I.FINAL_OTHER): (("send_ack",), S.COMPLETED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (("transport_error",), S.TERMINATED),
    (S.COMPLETED, I.TIMER_D): ((), S.TERMINATED),
    (S.ACCEPTED, I.FINAL_2XX): (("pass_up",), S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_M): ((), S.TERMINATED),
}

# RFC 3261 Figure 6 (non-INVITE client transaction).
NICT_TABLE: Table = {
    (S.TRYING, I.TIMER_E): (("retransmit", "backoff_e"), S.TRYING),
    (S.TRYING, I.TIMER_F): (("timeout",), S.TERMINATED),
    (S.TRYING, I.PROVISIONAL): (("pass_up",), S.PROCEEDING),
    (S.TRYING, I.FINAL_2XX): (("pass_up", "stop_retransmits", "start_k"), S.COMPLETED),
    (S.TRYING, I.FINAL_OTHER): (("pass_up", "stop_retransmits", "start_k"), S.COMPLETED),
    (S.TRYING, I.TRANSPORT_ERROR): (("transport_error",), S.TERMINATED),
    (S.PROCEEDING, I.TIMER_E): (("retransmit", "backoff_e_t2"), S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_F): (("timeout",), S.TERMINATED),
    (S.PROCEEDING, I.PROVISIONAL): (("pass_up",), S.PROCEEDING),
    (S.PROCEEDING, I.FINAL_2XX): (("pass_up", "stop_retransmits", "start_k"), S.COMPLETED),
    (S.PROCEEDING, I.FINAL_OTHER): (("pass_up", "stop_retransmits", "start_k"), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (("transport_error",), S.TERMINATED),
    (S.COMPLETED, I.TIMER_K): ((), S.TERMINATED),
}

# RFC 3261 Figure 7 (INVITE server transaction), with RFC 6026 Accepted.
IST_TABLE: Table = {
    (S.PROCEEDING, I.REQUEST): (("resend_last",), S.PROCEEDING),
    (S.PROCEEDING, I.TU_PROVISIONAL): (("send_tu",), S.PROCEEDING),
    (S.PROCEEDING, I.TU_2XX): (("send_tu", "start_l"), S.ACCEPTED),
    (S.PROCEEDING, I.TU_FINAL): (("send_tu", "start_g", "start_h"), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (("server_failed",), S.TERMINATED),
    (S.COMPLETED, I.REQUEST): (("resend_last",), S.COMPLETED),
    (S.COMPLETED, I.TIMER_G): (("resend_last", "backoff_g"), S.COMPLETED),
    (S.COMPLETED, I.TIMER_H): (("server_failed",), S.TERMINATED),
    (S.COMPLETED, I.ACK): (("stop_retransmits", "start_i"), S.CONFIRMED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (("server_failed",), S.TERMINATED),
    (S.CONFIRMED, I.TIMER_I): ((), S.TERMINATED),
    (S.ACCEPTED, I.TU_2XX): (("send_tu",), S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_L): ((), S.TERMINATED),
}

# RFC 3261 Figure 8 (non-INVITE server transaction).
NIST_TABLE: Table = {
    (S.TRYING, I.TU_PROVISIONAL): (("send_tu",), S.PROCEEDING),
    (S.TRYING, I.TU_2XX): (("send_tu", "start_j"), S.COMPLETED),
    (S.TRYING, I.TU_FINAL): (("send_tu", "start_j"), S.COMPLETED),
    (S.PROCEEDING, I.REQUEST): (("resend_last",), S.PROCEEDING),
    (S.PROCEEDING, I.TU_PROVISIONAL): (("send_tu",), S.PROCEEDING),
    (S.PROCEEDING, I.TU_2XX): (("send_tu", "start_j"), S.COMPLETED),
    (S.PROCEEDING, I.TU_FINAL): (("send_tu", "start_j"), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (("server_failed",), S.TERMINATED),
    (S.COMPLETED, I.REQUEST): (("resend_last",), S.COMPLETED),
    (S.COMPLETED, I.TIMER_J): ((), S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (("server_failed",), S.TERMINATED),
}

Effect = Transmit | Event


@dataclass(slots=True)
class Transaction:
    """State shared by the four machines; the table decides what happens."""

    key: TransactionKey
    request: Request
    peer: Address
    """Client: where requests go.  Server: where responses go."""
    timers: TimerConfig
    table: Table
    state: State
    deadlines: dict[Input, float] = field(default_factory=dict)
    interval: float = 0.0
    last_response: Response | None = None
    last_data: bytes | None = None
    """Wire form of ``last_response`` (serialised once, resent as it is)."""
    response: Response | None = None
    """The response being handled by the current input."""
    effects: list[Effect] = field(default_factory=list)
    current: Input | None = None
    """The input being handled."""

    @property
    def reliable(self) -> bool:
        return self.peer.reliable

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    def feed(self, inp: Input, now: float, response: Response | None = None) -> list[Effect]:
        """Apply one input; return what must be sent and reported."""
        entry = self.table.get((self.state, inp))
        if entry is None:
            return []
        actions, next_state = entry
        self.response = response
        self.current = inp
        effects: list[Effect] = []
        self.effects = effects
        for name in actions:
            _ACTIONS[name](self, now)
        self.state = next_state
        if next_state is S.TERMINATED:
            self.deadlines.clear()
        self.response = None
        return effects

    def next_deadline(self) -> float | None:
        return min(self.deadlines.values()) if self.deadlines else None

    def due(self, now: float) -> list[Input]:
        fired = sorted((t, i.value, i) for i, t in self.deadlines.items() if t <= now)
        for _, _, inp in fired:
            del self.deadlines[inp]
        return [inp for _, _, inp in fired]

    # -- actions --------------------------------------------------------------
    def _do_pass_up(self, now: float) -> None:
        assert self.response is not None
        self.effects.append(ResponseReceived(self.response, self.key, self.peer))

    def _do_retransmit(self, now: float) -> None:
        self.effects.append(Transmit(self.request, self.peer, self.key))

    def _do_backoff_a(self, now: float) -> None:
        self.interval *= 2
        self.deadlines[I.TIMER_A] = now + self.interval

    def _do_backoff_e(self, now: float) -> None:
        self.interval = min(2 * self.interval, self.timers.t2)
        self.deadlines[I.TIMER_E] = now + self.interval

    def _do_backoff_e_t2(self, now: float) -> None:
        self.interval = self.timers.t2
        self.deadlines[I.TIMER_E] = now + self.interval

    def _do_backoff_g(self, now: float) -> None:
        self.interval = min(2 * self.interval, self.timers.t2)
        self.deadlines[I.TIMER_G] = now + self.interval

    def _do_stop_retransmits(self, now: float) -> None:
        for t in (I.TIMER_A, I.TIMER_E, I.TIMER_G):
            self.deadlines.pop(t, None)

    def _do_timeout(self, now: float) -> None:
        self.effects.append(TransactionTimedOut(self.key, self.request))

    def _do_transport_error(self, now: float) -> None:
        self.effects.append(TransactionTransportError(self.key, self.request, "transport error"))

    def _do_server_failed(self, now: float) -> None:
        reason = "Timer H fired: no ACK" if self.current is I.TIMER_H else "transport error"
        self.effects.append(ServerTransactionFailed(self.key, self.request, reason))

    def _do_send_ack(self, now: float) -> None:
        assert self.response is not None
        self.effects.append(Transmit(build_ack(self.request, self.response), self.peer, self.key))

    def _do_send_tu(self, now: float) -> None:
        response = self.response
        assert response is not None
        data = response.serialize()
        self.last_response = response
        self.last_data = data
        self.effects.append(Transmit(response, self.peer, self.key, data))

    def _do_resend_last(self, now: float) -> None:
        if self.last_response is not None:
            self.effects.append(Transmit(self.last_response, self.peer, self.key, self.last_data))

    def _start(self, timer: Input, delay: float, now: float) -> None:
        self.deadlines[timer] = now + delay

    def _do_start_d(self, now: float) -> None:
        self._start(I.TIMER_D, self.timers.d(self.reliable), now)

    def _do_start_k(self, now: float) -> None:
        self._start(I.TIMER_K, self.timers.k(self.reliable), now)

    def _do_start_m(self, now: float) -> None:
        self._start(I.TIMER_M, self.timers.m, now)

    def _do_start_j(self, now: float) -> None:
        self._start(I.TIMER_J, self.timers.j(self.reliable), now)

    def _do_start_l(self, now: float) -> None:
        self._start(I.TIMER_L, self.timers.l, now)

    def _do_start_i(self, now: float) -> None:
        self._start(I.TIMER_I, self.timers.i(self.reliable), now)

    def _do_start_h(self, now: float) -> None:
        self._start(I.TIMER_H, self.timers.h, now)

    def _do_start_g(self, now: float) -> None:
        if not self.reliable:
            self.interval = self.timers.g
            self._start(I.TIMER_G, self.interval, now)


_ACTIONS: dict[str, Callable[[Transaction, float], None]] = {
    name: getattr(Transaction, f"_do_{name}")
    for table in (ICT_TABLE, NICT_TABLE, IST_TABLE, NIST_TABLE)
    for actions, _ in table.values()
    for name in actions
}
"""The methods the table entries name, looked up once."""


@dataclass(slots=True)
class CompletedNist:
    """A non-INVITE server transaction in Completed, reduced to what that state needs.

    Between its final response and Timer J (64*T1 over UDP) a NIST only answers
    retransmissions of its request with the same response (RFC 3261 17.2.2,
    Figure 8), so the layer keeps the response's wire form, where it goes and
    the deadline instead of the whole :class:`Transaction` with its request and
    response objects: at thousands of requests per second, 32 s of them are
    waiting for Timer J.  Inputs go through the Completed row of
    :data:`NIST_TABLE` like any other transaction's.
    """

    key: TransactionKey
    data: bytes
    """The final response as it was sent."""
    peer: Address
    """Where it was sent."""
    deadline: float
    """When Timer J fires."""
    state: State = S.COMPLETED

    TIMER: ClassVar[Input] = I.TIMER_J
    """The timer that ends it."""

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    def feed(self, inp: Input, now: float) -> list[Effect]:
        entry = NIST_TABLE.get((self.state, inp))
        if entry is None:
            return []
        actions, next_state = entry
        effects: list[Effect] = []
        for name in actions:
            if name == "resend_last":
                effects.append(Transmit(response_from_wire(self.data), self.peer, self.key, self.data))
            elif name == "server_failed":
                effects.append(ServerTransactionFailed(self.key, None, "transport error"))
            else:  # pragma: no cover - a new action in the Completed row needs a case here
                raise NotImplementedError(name)
        self.state = next_state
        return effects


@dataclass(slots=True)
class CompletedNict:
    """A non-INVITE client transaction in Completed over UDP, reduced to its Timer K.

    Once its final response has arrived, a NICT only absorbs retransmissions of
    responses until Timer K (T4) ends it (RFC 3261 17.1.2.2, Figure 6): nothing in
    the Completed row of :data:`NICT_TABLE` sends or reports anything but the end.
    Timer F, if still pending, would fire into that row and be ignored.  The layer
    keeps the key and the deadline instead of the whole :class:`Transaction` with
    its request; inputs still go through the Completed row of the table.
    """

    key: TransactionKey
    deadline: float
    """When Timer K fires."""
    state: State = S.COMPLETED

    TIMER: ClassVar[Input] = I.TIMER_K
    """The timer that ends it."""

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    def feed(self, inp: Input, now: float) -> list[Effect]:
        entry = NICT_TABLE.get((self.state, inp))
        if entry is None:
            return []
        actions, next_state = entry
        if actions:  # pragma: no cover - a new action in the Completed row needs a case here
            raise NotImplementedError(actions)
        self.state = next_state
        return []


def response_from_wire(data: bytes) -> Response:
    """The response a transmit carries, rebuilt from the bytes a CompletedNist kept.

    Only retransmissions take this path.  The bytes are this stack's own
    serialisation, which parses back; should a TU have put something in a header
    that does not, the status line alone is kept.
    """
    try:
        msg = parse_datagram(data)
    except SipParseError:
        msg = None
    if isinstance(msg, Response):
        return msg
    parts = data.split(b"\r\n", 1)[0].decode("utf-8", "replace").split(" ", 2)
    return Response(Headers(), b"", int(parts[1]), parts[2] if len(parts) > 2 else "")


def new_client(
    key: TransactionKey, request: Request, peer: Address, timers: TimerConfig, now: float
) -> tuple[Transaction, list[Effect]]:
    """Create an ICT or NICT and send the request (RFC 3261 17.1.1.2 / 17.1.2.2)."""
    invite = request.method == "INVITE"
    txn = Transaction(
        key,
        request,
        peer,
        timers,
        ICT_TABLE if invite else NICT_TABLE,
        S.CALLING if invite else S.TRYING,
    )
    if not peer.reliable:
        txn.interval = timers.a if invite else timers.e
        txn.deadlines[I.TIMER_A if invite else I.TIMER_E] = now + txn.interval
    txn.deadlines[I.TIMER_B if invite else I.TIMER_F] = now + (timers.b if invite else timers.f)
    return txn, [Transmit(request, peer, key)]


def new_server(
    key: TransactionKey, request: Request, peer: Address, timers: TimerConfig
) -> Transaction:
    invite = request.method == "INVITE"
    return Transaction(
        key,
        request,
        peer,
        timers,
        IST_TABLE if invite else NIST_TABLE,
        S.PROCEEDING if invite else S.TRYING,
    )


def response_input_client(response: Response) -> Input:
    if response.status < 200:
        return I.PROVISIONAL
    return I.FINAL_2XX if response.status < 300 else I.FINAL_OTHER


def response_input_server(response: Response) -> Input:
    if response.status < 200:
        return I.TU_PROVISIONAL
    return I.TU_2XX if response.status < 300 else I.TU_FINAL


def build_ack(invite: Request, response: Response) -> Request:
    """ACK for a non-2xx final response (RFC 3261 section 17.1.1.3)."""
    h = Headers()
    vias = invite.headers.get_all("via")
    if vias:
        h.add("Via", vias[0])
    h.add("Max-Forwards", "70")
    for key in ("from", "call-id"):
        value = invite.headers.get(key)
        if value is not None:
            h.add(canonical_name(key), value)
    to = response.headers.get("to")
    if to is not None:
        h.add("To", to)
    h.add("CSeq", f"{invite.cseq.seq} ACK")
    for route in invite.headers.get_lines("route"):
        h.add("Route", route)
    return Request(h, b"", "ACK", invite.uri)
