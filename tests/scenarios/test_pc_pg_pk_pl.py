"""Pc, Pg, Pk, Pl: the simulated MSC/VLR, SGSN, GGSN and GMLC feed the PNA.

Each test drives the elements with :class:`ElementSimulator` (what
``presence-ims sim`` uses) and asserts on what a watcher's NOTIFY shows;
forged, replayed and stale inputs are refused and counted, and change nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from netharness import RunningNetwork, running_network
from presence_ims.documents import pidf, presrules
from presence_ims.elements import feed as efeed
from presence_ims.elements import radius as eradius
from presence_ims.nodes.pna.mapping import PNA_NS
from presence_ims.nodes.sim.client import ElementSimulator
from presence_ims.nodes.sim.node import targets_from_settings
from presence_ims.ua import ClientSubscription

pytestmark = pytest.mark.slow

AGENTS = {"pna": {"enabled": True, "debounce": 0.05}}


async def until(
    sub: ClientSubscription, predicate: Callable[[pidf.PresenceDocument], bool], wait: float = 5.0
) -> pidf.PresenceDocument:
    async with asyncio.timeout(wait):
        while True:
            note = await sub.notifications.get()
            if note.body:
                doc = pidf.parse(note.body)
                if predicate(doc):
                    return doc


def tuple_of(doc: pidf.PresenceDocument, ident: str) -> pidf.PresenceTuple | None:
    return next((t for t in doc.tuples if t.id == ident), None)


def basic(ident: str, value: str) -> Callable[[pidf.PresenceDocument], bool]:
    def check(doc: pidf.PresenceDocument) -> bool:
        t = tuple_of(doc, ident)
        return t is not None and t.basic == value

    return check


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[RunningNetwork]:
    async with running_network(tmp_path, overrides=AGENTS) as running:
        await running.nodes["pna"].ready()
        yield running


@pytest.fixture
async def sim(net: RunningNetwork) -> AsyncIterator[ElementSimulator]:
    simulator = ElementSimulator(targets_from_settings(net.settings))
    yield simulator
    await simulator.close()


async def watch(net: RunningNetwork, watcher: str, presentity: str) -> ClientSubscription:
    ue = await net.ue(watcher)
    sub: ClientSubscription = await ue.agent.subscribe(presentity)
    assert sub.response is not None and sub.response.status == 200
    await sub.next()  # the initial state
    return sub


async def test_sgsn_attach_and_detach(net: RunningNetwork, sim: ElementSimulator) -> None:
    pna = net.nodes["pna"]
    sub = await watch(net, "bob", "sip:alice@home1.net")
    outcome = await sim.feed("sgsn", "alice", "attach", area="26201-0101-01", cell="4711")
    assert outcome.ok and outcome.interface == "Pg"
    doc = await until(sub, basic("pna-ps", "open"))
    ps = tuple_of(doc, "pna-ps")
    assert ps is not None and ps.location is None  # no provide-location for bob: no cell
    assert (await sim.feed("sgsn", "alice", "detach")).ok
    await until(sub, basic("pna-ps", "closed"))
    assert pna.counters["Pg.accepted"] == 2
    assert pna.counters["Pg.refused"] == 0


async def test_msc_call_shows_on_the_phone(net: RunningNetwork, sim: ElementSimulator) -> None:
    sub = await watch(net, "bob", "sip:alice@home1.net")
    assert (await sim.feed("msc", "alice", "attach", area="262-01-0042", cell="17")).ok
    doc = await until(sub, basic("pna-cs", "open"))
    cs = tuple_of(doc, "pna-cs")
    assert cs is not None and cs.contact is not None and cs.contact.uri == "tel:+15550001"
    assert (await sim.feed("msc", "alice", "busy")).ok
    doc = await until(sub, lambda d: bool(d.persons) and d.persons[0].activities is not None)
    assert doc.persons[0].activities.values == ("on-the-phone",)  # type: ignore[union-attr]
    assert (await sim.feed("msc", "alice", "idle")).ok
    await until(sub, lambda d: not d.persons or d.persons[0].activities is None)


async def test_forged_replayed_and_stale_feed_lines_are_refused(net: RunningNetwork) -> None:
    pna = net.nodes["pna"]
    targets = targets_from_settings(net.settings)
    assert targets.sgsn is not None
    host, port = targets.feed
    reader, writer = await asyncio.open_connection(host, port)
    try:

        async def send(line: bytes) -> efeed.FeedAck:
            writer.write(line)
            await writer.drain()
            async with asyncio.timeout(5):
                return efeed.parse_ack(await reader.readuntil(b"\n"))

        now = net.nodes["pna"].clock()
        signer = efeed.FeedSigner(targets.sgsn, int(now * 1_000_000))
        _, good = signer.line("sip:alice@home1.net", "attach", now)
        ack = await send(good)
        assert ack.ok
        replay = await send(good)  # the same line again
        assert not replay.ok and replay.reason == "replay"
        _, line = signer.line("sip:alice@home1.net", "detach", now)
        fields = json.loads(line)
        fields["event"] = "attach"  # tampered after signing
        forged = await send(json.dumps(fields).encode() + b"\n")
        assert not forged.ok and forged.reason == "bad_mac"
        wrong_key = efeed.FeedSigner(efeed.FeedElement("sgsn1", "sgsn", b"not-the-secret"), int(now * 1e6) + 10**6)
        _, line = wrong_key.line("sip:alice@home1.net", "detach", now)
        assert (await send(line)).reason == "bad_mac"
        _, old = signer.line("sip:alice@home1.net", "detach", now - 3600)
        assert (await send(old)).reason == "stale"
        assert (await send(b"not json\n")).reason == "malformed"
    finally:
        writer.close()
    assert pna.counters["Pg.accepted"] == 1
    assert pna.counters["Pg.refused.replay"] == 1
    assert pna.counters["Pg.refused.bad_mac"] == 2
    assert pna.counters["Pg.refused.stale"] == 1
    assert pna.counters["Pc/Pg.refused.malformed"] == 1
    facts = pna.core.facts("sip:alice@home1.net")
    assert facts.ps is not None and facts.ps.attached  # only the genuine attach counted


async def test_radius_accounting_start_shows_the_ip_session(net: RunningNetwork, sim: ElementSimulator) -> None:
    pna = net.nodes["pna"]
    sub = await watch(net, "bob", "sip:alice@home1.net")
    outcome = await sim.accounting("alice", "start", ip="10.0.0.7")
    assert outcome.ok and outcome.interface == "Pk"
    doc = await until(sub, basic("pna-pdp", "open"))
    pdp = tuple_of(doc, "pna-pdp")
    assert pdp is not None
    sessions = [x.decode() for x in pdp.extensions if PNA_NS.encode() in x]
    assert len(sessions) == 1 and 'address="10.0.0.7"' in sessions[0]
    assert 'session-id="alice-10.0.0.7"' in sessions[0]
    assert (await sim.accounting("alice", "stop", ip="10.0.0.7")).ok
    await until(sub, basic("pna-pdp", "closed"))
    assert pna.counters["Pk.accepted"] == 2


async def test_radius_with_a_wrong_secret_is_ignored(net: RunningNetwork) -> None:
    pna = net.nodes["pna"]
    targets = targets_from_settings(net.settings, timeout=0.6)
    forged = ElementSimulator(replace(targets, radius_secret=b"guessed"))
    try:
        outcome = await forged.accounting("alice", "start", ip="10.6.6.6")
    finally:
        await forged.close()
    assert not outcome.ok and outcome.detail == "no Accounting-Response"
    assert pna.counters["Pk.refused.bad_authenticator"] == 3  # the request and two retransmissions
    assert pna.counters["Pk.accepted"] == 0
    assert pna.core.facts("sip:alice@home1.net").pdp is None
    # a retransmission of an accepted request is answered again, not counted twice
    secret = targets.radius_secret
    assert secret is not None
    record = eradius.AccountingRecord("start", "s-dup", "15550001", framed_ip="10.0.0.9", nas_identifier="ggsn1")
    data = eradius.build_accounting_request(record, secret, 42)
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, payload: bytes, addr: tuple[str, int]) -> None:
            answers.put_nowait(payload)

    transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0), remote_addr=targets.radius)
    try:
        for _ in range(2):
            transport.sendto(data)
            async with asyncio.timeout(5):
                answer = await answers.get()
            assert eradius.verify_accounting_response(data, answer, secret)
    finally:
        transport.close()
    assert pna.counters["Pk.accepted"] == 1
    assert pna.counters["Pk.duplicate"] == 1


def location_rules(watcher: str, *, location: bool) -> presrules.Ruleset:
    t = presrules.Transformations(
        services=presrules.ServiceSelector(all=True),
        persons=presrules.PersonSelector(all=True),
        devices=presrules.DeviceSelector(all=True),
        all_attributes=True,
        location=location,
    )
    rule = presrules.Rule(
        "r1",
        presrules.Conditions(identity=presrules.Identity(ones=(watcher,))),
        presrules.Actions(sub_handling="allow"),
        t,
    )
    return presrules.Ruleset((rule,))


async def test_mlp_location_reaches_only_watchers_allowed_location(net: RunningNetwork, sim: ElementSimulator) -> None:
    pna = net.nodes["pna"]
    ps = net.nodes["ps"]
    ps.set_rules("sip:alice@home1.net", location_rules("sip:bob@home1.net", location=False))
    sub = await watch(net, "bob", "sip:alice@home1.net")
    alice = await net.ue("alice")
    own = await alice.agent.subscribe("sip:alice@home1.net")
    await own.next()
    outcome = await sim.locate("alice", 52.52, 13.405, method="A-GPS")
    assert outcome.ok and outcome.interface == "Pl"
    # alice (the owner) sees her position ...
    mine = await until(own, lambda d: bool(d.persons) and d.persons[0].location is not None)
    point = mine.persons[0].location.point  # type: ignore[union-attr]
    assert point is not None and abs(point.latitude - 52.52) < 1e-4 and abs(point.longitude - 13.405) < 1e-4
    assert mine.persons[0].location.method == "A-GPS"  # type: ignore[union-attr]
    # ... bob, whose rule does not grant provide-location, got the same change without it
    seen = await until(sub, lambda d: True)
    assert all(p.location is None for p in seen.persons)
    assert all(t.location is None for t in seen.tuples)
    # granting provide-location shows it to bob at once
    ps.set_rules("sip:alice@home1.net", location_rules("sip:bob@home1.net", location=True))
    doc = await until(sub, lambda d: bool(d.persons) and d.persons[0].location is not None)
    assert doc.persons[0].location.point is not None  # type: ignore[union-attr]
    assert pna.counters["Pl.accepted"] == 1


async def test_mlp_needs_the_gmlc_credentials(net: RunningNetwork) -> None:
    pna = net.nodes["pna"]
    targets = targets_from_settings(net.settings)
    wrong = ElementSimulator(replace(targets, mlp_password="guessed!"))
    try:
        outcome = await wrong.locate("alice", 1.0, 2.0)
    finally:
        await wrong.close()
    assert not outcome.ok and outcome.detail == "HTTP 401"
    assert pna.counters["Pl.refused.unauthenticated"] == 1
    assert pna.core.facts("sip:alice@home1.net").location is None


CLI = """
import argparse, sys
from presence_ims.nodes.sim.cli import register_cli
parser = argparse.ArgumentParser(prog="presence-ims")
register_cli(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


async def run_cli(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_sim_command_line_drives_the_pna(net: RunningNetwork) -> None:
    """``presence-ims sim ...`` in another process, against the running PNA."""
    pna = net.nodes["pna"]
    sub = await watch(net, "bob", "sip:alice@home1.net")
    config = str(net.config_path)
    code, out = await run_cli("sim", "--config", config, "attach", "alice", "--cell", "4711")
    assert code == 0, out
    assert "Pc attach sip:alice@home1.net: accepted" in out and "Pg attach sip:alice@home1.net: accepted" in out
    await until(sub, lambda d: all((t := tuple_of(d, i)) is not None and t.basic == "open" for i in ("pna-cs", "pna-ps")))
    code, out = await run_cli("sim", "--config", config, "pdp-start", "alice", "--ip", "10.0.0.8")
    assert code == 0 and "Pk pdp-start sip:alice@home1.net: accepted" in out, out
    await until(sub, basic("pna-pdp", "open"))
    code, out = await run_cli("sim", "--config", config, "locate", "alice", "--lat", "48.1", "--lon", "11.6")
    assert code == 0 and "Pl locate" in out, out
    code, out = await run_cli("sim", "--config", config, "busy", "carol")  # not a user here
    assert code == 1 and "refused (unknown_user)" in out, out
    assert pna.counters["Pc.accepted"] == 1 and pna.counters["Pg.accepted"] == 1
    assert pna.counters["Pk.accepted"] == 1 and pna.counters["Pl.accepted"] == 1


async def test_sim_node_plays_its_scenario(tmp_path: Path) -> None:
    scenario = tmp_path / "short.toml"
    scenario.write_text(
        'name = "short"\n'
        '[[step]]\nat = 0.1\nelement = "sgsn"\nuser = "alice"\nevent = "attach"\ncell = "1"\n'
        '[[step]]\nat = 0.2\nelement = "ggsn"\nuser = "alice"\nevent = "pdp-start"\nip = "10.0.0.9"\n'
    )
    overrides = {**AGENTS, "sim": {"autostart": True, "scenario": str(scenario)}}
    async with running_network(tmp_path, overrides=overrides) as running:
        assert running.nodes["sim"].describe()[0][2].startswith("scenario ")
        ue = await running.ue("bob")
        sub = await ue.agent.subscribe("sip:alice@home1.net")
        await until(sub, lambda d: tuple_of(d, "pna-ps") is not None and tuple_of(d, "pna-pdp") is not None)
