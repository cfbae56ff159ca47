"""SIPp as an ordinary SIP client of the whole home network (Gm at the P-CSCF, plain UDP).

- SIP Digest (TS 33.203 Annex N): REGISTER, 401, REGISTER with credentials,
  200 with a Service-Route; a PUBLISH along it reaches the Presence Server,
  and bob (our UE, IMS AKA with sec-agree) sees alice's state in a NOTIFY.
- IMS AKA without IPsec (``allow_aka_without_ipsec``): SIPp computes the
  AKAv1-MD5 response from K, OP and AMF given as text.  SIPp 3.6 takes the
  AMF as two raw text bytes, and the demo AMF 8000 (0x80 0x00) cannot be
  written that way, so these tests add a subscriber whose keys are all
  printable (AMF "00" = 3030 hex).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from interop_peers import SCENARIOS, SippResult, aka_scenario, bob_doc, run_sipp

from netharness import CONFIGS, RunningNetwork, free_port, running_network
from presence_ims.documents import pidf
from presence_ims.security.aka import decode_nonce
from presence_ims.security.milenage import Milenage

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.timeout(60)]

ALICE = "sip:alice@home1.net"
KEYS = {"domain": "home1.net", "expires": "600"}

# a subscriber SIPp 3.6 can register with IMS AKA: K, OP and AMF are printable text
SIPP_AKA = {
    "impi": "sippaka@home1.net",
    "impus": [["sip:sippaka@home1.net"]],
    "k": b"sipp-aka-key-001".hex(),
    "op": b"home1-operator-1".hex(),
    "amf": b"00".hex(),
    "digest_password": "sippaka-demo",
    "auth_schemes": ["aka", "digest"],
}


def subscribers_with_sipp_aka() -> dict[str, Any]:
    with (CONFIGS / "home1.toml").open("rb") as fh:
        subscribers = tomllib.load(fh)["subscribers"]
    return {"subscribers": [*subscribers, SIPP_AKA]}


def pcscf(net: RunningNetwork) -> str:
    return f"127.0.0.1:{net.settings.pcscf.port}"


def first(result: SippResult, start: str) -> str:
    found = result.received(start)
    assert found, f"SIPp received no {start!r}\n{result.describe()}"
    return found[0]


async def test_sipp_digest_register_then_publish_reaches_bob(
    tmp_path: Path, sipp: str, workdir: Path
) -> None:
    async with running_network(tmp_path) as net:
        bob = await net.ue("bob")
        watch = await bob.agent.subscribe(ALICE)
        assert watch.response is not None and watch.response.status == 200
        await watch.next()  # alice has published nothing yet

        result = await run_sipp(
            sipp, pcscf(net), SCENARIOS / "register_digest.xml", workdir,
            calls=1, rows=[("alice",)], keys={**KEYS, "note": "from-sipp"},
            options=["-au", "alice@home1.net", "-ap", "alice-demo", "-auth_uri", "home1.net"],
            local_port=free_port(),
        )
        assert result.returncode == 0, result.describe()
        assert (result.successful, result.failed) == (1, 0), result.describe()

        challenge = first(result, "SIP/2.0 401")
        assert re.search(r"^WWW-Authenticate: Digest .*algorithm=MD5", challenge, re.M)
        ok = first(result, "SIP/2.0 200")
        service_route = re.search(r"^Service-Route: (<[^>]*>)", ok, re.M)
        assert service_route is not None, ok
        assert re.search(r"^Route: " + re.escape(service_route.group(1)), result.messages, re.M)

        # the PUBLISH went P-CSCF -> S-CSCF -> (ISC) PS: bob is told, then told it is gone
        note = await watch.next()
        doc = pidf.parse(note.body)
        assert [(t.id, t.basic) for t in doc.tuples] == [("sipp", "open")]
        assert doc.tuples[0].notes[0].text == "from-sipp"
        gone = await watch.next()
        assert "sipp" not in [t.id for t in pidf.parse(gone.body).tuples]
        # and SIPp de-registered at the end: the S-CSCF forgot the binding, the P-CSCF
        # refuses the UE from now on (it keeps the entry for sa_grace, for final NOTIFYs)
        assert net.nodes["scscf"].registration_of("sip:alice@home1.net") is None
        pcscf_node = net.nodes["pcscf"]
        ended = pcscf_node.by_impu.get("sip:alice@home1.net")
        assert ended is None or ended.expires_at <= pcscf_node.clock()


async def test_sipp_watcher_through_the_network(
    tmp_path: Path, sipp: str, workdir: Path
) -> None:
    """SIPp registers as alice, then runs the SUBSCRIBE scenario through the IMS core."""
    async with running_network(tmp_path) as net:
        bob = await net.ue("bob")
        r = await bob.agent.publish(bob_doc("open", "busy"))
        assert r.status == 200
        port = free_port()  # the P-CSCF knows the Digest client by this address
        digest = ["-au", "alice@home1.net", "-ap", "alice-demo", "-auth_uri", "home1.net"]
        result = await run_sipp(
            sipp, pcscf(net), SCENARIOS / "register.xml", workdir, calls=1,
            rows=[("alice",)], keys=KEYS, options=digest, local_port=port,
        )
        assert result.returncode == 0 and result.successful == 1, result.describe()

        result = await run_sipp(
            sipp, pcscf(net), SCENARIOS / "subscribe.xml", workdir, calls=1,
            rows=[("bob", "alice")], keys=KEYS, local_port=port,
        )
        assert result.returncode == 0, result.describe()
        assert (result.successful, result.failed) == (1, 0), result.describe()
        active, final = result.received("NOTIFY ")
        assert "<basic>open</basic>" in active and "<rpid:busy" in active
        assert "terminated" in final
        # the NOTIFY carries the route set back (RFC 6665 4.3), the P-CSCF first, at its
        # address; the un-SUBSCRIBE followed it
        gm = f"<sip:127.0.0.1:{net.settings.pcscf.port};lr>"
        assert re.findall(r"^Record-Route: (.*)$", active, re.M)[0] == gm
        routes = re.findall(r"^Route: (.*)$", result.messages, re.M)  # the un-SUBSCRIBE's
        assert len(routes) == 1 and routes[0].startswith(gm), routes
        assert not [s for s in net.nodes["ps"].core.subscriptions.values() if s.watcher == ALICE]


def res_has_nul(result: SippResult) -> bool:
    """Whether the RES of the challenge SIPp got holds a 0x00 byte.

    SIPp 3.6.1 hashes RES as a C string (``strlen``): a RES with a zero byte
    (about one challenge in 32) gives a wrong response and a rightful 403.
    """
    challenge = first(result, "SIP/2.0 401")
    nonce = re.search(r'nonce="([^"]+)"', challenge)
    assert nonce is not None, challenge
    rand, _autn = decode_nonce(nonce.group(1))
    res = Milenage(b"sipp-aka-key-001", op=b"home1-operator-1").f2345(rand)[0]
    return b"\x00" in res


async def test_sipp_ims_aka_without_ipsec(tmp_path: Path, sipp: str, workdir: Path) -> None:
    scenario = aka_scenario(workdir / "register_aka.xml", k="sipp-aka-key-001",
                            op="home1-operator-1", amf="00")
    async with running_network(
        tmp_path, overrides={"pcscf": {"allow_aka_without_ipsec": True}},
        extra=subscribers_with_sipp_aka(),
    ) as net:
        attempts = 0
        while True:  # a new challenge each time: at most 4, (1/32)^4 of all of them hitting the bug
            attempts += 1
            result = await run_sipp(
                sipp, pcscf(net), scenario, workdir, calls=1, rows=[("sippaka",)], keys=KEYS,
                options=["-au", "sippaka@home1.net", "-auth_uri", "home1.net"],
                local_port=free_port(),
            )
            if result.returncode == 0 or attempts == 4 or not res_has_nul(result):
                break
            # SIPp's known defect, not ours: the S-CSCF refused a wrong response
            assert result.received("SIP/2.0 403"), result.describe()
        assert result.returncode == 0, result.describe()
        assert (result.successful, result.failed) == (1, 0), result.describe()
        challenge = first(result, "SIP/2.0 401")
        assert "algorithm=AKAv1-MD5" in challenge
        assert not re.search(r"\b(ik|ck)=", challenge)  # the P-CSCF keeps the keys
        assert "Security-Server" not in challenge
        assert net.nodes["pcscf"].endpoint.stats["aka_without_ipsec"] == 2 * attempts  # 2 REGISTERs each


async def test_sipp_ims_aka_refused_without_the_setting(
    tmp_path: Path, sipp: str, workdir: Path
) -> None:
    scenario = aka_scenario(workdir / "register_aka.xml", k="sipp-aka-key-001",
                            op="home1-operator-1", amf="00")
    async with running_network(tmp_path, extra=subscribers_with_sipp_aka()) as net:
        result = await run_sipp(
            sipp, pcscf(net), scenario, workdir, calls=1, rows=[("sippaka",)], keys=KEYS,
            options=["-au", "sippaka@home1.net", "-auth_uri", "home1.net"],
            local_port=free_port(), limit=10,
        )
        assert result.returncode == 1 and result.failed == 1, result.describe()
        refusal = first(result, "SIP/2.0 494")
        assert "Security-Server" in refusal
        assert not net.nodes["pcscf"].by_impu


async def test_sipp_ims_aka_demo_alice(
    tmp_path: Path, sipp: str, sipp_version: tuple[int, ...], workdir: Path
) -> None:
    """alice's demo AMF is 8000 hex: newer SIPp take the AMF from AUTN, SIPp 3.6 cannot."""
    scenario = aka_scenario(workdir / "register_aka.xml", k="alice-ims-key-01",
                            op="home1-operator-1", amf="00")
    async with running_network(
        tmp_path, overrides={"pcscf": {"allow_aka_without_ipsec": True}}
    ) as net:
        result = await run_sipp(
            sipp, pcscf(net), scenario, workdir, calls=1, rows=[("alice",)], keys=KEYS,
            options=["-au", "alice@home1.net", "-auth_uri", "home1.net"],
            local_port=free_port(), limit=10,
        )
    if result.returncode != 0 and "MAC != eXpectedMAC" in result.errors + result.output:
        pytest.xfail(
            f"SIPp {'.'.join(map(str, sipp_version))} checks AUTN's MAC with aka_AMF taken as two "
            "text bytes; alice's AMF 0x80 0x00 cannot be given as text"
        )
    assert result.returncode == 0, result.describe()
    assert (result.successful, result.failed) == (1, 0), result.describe()
