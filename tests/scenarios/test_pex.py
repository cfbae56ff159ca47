"""Pex: external sources submit signed presence to the PEA, which publishes it to the PS.

The demo network has two DEMO ONLY sources: ``calendar-bob`` (HMAC-SHA-256,
may set bob's activities and note) and ``iot-alice`` (Ed25519, alice's
activities, note, place type and location).  A calendar marking bob in a
meeting reaches his watcher as RPID ``meeting`` with ``until``; unsigned,
forged, replayed, stale and over-reaching submissions are refused (401/403)
and nothing is published for them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from netharness import RunningNetwork, running_network
from presence_ims.documents import pidf
from presence_ims.nodes.pea.client import SigningKey, signed_headers, submit
from presence_ims.nodes.pea.config import DEMO_ED25519_SEED, DEMO_HMAC_KEY
from presence_ims.ua import ClientSubscription

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CALENDAR = SigningKey.hmac("calendar-bob", DEMO_HMAC_KEY)
IOT = SigningKey.ed25519("iot-alice", DEMO_ED25519_SEED)


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


def activities(doc: pidf.PresenceDocument) -> tuple[str, ...]:
    for person in doc.persons:
        if person.activities is not None:
            return person.activities.values
    return ()


def ics(start: datetime, end: datetime, summary: str) -> str:
    def stamp(t: datetime) -> str:
        return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN",
        "BEGIN:VEVENT", "UID:review@test", f"SUMMARY:{summary}", "CATEGORIES:MEETING",
        f"DTSTART:{stamp(start)}", f"DTEND:{stamp(end)}", "END:VEVENT",
        "END:VCALENDAR", "",
    ])  # fmt: skip


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[RunningNetwork]:
    async with running_network(tmp_path, overrides={"pea": {"debounce": 0.02}}) as running:
        yield running


def url(net: RunningNetwork) -> str:
    return f"http://127.0.0.1:{net.nodes['pea'].port}"


async def watch(net: RunningNetwork, watcher: str, presentity: str) -> ClientSubscription:
    ue = await net.ue(watcher)
    sub: ClientSubscription = await ue.agent.subscribe(presentity)
    assert sub.response is not None and sub.response.status == 200
    await sub.next()
    return sub


async def test_calendar_marks_bob_in_a_meeting(net: RunningNetwork) -> None:
    pea = net.nodes["pea"]
    sub = await watch(net, "alice", "sip:bob@home1.net")
    now = datetime.now(UTC).replace(microsecond=0)
    end = now + timedelta(minutes=50)
    status, answer = await submit(url(net), CALENDAR, {
        "presentity": "sip:bob@home1.net",
        "calendar": ics(now - timedelta(minutes=10), end, "Design review"),
    })  # fmt: skip
    assert status == 202, answer
    doc = await until(sub, lambda d: activities(d) == ("meeting",))
    person = next(p for p in doc.persons if p.activities is not None)
    assert person.activities is not None and person.activities.until == end
    assert [n.text for n in person.notes] == ["Design review"]
    assert pea.counters["Pex.accepted"] == 1
    records = [r for r in net.nodes["ps"].core.publications.values() if r.source_id == "pea"]
    assert len(records) == 1 and records[0].interface == "Pex" and records[0].source_class == "external"
    # withdrawing it clears bob's meeting
    status, _ = await submit(url(net), CALENDAR, {"presentity": "sip:bob@home1.net", "clear": True})
    assert status == 202
    await until(sub, lambda d: activities(d) == ())


async def test_json_submission_with_until_and_ed25519(net: RunningNetwork) -> None:
    sub = await watch(net, "bob", "sip:alice@home1.net")
    until_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    status, answer = await submit(url(net), IOT, {
        "presentity": "sip:alice@home1.net",
        "activities": ["meeting"],
        "note": "in a meeting until the hour",
        "place_type": ["office"],
        "until": until_at.isoformat(),
    })  # fmt: skip
    assert status == 202, answer
    doc = await until(sub, lambda d: activities(d) == ("meeting",))
    person = doc.persons[0]
    assert person.activities is not None and person.activities.until == until_at
    assert person.place_type is not None and person.place_type.types == ("office",)


async def test_bad_submissions_are_refused_and_nothing_is_published(net: RunningNetwork) -> None:
    pea = net.nodes["pea"]
    ps = net.nodes["ps"]
    sub = await watch(net, "alice", "sip:bob@home1.net")
    base = url(net)
    good = {"presentity": "sip:bob@home1.net", "activities": ["meeting"]}

    async def refused(expected: int, kind: str, **kwargs: object) -> None:
        status, answer = await submit(base, **kwargs)  # type: ignore[arg-type]
        assert (status, answer.get("error")) == (expected, kind)

    await refused(401, "unsigned", key=None, payload=good)
    await refused(401, "bad_signature", key=SigningKey.hmac("calendar-bob", "a guessed secret!"), payload=good)
    await refused(401, "unknown_source", key=SigningKey.hmac("calendar-eve", DEMO_HMAC_KEY), payload=good)
    await refused(401, "wrong_algorithm", key=SigningKey.ed25519("calendar-bob", DEMO_ED25519_SEED), payload=good)
    await refused(401, "stale", key=CALENDAR, payload=good, now=datetime.now(UTC).timestamp() - 3600)
    # a body changed after signing
    body = json.dumps(good).encode()
    headers = signed_headers(CALENDAR, "POST", "/v1/presence", body, now=datetime.now(UTC).timestamp())
    tampered = json.dumps({**good, "activities": ["vacation"]}).encode()
    await refused(401, "bad_signature", key=None, payload=tampered, headers=headers)
    # the calendar source reaching for alice, or for bob's location
    await refused(403, "presentity_not_allowed", key=CALENDAR, payload={**good, "presentity": "sip:alice@home1.net"})
    await refused(403, "attribute_not_allowed", key=CALENDAR, payload={**good, "location": {"lat": 1, "lon": 2}})
    await refused(400, "invalid", key=CALENDAR, payload={**good, "activities": ["plotting"]})
    assert pea.counters["Pex.refused"] == 9
    assert pea.counters["Pex.accepted"] == 0
    assert pea.counters["Pex.published"] == 0
    assert not [r for r in ps.core.publications.values() if r.source_id == "pea"]
    assert sub.notifications.empty()
    # a genuine submission goes through; replaying it exactly is refused and changes nothing
    body = json.dumps(good).encode()
    headers = signed_headers(CALENDAR, "POST", "/v1/presence", body, now=datetime.now(UTC).timestamp())
    status, _ = await submit(base, None, body, headers=headers)
    assert status == 202
    doc = await until(sub, lambda d: True)  # the very next NOTIFY is this one
    assert activities(doc) == ("meeting",)
    await refused(401, "replayed", key=None, payload=body, headers=headers)
    assert pea.counters["Pex.accepted"] == 1
    assert pea.counters["Pex.refused.replayed"] == 1


CLI = """
import argparse, sys
from presence_ims.nodes.pea.cli import register_cli
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


