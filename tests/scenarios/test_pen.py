"""Pen: the PNA's own event state at the PS (RFC 3903), network provenance, staleness.

* one publication per presentity, modified in place (SIP-If-Match) as the
  network state changes, bursts debounced into fewer PUBLISHes;
* the PS composes it as network presence received on Pen from ``pna``;
* data from a source that goes quiet expires and the publication goes with it;
* when the PNA stops it removes its publications (Expires: 0).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from netharness import running_network
from presence_ims.documents import compose, pidf
from presence_ims.nodes.sim.client import ElementSimulator
from presence_ims.nodes.sim.node import targets_from_settings
from presence_ims.ua import ClientSubscription

pytestmark = pytest.mark.slow


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


def pna_publications(net: object) -> list[object]:
    ps = net.nodes["ps"]  # type: ignore[attr-defined]
    return [r for r in ps.core.publications.values() if r.source_id == "pna"]


async def test_one_event_state_modified_debounced_and_removed(tmp_path: Path) -> None:
    overrides = {"pna": {"enabled": True, "debounce": 0.3}}
    async with running_network(tmp_path, overrides=overrides) as net:
        pna = net.nodes["pna"]
        await pna.ready()
        sim = ElementSimulator(targets_from_settings(net.settings))
        try:
            alice = await net.ue("alice")
            own = await alice.agent.subscribe("sip:alice@home1.net")  # the owner sees provenance
            await until(own, lambda d: tuple_of(d, "pna-ims") is not None)
            first = pna.publisher.view("sip:alice@home1.net")
            assert first is not None and first.etag is not None
            published = pna.counters["Pen.published"]
            # five moves in a burst: one modify of the same publication, not five
            assert (await sim.feed("sgsn", "alice", "attach", cell="1")).ok
            for cell in ("2", "3", "4", "5"):
                assert (await sim.feed("sgsn", "alice", "location", cell=cell)).ok
            doc = await until(own, lambda d: (t := tuple_of(d, "pna-ps")) is not None and t.location is not None
                              and b'cell="5"' in t.location.location_extensions[0])  # fmt: skip
            assert pna.counters["Pen.published"] - published < 5
            after = pna.publisher.view("sip:alice@home1.net")
            assert after is not None and after.etag != first.etag  # the PS issued a new entity tag
            records = pna_publications(net)
            assert len(records) == 1  # still one event state for alice
            # the composed document says where the network tuples came from
            ims = tuple_of(doc, "pna-ims")
            assert ims is not None
            marks = compose.read_provenance(ims.extensions)
            assert marks and marks[0][1].interface == "Pen"
            assert marks[0][1].source_class == "network" and marks[0][1].source_id == "pna"
            # stopping the PNA removes its publications
            node = net.network.nodes.pop("pna")
            await node.stop()
            await until(own, lambda d: tuple_of(d, "pna-ims") is None and tuple_of(d, "pna-ps") is None)
            assert pna_publications(net) == []
        finally:
            await sim.close()


async def test_stale_source_data_expires(tmp_path: Path) -> None:
    overrides = {"pna": {"enabled": True, "debounce": 0.05, "pi": False, "ph": False,
                         "stale_after": {"Pg": 1.0}}}  # fmt: skip
    async with running_network(tmp_path, overrides=overrides) as net:
        pna = net.nodes["pna"]
        sim = ElementSimulator(targets_from_settings(net.settings))
        try:
            bob = await net.ue("bob")
            sub = await bob.agent.subscribe("sip:alice@home1.net")
            await sub.next()
            assert (await sim.feed("sgsn", "alice", "attach")).ok
            await until(sub, lambda d: (t := tuple_of(d, "pna-ps")) is not None and t.basic == "open")
            # the SGSN says nothing more: after stale_after the fact and the publication go
            await until(sub, lambda d: tuple_of(d, "pna-ps") is None)
            assert pna.core.facts("sip:alice@home1.net").ps is None
            assert pna_publications(net) == []
            # and the PNA keeps working: the next event publishes again
            assert (await sim.feed("sgsn", "alice", "attach")).ok
            await until(sub, lambda d: (t := tuple_of(d, "pna-ps")) is not None and t.basic == "open")
        finally:
            await sim.close()
