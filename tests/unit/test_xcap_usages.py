"""XCAP application usages: pres-rules, resource-lists and xcap-caps validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from presence_ims.documents import presrules, resourcelists, xcaperror
from presence_ims.nodes.xcap.selector import XcapError, parse_node_selector, put_element
from presence_ims.nodes.xcap.usages import (
    PRES_RULES,
    RESOURCE_LISTS,
    XCAP_CAPS,
    XCAP_CAPS_NS,
    ApplicationUsage,
    default_usages,
    parse_document,
)

RULES = b"""<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules"
            xmlns:cr="urn:ietf:params:xml:ns:common-policy">
  <cr:rule id="friends">
    <cr:conditions>
      <cr:identity><cr:one id="sip:bob@home1.net"/></cr:identity>
    </cr:conditions>
    <cr:actions><sub-handling>allow</sub-handling></cr:actions>
    <cr:transformations>
      <provide-services><all-services/></provide-services>
      <provide-persons><all-persons/></provide-persons>
      <provide-note>true</provide-note>
    </cr:transformations>
  </cr:rule>
  <cr:rule id="strangers">
    <cr:actions><sub-handling>polite-block</sub-handling></cr:actions>
  </cr:rule>
</cr:ruleset>
"""

LISTS = b"""<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="friends">
    <entry uri="sip:bob@home1.net"><display-name>Bob</display-name></entry>
    <entry uri="sip:carol@home2.net"/>
    <list name="close"><entry uri="sip:bob@home1.net"/></list>
  </list>
  <list name="work">
    <entry uri="sip:bob@home1.net"/>
    <entry-ref ref="resource-lists/users/sip:bob@home1.net/index/~~/resource-lists/list%5b@name=%22a%22%5d"/>
  </list>
