"""XCAP URIs and node selectors (RFC 4825 sections 6 and 8): parsing, selection, edits."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from presence_ims.documents import xcaperror
from presence_ims.nodes.xcap.selector import (
    ATTRIBUTE_TYPE,
    ELEMENT_TYPE,
    NAMESPACE_TYPE,
    AttributeNode,
    AttrTest,
    NodeSelector,
    Rendered,
    XcapError,
    XcapUri,
    attribute_value_bytes,
    delete_attribute,
    delete_element,
    delete_node,
    parse_attribute_value,
    parse_fragment,
    parse_node_selector,
    parse_uri,
    parse_xmlns_query,
    put_attribute,
    put_element,
    put_node,
    render,
    select,
)

WI = "urn:ietf:params:xml:ns:watcherinfo"
CP = "urn:ietf:params:xml:ns:common-policy"

# The watcherinfo document of RFC 4825 section 6.3's examples.
WATCHERINFO = b"""<?xml version="1.0" encoding="UTF-8"?>
<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="full">
  <watcher-list resource="sip:professor@example.net" package="presence">
    <watcher status="active" id="8ajksjda7s" duration-subscribed="509" event="approved">sip:userA@example.net</watcher>
    <watcher status="pending" id="hh8juja87s997-ass7" display-name="Mr. Subscriber" event="subscribe">sip:userB@example.org</watcher>
  </watcher-list>
</watcherinfo>
"""

# The namespace example of RFC 4825 section 6.4.
NAMESPACED = b"""<?xml version="1.0" encoding="UTF-8"?>
<foo xmlns="urn:test:default-namespace">
  <ns1:bar xmlns:ns1="urn:test:namespace1-uri" xmlns="urn:test:namespace1-uri">
    <baz/>
    <ns2:baz xmlns:ns2="urn:test:namespace2-uri"/>
  </ns1:bar>
  <ns3:hi xmlns:ns3="urn:test:namespace3-uri">
    <there/>
  </ns3:hi>
</foo>
"""

# A generic document for insertion rules (RFC 4825 section 8.2.3).
START = b"""<root xmlns="test-app">
  <el1 att="first"/>
  <el1 att="second"/>
  <el2 att="first"/>
</root>"""


def doc(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def wi(text: str) -> NodeSelector:
    return parse_node_selector(text, default_namespace=WI)


def app(text: str) -> NodeSelector:
    return parse_node_selector(text, default_namespace="test-app")


def atts(root: etree._Element) -> list[tuple[str, str | None]]:
    """(local name, att) of the root's children, in order."""
    return [(etree.QName(c).localname, c.get("att")) for c in root]


# --- URIs -------------------------------------------------------------------------------


def test_parse_uri_document() -> None:
    uri = parse_uri("/xcap-root/pres-rules/users/sip:alice@home1.net/index")
    assert uri == XcapUri("pres-rules", "sip:alice@home1.net", "index")
    assert uri.key == "pres-rules/sip:alice@home1.net/index"
    assert not uri.is_global
    assert uri.document_path() == "/xcap-root/pres-rules/users/sip:alice@home1.net/index"


def test_parse_uri_percent_decodes_the_xui() -> None:
    uri = parse_uri("/xcap-root/resource-lists/users/sip%3Abob%40home1.net/index")
    assert uri.xui == "sip:bob@home1.net"
    tel = parse_uri("/xcap-root/pres-rules/users/tel:+15551234567/index")
    assert tel.xui == "tel:+15551234567"


def test_parse_uri_node_selector_and_query() -> None:
    uri = parse_uri(
        "/xcap-root/pres-rules/users/sip:alice@home1.net/index/~~/"
        "cp:ruleset/cp:rule%5b@id=%22a/b%22%5d/@id",
        "xmlns(cp=urn:ietf:params:xml:ns:common-policy)",
    )
    assert uri.node == 'cp:ruleset/cp:rule[@id="a/b"]/@id'
    assert uri.namespaces == (("cp", CP),)
    same = parse_uri(
        "/xcap-root/pres-rules/users/sip:alice@home1.net/index/~~/cp:ruleset"
        "?xmlns(cp=urn:ietf:params:xml:ns:common-policy)"
    )
    assert same.namespaces == (("cp", CP),)


