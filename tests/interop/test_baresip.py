"""baresip (an independent SIP client, headless, driven over ctrl_tcp) in the home network.

alice is a baresip account registering at the P-CSCF with SIP Digest over
plain UDP, publishing with its presence module (``pubint``) and watching bob
(an address-book contact marked ``;presence=p2p``).  bob is our UE, with IMS
AKA and sec-agree.  Presence flows both ways through P-CSCF, S-CSCF (ISC) and
the Presence Server:

- baresip's PUBLISH reaches bob's subscription (NOTIFY with basic open);
- ``presence_offline`` / ``presence_online`` typed into baresip reach bob;
- bob's PUBLISH reaches baresip, which shows bob Online, then Busy (RPID).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from interop_peers import ALICE, BOB, Baresip, BaresipAccount, bob_doc, until_basic

from netharness import free_port, running_network
from presence_ims.documents import pidf

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.timeout(60)]


def baresip_for(net_port: int, home: Path, binary: str) -> Baresip:
    account = BaresipAccount(
        aor=ALICE,
        auth_user="alice@home1.net",
        password="alice-demo",
        outbound=f"sip:127.0.0.1:{net_port}",
    )
    return Baresip(
        binary, home, free_port(), free_port(), account,
        contacts=[f'"Bob" <{BOB}>;presence=p2p'],
    )


async def test_baresip_presence_both_ways(tmp_path: Path, baresip: str, workdir: Path) -> None:
    async with running_network(tmp_path) as net:
        bob = await net.ue("bob")
        watch = await bob.agent.subscribe(ALICE)
        assert watch.response is not None and watch.response.status == 200
        await watch.next()  # alice has not published yet: the neutral document
        bs = baresip_for(net.settings.pcscf.port, workdir / "baresip", baresip)
        await bs.start()
        try:
            # alice registers with SIP Digest at the P-CSCF (401, then 200)
            await bs.wait_output(r"alice@home1\.net: \{0/UDP/v4\} 200 OK")
            registers = [m for m in bs.sip_messages() if m.startswith("REGISTER ")]
            answered = [m for m in registers if "Authorization: Digest" in m]
            assert "Authorization" not in registers[0] and answered
            assert all('username="alice@home1.net"' in m for m in answered)
            assert not [m for m in registers if "AKAv1-MD5" in m or "Security-Client" in m]

            # baresip publishes basic open after its registration: bob is told
            note = await until_basic(watch, "open")
            doc = pidf.parse(note.body)
            assert doc.entity == ALICE
            assert [t.contact.uri for t in doc.tuples if t.contact] == [ALICE]

            # a change made in baresip reaches our watcher
            reply = await bs.command("presence_offline")
            assert reply["ok"], reply
            await until_basic(watch, "closed")
            reply = await bs.command("presence_online")
            assert reply["ok"], reply
            await until_basic(watch, "open")

            # baresip watches bob: its subscription is up once the first NOTIFY came in
            mark = await bs.wait_output(r'entity="sip:bob@home1\.net"', within=10)
            assert await bs.contact_status(BOB) == "Offline"  # bob published nothing yet
            # that NOTIFY may overtake the 200 to the SUBSCRIBE and create baresip's dialog:
            # it carries the route set, the P-CSCF first, at an address baresip can reach
            notify = next(m for m in bs.sip_messages() if m.startswith("NOTIFY ") and BOB in m)
            routes = re.findall(r"^Record-Route: (.*)$", notify, re.M)
            assert routes and routes[0] == f"<sip:127.0.0.1:{net.settings.pcscf.port};lr>", notify

            # a change made with our UE reaches baresip
            r = await bob.agent.publish(bob_doc("open"))
            assert r.status == 200
            etag = r.headers.get("sip-etag")
            mark = await bs.wait_output(
                r'entity="sip:bob@home1\.net".*<basic>open</basic>', after=mark, within=10
            )
            assert await bs.contact_status(BOB) == "Online"
            r = await bob.agent.publish(bob_doc("open", "busy"), etag=etag)
            assert r.status == 200
            await bs.wait_output(r'entity="sip:bob@home1\.net".*<rpid:busy', after=mark, within=10)
            assert await bs.contact_status(BOB) == "Busy"
        finally:
            await bs.stop()
        # on quit baresip ends its subscription along the dialog's route set: the PS
        # answers and sends the final NOTIFY, and forgets the subscription
        unsubscribe = [m for m in bs.sip_messages() if re.match(r"SUBSCRIBE sip:ps@", m)]
        assert unsubscribe and "Expires: 0" in unsubscribe[-1], bs.output[-3000:]
        assert re.search(r"^Subscription-State: terminated", bs.output, re.M)
        ps = net.nodes["ps"]
        assert not [s for s in ps.core.subscriptions.values() if s.presentity == BOB]
        # baresip answered every NOTIFY it got with 200 (none refused as malformed)
        answers = [
            m for m in bs.sip_messages()
            if m.startswith("SIP/2.0 ") and re.search(r"^CSeq: \d+ NOTIFY", m, re.M)
        ]
        assert answers and all(m.startswith("SIP/2.0 200") for m in answers), answers
