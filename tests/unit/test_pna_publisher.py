"""The RFC 3903 client state machine shared by the PNA (Pen) and the PEA (Pex)."""

from __future__ import annotations

import pytest

from presence_ims.nodes.pna.errors import PnaError
from presence_ims.nodes.pna.publisher import Publisher, PublishRequest

P = "sip:alice@home1.net"


def one(pub: Publisher, now: float) -> PublishRequest:
    requests = pub.poll(now)
    assert len(requests) == 1, requests
    return requests[0]


def published(pub: Publisher, body: bytes = b"A", now: float = 0.0, etag: str = "e1") -> PublishRequest:
    pub.update(P, body, now)
    req = one(pub, now + pub.debounce)
    pub.on_response(req, 200, now + pub.debounce, etag=etag, expires=100)
    return req


def test_initial_modify_refresh_remove() -> None:
    pub = Publisher(expires=100, debounce=0.5)
    assert pub.update(P, b"A", 10.0)
    assert pub.next_deadline() == 10.5
    assert pub.poll(10.4) == []
    req = one(pub, 10.5)
    assert (req.kind, req.body, req.etag, req.expires) == ("initial", b"A", None, 100)
    assert pub.poll(10.6) == []  # one request at a time
    pub.on_response(req, 200, 11.0, etag="e1", expires=90)
    view = pub.view(P)
    assert view is not None and (view.etag, view.published, view.expires_at) == ("e1", b"A", 101.0)
    assert pub.next_deadline() == pytest.approx(11.0 + 90 * 0.8)  # the refresh
    # a change: modify with SIP-If-Match
    pub.update(P, b"B", 20.0)
    req = one(pub, 20.5)
    assert (req.kind, req.body, req.etag) == ("modify", b"B", "e1")
    pub.on_response(req, 200, 21.0, etag="e2", expires=90)
    # the refresh carries no body
    req = one(pub, 21.0 + 72)
    assert (req.kind, req.body, req.etag, req.expires) == ("refresh", None, "e2", 100)
    pub.on_response(req, 200, 93.0, etag="e3", expires=90)
    # nothing to say any more: remove with Expires 0
    pub.update(P, None, 95.0)
    req = one(pub, 95.5)
    assert (req.kind, req.body, req.etag, req.expires) == ("remove", None, "e3", 0)
    pub.on_response(req, 200, 96.0)
    assert pub.view(P) is None and pub.next_deadline() is None


def test_bursts_are_debounced_and_unchanged_bodies_not_sent() -> None:
    pub = Publisher(debounce=1.0)
    published(pub, b"A")
    for i, body in enumerate((b"B", b"C", b"D")):
        pub.update(P, body, 10.0 + i * 0.1)
    assert pub.next_deadline() == 11.0  # the first change sets the deadline; later ones ride along
    req = one(pub, 11.0)
    assert req.body == b"D"
    pub.on_response(req, 200, 11.0, etag="e2")
    assert not pub.update(P, b"D", 12.0)  # same bytes: nothing to send
    pub.update(P, b"E", 13.0)
    pub.update(P, b"D", 13.1)  # changed back before the deadline
    assert pub.poll(14.0) == []  # nothing sent, the refresh stays scheduled


def test_changes_while_in_flight_are_sent_after_the_answer() -> None:
    pub = Publisher(debounce=0.0)
    pub.update(P, b"A", 0.0)
    req = one(pub, 0.0)
    pub.update(P, b"B", 0.1)
    assert pub.poll(0.2) == []
    pub.on_response(req, 200, 0.3, etag="e1")
    req = one(pub, 0.3)
    assert (req.kind, req.body, req.etag) == ("modify", b"B", "e1")


def test_412_starts_afresh_and_423_raises_expiry() -> None:
    pub = Publisher(expires=100, debounce=0.0)
    published(pub, b"A")
    pub.update(P, b"B", 5.0)
    req = one(pub, 5.0)
    pub.on_response(req, 412, 5.1)  # the PS lost our entity tag
    req = one(pub, 5.1)
    assert (req.kind, req.body, req.etag) == ("initial", b"B", None)
    pub.on_response(req, 423, 5.2, min_expires=600)
    req = one(pub, 5.2)
    assert (req.kind, req.expires) == ("initial", 600)


def test_failures_retry_with_a_doubling_delay() -> None:
    pub = Publisher(debounce=0.0, retry=1.0, max_retry=4.0)
    pub.update(P, b"A", 0.0)
    now = 0.0
    delays = []
    for _ in range(5):
        req = one(pub, now)
        pub.on_response(req, 503, now)
        deadline = pub.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    req = one(pub, now)
    pub.on_response(req, 200, now, etag="e")
    assert pub.view(P).failures == 0  # type: ignore[union-attr]


def test_create_false_leaves_unknown_presentities_alone() -> None:
    pub = Publisher(debounce=0.0)
    assert not pub.update(P, b"closed-only", 0.0, create=False)
    assert pub.view(P) is None
    published(pub, b"open")
    assert pub.update(P, b"closed-only", 1.0, create=False)  # an existing one is updated
    assert one(pub, 1.0).kind == "modify"


def test_removal_of_what_was_never_published_is_silent() -> None:
    pub = Publisher(debounce=0.0)
    pub.update(P, b"A", 0.0)
    pub.update(P, None, 0.0)
    assert pub.poll(1.0) == [] and pub.view(P) is None


def test_close_removes_every_publication() -> None:
    pub = Publisher(debounce=0.0)
    published(pub, b"A", etag="e1")
    pub.update("sip:bob@home1.net", b"B", 0.0)  # never answered: nothing to remove
    removals = pub.close()
    assert [(r.presentity, r.kind, r.etag, r.expires) for r in removals] == [(P, "remove", "e1", 0)]
    assert pub.presentities() == ()


def test_stale_answers_are_ignored() -> None:
    pub = Publisher(debounce=0.0)
    pub.update(P, b"A", 0.0)
    req = one(pub, 0.0)
    pub.on_response(PublishRequest(P, "initial", b"A", None, 3600), 200, 0.1, etag="x")
    assert pub.view(P).etag is None  # type: ignore[union-attr]
    pub.on_response(req, 200, 0.2, etag="e1")
    assert pub.view(P).etag == "e1"  # type: ignore[union-attr]


def test_bad_settings() -> None:
    with pytest.raises(PnaError):
        Publisher(refresh_ratio=1.5)
    with pytest.raises(PnaError):
        Publisher(expires=0)
