"""Presence XML documents (sans-IO, lxml).

One module per document type, each with ``parse(data: bytes, ...) -> model`` and
``build(model) -> bytes`` over frozen dataclasses, and one error type,
:class:`DocumentError`, whose ``reason`` is short enough for a SIP reason phrase:

* :mod:`.pidf` (RFC 3863 + RFC 4479 data model), with :mod:`.rpid` (RFC 4480)
  and :mod:`.geopriv` (RFC 4119) attributes;
* :mod:`.winfo` (RFC 3858), :mod:`.reginfo` (RFC 3680);
* :mod:`.presrules` (RFC 4745 + RFC 5025): parse, build, evaluate, transform;
* :mod:`.compose` (RFC 4479 section 3.4): merge publications, with provenance;
* :mod:`.resourcelists` (RFC 4826) and :mod:`.xcaperror` (RFC 4825);
* :mod:`.validate`: schema validation against the bundled XSDs.

Everything parses through the single hardened parser of :mod:`.xml`.
"""

from . import (
    compose,
    geopriv,
    pidf,
    presrules,
    reginfo,
    resourcelists,
    rpid,
    validate,
    winfo,
    xcaperror,
)
from .xml import DEFAULT_MAX_SIZE, DocumentError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DocumentError",
    "compose",
    "geopriv",
    "pidf",
    "presrules",
    "reginfo",
    "resourcelists",
    "rpid",
    "validate",
    "winfo",
    "xcaperror",
]
