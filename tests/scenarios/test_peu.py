"""Peu: a UE publishes its presence through P-CSCF, S-CSCF (ISC) to the PS.

Each test asserts on what a watcher receives, end to end over real sockets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netharness import running_network
from presence_ims.documents import pidf

pytestmark = pytest.mark.slow


def doc(entity: str, basic: str, note: str | None = None) -> bytes:
    notes = (pidf.Note(note),) if note else ()
    return pidf.build(pidf.PresenceDocument(entity, (pidf.PresenceTuple("t1", basic, notes=notes),)))


@pytest.mark.parametrize("auth", ["aka", "digest"])
async def test_publish_reaches_watcher(tmp_path: Path, auth: str) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice", auth=auth)
        bob = await net.ue("bob")
        assert alice.protected is (auth == "aka")
        r = await alice.agent.publish(doc("sip:alice@home1.net", "open", "at my desk"))
        assert r.status == 200
        etag = r.headers.get("sip-etag")
        assert etag
        sub = await bob.agent.subscribe("sip:alice@home1.net")
        assert sub.response is not None and sub.response.status == 200
        first = await sub.next()
        assert first.state == "active"
        got = pidf.parse(first.body)
        assert got.tuples[0].basic == "open"
        assert got.tuples[0].notes[0].text == "at my desk"
        r = await alice.agent.publish(doc("sip:alice@home1.net", "closed"), etag=etag)
        assert r.status == 200
        second = await sub.next()
        assert pidf.parse(second.body).tuples[0].basic == "closed"
