"""The transaction layer: matching (RFC 3261 17.1.3, 17.2.3), timers, events.

Push messages in with ``receive_request``/``receive_response`` and the time;
pull what to send with :meth:`TransactionLayer.take_transmits` and what
happened with :meth:`TransactionLayer.next_event`; ask :meth:`get_timer` for
the next deadline and call :meth:`handle_timer` when it passes.  Nothing here
reads a clock or touches a socket.
"""

from __future__ import annotations

import heapq
import secrets
from collections import deque

from ..errors import SipParseError
from ..headers import MAGIC_COOKIE, Via, parse_via
from ..message import Request, Response, make_response
from .events import (
    Address,
    Event,
    RequestReceived,
    StrayResponse,
    TransactionKey,
    TransactionTerminated,
    Transmit,
)
from .machines import (
    Effect,
    Input,
    State,
    Transaction,
    new_client,
    new_server,
    response_input_client,
    response_input_server,
)
from .timers import DEFAULT_TIMERS, TimerConfig


def new_branch() -> str:
    """A branch parameter with the RFC 3261 magic cookie."""
    return MAGIC_COOKIE + secrets.token_hex(8)


def server_key(request: Request) -> TransactionKey:
    """Key of the server transaction a request belongs to (RFC 3261 17.2.3).

    ACK maps onto the INVITE transaction it acknowledges.  Besides branch,
    sent-by and method, the key holds Call-ID and CSeq number: a retransmission
    repeats them, so nothing that matches by the RFC is lost, and a client that
    reuses a branch for a new request (RFC 4475 shows several) gets a new
    transaction instead of the previous request's response.
    """
    via = request.via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    seq = str(request.cseq.seq)
    if branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
        return ("s", branch, via.host.lower(), str(via.port or ""), request.call_id, seq, method)
    # RFC 2543 fallback: Request-URI is not used because ACK may differ; these fields suffice.
    from_tag = request.from_.tag or ""
    return ("s2543", request.call_id, from_tag, seq, method, str(via))


def client_key(branch: str, method: str) -> TransactionKey:
    return ("c", branch, "INVITE" if method == "ACK" else method)


def response_address(request: Request, source: Address) -> Address:
    """Where responses to ``request`` go (RFC 3261 18.2.2, RFC 3581 section 4)."""
    if source.reliable:
        return source
    via = request.via
    rport = via.rport
    if isinstance(rport, int) and not isinstance(rport, bool):
        return Address(source.transport, via.received or source.host, rport, source.flow)
    host = via.received or source.host
    return Address(source.transport, host, via.port or 5060, source.flow)


def stamp_via(request: Request, source: Address) -> None:
    """Add ``received`` and fill ``rport`` in the top Via (RFC 3261 18.2.1, RFC 3581)."""
    first = request.headers.pop_first_value("via")
    if first is None:
        return
    via = parse_via(first)
    changed = via
    if via.rport is True:
        changed = changed.with_param("received", source.host).with_param("rport", str(source.port))
    elif via.host.strip("[]").lower() != source.host.lower():
        changed = changed.with_param("received", source.host)
    request.headers.prepend("Via", str(changed) if changed is not via else first)


