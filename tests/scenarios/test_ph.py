"""Ph: the PNA reads and subscribes to Sh data at the HSS; PNRs update the presence.

The PNA's UDR and SNR are answered at start; a change of alice's data at the
HSS (``update_user_data``) is pushed (PNR) to the PNA, which answers and
publishes: her watcher sees the packet-switched tuple.  Her cell is location:
it reaches only watchers allowed ``provide-location``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from netharness import running_network
from presence_ims.diameter import Result
from presence_ims.diameter.sh import DataReference, LocationInformation
from presence_ims.documents import pidf
from presence_ims.ua import ClientSubscription

pytestmark = pytest.mark.slow

AGENTS = {"pna": {"enabled": True, "debounce": 0.05}}


async def until(
    sub: ClientSubscription, predicate: Callable[[pidf.PresenceDocument], bool], wait: float = 5.0
) -> pidf.PresenceDocument:
    async with asyncio.timeout(wait):
        while True:
            note = await sub.notifications.get()
            if note.body:
                doc = pidf.parse(note.body)
                if predicate(doc):
                    return doc


def tuple_of(doc: pidf.PresenceDocument, ident: str) -> pidf.PresenceTuple | None:
    return next((t for t in doc.tuples if t.id == ident), None)


async def test_pnr_reaches_the_pna_and_the_watchers(tmp_path: Path) -> None:
    async with running_network(tmp_path, overrides=AGENTS) as net:
        pna = net.nodes["pna"]
        hss = net.nodes["hss"]
        await pna.ready()
        # the PNA subscribed (SNR) to alice's and bob's state, as pna.home1.net
        subs = {(s.impu, s.data_reference, s.host) for s in hss.logic.subscriptions()}
        for ref in (DataReference.IMS_USER_STATE, DataReference.LOCATION_INFORMATION, DataReference.USER_STATE):
            assert ("sip:alice@home1.net", ref, "pna.home1.net") in subs
        assert pna.counters["Ph.accepted"] >= 4  # UDA and SNA for each user
        bob = await net.ue("bob")
        sub = await bob.agent.subscribe("sip:alice@home1.net")
        assert sub.response is not None and sub.response.status == 200
        before = pna.counters["Ph.accepted"]
        answers = await hss.update_user_data(
            "sip:alice@home1.net",
            ps_user_state=4,  # ConnectedReachableForPaging
            ps_location=LocationInformation(routing_area_id="26201-0101-07", cell_global_id="00f1100007"),
        )
        assert len(answers) == 1
        assert Result.of(answers[0]).code == 2001  # the PNA answered the PNR
        assert pna.counters["Ph.accepted"] == before + 1
        doc = await until(sub, lambda d: (t := tuple_of(d, "pna-ps")) is not None and t.basic == "open")
        ps = tuple_of(doc, "pna-ps")
        assert ps is not None
        assert ps.location is None  # bob's rules do not grant provide-location: no cell for him
        # alice herself (the owner) sees the routing area and cell
        alice = await net.ue("alice")
        own = await alice.agent.subscribe("sip:alice@home1.net")
        first = await own.next()
        mine = tuple_of(pidf.parse(first.body), "pna-ps")
        assert mine is not None and mine.location is not None
        cell = mine.location.location_extensions[0].decode()
        assert 'rai="26201-0101-07"' in cell and 'cell="00f1100007"' in cell
        # the PS sets Detached -> closed
        await hss.update_user_data("sip:alice@home1.net", ps_user_state=0)
        doc = await until(sub, lambda d: (t := tuple_of(d, "pna-ps")) is not None and t.basic == "closed")
        assert tuple_of(doc, "pna-ps").location is None  # type: ignore[union-attr]


async def test_sh_reconnects_after_the_hss_drops_it(tmp_path: Path) -> None:
    """A lost Ph connection is opened again and the subscriptions renewed (keeps working)."""
    async with running_network(tmp_path, overrides={"pna": {"enabled": True, "retry": 0.1}}) as net:
        pna = net.nodes["pna"]
        hss = net.nodes["hss"]
        await pna.ready()
        first = pna.sh
        assert first is not None
        pna.ph_ready.clear()
        await hss.server.peers["pna.home1.net"].close()
        async with asyncio.timeout(5):
            await pna.ph_ready.wait()
        assert pna.sh is not None and pna.sh is not first
        answers = await hss.update_user_data("sip:bob@home1.net", cs_user_state=2)
        assert answers and Result.of(answers[0]).code == 2001
