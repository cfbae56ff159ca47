"""RFC 3261 section 17 transactions (with RFC 6026), driven with a fake clock.

Nothing here opens a socket or sleeps: time is the ``now`` argument, and two
layers talk through :func:`transfer`, which serialises and re-parses every
message the way a transport would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from presence_ims.sip import (
    Headers,
    Message,
    Request,
    Response,
    SipParseError,
    make_response,
    parse_datagram,
    parse_uri,
    validate_request,
    validate_response,
)
from presence_ims.sip.transaction import (
    ICT_TABLE,
    IST_TABLE,
    NICT_TABLE,
    NIST_TABLE,
    Address,
    Event,
    Input,
    RequestReceived,
    ResponseReceived,
    ServerTransactionFailed,
    State,
    StrayResponse,
    TimerConfig,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
    TransactionTransportError,
    Transmit,
    build_ack,
    client_key,
    new_branch,
    response_address,
    server_key,
    stamp_via,
)
from presence_ims.sip.transaction.machines import CompletedNict, Transaction

E = TypeVar("E")

UAC = Address("udp", "192.0.2.1", 5060)
UAS = Address("udp", "192.0.2.2", 5060)
UAC_TCP = Address("tcp", "192.0.2.1", 40000, flow=11)
UAS_TCP = Address("tcp", "192.0.2.2", 5060, flow=12)


def make_request(
    method: str = "OPTIONS",
    *,
    branch: str | None = "z9hG4bKtest1",
    sent_by: str = "192.0.2.1:5060",
    transport: str = "UDP",
    seq: int = 1,
    call_id: str = "cid-1@192.0.2.1",
    rport: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> Request:
    via = f"SIP/2.0/{transport} {sent_by}"
    if branch is not None:
        via += f";branch={branch}"
    if rport:
        via += ";rport"
    headers = Headers(
        [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@home1.net>;tag=from1"),
            ("To", "<sip:bob@home1.net>"),
            ("Call-ID", call_id),
            ("CSeq", f"{seq} {'INVITE' if method == 'ACK' else method}"),
            *extra,
        ]
    )
    return Request(headers, b"", method, parse_uri("sip:bob@home1.net"))


M = TypeVar("M", bound=Message)


def reparse(msg: M) -> M:
    """What the peer's transport hands up: serialised, parsed and validated."""
    again = parse_datagram(msg.serialize())
    if isinstance(again, Request):
        validate_request(again)
    else:
        assert isinstance(again, Response)
        validate_response(again)
    assert type(again) is type(msg)
    return again


def status_of(tx: Transmit) -> int:
    assert isinstance(tx.message, Response)
    return tx.message.status


