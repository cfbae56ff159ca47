"""Request checks every UAS makes before looking at a request (RFC 3261 8.2.1-8.2.3).

Pure functions: given a request and what the element supports, say which
response (if any) rejects it.  Proxies use :func:`check_proxy_require`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from .message import Request
from .uri import AbsoluteURI

DEFAULT_URI_SCHEMES = frozenset({"sip", "sips", "tel"})


@dataclass(frozen=True, slots=True)
class Rejection:
    """A response status, its reason and the headers it must carry."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def check_method(request: Request, allowed: Collection[str]) -> Rejection | None:
    """405 for a known method this element does not take, 501 for an unknown one."""
    if request.method in allowed:
        return None
    allow = (("Allow", ", ".join(sorted(allowed))),)
    if request.method in KNOWN_METHODS:
        return Rejection(405, "Method Not Allowed", allow)
    return Rejection(501, "Not Implemented", allow)


def check_uri_scheme(request: Request, schemes: Collection[str] = DEFAULT_URI_SCHEMES) -> Rejection | None:
    """416 when the Request-URI scheme is not one this element understands (8.2.2.1)."""
    uri = request.uri
    if uri is None or isinstance(uri, AbsoluteURI) or uri.scheme not in schemes:
        return Rejection(416, "Unsupported URI Scheme")
    return None


def check_require(request: Request, supported: Collection[str], header: str = "require") -> Rejection | None:
    """420 listing the option-tags of Require (or Proxy-Require) this element lacks (8.2.2.3)."""
    if request.method in ("ACK", "CANCEL"):
        return None
    unknown = [t for t in request.headers.get_all(header) if t.strip().lower() not in supported]
    if not unknown:
        return None
    return Rejection(420, "Bad Extension", (("Unsupported", ", ".join(unknown)),))


def check_proxy_require(request: Request, supported: Collection[str]) -> Rejection | None:
    return check_require(request, supported, "proxy-require")


KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)
