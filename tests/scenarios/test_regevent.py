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
        # every IMPU of the set is gone: the UE's and the P-CSCF's subscriptions ended
        assert not scscf.reg_subs


async def test_deregistration_ends_ue_and_pcscf_subscriptions_not_the_pnas(tmp_path: Path) -> None:
    """TS 24.229 5.4.2.1.2: the UE's and its P-CSCF's reg subscriptions end with the registration.

    The PNA, a network watcher, keeps its subscription: it learns of the next registration too.
    """
    async with running_network(tmp_path, overrides={"pna": {"enabled": True, "debounce": 0.05}}) as net:
        await net.nodes["pna"].ready()
        alice = await net.ue("alice", t1=0.05)
        scscf = net.nodes["scscf"]
        async with asyncio.timeout(5):
            await alice.reg_event_active.wait()
            await net.nodes["pcscf"].reg_watch_ready.wait()

        def alices() -> list[str]:
            return sorted(s.watcher for s in scscf.reg_subs.values() if s.impu == "sip:alice@home1.net")

        assert alices() == ["sip:alice@home1.net", "sip:pcscf.home1.net", "sip:pna.home1.net"]
        response = await alice.deregister()
        assert response.status == 200  # over the SAs: integrity-protected, not challenged again
        # the UE's own subscription ends with a terminated NOTIFY (sent after the S-CSCF forgot it)
        watcher = alice._reg_watcher
        assert watcher is not None
        async with asyncio.timeout(5):
            await watcher
        assert alices() == ["sip:pna.home1.net"]
        # the next registration: a new subscription from the UE, the PNA's is the same one
        pna_sub = next(s.id for s in scscf.reg_subs.values() if s.watcher == "sip:pna.home1.net")
        again = await net.ue("alice", t1=0.05)
        async with asyncio.timeout(5):
            await again.reg_event_active.wait()
        assert "sip:alice@home1.net" in alices()
        assert pna_sub in scscf.reg_subs