def test_parse_uri_global_and_other_roots() -> None:
    uri = parse_uri("/xcap-caps/global/index", root="/")
    assert uri.is_global and uri.auid == "xcap-caps" and uri.document == "index"
    assert uri.key == "xcap-caps/global/index"
    assert parse_uri("/x/y/pres-rules/global/index", root="/x/y/").auid == "pres-rules"


@pytest.mark.parametrize(
    "path",
    [
        "/elsewhere/pres-rules/users/sip:a@b/index",
        "/xcap-root/pres-rules/users/sip:a@b",
        "/xcap-root/pres-rules/users/sip:a@b/",
        "/xcap-root/pres-rules/users/sip:a@b/dir/index",
        "/xcap-root/pres-rules/people/sip:a@b/index",
        "/xcap-root/pres-rules/global",
        "/xcap-root/pres-rules/users//index",
        "/xcap-root/pres-rules/users/sip:a@b/..",
    ],
)
def test_parse_uri_not_a_document(path: str) -> None:
    with pytest.raises(XcapError) as info:
        parse_uri(path)
    assert info.value.status == 404


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/xcap-root/pres-rules/users/sip:a@b/index/~~/", ""),
        ("/xcap-root/pres-rules/users/%FF/index", ""),
        ("/xcap-root/pres-rules/users/sip:a@b/index/~~/ruleset", "foo=bar"),
        ("/xcap-root/pres-rules/users/sip:a@b/index/~~/ruleset", "xmlns(=urn:x)"),
        ("/xcap-root/pres-rules/users/sip:a@b/index/~~/ruleset", "xmlns(a=urn:x"),
    ],
)
def test_parse_uri_malformed(path: str, query: str) -> None:
    with pytest.raises(XcapError) as info:
        parse_uri(path, query)
    assert info.value.status == 400


def test_xmlns_query_escapes() -> None:
    assert parse_xmlns_query("xmlns(a=urn:x^(1^))xmlns(b=urn:y)") == (
        ("a", "urn:x(1)"),
        ("b", "urn:y"),
    )
    assert parse_xmlns_query("") == ()


def test_node_path_round_trips() -> None:
    uri = parse_uri("/xcap-root/pres-rules/users/sip:alice@home1.net/index")
    path = uri.node_path("/xcap-root", 'ruleset/rule[@id="x y"]')
    assert " " not in path and '"' not in path
    assert parse_uri(path).node == 'ruleset/rule[@id="x y"]'
    assert uri.node_path("/xcap-root", "") == uri.document_path()
    assert uri.directory_path() == "/xcap-root/pres-rules/users/sip:alice@home1.net/"


# --- node selector syntax ---------------------------------------------------------------


def test_parse_steps() -> None:
    sel = parse_node_selector(
        'watcherinfo/watcher-list/watcher[2][@id="hh8"]/@status', default_namespace=WI
    )
    assert [s.name for s in sel.steps] == [
        f"{{{WI}}}watcherinfo",
        f"{{{WI}}}watcher-list",
        f"{{{WI}}}watcher",
    ]
    last = sel.steps[-1]
    assert last.position == 2 and last.attr == AttrTest("id", "hh8")
    assert sel.attribute == "status" and not sel.namespaces
    assert sel.element_text == 'watcherinfo/watcher-list/watcher[2][@id="hh8"]'


def test_parse_wildcard_prefix_and_namespace_selector() -> None:
    sel = parse_node_selector(
        "/a:foo/*[3]/namespace::*", default_namespace="urn:d", namespaces={"a": "urn:a"}
    )
    assert sel.steps[0].name == "{urn:a}foo"
    assert sel.steps[1].name is None and sel.steps[1].position == 3
    assert sel.namespaces and sel.attribute is None


