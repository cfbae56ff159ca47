"""XCAP application usages (RFC 4825 section 5): what each AUID holds and how it is checked.

* ``pres-rules`` (RFC 5025): ``application/auth-policy+xml``, default namespace
  ``urn:ietf:params:xml:ns:common-policy``; rule ids unique.
* ``resource-lists`` (RFC 4826): ``application/resource-lists+xml``; list names
  unique among sibling lists, entry URIs, entry-ref refs and external anchors
  unique within their list.
* ``xcap-caps`` (RFC 4825 section 12): the read-only global document ``index``
  listing the AUIDs and namespaces this server understands.

Every write is checked by :meth:`ApplicationUsage.validate` in this order:
root element, uniqueness constraints (``uniqueness-failure``), schema
(``schema-validation-error``, against the bundled XSDs of
:mod:`presence_ims.documents.validate`), and the document model the Presence
Server reads (``constraint-failure`` when the document parser refuses it).
Failures are :class:`~.selector.XcapError` with status 409.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from lxml import etree

from ...documents import presrules, resourcelists, validate
from ...documents.xcaperror import XCAP_ERROR_NS, Exists
from ...documents.xml import DEFAULT_MAX_SIZE, DocumentError, parse_xml, serialize
from .selector import XcapError

__all__ = [
    "PRES_RULES",
    "RESOURCE_LISTS",
    "XCAP_CAPS",
    "XCAP_CAPS_NS",
    "ApplicationUsage",
    "default_usages",
    "parse_document",
    "xcap_caps_document",
]

XCAP_CAPS_NS = "urn:ietf:params:xml:ns:xcap-caps"


def parse_document(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> etree._Element:
    """Parse a whole-document PUT body: UTF-8 and well-formed, else 409.

    Raises :class:`XcapError` 409 ``not-utf-8`` (bytes or declared encoding)
    or ``not-well-formed``; 413 when larger than ``max_size``.
    """
    if len(data) > max_size:
        raise XcapError(413, None, f"document larger than {max_size} bytes")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise XcapError(409, "not-utf-8", "the document is not UTF-8") from None
    try:
        root = parse_xml(data, max_size=max_size)
    except DocumentError as exc:
        raise XcapError(409, "not-well-formed", exc.reason) from None
    encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper()
    if encoding not in ("UTF-8", "UTF8"):
        raise XcapError(409, "not-utf-8", f"the document declares encoding {encoding}")
    return root


def _unique(values: Iterable[str], field_selector: str, what: str) -> None:
    """409 uniqueness-failure when a value repeats (alt-value: a free variant)."""
    items = list(values)
    counts = Counter(items)
    for value, count in counts.items():
        if count > 1:
            taken = set(items)
            n = 2
            while f"{value}-{n}" in taken:
                n += 1
            raise XcapError(
                409,
                "uniqueness-failure",
                f"{what} {value!r} is not unique",
                exists=(Exists(field_selector, (f"{value}-{n}",)),),
            )


def _check_pres_rules(root: etree._Element) -> None:
    rule = f"{{{presrules.CP_NS}}}rule"
    _unique(
        (el.get("id") or "" for el in root if el.tag == rule and el.get("id")),
        "ruleset/rule/@id",
        "rule id",
    )


def _check_resource_lists(root: etree._Element) -> None:
    ns = resourcelists.RESOURCE_LISTS_NS
    tag_list, tag_entry = f"{{{ns}}}list", f"{{{ns}}}entry"
    tag_ref, tag_external = f"{{{ns}}}entry-ref", f"{{{ns}}}external"

    def check(parent: etree._Element, path: str) -> None:
        children = [c for c in parent if isinstance(c.tag, str)]
        _unique(
            (c.get("name") or "" for c in children if c.tag == tag_list and c.get("name")),
            f"{path}/list/@name",
            "list name",
        )
        if parent is not root:
            for tag, attr, what in (
                (tag_entry, "uri", "entry uri"),
                (tag_ref, "ref", "entry-ref ref"),
                (tag_external, "anchor", "external anchor"),
            ):
                local = tag.rpartition("}")[2]
                _unique(
                    (c.get(attr) or "" for c in children if c.tag == tag and c.get(attr)),
                    f"{path}/{local}/@{attr}",
                    what,
                )
        for child in children:
            if child.tag == tag_list:
                check(child, f"{path}/list")

    check(root, "resource-lists")


@dataclass(frozen=True, slots=True)
class ApplicationUsage:
    """One application usage: AUID, namespace, MIME type and its checks."""

    auid: str
    """Application Unique ID (the first path segment under the XCAP root)."""
    namespace: str
    """Default document namespace (given to unprefixed names in node selectors)."""
    mime_type: str
    """MIME type of whole documents."""
    root_element: str
    """Local name of the root element (in ``namespace``)."""
    default_document: str = "index"
    """The document a client uses when it has no reason to pick another name."""
    user_documents: bool = True
    """Users may keep documents of this usage (False: only global documents)."""
    extra_namespaces: tuple[str, ...] = ()
    """Other namespaces the usage understands (advertised in xcap-caps)."""
    semantics: Callable[[etree._Element], None] | None = None
    """Usage-specific constraints (raises XcapError 409)."""
    model: Callable[[bytes], object] | None = None
    """The document parser the Presence Server uses; DocumentError -> constraint-failure."""
    schema: bool = True
    """Validate against the bundled schema of ``namespace``."""
    global_documents: Mapping[str, bytes] = field(default_factory=dict)
    """Read-only documents of the global tree, by name."""

    def validate(self, root: etree._Element) -> None:
        """Raise :class:`XcapError` 409 unless ``root`` is a valid document of this usage."""
        expected = f"{{{self.namespace}}}{self.root_element}"
        if root.tag != expected:
            raise XcapError(
                409,
                "schema-validation-error",
                f"root element must be {self.root_element} in {self.namespace}",
            )
        if self.semantics is not None:
            self.semantics(root)
        if self.schema:
            try:
                found = validate.errors(root)
            except DocumentError as exc:
                raise XcapError(409, "schema-validation-error", exc.reason) from None
            if found:
                raise XcapError(409, "schema-validation-error", found[0])
        if self.model is not None:
            try:
                self.model(serialize(root))
            except DocumentError as exc:
                raise XcapError(409, "constraint-failure", exc.reason) from None


PRES_RULES = ApplicationUsage(
    auid="pres-rules",
    namespace=presrules.CP_NS,
    mime_type=presrules.CONTENT_TYPE,
    root_element="ruleset",
    extra_namespaces=(presrules.PR_NS, presrules.EXT_NS, presrules.OMA_CP_NS),
    semantics=_check_pres_rules,
    model=presrules.parse,
)
"""RFC 5025 presence authorization rules."""

RESOURCE_LISTS = ApplicationUsage(
    auid="resource-lists",
    namespace=resourcelists.RESOURCE_LISTS_NS,
    mime_type=resourcelists.CONTENT_TYPE,
    root_element="resource-lists",
    semantics=_check_resource_lists,
    model=resourcelists.parse,
)
"""RFC 4826 resource lists (buddy lists)."""


def xcap_caps_document(usages: Iterable[ApplicationUsage]) -> bytes:
    """The xcap-caps document (RFC 4825 section 12.2) for these usages (xcap-caps included)."""
    items = list(usages)
    auids = ["xcap-caps", *(u.auid for u in items if u.auid != "xcap-caps")]
    namespaces: list[str] = [XCAP_CAPS_NS, XCAP_ERROR_NS]
    for usage in items:
        for ns in (usage.namespace, *usage.extra_namespaces):
            if ns not in namespaces:
                namespaces.append(ns)
    root = etree.Element(f"{{{XCAP_CAPS_NS}}}xcap-caps", nsmap={None: XCAP_CAPS_NS})  # type: ignore[dict-item]
    auids_el = etree.SubElement(root, f"{{{XCAP_CAPS_NS}}}auids")
    for auid in auids:
        etree.SubElement(auids_el, f"{{{XCAP_CAPS_NS}}}auid").text = auid
    ns_el = etree.SubElement(root, f"{{{XCAP_CAPS_NS}}}namespaces")
    for ns in namespaces:
        etree.SubElement(ns_el, f"{{{XCAP_CAPS_NS}}}namespace").text = ns
    etree.indent(root, space="  ")
    return serialize(root)


def _caps_usage(usages: Iterable[ApplicationUsage]) -> ApplicationUsage:
    return ApplicationUsage(
        auid="xcap-caps",
        namespace=XCAP_CAPS_NS,
        mime_type="application/xcap-caps+xml",
        root_element="xcap-caps",
        user_documents=False,
        schema=False,
        global_documents={"index": xcap_caps_document(usages)},
    )


XCAP_CAPS = _caps_usage((PRES_RULES, RESOURCE_LISTS))
"""The server's capabilities (pres-rules and resource-lists)."""


def default_usages() -> dict[str, ApplicationUsage]:
    """AUID -> usage for the usages this server offers."""
    return {usage.auid: usage for usage in (XCAP_CAPS, PRES_RULES, RESOURCE_LISTS)}
