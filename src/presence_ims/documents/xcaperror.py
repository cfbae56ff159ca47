"""XCAP error bodies (RFC 4825 section 11, ``application/xcap-error+xml``).

``build(error) -> bytes`` for the XCAP server's 409 responses, and
``parse(data) -> XcapError`` for clients and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxml import etree

from .xml import (
    DEFAULT_MAX_SIZE,
    DocumentError,
    clark,
    new_root,
    parse_xml,
    serialize,
    split_clark,
)

__all__ = ["CONDITIONS", "CONTENT_TYPE", "XCAP_ERROR_NS", "Exists", "XcapError", "build", "parse"]

XCAP_ERROR_NS = "urn:ietf:params:xml:ns:xcap-error"
CONTENT_TYPE = "application/xcap-error+xml"

Condition = Literal[
    "not-well-formed", "not-utf-8", "not-xml-frag", "not-xml-att-value",
    "schema-validation-error", "no-parent", "cannot-insert", "cannot-delete",
    "uniqueness-failure", "constraint-failure",
]  # fmt: skip
CONDITIONS: tuple[Condition, ...] = (
    "not-well-formed", "not-utf-8", "not-xml-frag", "not-xml-att-value",
    "schema-validation-error", "no-parent", "cannot-insert", "cannot-delete",
    "uniqueness-failure", "constraint-failure",
)  # fmt: skip
"""Error conditions of RFC 4825 section 11.2 (``extension`` is not built here)."""


@dataclass(frozen=True, slots=True)
class Exists:
    """``<exists field=...>`` of a uniqueness failure, with suggested alternatives."""

    field: str
    """The node selector of the non-unique field."""
    alt_values: tuple[str, ...] = ()
    """Values that would be unique."""


@dataclass(frozen=True, slots=True)
class XcapError:
    """One XCAP error condition."""

    condition: Condition
    """Which error (the child element of ``<xcap-error>``)."""
    phrase: str | None = None
    """Optional human-readable phrase."""
    ancestor: str | None = None
    """no-parent: HTTP URI of the closest existing ancestor."""
    exists: tuple[Exists, ...] = ()
    """uniqueness-failure: the offending fields (at least one)."""


def _q(local: str) -> str:
    return clark(XCAP_ERROR_NS, local)


def build(error: XcapError) -> bytes:
    """Serialise ``error`` as an ``application/xcap-error+xml`` body."""
    if error.condition not in CONDITIONS:
        raise DocumentError(f"unknown XCAP error condition: {error.condition!r}")
    if error.ancestor is not None and error.condition != "no-parent":
        raise DocumentError("ancestor only belongs to no-parent")
    if error.exists and error.condition != "uniqueness-failure":
        raise DocumentError("exists only belongs to uniqueness-failure")
    if error.condition == "uniqueness-failure" and not error.exists:
        raise DocumentError("uniqueness-failure needs at least one exists")
    root = new_root(_q("xcap-error"), {None: XCAP_ERROR_NS})
    el = etree.SubElement(root, _q(error.condition))
    if error.phrase is not None:
        el.set("phrase", error.phrase)
    if error.ancestor is not None:
        etree.SubElement(el, _q("ancestor")).text = error.ancestor
    for item in error.exists:
        exists = etree.SubElement(el, _q("exists"))
        exists.set("field", item.field)
        for value in item.alt_values:
            etree.SubElement(exists, _q("alt-value")).text = value
    return serialize(root)


def parse(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> XcapError:
    """Parse an xcap-error body."""
    root = parse_xml(data, max_size=max_size)
    if root.tag != _q("xcap-error"):
        raise DocumentError(f"not an xcap-error document: root is {root.tag}")
    children = list(root)
    if len(children) != 1:
        raise DocumentError("xcap-error needs exactly one condition")
    el = children[0]
    ns, local = split_clark(el.tag)
    condition = next((c for c in CONDITIONS if c == local), None)
    if ns != XCAP_ERROR_NS or condition is None:
        raise DocumentError(f"unknown XCAP error condition: {el.tag}")
    ancestor: str | None = None
    exists: list[Exists] = []
    for child in el:
        if child.tag == _q("ancestor") and condition == "no-parent" and ancestor is None:
            ancestor = (child.text or "").strip()
        elif child.tag == _q("exists") and condition == "uniqueness-failure":
            name = child.get("field")
            if not name:
                raise DocumentError("exists has no field")
            alts: list[str] = []
            for alt in child:
                if alt.tag != _q("alt-value"):
                    raise DocumentError(f"unexpected element in exists: {alt.tag}")
                alts.append(alt.text or "")
            exists.append(Exists(name, tuple(alts)))
        else:
            raise DocumentError(f"unexpected element in {local}: {child.tag}")
    if condition == "uniqueness-failure" and not exists:
        raise DocumentError("uniqueness-failure needs at least one exists")
    return XcapError(condition, el.get("phrase"), ancestor, tuple(exists))
