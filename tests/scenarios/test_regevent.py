"""The reg event (RFC 3680): the UE and the P-CSCF watch the UE's registration.

An administrative de-registration at the HSS (RTR to the S-CSCF) reaches
both: the UE learns it is no longer registered and the P-CSCF tears down its
security associations, so requests over them are refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from netharness import running_network
from presence_ims.documents import pidf

pytestmark = pytest.mark.slow


async def test_network_deregistration_reaches_ue_and_pcscf(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice", t1=0.05)
        scscf = net.nodes["scscf"]
        # both the UE and the P-CSCF hold a reg-event subscription at the S-CSCF
        async with asyncio.timeout(5):
            await alice.reg_event_active.wait()
            await net.nodes["pcscf"].reg_watch_ready.wait()
        watchers = sorted(s.watcher for s in scscf.reg_subs.values())
        assert watchers == ["sip:alice@home1.net", "sip:pcscf.home1.net"]
        answers = await net.nodes["hss"].deregister("alice@home1.net")
        assert answers  # the RTA of the S-CSCF
        async with asyncio.timeout(5):
            await alice.network_deregistered.wait()
        assert alice.registration is None
        pcscf = net.nodes["pcscf"]
        # the P-CSCF ended the registration (its SAs live on for the grace period only)
        assert pcscf.by_impu["sip:alice@home1.net"].expires_at <= pcscf.clock()
        body = pidf.build(pidf.PresenceDocument("sip:alice@home1.net", (pidf.PresenceTuple("t", "open"),)))
        r = await alice.agent.publish(body)
        assert r.status == 403
        assert not net.nodes["ps"].core.publications