def test_parse_attribute_values_with_quotes_slashes_and_references() -> None:
    sel = parse_node_selector("r/e[@uri='sip:a/b@c]d']")
    assert sel.steps[1].attr == AttrTest("uri", "sip:a/b@c]d")
    ref = parse_node_selector('r/e[@v="&lt;&amp;&#65;&#x42;&quot;"]')
    assert ref.steps[1].attr == AttrTest("v", '<&AB"')


def test_prefixed_attribute_and_xml_lang() -> None:
    sel = parse_node_selector(
        'r/e[@p:a="1"]/@xml:lang', default_namespace="", namespaces=[("p", "urn:p")]
    )
    assert sel.steps[1].attr == AttrTest("{urn:p}a", "1")
    assert sel.attribute == "{http://www.w3.org/XML/1998/namespace}lang"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/",
        "@id",
        "a//b",
        "a/b[",
        "a/b]",
        'a/b[@id="x]',
        "a/b[x]",
        "a/b[@id=x]",
        'a/b[@id="1"][2]',
        "a/1b",
        "a/p:b",
        "a/@xmlns",
        'a/b[@v="a&b"]',
        'a/b[@v="a<b"]',
        'a/b[@v="&#0;"]',
        "a/namespace::*/b",
        "a/b()",
    ],
)
def test_bad_node_selectors(text: str) -> None:
    with pytest.raises(XcapError) as info:
        parse_node_selector(text)
    assert info.value.status == 400 and info.value.condition is None


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_any_selector_text_parses_or_raises_xcap_error(text: str) -> None:
    try:
        sel = parse_node_selector(text, default_namespace="urn:d", namespaces={"p": "urn:p"})
    except XcapError as exc:
        assert exc.status == 400
    else:
        assert sel.steps


@settings(max_examples=300)
@given(st.text(max_size=120), st.text(max_size=40))
def test_any_path_parses_or_raises_xcap_error(path: str, query: str) -> None:
    try:
        parse_uri("/xcap-root/" + path, query)
    except XcapError as exc:
        assert exc.status in (400, 404)


# --- selection (RFC 4825 section 6.3 and 6.4 examples) -----------------------------------


def test_select_by_attribute() -> None:
    root = doc(WATCHERINFO)
    node = select(root, wi('watcherinfo/watcher-list/watcher[@id="8ajksjda7s"]'))
    assert isinstance(node, etree._Element)
    assert node.text == "sip:userA@example.net"


def test_select_by_position_and_wildcard() -> None:
    root = doc(WATCHERINFO)
    second = select(root, wi("watcherinfo/watcher-list/watcher[2]"))
    assert isinstance(second, etree._Element) and second.text == "sip:userB@example.org"
    assert select(root, wi("watcherinfo/*/*[2]")) is second
    assert select(root, wi('watcherinfo/watcher-list/watcher[2][@status="pending"]')) is second


def test_select_attribute() -> None:
    root = doc(WATCHERINFO)
    node = select(root, wi('watcherinfo/watcher-list/watcher[@id="8ajksjda7s"]/@status'))
    assert isinstance(node, AttributeNode) and node.value == "active"
    assert render(root, wi("watcherinfo/watcher-list/@package")).body == b"presence"


@pytest.mark.parametrize(
    "text",
    [
        "watcherinfo/watcher-list/watcher",  # two match
        "watcherinfo/watcher-list/watcher[3]",
        'watcherinfo/watcher-list/watcher[1][@status="pending"]',  # position first, then test
        "watcherinfo/watcher-list/watcher[0]",
        "watcher-list",
        "watcherinfo/watcher-list/@nope",
        "watcherinfo/*/watcher[1]/@display-name",
    ],
)
def test_select_nothing_is_404(text: str) -> None:
    with pytest.raises(XcapError) as info:
        select(doc(WATCHERINFO), wi(text))
    assert info.value.status == 404