class TransactionLayer:
    """All client and server transactions of one SIP element."""

    def __init__(self, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        self.timers = timers
        self._txns: dict[TransactionKey, Transaction] = {}
        self._heap: list[tuple[float, int, TransactionKey]] = []
        self._scheduled: dict[TransactionKey, float] = {}
        self._seq = 0
        self._events: deque[Event] = deque()
        self._transmits: list[Transmit] = []

    # -- queries ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._txns)

    def state(self, key: TransactionKey) -> State | None:
        txn = self._txns.get(key)
        return txn.state if txn else None

    def server_request(self, key: TransactionKey) -> Request | None:
        txn = self._txns.get(key)
        return txn.request if txn else None

    def find_invite_for_cancel(self, cancel: Request) -> TransactionKey | None:
        """The INVITE server transaction a CANCEL refers to (RFC 3261 9.2)."""
        key = server_key(cancel)
        invite_key = (*key[:-1], "INVITE") if key[0] == "s" else None
        if invite_key and invite_key in self._txns:
            return invite_key
        return None

    # -- input ------------------------------------------------------------------
    def receive_request(self, request: Request, source: Address, now: float) -> None:
        """A validated request arrived from ``source``."""
        stamp_via(request, source)
        key = server_key(request)
        txn = self._txns.get(key)
        if request.method == "ACK":
            if txn is None or txn.state is State.ACCEPTED:
                # ACK for a 2xx: end to end, no transaction (RFC 6026).
                self._events.append(RequestReceived(request, source, None))
            else:
                self._apply(txn, txn.feed(Input.ACK, now))
            return
        if txn is not None:
            self._apply(txn, txn.feed(Input.REQUEST, now))
            return
        txn = new_server(key, request, response_address(request, source), self.timers)
        self._txns[key] = txn
        self._events.append(RequestReceived(request, source, key))
        if request.method == "INVITE":
            trying = make_response(request, 100, "Trying")
            self._apply(txn, txn.feed(Input.TU_PROVISIONAL, now, trying))

    def receive_response(self, response: Response, source: Address, now: float) -> None:
        """A validated response arrived from ``source``."""
        try:
            via = response.via
            cseq = response.cseq
        except SipParseError:
            return
        branch = via.branch
        txn = self._txns.get(client_key(branch, cseq.method)) if branch else None
        if txn is None:
            self._events.append(StrayResponse(response, source))
            return
        self._apply(txn, txn.feed(response_input_client(response), now, response))

    def send_request(self, request: Request, destination: Address, now: float) -> TransactionKey:
        """Start a client transaction; the request's top Via must carry a fresh branch."""
        via: Via = request.via
        if not via.branch:
            raise SipParseError("request to send has no branch in its top Via")
        key = client_key(via.branch, request.method)
        if key in self._txns:
            raise SipParseError("a client transaction with this branch already exists")
        txn, effects = new_client(key, request, destination, self.timers, now)
        self._txns[key] = txn
        self._apply(txn, effects)
        return key

    def send_response(self, key: TransactionKey, response: Response, now: float) -> bool:
        """Answer through a server transaction; False when it no longer exists."""
        txn = self._txns.get(key)
        if txn is None or key[0] == "c":
            return False
        self._apply(txn, txn.feed(response_input_server(response), now, response))
        return True

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """Send outside any transaction (ACK for 2xx, a stateless 400, a forwarded response)."""
        self._transmits.append(Transmit(message, destination))

    def transport_error(self, key: TransactionKey, now: float) -> None:
        txn = self._txns.get(key)
        if txn is not None:
            self._apply(txn, txn.feed(Input.TRANSPORT_ERROR, now))

    # -- timers -----------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction (may be a little early, never late)."""
        while self._heap:
            when, _, key = self._heap[0]
            if key in self._txns:
                return when
            self._pop()
        return None

    def handle_timer(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            key = self._pop()
            txn = self._txns.get(key)
            if txn is None:
                continue
            for inp in txn.due(now):
                self._apply(txn, txn.feed(inp, now))
                if txn.terminated:
                    break
            else:
                deadline = txn.next_deadline()
                if deadline is not None:
                    self._push(key, deadline)

    # -- output -----------------------------------------------------------------
    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def take_transmits(self) -> list[Transmit]:
        out, self._transmits = self._transmits, []
        return out

    # -- internals --------------------------------------------------------------
    def _push(self, key: TransactionKey, when: float) -> None:
        scheduled = self._scheduled.get(key)
        if scheduled is not None and scheduled <= when:
            return
        self._scheduled[key] = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, key))

    def _pop(self) -> TransactionKey:
        when, _, key = heapq.heappop(self._heap)
        if self._scheduled.get(key) == when:
            del self._scheduled[key]
        return key

    def _apply(self, txn: Transaction, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self._transmits.append(effect)
            else:
                self._events.append(effect)
        if txn.terminated:
            self._scheduled.pop(txn.key, None)
            if self._txns.pop(txn.key, None) is not None:
                self._events.append(TransactionTerminated(txn.key))
            return
        deadline = txn.next_deadline()
        if deadline is not None:
            self._push(txn.key, deadline)
