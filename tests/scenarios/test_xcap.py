"""Peu over HTTP: the presentity edits its rules with XCAP and live subscriptions follow.

The XCAP server authenticates with the same SIP Digest credentials the
network uses (HSS data), confines each user to their own documents, and
hands every change to the PS, which re-evaluates the subscriptions at once.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import DigestAuthMiddleware

from netharness import running_network
from presence_ims.documents import pidf, presrules

pytestmark = pytest.mark.slow
ALICE = "sip:alice@home1.net"

BLOCK_BOB = b"""<?xml version="1.0" encoding="UTF-8"?>
<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" xmlns:pr="urn:ietf:params:xml:ns:pres-rules">
  <cp:rule id="allow-buddies">
    <cp:conditions><cp:identity><cp:one id="sip:bob@home1.net"/></cp:identity></cp:conditions>
    <cp:actions><pr:sub-handling>block</pr:sub-handling></cp:actions>
  </cp:rule>
</cp:ruleset>
"""


def session(user: str, password: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(middlewares=(DigestAuthMiddleware(user, password),))


async def test_rules_edited_over_xcap_change_live_subscriptions(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        bob = await net.ue("bob")
        body = pidf.build(pidf.PresenceDocument(ALICE, (pidf.PresenceTuple("t1", "open"),)))
        await alice.agent.publish(body)
        sub = await bob.agent.subscribe(ALICE)
        assert (await sub.next()).state == "active"
        root = f"http://127.0.0.1:{net.settings.ps.xcap_port}/xcap-root"
        url = f"{root}/pres-rules/users/{ALICE}/index"
        async with session("alice@home1.net", "alice-demo") as http:
            r = await http.get(url)
            assert r.status == 200
            current = presrules.parse(await r.read())
            assert [rule.id for rule in current.rules] == ["allow-buddies"]
            etag = r.headers["ETag"]
            # one attribute by node selector: bob's rule now says polite-block
            sel = f"{url}/~~/cp:ruleset/cp:rule%5B@id=%22allow-buddies%22%5D/cp:actions/pr:sub-handling"
            ns = "?xmlns(cp=urn:ietf:params:xml:ns:common-policy)xmlns(pr=urn:ietf:params:xml:ns:pres-rules)"
            r = await http.put(sel + ns, data=b'<pr:sub-handling xmlns:pr="urn:ietf:params:xml:ns:pres-rules">polite-block</pr:sub-handling>',
                               headers={"Content-Type": "application/xcap-el+xml", "If-Match": etag})
            assert r.status == 200, await r.text()
            n = await sub.next()
            assert n.state == "active" and [t.basic for t in pidf.parse(n.body).tuples] == ["closed"]
            # whole document: block -> the subscription ends with reason=rejected
            r = await http.put(url, data=BLOCK_BOB, headers={"Content-Type": "application/auth-policy+xml"})
            assert r.status == 200
            end = await sub.next()
            assert end.state == "terminated" and end.params["reason"] == "rejected"
            # a stale ETag is refused
            r = await http.put(url, data=BLOCK_BOB, headers={"Content-Type": "application/auth-policy+xml",
                                                             "If-Match": etag})
            assert r.status == 412
        # bob may not read alice's rules; wrong password: 401
        async with session("bob@home1.net", "bob-demo") as http:
            assert (await http.get(url)).status == 403
        async with session("alice@home1.net", "wrong") as http:
            assert (await http.get(url)).status == 401