async def test_pea_command_line_signs_and_submits(net: RunningNetwork, tmp_path: Path) -> None:
    """``presence-ims pea submit`` with the demo calendar source, in another process."""
    sub = await watch(net, "alice", "sip:bob@home1.net")
    config = str(net.config_path)
    code, out = await run_cli("pea", "submit", "--config", config, "--source", "calendar-bob", "--user", "bob",
                              "--activity", "meeting", "--until", "23:59", "--note", "Design review")  # fmt: skip
    assert code == 0 and "accepted (202): sip:bob@home1.net" in out, out
    doc = await until(sub, lambda d: activities(d) == ("meeting",))
    assert next(p for p in doc.persons if p.activities).activities.until is not None  # type: ignore[union-attr]
    # the demo calendar file goes through the same path
    code, out = await run_cli("pea", "submit", "--config", config, "--source", "calendar-bob", "--user", "bob",
                              "--calendar", str(ROOT / "configs" / "calendar" / "bob.ics"))  # fmt: skip
    assert code == 0, out
    code, out = await run_cli("pea", "submit", "--config", config, "--source", "calendar-bob", "--user", "alice",
                              "--activity", "meeting")  # fmt: skip
    assert code == 1 and "refused (403): presentity_not_allowed" in out, out
    code, out = await run_cli("pea", "submit", "--config", config, "--source", "calendar-bob", "--key",
                              "a guessed secret!", "--user", "bob", "--activity", "meeting")  # fmt: skip
    assert code == 1 and "refused (401): bad_signature" in out, out
    code, out = await run_cli("pea", "keygen")
    assert code == 0 and "public key" in out
