"""Pi: the PNA watches the reg event at the S-CSCF and publishes the IMS tuple on Pen.

alice registers -> the S-CSCF NOTIFYs the PNA (reginfo) -> the PNA publishes
``pna-ims`` open with her contact -> bob's NOTIFY shows it; she
de-registers -> closed.  NOTIFYs from anyone but the S-CSCF are refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from netharness import running_network
from presence_ims.documents import pidf, reginfo
from presence_ims.sip import Headers, Request, parse_uri
from presence_ims.sip.transaction import Address
from presence_ims.transport import SipEndpoint
from presence_ims.ua import ClientSubscription

pytestmark = pytest.mark.slow

AGENTS = {"pna": {"enabled": True, "debounce": 0.05}}


async def until(
    sub: ClientSubscription, predicate: Callable[[pidf.PresenceDocument], bool], wait: float = 5.0
) -> pidf.PresenceDocument:
    """The first NOTIFY (from now on) whose PIDF satisfies ``predicate``."""
    async with asyncio.timeout(wait):
        while True:
            note = await sub.notifications.get()
            if note.body:
                doc = pidf.parse(note.body)
                if predicate(doc):
                    return doc


def tuple_of(doc: pidf.PresenceDocument, ident: str) -> pidf.PresenceTuple | None:
    return next((t for t in doc.tuples if t.id == ident), None)


async def test_registration_reaches_watcher_as_network_tuple(tmp_path: Path) -> None:
    async with running_network(tmp_path, overrides=AGENTS) as net:
        pna = net.nodes["pna"]
        await pna.ready()
        # the PNA holds a reg-event subscription per user, as the PNA identity
        watchers = {(s.impu, s.watcher) for s in net.nodes["scscf"].reg_subs.values()}
        assert ("sip:alice@home1.net", "sip:pna.home1.net") in watchers
        assert ("sip:bob@home1.net", "sip:pna.home1.net") in watchers
        bob = await net.ue("bob")
        sub = await bob.agent.subscribe("sip:alice@home1.net")
        assert sub.response is not None and sub.response.status == 200
        alice = await net.ue("alice", auth="digest")
        doc = await until(sub, lambda d: (t := tuple_of(d, "pna-ims")) is not None and t.basic == "open")
        ims = tuple_of(doc, "pna-ims")
        assert ims is not None and ims.contact is not None
        assert f"<{ims.contact.uri}>" == alice._contact()  # the contact alice registered
        assert ims.timestamp is not None
        assert pna.counters["Pi.accepted"] >= 3  # two initial NOTIFYs, then alice's registration
        assert pna.counters["Pen.published"] >= 1
        # the PS took it as network presence on Pen, from the PNA
        records = [r for r in net.nodes["ps"].core.publications.values() if r.source_id == "pna"]
        assert records and all(r.interface == "Pen" and r.source_class == "network" for r in records)
        await alice.deregister()
        doc = await until(sub, lambda d: (t := tuple_of(d, "pna-ims")) is not None and t.basic == "closed")
        assert tuple_of(doc, "pna-ims").contact is None  # type: ignore[union-attr]


async def test_notify_from_another_node_is_refused(tmp_path: Path) -> None:
    """Only the S-CSCF (by its certificate) may NOTIFY the PNA's reg subscriptions."""
    async with running_network(tmp_path, overrides=AGENTS) as net:
        pna = net.nodes["pna"]
        await pna.ready()
        sub = pna.reg_subscriptions["sip:alice@home1.net"]
        assert sub.dialog is not None
        # a NOTIFY in alice's dialog, claiming she registered, sent with the PEA's certificate
        tls = net.network.tls
        rogue = SipEndpoint(node="rogue")
        await rogue.listen("tls", "127.0.0.1", 0, ssl=tls.server["pea"], client_ssl=tls.client["pea"])
        try:
            body = reginfo.build(
                reginfo.RegInfo(99, "full", (
                    reginfo.Registration("sip:alice@home1.net", "r1", "active", (
                        reginfo.Contact("c1", "active", "registered", "sip:evil@192.0.2.1"),
                    )),
                ))
            )  # fmt: skip
            h = Headers()
            h.add("From", f"<sip:alice@home1.net>;tag={sub.dialog.remote_tag}")
            h.add("To", f"<sip:pna.home1.net>;tag={sub.dialog.local_tag}")
            h.add("Call-ID", sub.dialog.call_id)
            h.add("CSeq", "999 NOTIFY")
            h.add("Event", "reg")
            h.add("Subscription-State", "active;expires=600")
            h.add("Content-Type", "application/reginfo+xml")
            h.add("Contact", "<sip:rogue@127.0.0.1>")
            notify = Request(h, body, "NOTIFY", parse_uri(f"sip:pna@127.0.0.1:{pna.ports['sip']};transport=tls"))
            before = pna.counters["Pi.accepted"]
            response = await rogue.request(notify, Address("tls", "127.0.0.1", pna.ports["sip"]))
            assert response.status == 403
            assert pna.counters["Pi.refused.untrusted_peer"] == 1
            assert pna.counters["Pi.accepted"] == before
            assert pna.core.facts("sip:alice@home1.net").ims_pi.registered is False
            assert pna.publisher.view("sip:alice@home1.net") is None  # nothing to publish
        finally:
            await rogue.close()


async def test_stopping_the_pna_ends_its_reg_subscriptions(tmp_path: Path) -> None:
    """A stopped PNA un-SUBSCRIBEs: the S-CSCF holds no subscription for a gone watcher."""
    async with running_network(tmp_path, overrides=AGENTS) as net:
        pna = net.nodes["pna"]
        await pna.ready()
        scscf = net.nodes["scscf"]

        def pna_subscriptions() -> set[str]:
            return {s.impu for s in scscf.reg_subs.values() if s.watcher == "sip:pna.home1.net"}

        assert pna_subscriptions() == {"sip:alice@home1.net", "sip:bob@home1.net"}
        await pna.stop()
        assert pna_subscriptions() == set()
        assert pna.reg_subscriptions == {}
