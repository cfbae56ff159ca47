"""Which PS worker owns a datagram (presence_ims.nodes.ps.shard, decision D13)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from presence_ims.nodes.ps.core import CoreConfig, Origin, PresenceCore, canonical_key
from presence_ims.nodes.ps.shard import Router, dialog_tag, presentity_hash, shard_of
from presence_ims.sip import parse_datagram

ALIASES = {"tel:+358501234567": "sip:alice@home1.net"}
ALICE = "sip:alice@home1.net"


def router(workers: int) -> Router:
    return Router(workers, lambda uri: canonical_key(uri, ALIASES))


def request(method: str, ruri: str, to: str, frm: str = "<sip:bob@home1.net>;tag=b1") -> bytes:
    return (
        f"{method} {ruri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
        f"From: {frm}\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def response(frm: str, to: str = "<sip:bob@home1.net>;tag=b1") -> bytes:
    return (
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5065;branch=z9hG4bK2\r\n"
        f"From: {frm}\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: 2 NOTIFY\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def owner(presentity: str, workers: int) -> int:
    return shard_of(canonical_key(presentity, ALIASES), workers)


def test_a_presentitys_messages_all_go_to_its_worker() -> None:
    users = [f"sip:u{i}@home1.net" for i in range(40)]
    for workers in (2, 3, 5):
        r = router(workers)
        assert {owner(u, workers) for u in users} == set(range(workers))
        for user in users:
            want = owner(user, workers)
            tag = dialog_tag(canonical_key(user, ALIASES))
            assert r.route(request("PUBLISH", user, f"<{user}>")) == want
            assert r.route(request("SUBSCRIBE", f"{user};transport=udp", f'"U" <{user}>')) == want
            # in dialog: the Request-URI is the PS's Contact, the To tag is the PS's
            assert r.route(request("SUBSCRIBE", "sip:ps@127.0.0.1:5065", f"<{user}>;tag={tag}")) == want
            # the answer to a NOTIFY: From is the PS's side
            assert r.route(response(f"<{user}>;tag={tag}")) == want


def test_compact_forms_aliases_and_case() -> None:
    r = router(3)
    want = owner(ALICE, 3)
    raw = (
        b"SUBSCRIBE sip:ps@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n"
        b"f: <sip:bob@home1.net>;tag=1\r\nt: <sip:ALICE@Home1.NET>;TAG=abc\r\ni: c\r\n"
        b"CSeq: 2 SUBSCRIBE\r\nl: 0\r\n\r\n"
    )
    assert r.route(raw) == want  # unmarked tag: the To URI, host case folded
    assert r.route(request("PUBLISH", "tel:+358-50-1234567", "<tel:+358501234567>")) == want


def test_the_tag_names_the_worker_even_when_the_uris_do_not() -> None:
    """A dialog made under one presentity stays with it whatever the To URI says later."""
    r = router(4)
    tag = dialog_tag(ALICE)
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]{8}", tag)
    assert int(tag[-8:], 16) == presentity_hash(ALICE)
    others = [f"sip:x{i}@home1.net" for i in range(20)]
    other = next(u for u in others if owner(u, 4) != owner(ALICE, 4))
    assert r.route(request("SUBSCRIBE", "sip:ps@h", f"<{other}>;tag={tag}")) == owner(ALICE, 4)
    assert r.route(response(f"<{other}>;tag={tag}")) == owner(ALICE, 4)
    # a tag=... inside the URI is a URI parameter, not the header's tag
    assert r.route(request("SUBSCRIBE", other, f"<{other};tag={tag}>")) == owner(other, 4)


def test_the_core_makes_marked_tags() -> None:
    core = PresenceCore(CoreConfig(), contact="<sip:ps@127.0.0.1>")
    raw = request("SUBSCRIBE", ALICE, f"<{ALICE}>").replace(
        b"Content-Length", b"Contact: <sip:bob@127.0.0.1:5070>\r\nEvent: presence\r\nContent-Length"
    )
    outcome = core.subscribe(
        parse_datagram(raw),  # type: ignore[arg-type]
        Origin(interface="Pw", source_class="ue", source_id="open", trusted=False), 0.0,
    )
    assert outcome.reply is not None and outcome.reply.to_tag is not None
    assert int(outcome.reply.to_tag[-8:], 16) == presentity_hash(ALICE)


def test_unreadable_datagrams_go_to_worker_zero() -> None:
    r = router(3)
    for raw in (b"", b"garbage", b"\r\n\r\n", b"PUBLISH\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n",
                request("PUBLISH", "sip:%ff@x", "<sip:%ff@x>").replace(b"%ff", b"\xff")):
        assert r.route(raw) == 0


def test_one_worker_needs_no_reading() -> None:
    assert router(1).route(b"anything") == 0


@given(st.binary(max_size=600), st.integers(min_value=1, max_value=8))
def test_any_bytes_route_somewhere(data: bytes, workers: int) -> None:
    assert 0 <= router(workers).route(data) < workers


@given(st.text(max_size=200), st.integers(min_value=2, max_value=8))
def test_any_text_in_the_headers_routes_somewhere(junk: str, workers: int) -> None:
    raw = request("SUBSCRIBE", junk.replace(" ", ""), junk).decode("utf-8", "replace")
    assert 0 <= router(workers).route(raw.encode("utf-8", "surrogatepass")) < workers


def test_a_datagram_for_a_full_or_gone_inbox_is_dropped_and_counted() -> None:
    import socket
    from collections import Counter

    from presence_ims.transport.shared_udp import SharedUdpTransport, inbox_pair

    class Receiver:
        stats: Counter[str] = Counter()

    shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    shared.bind(("127.0.0.1", 0))
    outbox, inbox = inbox_pair()
    mine_out, mine_in = inbox_pair()
    try:
        t = SharedUdpTransport(Receiver(), shared, index=0, inbox=mine_in, outboxes=[mine_out, outbox],  # type: ignore[arg-type]
                               route=lambda _data: 1)
        t.hand_over(1, b"OPTIONS sip:x SIP/2.0\r\n\r\n", ("127.0.0.1", 5060))
        assert inbox.recv(100) == b"D127.0.0.1 5060\nOPTIONS sip:x SIP/2.0\r\n\r\n"
        inbox.close()  # the other worker is gone
        t.hand_over(1, b"OPTIONS sip:x SIP/2.0\r\n\r\n", ("127.0.0.1", 5060))
        assert (t.handed_over, t.hand_over_dropped) == (1, 1)
        assert Receiver.stats["hand_over_dropped"] == 1
    finally:
        for s in (shared, outbox, mine_out, mine_in):
            s.close()
