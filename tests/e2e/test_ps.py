"""The Presence Server driven over real UDP sockets by UAs built on our stack.

The PS runs alone in ``open`` trust mode (the From URI is the identity), so
these tests exercise RFC 3903, RFC 6665/3856, RFC 3857/3858 and RFC 5025
behaviour without the IMS core in front.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from presence_ims.documents import pidf, presrules, winfo
from presence_ims.documents.rpid import Activities
from presence_ims.nodes.ps.config import PsConfig
from presence_ims.nodes.ps.node import PresenceServer
from presence_ims.sip.transaction import Address
from presence_ims.transport import SipEndpoint
from presence_ims.ua import UserAgent
from psagents import Agents

ALICE = "sip:alice@home1.net"


def pidf_doc(basic: str = "open", *, entity: str = ALICE, note: str | None = None,
             activity: str | None = None, tuple_id: str = "t1") -> bytes:
    notes = (pidf.Note(note),) if note else ()
    persons = ()
    if activity:
        persons = (pidf.Person("p1", activities=Activities((activity,))),)
    return pidf.build(
        pidf.PresenceDocument(entity, (pidf.PresenceTuple(tuple_id, basic, notes=notes),), persons)
    )


class Harness(Agents):
    """Agents of a PresenceServer running in this process (``ps``: its core for checks)."""

    def __init__(self, ps: PresenceServer) -> None:
        super().__init__(ps.port("udp"))
        self.ps = ps


@contextlib.asynccontextmanager
async def presence_server(**config: Any) -> AsyncIterator[Harness]:
    values: dict[str, Any] = {"trust": "open", "sip": ("udp:127.0.0.1:0",), "store": "memory"}
    values.update(config)
    ps = PresenceServer(PsConfig(**values))
    await ps.start()
    h = Harness(ps)
    try:
        yield h
    finally:
        await h.close()
        await ps.stop()


def rules_xml(*rules: str) -> presrules.Ruleset:
    body = "".join(rules)
    return presrules.parse(
        (
            '<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" '
            'xmlns:pr="urn:ietf:params:xml:ns:pres-rules">' + body + "</cp:ruleset>"
        ).encode()
    )


def rule(rid: str, who: str, handling: str, transformations: str = "") -> str:
    return (
        f'<cp:rule id="{rid}"><cp:conditions><cp:identity><cp:one id="{who}"/></cp:identity>'
        f"</cp:conditions><cp:actions><pr:sub-handling>{handling}</pr:sub-handling></cp:actions>"
        f"<cp:transformations>{transformations}</cp:transformations></cp:rule>"
    )


EVERYTHING = (
    "<pr:provide-services><pr:all-services/></pr:provide-services>"
    "<pr:provide-persons><pr:all-persons/></pr:provide-persons>"
    "<pr:provide-all-attributes/>"
)
SERVICES_ONLY = "<pr:provide-services><pr:all-services/></pr:provide-services>"


# -- RFC 3903 ----------------------------------------------------------------------------


async def test_publish_refresh_modify_remove() -> None:
    async with presence_server() as h:
        alice = await h.ua(ALICE)
        r = await alice.publish(pidf_doc("open"))
        assert r.status == 200
        etag1 = r.headers.get("sip-etag")
        assert etag1 and r.headers.get("expires") == "3600"
        # refresh: no body, If-Match, new entity tag
        r = await alice.publish(None, etag=etag1, expires=120)
        assert r.status == 200 and r.headers.get("expires") == "120"
        etag2 = r.headers.get("sip-etag")
        assert etag2 and etag2 != etag1
        # the old tag is gone
        r = await alice.publish(None, etag=etag1)
        assert r.status == 412
        # modify
        r = await alice.publish(pidf_doc("closed"), etag=etag2)
        assert r.status == 200
        etag3 = r.headers.get("sip-etag")
        composed = h.ps.core.composed("sip:alice@home1.net").document
        assert composed.tuples[0].basic == "closed"
        # remove
        r = await alice.publish(None, etag=etag3, expires=0)
        assert r.status == 200 and r.headers.get("expires") == "0"
        assert "sip:alice@home1.net" not in h.ps.core.pubs_of


@pytest.mark.parametrize(
    ("kwargs", "headers", "status", "check"),
    [
        ({"expires": 10}, [], 423, ("min-expires", "60")),
        ({"etag": "nosuchtag"}, [], 412, None),
        ({"content_type": "text/plain"}, [], 415, ("accept", "application/pidf+xml")),
    ],
)
async def test_publish_errors(kwargs: dict[str, Any], headers: list[tuple[str, str]], status: int,
                              check: tuple[str, str] | None) -> None:
    async with presence_server() as h:
        alice = await h.ua(ALICE)
        r = await alice.publish(pidf_doc(), headers=headers, **kwargs)
        assert r.status == status
        if check:
            assert r.headers.get(check[0]) == check[1]


async def test_publish_unknown_event_and_empty_initial_and_bad_body() -> None:
    async with presence_server() as h:
        alice = await h.ua(ALICE)
        req = alice.new_request("PUBLISH", ALICE, headers=[("Event", "dialog")], body=pidf_doc(),
                                content_type="application/pidf+xml")
        r = await alice.send(req)
        assert r.status == 489
        assert "presence" in (r.headers.get("allow-events") or "")
        r = await alice.publish(None)
        assert r.status == 400 and "without a body" in r.reason
        r = await alice.publish(b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:eve@x'/>")
        assert r.status == 400 and "entity" in r.reason
        r = await alice.publish(b"<not-xml")
        assert r.status == 400
        # nothing was stored by the failures
        assert not h.ps.core.publications


async def test_expired_publication_disappears_and_watchers_are_told() -> None:
    async with presence_server(min_expires=1) as h:
        alice, bob = await h.ua(ALICE), await h.ua("sip:bob@home1.net")
        r = await alice.publish(pidf_doc("open"), expires=1)
        assert r.status == 200
        sub = await bob.subscribe(ALICE)
        first = await sub.next()
        assert pidf.parse(first.body).tuples[0].basic == "open"
        after = await sub.next(wait=5)
        doc = pidf.parse(after.body)
        assert [t.basic for t in doc.tuples] == ["closed"]  # neutral: nothing published
        assert not h.ps.core.publications


# -- RFC 6665 / 3856 -----------------------------------------------------------------------


async def test_subscribe_refresh_and_terminate() -> None:
    async with presence_server() as h:
        alice, bob = await h.ua(ALICE), await h.ua("sip:bob@home1.net")
        await alice.publish(pidf_doc("open"))
        sub = await bob.subscribe(ALICE, expires=600)
        assert sub.response is not None and sub.response.status == 200
        assert sub.response.headers.get("expires") == "600"
        n = await sub.next()
        assert n.state == "active" and int(n.params["expires"]) <= 600
        r = await bob.refresh(sub, expires=300)
        assert r.status == 200
        n = await sub.next()
        assert n.state == "active" and int(n.params["expires"]) <= 300
        r = await bob.unsubscribe(sub)
        assert r.status == 200
        n = await sub.next()
        assert n.state == "terminated" and n.params["reason"] == "timeout"
        assert not h.ps.core.subscriptions


async def test_fetch_gets_one_notify_and_leaves_nothing() -> None:
    async with presence_server() as h:
        alice, bob = await h.ua(ALICE), await h.ua("sip:bob@home1.net")
        await alice.publish(pidf_doc("open", note="fetch me"))
        sub = await bob.subscribe(ALICE, expires=0)
        assert sub.response is not None and sub.response.status == 200
        n = await sub.next()
        assert n.state == "terminated"
        assert pidf.parse(n.body).tuples[0].notes[0].text == "fetch me"
        assert not h.ps.core.subscriptions


async def test_in_dialog_request_on_unknown_dialog_gets_481() -> None:
    async with presence_server() as h:
        bob = await h.ua("sip:bob@home1.net")
        sub = await bob.subscribe(ALICE)
        await sub.next()
        assert sub.dialog is not None
        forged = sub.dialog.build_request("SUBSCRIBE", headers=[("Event", "presence"), ("Expires", "60")],
                                          contact=bob.contact())
        forged.headers.set("To", f"<{ALICE}>;tag=not-a-tag")
        r = await bob.endpoint.request(forged, h.address)
        assert r.status == 481


async def test_subscribe_expiry_terminates_with_timeout() -> None:
    async with presence_server(min_expires=1) as h:
        bob = await h.ua("sip:bob@home1.net")
        sub = await bob.subscribe(ALICE, expires=1)
        assert (await sub.next()).state == "active"
        end = await sub.next(wait=5)
        assert end.state == "terminated" and end.params["reason"] == "timeout"


async def test_notify_481_ends_the_subscription() -> None:
    async with presence_server() as h:
        alice, bob = await h.ua(ALICE), await h.ua("sip:bob@home1.net")
        sub = await bob.subscribe(ALICE)
        await sub.next()
        bob.subscriptions.clear()  # the watcher forgets: its next answer is 481
        result: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        # the first failure status is the answer to the NOTIFY sent for the new state
        h.ps.on_notify_result = lambda _sub, status: (
            status >= 300 and not result.done() and result.set_result(status)
        )
        await alice.publish(pidf_doc("open"))
        assert await asyncio.wait_for(result, 5) == 481
        assert not h.ps.core.subscriptions
        assert h.ps.core.stats.get("notify_failed_481") == 1


async def test_rate_control_coalesces_a_burst() -> None:
    async with presence_server(min_notify_interval=0.5) as h:
        alice, bob = await h.ua(ALICE), await h.ua("sip:bob@home1.net")
        r = await alice.publish(pidf_doc("open", note="n0"))
        etag = r.headers.get("sip-etag")
        sub = await bob.subscribe(ALICE)
        await sub.next()
        for i in range(1, 6):
            r = await alice.publish(pidf_doc("open", note=f"n{i}"), etag=etag)
            etag = r.headers.get("sip-etag")
        n = await sub.next(wait=5)
        # the burst becomes one NOTIFY with the latest state
        assert pidf.parse(n.body).tuples[0].notes[0].text == "n5"
        with pytest.raises(TimeoutError):
            await sub.next(wait=0.8)
        assert h.ps.core.stats.get("notify_coalesced", 0) >= 4


# -- RFC 5025 rules and transformations ------------------------------------------------------


async def test_three_watchers_three_documents() -> None:
    async with presence_server(default_sub_handling="confirm") as h:
        alice = await h.ua(ALICE)
        bob, carol, dave = [await h.ua(u) for u in
                            ("sip:bob@home1.net", "sip:carol@home2.net", "sip:dave@home1.net")]
        h.ps.set_rules(ALICE, rules_xml(
            rule("full", "sip:bob@home1.net", "allow", EVERYTHING + "<pr:provide-note>true</pr:provide-note>"),
            rule("basic", "sip:carol@home2.net", "allow", SERVICES_ONLY),
        ))
        await alice.publish(pidf_doc("open", note="in the lab", activity="busy"))
        s_bob = await bob.subscribe(ALICE)
        s_carol = await carol.subscribe(ALICE)
        s_dave = await dave.subscribe(ALICE)
        assert s_bob.response.status == 200 and s_carol.response.status == 200
        assert s_dave.response.status == 202  # confirm: pending
        d_bob = pidf.parse((await s_bob.next()).body)
        d_carol = pidf.parse((await s_carol.next()).body)
        n_dave = await s_dave.next()
        assert d_bob.tuples[0].notes[0].text == "in the lab"
        assert d_bob.persons[0].activities is not None and d_bob.persons[0].activities.values == ("busy",)
        assert d_carol.tuples[0].basic == "open" and not d_carol.tuples[0].notes and not d_carol.persons
        assert n_dave.state == "pending" and n_dave.body == b""


async def test_block_refuses_and_polite_block_looks_offline() -> None:
    async with presence_server(default_sub_handling="confirm") as h:
        alice = await h.ua(ALICE)
        eve, mallory, _fresh = [await h.ua(u) for u in
                               ("sip:eve@home1.net", "sip:mallory@home1.net", "sip:fresh@home1.net")]
        h.ps.set_rules(ALICE, rules_xml(
            rule("no", "sip:eve@home1.net", "block"),
            rule("polite", "sip:mallory@home1.net", "polite-block"),
            rule("ok", "sip:fresh@home1.net", "allow", EVERYTHING),
        ))
        await alice.publish(pidf_doc("open", note="here"))
        s_eve = await eve.subscribe(ALICE)
        assert s_eve.response is not None and s_eve.response.status == 403
        s_m = await mallory.subscribe(ALICE)
        assert s_m.response.status == 200
        polite = await s_m.next()
        assert polite.state == "active"
        # what an allowed watcher gets of an offline presentity with nothing published
        offline_bob = await h.ua("sip:bob@home1.net")
        h.ps.set_rules("sip:nobody@home1.net", rules_xml(rule("ok", "sip:bob@home1.net", "allow", EVERYTHING)))
        s_off = await offline_bob.subscribe("sip:nobody@home1.net")
        offline = await s_off.next()
        assert polite.body.replace(b"alice", b"X") == offline.body.replace(b"nobody", b"X")
        assert b"here" not in polite.body


async def test_rule_change_reevaluates_live_subscriptions() -> None:
    async with presence_server(default_sub_handling="confirm") as h:
        alice, bob = await h.ua(ALICE), await h.ua("sip:bob@home1.net")
        await alice.publish(pidf_doc("open", note="secret"))
        sub = await bob.subscribe(ALICE)
        assert (await sub.next()).state == "pending"
        h.ps.set_rules(ALICE, rules_xml(rule("r", "sip:bob@home1.net", "allow", SERVICES_ONLY)))
        n = await sub.next()
        assert n.state == "active" and b"secret" not in n.body
        h.ps.set_rules(ALICE, rules_xml(rule("r", "sip:bob@home1.net", "allow", EVERYTHING + "<pr:provide-note>true</pr:provide-note>")))
        n = await sub.next()
        assert b"secret" in n.body
        h.ps.set_rules(ALICE, rules_xml(rule("r", "sip:bob@home1.net", "block")))
        n = await sub.next()
        assert n.state == "terminated" and n.params["reason"] == "rejected"


# -- RFC 3857/3858 watcher information ---------------------------------------------------------


async def test_winfo_full_then_partial_with_opaque_ids() -> None:
    async with presence_server(default_sub_handling="confirm") as h:
        alice, bob = await h.ua(ALICE), await h.ua("sip:bob@home1.net")
        w = await alice.subscribe(ALICE, event="presence.winfo")
        assert w.response is not None and w.response.status == 200
        full = winfo.parse((await w.next()).body)
        assert full.state == "full" and full.version == 0 and not full.lists[0].watchers
        sub = await bob.subscribe(ALICE)
        part = winfo.parse((await w.next()).body)
        assert part.state == "partial" and part.version == 1
        (entry,) = part.lists[0].watchers
        assert entry.status == "pending" and entry.event == "subscribe"
        assert entry.uri == "sip:bob@home1.net"
        assert "bob" not in entry.id and len(entry.id) >= 16
        h.ps.set_rules(ALICE, rules_xml(rule("r", "sip:bob@home1.net", "allow", SERVICES_ONLY)))
        approved = winfo.parse((await w.next()).body)
        assert approved.lists[0].watchers[0].status == "active"
        assert approved.lists[0].watchers[0].event == "approved"
        await bob.unsubscribe(sub)
        gone = winfo.parse((await w.next()).body)
        assert gone.lists[0].watchers[0].status == "terminated"
        # a second subscription of the same watcher gets an unrelated id
        sub2 = await bob.subscribe(ALICE)
        again = winfo.parse((await w.next()).body)
        assert again.lists[0].watchers[0].id != entry.id
        await bob.unsubscribe(sub2)


async def test_only_the_presentity_may_watch_its_watchers() -> None:
    async with presence_server() as h:
        bob = await h.ua("sip:bob@home1.net")
        w = await bob.subscribe(ALICE, event="presence.winfo")
        assert w.response is not None and w.response.status == 403


# -- durability ---------------------------------------------------------------------------------


async def test_restart_resumes_subscriptions_and_publications(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'ps.db'}"
    ep_a = SipEndpoint(node="alice")
    ep_b = SipEndpoint(node="bob")
    await ep_a.listen("udp", "127.0.0.1", 0)
    await ep_b.listen("udp", "127.0.0.1", 0)
    try:
        ps = PresenceServer(PsConfig(trust="open", sip=("udp:127.0.0.1:0",), store=store))
        await ps.start()
        port = ps.port("udp")
        address = Address("udp", "127.0.0.1", port)
        alice = UserAgent(ep_a, ALICE, outbound=address)
        bob = UserAgent(ep_b, "sip:bob@home1.net", outbound=address)
        r = await alice.publish(pidf_doc("open", note="before restart"))
        etag = r.headers.get("sip-etag")
        sub = await bob.subscribe(ALICE)
        await sub.next()
        await ps.stop()
        ps2 = PresenceServer(PsConfig(trust="open", sip=(f"udp:127.0.0.1:{port}",), store=store))
        await ps2.start()
        try:
            resumed = await sub.next()
            assert resumed.state == "active"
            assert pidf.parse(resumed.body).tuples[0].notes[0].text == "before restart"
            # the publication survived with its entity tag; the dialog still works
            r = await alice.publish(pidf_doc("closed"), etag=etag)
            assert r.status == 200
            n = await sub.next()
            assert pidf.parse(n.body).tuples[0].basic == "closed"
            r = await bob.refresh(sub, expires=120)
            assert r.status == 200
        finally:
            await ps2.stop()
    finally:
        await ep_a.close()
        await ep_b.close()


async def test_corrupt_database_stops_the_node_with_a_clear_error(tmp_path: Path) -> None:
    from presence_ims.nodes.ps.node import PsStartError

    db = tmp_path / "ps.db"
    db.write_bytes(b"this is not a database" * 100)
    ps = PresenceServer(PsConfig(trust="open", sip=("udp:127.0.0.1:0",), store=f"sqlite:{db}"))
    with pytest.raises(PsStartError, match=r"ps\.db"):
        await ps.start()


async def test_large_fan_out_goes_out_in_batches_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fan-out larger than NOTIFY_BATCH is queued and sent over several loop turns:
    the PUBLISH is answered at once, every watcher gets the new state exactly once, in
    CSeq order, and a change while NOTIFYs are queued waits for them (RFC 6446 in flight)."""
    from presence_ims.nodes.ps import node as ps_node

    monkeypatch.setattr(ps_node, "NOTIFY_BATCH", 2)
    async with presence_server(default_sub_handling="allow") as h:
        alice = await h.ua(ALICE)
        watchers = [await h.ua(f"sip:w{i}@home1.net") for i in range(7)]
        subs = [await w.subscribe(ALICE) for w in watchers]
        firsts = [await s.next() for s in subs]
        assert all(n.state == "active" for n in firsts)
        sent: list[str] = []
        real_send = h.ps._send_notify

        def spy(sub_id: str, *args: Any, **kwargs: Any) -> None:
            sent.append(sub_id)
            real_send(sub_id, *args, **kwargs)

        h.ps._send_notify = spy  # type: ignore[method-assign]
        r = await alice.publish(pidf_doc("open", note="one"))
        assert r.status == 200
        r2 = await alice.publish(pidf_doc("closed", note="two"), etag=r.headers.get("sip-etag"))
        assert r2.status == 200
        for sub, first in zip(subs, firsts, strict=True):
            seen = [await sub.next()]
            while pidf.parse(seen[-1].body).tuples[0].basic != "closed":
                seen.append(await sub.next())
            cseqs = [first.request.cseq.seq] + [n.request.cseq.seq for n in seen]
            assert cseqs == sorted(cseqs) and len(set(cseqs)) == len(cseqs)
            assert [pidf.parse(n.body).tuples[0].notes[0].text for n in seen][-1] == "two"
        assert len(sent) >= len(watchers)
        assert not h.ps._notify_queue and h.ps._notify_drain is None
