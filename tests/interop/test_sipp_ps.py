"""SIPp (an independent SIP implementation) against the Presence Server alone, open trust mode.

The scenarios are those of ``tests/interop/sipp/`` that the benchmarks also
run: a fresh presentity (and watcher) per call from an ``-inf`` file, the
domain and expiry as ``-key`` keywords.  SIPp's own verdict (exit code 0,
every call successful) is asserted, and so is what the PS did and what an
independent watcher (our UA) saw.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from interop_peers import SCENARIOS, run_sipp

from netharness import free_port
from presence_ims.documents import pidf
from presence_ims.documents.rpid import Note
from presence_ims.nodes.ps.node import PresenceServer
from presence_ims.sip.transaction import Address
from presence_ims.transport import SipEndpoint
from presence_ims.ua import UserAgent

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.timeout(60)]

DOMAIN = "home1.net"
KEYS = {"domain": DOMAIN, "expires": "600"}


async def our_ua(ps: PresenceServer, aor: str) -> tuple[UserAgent, SipEndpoint]:
    endpoint = SipEndpoint(node="watcher")
    await endpoint.listen("udp", "127.0.0.1", 0)
    return UserAgent(endpoint, aor, outbound=Address("udp", "127.0.0.1", ps.port("udp"))), endpoint


def target(ps: PresenceServer) -> str:
    return f"127.0.0.1:{ps.port('udp')}"


async def test_sipp_publish_refresh_remove(open_ps: PresenceServer, sipp: str, workdir: Path) -> None:
    calls = 20
    users = [(f"sipp{i:04d}",) for i in range(calls)]
    ua, endpoint = await our_ua(open_ps, "sip:observer@home1.net")
    try:
        watched = f"sip:{users[0][0]}@{DOMAIN}"
        sub = await ua.subscribe(watched)
        assert sub.response is not None and sub.response.status == 200
        await sub.next()  # nothing published yet

        result = await run_sipp(
            sipp, target(open_ps), SCENARIOS / "publish.xml", workdir,
            calls=calls, rows=users, keys=KEYS, local_port=free_port(),
        )
        assert result.returncode == 0, result.describe()
        assert (result.successful, result.failed) == (calls, 0), result.describe()

        # every call: initial PUBLISH, refresh, removal; nothing is left
        core = open_ps.core
        assert core.stats.get("publish") == 3 * calls
        assert core.publications == {}
        etags = re.findall(r"^SIP-ETag: (\S+)", result.messages, re.M)
        assert len(etags) == 2 * calls and len(set(etags)) == 2 * calls  # a fresh tag per change

        # the watcher saw SIPp's document, then its removal
        note = await sub.next()
        doc = pidf.parse(note.body)
        assert [(t.id, t.basic) for t in doc.tuples] == [("sipp", "open")]
        assert doc.tuples[0].notes[0].text == "sipp call 1"
        removed = await sub.next()
        assert "sipp" not in [t.id for t in pidf.parse(removed.body).tuples]
    finally:
        await endpoint.close()


async def test_sipp_subscribe_notify_unsubscribe(
    open_ps: PresenceServer, sipp: str, workdir: Path
) -> None:
    calls = 10
    rows = [(f"pres{i:04d}", f"watcher{i:04d}") for i in range(calls)]
    # each presentity has a document before its watcher comes
    for presentity, _ in rows:
        aor = f"sip:{presentity}@{DOMAIN}"
        pua, endpoint = await our_ua(open_ps, aor)
        body = pidf.build(pidf.PresenceDocument(
            aor, (pidf.PresenceTuple("ua", "open", notes=(Note(f"note of {presentity}"),)),)
        ))
        try:
            assert (await pua.publish(body)).status == 200
        finally:
            await endpoint.close()

    result = await run_sipp(
        sipp, target(open_ps), SCENARIOS / "subscribe.xml", workdir,
        calls=calls, rows=rows, keys=KEYS, local_port=free_port(),
    )
    assert result.returncode == 0, result.describe()
    assert (result.successful, result.failed) == (calls, 0), result.describe()

    notifies = result.received("NOTIFY ")
    assert len(notifies) == 2 * calls
    active = [n for n in notifies if re.search(r"^Subscription-State: active", n, re.M)]
    terminated = [n for n in notifies if re.search(r"^Subscription-State: terminated", n, re.M)]
    assert len(active) == len(terminated) == calls
    for presentity, _ in rows:
        mine = [n for n in active if f'entity="sip:{presentity}@{DOMAIN}"' in n]
        assert len(mine) == 1 and f"note of {presentity}" in mine[0]
    core = open_ps.core
    assert core.subscriptions == {}
    assert core.stats.get("subscribe") == 2 * calls
    assert core.stats.get("unsubscribe") == calls
