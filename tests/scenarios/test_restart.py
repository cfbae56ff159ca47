"""Restarting the PS and the S-CSCF in the middle of a scenario loses nothing.

The PS keeps publications and subscriptions (with their dialog state) in its
SQLite store and NOTIFYs every watcher after a restart; the S-CSCF keeps its
registrations, so UEs go on publishing without registering again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netharness import running_network
from presence_ims.documents import pidf

pytestmark = pytest.mark.slow
ALICE = "sip:alice@home1.net"


def doc(basic: str, note: str) -> bytes:
    return pidf.build(pidf.PresenceDocument(ALICE, (pidf.PresenceTuple("t1", basic, notes=(pidf.Note(note),)),)))


async def test_ps_restart_resumes_subscriptions(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        bob = await net.ue("bob")
        r = await alice.agent.publish(doc("open", "before"))
        etag = r.headers.get("sip-etag")
        sub = await bob.agent.subscribe(ALICE)
        await sub.next()
        await net.restart("ps")
        resumed = await sub.next()
        assert resumed.state == "active"
        assert pidf.parse(resumed.body).tuples[0].notes[0].text == "before"
        r = await alice.agent.publish(doc("closed", "after"), etag=etag)
        assert r.status == 200
        after = await sub.next()
        assert pidf.parse(after.body).tuples[0].notes[0].text == "after"
        assert (await bob.agent.refresh(sub, expires=120)).status == 200


async def test_scscf_restart_keeps_registrations(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        bob = await net.ue("bob", auth="digest")
        sub = await bob.agent.subscribe(ALICE)
        await sub.next()
        await net.restart("scscf")
        assert "alice@home1.net" in net.nodes["scscf"].registrations
        r = await alice.agent.publish(doc("open", "after scscf restart"))
        assert r.status == 200
        n = await sub.next()
        assert pidf.parse(n.body).tuples[0].notes[0].text == "after scscf restart"
        assert (await bob.agent.refresh(sub, expires=120)).status == 200


async def test_other_nodes_survive_a_stopped_ps(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice", t1=0.05)
        await net.network.nodes.pop("ps").stop()
        # the S-CSCF cannot reach the AS: the UE gets an error, nobody crashes
        r = await alice.agent.publish(doc("open", "ps down"))
        assert r.status >= 400
        node = await net.restart_missing("ps")
        r = await alice.agent.publish(doc("open", "ps back"))
        assert r.status == 200
        assert node.core.publications
