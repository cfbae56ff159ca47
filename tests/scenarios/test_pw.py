"""Pw: watchers subscribe through their own P-/S-CSCF; the PS notifies them back.

Same network (bob watches alice) and across networks (carol in home2.net
watches alice in home1.net through home2's CSCFs and home1's I-CSCF).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netharness import running_network, running_networks
from presence_ims.documents import pidf, winfo

pytestmark = pytest.mark.slow
ALICE = "sip:alice@home1.net"


def doc(basic: str = "open", note: str | None = None) -> bytes:
    notes = (pidf.Note(note),) if note else ()
    return pidf.build(pidf.PresenceDocument(ALICE, (pidf.PresenceTuple("t1", basic, notes=notes),)))


async def test_same_network_watcher_refresh_and_unsubscribe(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        bob = await net.ue("bob")
        await alice.agent.publish(doc("open", "hello bob"))
        sub = await bob.agent.subscribe(ALICE, expires=600)
        assert sub.response is not None and sub.response.status == 200
        n = await sub.next()
        assert pidf.parse(n.body).tuples[0].notes[0].text == "hello bob"
        # the route set goes through both P-CSCF and S-CSCF
        assert sub.dialog is not None and len(sub.dialog.route_set) >= 2
        r = await bob.agent.refresh(sub, expires=300)
        assert r.status == 200
        assert (await sub.next()).state == "active"
        r = await bob.agent.unsubscribe(sub)
        assert r.status == 200
        end = await sub.next()
        assert end.state == "terminated"
        assert not net.nodes["ps"].core.subscriptions


async def test_watcher_behind_a_nat_gets_its_notifies(tmp_path: Path) -> None:
    """An ordinary SIP phone behind a NAT: its Contact names an address only it can reach.

    bob registers with SIP Digest over plain UDP, his Contact says 127.0.0.2:9 (where
    nothing listens: his address behind the NAT); the P-CSCF sends what is for him to
    where his REGISTER came from, so his NOTIFYs arrive.
    """
    nat_contact = "<sip:bob@127.0.0.2:9>"
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        await alice.agent.publish(doc("open", "through the NAT"))
        bob = await net.ue("bob", auth="digest", register=False)
        bob._contact = lambda: nat_contact  # type: ignore[method-assign]
        bob.agent.contact = lambda: nat_contact  # type: ignore[method-assign]
        await bob.register()
        sub = await bob.agent.subscribe(ALICE)
        assert sub.response is not None and sub.response.status == 200
        n = await sub.next()
        assert pidf.parse(n.body).tuples[0].notes[0].text == "through the NAT"
        reg = net.nodes["pcscf"].by_impu["sip:bob@home1.net"]
        assert (reg.contact_host, reg.contact_port) == ("127.0.0.2", 9)
        assert reg.source.port != 9


async def test_watcher_identity_is_the_asserted_one(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        bob = await net.ue("bob")
        # bob pretends to be someone else in From: the PS uses the P-Asserted-Identity
        bob.agent.aor = "sip:mallory@home1.net"
        sub = await bob.agent.subscribe(ALICE)
        assert sub.response is not None and sub.response.status == 200
        (record,) = net.nodes["ps"].core.subscriptions.values()
        assert record.watcher == "sip:bob@home1.net" and record.authenticated


async def test_winfo_through_the_network(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        bob = await net.ue("bob")
        w = await alice.agent.subscribe(ALICE, event="presence.winfo")
        assert w.response is not None and w.response.status == 200
        assert winfo.parse((await w.next()).body).state == "full"
        await bob.agent.subscribe(ALICE)
        part = winfo.parse((await w.next()).body)
        (entry,) = part.lists[0].watchers
        assert entry.uri == "sip:bob@home1.net" and entry.status == "active"


async def test_anonymous_watcher_is_anonymous_in_winfo(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        bob = await net.ue("bob")
        w = await alice.agent.subscribe(ALICE, event="presence.winfo")
        await w.next()
        sub = await bob.agent.subscribe(ALICE, headers=[("Privacy", "id")])
        assert sub.response is not None
        part = winfo.parse((await w.next()).body)
        (entry,) = part.lists[0].watchers
        assert entry.uri == "sip:anonymous@anonymous.invalid"
        assert entry.display_name is None
        # alice's rules (allow bob) still apply to the authenticated identity behind it
        assert sub.response.status == 200


async def test_cross_network_watcher(tmp_path: Path) -> None:
    async with running_networks(tmp_path) as (home1, home2):
        alice = await home1.ue("alice")
        carol = await home2.ue("carol")
        await alice.agent.publish(doc("open", "hello carol"))
        sub = await carol.agent.subscribe(ALICE)
        # carol is not in alice's rules: confirm -> pending
        assert sub.response is not None and sub.response.status == 202
        assert (await sub.next()).state == "pending"
        (record,) = home1.nodes["ps"].core.subscriptions.values()
        assert record.watcher == "sip:carol@home2.net"
        # alice allows carol: the live subscription becomes active at once
        from presence_ims.documents import presrules
        from presence_ims.nodes.ps.node import allow_rules_document

        home1.nodes["ps"].set_rules(ALICE, presrules.parse(allow_rules_document(["sip:bob@home1.net", "sip:carol@home2.net"])))
        n = await sub.next()
        assert n.state == "active"
        assert pidf.parse(n.body).tuples[0].notes[0].text == "hello carol"
