"""``pidf.validate`` accepts and refuses exactly what ``pidf.parse`` does.

``validate`` is the PUBLISH fast path: a walk that builds no model for the usual
shapes, ``parse``'s own checks for everything else. Whatever the input, both
must give the same entity or the same DocumentError reason; and the walk may only
vouch for documents ``parse`` accepts. The documents are made of the pieces a
PUA sends, each with its near misses (bad values, duplicates, misplaced or
unknown elements, extensions, attributes), so that both branches of every check
are reached.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from presence_ims.documents import DocumentError, pidf
from presence_ims.documents.xml import parse_xml

MANY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ROOT_OPEN = (
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
    'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
    'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" '
    'xmlns:x="urn:example:other"{entity}>'
)

IDS = ["t1", "t2", "t3", "p1", "p2", "d1", "d2", "x.y-z", "_u", "\u00e9t\u00e9"]
BAD_IDS = ["1bad", "", "a b", "t1"]
TIMES = [
    "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.25+02:00", " 2024-05-01T10:00:00Z ",
    "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.25+02:00", "2024-05-01T10:00:00-05:30",
    "2024-05-01T10:00:00", "2024-13-45T99:99:99Z", "2024-05-01T10:00:00+15:00", "yesterday", "",
]  # fmt: skip
PRIORITIES = ["0.8", "1", "1.0", "0", "0.", "0.123", "0.1234", "1.5", " 0.5", "abc", "0.\u0663"]
BASICS = ["open", "closed", "open", "closed", " open\n", "Open", "", "busy"]


def _pick(options: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(options)


def _mostly(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    """One of ``good`` four times in five, else one of ``bad``."""
    return st.integers(0, 4).flatmap(lambda i: _pick(good if i < 4 else bad))


def _id_attr(ident: str | None) -> str:
    return "" if ident is None else f' id="{ident}"'


timestamps = st.builds(
    lambda tag, value, child: f"<{tag}>{value}{child}</{tag}>",
    st.just("timestamp"),
    _pick(TIMES),
    _pick(["", "", "", "", "", "<x:b/>"]),
)
notes = _pick([
    "<note>hello</note>", '<note xml:lang="en">hi &amp; bye</note>', "<note/>", "<note>x</note>",
    "<note><x:b/></note>",
])  # fmt: skip
dm_notes = notes.map(lambda n: n.replace("<note", "<dm:note").replace("</note>", "</dm:note>"))
dm_timestamps = timestamps.map(
    lambda t: t.replace("<timestamp>", "<dm:timestamp>").replace("</timestamp>", "</dm:timestamp>")
)
device_ids = _pick([
    "<dm:deviceID>urn:uuid:d1</dm:deviceID>", "<dm:deviceID> mac:0a1b </dm:deviceID>",
    "<dm:deviceID> </dm:deviceID>", "<dm:deviceID><x:b/></dm:deviceID>",
])  # fmt: skip
extensions = _pick([
    "<x:ext/>", '<x:ext mustUnderstand="true"/>', '<x:ext mustUnderstand="false">v</x:ext>',
    '<y:ext xmlns:y="rel"/>', "<rpid:class>work</rpid:class>", "<dm:note>dm</dm:note>",
    "<bogus/>", "<rpid:bogus/>",
])  # fmt: skip

status_children = st.lists(
    st.one_of(
        st.builds(lambda v: f"<basic>{v}</basic>", _pick(BASICS)),
        st.builds(lambda v: f"<basic>{v}</basic>", _pick(BASICS)),
        st.builds(lambda v: f"<basic>{v}</basic>", _pick(BASICS)),
        _pick(["<basic><x:b/></basic>", "<x:ext/>", "<note>n</note>", "<basic/>"]),
    ),
    max_size=2,
)
statuses = status_children.map(lambda c: "<status>" + "".join(c) + "</status>")
contacts = st.builds(
    lambda prio, uri, child: (
        "<contact" + ("" if prio is None else f' priority="{prio}"') + f">{uri}{child}</contact>"
    ),
    st.none() | _pick(PRIORITIES),
    _pick(["sip:a@192.0.2.1", " tel:+123 ", "sip:b@home1.net", "", " "]),
    _pick(["", "", "", "", "", "<x:b/>"]),
)
tuple_extras = st.lists(
    st.one_of(contacts, contacts, notes, notes, timestamps, device_ids, statuses, extensions),
    max_size=4,
)
tuples = st.builds(
    lambda ident, first, extras, where, space: (
        f"<tuple{_id_attr(ident)}>"
        + space.join([*extras[:where], *first, *extras[where:]])
        + "</tuple>"
    ),
    _mostly(IDS, BAD_IDS).map(lambda i: i or None),
    st.one_of(statuses.map(lambda s: [s]), statuses.map(lambda s: [s]), st.just([])),
    tuple_extras,
    st.integers(0, 4),
    _pick(["", "\n  "]),
)

activity_items = _pick([
    "<rpid:busy/>", "<rpid:away/>", "<rpid:on-the-phone/>", "<rpid:unknown/>", "<rpid:meal/>",
    "<rpid:busy/>", "<rpid:note>n</rpid:note>", "<rpid:other>o</rpid:other>",
    "<rpid:other>gone fishing</rpid:other>", "<rpid:note>n</rpid:note>", "<rpid:bogus/>",
    "<rpid:busy> really </rpid:busy>", "<rpid:busy><x:b/></rpid:busy>",
    "<rpid:other><x:b/></rpid:other>", "<x:ext/>", '<rpid:busy id="q"/>',
])  # fmt: skip
activities = st.builds(
    lambda attrs, items: f"<rpid:activities{attrs}>{''.join(items)}</rpid:activities>",
    _pick(["", "", "", ' from="2024-05-01T10:00:00Z"', ' until="soon"', ' id="a1"', ' id="1"']),
    st.lists(activity_items, max_size=4),
)
person_children = st.lists(
    st.one_of(
        activities,
        activities,
        activities,
        dm_notes,
        dm_notes,
        dm_timestamps,
        extensions,
        _pick(
            [
                "<rpid:mood><rpid:happy/></rpid:mood>",
                "<note>pidf note</note>",
                "<dm:deviceID>urn:x</dm:deviceID>",
                "<rpid:place-is/>",
                "<rpid:sphere>work</rpid:sphere>",
            ]
        ),
    ),
    max_size=4,
)
persons = st.builds(
    lambda ident, children: f"<dm:person{_id_attr(ident)}>{''.join(children)}</dm:person>",
    _mostly(IDS, BAD_IDS).map(lambda i: i or None),
    person_children,
)
device_children = st.lists(
    st.one_of(device_ids, device_ids, device_ids, dm_notes, dm_timestamps, extensions), max_size=3
)
devices = st.builds(
    lambda ident, children: f"<dm:device{_id_attr(ident)}>{''.join(children)}</dm:device>",
    _mostly(IDS, BAD_IDS).map(lambda i: i or None),
    device_children,
)


@st.composite
def pidf_like(draw: st.DrawFn) -> bytes:
    entity = draw(
        _mostly([' entity="sip:alice@home1.net"', ' entity=" pres:bob@home1.net "',
                 ' entity="tel:+1-555"'], [' entity=""', ' entity="  "', ""])
    )
    children = draw(
        st.lists(
            st.one_of(
                tuples, tuples, tuples, persons, persons, devices, notes, extensions,
                _pick(["<dm:bogus/>", "<status/>", "text"]),
            ),
            max_size=4,
        )
    )
    root = ROOT_OPEN.format(entity=entity)
    if draw(st.integers(0, 19)) == 19:
        root = root.replace("<presence ", "<x:presence ")
        return f"{root}{''.join(children)}</x:presence>".encode()
    prolog = draw(_pick(["", '<?xml version="1.0" encoding="UTF-8"?>\n']))
    return f"{prolog}{root}{''.join(children)}</presence>".encode()


def _outcome(fn: object, data: bytes) -> tuple[str, str]:
    try:
        if fn is pidf.parse:
            return ("ok", pidf.parse(data).entity)
        return ("ok", pidf.validate(data))
    except DocumentError as exc:
        return ("refused", exc.reason)


def _same(data: bytes) -> None:
    assert _outcome(pidf.validate, data) == _outcome(pidf.parse, data)
    try:
        root = parse_xml(data)
    except DocumentError:
        return
    if pidf._usual(root):  # the walk vouches only for what parse accepts
        pidf.parse(data)


@MANY
@given(pidf_like())
def test_validate_agrees_with_parse(data: bytes) -> None:
    _same(data)


@MANY
@given(pidf_like(), st.data())
def test_validate_agrees_with_parse_on_mutated_bytes(data: bytes, more: st.DataObject) -> None:
    buf = bytearray(data)
    for _ in range(more.draw(st.integers(1, 3))):
        if not buf:
            break
        i = more.draw(st.integers(0, len(buf) - 1))
        op = more.draw(st.integers(0, 2))
        if op == 0:
            del buf[i]
        elif op == 1:
            buf.insert(i, more.draw(st.sampled_from(b"<>/\"= x\n&")))
        else:
            buf[i] = more.draw(st.integers(0, 255))
    _same(bytes(buf))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_validate_agrees_with_parse_on_any_bytes(data: bytes) -> None:
    _same(data)
