"""Schema validation of presence documents against the bundled XSDs.

The schema is chosen by the namespace of the root element, as the shared
conformance validator does: a PIDF document is checked with PIDF plus the
schemas it usually carries as extensions (RPID, data model, caps, CIPID, and
here also GEOPRIV and our provenance element), a common-policy ruleset with
pres-rules (and our pres-rules extension). Those companions matter because
the main schemas admit extensions with ``processContents="lax"``: only loaded
schemas are checked. Elements of other namespaces pass where ``##other`` allows.

Every schema set is compiled once and cached; nothing is fetched from the
network (remote xml.xsd locations resolve to the bundled copy).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from .xml import DEFAULT_MAX_SIZE, DocumentError, parse_xml

__all__ = ["PROFILES", "SCHEMA_DIR", "errors", "is_valid", "schema_for", "validate"]

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

PROFILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "urn:ietf:params:xml:ns:pidf": (
        "pidf.xsd",
        (
            "rpid.xsd",
            "data-model.xsd",
            "caps.xsd",
            "cipid.xsd",
            "geopriv.xsd",
            "geopriv-basic-policy.xsd",
            "provenance.xsd",
        ),
    ),
    "urn:ietf:params:xml:ns:pidf:rpid": ("rpid.xsd", ()),
    "urn:ietf:params:xml:ns:pidf:data-model": ("data-model.xsd", ()),
    "urn:ietf:params:xml:ns:pidf:caps": ("caps.xsd", ()),
    "urn:ietf:params:xml:ns:pidf:cipid": ("cipid.xsd", ()),
    "urn:ietf:params:xml:ns:watcherinfo": ("watcherinfo.xsd", ()),
    "urn:ietf:params:xml:ns:common-policy": (
        "common-policy.xsd",
        ("pres-rules.xsd", "pres-rules-ext.xsd"),
    ),
    "urn:ietf:params:xml:ns:pres-rules": ("pres-rules.xsd", ()),
    "urn:ietf:params:xml:ns:reginfo": ("reginfo.xsd", ()),
    "urn:ietf:params:xml:ns:xcap-error": ("xcap-error.xsd", ()),
    "urn:ietf:params:xml:ns:resource-lists": ("resource-lists.xsd", ()),
}
"""Root namespace -> (main schema, companion schemas checked through lax wildcards)."""

_REMOTE_XML_XSD = frozenset(
    {
        "http://www.w3.org/2001/xml.xsd",
        "http://www.w3.org/2001/03/xml.xsd",
        "http://www.w3.org/2007/08/xml.xsd",
        "http://www.w3.org/2009/01/xml.xsd",
    }
)


class _LocalResolver(etree.Resolver):
    """Serve the W3C xml.xsd locations from the bundled copy; nothing else remote."""

    def resolve(  # type: ignore[override]
        self, system_url: str | None, public_id: str | None, context: Any
    ) -> Any:
        if system_url in _REMOTE_XML_XSD:
            resolver: Any = self
            return resolver.resolve_filename(str(SCHEMA_DIR / "xml.xsd"), context)
        return None


def _schema_parser() -> etree.XMLParser:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_LocalResolver())
    return parser


def _target_namespace(name: str) -> str:
    root = etree.parse(str(SCHEMA_DIR / name), _schema_parser()).getroot()
    return root.get("targetNamespace") or ""


@cache
def schema_for(root_namespace: str) -> etree.XMLSchema:
    """The compiled schema set for documents whose root is in ``root_namespace``."""
    profile = PROFILES.get(root_namespace)
    if profile is None:
        raise DocumentError(f"no schema for root namespace {root_namespace}")
    main, companions = profile
    imports = "".join(
        f'<xs:import namespace="{_target_namespace(name)}" schemaLocation="{name}"/>'
        for name in (main, *companions)
    )
    wrapper = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    base = (SCHEMA_DIR / "_profile.xsd").as_uri()
    doc = etree.fromstring(wrapper.encode(), _schema_parser(), base_url=base)
    return etree.XMLSchema(doc)


def _root(document: bytes | etree._Element, max_size: int) -> etree._Element:
    if isinstance(document, bytes | bytearray | memoryview):
        return parse_xml(bytes(document), max_size=max_size)
    return document


def errors(document: bytes | etree._Element, *, max_size: int = DEFAULT_MAX_SIZE) -> list[str]:
    """Schema errors of ``document`` as ``line:col: message`` strings ([] when valid).

    Raises :class:`DocumentError` when the document is not well-formed or no
    schema serves its root namespace.
    """
    root = _root(document, max_size)
    namespace = etree.QName(root).namespace or ""
    schema = schema_for(namespace)
    if schema.validate(root):
        return []
    log: Any = schema.error_log
    return [f"{e.line}:{e.column}: {e.message}" for e in log]


def is_valid(document: bytes | etree._Element, *, max_size: int = DEFAULT_MAX_SIZE) -> bool:
    """Whether ``document`` is well-formed and valid (False for any DocumentError)."""
    try:
        return not errors(document, max_size=max_size)
    except DocumentError:
        return False


def validate(document: bytes | etree._Element, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
    """Raise :class:`DocumentError` ("schema: <first error>") unless ``document`` is valid."""
    found = errors(document, max_size=max_size)
    if found:
        raise DocumentError(f"schema: {found[0]}")
