"""XCAP URIs and node selectors (RFC 4825 sections 6 and 8), sans-IO over lxml trees.

An XCAP URI is the XCAP root, a *document selector* and an optional *node
selector* after the ``~~`` separator segment, with namespace bindings in the
query (RFC 4825 section 6.4)::

    /xcap-root/pres-rules/users/sip:alice@home1.net/index/~~/ruleset/rule%5b@id=%22a%22%5d
    /xcap-root/xcap-caps/global/index
    ...?xmlns(cp=urn:ietf:params:xml:ns:common-policy)

:func:`parse_uri` splits and percent-decodes such a path;
:func:`parse_node_selector` reads the node selector (section 6.3)::

    node-selector      = element-selector ["/" terminal-selector]
    terminal-selector  = attribute-selector / namespace-selector
    element-selector   = step *( "/" step)
    step               = by-name / by-pos / by-attr / by-pos-attr
    by-name            = NameorAny
    by-pos             = NameorAny "[" position "]"
    by-attr            = NameorAny "[" attr-test "]"
    by-pos-attr        = NameorAny "[" position "]" "[" attr-test "]"
    attr-test          = "@" att-name "=" att-value
    NameorAny          = QName / "*"
    attribute-selector = "@" att-name
    namespace-selector = "namespace::*"

Unprefixed element names are in the application usage's default namespace;
unprefixed attribute names are in no namespace (as in XML). Every step must
select exactly one element.

The edit functions (:func:`put_element`, :func:`delete_element`,
:func:`put_attribute`, :func:`delete_attribute`) never modify the tree they are
given: they return an :class:`Edit` holding a changed copy, after checking that
the node selector evaluated on the result selects the new node (PUT, RFC 4825
section 8.2.3, else ``cannot-insert``) or nothing (DELETE, section 8.2.5, else
``cannot-delete``). Every failure is an :class:`XcapError` carrying the HTTP
status, the ``application/xcap-error+xml`` condition when there is one, and a
short reason.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from lxml import etree

from ...documents import xcaperror
from ...documents.xml import DEFAULT_MAX_SIZE, DocumentError, parse_xml

__all__ = [
    "ATTRIBUTE_TYPE",
    "ELEMENT_TYPE",
    "NAMESPACE_TYPE",
    "AttrTest",
    "AttributeNode",
    "Edit",
    "NodeSelector",
    "Rendered",
    "Step",
    "XcapError",
    "XcapUri",
    "attribute_value_bytes",
    "delete_attribute",
    "delete_element",
    "delete_node",
    "element_bytes",
    "parse_attribute_value",
    "parse_fragment",
    "parse_node_selector",
    "parse_uri",
    "parse_xmlns_query",
    "put_attribute",
    "put_element",
    "put_node",
    "render",
    "select",
]

ELEMENT_TYPE = "application/xcap-el+xml"
"""MIME type of an element (RFC 4825 section 15.2.1)."""
ATTRIBUTE_TYPE = "application/xcap-att+xml"
"""MIME type of an attribute value (section 15.2.2)."""
NAMESPACE_TYPE = "application/xcap-ns+xml"
"""MIME type of namespace bindings (section 15.2.3)."""

XML_NS = "http://www.w3.org/XML/1998/namespace"
_MAX_SELECTOR = 4096
_MAX_STEPS = 64

_REASON_MAX = 160


class XcapError(Exception):
    """An XCAP request that cannot be served: HTTP ``status``, XCAP ``condition``, ``reason``.

    ``condition`` is the child element of ``<xcap-error>`` (``cannot-insert``,
    ``no-parent`` ...) for 409 responses, None otherwise. ``ancestor`` (for
    ``no-parent``) is the node selector of the closest existing ancestor, ``""``
    for the document itself, None for the user's directory; the server turns it
    into an HTTP URI. ``exists`` (for ``uniqueness-failure``) names the fields.
    """

    def __init__(
        self,
        status: int,
        condition: xcaperror.Condition | None,
        reason: str,
        *,
        ancestor: str | None = None,
        exists: tuple[xcaperror.Exists, ...] = (),
    ) -> None:
        cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in reason)
        if len(cleaned) > _REASON_MAX:
            cleaned = cleaned[: _REASON_MAX - 3] + "..."
        super().__init__(f"{status} {condition or ''} {cleaned}".replace("  ", " "))
        self.status = status
        """HTTP status (400, 404, 409, 415 ...)."""
        self.condition = condition
        """The xcap-error condition, None when the response has no xcap-error body."""
        self.reason = cleaned
        """Short printable ASCII reason."""
        self.ancestor = ancestor
        """no-parent: node selector of the closest existing ancestor ("" = the document)."""
        self.exists = exists
        """uniqueness-failure: the non-unique fields."""

    def body(self, ancestor_uri: str | None = None) -> bytes | None:
        """The ``application/xcap-error+xml`` body (None without a condition)."""
        if self.condition is None:
            return None
        error = xcaperror.XcapError(
            self.condition,
            phrase=self.reason or None,
            ancestor=ancestor_uri if self.condition == "no-parent" else None,
            exists=self.exists if self.condition == "uniqueness-failure" else (),
        )
        try:
            return xcaperror.build(error)
        except DocumentError:  # e.g. uniqueness-failure without a field: keep the condition
            return xcaperror.build(xcaperror.XcapError("constraint-failure", phrase=self.reason))


def _bad(reason: str) -> XcapError:
    return XcapError(400, None, reason)


def _not_found(reason: str) -> XcapError:
    return XcapError(404, None, reason)


# --- URIs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XcapUri:
    """A request URI split into its parts (all percent-decoded)."""

    auid: str
    """Application Unique ID (``pres-rules``, ``resource-lists``, ``xcap-caps``)."""
    xui: str | None
    """The user (XCAP User Identifier, e.g. ``sip:alice@home1.net``); None: global tree."""
    document: str
    """Document name within the user's (or the global) directory, e.g. ``index``."""
    node: str | None = None
    """Node selector text (after ``~~``), None when the URI names a whole document."""
    namespaces: tuple[tuple[str, str], ...] = ()
    """Prefix bindings from the query's ``xmlns()`` parts."""

    @property
    def is_global(self) -> bool:
        """The URI is in the global tree."""
        return self.xui is None

    @property
    def key(self) -> str:
        """Storage key ``auid/xui/document`` (``auid/global/document`` in the global tree)."""
        return f"{self.auid}/{self.xui if self.xui is not None else 'global'}/{self.document}"

    def directory_path(self, root: str = "/xcap-root") -> str:
        """Percent-encoded path of the directory holding the document (ends with ``/``)."""
        base = root.rstrip("/")
        if self.xui is None:
            return f"{base}/{_seg(self.auid)}/global/"
        return f"{base}/{_seg(self.auid)}/users/{_seg(self.xui)}/"

    def document_path(self, root: str = "/xcap-root") -> str:
        """Percent-encoded path of the document."""
        return self.directory_path(root) + _seg(self.document)

    def node_path(self, root: str, selector: str) -> str:
        """Percent-encoded path of ``selector`` in this document ("" = the document)."""
        if not selector:
            return self.document_path(root)
        return self.document_path(root) + "/~~/" + quote(selector, safe="/:@=*")


