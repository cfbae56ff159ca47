"""Property tests for the presence documents.

* any bytes, and any XML made of the documents' own vocabulary, into every
  parser: a model or DocumentError, nothing else;
* generated models round-trip (``parse(build(m)) == m``) and what is built
  validates against the bundled schemas.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

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
from presence_ims.documents.geopriv import (
    CIVIC_FIELDS,
    CIVIC_NS,
    GBP_NS,
    GEOPRIV_NS,
    GML_NS,
    CivicAddress,
    Geopriv,
    Point,
    UsageRules,
)
from presence_ims.documents.pidf import Contact, Device, Person, PresenceDocument, PresenceTuple
from presence_ims.documents.presrules import (
    Actions,
    Conditions,
    DeviceSelector,
    Except,
    Identity,
    Many,
    PersonSelector,
    Rule,
    Ruleset,
    ServiceSelector,
    Transformations,
    UnknownAttribute,
)
from presence_ims.documents.rpid import (
    ACTIVITIES,
    MOODS,
    RELATIONSHIPS,
    SERVICE_CLASSES,
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
from presence_ims.documents.winfo import Watcher, WatcherInfo, WatcherList

PARSERS: dict[str, Callable[[bytes], object]] = {
    "pidf": pidf.parse,
    "winfo": winfo.parse,
    "reginfo": reginfo.parse,
    "presrules": presrules.parse,
    "resourcelists": resourcelists.parse,
    "xcaperror": xcaperror.parse,
}

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_document_errors(data: bytes) -> None:
    for name, parse in PARSERS.items():
        try:
            parse(data)
        except DocumentError as exc:
            assert exc.reason, name
            assert all(" " <= ch <= "~" for ch in exc.reason), name


@FAST
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_document_error(data: bytes) -> None:
    _only_document_errors(data)


# --- XML built from the documents' own vocabulary -------------------------------------

NAMESPACES = [
    pidf.PIDF_NS,
    pidf.DM_NS,
    "urn:ietf:params:xml:ns:pidf:rpid",
    GEOPRIV_NS,
    GBP_NS,
    GML_NS,
    CIVIC_NS,
    winfo.WATCHERINFO_NS,
    reginfo.REGINFO_NS,
    presrules.CP_NS,
    presrules.PR_NS,
    presrules.EXT_NS,
    presrules.OMA_CP_NS,
    resourcelists.RESOURCE_LISTS_NS,
    xcaperror.XCAP_ERROR_NS,
    "urn:example:other",
]
LOCALS = sorted(
    {
        "presence", "tuple", "status", "basic", "contact", "note", "timestamp", "person",
        "device", "deviceID", "activities", "mood", "away", "unknown", "other", "place-is",
        "audio", "noisy", "place-type", "privacy", "sphere", "work", "status-icon",
        "time-offset", "user-input", "class", "relationship", "service-class", "geopriv",
        "location-info", "usage-rules", "retention-expiry", "retransmission-allowed",
        "Point", "pos", "civicAddress", "country", "method", "provided-by", "watcherinfo",
        "watcher-list", "watcher", "reginfo", "registration", "uri", "unknown-param",
        "display-name", "ruleset", "rule", "conditions", "identity", "one", "many", "except",
        "validity", "from", "until", "actions", "sub-handling", "transformations",
        "provide-services", "all-services", "service-uri", "provide-user-input",
        "provide-unknown-attribute", "provide-location", "anonymous-request", "resource-lists",
        "list", "entry", "entry-ref", "external", "xcap-error", "no-parent", "ancestor",
        "uniqueness-failure", "exists", "alt-value", "servcaps",
    }
)  # fmt: skip
ROOTS = [
    (pidf.PIDF_NS, "presence"),
    (winfo.WATCHERINFO_NS, "watcherinfo"),
    (reginfo.REGINFO_NS, "reginfo"),
    (presrules.CP_NS, "ruleset"),
    (resourcelists.RESOURCE_LISTS_NS, "resource-lists"),
    (xcaperror.XCAP_ERROR_NS, "xcap-error"),
]
ATTRIBUTES = [
    "id", "entity", "priority", "from", "until", "version", "state", "status", "event",
    "resource", "package", "aor", "expires", "cseq", "q", "uri", "name", "ns", "domain",
    "value", "field", "phrase", "srsName", "idle-threshold", "last-input", "description",
    "mustUnderstand", "ref", "anchor", "duration-subscribed",
]  # fmt: skip
VALUES = [
    "", "open", "closed", "full", "partial", "active", "approved", "registered", "allow",
    "true", "0", "1", "-1", "0.5", "1.5", "t1", "1x", "sip:a@b", "pres:a@b", "x" * 30,
    "9" * 40, "2024-05-01T10:00:00Z", "2024-13-45T99:99:99Z", "48.1 11.5", "nan inf",
    "presence", "urn:x", "\u00e9\u4e2d",
]  # fmt: skip


@st.composite
def vocabulary_xml(draw: st.DrawFn) -> bytes:
    def element(depth: int) -> etree._Element:
        tag = etree.QName(draw(st.sampled_from(NAMESPACES)), draw(st.sampled_from(LOCALS)))
        el = etree.Element(tag)
        for name in draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=3, unique=True)):
            el.set(name, draw(st.sampled_from(VALUES)))
        if draw(st.booleans()):
            el.text = draw(st.sampled_from(VALUES))
        if depth < 4:
            for _ in range(draw(st.integers(0, 3))):
                el.append(element(depth + 1))
        return el

    root = element(0)
    if draw(st.booleans()):  # mostly start from a real root element
        ns, local = draw(st.sampled_from(ROOTS))
        root.tag = etree.QName(ns, local).text
    return etree.tostring(root)


@FAST
@given(vocabulary_xml())
def test_vocabulary_xml_raises_only_document_error(data: bytes) -> None:
    _only_document_errors(data)


# --- PIDF models ----------------------------------------------------------------------

_xml_chars = st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_characters="\x7f")
text = st.text(_xml_chars | st.sampled_from("\n\t"), max_size=16)
attr_text = st.text(_xml_chars, max_size=16)
token = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
langs = st.sampled_from([None, "en", "de", "es-MX"])
notes = st.lists(st.builds(Note, text, langs), max_size=2).map(tuple)
sip_uris = st.builds(
    lambda user, host: f"sip:{user}@{host}",
    st.from_regex(r"[a-z][a-z0-9.]{0,8}", fullmatch=True),
    st.sampled_from(["home1.net", "home2.net", "192.0.2.1:5060"]),
)
zones: st.SearchStrategy[Any] = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))]
)
times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones
)
maybe_times = st.none() | times
EXTENSIONS = [
    b'<ts:timed-status xmlns:ts="urn:ietf:params:xml:ns:pidf:timed-status" '
    b'from="2024-05-01T12:00:00Z"><ts:basic>closed</ts:basic></ts:timed-status>',
    b'<caps:servcaps xmlns:caps="urn:ietf:params:xml:ns:pidf:caps">'
    b"<caps:audio>true</caps:audio></caps:servcaps>",
    b'<x:hobby xmlns:x="urn:example:x" level="3">chess &amp; go</x:hobby>',
]
extensions = st.lists(st.sampled_from(EXTENSIONS), max_size=2).map(tuple)

activities = st.one_of(
    st.builds(Activities, st.just(("unknown",)), notes=notes, from_=maybe_times, until=maybe_times),
    st.builds(
        Activities,
        st.lists(st.sampled_from(sorted(ACTIVITIES)), max_size=3, unique=True).map(tuple),
        other=notes,
        notes=notes,
        from_=maybe_times,
    ),
)
moods = st.builds(
    Mood,
    st.lists(st.sampled_from(sorted(MOODS)), min_size=1, max_size=3, unique=True).map(tuple),
    other=notes,
    notes=notes,
    until=maybe_times,
)
place_is = st.builds(
    PlaceIs,
    st.sampled_from([None, "noisy", "ok", "quiet", "unknown"]),
    st.sampled_from([None, "toobright", "ok", "dark", "unknown"]),
    st.sampled_from([None, "uncomfortable", "inappropriate", "ok", "unknown"]),
    notes=notes,
)
place_type = st.one_of(
    st.builds(
        PlaceType,
        st.lists(st.sampled_from(["office", "home", "airport"]), min_size=1, max_size=2).map(tuple),
    ),
    st.builds(PlaceType, other=st.builds(Note, text, langs), notes=notes),
)
privacy = st.one_of(
    st.builds(Privacy, unknown=st.just(True), notes=notes),
    st.builds(Privacy, st.booleans(), st.booleans(), st.booleans()),
)
spheres = st.builds(Sphere, st.sampled_from([None, "home", "work", "unknown"]), from_=maybe_times)
icons = st.builds(StatusIcon, token.map(lambda t: f"http://home1.net/{t}.png"))
offsets = st.builds(TimeOffset, st.integers(-900, 900), st.none() | attr_text)
user_inputs = st.builds(
    UserInput,
    st.sampled_from(["active", "idle"]),
    st.none() | st.integers(1, 100000),
    maybe_times,
)
relationships = st.sampled_from(sorted(RELATIONSHIPS)).flatmap(
    lambda value: st.builds(
        Relationship, st.just(value), text if value == "other" else st.none(), notes
    )
)
service_classes = st.builds(ServiceClass, st.sampled_from(sorted(SERVICE_CLASSES)), notes)
locations = st.builds(
    Geopriv,
    st.none()
    | st.builds(
        Point,
        st.floats(-90, 90, allow_nan=False),
        st.floats(-180, 180, allow_nan=False),
        st.none() | st.floats(-1000, 9000, allow_nan=False),
    ),
    st.none()
    | st.builds(
        CivicAddress,
        st.lists(st.tuples(st.sampled_from(sorted(CIVIC_FIELDS)), attr_text), max_size=3).map(
            tuple
        ),
    ),
    st.builds(
        UsageRules,
        st.none() | st.booleans(),
        maybe_times,
        st.none() | icons.map(lambda i: i.uri),
        st.none() | text,
    ),
    st.none() | token,
)


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def presence_documents(draw: st.DrawFn) -> PresenceDocument:
    ids = draw(
        st.lists(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,6}", fullmatch=True), max_size=6, unique=True
        )
    )
    n_tuples = draw(st.integers(0, len(ids)))
    n_persons = draw(st.integers(0, min(1, len(ids) - n_tuples)))
    tuples = tuple(
        PresenceTuple(
            ident,
            draw(st.sampled_from([None, "open", "closed"])),
            draw(
                _opt(
                    st.builds(Contact, sip_uris, _opt(st.integers(0, 1000).map(lambda i: i / 1000)))
                )
            ),
            draw(notes),
            draw(maybe_times),
            draw(st.lists(token.map(lambda t: f"urn:uuid:{t}"), max_size=2).map(tuple)),
            draw(_opt(token)),
            draw(_opt(user_inputs)),
            draw(_opt(icons)),
            draw(_opt(relationships)),
            draw(_opt(service_classes)),
            draw(_opt(locations)),
            draw(extensions),
            draw(extensions),
        )
        for ident in ids[:n_tuples]
    )
    persons = tuple(
        Person(
            ident,
            draw(_opt(activities)),
            draw(_opt(token)),
            draw(_opt(moods)),
            draw(_opt(place_is)),
            draw(_opt(place_type)),
            draw(_opt(privacy)),
            draw(_opt(spheres)),
            draw(_opt(icons)),
            draw(_opt(offsets)),
            draw(_opt(user_inputs)),
            draw(_opt(locations)),
            draw(notes),
            draw(maybe_times),
            draw(extensions),
        )
        for ident in ids[n_tuples : n_tuples + n_persons]
    )
    devices = tuple(
        Device(
            ident,
            f"urn:uuid:{draw(token)}",
            draw(_opt(token)),
            draw(_opt(user_inputs)),
            draw(_opt(locations)),
            draw(notes),
            draw(maybe_times),
            draw(extensions),
        )
        for ident in ids[n_tuples + n_persons :]
    )
    return PresenceDocument(draw(sip_uris), tuples, persons, devices, draw(notes), draw(extensions))


@FAST
@given(presence_documents())
def test_presence_documents_round_trip(doc: PresenceDocument) -> None:
    data = pidf.build(doc)
    assert pidf.parse(data) == doc
    assert pidf.build(pidf.parse(data)) == data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(presence_documents())
def test_built_presence_documents_validate(doc: PresenceDocument) -> None:
    assert validate.errors(pidf.build(doc)) == []


@FAST
@given(presence_documents(), st.sampled_from(sorted(ACTIVITIES)))
def test_transform_output_is_a_buildable_subset(doc: PresenceDocument, _: str) -> None:
    p = presrules.Permissions(
        "allow", ServiceSelector(all=True), PersonSelector(all=True), activities=True
    )
    out = presrules.transform(doc, p)
    data = pidf.build(out)
    assert pidf.parse(data) == out
    assert len(out.tuples) <= max(1, len(doc.tuples))


# --- the other documents ----------------------------------------------------------------

watchers = st.builds(
    Watcher,
    token,
    st.sampled_from(["pending", "active", "waiting", "terminated"]),
    st.sampled_from(
        [
            "subscribe",
            "approved",
            "deactivated",
            "probation",
            "rejected",
            "timeout",
            "giveup",
            "noresource",
        ]
    ),
    sip_uris,
    st.none() | attr_text,
    st.none() | st.integers(0, 2**64 - 1),
    st.none() | st.integers(0, 2**32),
    langs,
)
watcher_infos = st.builds(
    WatcherInfo,
    st.integers(0, 2**40),
    st.sampled_from(["full", "partial"]),
    st.lists(
        st.builds(
            WatcherList,
            sip_uris,
            st.sampled_from(["presence", "presence.winfo"]),
            st.lists(watchers, max_size=3).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
)


@FAST
@given(watcher_infos)
def test_watcher_info_round_trips_and_validates(info: WatcherInfo) -> None:
    data = winfo.build(info)
    assert winfo.parse(data) == info
    assert validate.errors(data) == []


contacts = st.builds(
    reginfo.Contact,
    token,
    st.sampled_from(["active", "terminated"]),
    st.sampled_from(
        [
            "registered",
            "created",
            "refreshed",
            "shortened",
            "expired",
            "deactivated",
            "probation",
            "unregistered",
            "rejected",
        ]
    ),
    sip_uris,
    st.none() | st.integers(0, 2**32),
    st.none() | st.sampled_from(["0.5", "1.0"]),
    st.none() | text,
    st.lists(st.tuples(token.map(lambda t: "+" + t), attr_text), max_size=2).map(tuple),
    st.none() | st.integers(0, 2**32),
)
reg_infos = st.builds(
    reginfo.RegInfo,
    st.integers(0, 2**40),
    st.sampled_from(["full", "partial"]),
    st.lists(
        st.builds(
            reginfo.Registration,
            sip_uris,
            token,
            st.sampled_from(["init", "active", "terminated"]),
            st.lists(contacts, max_size=3).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
)


@FAST
@given(reg_infos)
def test_reginfo_round_trips_and_validates(info: reginfo.RegInfo) -> None:
    data = reginfo.build(info)
    assert reginfo.parse(data) == info
    assert validate.errors(data) == []


bools = st.none() | st.booleans()
transformations = st.builds(
    Transformations,
    st.none()
    | st.just(ServiceSelector(all=True))
    | st.builds(
        ServiceSelector,
        st.just(False),
        st.lists(sip_uris, max_size=2).map(tuple),
        st.lists(st.sampled_from(["sip", "im"]), max_size=2).map(tuple),
    ),
    st.none() | st.builds(PersonSelector, st.booleans()),
    st.none() | st.builds(DeviceSelector, st.just(False), st.lists(token, max_size=2).map(tuple)),
    bools,
    bools,
    bools,
    bools,
    bools,
    bools,
    bools,
    bools,
    bools,
    bools,
    bools,
    st.none() | st.sampled_from(["false", "bare", "thresholds", "full"]),
    bools,
    st.lists(st.builds(UnknownAttribute, st.just("urn:x"), token, st.booleans()), max_size=2).map(
        tuple
    ),
    st.booleans(),
    bools,
    bools,
)
conditions = st.builds(
    Conditions,
    st.none()
    | st.builds(
        Identity,
        st.lists(sip_uris, min_size=1, max_size=2).map(tuple),
        st.lists(
            st.builds(
                Many,
                st.none() | st.just("home1.net"),
                st.lists(
                    st.builds(Except, st.none() | sip_uris, st.just("home2.net")), max_size=2
                ).map(tuple),
            ),
            max_size=2,
        ).map(tuple),
    ),
    st.none() | st.sampled_from(["work", "home work"]),
    st.none() | st.lists(st.tuples(times, times), min_size=1, max_size=2).map(tuple),
    st.booleans(),
    st.booleans(),
)
rulesets = st.lists(
    st.builds(
        Rule,
        st.just(""),
        conditions,
        st.builds(
            Actions, st.none() | st.sampled_from(["block", "confirm", "polite-block", "allow"])
        ),
        transformations,
    ),
    max_size=4,
).map(
    lambda rules: Ruleset(
        tuple(
            Rule(f"r{i}", r.conditions, r.actions, r.transformations) for i, r in enumerate(rules)
        )
    )
)


@FAST
@given(rulesets)
def test_rulesets_round_trip_and_validate(ruleset: Ruleset) -> None:
    data = presrules.build(ruleset)
    assert presrules.parse(data) == ruleset
    assert validate.errors(data) == []


@FAST
@given(rulesets, st.sampled_from([None, "work", "home"]), times)
def test_evaluate_never_fails(ruleset: Ruleset, sphere: str | None, now: datetime) -> None:
    for watcher in (
        presrules.WatcherIdentity("sip:bob@home1.net", True),
        presrules.WatcherIdentity("sip:carol@home2.net", True, True),
        presrules.WatcherIdentity(None, False, True),
    ):
        result = presrules.evaluate(ruleset, watcher, sphere=sphere, now=now)
        if result is not None:
            assert set(result.matched_rules) <= {r.id for r in ruleset.rules}


entries = st.builds(
    resourcelists.Entry,
    sip_uris,
    st.none() | st.builds(resourcelists.DisplayName, text, langs),
)
lists = st.recursive(
    st.builds(
        resourcelists.ResourceList, st.none(), st.none(), st.lists(entries, max_size=3).map(tuple)
    ),
    lambda inner: st.builds(
        resourcelists.ResourceList,
        st.none(),
        st.none(),
        st.lists(entries | inner, max_size=3).map(tuple),
    ),
    max_leaves=6,
)


@FAST
@given(st.lists(lists, max_size=3))
def test_resource_lists_round_trip_and_validate(items: list[resourcelists.ResourceList]) -> None:
    doc = resourcelists.ResourceLists(tuple(items))
    data = resourcelists.build(doc)
    assert resourcelists.parse(data) == doc
    assert validate.errors(data) == []