def test_unprefixed_names_are_in_the_usage_namespace() -> None:
    root = doc(WATCHERINFO)
    with pytest.raises(XcapError):
        select(root, parse_node_selector("watcherinfo", default_namespace="urn:other"))
    sel = parse_node_selector("w:watcherinfo", namespaces={"w": WI})
    assert select(root, sel) is root


def test_namespace_bindings_in_the_query() -> None:
    root = doc(NAMESPACED)
    d = "urn:test:default-namespace"
    first = select(
        root,
        parse_node_selector(
            "foo/a:bar/b:baz",
            default_namespace=d,
            namespaces=parse_xmlns_query(
                "xmlns(a=urn:test:namespace1-uri)xmlns(b=urn:test:namespace1-uri)"
            ),
        ),
    )
    second = select(
        root,
        parse_node_selector(
            "foo/a:bar/b:baz",
            default_namespace=d,
            namespaces={"a": "urn:test:namespace1-uri", "b": "urn:test:namespace2-uri"},
        ),
    )
    assert isinstance(first, etree._Element) and isinstance(second, etree._Element)
    assert first.tag == "{urn:test:namespace1-uri}baz"
    assert second.tag == "{urn:test:namespace2-uri}baz"
    there = select(
        root,
        parse_node_selector(
            "foo/a:hi/there", default_namespace=d, namespaces={"a": "urn:test:namespace3-uri"}
        ),
    )
    assert isinstance(there, etree._Element) and there.tag == f"{{{d}}}there"


def test_render_element_attribute_and_namespaces() -> None:
    root = doc(NAMESPACED)
    sel = parse_node_selector(
        "foo/a:bar/namespace::*",
        default_namespace="urn:test:default-namespace",
        namespaces={"a": "urn:test:namespace1-uri"},
    )
    rendered = render(root, sel)
    assert rendered.content_type == NAMESPACE_TYPE
    holder = etree.fromstring(rendered.body)
    assert holder.nsmap == {None: "urn:test:namespace1-uri", "ns1": "urn:test:namespace1-uri"}
    element = render(doc(WATCHERINFO), wi("watcherinfo/watcher-list/watcher[1]"))
    assert element.content_type == ELEMENT_TYPE
    parsed = etree.fromstring(element.body)  # stands alone: namespace declared
    assert parsed.tag == f"{{{WI}}}watcher" and parsed.get("id") == "8ajksjda7s"
    att = render(doc(WATCHERINFO), wi("watcherinfo/watcher-list/watcher[2]/@display-name"))
    assert att == Rendered(ATTRIBUTE_TYPE, b"Mr. Subscriber")


# --- element PUT (RFC 4825 section 8.2.3) --------------------------------------------------


@pytest.mark.parametrize(
    "selector",
    [
        'root/el1[@att="third"]',
        'root/el1[3][@att="third"]',
        'root/*[3][@att="third"]',
        'root/*[@att="third"]',
    ],
)
def test_insert_after_the_last_sibling_of_that_name(selector: str) -> None:
    root = doc(START)
    edit = put_element(root, app(selector), b'<el1 att="third"/>')
    assert edit.created
    assert atts(edit.root) == [
        ("el1", "first"),
        ("el1", "second"),
        ("el1", "third"),
        ("el2", "first"),
    ]
    assert atts(root) == [("el1", "first"), ("el1", "second"), ("el2", "first")]  # untouched


def test_insert_new_name_goes_last() -> None:
    edit = put_element(doc(START), app("root/el3"), b'<el3 att="x"/>')
    assert atts(edit.root)[-1] == ("el3", "x")
    assert b'<el2 att="first"/>\n  <el3 att="x"/>\n</root>' in etree.tostring(edit.root)


def test_insert_by_position() -> None:
    first = put_element(doc(START), app('root/el2[1][@att="2"]'), b'<el2 att="2"/>')
    assert atts(first.root)[2:] == [("el2", "2"), ("el2", "first")]
    star = put_element(doc(START), app('root/*[2][@att="2"]'), b'<el2 att="2"/>')
    assert atts(star.root)[:2] == [("el1", "first"), ("el2", "2")]
    after = put_element(doc(START), app('root/el2[2][@att="2"]'), b'<el2 att="2"/>')
    assert atts(after.root)[-1] == ("el2", "2")