def _seg(value: str) -> str:
    return quote(value, safe=":@!$&'()*+,;=")


def _decode(text: str, what: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _bad(f"{what} is not UTF-8 after percent-decoding") from None


def parse_uri(path: str, query: str = "", *, root: str = "/xcap-root") -> XcapUri:
    """Split a request path (percent-encoded, as sent) under ``root`` into an :class:`XcapUri`.

    A ``?query`` left on ``path`` is split off and used when ``query`` is empty.
    Raises :class:`XcapError` 404 for paths that name no document, 400 for
    malformed ones.
    """
    if "?" in path:
        path, _, rest = path.partition("?")
        query = query or rest
    base = root.rstrip("/")
    if not path.startswith(base + "/"):
        raise _not_found("not under the XCAP root")
    rest = path[len(base) + 1 :]
    node: str | None = None
    doc_part, sep, node_part = rest.partition("/~~/")
    if not sep and doc_part.endswith("/~~"):
        doc_part, node_part, sep = doc_part[:-3], "", "/~~/"
    if sep:
        node = _decode(node_part, "node selector")
        if not node.strip("/"):
            raise _bad("empty node selector")
    segments = doc_part.split("/")
    if len(segments) < 3 or not segments[0]:
        raise _not_found("no document selected")
    auid = _decode(segments[0], "AUID")
    tree = segments[1]
    if tree == "users":
        if len(segments) != 4:
            raise _not_found("documents are one level under the user's directory")
        xui: str | None = _decode(segments[2], "XUI")
        document = _decode(segments[3], "document name")
        if not xui:
            raise _not_found("empty XUI")
    elif tree == "global":
        if len(segments) != 3:
            raise _not_found("documents are one level under the global directory")
        xui = None
        document = _decode(segments[2], "document name")
    else:
        raise _not_found("neither users nor global tree")
    if not document or document in (".", "..") or "/" in document or "~~" == document:
        raise _not_found("no document selected")
    namespaces = parse_xmlns_query(_decode(query, "query")) if query else ()
    return XcapUri(auid, xui, document, node, namespaces)


def parse_xmlns_query(query: str) -> tuple[tuple[str, str], ...]:
    """Namespace bindings from an XPointer-style query: ``xmlns(p=urn)xmlns(q=urn2)``.

    ``^`` escapes ``(``, ``)`` and ``^`` inside a part (XPointer framework).
    """
    bindings: list[tuple[str, str]] = []
    i, n = 0, len(query)
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        if not query.startswith("xmlns(", i):
            raise _bad("query is not a list of xmlns() bindings")
        i += len("xmlns(")
        chars: list[str] = []
        while True:
            if i >= n:
                raise _bad("unterminated xmlns() binding")
            ch = query[i]
            if ch == "^" and i + 1 < n and query[i + 1] in "()^":
                chars.append(query[i + 1])
                i += 2
                continue
            if ch == ")":
                i += 1
                break
            if ch == "(":
                raise _bad("unescaped ( in xmlns() binding")
            chars.append(ch)
            i += 1
        prefix, eq, uri = "".join(chars).partition("=")
        prefix, uri = prefix.strip(), uri.strip()
        if not eq or not _NCNAME.fullmatch(prefix) or not uri:
            raise _bad("malformed xmlns() binding")
        bindings.append((prefix, uri))
    return tuple(bindings)


# --- node selectors --------------------------------------------------------------------

_NCNAME_TEXT = r"[^\W\d][\w.\-]*"
_NCNAME = re.compile(_NCNAME_TEXT)
_QNAME_TEXT = rf"(?:{_NCNAME_TEXT}:)?{_NCNAME_TEXT}"
_QNAME = re.compile(_QNAME_TEXT)
_STEP = re.compile(
    rf"(?P<name>\*|{_QNAME_TEXT})"
    r"(?:\[(?P<pos>[0-9]{1,9})\])?"
    rf"(?:\[@(?P<attr>{_QNAME_TEXT})=(?P<val>\"[^\"]*\"|'[^']*')\])?"
)
_REFERENCE = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#x([0-9A-Fa-f]{1,6}));")
_PREDEFINED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


@dataclass(frozen=True, slots=True)
class AttrTest:
    """``[@name="value"]``."""

    name: str
    """Attribute name in Clark notation (``{ns}local`` or ``local``)."""
    value: str
    """Value (references decoded)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One location step of an element selector."""

    name: str | None
    """Element name in Clark notation; None for ``*``."""
    position: int | None
    """``[n]`` (1-based) among the siblings the name matches; None when absent."""
    attr: AttrTest | None
    """``[@a="v"]`` test; None when absent."""
    text: str
    """The step as written (used to name ancestors)."""


@dataclass(frozen=True, slots=True)
class NodeSelector:
    """A parsed node selector: element steps and an optional terminal selector."""

    steps: tuple[Step, ...]
    """Element steps, the first one selecting the root element."""
    attribute: str | None = None
    """Terminal ``@name`` (Clark notation); None when the selector names an element."""
    namespaces: bool = False
    """Terminal ``namespace::*``."""

    @property
    def element_text(self) -> str:
        """The element selector as written (without the terminal selector)."""
        return "/".join(step.text for step in self.steps)


def _decode_references(value: str) -> str:
    if "<" in value:
        raise _bad("'<' in an attribute value")

    def one(match: re.Match[str]) -> str:
        named, dec, hexa = match.groups()
        if named:
            return _PREDEFINED[named]
        code = int(dec) if dec else int(hexa, 16)
        if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0x10FFFF:
            if not 0xFFFE <= code <= 0xFFFF:
                return chr(code)
        raise _bad("character reference to an invalid character")

    out = _REFERENCE.sub(one, value)
    if "&" in _REFERENCE.sub("", value):
        raise _bad("'&' that is not a reference in an attribute value")
    return out


def _split_steps(text: str) -> list[str]:
    """Split on ``/`` outside predicates (quoted values may hold ``/`` and ``]``)."""
    parts: list[str] = []
    buf: list[str] = []
    quote_char: str | None = None
    depth = 0
    for ch in text:
        if quote_char is not None:
            buf.append(ch)
            if ch == quote_char:
                quote_char = None
            continue
        if ch in "\"'" and depth:
            quote_char = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise _bad("unbalanced ] in node selector")
        elif ch == "/" and not depth:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if quote_char is not None or depth:
        raise _bad("unterminated predicate in node selector")
    parts.append("".join(buf))
    return parts


def _resolve(qname: str, default: str, bindings: Mapping[str, str]) -> str:
    prefix, colon, local = qname.partition(":")
    if not colon:
        return f"{{{default}}}{qname}" if default else qname
    if prefix == "xml":
        return f"{{{XML_NS}}}{local}"
    uri = bindings.get(prefix)
    if uri is None:
        raise _bad(f"prefix {prefix!r} has no xmlns() binding in the query")
    return f"{{{uri}}}{local}"


def _attribute_name(qname: str, bindings: Mapping[str, str]) -> str:
    if qname == "xmlns" or qname.startswith("xmlns:"):
        raise _bad("namespace declarations are not attributes")
    return _resolve(qname, "", bindings)


def parse_node_selector(
    text: str,
    *,
    default_namespace: str = "",
    namespaces: Mapping[str, str] | Sequence[tuple[str, str]] = (),
) -> NodeSelector:
    """Parse a (percent-decoded) node selector.

    ``default_namespace`` is the application usage's default document
    namespace, given to unprefixed element names; ``namespaces`` binds the
    prefixes (from :func:`parse_xmlns_query`). Raises :class:`XcapError` 400.
    """
    bindings = dict(namespaces)
    if len(text) > _MAX_SELECTOR:
        raise _bad("node selector too long")
    parts = _split_steps(text[1:] if text.startswith("/") else text)
    if len(parts) > _MAX_STEPS:
        raise _bad("node selector too deep")
    attribute: str | None = None
    ns_selector = False
    last = parts[-1]
    if last.startswith("@"):
        if not _QNAME.fullmatch(last[1:]):
            raise _bad(f"bad attribute selector {last!r}")
        attribute = _attribute_name(last[1:], bindings)
        parts = parts[:-1]
    elif last == "namespace::*":
        ns_selector = True
        parts = parts[:-1]
    if not parts:
        raise _bad("node selector has no element step")
    steps: list[Step] = []
    for part in parts:
        match = _STEP.fullmatch(part)
        if match is None:
            raise _bad(f"bad node selector step {part[:40]!r}")
        name = match["name"]
        attr: AttrTest | None = None
        if match["attr"] is not None:
            attr = AttrTest(
                _attribute_name(match["attr"], bindings),
                _decode_references(match["val"][1:-1]),
            )
        steps.append(
            Step(
                None if name == "*" else _resolve(name, default_namespace, bindings),
                int(match["pos"]) if match["pos"] is not None else None,
                attr,
                part,
            )
        )
    return NodeSelector(tuple(steps), attribute, ns_selector)


# --- evaluation ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeNode:
    """An attribute selected by a node selector."""

    element: etree._Element
    """The element carrying it."""
    name: str
    """Attribute name (Clark notation)."""
    value: str
    """Its value."""


@dataclass(frozen=True, slots=True)
class Edit:
    """The result of an edit: a changed copy of the document."""

    root: etree._Element
    """Root element of the new document."""
    created: bool
    """A node was created (HTTP 201) rather than replaced or deleted (200)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a GET of a node returns."""

    content_type: str
    """``application/xcap-el+xml``, ``application/xcap-att+xml`` or ``application/xcap-ns+xml``."""
    body: bytes
    """The body."""


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _match(candidates: list[etree._Element], step: Step) -> list[etree._Element]:
    found = [c for c in candidates if step.name is None or c.tag == step.name]
    if step.position is not None:
        pos = step.position
        found = found[pos - 1 : pos] if pos >= 1 else []
    if step.attr is not None:
        test = step.attr
        found = [c for c in found if c.get(test.name) == test.value]
    return found


def _walk(
    root: etree._Element, steps: tuple[Step, ...]
) -> tuple[list[etree._Element], list[etree._Element]]:
    """(elements selected by the leading steps, matches of the step that stopped the walk)."""
    path: list[etree._Element] = []
    candidates = [root]
    for step in steps:
        found = _match(candidates, step)
        if len(found) != 1:
            return path, found
        path.append(found[0])
        candidates = _elements(found[0])
    return path, []


def _ancestor(selector: NodeSelector, resolved: int) -> str:
    return "/".join(step.text for step in selector.steps[:resolved])


def _selected_element(root: etree._Element, selector: NodeSelector) -> etree._Element:
    path, found = _walk(root, selector.steps)
    if len(path) == len(selector.steps):
        return path[-1]
    if found:
        raise _not_found("node selector selects more than one element")
    raise _not_found("no element matches the node selector")


def select(root: etree._Element, selector: NodeSelector) -> etree._Element | AttributeNode:
    """The element or attribute ``selector`` selects in the document ``root``.

    A namespace selector selects its element (see :func:`render`). Raises
    :class:`XcapError` 404 when nothing, or more than one element, matches.
    """
    element = _selected_element(root, selector)
    if selector.attribute is None:
        return element
    value = element.get(selector.attribute)
    if value is None:
        raise _not_found("the element has no such attribute")
    return AttributeNode(element, selector.attribute, value)


def element_bytes(element: etree._Element) -> bytes:
    """An element as ``application/xcap-el+xml`` (with the namespace declarations it needs)."""
    return etree.tostring(element, encoding="UTF-8", xml_declaration=False, with_tail=False)


def attribute_value_bytes(value: str) -> bytes:
    """An attribute value as ``application/xcap-att+xml`` (escaped as in an AttValue)."""
    escaped = (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )
    return escaped.encode("utf-8")


def _namespace_bytes(element: etree._Element) -> bytes:
    nsmap = {prefix: uri for prefix, uri in element.nsmap.items() if prefix != "xml"}
    holder = etree.Element(element.tag, nsmap=nsmap)  # type: ignore[arg-type]
    return etree.tostring(holder, encoding="UTF-8", xml_declaration=False)


def render(root: etree._Element, selector: NodeSelector) -> Rendered:
    """The GET body of a node: element, attribute value or namespace bindings."""
    node = select(root, selector)
    if isinstance(node, AttributeNode):
        return Rendered(ATTRIBUTE_TYPE, attribute_value_bytes(node.value))
    if selector.namespaces:
        return Rendered(NAMESPACE_TYPE, _namespace_bytes(node))
    return Rendered(ELEMENT_TYPE, element_bytes(node))


# --- request bodies --------------------------------------------------------------------


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise XcapError(409, "not-utf-8", "the body is not UTF-8") from None


def _quote_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def parse_fragment(
    data: bytes,
    context: Mapping[str | None, str] | None = None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
) -> etree._Element:
    """Parse an ``application/xcap-el+xml`` body: exactly one element.

    Prefixes (and the default namespace) in scope at the insertion point
    (``context``, an lxml ``nsmap``) apply to the fragment, as they would had it
    been written there. Raises :class:`XcapError` 409 ``not-utf-8`` or
    ``not-xml-frag``.
    """
    if len(data) > max_size:
        raise XcapError(413, None, "element too large")
    text = _utf8(data).lstrip("\ufeff")
    if text.lstrip().startswith("<?xml"):
        raise XcapError(409, "not-xml-frag", "an element fragment has no XML declaration")
    decls = "".join(
        f' xmlns="{_quote_attr(uri)}"'
        if prefix is None
        else f' xmlns:{prefix}="{_quote_attr(uri)}"'
        for prefix, uri in (context or {}).items()
        if prefix != "xml"
    )
    opening = f"<xcap-fragment{decls}>".encode()
    wrapped = opening + text.encode("utf-8") + b"</xcap-fragment>"
    try:
        wrapper = parse_xml(wrapped, max_size=max_size + len(opening) + 20)
    except DocumentError as exc:
        raise XcapError(409, "not-xml-frag", exc.reason) from None
    children = list(wrapper)
    if len(children) != 1 or not isinstance(children[0].tag, str):
        raise XcapError(409, "not-xml-frag", "the body must be exactly one element")
    element = children[0]
    if (wrapper.text or "").strip() or (element.tail or "").strip():
        raise XcapError(409, "not-xml-frag", "text outside the element")
    element.tail = None
    return element


def parse_attribute_value(data: bytes) -> str:
    """Parse an ``application/xcap-att+xml`` body (an XML attribute value, unquoted).

    Raises :class:`XcapError` 409 ``not-utf-8`` or ``not-xml-att-value``.
    """
    text = _utf8(data)
    if "<" in text:
        raise XcapError(409, "not-xml-att-value", "'<' in an attribute value")
    wrapped = b'<v a="' + text.replace('"', "&quot;").encode("utf-8") + b'"/>'
    try:
        holder = parse_xml(wrapped, max_size=len(wrapped))
    except DocumentError:
        raise XcapError(409, "not-xml-att-value", "not an XML attribute value") from None
    return holder.get("a") or ""


# --- edits -----------------------------------------------------------------------------


def _whitespace_before(element: etree._Element) -> str | None:
    previous = element.getprevious()
    text = previous.tail if previous is not None else element.getparent().text  # type: ignore[union-attr]
    return text if text is not None and not text.strip() else None


def _add_after(sibling: etree._Element, element: etree._Element) -> None:
    element.tail = sibling.tail
    if sibling.getnext() is None:  # its tail indents the parent's end tag
        sibling.tail = _whitespace_before(sibling) or sibling.tail
    sibling.addnext(element)


def _add_before(sibling: etree._Element, element: etree._Element) -> None:
    element.tail = _whitespace_before(sibling)
    sibling.addprevious(element)


def _append(parent: etree._Element, element: etree._Element) -> None:
    children = _elements(parent)
    if children:
        _add_after(children[-1], element)
    else:
        parent.append(element)


def _insert(parent: etree._Element, step: Step, element: etree._Element) -> None:
    """Insert ``element`` where ``step`` would select it (RFC 4825 section 8.2.3)."""
    children = _elements(parent)
    if step.position is None:
        same = [c for c in children if c.tag == element.tag]
        if same:
            _add_after(same[-1], element)
        else:
            _append(parent, element)
        return
    siblings = [c for c in children if step.name is None or c.tag == step.name]
    pos = step.position
    if pos < 1 or pos > len(siblings) + 1:
        raise XcapError(409, "cannot-insert", f"no position {pos} to insert at")
    if pos == 1 and siblings:
        _add_before(siblings[0], element)
    elif pos == 1:
        _append(parent, element)
    else:
        _add_after(siblings[pos - 2], element)


def _no_parent(selector: NodeSelector, resolved: int, found: list[etree._Element]) -> XcapError:
    what = "is ambiguous" if found else "does not exist"
    return XcapError(
        409, "no-parent", f"the parent element {what}", ancestor=_ancestor(selector, resolved)
    )


def put_element(
    root: etree._Element,
    selector: NodeSelector,
    fragment: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Edit:
    """Replace the selected element with ``fragment``, or insert it (RFC 4825 section 8.2.3).

    Insertion (when the last step matches nothing but its parent exists): after
    the last sibling of the same name (as the last child when there is none);
    with a position ``[n]``, as the n-th of the siblings the step's name matches.
    The result must be selected by ``selector`` (else 409 ``cannot-insert``).
    """
    if selector.attribute is not None or selector.namespaces:
        raise _bad("an element PUT needs an element selector")
    doc = copy.deepcopy(root)
    steps = selector.steps
    path, found = _walk(doc, steps)
    if len(path) == len(steps):
        target = path[-1]
        parent = target.getparent()
        context = parent.nsmap if parent is not None else None
        element = parse_fragment(fragment, context, max_size=max_size)
        if parent is None:
            doc = element
        else:
            element.tail = target.tail
            parent.replace(target, element)
        created = False
    elif len(path) == len(steps) - 1 and not found:
        if not path:
            raise XcapError(409, "cannot-insert", "the document already has a root element")
        parent = path[-1]
        element = parse_fragment(fragment, parent.nsmap, max_size=max_size)
        _insert(parent, steps[-1], element)
        created = True
    elif len(path) == len(steps) - 1:
        raise XcapError(409, "cannot-insert", "node selector matches more than one element")
    else:
        raise _no_parent(selector, len(path), found)
    again, _ = _walk(doc, steps)
    if len(again) != len(steps) or again[-1] is not element:
        raise XcapError(409, "cannot-insert", "the node selector would not select the new element")
    return Edit(doc, created)


def delete_element(root: etree._Element, selector: NodeSelector) -> Edit:
    """Remove the selected element (RFC 4825 section 8.2.5).

    404 when nothing matches; 409 ``cannot-delete`` for the root element or when
    the selector would still select an element afterwards.
    """
    if selector.attribute is not None or selector.namespaces:
        raise _bad("an element DELETE needs an element selector")
    doc = copy.deepcopy(root)
    target = _selected_element(doc, selector)
    parent = target.getparent()
    if parent is None:
        raise XcapError(409, "cannot-delete", "the root element cannot be deleted")
    before = _whitespace_before(target)
    if before is not None:
        previous = target.getprevious()
        if previous is not None:
            previous.tail = target.tail
        else:
            parent.text = target.tail
    parent.remove(target)
    again, _ = _walk(doc, selector.steps)
    if len(again) == len(selector.steps):
        raise XcapError(409, "cannot-delete", "the node selector would select another element")
    return Edit(doc, False)


def put_attribute(root: etree._Element, selector: NodeSelector, value: bytes) -> Edit:
    """Set the selected attribute to ``value`` (an xcap-att+xml body), creating it if needed.

    409 ``no-parent`` when the element does not exist, ``cannot-insert`` when
    the selector would not select the attribute afterwards.
    """
    name = selector.attribute
    if name is None:
        raise _bad("an attribute PUT needs an attribute selector")
    text = parse_attribute_value(value)
    doc = copy.deepcopy(root)
    path, found = _walk(doc, selector.steps)
    if len(path) != len(selector.steps):
        raise _no_parent(selector, len(path), found)
    element = path[-1]
    created = element.get(name) is None
    try:
        element.set(name, text)
    except ValueError:
        raise XcapError(409, "not-xml-att-value", "not an XML attribute value") from None
    again, _ = _walk(doc, selector.steps)
    if len(again) != len(selector.steps) or again[-1] is not element:
        raise XcapError(409, "cannot-insert", "the node selector would not select the attribute")
    return Edit(doc, created)


def delete_attribute(root: etree._Element, selector: NodeSelector) -> Edit:
    """Remove the selected attribute (404 when absent)."""
    name = selector.attribute
    if name is None:
        raise _bad("an attribute DELETE needs an attribute selector")
    doc = copy.deepcopy(root)
    element = _selected_element(doc, selector)
    if element.get(name) is None:
        raise _not_found("the element has no such attribute")
    del element.attrib[name]
    return Edit(doc, False)


def put_node(
    root: etree._Element, selector: NodeSelector, body: bytes, *, max_size: int = DEFAULT_MAX_SIZE
) -> Edit:
    """:func:`put_attribute` or :func:`put_element` by the selector's terminal (405 for namespaces)."""
    if selector.namespaces:
        raise XcapError(405, None, "namespace bindings are read-only")
    if selector.attribute is not None:
        return put_attribute(root, selector, body)
    return put_element(root, selector, body, max_size=max_size)


def delete_node(root: etree._Element, selector: NodeSelector) -> Edit:
    """:func:`delete_attribute` or :func:`delete_element` by the selector's terminal."""
    if selector.namespaces:
        raise XcapError(405, None, "namespace bindings are read-only")
    if selector.attribute is not None:
        return delete_attribute(root, selector)
    return delete_element(root, selector)
