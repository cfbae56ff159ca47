"""Gm security, end to end: IMS AKA, sec-agree, ESP, and what the P-CSCF refuses.

Every test runs the whole home network (HSS over Diameter, CSCFs over TLS,
the PS) and a UE on real sockets; the attacks are made on the wire.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netharness import running_network
from presence_ims.documents import pidf
from presence_ims.nodes.ue import RegistrationError
from presence_ims.sip.transaction import Address

pytestmark = pytest.mark.slow
ALICE = "sip:alice@home1.net"


def doc(entity: str = ALICE, basic: str = "open") -> bytes:
    return pidf.build(pidf.PresenceDocument(entity, (pidf.PresenceTuple("t1", basic),)))


async def test_aka_registration_sets_up_encrypted_sas(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        assert alice.protected and alice.sa_set is not None
        assert (alice.sa_set.alg, alice.sa_set.ealg) == ("hmac-sha-1-96", "aes-cbc")
        pcscf = net.nodes["pcscf"]
        reg = pcscf.by_impu["sip:alice@home1.net"]
        assert reg.secagree is not None and reg.secagree.sa_set is not None
        assert reg.impus == ["sip:alice@home1.net", "tel:+15550001"]
        # the PUBLISH travels over the SA and the PS sees the identity the P-CSCF asserted
        r = await alice.agent.publish(doc())
        assert r.status == 200
        (pub,) = net.nodes["ps"].core.publications.values()
        assert pub.asserted_identity == "sip:alice@home1.net"
        assert pub.source_id == "sip:alice@home1.net" and pub.interface == "Peu"


async def test_wrong_key_gets_403(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        eve = await net.ue("alice", register=False, k="00" * 16)
        with pytest.raises(RegistrationError) as err:
            await eve.register()
        # the UE cannot even verify the network (MAC failure): it refuses the challenge
        assert err.value.status == 401


async def test_wrong_res_gets_403(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        ue = await net.ue("alice", register=False)
        original = ue._answer_aka

        def tampered(response: Any, challenge: Any) -> str:
            return _flip_response(original(response, challenge))

        ue._answer_aka = tampered  # type: ignore[method-assign]
        with pytest.raises(RegistrationError) as err:
            await ue.register()
        assert err.value.status == 403
        assert net.nodes["scscf"].endpoint.stats["auth_failed"] == 1


def _flip_response(header: str) -> str:
    start = header.index('response="') + len('response="')
    first = header[start]
    return header[:start] + ("0" if first != "0" else "1") + header[start + 1 :]


async def test_unknown_user_is_refused(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        ue = await net.ue("alice", register=False, auth="digest", impi="mallory@home1.net",
                          impu="sip:mallory@home1.net")
        with pytest.raises(RegistrationError) as err:
            await ue.register()
        assert err.value.status == 403


async def test_null_encryption_is_refused_unless_allowed(tmp_path: Path) -> None:
    null_only = (("hmac-sha-1-96", "null"),)
    async with running_network(tmp_path) as net:
        ue = await net.ue("alice", register=False, algorithms=null_only)
        with pytest.raises(RegistrationError) as err:
            await ue.register()
        assert err.value.status == 494
    (tmp_path / "allowed").mkdir()
    async with running_network(tmp_path / "allowed", overrides={"pcscf": {"allow_null_encryption": True}}) as net:
        ue = await net.ue("alice", algorithms=null_only)
        assert ue.sa_set is not None and ue.sa_set.ealg == "null"


async def test_downgraded_security_verify_gets_494(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        ue = await net.ue("alice", register=False)
        original = ue._register_request

        def downgrade(expires: int, authorization: str | None) -> Any:
            req = original(expires, authorization)
            verify = req.headers.get("security-verify")
            if verify:
                req.headers.set("Security-Verify", verify.replace("aes-cbc", "null"))
            return req

        ue._register_request = downgrade  # type: ignore[method-assign]
        with pytest.raises(RegistrationError) as err:
            await ue.register()
        assert err.value.status == 494
        assert net.nodes["pcscf"].endpoint.stats["secagree_downgrade"] == 1


async def test_unprotected_request_after_registration_is_refused(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        # the same UE sends a PUBLISH on the plain port instead of the SA
        request = alice.agent.new_request("PUBLISH", ALICE, headers=[("Event", "presence")],
                                          body=doc(), content_type="application/pidf+xml")
        r = await alice.endpoint.request(request, alice.pcscf)
        assert r.status == 403
        assert not net.nodes["ps"].core.publications


async def test_ue_supplied_pai_is_replaced(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        # alice claims to be bob and publishes for bob: the P-CSCF asserts alice, the PS refuses
        r = await alice.agent.publish(doc("sip:bob@home1.net"), presentity="sip:bob@home1.net",
                                      headers=[("P-Asserted-Identity", "<sip:bob@home1.net>")])
        assert r.status == 403
        assert not net.nodes["ps"].core.publications
        # a P-Preferred-Identity among her own IMPUs is honoured
        r = await alice.agent.publish(doc("tel:+15550001"), presentity="tel:+15550001",
                                      headers=[("P-Preferred-Identity", "<tel:+15550001>")])
        assert r.status == 200
        (pub,) = net.nodes["ps"].core.publications.values()
        assert pub.asserted_identity == "tel:+15550001"
        assert pub.presentity == "sip:alice@home1.net"


async def test_replayed_and_tampered_esp_packets_are_dropped(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice")
        sent: list[tuple[Any, Any, bytes]] = []
        alice.esp.tap = lambda direction, src, dst, packet: sent.append((src, dst, packet)) if direction == "out" else None
        r = await alice.agent.publish(doc())
        assert r.status == 200
        pcscf_esp = net.nodes["pcscf"].esp
        src, dst, packet = next(p for p in sent if b"PUBLISH" not in p[2])  # encrypted: no SIP text
        delivered = net.nodes["pcscf"].endpoint.stats["rx_request"]
        alice.esp.send_raw(packet, src[1], dst)
        # a later sequence number (so not a replay) and one flipped byte: the ICV must fail
        tampered = bytearray(packet)
        tampered[4:8] = (int.from_bytes(packet[4:8], "big") + 1000).to_bytes(4, "big")
        tampered[len(tampered) // 2] ^= 0x01
        alice.esp.send_raw(bytes(tampered), src[1], dst)
        # an OPTIONS through the same SA proves the P-CSCF processed what came before it
        probe = alice.agent.new_request("OPTIONS", "sip:pcscf.home1.net")
        await alice.endpoint.request(probe, alice.agent.outbound)
        assert pcscf_esp.drops["replay"] == 1
        assert pcscf_esp.drops["bad_icv"] == 1
        assert net.nodes["pcscf"].endpoint.stats["rx_request"] == delivered + 1
        assert len(net.nodes["ps"].core.publications) == 1


async def test_expired_sa_is_refused(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice", t1=0.05)  # Timer F = 3.2 s
        pcscf = net.nodes["pcscf"]
        assert alice.sa_set is not None
        # the registration ends on the P-CSCF side: its SAs expire
        reg = pcscf.by_impu["sip:alice@home1.net"]
        reg.expires_at = 0.0
        pcscf.sweep(pcscf.clock() + 10_000)
        r = await alice.agent.publish(doc())
        assert r.status in (408, 503)
        assert sum(pcscf.esp.drops.values()) >= 1
        assert not net.nodes["ps"].core.publications


async def test_digest_client_uses_its_address(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice", auth="digest")
        assert not alice.protected
        r = await alice.agent.publish(doc())
        assert r.status == 200
        # another socket claiming alice's identity is not registered: refused
        other = await net.ue("alice", auth="digest", register=False)
        req = other.agent.new_request("PUBLISH", ALICE, headers=[("Event", "presence")], body=doc(),
                                      content_type="application/pidf+xml")
        r = await other.endpoint.request(req, Address("udp", "127.0.0.1", net.settings.pcscf.port))
        assert r.status == 403


async def test_aka_over_tcp_uses_esp_over_tcp(tmp_path: Path) -> None:
    async with running_network(tmp_path) as net:
        alice = await net.ue("alice", transport="tcp")
        bob = await net.ue("bob", transport="tcp")
        assert alice.protected and alice.agent.transport == "esp-tcp"
        assert (await alice.agent.publish(doc())).status == 200
        sub = await bob.agent.subscribe(ALICE)
        n = await sub.next()
        assert pidf.parse(n.body).tuples[0].basic == "open"
        assert net.nodes["pcscf"].esp_tcp.connections >= 1