@pytest.mark.parametrize(
    ("selector", "body"),
    [
        ('root/el1[4][@att="third"]', b'<el1 att="third"/>'),  # past the end
        ('root/*[0][@att="third"]', b'<el1 att="third"/>'),
        ('root/el1[@att="third"]', b'<el1 att="fourth"/>'),  # body does not match
        ('root/el1[3][@att="third"]', b'<el1 att="fourth"/>'),
        ('root/*[3][@att="third"]', b'<el1 att="fourth"/>'),
        ("root/el3", b"<el4/>"),
        ('root/el1[@att="first"]', b'<el1 att="third"/>'),  # replacement that would not match
        ("root/el1", b"<el1/>"),  # ambiguous
        ("other", b"<other/>"),  # a second root
    ],
)
def test_cannot_insert(selector: str, body: bytes) -> None:
    root = doc(START)
    before = etree.tostring(root)
    with pytest.raises(XcapError) as info:
        put_element(root, app(selector), body)
    assert (info.value.status, info.value.condition) == (409, "cannot-insert")
    assert etree.tostring(root) == before


def test_replace_by_position() -> None:
    for selector in ("root/el1[1]", "root/*[1]"):
        edit = put_element(doc(START), app(selector), b'<el1 att="third"/>')
        assert not edit.created
        assert atts(edit.root) == [("el1", "third"), ("el1", "second"), ("el2", "first")]


def test_replace_root() -> None:
    edit = put_element(doc(START), app("root"), b'<root xmlns="test-app"><el9/></root>')
    assert not edit.created and atts(edit.root) == [("el9", None)]


def test_no_parent_names_the_closest_ancestor() -> None:
    with pytest.raises(XcapError) as info:
        put_element(doc(START), app('root/el2[@att="first"]/a/b'), b"<b/>")
    err = info.value
    assert (err.status, err.condition, err.ancestor) == (409, "no-parent", 'root/el2[@att="first"]')
    body = err.body("http://xcap.home1.net/xcap-root/x/users/u/index/~~/root")
    assert body is not None
    parsed = xcaperror.parse(body)
    assert parsed.condition == "no-parent"
    assert parsed.ancestor == "http://xcap.home1.net/xcap-root/x/users/u/index/~~/root"


def test_fragment_uses_the_namespaces_in_scope() -> None:
    root = doc(b'<r xmlns="urn:d" xmlns:p="urn:p"><p:x/></r>')
    edit = put_element(
        root, parse_node_selector("r/y", default_namespace="urn:d"), b'<y p:a="1"><p:z/></y>'
    )
    y = edit.root[1]
    assert y.tag == "{urn:d}y" and y.get("{urn:p}a") == "1" and y[0].tag == "{urn:p}z"
    own_sel = parse_node_selector("r/q:y", default_namespace="urn:d", namespaces={"q": "urn:q"})
    own = put_element(root, own_sel, b'<y xmlns="urn:q"/>')
    assert own.root[1].tag == "{urn:q}y"


@pytest.mark.parametrize(
    ("body", "condition"),
    [
        (b"<a/><b/>", "not-xml-frag"),
        (b"text<a/>", "not-xml-frag"),
        (b"<a/>tail", "not-xml-frag"),
        (b"<a>", "not-xml-frag"),
        (b"", "not-xml-frag"),
        (b'<?xml version="1.0"?><a/>', "not-xml-frag"),
        (b"</xcap-fragment><xcap-fragment>", "not-xml-frag"),
        (b"<a>\xff</a>", "not-utf-8"),
        (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "not-xml-frag"),
    ],
)
def test_bad_fragments(body: bytes, condition: str) -> None:
    with pytest.raises(XcapError) as info:
        parse_fragment(body, {None: "urn:d"})
    assert (info.value.status, info.value.condition) == (409, condition)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_fragment_bytes_parse_or_raise_xcap_error(data: bytes) -> None:
    try:
        element = parse_fragment(data)
    except XcapError as exc:
        assert exc.status in (409, 413)
    else:
        assert isinstance(element.tag, str)


