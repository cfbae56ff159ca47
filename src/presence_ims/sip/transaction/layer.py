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
from ..grammar import TOKEN_CHARSET
from ..headers import _VIA_COMPACT_RE, MAGIC_COOKIE, Via, parse_via
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
    NICT_TABLE,
    NIST_TABLE,
    CompletedNict,
    CompletedNist,
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
    return _server_key(request, request.via)


def _server_key(request: Request, via: Via) -> TransactionKey:
    """:func:`server_key` with the top Via already parsed."""
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
    return _response_address(request.via, source)


def _response_address(via: Via, source: Address) -> Address:
    """:func:`response_address` over an unreliable transport, the top Via already parsed."""
    rport = via.rport
    if isinstance(rport, int) and not isinstance(rport, bool):
        return Address(source.transport, via.received or source.host, rport, source.flow)
    host = via.received or source.host
    return Address(source.transport, host, via.port or 5060, source.flow)


def stamp_via(request: Request, source: Address) -> Via | None:
    """Add ``received`` and fill ``rport`` in the top Via (RFC 3261 18.2.1, RFC 3581).

    Returns the top Via as it now reads (``None`` when the request has none).
    """
    first = request.headers.pop_first_value("via")
    if first is None:
        return None
    via = parse_via(first)
    changed = via
    if via.rport is True:
        changed = changed.with_param("received", source.host).with_param("rport", str(source.port))
    elif via.host.strip("[]").lower() != source.host.lower():
        changed = changed.with_param("received", source.host)
    request.headers.prepend("Via", str(changed) if changed is not via else first)
    return changed


def _top_branch(response: Response) -> str | None:
    """``response.via.branch``, without building the Via when its line is plain.

    The top Via line is matched by the rule ``parse_via`` tries first and its
    parameters read as that function's plain-token path reads them, with its two
    checks (rport a port number, branch not empty); anything else (a list, quoted
    strings, odd spacing, a defect) goes through ``parse_via`` itself, which
    returns the same branch or raises the same error.
    """
    value = response.headers.get("via")
    if value is not None and "," not in value:
        m = _VIA_COMPACT_RE.fullmatch(value)
        if m is not None and (m.group(3) is None or int(m.group(3)) <= 65535):
            ptext = m.group(4)
            if ptext is None:
                return None
            branch: str | None = None
            for part in ptext.split(";"):
                name, eq, param = part.partition("=")
                name = name.strip(" \t")
                if not name or name.strip(TOKEN_CHARSET):
                    break
                low = name.lower()
                if eq:
                    param = param.strip(" \t")
                    if not param or param.strip(TOKEN_CHARSET):
                        break
                    if low == "rport" and not (param.isdigit() and int(param) <= 65535):
                        break
                    if low == "branch" and branch is None:
                        branch = param
                elif low == "branch":
                    break  # empty branch: a defect parse_via names
            else:
                return branch
    return response.via.branch