@dataclass
class Side:
    """One transaction layer with its own record of what it sent and reported."""

    layer: TransactionLayer = field(default_factory=TransactionLayer)
    sent: list[tuple[float, Transmit]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    delivered: int = 0
    """How many of ``sent`` :func:`transfer` has handed to the peer."""

    def pump(self, now: float) -> list[Transmit]:
        tx = self.layer.take_transmits()
        self.sent.extend((now, t) for t in tx)
        while (ev := self.layer.next_event()) is not None:
            self.events.append(ev)
        return tx

    def run_until(self, end: float, start: float = 0.0) -> float:
        """Fire every timer due up to ``end`` (bounded: at most 1000 firings)."""
        now = start
        for _ in range(1000):
            when = self.layer.get_timer()
            if when is None or when > end:
                break
            now = max(now, when)
            self.layer.handle_timer(now)
            self.pump(now)
        else:  # pragma: no cover - a runaway timer is a bug
            raise AssertionError("timer storm")
        return now

    def times(self, method: str | None = None, status: int | None = None) -> list[float]:
        out = []
        for when, tx in self.sent:
            m = tx.message
            if method is not None and isinstance(m, Request) and m.method == method:
                out.append(when)
            if status is not None and isinstance(m, Response) and m.status == status:
                out.append(when)
        return out

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


def client(method: str, peer: Address = UAS, now: float = 0.0, **kw: Any) -> tuple[Side, TransactionKey, Request]:
    side = Side()
    req = make_request(method, **kw)
    key = side.layer.send_request(req, peer, now)
    side.pump(now)
    return side, key, req


def server(method: str, source: Address = UAC, now: float = 0.0, **kw: Any) -> tuple[Side, TransactionKey, Request]:
    side = Side()
    req = reparse(make_request(method, **kw))
    assert isinstance(req, Request)
    side.layer.receive_request(req, source, now)
    side.pump(now)
    received = side.of(RequestReceived)
    assert len(received) == 1
    key = received[0].transaction
    assert key is not None
    return side, key, req


def respond_to(req: Request, status: int, tag: str = "to1") -> Response:
    resp = reparse(make_response(req, status, to_tag=tag))
    assert isinstance(resp, Response)
    return resp


# -- helpers and keys -------------------------------------------------------------


def test_new_branch_has_the_magic_cookie_and_is_unique() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(b.startswith("z9hG4bK") and len(b) > 7 for b in branches)


def test_keys() -> None:
    assert client_key("z9hG4bK1", "ACK") == client_key("z9hG4bK1", "INVITE")
    assert client_key("z9hG4bK1", "CANCEL") != client_key("z9hG4bK1", "INVITE")
    inv = make_request("INVITE")
    ack = make_request("ACK")
    assert server_key(inv) == server_key(ack)
    assert server_key(make_request("CANCEL", extra=())) != server_key(inv)
    # RFC 2543 fallback for a branch without the magic cookie
    old = make_request("INVITE", branch=None)
    old_ack = make_request("ACK", branch=None)
    assert server_key(old)[0] == "s2543"
    assert server_key(old) == server_key(old_ack)
    assert server_key(make_request("INVITE", branch="z9hG4bK"))[0] == "s2543"


def test_send_request_needs_a_fresh_branch() -> None:
    layer = TransactionLayer()
    with pytest.raises(SipParseError):
        layer.send_request(make_request(branch=None), UAS, 0.0)
    layer.send_request(make_request(), UAS, 0.0)
    with pytest.raises(SipParseError):
        layer.send_request(make_request(), UAS, 0.0)


# -- non-INVITE client transaction (Figure 6) ------------------------------------------


def test_nict_timer_e_schedule_and_timer_f_timeout() -> None:
    side, key, req = client("OPTIONS")
    assert [tx.message for _, tx in side.sent] == [req]
    assert side.layer.state(key) is State.TRYING
    side.run_until(40.0)
    # Timer E: 0.5, 1, 2, 4, 4, 4 ... (capped at T2 = 4 s)
    assert side.times("OPTIONS") == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(tx.destination == UAS and tx.transaction == key for _, tx in side.sent)
    timed_out = side.of(TransactionTimedOut)
    assert timed_out == [TransactionTimedOut(key, req)]
    assert side.events[-1] == TransactionTerminated(key)
    assert side.layer.state(key) is None
    assert len(side.layer) == 0
    assert side.layer.get_timer() is None


def test_nict_timer_e_with_custom_timers() -> None:
    side = Side(TransactionLayer(TimerConfig(t1=0.1, t2=0.3)))
    key = side.layer.send_request(make_request(), UAS, 100.0)
    side.pump(100.0)
    side.run_until(200.0, 100.0)
    rel = [round(t - 100.0, 6) for t in side.times("OPTIONS")]
    assert rel[:6] == [0.0, 0.1, 0.3, 0.6, 0.9, 1.2]
    assert side.of(TransactionTimedOut)[0].transaction == key
    assert side.layer.get_timer() is None


def test_nict_proceeding_retransmits_every_t2() -> None:
    side, key, req = client("SUBSCRIBE")
    side.layer.receive_response(respond_to(req, 100), UAS, 0.2)
    side.pump(0.2)
    assert side.layer.state(key) is State.PROCEEDING
    side.run_until(13.0)
    assert side.times("SUBSCRIBE") == [0.0, 0.5, 4.5, 8.5, 12.5]
    provisional = side.of(ResponseReceived)
    assert [e.response.status for e in provisional] == [100]


def test_nict_final_response_then_timer_k() -> None:
    side, key, req = client("PUBLISH")
    side.run_until(0.9)
    ok = respond_to(req, 200)
    side.layer.receive_response(ok, UAS, 1.0)
    side.pump(1.0)
    assert side.layer.state(key) is State.COMPLETED
    finals = side.of(ResponseReceived)
    assert len(finals) == 1 and finals[0].response is ok
    # a retransmitted final response is absorbed
    side.layer.receive_response(respond_to(req, 200), UAS, 2.0)
    side.pump(2.0)
    assert len(side.of(ResponseReceived)) == 1
    timer = side.layer.get_timer()
    assert timer is not None and timer <= 6.0  # may wake early (a stale Timer E), never late
    side.run_until(5.9)
    assert side.layer.state(key) is State.COMPLETED
    side.run_until(6.0)
    assert side.layer.state(key) is None
    assert side.times("PUBLISH") == [0.0, 0.5]  # no retransmission after the 200
    assert not side.of(TransactionTimedOut)


def test_completed_nict_over_udp_keeps_only_timer_k() -> None:
    side, key, req = client("NOTIFY")
    side.layer.receive_response(respond_to(req, 200), UAS, 0.1)
    side.pump(0.1)
    done = side.layer._completed[key]
    assert isinstance(done, CompletedNict) and done.deadline == pytest.approx(5.1)
    assert key not in side.layer._txns
    assert side.layer.state(key) is State.COMPLETED and len(side.layer) == 1
    # retransmitted responses, even another status, and a transport error are absorbed
    for status in (200, 481):
        side.layer.receive_response(respond_to(req, status), UAS, 1.0)
    side.layer.transport_error(key, 1.0)
    side.pump(1.0)
    assert len(side.of(ResponseReceived)) == 1
    assert not side.of(StrayResponse) and not side.of(TransactionTransportError)
    side.run_until(5.09)
    assert side.layer.state(key) is State.COMPLETED
    side.run_until(5.1)
    assert side.layer.state(key) is None and len(side.layer) == 0
    assert side.of(TransactionTerminated) == [TransactionTerminated(key)]
    assert side.times("NOTIFY") == [0.0]
    assert side.layer.get_timer() is None
    # afterwards the same response is a stray one, as before
    side.layer.receive_response(respond_to(req, 200), UAS, 6.0)
    side.pump(6.0)
    assert len(side.of(StrayResponse)) == 1


def test_completed_nict_late_final_timer_f_is_ignored_and_k_ends_it() -> None:
    side, key, req = client("NOTIFY")
    side.run_until(30.0)
    side.layer.receive_response(respond_to(req, 200), UAS, 30.0)
    side.pump(30.0)
    side.run_until(34.9, 30.0)  # Timer F (32 s) would have fired into Completed: nothing
    assert side.layer.state(key) is State.COMPLETED and not side.of(TransactionTimedOut)
    side.run_until(35.0, 34.9)
    assert side.layer.state(key) is None
    assert side.of(TransactionTerminated) == [TransactionTerminated(key)]


def test_timers_of_heap_and_both_queues_fire_in_deadline_order() -> None:
    layer = TransactionLayer()
    side = Side(layer)
    order: list[tuple[float, TransactionKey]] = []
    # NICTs completed at t (K at t + 5), NISTs answered at t (J at t + 32), an INVITE
    # client transaction (heap: A, B) and a NICT left unanswered (heap: E, F)
    for i, t in enumerate((0.0, 10.0, 20.0, 29.0)):
        req = make_request("NOTIFY", branch=f"z9hG4bKc{i}", call_id=f"c{i}")
        key = layer.send_request(req, UAS, t)
        layer.receive_response(respond_to(req, 200), UAS, t)
        order.append((t + 5.0, key))
        incoming = reparse(make_request("PUBLISH", branch=f"z9hG4bKs{i}", call_id=f"s{i}"))
        layer.receive_request(incoming, UAC, t)
        side.pump(t)
        skey = side.of(RequestReceived)[-1].transaction
        assert skey is not None
        layer.send_response(skey, make_response(incoming, 200, to_tag="x"), t)
        order.append((t + 32.0, skey))
        side.pump(t)
    lost = make_request("OPTIONS", branch="z9hG4bKlost", call_id="lost")
    order.append((32.0, layer.send_request(lost, UAS, 0.0)))
    side.pump(0.0)
    side.run_until(100.0)
    ended = [e.transaction for e in side.of(TransactionTerminated)]
    assert ended == [k for _, k in sorted(order, key=lambda p: p[0])]
    assert len(layer) == 0 and layer.get_timer() is None


VIA_SAMPLES = [
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport=5060;received=192.0.2.9",
    "SIP/2.0/UDP h;rport;branch=z9hG4bK1",
    "SIP/2.0/UDP h;BRANCH=z9hG4bKup",
    "SIP/2.0/UDP h;branch=a;branch=b",
    "SIP/2.0/UDP h;branch=",
    "SIP/2.0/UDP h;branch",
    "SIP/2.0/UDP h;rport=99999;branch=z9hG4bK1",
    "SIP/2.0/UDP h:70000;branch=z9hG4bK1",
    "SIP/2.0/UDP h ; branch = z9hG4bK1",
    'SIP/2.0/UDP h;x="a;branch=b";branch=c',
    "SIP/2.0/UDP h;branch=z9hG4bK1, SIP/2.0/UDP g;branch=z9hG4bK2",
    "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;received=2001:db8::9",
    "SIP/2.0/UDP h;",
    "SIP/2.0/UDP h",
    "sip/2.0/udp h;branch=z9hG4bKlow",
    "garbage;branch=z9hG4bK1",
    "SIP/2.0/UDP h;branch=z9hG4bK1 ",
]


def _branch_or_error(via: str, fast: bool) -> str | type[SipParseError] | None:
    from presence_ims.sip.transaction.layer import _top_branch

    response = Response(Headers([("Via", via)]), b"", 200, "OK")
    try:
        return _top_branch(response) if fast else response.via.branch
    except SipParseError:
        return SipParseError


@pytest.mark.parametrize("via", VIA_SAMPLES)
def test_top_branch_reads_what_parse_via_reads(via: str) -> None:
    assert _branch_or_error(via, True) == _branch_or_error(via, False)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(["branch", "BRANCH", "rport", "received", "x", "=", ";", " ", "z9hG4bK",
                         "1", "65536", '"', ",", ":", "[", "]", "\t", "."]),
        max_size=12,
    ),
)
def test_top_branch_matches_parse_via_on_random_parameters(parts: list[str]) -> None:
    via = "SIP/2.0/UDP 192.0.2.1:5060;" + "".join(parts)
    assert _branch_or_error(via, True) == _branch_or_error(via, False)