# --- element DELETE (RFC 4825 section 8.2.5) -----------------------------------------------


def test_delete_element() -> None:
    root = doc(START)
    edit = delete_element(root, app('root/el1[@att="second"]'))
    assert atts(edit.root) == [("el1", "first"), ("el2", "first")]
    assert b'<el1 att="first"/>\n  <el2' in etree.tostring(edit.root)
    assert len(root) == 3


def test_delete_that_would_select_another_element_is_refused() -> None:
    with pytest.raises(XcapError) as info:
        delete_element(doc(START), app("root/el1[1]"))
    assert (info.value.status, info.value.condition) == (409, "cannot-delete")
    # the last one of its name can go by position
    assert atts(delete_element(doc(START), app("root/el2[1]")).root)[-1] == ("el1", "second")


def test_delete_root_and_missing() -> None:
    with pytest.raises(XcapError) as info:
        delete_element(doc(START), app("root"))
    assert info.value.condition == "cannot-delete"
    with pytest.raises(XcapError) as missing:
        delete_node(doc(START), app("root/el9"))
    assert missing.value.status == 404


@settings(max_examples=100)
@given(st.from_regex(r"[a-z][a-z0-9_.\-]{0,15}", fullmatch=True))
def test_insert_then_delete_restores_the_document(value: str) -> None:
    assume(value not in ("first", "second"))
    root = doc(START)
    sel = app(f'root/el1[@att="{value}"]')
    edit = put_element(root, sel, f'<el1 att="{value}"/>'.encode())
    assert edit.created and select(edit.root, sel) is not None
    back = delete_element(edit.root, sel)
    assert etree.tostring(back.root) == etree.tostring(root)


# --- attributes ---------------------------------------------------------------------------


def test_put_attribute_creates_and_replaces() -> None:
    root = doc(START)
    created = put_attribute(root, app('root/el2[@att="first"]/@new'), b"a&amp;b&lt;c&quot;")
    assert created.created and created.root[2].get("new") == 'a&b<c"'
    replaced = put_attribute(root, app("root/el1[2]/@att"), b"deux")
    assert not replaced.created and replaced.root[1].get("att") == "deux"
    assert root[1].get("att") == "second"


def test_put_attribute_errors() -> None:
    with pytest.raises(XcapError) as no_el:
        put_attribute(doc(START), app("root/el9/@a"), b"1")
    assert (no_el.value.condition, no_el.value.ancestor) == ("no-parent", "root")
    with pytest.raises(XcapError) as moved:
        put_attribute(doc(START), app('root/el1[@att="first"]/@att'), b"other")
    assert moved.value.condition == "cannot-insert"
    for body in (b"a<b", b"a&b", b"&undefined;", b"\xff"):
        with pytest.raises(XcapError) as bad:
            put_node(doc(START), app("root/el2/@a"), body)
        assert bad.value.condition in ("not-xml-att-value", "not-utf-8")


def test_delete_attribute() -> None:
    edit = delete_attribute(doc(START), app("root/el2/@att"))
    assert edit.root[2].get("att") is None
    with pytest.raises(XcapError) as info:
        delete_node(doc(START), app("root/el2/@nope"))
    assert info.value.status == 404


def test_namespace_selector_is_read_only() -> None:
    with pytest.raises(XcapError) as info:
        put_node(doc(START), app("root/namespace::*"), b"<x/>")
    assert info.value.status == 405


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_attribute_value_round_trip(value: str) -> None:
    assert parse_attribute_value(attribute_value_bytes(value)) == value


def test_attribute_value_keeps_whitespace_characters() -> None:
    assert parse_attribute_value(attribute_value_bytes("a\tb\nc")) == "a\tb\nc"
