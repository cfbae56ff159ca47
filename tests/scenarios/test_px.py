"""Px: the I-CSCF asks the HSS (Diameter LIR) where the presentity is served.

Watchers reach the PS whether the presentity is registered or not (presence
is a service of the unregistered state too); unknown presentities get 404.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netharness import running_network
from presence_ims.documents import pidf

pytestmark = pytest.mark.slow


async def test_lir_locates_a_registered_presentity(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        await net.ue("alice")
        bob = await net.ue("bob")
        hss = net.nodes["hss"].counters.by_command
        before = hss.get("rx LIR", 0)
        sub = await bob.agent.subscribe("sip:alice@home1.net")
        assert sub.response is not None and sub.response.status == 200
        assert hss.get("rx LIR", 0) == before + 1
        assert hss.get("tx LIA", 0) >= 1


async def test_unregistered_presentity_is_still_served(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        bob = await net.ue("bob")  # alice never registers
        sub = await bob.agent.subscribe("sip:alice@home1.net")
        assert sub.response is not None and sub.response.status == 200
        n = await sub.next()
        assert n.state == "active"
        assert [t.basic for t in pidf.parse(n.body).tuples] == ["closed"]
        # the S-CSCF fetched alice's profile for the unregistered case (SAR)
        assert "sip:alice@home1.net" in net.nodes["scscf"].profiles


async def test_tel_uri_presentity_is_the_same_user(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        bob = await net.ue("bob")
        body = pidf.build(pidf.PresenceDocument("sip:alice@home1.net", (pidf.PresenceTuple("t1", "open"),)))
        assert (await alice.agent.publish(body)).status == 200
        sub = await bob.agent.subscribe("tel:+15550001")
        assert sub.response is not None and sub.response.status == 200
        n = await sub.next()
        doc = pidf.parse(n.body)
        assert doc.entity == "tel:+15550001"
        assert doc.tuples[0].basic == "open"


async def test_unknown_presentity_gets_404(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        bob = await net.ue("bob")
        sub = await bob.agent.subscribe("sip:nobody@home1.net")
        assert sub.response is not None and sub.response.status == 404
        assert not net.nodes["ps"].core.subscriptions


async def test_request_without_ifc_reaches_the_registered_contact_through_path(tmp_path: Path) -> None:
    """No iFC matches a MESSAGE: the terminating S-CSCF routes it to alice's contact via her Path."""
    import asyncio

    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        bob = await net.ue("bob")
        got: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_request(incoming: object) -> None:
            req = incoming.request  # type: ignore[attr-defined]
            if not got.done():
                got.set_result(f"{req.method} {req.body.decode()} {req.headers.get('p-asserted-identity')}")
            incoming.respond(200)  # type: ignore[attr-defined]

        alice.agent.on_other_request = on_request
        msg = bob.agent.new_request("MESSAGE", "sip:alice@home1.net", body=b"hello alice",
                                    content_type="text/plain")
        r = await bob.agent.send(msg)
        assert r.status == 200
        text = await asyncio.wait_for(got, 5)
        assert text.startswith("MESSAGE hello alice") and "sip:bob@home1.net" in text