def test_nict_reliable_no_retransmissions_and_zero_k() -> None:
    side, key, req = client("OPTIONS", UAS_TCP, transport="TCP")
    assert side.layer.get_timer() == pytest.approx(32.0)  # only Timer F
    side.layer.receive_response(respond_to(req, 404), UAS_TCP, 3.0)
    side.pump(3.0)
    assert side.layer.state(key) is State.COMPLETED
    assert side.layer.get_timer() == pytest.approx(3.0)  # K = 0
    side.layer.handle_timer(3.0)
    side.pump(3.0)
    assert side.layer.state(key) is None
    assert side.times("OPTIONS") == [0.0]


def test_nict_reliable_timeout_without_retransmissions() -> None:
    side, _key, _ = client("OPTIONS", UAS_TCP, transport="TCP")
    side.run_until(40.0)
    assert side.times("OPTIONS") == [0.0]
    assert [type(e) for e in side.events] == [TransactionTimedOut, TransactionTerminated]


# -- INVITE client transaction (Figure 5, RFC 6026) -----------------------------------------


def test_ict_timer_a_doubles_and_timer_b_times_out() -> None:
    side, key, req = client("INVITE")
    side.run_until(40.0)
    assert side.times("INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert side.of(TransactionTimedOut) == [TransactionTimedOut(key, req)]
    assert side.layer.state(key) is None


def test_ict_provisional_stops_retransmissions() -> None:
    side, key, req = client("INVITE")
    side.run_until(0.6)
    side.layer.receive_response(respond_to(req, 180), UAS, 0.7)
    side.pump(0.7)
    assert side.layer.state(key) is State.PROCEEDING
    side.run_until(31.0)
    assert side.times("INVITE") == [0.0, 0.5]
    side.run_until(40.0)
    assert side.of(TransactionTimedOut)  # Timer B still runs in Proceeding


def test_ict_non_2xx_builds_the_ack_and_timer_d() -> None:
    route = (("Route", "<sip:pcscf.home1.net;lr>"),)
    side, key, req = client("INVITE", extra=route)
    busy = respond_to(req, 486)
    side.layer.receive_response(busy, UAS, 1.0)
    side.pump(1.0)
    assert side.layer.state(key) is State.COMPLETED
    acks = [tx for _, tx in side.sent if isinstance(tx.message, Request) and tx.message.method == "ACK"]
    assert len(acks) == 1
    ack = acks[0].message
    assert isinstance(ack, Request)
    assert acks[0].destination == UAS
    assert ack.uri == req.uri
    assert ack.headers.get_lines("via") == [req.headers.get("via")]
    assert ack.headers.get("from") == req.headers.get("from")
    assert ack.to.tag == "to1"
    assert ack.call_id == req.call_id
    assert str(ack.cseq) == "1 ACK"
    assert ack.headers.get_lines("route") == ["<sip:pcscf.home1.net;lr>"]
    assert ack == build_ack(req, busy) or ack.serialize() == build_ack(req, busy).serialize()
    # a retransmitted 486 gets the ACK again and is not passed up twice
    side.layer.receive_response(respond_to(req, 486), UAS, 2.0)
    side.pump(2.0)
    assert len(side.times("ACK")) == 2
    assert len(side.of(ResponseReceived)) == 1
    # Timer D: 32 s on UDP
    side.run_until(32.9)
    assert side.layer.state(key) is State.COMPLETED
    side.run_until(33.0)
    assert side.layer.state(key) is None


def test_ict_reliable_timer_d_is_zero() -> None:
    side, key, req = client("INVITE", UAS_TCP, transport="TCP")
    side.layer.receive_response(respond_to(req, 603), UAS_TCP, 1.0)
    side.pump(1.0)
    side.run_until(1.0)
    assert side.layer.state(key) is None
    assert side.times("INVITE") == [0.0]
    assert side.times("ACK") == [1.0]


def test_ict_2xx_goes_to_accepted_and_timer_m() -> None:
    side, key, req = client("INVITE")
    ok = respond_to(req, 200)
    side.layer.receive_response(ok, UAS, 1.0)
    side.pump(1.0)
    assert side.layer.state(key) is State.ACCEPTED
    assert not side.times("ACK")  # the TU acknowledges a 2xx, not the transaction
    # RFC 6026: retransmitted 2xx are passed up too
    side.layer.receive_response(respond_to(req, 200, "to2"), UAS, 2.0)
    side.pump(2.0)
    assert len(side.of(ResponseReceived)) == 2
    side.run_until(32.9)
    assert side.layer.state(key) is State.ACCEPTED
    side.run_until(33.0)
    assert side.layer.state(key) is None


def test_ict_and_nict_transport_error() -> None:
    for method in ("INVITE", "OPTIONS"):
        side, key, req = client(method)
        side.layer.transport_error(key, 0.1)
        side.pump(0.1)
        assert side.of(TransactionTransportError) == [
            TransactionTransportError(key, req, "transport error")
        ]
        assert side.layer.state(key) is None
        side.layer.transport_error(key, 0.2)  # unknown key: nothing happens
        side.pump(0.2)
        assert len(side.events) == 2


def test_stray_responses() -> None:
    side, key, _req = client("OPTIONS")
    other = respond_to(make_request(branch="z9hG4bKother"), 200)
    side.layer.receive_response(other, UAS, 1.0)
    wrong_method = respond_to(make_request("SUBSCRIBE"), 200)  # same branch, other method
    side.layer.receive_response(wrong_method, UAS, 1.0)
    side.pump(1.0)
    strays = side.of(StrayResponse)
    assert [s.response for s in strays] == [other, wrong_method]
    assert side.layer.state(key) is State.TRYING
    # a response without a usable Via or CSeq is dropped silently
    broken = Response(Headers([("CSeq", "1 OPTIONS")]), b"", 200, "OK")
    side.layer.receive_response(broken, UAS, 1.0)
    side.pump(1.0)
    assert len(side.events) == 2


# -- INVITE server transaction (Figure 7, RFC 6026) ----------------------------------------


def test_ist_sends_100_trying_and_absorbs_retransmissions() -> None:
    side, key, _req = server("INVITE")
    assert side.layer.state(key) is State.PROCEEDING
    assert [status_of(tx) for _, tx in side.sent] == [100]
    trying = side.sent[0][1].message
    assert isinstance(trying, Response) and trying.to.tag is None
    assert side.sent[0][1].destination == UAC
    again = reparse(make_request("INVITE"))
    assert isinstance(again, Request)
    side.layer.receive_request(again, UAC, 0.3)
    side.pump(0.3)
    assert side.times(status=100) == [0.0, 0.3]  # the last response is resent
    assert len(side.of(RequestReceived)) == 1  # not passed up again


def test_ist_non_2xx_timer_g_h_and_ack() -> None:
    side, key, req = server("INVITE")
    busy = make_response(req, 486, to_tag="t")
    assert side.layer.send_response(key, busy, 1.0)
    side.pump(1.0)
    assert side.layer.state(key) is State.COMPLETED
    side.run_until(10.0)
    # Timer G: 0.5, 1, 2, 4, 4 ... capped at T2
    assert side.times(status=486) == [1.0, 1.5, 2.5, 4.5, 8.5]
    # a retransmitted INVITE gets the 486 again
    inv = reparse(make_request("INVITE"))
    assert isinstance(inv, Request)
    side.layer.receive_request(inv, UAC, 10.5)
    side.pump(10.5)
    assert side.times(status=486)[-1] == 10.5
    # the ACK built by a client transaction is absorbed: Confirmed, not passed up
    ack = reparse(build_ack(req, busy))
    assert isinstance(ack, Request)
    side.layer.receive_request(ack, UAC, 11.0)
    side.pump(11.0)
    assert side.layer.state(key) is State.CONFIRMED
    assert len(side.of(RequestReceived)) == 1
    sent = len(side.sent)
    side.layer.receive_request(reparse(build_ack(req, busy)), UAC, 12.0)
    side.run_until(15.9)
    assert len(side.sent) == sent  # Confirmed: no more 486
    assert side.layer.state(key) is State.CONFIRMED
    side.run_until(16.0)  # Timer I = T4 after the ACK
    assert side.layer.state(key) is None
    assert not side.of(ServerTransactionFailed)


def test_ist_timer_h_without_ack() -> None:
    side, key, req = server("INVITE")
    side.layer.send_response(key, make_response(req, 404, to_tag="t"), 1.0)
    side.pump(1.0)
    side.run_until(32.9)
    assert side.layer.state(key) is State.COMPLETED
    side.run_until(33.0)  # Timer H = 64*T1
    failed = side.of(ServerTransactionFailed)
    assert len(failed) == 1 and "Timer H" in failed[0].reason
    assert side.layer.state(key) is None


def test_ist_reliable_no_g_and_zero_i() -> None:
    side, key, req = server("INVITE", UAC_TCP, transport="TCP", sent_by="192.0.2.1:40000")
    busy = make_response(req, 486, to_tag="t")
    side.layer.send_response(key, busy, 1.0)
    side.pump(1.0)
    assert side.sent[-1][1].destination == UAC_TCP
    assert side.sent[-1][1].destination.flow == UAC_TCP.flow
    side.run_until(5.0)
    assert side.times(status=486) == [1.0]
    ack = reparse(build_ack(req, busy))
    assert isinstance(ack, Request)
    side.layer.receive_request(ack, UAC_TCP, 5.0)
    side.pump(5.0)
    side.run_until(5.0)
    assert side.layer.state(key) is None


def test_ist_2xx_accepted_timer_l_and_2xx_ack_goes_to_the_tu() -> None:
    side, key, req = server("INVITE")
    ok = make_response(req, 200, to_tag="t")
    side.layer.send_response(key, ok, 1.0)
    side.pump(1.0)
    assert side.layer.state(key) is State.ACCEPTED
    # the TU retransmits its 2xx through the transaction
    assert side.layer.send_response(key, ok, 1.5)
    side.pump(1.5)
    assert side.times(status=200) == [1.0, 1.5]
    # the ACK for a 2xx is a new transaction: handed to the TU with no transaction
    ack = reparse(make_request("ACK", branch="z9hG4bKack2xx"))
    assert isinstance(ack, Request)
    side.layer.receive_request(ack, UAC, 2.0)
    # an ACK that reuses the INVITE's branch in Accepted is passed up too
    same = reparse(make_request("ACK"))
    assert isinstance(same, Request)
    side.layer.receive_request(same, UAC, 2.1)
    side.pump(2.1)
    acks = [e for e in side.of(RequestReceived) if e.request.method == "ACK"]
    assert len(acks) == 2 and all(e.transaction is None for e in acks)
    assert side.layer.state(key) is State.ACCEPTED
    side.run_until(32.9)
    assert side.layer.state(key) is State.ACCEPTED
    side.run_until(33.0)  # Timer L
    assert side.layer.state(key) is None


def test_ist_transport_error() -> None:
    side, key, req = server("INVITE")
    side.layer.transport_error(key, 0.5)
    side.pump(0.5)
    failed = side.of(ServerTransactionFailed)
    assert failed == [ServerTransactionFailed(key, req, "transport error")]
    assert side.layer.state(key) is None
    assert not side.layer.send_response(key, make_response(req, 200), 1.0)


# -- non-INVITE server transaction (Figure 8) --------------------------------------------


def test_nist_trying_discards_retransmissions() -> None:
    side, key, _req = server("PUBLISH")
    assert side.layer.state(key) is State.TRYING
    assert side.sent == []  # no 100 Trying for non-INVITE
    again = reparse(make_request("PUBLISH"))
    assert isinstance(again, Request)
    side.layer.receive_request(again, UAC, 0.5)
    side.pump(0.5)
    assert side.sent == []
    assert len(side.of(RequestReceived)) == 1


def test_nist_provisional_final_and_timer_j() -> None:
    side, key, req = server("SUBSCRIBE")
    side.layer.send_response(key, make_response(req, 100), 0.1)
    side.pump(0.1)
    assert side.layer.state(key) is State.PROCEEDING
    side.layer.receive_request(reparse(make_request("SUBSCRIBE")), UAC, 0.2)
    side.pump(0.2)
    assert side.times(status=100) == [0.1, 0.2]
    side.layer.send_response(key, make_response(req, 200, to_tag="t"), 1.0)
    side.pump(1.0)
    assert side.layer.state(key) is State.COMPLETED
    side.layer.receive_request(reparse(make_request("SUBSCRIBE")), UAC, 2.0)
    side.pump(2.0)
    assert side.times(status=200) == [1.0, 2.0]
    # the TU cannot send a second final response
    side.layer.send_response(key, make_response(req, 500), 3.0)
    side.pump(3.0)
    assert side.times(status=500) == []
    side.run_until(32.9)
    assert side.layer.state(key) is State.COMPLETED
    side.run_until(33.0)  # Timer J = 64*T1 after the final response
    assert side.layer.state(key) is None
    assert side.events[-1] == TransactionTerminated(key)


def test_nist_reliable_zero_j() -> None:
    side, key, req = server("PUBLISH", UAC_TCP, transport="TCP", sent_by="192.0.2.1:40000")
    side.layer.send_response(key, make_response(req, 200, to_tag="t"), 1.0)
    side.pump(1.0)
    side.run_until(1.0)
    assert side.layer.state(key) is None


def test_nist_transport_error_in_completed() -> None:
    side, key, req = server("MESSAGE")
    side.layer.send_response(key, make_response(req, 200, to_tag="t"), 1.0)
    side.layer.transport_error(key, 1.1)
    side.pump(1.1)
    assert [type(e) for e in side.events][-2:] == [ServerTransactionFailed, TransactionTerminated]


def test_send_response_on_unknown_or_client_key() -> None:
    side, key, req = client("OPTIONS")
    assert not side.layer.send_response(key, make_response(req, 200), 0.0)
    assert not side.layer.send_response(("s", "nope"), make_response(req, 200), 0.0)


def test_send_stateless() -> None:
    layer = TransactionLayer()
    resp = make_response(make_request(), 400, "bad")
    layer.send_stateless(resp, UAC)
    assert layer.take_transmits() == [Transmit(resp, UAC)]
    assert layer.take_transmits() == []


# -- CANCEL ------------------------------------------------------------------------------


def test_cancel_finds_its_invite() -> None:
    side, key, _req = server("INVITE")
    cancel = reparse(make_request("CANCEL"))
    assert isinstance(cancel, Request)
    side.layer.receive_request(cancel, UAC, 0.5)
    side.pump(0.5)
    cancel_events = [e for e in side.of(RequestReceived) if e.request.method == "CANCEL"]
    assert len(cancel_events) == 1
    cancel_key = cancel_events[0].transaction
    assert cancel_key is not None and cancel_key != key
    assert side.layer.find_invite_for_cancel(cancel) == key
    other = reparse(make_request("CANCEL", branch="z9hG4bKunknown"))
    assert isinstance(other, Request)
    assert side.layer.find_invite_for_cancel(other) is None
    other_call = reparse(make_request("CANCEL", call_id="another"))
    assert isinstance(other_call, Request)
    assert side.layer.find_invite_for_cancel(other_call) is None
    old = reparse(make_request("CANCEL", branch=None))
    assert isinstance(old, Request)
    assert side.layer.find_invite_for_cancel(old) is None


# -- two layers talking -------------------------------------------------------------------


def transfer(src: Side, dst: Side, now: float, drop: int = 0) -> int:
    """Deliver what ``src`` sent since last time to ``dst`` (dropping the first ``drop``)."""
    src.pump(now)
    pending = src.sent[src.delivered :]
    src.delivered = len(src.sent)
    delivered = 0
    for _, tx in pending:
        if drop > 0:
            drop -= 1
            continue
        msg = reparse(tx.message)
        source = UAC if tx.destination == UAS else UAS
        if isinstance(msg, Request):
            dst.layer.receive_request(msg, source, now)
        else:
            assert isinstance(msg, Response)
            dst.layer.receive_response(msg, source, now)
        delivered += 1
    dst.pump(now)
    return delivered


def test_two_layers_non_invite_with_a_lost_request() -> None:
    uac, uas = Side(), Side()
    key = uac.layer.send_request(make_request("PUBLISH"), UAS, 0.0)
    assert transfer(uac, uas, 0.0, drop=1) == 0  # lost
    assert uas.events == []
    now = uac.layer.get_timer()
    assert now is not None and now == pytest.approx(0.5)
    uac.layer.handle_timer(now)
    transfer(uac, uas, now)
    (incoming,) = uas.of(RequestReceived)
    assert incoming.request.method == "PUBLISH"
    assert incoming.transaction is not None
    uas.layer.send_response(incoming.transaction, make_response(incoming.request, 200, to_tag="x"), now)
    transfer(uas, uac, now)
    finals = uac.of(ResponseReceived)
    assert [e.response.status for e in finals] == [200]
    assert finals[0].transaction == key


def test_two_layers_invite_rejected_and_acked() -> None:
    uac, uas = Side(), Side()
    key = uac.layer.send_request(make_request("INVITE"), UAS, 0.0)
    transfer(uac, uas, 0.0)
    transfer(uas, uac, 0.0)  # 100 Trying
    assert uac.layer.state(key) is State.PROCEEDING
    (incoming,) = uas.of(RequestReceived)
    skey = incoming.transaction
    assert skey is not None
    uas.layer.send_response(skey, make_response(incoming.request, 486, to_tag="b"), 1.0)
    transfer(uas, uac, 1.0)
    assert uac.layer.state(key) is State.COMPLETED
    transfer(uac, uas, 1.0)  # the ACK built by the client transaction
    assert uas.layer.state(skey) is State.CONFIRMED
    assert len(uas.of(RequestReceived)) == 1  # the ACK was absorbed, not passed up


# -- transport helpers -------------------------------------------------------------------


def test_stamp_via_adds_received_when_host_differs() -> None:
    req = make_request(sent_by="ue.home1.net:5062")
    stamp_via(req, Address("udp", "192.0.2.9", 5062))
    assert req.headers.get("via") == "SIP/2.0/UDP ue.home1.net:5062;branch=z9hG4bKtest1;received=192.0.2.9"


def test_stamp_via_keeps_the_bytes_when_nothing_changes() -> None:
    req = make_request(sent_by="192.0.2.1:5060")
    req.headers.set("Via", "SIP/2.0/UDP 192.0.2.1:5060 ; branch=z9hG4bKx")
    stamp_via(req, UAC)
    assert req.headers.get("via") == "SIP/2.0/UDP 192.0.2.1:5060 ; branch=z9hG4bKx"
    v6 = make_request(sent_by="[2001:db8::1]:5060")
    before = v6.headers.get("via")
    stamp_via(v6, Address("udp", "2001:DB8::1", 5060))
    assert v6.headers.get("via") == before


def test_stamp_via_fills_rport() -> None:
    req = make_request(sent_by="10.0.0.1:5060", rport=True)
    req.headers.add("Via", "SIP/2.0/UDP second.example.com;branch=z9hG4bK2")
    stamp_via(req, Address("udp", "192.0.2.9", 40123))
    assert req.via.received == "192.0.2.9"
    assert req.via.rport == 40123
    assert len(req.vias) == 2 and req.vias[1].host == "second.example.com"
    # IPv6 source: received is written without brackets and parses back
    v6 = make_request(sent_by="[2001:db8::1]:5060", rport=True)
    stamp_via(v6, Address("udp", "2001:db8::2", 5099))
    assert reparse(v6).via.received == "2001:db8::2"
    assert v6.via.rport == 5099


def test_stamp_via_without_via() -> None:
    req = make_request()
    req.headers.remove("via")
    stamp_via(req, UAC)
    assert "via" not in req.headers


def test_response_address() -> None:
    # reliable: back on the connection the request came in on
    tcp = make_request(transport="TCP", sent_by="ue.home1.net:5060")
    assert response_address(tcp, UAC_TCP) == UAC_TCP
    assert response_address(tcp, UAC_TCP).flow == UAC_TCP.flow
    # rport filled: received + rport (RFC 3581 section 4)
    nat = make_request(sent_by="10.0.0.1:5060", rport=True)
    source = Address("udp", "192.0.2.9", 40123)
    stamp_via(nat, source)
    assert response_address(nat, source) == Address("udp", "192.0.2.9", 40123)
    # received without rport: the source address at the Via port
    plain = make_request(sent_by="ue.home1.net:5070")
    stamp_via(plain, source)
    assert response_address(plain, source) == Address("udp", "192.0.2.9", 5070)
    # no port in Via: 5060
    noport = make_request(sent_by="192.0.2.9")
    assert response_address(noport, source) == Address("udp", "192.0.2.9", 5060)


def test_server_answers_at_the_rport() -> None:
    src = Address("udp", "192.0.2.9", 40123)
    side = Side()
    req = reparse(make_request("OPTIONS", sent_by="10.0.0.1:5060", rport=True))
    assert isinstance(req, Request)
    side.layer.receive_request(req, src, 0.0)
    side.pump(0.0)
    (ev,) = side.of(RequestReceived)
    assert ev.transaction is not None
    side.layer.send_response(ev.transaction, make_response(ev.request, 200), 0.0)
    side.pump(0.0)
    assert side.sent[-1][1].destination == src
    assert "received=192.0.2.9;rport=40123" in (side.sent[-1][1].message.headers.get("via") or "")


# -- the tables -------------------------------------------------------------------------

TABLES = {"ICT": ICT_TABLE, "NICT": NICT_TABLE, "IST": IST_TABLE, "NIST": NIST_TABLE}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_pairs_missing_from_a_table_are_ignored(name: str) -> None:
    table = TABLES[name]
    states = {s for s, _ in table} | {nxt for _, nxt in table.values()}
    req = make_request("INVITE" if name in ("ICT", "IST") else "OPTIONS")
    resp = make_response(req, 200)
    for state in states:
        for inp in Input:
            if (state, inp) in table:
                continue
            txn = Transaction(("k",), req, UAS, TimerConfig(), table, state)
            assert txn.feed(inp, 1.0, resp) == []
            assert txn.state is state


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_table_entry_runs(name: str) -> None:
    table = TABLES[name]
    req = make_request("INVITE" if name in ("ICT", "IST") else "OPTIONS")
    for (state, inp), (_, nxt) in table.items():
        for peer in (UAS, UAS_TCP):
            txn = Transaction(("k",), req, peer, TimerConfig(), table, state, interval=0.5)
            txn.last_response = make_response(req, 180)
            status = {"1xx": 180, "2xx": 200, "TU 1xx": 180, "TU 2xx": 200}.get(inp.value, 486)
            txn.feed(inp, 1.0, make_response(req, status))
            assert txn.state is nxt
            if nxt is State.TERMINATED:
                assert txn.deadlines == {}
            assert all(t >= 1.0 for t in txn.deadlines.values())


# -- random input sequences -------------------------------------------------------------

CLIENT_ACTIONS = ["1xx", "2xx", "4xx", "tick", "tick", "error", "stray"]
SERVER_ACTIONS = ["retransmit", "ack", "ack2xx", "tu1xx", "tu2xx", "tu4xx", "tick", "tick", "error",
                  "cancel"]
VALID_STATES = {
    "INVITE-client": {s for s, _ in ICT_TABLE},
    "OPTIONS-client": {s for s, _ in NICT_TABLE},
    "INVITE-server": {s for s, _ in IST_TABLE},
    "OPTIONS-server": {s for s, _ in NIST_TABLE},
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["INVITE", "OPTIONS"]),
    reliable=st.booleans(),
    steps=st.lists(
        st.tuples(st.sampled_from(CLIENT_ACTIONS), st.floats(min_value=0.0, max_value=12.0)),
        max_size=25,
    ),
)
def test_random_client_inputs(method: str, reliable: bool, steps: list[tuple[str, float]]) -> None:
    peer = UAS_TCP if reliable else UAS
    side, key, req = client(method, peer, transport="TCP" if reliable else "UDP")
    now = 0.0
    finals = 0
    for action, delta in steps:
        now += delta
        if action == "tick":
            side.run_until(now, now - delta)
        elif action == "error":
            side.layer.transport_error(key, now)
        elif action == "stray":
            side.layer.receive_response(respond_to(make_request(method, branch="z9hG4bKzz"), 200), peer, now)
        else:
            status = {"1xx": 180, "2xx": 200, "4xx": 404}[action]
            side.layer.receive_response(respond_to(req, status), peer, now)
        side.pump(now)
        state = side.layer.state(key)
        assert state is None or state in VALID_STATES[f"{method}-client"]
    for ev in side.events:
        if isinstance(ev, ResponseReceived) and ev.response.status >= 200:
            finals += 1
    if method != "INVITE":
        assert finals <= 1
    # a client transaction always ends (Timer B/F, D, K, M)
    side.run_until(now + 100.0, now)
    assert side.layer.state(key) is None
    assert len(side.layer) == 0
    assert side.of(TransactionTerminated) == [TransactionTerminated(key)]
    assert all(tx.destination == peer for _, tx in side.sent)
    ended = [e for e in side.events if isinstance(e, TransactionTimedOut | TransactionTransportError)]
    assert len(ended) <= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["INVITE", "OPTIONS"]),
    reliable=st.booleans(),
    steps=st.lists(
        st.tuples(st.sampled_from(SERVER_ACTIONS), st.floats(min_value=0.0, max_value=12.0)),
        max_size=25,
    ),
)
def test_random_server_inputs(method: str, reliable: bool, steps: list[tuple[str, float]]) -> None:
    source = UAC_TCP if reliable else UAC
    transport = "TCP" if reliable else "UDP"
    sent_by = "192.0.2.1:40000" if reliable else "192.0.2.1:5060"
    side, key, req = server(method, source, transport=transport, sent_by=sent_by)
    now = 0.0
    final_sent = False
    incarnations = 1
    for action, delta in steps:
        now += delta
        if action == "tick":
            side.run_until(now, now - delta)
        elif action == "error":
            side.layer.transport_error(key, now)
        elif action in ("retransmit", "ack", "ack2xx", "cancel"):
            m = {"retransmit": method, "ack": "ACK", "ack2xx": "ACK", "cancel": "CANCEL"}[action]
            branch = "z9hG4bKother" if action == "ack2xx" else "z9hG4bKtest1"
            incoming = reparse(make_request(m, branch=branch, transport=transport, sent_by=sent_by))
            assert isinstance(incoming, Request)
            if m == method and side.layer.state(key) is None:
                # a retransmission after the end starts a new transaction
                incarnations += 1
                final_sent = False
            side.layer.receive_request(incoming, source, now)
        else:
            status = {"tu1xx": 180, "tu2xx": 200, "tu4xx": 486}[action]
            if side.layer.send_response(key, make_response(req, status, to_tag="t"), now) and status >= 200:
                final_sent = True
        side.pump(now)
        state = side.layer.state(key)
        assert state is None or state in VALID_STATES[f"{method}-server"]
    assert all(tx.destination == source for _, tx in side.sent)
    assert all(isinstance(tx.message, Response) for _, tx in side.sent)
    if final_sent or side.layer.state(key) is None:
        side.run_until(now + 100.0, now)
        assert side.layer.state(key) is None
        assert TransactionTerminated(key) in side.events
    started = [e for e in side.of(RequestReceived) if e.transaction == key]
    assert len(started) == incarnations
    if incarnations == 1:
        finals = {status_of(tx) for _, tx in side.sent if status_of(tx) >= 200}
        assert len(finals) <= 1  # one final response per transaction, however retransmitted