class TransactionLayer:
    """All client and server transactions of one SIP element.

    Transactions live in ``_txns``, except non-INVITE transactions in Completed
    over an unreliable transport: a server one waits for Timer J as a
    :class:`CompletedNist`, a client one for Timer K as a :class:`CompletedNict`,
    both in ``_completed`` (same key space, same tables).  Deadlines sit in a
    heap; Timer J and Timer K of the completed ones, each the same for all of
    them (64*T1, T4), mostly arrive in increasing order and go to one
    first-in first-out queue per timer instead (a deadline earlier than its
    queue's last one goes to the heap).  All hold ``(deadline, sequence, key)``
    and are merged in that order, so timers fire as from one heap.
    """

    def __init__(self, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        self.timers = timers
        self._txns: dict[TransactionKey, Transaction] = {}
        self._completed: dict[TransactionKey, CompletedNist | CompletedNict] = {}
        self._heap: list[tuple[float, int, TransactionKey]] = []
        self._fifo: deque[tuple[float, int, TransactionKey]] = deque()
        """Timer J of the completed NISTs."""
        self._fifo_k: deque[tuple[float, int, TransactionKey]] = deque()
        """Timer K of the completed NICTs."""
        self._fifos = (self._fifo, self._fifo_k)
        self._scheduled: dict[TransactionKey, float] = {}
        self._seq = 0
        self._events: deque[Event] = deque()
        self._transmits: list[Transmit] = []

    # -- queries ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._txns) + len(self._completed)

    def state(self, key: TransactionKey) -> State | None:
        txn = self._txns.get(key)
        if txn is not None:
            return txn.state
        done = self._completed.get(key)
        return done.state if done is not None else None

    def server_request(self, key: TransactionKey) -> Request | None:
        """The request of a live transaction (``None`` once a NIST keeps only its answer)."""
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
        via = stamp_via(request, source)
        if via is None:
            via = request.via  # raises the error a request without Via gets
        key = _server_key(request, via)
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
        done = self._completed.get(key)
        if done is not None:
            self._apply_completed(done, done.feed(Input.REQUEST, now))
            return
        peer = source if source.reliable else _response_address(via, source)
        txn = new_server(key, request, peer, self.timers)
        self._txns[key] = txn
        self._events.append(RequestReceived(request, source, key))
        if request.method == "INVITE":
            trying = make_response(request, 100, "Trying")
            self._apply(txn, txn.feed(Input.TU_PROVISIONAL, now, trying))

    def receive_response(self, response: Response, source: Address, now: float) -> None:
        """A validated response arrived from ``source``."""
        try:
            branch = _top_branch(response)
            cseq = response.cseq
        except SipParseError:
            return
        key = client_key(branch, cseq.method) if branch else None
        txn = self._txns.get(key) if key else None
        if txn is None:
            done = self._completed.get(key) if key else None
            if done is not None:  # a completed NICT absorbs it (no action in its table row)
                self._apply_completed(done, done.feed(response_input_client(response), now))
                return
            self._events.append(StrayResponse(response, source))
            return
        self._apply(txn, txn.feed(response_input_client(response), now, response))

    def send_request(
        self, request: Request, destination: Address, now: float, *, branch: str | None = None
    ) -> TransactionKey:
        """Start a client transaction; the request's top Via must carry a fresh branch.

        ``branch``: that Via's branch, when the caller has just written the Via
        itself (spares parsing it again); else it is read from the request.
        """
        if not branch:
            branch = request.via.branch
            if not branch:
                raise SipParseError("request to send has no branch in its top Via")
        key = client_key(branch, request.method)
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
            # a completed NIST takes no more responses from its TU (nothing in its table row)
            return key in self._completed
        self._apply(txn, txn.feed(response_input_server(response), now, response))
        return True

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """Send outside any transaction (ACK for 2xx, a stateless 400, a forwarded response)."""
        self._transmits.append(Transmit(message, destination))

    def transport_error(self, key: TransactionKey, now: float) -> None:
        txn = self._txns.get(key)
        if txn is not None:
            self._apply(txn, txn.feed(Input.TRANSPORT_ERROR, now))
            return
        done = self._completed.get(key)
        if done is not None:
            self._apply_completed(done, done.feed(Input.TRANSPORT_ERROR, now))

    # -- timers -----------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction (may be a little early, never late)."""
        heap, fifo = self._heap, self._fifo
        while heap:
            when, _, key = heap[0]
            if key in self._txns or key in self._completed:
                break
            self._pop()
        best = heap[0][0] if heap else None
        completed = self._completed
        for fifo in self._fifos:
            while fifo:
                when, _, key = fifo[0]
                done = completed.get(key)
                if done is not None and done.deadline == when:
                    if best is None or when < best:
                        best = when
                    break
                fifo.popleft()
        return best

    def handle_timer(self, now: float) -> None:
        heap, fifos = self._heap, self._fifos
        while True:
            first = heap[0] if heap else None
            source = None
            for fifo in fifos:
                if fifo and (first is None or fifo[0] < first):
                    first = fifo[0]
                    source = fifo
            if first is None or first[0] > now:
                return
            if source is None:
                self._fire(self._pop(), now)
            else:
                when, _, key = source.popleft()
                self._expire(key, when, now)

    def _fire(self, key: TransactionKey, now: float) -> None:
        txn = self._txns.get(key)
        if txn is None:
            done = self._completed.get(key)
            if done is not None and done.deadline <= now:
                self._expire(key, done.deadline, now)
            return
        for inp in txn.due(now):
            self._apply(txn, txn.feed(inp, now))
            if txn.terminated:
                break
        else:
            deadline = txn.next_deadline()
            if deadline is not None:
                self._push(key, deadline)

    def _expire(self, key: TransactionKey, when: float, now: float) -> None:
        """Timer J of a completed NIST or K of a completed NICT (due at ``when``) has fired."""
        done = self._completed.get(key)
        if done is not None and done.deadline == when:
            self._apply_completed(done, done.feed(done.TIMER, now))

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
        key = txn.key
        if txn.terminated:
            self._scheduled.pop(key, None)
            if self._txns.pop(key, None) is not None:
                self._events.append(TransactionTerminated(key))
            return
        deadlines = txn.deadlines
        if txn.state is State.COMPLETED and not txn.peer.reliable:
            table = txn.table
            done: CompletedNist | CompletedNict
            if table is NIST_TABLE:
                # Completed NIST over UDP: only Timer J is left; keep the answer, drop the rest
                when = deadlines[Input.TIMER_J]
                data = txn.last_data
                assert data is not None and len(deadlines) == 1
                done, fifo = CompletedNist(key, data, txn.peer, when), self._fifo
            elif table is NICT_TABLE:
                # Completed NICT over UDP: only Timer K matters (F would be ignored); drop the rest
                when = deadlines[Input.TIMER_K]
                done, fifo = CompletedNict(key, when), self._fifo_k
            else:
                if deadlines:
                    self._push(key, min(deadlines.values()))
                return
            del self._txns[key]
            self._scheduled.pop(key, None)
            self._completed[key] = done
            self._seq += 1
            if not fifo or fifo[-1][0] <= when:
                fifo.append((when, self._seq, key))
            else:
                heapq.heappush(self._heap, (when, self._seq, key))
            return
        if deadlines:
            self._push(key, min(deadlines.values()))

    def _apply_completed(self, done: CompletedNist | CompletedNict, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self._transmits.append(effect)
            else:
                self._events.append(effect)
        if done.terminated and self._completed.pop(done.key, None) is not None:
            self._events.append(TransactionTerminated(done.key))
