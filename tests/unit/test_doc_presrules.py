"""pres-rules: parse/build, rule evaluation (RFC 4745 section 10) and transformations."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from presence_ims.documents import DocumentError, pidf, presrules, validate
from presence_ims.documents.compose import Publication, compose, with_provenance
from presence_ims.documents.geopriv import Geopriv, Point
from presence_ims.documents.pidf import Contact, Device, Person, PresenceDocument, PresenceTuple
from presence_ims.documents.presrules import (
    Actions,
    Conditions,
    DeviceSelector,
    Except,
    Identity,
    Many,
    Permissions,
    PersonSelector,
    Rule,
    Ruleset,
    ServiceSelector,
    Transformations,
    UnknownAttribute,
    WatcherIdentity,
    evaluate,
    polite_block_document,
    transform,
)
from presence_ims.documents.rpid import (
    Activities,
    Mood,
    Note,
    PlaceIs,
    Privacy,
    Sphere,
    StatusIcon,
    TimeOffset,
    UserInput,
)


def _conformance_xsd() -> Path:
    """shared/conformance/xsd: $PRESENCE_IMS_SHARED, beside the checkout, or /work/shared."""
    env = os.environ.get("PRESENCE_IMS_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared")]
    for base in candidates:
        if (base / "conformance" / "xsd").is_dir():
            return base / "conformance" / "xsd"
    return candidates[-1] / "conformance" / "xsd"


EXTERNAL = _conformance_xsd() / "validate"
needs_external = pytest.mark.skipif(
    not EXTERNAL.exists(), reason="shared conformance validator not present (shared/ absent)"
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALICE = "sip:alice@home1.net"
BOB = WatcherIdentity("sip:bob@home1.net", authenticated=True)
CAROL = WatcherIdentity("sip:carol@home2.net", authenticated=True)
DAVE = WatcherIdentity("sip:dave@home1.net", authenticated=True)
STRANGER = WatcherIdentity("sip:mallory@evil.example", authenticated=False)
NOBODY = WatcherIdentity(None, authenticated=False, anonymous=True)
TIMED = (
    b'<ts:timed-status xmlns:ts="urn:ietf:params:xml:ns:pidf:timed-status" '
    b'from="2024-05-01T12:00:00Z"><ts:basic>closed</ts:basic></ts:timed-status>'
)
CAPS = b'<caps:servcaps xmlns:caps="urn:ietf:params:xml:ns:pidf:caps"></caps:servcaps>'


def full_ruleset() -> Ruleset:
    return Ruleset(
        (
            Rule(
                "friends",
                Conditions(
                    identity=Identity(
                        ones=("sip:bob@home1.net",),
                        manys=(
                            Many(
                                "home2.net",
                                (Except(id="sip:eve@home2.net"), Except(domain="x.home2.net")),
                            ),
                        ),
                    ),
                    sphere="work home",
                    validity=((NOW - timedelta(days=1), NOW + timedelta(days=1)),),
                ),
                Actions("allow"),
                Transformations(
                    services=ServiceSelector(schemes=("sip",), occurrence_ids=("t-im",)),
                    persons=PersonSelector(all=True),
                    devices=DeviceSelector(device_ids=("urn:gsma:imei:1",), classes=("mobile",)),
                    activities=True,
                    class_=False,
                    device_id=True,
                    mood=True,
                    place_is=True,
                    place_type=False,
                    privacy=True,
                    relationship=True,
                    sphere=True,
                    status_icon=True,
                    time_offset=True,
                    user_input="thresholds",
                    note=True,
                    unknown_attributes=(
                        UnknownAttribute(
                            "urn:ietf:params:xml:ns:pidf:timed-status", "timed-status", True
                        ),
                    ),
                    location=True,
                    provenance=False,
                ),
            ),
            Rule(
                "anonymous",
                Conditions(anonymous_request=True),
                Actions("polite-block"),
            ),
            Rule(
                "others",
                Conditions(other_identity=True),
                Actions("confirm"),
            ),
            Rule(
                "everything",
                Conditions(identity=Identity(ones=("tel:+49891234",))),
                Actions("allow"),
                Transformations(
                    services=ServiceSelector(all=True),
                    persons=PersonSelector(all=True),
                    devices=DeviceSelector(all=True),
                    all_attributes=True,
                ),
            ),
            Rule("empty"),
        )
    )


def sample_document() -> PresenceDocument:
    return PresenceDocument(
        entity=ALICE,
        tuples=(
            PresenceTuple(
                "t-voice",
                "open",
                Contact("sip:alice@192.0.2.10", 0.9),
                notes=(Note("call me"),),
                device_ids=("urn:gsma:imei:1",),
                class_="personal",
                user_input=UserInput("idle", 300, NOW - timedelta(minutes=7)),
                status_icon=StatusIcon("http://home1.net/i.png"),
                extensions=(TIMED, CAPS),
            ),
            PresenceTuple("t-im", "open", Contact("im:alice@home1.net")),
            PresenceTuple("t-mail", "closed", Contact("mailto:alice@home1.net"), class_="work"),
        ),
        persons=(
            Person(
                "p1",
                activities=Activities(("meeting",), notes=(Note("budget review"),)),
                class_="personal",
                mood=Mood(("stressed",)),
                place_is=PlaceIs(audio="quiet"),
                privacy=Privacy(audio=True),
                sphere=Sphere("work"),
                time_offset=TimeOffset(120),
                user_input=UserInput("active", 60, NOW),
                location=Geopriv(point=Point(48.1, 11.5)),
                notes=(Note("back at 3"),),
                extensions=(b'<x:hobby xmlns:x="urn:example:x">chess</x:hobby>',),
            ),
        ),
        devices=(
            Device("d1", "urn:gsma:imei:1", class_="mobile", user_input=UserInput("active")),
            Device("d2", "urn:uuid:laptop", class_="laptop"),
        ),
        notes=(Note("Alice's presence"),),
        extensions=(b'<x:banner xmlns:x="urn:example:x"></x:banner>',),
    )


def allow(**kwargs: object) -> Permissions:
    return Permissions("allow", **kwargs)  # type: ignore[arg-type]


# --- parse / build --------------------------------------------------------------------


def test_ruleset_round_trips_and_validates() -> None:
    ruleset = full_ruleset()
    data = presrules.build(ruleset)
    assert presrules.parse(data) == ruleset
    assert validate.errors(data) == []
    assert b"pre:provide-location" in data
    assert b"ocp:anonymous-request" in data


@needs_external
def test_ruleset_validates_with_external_validator() -> None:
    result = subprocess.run(
        [sys.executable, str(EXTERNAL), "-"],
        input=presrules.build(full_ruleset()),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bundled_validator_checks_our_extension() -> None:
    body = (
        b'<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy" '
        b'xmlns:pre="urn:presence-ims:params:xml:ns:pres-rules-ext"><cr:rule id="a">'
        b"<cr:transformations><pre:provide-location>perhaps</pre:provide-location>"
        b"</cr:transformations></cr:rule></cr:ruleset>"
    )
    assert validate.errors(body)
    with pytest.raises(DocumentError, match="bad provide-location boolean"):
        presrules.parse(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'<ruleset xmlns="urn:x"/>', "not a common-policy ruleset: root is {urn:x}ruleset"),
        (b"<cr:ruleset %s><cr:rule/></cr:ruleset>", "rule has no id"),
        (
            b'<cr:ruleset %s><cr:rule id="a"/><cr:rule id="a"/></cr:ruleset>',
            "duplicate rule id a",
        ),
        (
            b'<cr:ruleset %s><cr:rule id="a"><cr:actions><pr:sub-handling>permit'
            b"</pr:sub-handling></cr:actions></cr:rule></cr:ruleset>",
            "bad sub-handling: 'permit'",
        ),
        (
            b'<cr:ruleset %s><cr:rule id="a"><cr:transformations><pr:provide-user-input>most'
            b"</pr:provide-user-input></cr:transformations></cr:rule></cr:ruleset>",
            "bad provide-user-input: 'most'",
        ),
        (
            b'<cr:ruleset %s><cr:rule id="a"><cr:conditions><cr:validity><cr:from>'
            b"2024-01-01T00:00:00Z</cr:from></cr:validity></cr:conditions></cr:rule></cr:ruleset>",
            "validity needs from/until pairs",
        ),
        (
            b'<cr:ruleset %s><cr:rule id="a"><cr:conditions><cr:identity/></cr:conditions>'
            b"</cr:rule></cr:ruleset>",
            "empty identity condition",
        ),
    ],
)
def test_bad_rulesets(body: bytes, reason: str) -> None:
    if b"%s" in body:
        body = body.replace(
            b"%s",
            b'xmlns:cr="urn:ietf:params:xml:ns:common-policy" '
            b'xmlns:pr="urn:ietf:params:xml:ns:pres-rules"',
        )
    with pytest.raises(DocumentError) as info:
        presrules.parse(body)
    assert info.value.reason == reason


# --- evaluation -----------------------------------------------------------------------


def _rules(*rules: Rule) -> Ruleset:
    return Ruleset(rules)


def _sub(
    ruleset: Ruleset, watcher: WatcherIdentity, *, sphere: str | None = None, now: datetime = NOW
) -> str | None:
    result = evaluate(ruleset, watcher, sphere=sphere, now=now)
    return None if result is None else result.sub_handling


@pytest.mark.parametrize(
    ("watcher", "expected"),
    [
        (BOB, "allow"),
        (WatcherIdentity("pres:bob@HOME1.NET", authenticated=True), "allow"),
        (WatcherIdentity("sip:bob@home1.net", authenticated=False), None),
        (DAVE, None),
        (NOBODY, None),
    ],
)
def test_identity_one(watcher: WatcherIdentity, expected: str | None) -> None:
    rules = _rules(
        Rule("r", Conditions(identity=Identity(ones=(BOB.uri or "",))), Actions("allow"))
    )
    assert _sub(rules, watcher) == expected


@pytest.mark.parametrize(
    ("many", "watcher", "expected"),
    [
        (Many(), BOB, "allow"),
        (Many(), STRANGER, None),
        (Many("home1.net"), BOB, "allow"),
        (Many("HOME1.net"), DAVE, "allow"),
        (Many("home1.net"), CAROL, None),
        (Many("home1.net", (Except(id="sip:bob@home1.net"),)), BOB, None),
        (Many("home1.net", (Except(id="sip:bob@home1.net"),)), DAVE, "allow"),
        (Many(None, (Except(domain="home1.net"),)), DAVE, None),
        (Many(None, (Except(domain="home1.net"),)), CAROL, "allow"),
    ],
)
def test_identity_many(many: Many, watcher: WatcherIdentity, expected: str | None) -> None:
    rules = _rules(Rule("r", Conditions(identity=Identity(manys=(many,))), Actions("allow")))
    assert _sub(rules, watcher) == expected


def test_rule_without_identity_matches_unauthenticated_watchers() -> None:
    rules = _rules(Rule("r", Conditions(), Actions("confirm")))
    assert _sub(rules, STRANGER) == "confirm"
    assert _sub(rules, NOBODY) == "confirm"


def test_anonymous_watcher_still_matched_by_its_rules() -> None:
    anonymous_bob = WatcherIdentity(BOB.uri, authenticated=True, anonymous=True)
    rules = _rules(
        Rule("bob", Conditions(identity=Identity(ones=("sip:bob@home1.net",))), Actions("allow")),
        Rule("anon", Conditions(anonymous_request=True), Actions("polite-block")),
    )
    assert _sub(rules, BOB) == "allow"
    result = evaluate(rules, anonymous_bob, sphere=None, now=NOW)
    assert result is not None
    assert result.matched_rules == ("bob", "anon")
    assert result.sub_handling == "allow"  # the maximum of allow(30) and polite-block(20)
    assert _sub(rules, NOBODY) == "polite-block"


def test_other_identity_matches_only_unlisted_watchers() -> None:
    rules = _rules(
        Rule("bob", Conditions(identity=Identity(ones=("sip:bob@home1.net",))), Actions("allow")),
        Rule("rest", Conditions(other_identity=True), Actions("block")),
    )
    assert _sub(rules, BOB) == "allow"
    assert _sub(rules, CAROL) == "block"
    assert _sub(rules, STRANGER) == "block"


@pytest.mark.parametrize(
    ("sphere", "expected"),
    [("work", "allow"), ("Home", "allow"), ("travel", None), (None, None)],
)
def test_sphere_condition(sphere: str | None, expected: str | None) -> None:
    rules = _rules(Rule("r", Conditions(sphere="work home"), Actions("allow")))
    assert _sub(rules, BOB, sphere=sphere) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (NOW - timedelta(hours=1, seconds=1), None),
        (NOW - timedelta(hours=1), "allow"),
        (NOW + timedelta(minutes=59), "allow"),
        (NOW + timedelta(hours=1), None),
        (NOW.replace(tzinfo=None), "allow"),  # naive: taken as UTC
        (NOW + timedelta(days=2, minutes=30), "allow"),  # second interval
    ],
)
def test_validity_window(now: datetime, expected: str | None) -> None:
    validity = (
        (NOW - timedelta(hours=1), NOW + timedelta(hours=1)),
        (NOW + timedelta(days=2), NOW + timedelta(days=2, hours=1)),
    )
    rules = _rules(Rule("r", Conditions(validity=validity), Actions("allow")))
    assert _sub(rules, BOB, now=now) == expected


def test_unknown_condition_never_matches() -> None:
    rules = _rules(
        Rule(
            "r",
            Conditions(extensions=(b'<x:moon-phase xmlns:x="urn:x"></x:moon-phase>',)),
            Actions("allow"),
        ),
    )
    assert evaluate(rules, BOB, sphere=None, now=NOW) is None


def test_no_matching_rule_gives_none() -> None:
    assert evaluate(Ruleset(), BOB, sphere=None, now=NOW) is None


def test_all_conditions_must_hold() -> None:
    rules = _rules(
        Rule(
            "r",
            Conditions(identity=Identity(ones=("sip:bob@home1.net",)), sphere="work"),
            Actions("allow"),
        )
    )
    assert _sub(rules, BOB, sphere="work") == "allow"
    assert _sub(rules, BOB, sphere="home") is None
    assert _sub(rules, CAROL, sphere="work") is None


def test_several_matching_rules_combine() -> None:
    rules = _rules(
        Rule(
            "a",
            Conditions(),
            Actions("confirm"),
            Transformations(
                services=ServiceSelector(schemes=("SIP",)),
                activities=True,
                mood=False,
                user_input="bare",
                unknown_attributes=(UnknownAttribute("urn:x", "y", False),),
            ),
        ),
        Rule(
            "b",
            Conditions(identity=Identity(manys=(Many("home1.net"),))),
            Actions("allow"),
            Transformations(
                services=ServiceSelector(occurrence_ids=("t-im",)),
                persons=PersonSelector(classes=("personal",)),
                mood=True,
                user_input="thresholds",
                unknown_attributes=(UnknownAttribute("urn:x", "y", True),),
            ),
        ),
        Rule("c", Conditions(), Actions("block"), Transformations(user_input="false")),
    )
    p = evaluate(rules, BOB, sphere=None, now=NOW)
    assert p is not None
    assert p.matched_rules == ("a", "b", "c")
    assert p.sub_handling == "allow"
    assert p.activities and p.mood and not p.place_is
    assert p.user_input == "thresholds"
    assert p.services == ServiceSelector(schemes=("sip",), occurrence_ids=("t-im",))
    assert p.persons == PersonSelector(classes=("personal",))
    assert p.unknown_attributes == frozenset({("urn:x", "y")})
    q = evaluate(rules, CAROL, sphere=None, now=NOW)
    assert q is not None and q.sub_handling == "confirm" and not q.mood


def test_sub_handling_is_the_maximum() -> None:
    for values, expected in (
        (("block", "confirm"), "confirm"),
        (("polite-block", "confirm"), "polite-block"),
        (("allow", "block", "polite-block"), "allow"),
        ((None, "block"), "block"),
        ((None,), None),
    ):
        rules = Ruleset(tuple(Rule(f"r{i}", actions=Actions(v)) for i, v in enumerate(values)))  # type: ignore[arg-type]
        assert _sub(rules, BOB) == expected


# --- transformations ------------------------------------------------------------------


def test_nothing_but_services_removes_every_attribute() -> None:
    out = transform(sample_document(), allow(services=ServiceSelector(all=True)))
    assert [t.id for t in out.tuples] == ["t-voice", "t-im", "t-mail"]
    assert out.persons == () and out.devices == () and out.notes == () and out.extensions == ()
    voice = out.tuples[0]
    assert voice == PresenceTuple("t-voice", "open", Contact("sip:alice@192.0.2.10", 0.9))
    data = pidf.build(out)
    for secret in (
        b"call me",
        b"personal",
        b"idle",
        b"i.png",
        b"timed-status",
        b"servcaps",
        b"imei",
        b"meeting",
        b"chess",
        b"48.1",
    ):
        assert secret not in data
    validate.validate(data)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (ServiceSelector(schemes=("sip",)), ["t-voice"]),
        (ServiceSelector(schemes=("im", "mailto")), ["t-im", "t-mail"]),
        (ServiceSelector(occurrence_ids=("t-im",)), ["t-im"]),
        (ServiceSelector(classes=("work",)), ["t-mail"]),
        (ServiceSelector(uris=("sip:alice@192.0.2.10",)), ["t-voice"]),
        (ServiceSelector(), []),
    ],
)
def test_service_selection(selector: ServiceSelector, expected: list[str]) -> None:
    out = transform(sample_document(), allow(services=selector, persons=PersonSelector(all=True)))
    assert [t.id for t in out.tuples] == expected


def test_person_and_device_selection() -> None:
    doc = sample_document()
    assert transform(doc, allow(persons=PersonSelector(classes=("work",)))).persons == ()
    assert [
        p.id for p in transform(doc, allow(persons=PersonSelector(occurrence_ids=("p1",)))).persons
    ] == ["p1"]
    for selector, expected in (
        (DeviceSelector(all=True), ["d1", "d2"]),
        (DeviceSelector(device_ids=("URN:UUID:LAPTOP",)), ["d2"]),
        (DeviceSelector(classes=("mobile",)), ["d1"]),
        (DeviceSelector(occurrence_ids=("d2",)), ["d2"]),
    ):
        assert [d.id for d in transform(doc, allow(devices=selector)).devices] == expected


def test_each_rpid_attribute_needs_its_permission() -> None:
    base = {"persons": PersonSelector(all=True)}
    doc = sample_document()
    only_activities = transform(doc, allow(activities=True, **base)).persons[0]
    assert only_activities == Person("p1", activities=Activities(("meeting",)))  # inner note gone
    with_notes = transform(doc, allow(activities=True, note=True, **base)).persons[0]
    assert with_notes.activities == doc.persons[0].activities
    assert with_notes.notes == (Note("back at 3"),)
    everything = transform(
        doc,
        allow(
            activities=True,
            class_=True,
            mood=True,
            place_is=True,
            privacy=True,
            sphere=True,
            time_offset=True,
            user_input="full",
            note=True,
            **base,
        ),
    ).persons[0]
    assert everything == replace(doc.persons[0], location=None, extensions=())


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("false", None),
        ("bare", UserInput("idle")),
        ("thresholds", UserInput("idle", 300)),
        ("full", UserInput("idle", 300, NOW - timedelta(minutes=7))),
    ],
)
def test_user_input_levels(level: str, expected: UserInput | None) -> None:
    out = transform(sample_document(), allow(services=ServiceSelector(all=True), user_input=level))
    assert out.tuples[0].user_input == expected


def test_location_only_with_provide_location() -> None:
    doc = sample_document()
    everything = allow(persons=PersonSelector(all=True), all_attributes=True)
    assert transform(doc, everything).persons[0].location is None
    shown = transform(doc, replace(everything, location=True)).persons[0]
    assert shown.location == Geopriv(point=Point(48.1, 11.5))
    assert b"48.1 11.5" in pidf.build(transform(doc, replace(everything, location=True)))


def test_unknown_attributes_need_their_own_permission() -> None:
    doc = sample_document()
    services = ServiceSelector(all=True)
    timed_only = allow(
        services=services,
        unknown_attributes=frozenset(
            {("urn:ietf:params:xml:ns:pidf:timed-status", "timed-status")}
        ),
    )
    assert transform(doc, timed_only).tuples[0].extensions == (TIMED,)
    assert transform(doc, allow(services=services, all_attributes=True)).tuples[0].extensions == (
        TIMED,
        CAPS,
    )


def test_provenance_only_with_provide_provenance() -> None:
    pub = Publication("e1", "ue-1", "ue", "Peu", ALICE, 10.0, sample_document())
    doc = with_provenance(compose(ALICE, [pub]))
    everything = allow(services=ServiceSelector(all=True), all_attributes=True)
    hidden = pidf.build(transform(doc, everything))
    shown = pidf.build(transform(doc, replace(everything, provenance=True)))
    assert b"provenance" not in hidden
    assert b'source-id="ue-1"' in shown
    validate.validate(shown)


@pytest.mark.parametrize("outcome", [None, "block", "confirm", "polite-block"])
def test_only_allow_reveals_anything(outcome: str | None) -> None:
    permissions = (
        None
        if outcome is None
        else Permissions(
            outcome,  # type: ignore[arg-type]
            services=ServiceSelector(all=True),
            all_attributes=True,
        )
    )
    assert transform(sample_document(), permissions) == polite_block_document(ALICE)


def test_polite_block_is_indistinguishable_from_offline() -> None:
    blocked = pidf.build(polite_block_document(ALICE))
    # really offline: nothing published, composed, shown to a friend who may see everything
    offline = compose(ALICE, []).document
    friend = Permissions(
        "allow",
        ServiceSelector(all=True),
        PersonSelector(all=True),
        DeviceSelector(all=True),
        all_attributes=True,
        location=True,
    )
    assert pidf.build(transform(offline, friend)) == blocked
    # something published, but nothing of it visible to this watcher
    nothing_visible = transform(sample_document(), Permissions("allow"))
    assert pidf.build(nothing_visible) == blocked
    parsed = pidf.parse(blocked)
    assert parsed.persons == () and len(parsed.tuples) == 1
    assert parsed.tuples[0].basic == "closed"
    validate.validate(blocked)


def test_owner_sees_everything() -> None:
    doc = sample_document()
    assert transform(doc, presrules.owner_permissions()) == doc


def test_current_sphere() -> None:
    assert presrules.current_sphere(sample_document()) == "work"
    assert presrules.current_sphere(PresenceDocument(ALICE)) is None


@needs_external
def test_transformed_documents_validate_externally() -> None:
    perms = allow(
        services=ServiceSelector(all=True),
        persons=PersonSelector(all=True),
        devices=DeviceSelector(all=True),
        activities=True,
        user_input="bare",
        location=True,
    )
    for doc in (transform(sample_document(), perms), polite_block_document(ALICE)):
        data = pidf.build(doc)
        validate.validate(data)
        result = subprocess.run(
            [sys.executable, str(EXTERNAL), "-"], input=data, capture_output=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