</resource-lists>
"""


def failure(usage: ApplicationUsage, data: bytes) -> XcapError:
    with pytest.raises(XcapError) as info:
        usage.validate(parse_document(data))
    assert info.value.status == 409
    return info.value


def parsed_body(error: XcapError) -> xcaperror.XcapError:
    body = error.body()
    assert body is not None
    return xcaperror.parse(body)


# --- whole-document bodies ----------------------------------------------------------------


def test_parse_document_accepts_utf8() -> None:
    root = parse_document(RULES)
    assert root.tag == f"{{{presrules.CP_NS}}}ruleset"
    accented = parse_document('<a xmlns="urn:x">caf\u00e9</a>'.encode())
    assert accented.text == "caf\u00e9"


@pytest.mark.parametrize(
    ("data", "condition"),
    [
        (b"<a>\xe9</a>", "not-utf-8"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><a/>', "not-utf-8"),
        ("<a/>".encode("utf-16"), "not-utf-8"),
        (b"<a><b></a>", "not-well-formed"),
        (b"", "not-well-formed"),
        (b"just text", "not-well-formed"),
        (b'<!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>', "not-well-formed"),
    ],
)
def test_parse_document_refuses(data: bytes, condition: str) -> None:
    with pytest.raises(XcapError) as info:
        parse_document(data)
    assert (info.value.status, info.value.condition) == (409, condition)
    assert parsed_body(info.value).condition == condition


def test_parse_document_size_cap() -> None:
    with pytest.raises(XcapError) as info:
        parse_document(b"<a>" + b"x" * 100 + b"</a>", max_size=50)
    assert info.value.status == 413


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_xcap_error(data: bytes) -> None:
    try:
        root = parse_document(data)
    except XcapError as exc:
        assert exc.status == 409 and exc.condition in ("not-utf-8", "not-well-formed")
    else:
        assert isinstance(root.tag, str)


# --- pres-rules ---------------------------------------------------------------------------


def test_pres_rules_usage() -> None:
    assert PRES_RULES.auid == "pres-rules"
    assert PRES_RULES.namespace == "urn:ietf:params:xml:ns:common-policy"
    assert PRES_RULES.mime_type == "application/auth-policy+xml"
    assert PRES_RULES.default_document == "index"
    PRES_RULES.validate(parse_document(RULES))


def test_pres_rules_duplicate_ids_are_a_uniqueness_failure() -> None:
    data = RULES.replace(b'id="strangers"', b'id="friends"')
    err = failure(PRES_RULES, data)
    assert err.condition == "uniqueness-failure"
    body = parsed_body(err)
    assert body.exists == (xcaperror.Exists("ruleset/rule/@id", ("friends-2",)),)


def test_pres_rules_schema_errors() -> None:
    bad_value = failure(PRES_RULES, RULES.replace(b">allow<", b">maybe<"))
    assert bad_value.condition == "schema-validation-error"
    assert "sub-handling" in bad_value.reason
    unknown = failure(PRES_RULES, RULES.replace(b"<cr:conditions>", b"<cr:conditions><cr:bogus/>"))
    assert unknown.condition == "schema-validation-error"
    no_id = failure(PRES_RULES, RULES.replace(b' id="strangers"', b""))
    assert no_id.condition == "schema-validation-error"


def test_pres_rules_wrong_root() -> None:
    err = failure(PRES_RULES, LISTS)
    assert err.condition == "schema-validation-error" and "ruleset" in err.reason


def test_pres_rules_the_presence_server_cannot_read_is_a_constraint_failure() -> None:
    # Valid against the schema, refused by the rules parser the PS uses.
    data = RULES.replace(
        b'<cr:identity><cr:one id="sip:bob@home1.net"/></cr:identity>',
        b"<cr:identity><cr:many><cr:except/></cr:many></cr:identity>",
    )
    err = failure(PRES_RULES, data)
    assert err.condition == "constraint-failure"
    assert parsed_body(err).condition == "constraint-failure"


def test_pres_rules_element_edit_then_validate() -> None:
    root = parse_document(RULES)
    sel = parse_node_selector('ruleset/rule[@id="family"]', default_namespace=presrules.CP_NS)
    body = (
        b'<cr:rule id="family"><cr:actions><sub-handling>allow</sub-handling></cr:actions>'
        b"</cr:rule>"
    )
    edit = put_element(root, sel, body)
    PRES_RULES.validate(edit.root)
    ruleset = presrules.parse(etree.tostring(edit.root))
    assert [r.id for r in ruleset.rules] == ["friends", "strangers", "family"]
    assert ruleset.rules[-1].actions.sub_handling == "allow"


# --- resource-lists -----------------------------------------------------------------------


def test_resource_lists_usage() -> None:
    assert RESOURCE_LISTS.auid == "resource-lists"
    assert RESOURCE_LISTS.namespace == resourcelists.RESOURCE_LISTS_NS
    assert RESOURCE_LISTS.mime_type == "application/resource-lists+xml"
    RESOURCE_LISTS.validate(parse_document(LISTS))  # one URI in several lists is fine


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b'<entry uri="sip:carol@home2.net"/>', b'<entry uri="sip:bob@home1.net"/>',
         "resource-lists/list/entry/@uri"),
        (b'<list name="work">', b'<list name="friends">', "resource-lists/list/@name"),
        (b'<list name="close">', b'<list name="close"><entry uri="sip:x@y"/></list><list name="close">',
         "resource-lists/list/list/@name"),
        (b'<list name="close"><entry uri="sip:bob@home1.net"/>',
         b'<list name="close"><entry uri="sip:bob@home1.net"/><entry uri="sip:bob@home1.net"/>',
         "resource-lists/list/list/entry/@uri"),
        (b"<entry-ref ", b'<entry-ref ref="x"/><entry-ref ref="x"/><entry-ref ',
         "resource-lists/list/entry-ref/@ref"),
    ],
)  # fmt: skip
def test_resource_lists_uniqueness(old: bytes, new: bytes, field: str) -> None:
    assert old in LISTS
    err = failure(RESOURCE_LISTS, LISTS.replace(old, new, 1))
    assert err.condition == "uniqueness-failure"
    (exists,) = parsed_body(err).exists
    assert exists.field == field and exists.alt_values


def test_resource_lists_schema_error() -> None:
    err = failure(RESOURCE_LISTS, LISTS.replace(b'<entry uri="sip:carol@home2.net"/>', b"<entry/>"))
    assert err.condition == "schema-validation-error"


# --- xcap-caps and the registry ------------------------------------------------------------


def test_xcap_caps_document() -> None:
    assert not XCAP_CAPS.user_documents
    data = XCAP_CAPS.global_documents["index"]
    root = etree.fromstring(data)
    ns = {"c": XCAP_CAPS_NS}
    assert root.tag == f"{{{XCAP_CAPS_NS}}}xcap-caps"
    auids = [el.text for el in root.iterfind("c:auids/c:auid", ns)]
    assert auids == ["xcap-caps", "pres-rules", "resource-lists"]
    namespaces = [el.text for el in root.iterfind("c:namespaces/c:namespace", ns)]
    for expected in (
        XCAP_CAPS_NS,
        xcaperror.XCAP_ERROR_NS,
        presrules.CP_NS,
        presrules.PR_NS,
        resourcelists.RESOURCE_LISTS_NS,
    ):
        assert expected in namespaces
    assert len(namespaces) == len(set(namespaces))


def test_default_usages() -> None:
    usages = default_usages()
    assert set(usages) == {"xcap-caps", "pres-rules", "resource-lists"}
    assert usages["pres-rules"] is PRES_RULES
