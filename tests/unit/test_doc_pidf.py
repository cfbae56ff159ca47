"""PIDF / data model / RPID / GEOPRIV documents, the hardened parser and validation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from presence_ims.documents import (
    DocumentError,
    pidf,
    presrules,
    reginfo,
    resourcelists,
    validate,
    winfo,
    xcaperror,
)
from presence_ims.documents.geopriv import CivicAddress, Geopriv, Point, UsageRules
from presence_ims.documents.pidf import (
    Contact,
    Device,
    Person,
    PresenceDocument,
    PresenceTuple,
)
from presence_ims.documents.rpid import (
    Activities,
    Mood,
    Note,
    PlaceIs,
    PlaceType,
    Privacy,
    Relationship,
    ServiceClass,
    Sphere,
    StatusIcon,
    TimeOffset,
    UserInput,
)
from presence_ims.documents.xml import hardened_parser, parse_xml


def _conformance_xsd() -> Path:
    """shared/conformance/xsd: $PRESENCE_IMS_SHARED, beside the checkout, or /work/shared."""
    env = os.environ.get("PRESENCE_IMS_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared")]
    for base in candidates:
        if (base / "conformance" / "xsd").is_dir():
            return base / "conformance" / "xsd"
    return candidates[-1] / "conformance" / "xsd"


XSD_DIR = _conformance_xsd()
EXTERNAL = XSD_DIR / "validate"
SAMPLES = XSD_DIR / "samples"
needs_external = pytest.mark.skipif(
    not EXTERNAL.exists(), reason="shared conformance validator not present (shared/ absent)"
)
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason="shared conformance samples not present (shared/ absent)"
)

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
TIMED = (
    b'<ts:timed-status xmlns:ts="urn:ietf:params:xml:ns:pidf:timed-status" '
    b'from="2024-05-01T12:00:00Z" until="2024-05-01T13:00:00Z">'
    b"<ts:basic>closed</ts:basic></ts:timed-status>"
)
CAPS = (
    b'<caps:servcaps xmlns:caps="urn:ietf:params:xml:ns:pidf:caps">'
    b"<caps:audio>true</caps:audio><caps:video>false</caps:video></caps:servcaps>"
)


def external_check(data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(EXTERNAL), "-"], input=data, capture_output=True, timeout=120
    )


def rich_document() -> PresenceDocument:
    """A document using every modelled element."""
    location = Geopriv(
        point=Point(48.137154, 11.576124),
        civic=CivicAddress((("country", "DE"), ("A1", "Bayern"), ("A3", "Muenchen"))),
        usage_rules=UsageRules(
            retransmission_allowed=False,
            retention_expiry=T0 + timedelta(days=1),
            note_well="only for friends",
        ),
        method="GPS",
    )
    return PresenceDocument(
        entity="sip:alice@home1.net",
        tuples=(
            PresenceTuple(
                id="t-voice",
                basic="open",
                contact=Contact("sip:alice@192.0.2.10:5060", 0.8),
                notes=(Note("ready to talk", "en"),),
                timestamp=T0,
                device_ids=("urn:gsma:imei:35209900-176148-1",),
                class_="business",
                user_input=UserInput("idle", 600, T0 - timedelta(minutes=12), "ui1"),
                status_icon=StatusIcon("http://home1.net/icons/alice.png"),
                relationship=Relationship("self"),
                service_class=ServiceClass("electronic"),
                extensions=(TIMED, CAPS),
            ),
            PresenceTuple(id="t-im", basic="closed", contact=Contact("im:alice@home1.net")),
        ),
        persons=(
            Person(
                id="p1",
                activities=Activities(("meeting", "busy"), from_=T0, until=T0 + timedelta(hours=1)),
                class_="business",
                mood=Mood(("happy",), other=(Note("caffeinated", "en"),)),
                place_is=PlaceIs(audio="noisy", video="ok", text="uncomfortable"),
                place_type=PlaceType(types=("office",)),
                privacy=Privacy(audio=True, text=True),
                sphere=Sphere("work"),
                status_icon=StatusIcon("http://home1.net/icons/busy.png"),
                time_offset=TimeOffset(120, "CEST"),
                user_input=UserInput("active"),
                location=location,
                notes=(Note("In a meeting until 11", "en"),),
                timestamp=T0,
            ),
        ),
        devices=(
            Device(
                id="d1",
                device_id="urn:gsma:imei:35209900-176148-1",
                class_="mobile",
                user_input=UserInput("active"),
                notes=(Note("my phone"),),
                timestamp=T0,
            ),
        ),
        notes=(Note("Alice", "en"), Note("Alicia", "es")),
    )


SIMPLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:alice@home1.net">'
    b'<tuple id="t1"><status><basic>open</basic></status>'
    b'<contact priority="0.5">sip:alice@192.0.2.10</contact></tuple></presence>'
)


# --- round trips and validation -------------------------------------------------------


def test_rich_document_round_trips() -> None:
    doc = rich_document()
    data = pidf.build(doc)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert pidf.parse(data) == doc
    assert pidf.build(pidf.parse(data)) == data


def test_rich_document_validates_with_bundled_schemas() -> None:
    data = pidf.build(rich_document())
    assert validate.errors(data) == []


@needs_external
def test_rich_document_validates_with_external_validator() -> None:
    result = external_check(pidf.build(rich_document()))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_external
@pytest.mark.parametrize(
    "doc",
    [
        pidf.neutral_document("sip:alice@home1.net"),
        PresenceDocument("sip:bob@home1.net"),
        pidf.parse(SIMPLE),
    ],
    ids=["neutral", "empty", "simple"],
)
def test_small_documents_validate_everywhere(doc: PresenceDocument) -> None:
    data = pidf.build(doc)
    validate.validate(data)
    result = external_check(data)
    assert result.returncode == 0, result.stdout + result.stderr


def test_extensions_are_kept_byte_faithfully() -> None:
    doc = rich_document()
    data = pidf.build(doc)
    assert TIMED in data
    assert CAPS in data
    assert pidf.parse(data).tuples[0].extensions == (TIMED, CAPS)


def test_unknown_namespace_elements_everywhere_survive() -> None:
    body = (
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        b'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:x="urn:example:x" '
        b'entity="sip:alice@home1.net">'
        b'<tuple id="t1"><status><basic>open</basic><x:mood-ring colour="blue"/></status>'
        b"<x:one>1</x:one></tuple>"
        b'<dm:person id="p"><x:two><x:deep a="b">t</x:deep></x:two></dm:person>'
        b"<x:three/></presence>"
    )
    doc = pidf.parse(body)
    assert doc.tuples[0].status_extensions == (
        b'<x:mood-ring xmlns:x="urn:example:x" colour="blue"></x:mood-ring>',
    )
    assert doc.tuples[0].extensions == (b'<x:one xmlns:x="urn:example:x">1</x:one>',)
    assert doc.persons[0].extensions == (
        b'<x:two xmlns:x="urn:example:x"><x:deep a="b">t</x:deep></x:two>',
    )
    assert doc.extensions == (b'<x:three xmlns:x="urn:example:x"></x:three>',)
    assert pidf.parse(pidf.build(doc)) == doc
    validate.validate(pidf.build(doc))


def test_geopriv_in_tuple_status_is_parsed_as_location() -> None:
    body = (
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        b'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        b'xmlns:gml="http://www.opengis.net/gml" entity="pres:alice@home1.net">'
        b'<tuple id="t1"><status><gp:geopriv><gp:location-info>'
        b'<gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>-34.407 150.88001</gml:pos>'
        b"</gml:Point></gp:location-info><gp:usage-rules/><gp:method>Wiremap</gp:method>"
        b"</gp:geopriv></status></tuple></presence>"
    )
    doc = pidf.parse(body)
    location = doc.tuples[0].location
    assert location is not None
    assert location.point == Point(-34.407, 150.88001)
    assert location.method == "Wiremap"
    assert location.usage_rules == UsageRules()
    assert pidf.parse(pidf.build(doc)) == doc
    validate.validate(pidf.build(doc))


def test_geopriv_schema_catches_missing_usage_rules() -> None:
    body = (
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        b'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        b'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" entity="pres:alice@home1.net">'
        b'<dm:person id="p"><gp:geopriv><gp:location-info/></gp:geopriv></dm:person></presence>'
    )
    assert validate.errors(body)
    with pytest.raises(DocumentError, match="geopriv without usage-rules"):
        pidf.parse(body)


def test_timestamps_keep_their_zone() -> None:
    plus2 = timezone(timedelta(hours=2))
    doc = PresenceDocument(
        "sip:a@b.c",
        (
            PresenceTuple("a", "open", timestamp=datetime(2024, 1, 2, 3, 4, 5, 120000, plus2)),
            PresenceTuple("b", "open", timestamp=datetime(2024, 1, 2, 3, 4, 5)),
        ),
    )
    data = pidf.build(doc)
    assert b"<timestamp>2024-01-02T03:04:05.12+02:00</timestamp>" in data
    assert b"<timestamp>2024-01-02T03:04:05</timestamp>" in data
    assert pidf.parse(data) == doc


# --- rejection with precise reasons ---------------------------------------------------


def _reason(data: bytes, **kwargs: object) -> str:
    with pytest.raises(DocumentError) as info:
        pidf.parse(data, **kwargs)  # type: ignore[arg-type]
    return info.value.reason


def test_wrong_root_namespace() -> None:
    body = b'<presence xmlns="urn:example:not-pidf" entity="sip:a@b"/>'
    assert _reason(body) == "not a PIDF document: root is {urn:example:not-pidf}presence"


def test_missing_entity() -> None:
    assert _reason(b'<presence xmlns="urn:ietf:params:xml:ns:pidf"/>') == (
        "PIDF presence has no entity"
    )


@pytest.mark.parametrize(
    "presentity",
    [
        "sip:alice@home1.net",
        "pres:alice@home1.net",
        "sips:alice@HOME1.NET",
        "sip:%61lice@home1.net;transport=tcp",
        "<sip:alice@home1.net>".strip("<>"),
    ],
)
def test_entity_matches_presentity(presentity: str) -> None:
    assert pidf.parse(SIMPLE, expected_entity=presentity).entity == "pres:alice@home1.net"


@pytest.mark.parametrize(
    "presentity",
    ["sip:bob@home1.net", "sip:Alice@home1.net", "sip:alice@home2.net", "sip:alice@home1.net:5070"],
)
def test_entity_mismatch(presentity: str) -> None:
    assert _reason(SIMPLE, expected_entity=presentity) == "PIDF entity does not match presentity"


def test_same_presentity_rules() -> None:
    assert pidf.same_presentity("tel:+49-89-1234", "tel:+49891234")
    assert not pidf.same_presentity("tel:+49891234", "sip:+49891234@home1.net")
    assert pidf.same_presentity("sip:[2001:DB8::1]", "sip:[2001:db8::1]")
    assert not pidf.same_presentity("mailto:a@b", "sip:a@b")


def test_duplicate_tuple_ids() -> None:
    body = (
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">'
        b'<tuple id="t1"><status><basic>open</basic></status></tuple>'
        b'<tuple id="t1"><status><basic>closed</basic></status></tuple></presence>'
    )
    assert _reason(body) == "duplicate tuple id t1"


def test_ids_share_one_space() -> None:
    body = (
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        b'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:a@b">'
        b'<tuple id="x"><status/></tuple><dm:person id="x"/></presence>'
    )
    assert _reason(body) == "duplicate person id x"


@pytest.mark.parametrize("value", [b"maybe", b"OPEN", b"", b"open closed"])
def test_bad_basic_value(value: bytes) -> None:
    body = (
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">'
        b'<tuple id="t"><status><basic>' + value + b"</basic></status></tuple></presence>"
    )
    assert _reason(body).startswith("bad basic status: ")


@pytest.mark.parametrize(
    ("fragment", "reason"),
    [
        (b'<tuple id="t"/>', "tuple t has no status"),
        (b"<tuple><status/></tuple>", "PIDF tuple has no id"),
        (b'<tuple id="1x"><status/></tuple>', "tuple id is not an XML ID: '1x'"),
        (
            b'<tuple id="t"><status/><contact priority="1.5">sip:x@y</contact></tuple>',
            "bad contact priority: '1.5'",
        ),
        (
            b'<tuple id="t"><status/><timestamp>yesterday</timestamp></tuple>',
            "bad timestamp: 'yesterday'",
        ),
        (
            b'<tuple id="t"><status/><bogus/></tuple>',
            "unexpected element in tuple: {urn:ietf:params:xml:ns:pidf}bogus",
        ),
        (
            b'<tuple id="t"><status/><x:y xmlns:x="urn:x" mustUnderstand="true"/></tuple>',
            "unsupported mustUnderstand extension: {urn:x}y",
        ),
        (
            b'<dm:person xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
            b'xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" id="p">'
            b"<r:activities><r:sleepy/></r:activities></dm:person>",
            "unknown RPID activity: sleepy",
        ),
        (
            b'<dm:person xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
            b'xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" id="p">'
            b"<r:user-input>sleepy</r:user-input></dm:person>",
            "bad user-input: 'sleepy'",
        ),
        (
            b'<dm:device xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" id="d"/>',
            "device d needs exactly one deviceID",
        ),
    ],
)
def test_bad_bodies(fragment: bytes, reason: str) -> None:
    body = (
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">'
        + fragment
        + b"</presence>"
    )
    assert _reason(body) == reason


def test_build_refuses_invalid_models() -> None:
    with pytest.raises(DocumentError, match="duplicate tuple id"):
        pidf.build(PresenceDocument("sip:a@b", (PresenceTuple("t"), PresenceTuple("t"))))
    with pytest.raises(DocumentError, match="not an XML ID"):
        pidf.build(PresenceDocument("sip:a@b", (PresenceTuple("1"),)))
    with pytest.raises(DocumentError, match="three decimals"):
        pidf.build(
            PresenceDocument("sip:a@b", (PresenceTuple("t", contact=Contact("sip:x", 0.12345)),))
        )
    with pytest.raises(DocumentError, match="unknown combined"):
        pidf.build(
            PresenceDocument(
                "sip:a@b", persons=(Person("p", activities=Activities(("unknown", "away"))),)
            )
        )
    with pytest.raises(DocumentError, match="has no entity"):
        pidf.build(PresenceDocument(" "))


# --- the hardened parser --------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>&lol9;</note></presence>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE presence [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>&xxe;</note></presence>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_doctype_and_entities_are_refused(body: bytes) -> None:
    assert _reason(body) == "DOCTYPE not allowed"


def test_doctype_hidden_in_utf16_is_refused() -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE presence>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>'
    ).encode("utf-16")
    assert _reason(body) == "DOCTYPE not allowed"


def test_utf16_without_doctype_is_fine() -> None:
    body = SIMPLE.decode().replace("UTF-8", "UTF-16").encode("utf-16")
    assert pidf.parse(body) == pidf.parse(SIMPLE)


def test_oversize_is_refused_before_parsing() -> None:
    big = SIMPLE.replace(b"</presence>", b"<note>" + b"x" * 70000 + b"</note></presence>")
    assert _reason(big) == f"document too large ({len(big)} > 65536 bytes)"
    assert len(pidf.parse(big, max_size=100_000).notes[0].text) == 70000


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty document"),
        (b"   ", "empty document"),
        (b"<presence", "not well-formed XML: "),
        (b"\x00\x01\x02", "not well-formed XML: "),
        (b"<a></b>", "not well-formed XML: "),
    ],
)
def test_garbage(body: bytes, reason: str) -> None:
    assert _reason(body).startswith(reason)


def test_non_bytes_input() -> None:
    with pytest.raises(DocumentError, match="must be bytes"):
        pidf.parse("<presence/>")  # type: ignore[arg-type]


def test_reason_is_a_safe_reason_phrase() -> None:
    body = b'<presence xmlns="urn:x\r\nEvil: yes" entity="sip:a@b"/>'
    reason = _reason(body)
    assert "\r" not in reason and "\n" not in reason
    assert len(reason) <= 120
    assert all(" " <= ch <= "~" for ch in reason)


def test_one_parser_for_everything() -> None:
    assert hardened_parser() is hardened_parser()
    root = parse_xml(SIMPLE)
    assert root.tag == "{urn:ietf:params:xml:ns:pidf}presence"


def test_parse_and_build_of_a_small_pidf_is_fast() -> None:
    body = (
        pidf.build(pidf.parse((SAMPLES / "valid" / "pidf-rpid-away.xml").read_bytes()))
        if (SAMPLES.is_dir())
        else SIMPLE
    )
    assert 300 < len(body) < 800 or body == SIMPLE
    pidf.build(pidf.parse(body))  # warm up
    rounds = 300
    start = time.perf_counter()
    for _ in range(rounds):
        pidf.build(pidf.parse(body))
    per_call = (time.perf_counter() - start) / rounds
    # Generous bound for a shared 2-core machine: compiling a parser or a schema per
    # call would cost milliseconds; the real figure is tens of microseconds.
    assert per_call < 1e-3


# --- the shared conformance samples ---------------------------------------------------

_CODECS: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]] = {
    "pidf": (pidf.parse, pidf.build),
    "watcherinfo": (winfo.parse, winfo.build),
    "reginfo": (reginfo.parse, reginfo.build),
    "pres-rules": (presrules.parse, presrules.build),
    "resource-lists": (resourcelists.parse, resourcelists.build),
    "xcap-error": (xcaperror.parse, xcaperror.build),
}


def _sample_files(kind: str) -> list[Path]:
    folder = SAMPLES / kind
    return sorted(folder.glob("*.xml")) if folder.is_dir() else []


@needs_samples
@pytest.mark.parametrize("path", _sample_files("valid"), ids=lambda p: p.name)
def test_valid_samples_parse_and_validate(path: Path) -> None:
    data = path.read_bytes()
    assert validate.errors(data) == []
    prefix = next(name for name in _CODECS if path.name.startswith(name))
    parse, build = _CODECS[prefix]
    model = parse(data)
    rebuilt = build(model)
    assert validate.errors(rebuilt) == []
    assert parse(rebuilt) == model


@needs_samples
@pytest.mark.parametrize("path", _sample_files("invalid"), ids=lambda p: p.name)
def test_invalid_samples_are_rejected_by_validate(path: Path) -> None:
    data = path.read_bytes()
    assert validate.errors(data)
    assert not validate.is_valid(data)
    with pytest.raises(DocumentError, match=r"^schema: "):
        validate.validate(data)


def test_validate_refuses_unknown_roots() -> None:
    with pytest.raises(DocumentError, match="no schema for root namespace urn:x"):
        validate.validate(b'<a xmlns="urn:x"/>')


# --- pidf.validate: the PUBLISH check that builds no model ------------------------------

_USUAL_BODIES = [
    pidf.build(PresenceDocument("sip:alice@home1.net", (PresenceTuple("t1", "open"),))),
    pidf.build(
        PresenceDocument(
            " sip:alice@home1.net ",
            (
                PresenceTuple(
                    "t1", "open", Contact("sip:alice@192.0.2.1", 0.8), (Note("at my desk"),),
                    datetime(2026, 11, 28, 12, 0, tzinfo=UTC), ("urn:uuid:d1",),
                ),
                PresenceTuple("t2", None),
            ),
            (Person("p1", Activities(("busy", "on-the-phone"), (Note("x"),), (Note("y"),)),
                    notes=(Note("n", "en"),), timestamp=datetime(2026, 11, 28, 12, 0)),),
            (Device("d1", "urn:uuid:d1", notes=(Note("phone"),)),),
            (Note("hello"),),
        )
    ),
]  # fmt: skip


@pytest.mark.parametrize("body", _USUAL_BODIES)
def test_validate_checks_the_usual_shapes_in_its_own_walk(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    entity = pidf.parse(body).entity
    monkeypatch.setattr(pidf, "_document", None)  # the walk alone must answer
    assert pidf.validate(body) == entity == entity.strip()


@pytest.mark.parametrize(
    "body",
    [
        pidf.build(PresenceDocument("sip:a@b", (PresenceTuple("t1", "open", class_="x"),))),
        pidf.build(PresenceDocument("sip:a@b", persons=(Person("p1", mood=Mood(("happy",))),))),
        pidf.build(PresenceDocument("sip:a@b", extensions=(b'<x:e xmlns:x="urn:x"/>',))),
    ],
)
def test_validate_takes_parse_for_the_other_shapes(body: bytes) -> None:
    from presence_ims.documents.xml import parse_xml

    assert not pidf._usual(parse_xml(body))
    assert pidf.validate(body) == pidf.parse(body).entity == "sip:a@b"


@pytest.mark.parametrize(
    "body",
    [
        b"<presence",
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf"/>',
        _USUAL_BODIES[0].replace(b"open", b"opened"),
        _USUAL_BODIES[1].replace(b'id="d1"', b'id="t1"'),
        _USUAL_BODIES[1].replace(b"busy", b"bussy"),
        _USUAL_BODIES[1].replace(b"2026-11-28T12:00:00Z", b"2026-11-28T25:00:00Z"),
    ],
)
def test_validate_refuses_with_parse_reason(body: bytes) -> None:
    with pytest.raises(DocumentError) as expected:
        pidf.parse(body)
    with pytest.raises(DocumentError) as got:
        pidf.validate(body)
    assert got.value.reason == expected.value.reason
