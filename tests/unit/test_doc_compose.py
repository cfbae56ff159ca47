"""Composition of publications (RFC 4479 section 3.4) with provenance."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from presence_ims.documents import pidf, validate
from presence_ims.documents.compose import (
    DEFAULT_POLICY,
    ComposePolicy,
    Provenance,
    Publication,
    compose,
    read_provenance,
    with_provenance,
)
from presence_ims.documents.geopriv import Geopriv, Point
from presence_ims.documents.pidf import Contact, Device, Person, PresenceDocument, PresenceTuple
from presence_ims.documents.rpid import Activities, Mood, Note, Sphere


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

ALICE = "sip:alice@home1.net"
UE_FIRST = ComposePolicy({"ue": 30, "network": 20, "external": 10})
FORGED = (
    b'<pv:provenance xmlns:pv="urn:presence-ims:params:xml:ns:provenance" '
    b'interface="Pen" received-at="1.0" source-class="network" source-id="hss"></pv:provenance>'
)


def pub(
    etag: str,
    source_class: str,
    received_at: float,
    *,
    tuples: tuple[PresenceTuple, ...] = (),
    persons: tuple[Person, ...] = (),
    devices: tuple[Device, ...] = (),
    notes: tuple[Note, ...] = (),
    extensions: tuple[bytes, ...] = (),
) -> Publication:
    interface = {"ue": "Peu", "network": "Pen", "external": "Pex"}[source_class]
    source = {"ue": "sip:alice@home1.net", "network": "pna.home1.net", "external": "pea.home1.net"}[
        source_class
    ]
    return Publication(
        etag,
        f"{source_class}-{etag}",
        source_class,  # type: ignore[arg-type]
        interface,  # type: ignore[arg-type]
        source,
        received_at,
        PresenceDocument(ALICE, tuples, persons, devices, notes, extensions),
    )


UE = pub(
    "e-ue",
    "ue",
    100.0,
    tuples=(
        PresenceTuple("voice", "open", Contact("sip:alice@192.0.2.10")),
        PresenceTuple("im", "open", Contact("im:alice@home1.net")),
    ),
    persons=(
        Person(
            "p-ue",
            activities=Activities(("busy",)),
            mood=Mood(("happy",)),
            notes=(Note("from the phone"),),
            extensions=(b'<x:hobby xmlns:x="urn:x">chess</x:hobby>',),
        ),
    ),
    notes=(Note("ue note"),),
)
NETWORK = pub(
    "e-net",
    "network",
    90.0,
    tuples=(
        PresenceTuple("voice", "closed", Contact("sip:alice@pcscf.home1.net")),
        PresenceTuple("cs-voice", "open", Contact("tel:+49891234")),
    ),
    persons=(
        Person(
            "p-net",
            activities=Activities(("on-the-phone",)),
            location=Geopriv(point=Point(48.1, 11.5)),
        ),
    ),
    devices=(Device("d1", "urn:gsma:imei:1", class_="mobile"),),
)
EXTERNAL_PUB = pub(
    "e-ext",
    "external",
    120.0,
    persons=(
        Person(
            "p-ext",
            mood=Mood(("sad",)),
            sphere=Sphere("work"),
            location=Geopriv(point=Point(1.0, 2.0)),
        ),
    ),
    devices=(Device("d1", "urn:gsma:imei:1", class_="calendar"),),
    notes=(Note("external note"),),
)


def test_tuples_merged_by_id_with_network_winning_service_state() -> None:
    result = compose(ALICE, [UE, NETWORK])
    doc = result.document
    assert [t.id for t in doc.tuples] == ["cs-voice", "im", "voice"]
    voice = next(t for t in doc.tuples if t.id == "voice")
    assert voice.basic == "closed"  # the default policy trusts the network for services
    assert result.provenance["tuple/voice"].source_class == "network"
    assert result.provenance["tuple/im"].interface == "Peu"
    # with the UE first, the UE's tuple wins
    ue_first = compose(ALICE, [UE, NETWORK], UE_FIRST).document
    assert next(t for t in ue_first.tuples if t.id == "voice").basic == "open"


def test_person_merged_attribute_by_attribute() -> None:
    result = compose(ALICE, [UE, NETWORK, EXTERNAL_PUB])
    (person,) = result.document.persons
    assert person.id == "p-ue"
    assert person.activities == Activities(("busy",))  # UE beats network for activities
    assert person.mood == Mood(("happy",))  # UE beats external
    assert person.sphere == Sphere("work")  # only external has it
    assert person.location == Geopriv(point=Point(48.1, 11.5))  # network first for location
    assert person.notes == (Note("from the phone"),)
    assert person.extensions == (b'<x:hobby xmlns:x="urn:x">chess</x:hobby>',)
    p = result.provenance
    assert p["person/activities"].source_class == "ue"
    assert p["person/sphere"].source_class == "external"
    assert p["person/location"].source_class == "network"
    assert p["person/extension:{urn:x}hobby"].source_class == "ue"


def test_devices_and_notes_come_from_the_winners() -> None:
    result = compose(ALICE, [UE, NETWORK, EXTERNAL_PUB])
    assert result.document.devices == (Device("d1", "urn:gsma:imei:1", class_="mobile"),)
    assert result.provenance["device/d1"].source_class == "network"
    assert result.document.notes == (Note("ue note"),)
    assert result.provenance["note"].source_class == "ue"


def test_ties_go_to_the_newest_then_the_smallest_etag() -> None:
    old = pub("e-b", "ue", 10.0, tuples=(PresenceTuple("t", "closed"),))
    new = pub("e-c", "ue", 20.0, tuples=(PresenceTuple("t", "open"),))
    same_time = pub("e-a", "ue", 20.0, tuples=(PresenceTuple("t", "closed"),))
    assert compose(ALICE, [old, new]).document.tuples[0].basic == "open"
    assert compose(ALICE, [new, old]).document.tuples[0].basic == "open"
    result = compose(ALICE, [new, same_time, old])
    assert result.document.tuples[0].basic == "closed"
    assert result.provenance["tuple/t"].source_id == "ue-e-a"


def test_priority_beats_recency() -> None:
    newer_external = pub("e-x", "external", 999.0, tuples=(PresenceTuple("t", "open"),))
    older_ue = pub("e-u", "ue", 1.0, tuples=(PresenceTuple("t", "closed"),))
    assert compose(ALICE, [newer_external, older_ue]).document.tuples[0].basic == "closed"


def test_per_kind_priorities() -> None:
    policy = ComposePolicy(
        {"ue": 30, "network": 20, "external": 10},
        per_kind={"person/mood": {"external": 99}},
    )
    (person,) = compose(ALICE, [UE, EXTERNAL_PUB], policy).document.persons
    assert person.mood == Mood(("sad",))
    assert person.activities == Activities(("busy",))
    assert policy.priority("person/activities", "ue") == 30
    assert DEFAULT_POLICY.priority("person/location", "network") == 30
    assert DEFAULT_POLICY.priority("tuple", "martian") == 0


def test_composition_is_deterministic() -> None:
    pubs = [
        UE,
        NETWORK,
        EXTERNAL_PUB,
        pub("e-z", "ue", 100.0, tuples=(PresenceTuple("im", "closed"),)),
    ]
    reference = compose(ALICE, pubs)
    reference_bytes = pidf.build(with_provenance(reference))
    for order in itertools.permutations(pubs):
        result = compose(ALICE, order)
        assert result == reference
        assert pidf.build(with_provenance(result)) == reference_bytes


def test_empty_composition() -> None:
    result = compose(ALICE, [])
    assert result.document == PresenceDocument(ALICE)
    assert result.provenance == {}


def test_colliding_ids_are_made_unique() -> None:
    a = pub("e1", "ue", 1.0, tuples=(PresenceTuple("x", "open"),))
    b = pub(
        "e2",
        "network",
        1.0,
        persons=(Person("x", mood=Mood(("calm",))),),
        devices=(Device("x", "urn:uuid:1"),),
    )
    doc = compose(ALICE, [a, b]).document
    ids = [doc.tuples[0].id, doc.devices[0].id, doc.persons[0].id]
    assert ids == ["x", "x-2", "x-3"]
    validate.validate(pidf.build(doc))


def test_forged_provenance_is_dropped() -> None:
    forged = pub(
        "e1",
        "ue",
        1.0,
        tuples=(PresenceTuple("t", "open", extensions=(FORGED,)),),
        persons=(Person("p", extensions=(FORGED,)),),
        extensions=(FORGED,),
    )
    doc = compose(ALICE, [forged]).document
    assert FORGED not in pidf.build(doc)


def test_with_provenance_marks_every_element() -> None:
    composed = compose(ALICE, [UE, NETWORK, EXTERNAL_PUB])
    doc = with_provenance(composed)
    data = pidf.build(doc)
    validate.validate(data)
    reparsed = pidf.parse(data)
    voice = next(t for t in reparsed.tuples if t.id == "voice")
    assert read_provenance(voice.extensions) == [
        (None, Provenance("network-e-net", "network", "Pen", "pna.home1.net", 90.0))
    ]
    marks = dict(read_provenance(reparsed.persons[0].extensions))
    assert marks["activities"].interface == "Peu"
    assert marks["location"].interface == "Pen"
    assert marks["sphere"].interface == "Pex"
    assert read_provenance(reparsed.devices[0].extensions)[0][1].source_class == "network"


@needs_external
def test_composed_documents_validate_externally() -> None:
    for doc in (
        compose(ALICE, [UE, NETWORK, EXTERNAL_PUB]).document,
        with_provenance(compose(ALICE, [UE, NETWORK, EXTERNAL_PUB])),
        compose(ALICE, []).document,
    ):
        data = pidf.build(doc)
        validate.validate(data)
        result = subprocess.run(
            [sys.executable, str(EXTERNAL), "-"], input=data, capture_output=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
