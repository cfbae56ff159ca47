"""Resource lists (RFC 4826, ``application/resource-lists+xml``): buddy lists over XCAP.

``parse(data) -> ResourceLists`` and ``build(lists) -> bytes``. A list holds, in
order, entries (a URI and a display name), entry-refs, externals and nested
lists. :func:`entries` flattens a document to its entries for the buddy list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

from .xml import (
    DEFAULT_MAX_SIZE,
    XML_LANG,
    DocumentError,
    clark,
    new_root,
    parse_xml,
    serialize,
    split_clark,
)

__all__ = [
    "CONTENT_TYPE",
    "RESOURCE_LISTS_NS",
    "DisplayName",
    "Entry",
    "EntryRef",
    "External",
    "ResourceList",
    "ResourceLists",
    "build",
    "entries",
    "parse",
]

RESOURCE_LISTS_NS = "urn:ietf:params:xml:ns:resource-lists"
CONTENT_TYPE = "application/resource-lists+xml"


@dataclass(frozen=True, slots=True)
class DisplayName:
    """``<display-name>`` with an optional ``xml:lang``."""

    text: str
    """The name."""
    lang: str | None = None
    """Language tag."""


@dataclass(frozen=True, slots=True)
class Entry:
    """``<entry uri=...>``: one resource (a buddy)."""

    uri: str
    """The resource URI."""
    display_name: DisplayName | None = None
    """Its display name."""


@dataclass(frozen=True, slots=True)
class EntryRef:
    """``<entry-ref ref=...>``: an entry of another document, by XCAP reference."""

    ref: str
    """Relative XCAP URI of the entry."""
    display_name: DisplayName | None = None
    """Display name."""


@dataclass(frozen=True, slots=True)
class External:
    """``<external anchor=...>``: a list held elsewhere."""

    anchor: str | None
    """Absolute HTTP URI of the list."""
    display_name: DisplayName | None = None
    """Display name."""


@dataclass(frozen=True, slots=True)
class ResourceList:
    """``<list>``: a named list of items (entries, references, externals, lists)."""

    name: str | None = None
    """The list's name (unique among siblings)."""
    display_name: DisplayName | None = None
    """Display name."""
    items: tuple[Entry | EntryRef | External | ResourceList, ...] = ()
    """Items in document order."""


@dataclass(frozen=True, slots=True)
class ResourceLists:
    """``<resource-lists>``."""

    lists: tuple[ResourceList, ...] = ()
    """Top-level lists."""


def _q(local: str) -> str:
    return clark(RESOURCE_LISTS_NS, local)


_T_DISPLAY = _q("display-name")


def _display(el: etree._Element) -> DisplayName:
    if len(el):
        raise DocumentError("display-name must be text")
    return DisplayName(el.text or "", el.get(XML_LANG))


def _children(el: etree._Element, what: str) -> tuple[DisplayName | None, list[etree._Element]]:
    display: DisplayName | None = None
    rest: list[etree._Element] = []
    for child in el:
        if split_clark(child.tag)[0] != RESOURCE_LISTS_NS:
            continue  # extension elements: not modelled
        if child.tag == _T_DISPLAY:
            if display is not None or rest:
                raise DocumentError(f"misplaced display-name in {what}")
            display = _display(child)
        else:
            rest.append(child)
    return display, rest


def _leaf(el: etree._Element, what: str) -> DisplayName | None:
    display, rest = _children(el, what)
    if rest:
        raise DocumentError(f"unexpected element in {what}: {rest[0].tag}")
    return display


def _parse_list(el: etree._Element, depth: int) -> ResourceList:
    if depth > 32:
        raise DocumentError("resource lists nested too deeply")
    display, rest = _children(el, "list")
    items: list[Entry | EntryRef | External | ResourceList] = []
    names: set[str] = set()
    for child in rest:
        local = split_clark(child.tag)[1]
        if local == "entry":
            uri = (child.get("uri") or "").strip()
            if not uri:
                raise DocumentError("entry has no uri")
            items.append(Entry(uri, _leaf(child, "entry")))
        elif local == "entry-ref":
            ref = (child.get("ref") or "").strip()
            if not ref:
                raise DocumentError("entry-ref has no ref")
            items.append(EntryRef(ref, _leaf(child, "entry-ref")))
        elif local == "external":
            items.append(External(child.get("anchor"), _leaf(child, "external")))
        elif local == "list":
            sub = _parse_list(child, depth + 1)
            if sub.name is not None:
                if sub.name in names:
                    raise DocumentError(f"duplicate list name {sub.name}")
                names.add(sub.name)
            items.append(sub)
        else:
            raise DocumentError(f"unexpected element in list: {local}")
    return ResourceList(el.get("name"), display, tuple(items))


def parse(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> ResourceLists:
    """Parse a resource-lists document."""
    root = parse_xml(data, max_size=max_size)
    if root.tag != _q("resource-lists"):
        raise DocumentError(f"not a resource-lists document: root is {root.tag}")
    lists: list[ResourceList] = []
    names: set[str] = set()
    for child in root:
        if child.tag != _q("list"):
            raise DocumentError(f"unexpected element in resource-lists: {child.tag}")
        item = _parse_list(child, 0)
        if item.name is not None:
            if item.name in names:
                raise DocumentError(f"duplicate list name {item.name}")
            names.add(item.name)
        lists.append(item)
    return ResourceLists(tuple(lists))


def _build_display(parent: etree._Element, display: DisplayName | None) -> None:
    if display is None:
        return
    el = etree.SubElement(parent, _T_DISPLAY)
    el.text = display.text
    if display.lang is not None:
        el.set(XML_LANG, display.lang)


def _build_list(parent: etree._Element, item: ResourceList, depth: int) -> None:
    if depth > 32:
        raise DocumentError("resource lists nested too deeply")
    el = etree.SubElement(parent, _q("list"))
    if item.name is not None:
        el.set("name", item.name)
    _build_display(el, item.display_name)
    for child in item.items:
        if isinstance(child, Entry):
            if not child.uri.strip():
                raise DocumentError("entry has no uri")
            sub = etree.SubElement(el, _q("entry"))
            sub.set("uri", child.uri)
        elif isinstance(child, EntryRef):
            if not child.ref.strip():
                raise DocumentError("entry-ref has no ref")
            sub = etree.SubElement(el, _q("entry-ref"))
            sub.set("ref", child.ref)
        elif isinstance(child, External):
            sub = etree.SubElement(el, _q("external"))
            if child.anchor is not None:
                sub.set("anchor", child.anchor)
        else:
            _build_list(el, child, depth + 1)
            continue
        _build_display(sub, child.display_name)


def build(lists: ResourceLists) -> bytes:
    """Serialise ``lists`` (``application/resource-lists+xml``)."""
    root = new_root(_q("resource-lists"), {None: RESOURCE_LISTS_NS})
    for item in lists.lists:
        _build_list(root, item, 0)
    return serialize(root)


def entries(lists: ResourceLists | ResourceList) -> Iterator[Entry]:
    """Every entry, depth first, in document order (entry-refs and externals skipped)."""
    items = lists.lists if isinstance(lists, ResourceLists) else lists.items
    for item in items:
        if isinstance(item, Entry):
            yield item
        elif isinstance(item, ResourceList):
            yield from entries(item)
